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
#[cfg(test)]
mod conformance;
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
    /// The write's condition did not hold for what the reference names now.
    #[error("the condition on the write does not hold")]
    ConditionFailed { current: Option<Digest> },
    #[error("the store was written by a newer artispace (schema version {found}, this build knows {known}); upgrade artispace")]
    NewerSchema { found: i64, known: i64 },
    #[error("there is no user named {0:?}")]
    UnknownUser(String),
    #[error("metadata database error: {0}")]
    Database(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The state of a stored blob (see the `blobs` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobState {
    /// The file is complete and has the row's digest (invariant 1).
    Present,
    /// Garbage collection chose it; the file may already be gone.
    Deleting,
    /// Verification found the file damaged or missing; the next push of
    /// the same digest replaces it.
    Corrupt,
}

impl BlobState {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobState::Present => "present",
            BlobState::Deleting => "deleting",
            BlobState::Corrupt => "corrupt",
        }
    }
}

/// A row of the blobs table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    pub digest: Digest,
    pub size: u64,
    pub state: BlobState,
}

/// A manifest named by repository and digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManifestRef {
    pub repository: String,
    pub digest: Digest,
    pub size: u64,
    /// Tags on the manifest, in lexical order.
    pub tags: Vec<String>,
}

/// What garbage collection should do: which links count as fresh and
/// whether untagged manifests are garbage.
#[derive(Debug, Clone)]
pub struct GcPolicy {
    /// Links made at or after this time (ms since the epoch) keep their blob.
    pub linked_before: i64,
    pub delete_untagged: bool,
    /// Decide and report, but commit nothing.
    pub dry_run: bool,
}

/// What the mark phase of garbage collection decided.
#[derive(Debug, Clone, Default)]
pub struct GcMarks {
    pub manifests: Vec<ManifestRef>,
    pub links_removed: u64,
    /// Blobs now in state `deleting` (or that would be, in a dry run).
    pub blobs: Vec<BlobRow>,
    /// Repositories left holding nothing (no manifest, no blob, no upload)
    /// and so removed, by name, in order.
    pub repositories: Vec<String>,
}

/// A reference the metadata records but that points at nothing usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DanglingReference {
    /// A manifest references a blob that is not present.
    MissingBlob { manifest: ManifestRef, blob: Digest },
    /// An index references a child manifest missing from its repository.
    MissingChild {
        manifest: ManifestRef,
        child: Digest,
    },
    /// A tag whose manifest row is gone.
    TagWithoutManifest { repository: String, tag: String },
}

/// A stored manifest with everything recorded about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    /// Position for paging through all manifests.
    pub id: i64,
    pub repository: String,
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    pub content: Vec<u8>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub tags: Vec<String>,
    /// Config and layers: digest and recorded size.
    pub blobs: Vec<(Digest, u64)>,
}

/// One repository at a glance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepositorySummary {
    pub name: String,
    pub tags: u64,
    pub manifests: u64,
    /// Bytes of manifests and of the distinct blobs they reference.
    pub size: u64,
    /// Latest manifest push or tag change (ms since the epoch), if any.
    pub last_push: Option<i64>,
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
    /// Checked in the write's own transaction, before anything is written.
    pub condition: Option<&'a dyn WriteCondition>,
}

/// A condition on what a manifest's reference names before a write (HTTP's
/// `If-Match` and `If-None-Match` on a manifest PUT). The store checks it in
/// the same transaction as the write, so no other write comes between the
/// check and the change: "move the tag only if it still names X", "create
/// the tag only if it does not exist".
pub trait WriteCondition: Send + Sync {
    /// `current` is the digest of the manifest the tag names now or, for a
    /// put by digest, that digest when the manifest is already in the
    /// repository; `None` when the reference names nothing yet.
    fn holds(&self, current: Option<&Digest>) -> bool;
}

/// One page of a sorted listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub items: Vec<String>,
    /// More items follow the last one in `items`.
    pub more: bool,
}

/// The right to collect garbage in a store, held until dropped. A process
/// that ends, however it ends, gives it up, so `deleting` rows with no
/// claim held are an interrupted run's leftovers.
pub struct GcClaim {
    _held: Box<dyn Send + Sync>,
}

impl GcClaim {
    /// A claim that lasts as long as `held` (a lock guard of the backend's).
    pub fn new(held: impl Send + Sync + 'static) -> GcClaim {
        GcClaim {
            _held: Box::new(held),
        }
    }
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
    /// lock, first calls `ensure_file` with the blob's recorded state (none
    /// when it has no row), which must leave a complete file in place.
    fn commit_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        upload: Uuid,
        ensure_file: &mut dyn FnMut(Option<BlobState>) -> Result<(), StorageError>,
    ) -> Result<(), MetadataError>;

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
    /// Records an upload session's acknowledged size (and that it is in
    /// use). Need not be durable by itself: the chunk it describes is not
    /// synced either, and the session's completion syncs both.
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

    // --- Upkeep: garbage collection, verification, inventory ---

    /// Claims garbage collection of this store for the caller, across
    /// processes: at once, or `None` while another run holds it; with
    /// `wait`, once that run ends.
    fn claim_gc(&self, wait: bool) -> Result<Option<GcClaim>, MetadataError>;

    /// Whether a garbage collection holds the claim right now: its
    /// `deleting` rows are then work in progress, not an interrupted run's.
    fn gc_claimed(&self) -> Result<bool, MetadataError>;

    /// Mark phase of garbage collection, in one transaction: removes dead
    /// manifests and stale links and moves unreferenced blobs to
    /// `deleting`. With `dry_run`, decides the same and rolls back.
    fn mark_garbage(&self, policy: &GcPolicy) -> Result<GcMarks, MetadataError>;

    /// Every blob row.
    fn blobs(&self) -> Result<Vec<BlobRow>, MetadataError>;

    /// Sweep phase: for each of `digests` still `deleting`, under the write
    /// lock, calls `remove_file` and then drops the row. Returns the number
    /// swept.
    fn sweep_blobs(
        &self,
        digests: &[Digest],
        remove_file: &mut dyn FnMut(&Digest) -> Result<(), StorageError>,
    ) -> Result<usize, MetadataError>;

    /// For each of `digests` that has no row, under the write lock, calls
    /// `remove_file` (a file left by a crash). Returns the number removed.
    fn remove_unrecorded_files(
        &self,
        digests: &[Digest],
        remove_file: &mut dyn FnMut(&Digest) -> Result<(), StorageError>,
    ) -> Result<usize, MetadataError>;

    fn set_blob_state(&self, digest: &Digest, state: BlobState) -> Result<(), MetadataError>;

    /// The manifests (with their repositories and tags) that reference `digest`.
    fn blob_users(&self, digest: &Digest) -> Result<Vec<ManifestRef>, MetadataError>;

    /// Manifests with ids above `after_id`, in id order, at most `limit`.
    fn manifests_after(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<ManifestRecord>, MetadataError>;

    /// Manifests of one repository, newest first.
    fn repository_manifests(&self, repo: &RepoName) -> Result<Vec<ManifestRecord>, MetadataError>;

    fn dangling_references(&self) -> Result<Vec<DanglingReference>, MetadataError>;

    /// Removes tags whose manifest is gone; returns how many.
    fn remove_dangling_tags(&self) -> Result<usize, MetadataError>;

    /// The database's own consistency checks; empty when all is well.
    fn integrity_problems(&self) -> Result<Vec<String>, MetadataError>;

    fn repository_summaries(&self) -> Result<Vec<RepositorySummary>, MetadataError>;
}
