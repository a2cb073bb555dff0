//! The storage layer: where blob contents live.
//!
//! [`BlobStore`] is the seam for backends: the local filesystem today
//! ([`fs::FsBlobStore`]), object stores later. It knows bytes and digests and
//! nothing of repositories, tags or manifests: which blobs exist is decided
//! by the metadata layer, and the registry layer keeps the two in step.
//!
//! Methods block; the registry calls them from blocking threads.

#[cfg(test)]
mod conformance;
pub mod fs;

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::SystemTime;

use uuid::Uuid;

use crate::oci::Digest;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the store has no space left: {0}")]
    Full(io::Error),
    #[error("storage I/O failed on {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl StorageError {
    pub fn io(what: impl Into<String>, source: io::Error) -> StorageError {
        // ENOSPC and EDQUOT: the disk or the quota is full.
        if matches!(source.raw_os_error(), Some(28) | Some(122)) {
            StorageError::Full(source)
        } else {
            StorageError::Io {
                what: what.into(),
                source,
            }
        }
    }
}

/// Appends to an upload's data. Nothing written is durable until
/// [`UploadWriter::sync`] returns.
pub trait UploadWriter: Write + Send {
    /// Flushes buffers and waits until the bytes are on stable storage.
    fn sync(&mut self) -> io::Result<()>;

    /// Announces that `len` more bytes follow. The store may set space
    /// aside for them now, which makes the writes cheaper and turns a disk
    /// too full for them into an error before any byte is sent. Only that
    /// error is reported; a store that cannot reserve just carries on.
    fn reserve(&mut self, len: u64) -> io::Result<()>;
}

/// Reads a stored blob: as a stream (`Read`), or by offset, which leaves no
/// cursor behind and so lets a download read from any thread.
pub trait BlobReader: Read + Send + Sync {
    /// The blob's full size in bytes.
    fn size(&self) -> u64;

    /// Reads up to `buf.len()` bytes at `offset`. May wait for the disk.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Like [`BlobReader::read_at`], but only if that needs no wait for the
    /// disk (the bytes are in memory); `None` means it would wait, so the
    /// caller reads on a thread that may block. Backends that cannot tell
    /// always answer `None`.
    fn read_at_if_cached(&self, _buf: &mut [u8], _offset: u64) -> Option<io::Result<usize>> {
        None
    }

    /// The local file that holds the blob's bytes, for a caller that can
    /// have the kernel send them from it without copying (`sendfile`).
    /// Backends without local files answer `None`.
    fn local_file(&self) -> Option<&File> {
        None
    }

    /// Whether all of `offset..offset + len` is in memory now, so that
    /// sending it from [`BlobReader::local_file`] needs no wait for the
    /// disk. `false` when unsure.
    fn is_in_memory(&self, _offset: u64, _len: u64) -> bool {
        false
    }
}

/// A blob file found by listing the store (for garbage collection and
/// verification).
#[derive(Debug, Clone)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    pub modified: SystemTime,
}

/// An upload's data found by listing the store.
#[derive(Debug, Clone)]
pub struct StoredUpload {
    pub id: Uuid,
    pub size: u64,
    pub modified: SystemTime,
}

pub trait BlobStore: Send + Sync + 'static {
    /// Opens upload `id` for appending at `offset`, creating it when new.
    /// Bytes past `offset`, left by a request that failed midway, are cut
    /// off, and so is space reserved past the end and never written.
    fn append_to_upload(
        &self,
        id: Uuid,
        offset: u64,
    ) -> Result<Box<dyn UploadWriter>, StorageError>;

    /// Reads upload `id` from its start (to rebuild a hash after a restart);
    /// `None` when it has no data.
    fn read_upload(&self, id: Uuid) -> Result<Option<Box<dyn Read + Send>>, StorageError>;

    /// Bytes in upload `id`'s data; `None` when it has none.
    fn upload_size(&self, id: Uuid) -> Result<Option<u64>, StorageError>;

    /// Removes upload `id`'s data; a missing upload is not an error.
    fn remove_upload(&self, id: Uuid) -> Result<(), StorageError>;

    fn list_uploads(&self) -> Result<Vec<StoredUpload>, StorageError>;

    /// Makes the (synced) data of upload `id` the content of `digest`,
    /// durably, unless content is already stored for it; returns whether it
    /// did. The upload keeps its data, so the caller can still
    /// [`replace_with_upload`](Self::replace_with_upload) later. Needs no
    /// lock: a blob with no committed row is invisible, and garbage
    /// collection re-checks rows under the metadata write lock.
    fn place_upload(&self, id: Uuid, digest: &Digest) -> Result<bool, StorageError>;

    /// Makes the (synced) data of upload `id` the content of `digest`,
    /// atomically replacing what is there, durably; the upload is consumed.
    /// Callers hold the metadata write lock (invariant 2 of the
    /// architecture).
    fn replace_with_upload(&self, id: Uuid, digest: &Digest) -> Result<(), StorageError>;

    /// Whether content is stored for `digest`.
    fn blob_exists(&self, digest: &Digest) -> Result<bool, StorageError>;

    /// Opens blob `digest`; `None` when no content is stored for it.
    fn open_blob(&self, digest: &Digest) -> Result<Option<Box<dyn BlobReader>>, StorageError>;

    /// Removes blob `digest`; returns whether there was one. Callers hold the
    /// metadata write lock.
    fn remove_blob(&self, digest: &Digest) -> Result<bool, StorageError>;

    fn list_blobs(&self) -> Result<Vec<StoredBlob>, StorageError>;
}
