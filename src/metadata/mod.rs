//! The metadata layer: what exists in the registry.
//!
//! [`MetadataStore`] is the seam for backends: SQLite today
//! ([`sqlite::SqliteMetadata`]), PostgreSQL later. Every method is one
//! transaction and keeps the invariants of the architecture by itself, so
//! the registry layer never has to hold a lock across calls. It never
//! touches blob files except through the callback given to
//! [`MetadataStore::commit_blob`], which runs under its write lock.
//!
//! [`AccountStore`] (users, grants, access tokens) is a second, separate
//! seam on the same backend, used by the access layer only.
//!
//! Methods block; the registry calls them from blocking threads.

pub mod accounts;
pub mod sqlite;

pub use accounts::{AccountStore, GrantRecord, NewToken, TokenRecord, TokenScope, UserRecord};

use uuid::Uuid;

use crate::oci::{Descriptor, Digest, ParsedManifest, RepoName, Tag};
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("blob {0} is not in this repository")]
    MissingBlob(Digest),
    #[error("manifest {0} is not in this repository")]
    MissingChild(Digest),
    #[error("the store was written by a newer artispace (schema version {found}, this build knows {known}); upgrade artispace")]
    NewerSchema { found: i64, known: i64 },
    #[error("there is no user named {0:?}")]
    UnknownUser(String),
    #[error("metadata database error: {0}")]
    Database(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// An upload session as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: Uuid,
    pub repo: RepoName,
    /// Bytes received and acknowledged so far.
    pub size: u64,
    /// Milliseconds since the Unix epoch.
    pub started_at: i64,
    pub updated_at: i64,
}

/// A manifest as stored: the exact bytes pushed and their media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Vec<u8>,
}

/// A manifest to record, already parsed and validated.
pub struct NewManifest<'a> {
    pub repo: &'a RepoName,
    pub digest: &'a Digest,
    pub parsed: &'a ParsedManifest,
    pub content: &'a [u8],
    pub tag: Option<&'a Tag>,
}

/// One page of a sorted listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub items: Vec<String>,
    /// More items follow the last one in `items`.
    pub more: bool,
}

pub trait MetadataStore: Send + Sync + 'static {
    fn repository_exists(&self, repo: &RepoName) -> Result<bool, MetadataError>;

    /// Repository names after `after` in lexical order, at most `limit`.
    fn list_repositories(&self, after: Option<&str>, limit: usize) -> Result<Page, MetadataError>;

    /// The size of `digest` when it is present and linked to `repo`.
    fn linked_blob_size(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetadataError>;

    /// Records that `digest` (`size` bytes, the data of `upload`) is present
    /// and linked to `repo`, and ends the upload session. Under the write
    /// lock, `move_into_place` is called when no present copy is stored yet;
    /// returns whether it was called (if not, the caller discards the upload).
    fn commit_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        upload: Uuid,
        move_into_place: &mut dyn FnMut() -> Result<(), StorageError>,
    ) -> Result<bool, MetadataError>;

    /// Links `digest` into `repo` when it is present and linked in `from`.
    fn mount_blob(
        &self,
        repo: &RepoName,
        from: &RepoName,
        digest: &Digest,
    ) -> Result<bool, MetadataError>;

    /// Removes the link of `digest` to `repo`; returns whether there was one.
    fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetadataError>;

    fn create_upload(&self, id: Uuid, repo: &RepoName) -> Result<UploadRecord, MetadataError>;
    fn upload(&self, id: Uuid) -> Result<Option<UploadRecord>, MetadataError>;
    fn set_upload_size(&self, id: Uuid, size: u64) -> Result<(), MetadataError>;
    fn delete_upload(&self, id: Uuid) -> Result<bool, MetadataError>;
    /// Sessions last updated before `updated_before` (ms since the epoch).
    fn expired_uploads(&self, updated_before: i64) -> Result<Vec<Uuid>, MetadataError>;

    /// Records a manifest (and its tag) after checking, in the same
    /// transaction, that every blob it references is present and linked to
    /// the repository and every child manifest is in the repository.
    fn put_manifest(&self, manifest: NewManifest<'_>) -> Result<(), MetadataError>;
    fn manifest_by_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> Result<Option<StoredManifest>, MetadataError>;
    fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>, MetadataError>;
    /// Removes a manifest and every tag on it; returns whether it existed.
    fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetadataError>;
    /// Removes a tag (not its manifest); returns whether it existed.
    fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool, MetadataError>;
    /// Tags of `repo` after `after` in lexical order, at most `limit`.
    fn list_tags(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, MetadataError>;
    /// Manifests in `repo` whose subject is `subject`, optionally only those
    /// of one artifact type.
    fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, MetadataError>;
}
