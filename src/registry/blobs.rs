//! Reading, mounting and unlinking blobs.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{blocking, Registry, RegistryError};
use crate::oci::{Digest, RepoName};
use crate::storage::{BlobReader, StorageError};

/// Size of the pieces a blob is sent in. Large enough to keep syscalls and
/// wake-ups few, small enough that memory per download stays bounded.
const READ_CHUNK: usize = 256 * 1024;

/// An inclusive byte range within a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    /// Number of bytes in the range (never zero).
    pub fn byte_count(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// A connection that can send bytes of a blob's local file itself, straight
/// from the page cache, instead of the process copying them into the body
/// (on Linux, plain-HTTP connections; see `api::zero_copy`).
pub trait FileSendPath: Send + Sync {
    /// Most bytes one [`FileSendPath::stand_in`] may cover.
    fn max_piece(&self) -> usize;

    /// The body frame to stream in place of `len` bytes at `offset` of
    /// `blob` (whose [`BlobReader::local_file`] is `Some`); the connection
    /// sends the file's bytes where the frame goes.
    fn stand_in(&self, blob: &Arc<dyn BlobReader>, offset: u64, len: usize) -> Bytes;
}

/// The content of a blob, ready to stream. Cloning it is cheap (the file
/// is shared), so several ranges of one blob can be streamed in turn.
#[derive(Clone)]
pub enum BlobContent {
    /// A stored blob file.
    Stored(Arc<dyn BlobReader>),
    /// A manifest asked for through the blob endpoint (small, in memory).
    Manifest(Bytes),
}

impl BlobContent {
    pub fn len(&self) -> u64 {
        match self {
            BlobContent::Stored(reader) => reader.size(),
            BlobContent::Manifest(bytes) => bytes.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Streams the content (or `range` of it), a piece at a time: memory
    /// stays bounded whatever the blob size. With `file_sends`, pieces of a
    /// local file that are in memory become that path's stand-ins, and only
    /// the rest is read here.
    pub fn into_stream(
        self,
        range: Option<ByteRange>,
        file_sends: Option<Arc<dyn FileSendPath>>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        match self {
            BlobContent::Manifest(bytes) => {
                let part = match range {
                    Some(r) => bytes.slice(r.first as usize..=r.last as usize),
                    None => bytes,
                };
                futures_util::stream::once(std::future::ready(Ok(part))).left_stream()
            }
            BlobContent::Stored(reader) => {
                let file_sends = file_sends.filter(|_| reader.local_file().is_some());
                let download = Download::new(reader, range, file_sends);
                futures_util::stream::unfold(download, |mut download| async move {
                    let piece = download.next_piece().await?;
                    Some((piece, download))
                })
                .right_stream()
            }
        }
    }
}

/// A piece of a blob on its way to the network. Once the network is done
/// with it, its buffer goes back to the download to be filled again, so a
/// download allocates and zeroes a handful of buffers, not one per piece
/// (zeroing a fresh buffer cost about a tenth of the server's CPU per pull).
struct Piece {
    buffer: Vec<u8>,
    back: std::sync::mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Piece {
    fn drop(&mut self) {
        // The download may be over: then the buffer is simply freed.
        let _ = self.back.send(std::mem::take(&mut self.buffer));
    }
}

/// One blob download. A piece whose bytes are in the page cache (the usual
/// case: blobs are read soon after they are written, or again and again) is
/// handed to the connection's [`FileSendPath`] when it has one, which sends
/// it with no copy through this process; otherwise it is read right here on
/// the executor, which costs a memory copy and no wait. Only a piece that
/// needs the disk goes to a blocking thread. Against reading every piece on
/// a blocking thread, this saves two thread hand-offs per piece.
struct Download {
    reader: Arc<dyn BlobReader>,
    file_sends: Option<Arc<dyn FileSendPath>>,
    /// Next byte to send, and the end of the range (exclusive; moved back
    /// to `offset` after an error, as nothing follows one).
    offset: u64,
    end: u64,
    back: std::sync::mpsc::Sender<Vec<u8>>,
    returned: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Download {
    fn new(
        reader: Arc<dyn BlobReader>,
        range: Option<ByteRange>,
        file_sends: Option<Arc<dyn FileSendPath>>,
    ) -> Download {
        let (offset, end) = match range {
            Some(r) => (r.first, r.last + 1),
            None => (0, reader.size()),
        };
        let (back, returned) = std::sync::mpsc::channel();
        Download {
            reader,
            file_sends,
            offset,
            end,
            back,
            returned,
        }
    }

    async fn next_piece(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.offset >= self.end {
            return None;
        }
        if let Some(path) = &self.file_sends {
            let want = (self.end - self.offset).min(path.max_piece() as u64);
            if self.reader.is_in_memory(self.offset, want) {
                let piece = path.stand_in(&self.reader, self.offset, want as usize);
                self.offset += want;
                return Some(Ok(piece));
            }
        }
        let want = (self.end - self.offset).min(READ_CHUNK as u64) as usize;
        let mut buffer = self.returned.try_recv().unwrap_or_default();
        // Zeroes only what was never initialised (a new or cut-short buffer).
        buffer.resize(want, 0);
        let (read, mut buffer) = read_piece(&self.reader, buffer, self.offset).await;
        let piece = match read {
            Ok(0) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "blob file is shorter than its recorded size",
            )),
            Ok(n) => {
                buffer.truncate(n);
                self.offset += n as u64;
                let back = self.back.clone();
                Ok(Bytes::from_owner(Piece { buffer, back }))
            }
            Err(e) => Err(e),
        };
        if piece.is_err() {
            // Nothing follows an error.
            self.end = self.offset;
        }
        Some(piece)
    }
}

/// Fills `buffer` from `offset` of `reader`: right here when the bytes are
/// in memory, on a blocking thread when the disk must be read. Hands the
/// buffer back either way.
async fn read_piece(
    reader: &Arc<dyn BlobReader>,
    mut buffer: Vec<u8>,
    offset: u64,
) -> (std::io::Result<usize>, Vec<u8>) {
    loop {
        let (read, returned) = match reader.read_at_if_cached(&mut buffer, offset) {
            Some(read) => (read, buffer),
            None => {
                let reader = Arc::clone(reader);
                let task = tokio::task::spawn_blocking(move || {
                    let read = reader.read_at(&mut buffer, offset);
                    (read, buffer)
                });
                task.await
                    .unwrap_or_else(|e| (Err(std::io::Error::other(e)), Vec::new()))
            }
        };
        buffer = returned;
        if !matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::Interrupted) {
            return (read, buffer);
        }
    }
}

impl Registry {
    /// The size of blob `digest` as `repo` sees it (a linked blob, or a
    /// manifest of the repository by its digest).
    pub async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64, RegistryError> {
        let (r, d) = (repo.clone(), digest.clone());
        let size = self.metadata(move |m| m.linked_blob_size(&r, &d)).await?;
        if let Some(size) = size {
            return Ok(size);
        }
        match self.manifest_as_blob(repo, digest).await? {
            Some(bytes) => Ok(bytes.len() as u64),
            None => Err(RegistryError::BlobUnknown(digest.clone())),
        }
    }

    /// Opens blob `digest` as `repo` sees it.
    pub async fn open_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<BlobContent, RegistryError> {
        let (r, d) = (repo.clone(), digest.clone());
        let Some(recorded) = self.metadata(move |m| m.linked_blob_size(&r, &d)).await? else {
            return match self.manifest_as_blob(repo, digest).await? {
                Some(bytes) => Ok(BlobContent::Manifest(bytes)),
                None => Err(RegistryError::BlobUnknown(digest.clone())),
            };
        };
        let blobs = Arc::clone(&self.blobs);
        let d = digest.clone();
        let reader = blocking(move || Ok(blobs.open_blob(&d)?)).await?;
        // The row says present but the file is gone or has another size:
        // the store is damaged (by hand, or by the disk). Sending the file
        // as it is would pass its bytes off as the digest's.
        let (kind, damage) = match reader {
            Some(reader) if reader.size() == recorded => {
                return Ok(BlobContent::Stored(Arc::from(reader)))
            }
            Some(reader) => (
                std::io::ErrorKind::InvalidData,
                format!(
                    "recorded with {recorded} bytes but the file has {}; run verify",
                    reader.size()
                ),
            ),
            None => (
                std::io::ErrorKind::NotFound,
                "recorded as present but missing; run verify".to_owned(),
            ),
        };
        Err(RegistryError::Storage(StorageError::io(
            format!("blob {digest}"),
            std::io::Error::new(kind, damage),
        )))
    }

    async fn manifest_as_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<Bytes>, RegistryError> {
        let (r, d) = (repo.clone(), digest.clone());
        let manifest = self.metadata(move |m| m.manifest_by_digest(&r, &d)).await?;
        Ok(manifest.map(|m| Bytes::from(m.content)))
    }

    /// Links `digest` into `repo` from `from` when `from` holds it.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        from: &RepoName,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let (r, f, d) = (repo.clone(), from.clone(), digest.clone());
        self.metadata(move |m| m.mount_blob(&r, &f, &d)).await
    }

    /// Unlinks `digest` from `repo`; other repositories keep it, and garbage
    /// collection removes the content once nothing holds it.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<(), RegistryError> {
        if !self.config.delete_enabled {
            return Err(RegistryError::DeleteDisabled);
        }
        let (r, d) = (repo.clone(), digest.clone());
        if self.metadata(move |m| m.unlink_blob(&r, &d)).await? {
            Ok(())
        } else {
            Err(RegistryError::BlobUnknown(digest.clone()))
        }
    }
}
