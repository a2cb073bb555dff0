//! Upload sessions: blobs arriving in one request or in many chunks.
//!
//! Bytes are hashed as they stream to the session's file on a blocking
//! thread; nothing is held whole in memory. A session is a metadata row (its
//! acknowledged size) plus a file, so it survives a restart. The running
//! hash lives in memory beside it; after a restart, the first request on the
//! session rebuilds it from the file.
//!
//! A request that fails leaves the session as it was: the row's size is
//! only raised after the chunk is written, and bytes past it are cut off by
//! the next append.
//!
//! Durability is promised where the blob is: the request that completes a
//! blob fsyncs all of its data (every chunk, whichever request wrote it)
//! before its 201. A chunk's 202 promises less, on purpose: its bytes are in
//! the file and its size is committed without an fsync, so they survive the
//! server process dying but not a power cut. Waiting for the disk on every
//! chunk would make chunked pushes pay a disk flush per chunk that
//! monolithic pushes do not. After a power cut, a session whose file lost
//! acknowledged bytes answers "upload unknown" and the client starts over; a
//! loss the file system hides (zeros instead of data) fails the digest check
//! when the blob completes. Nothing unverified is ever committed.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::{blocking, Registry, RegistryError, Removed};
use crate::metadata::sqlite::now_millis;
use crate::metadata::{BlobState, UploadRecord};
use crate::oci::{Algorithm, Digest, Hasher, RepoName};
use crate::storage::{BlobStore, StorageError};

/// Bytes of one upload allowed in flight between the network and the
/// writing thread. Bounded in bytes, not frames: frames vary from a few KiB
/// to hundreds, and concurrent uploads must not each hold megabytes. 512 KiB
/// pushed as fast as 1 MiB did, measured side by side.
const WRITE_BUDGET: usize = 512 * 1024;
const REHASH_BUFFER: usize = 1 << 20;

/// What writing a chunk promises once it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// The bytes are in the file: they survive the process, not a power cut.
    Written,
    /// The session's data, all of it, is on stable storage.
    Durable,
}

/// Where an upload session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: Uuid,
    /// Bytes received and acknowledged.
    pub size: u64,
}

/// In-memory state of a session. Its mutex also serialises requests on the
/// same session.
#[derive(Default)]
pub(super) struct SessionState {
    /// The hash of the first `.0` bytes of the session's data.
    hash: Option<(u64, Hasher)>,
}

/// A session whose file holds fewer bytes than were acknowledged: chunks
/// are not synced (see the module comment), so a power cut can do this. The
/// client is told the session is unknown and starts the blob over.
fn lost_upload_data(id: Uuid, on_disk: u64, acknowledged: u64) -> RegistryError {
    tracing::warn!(
        upload = %id,
        on_disk,
        acknowledged,
        "upload session lost acknowledged bytes (system crash?); the client must start over"
    );
    RegistryError::UploadUnknown
}

/// What a client claims about a chunk it sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkClaim {
    /// First byte offset (`Content-Range` start).
    pub start: Option<u64>,
    /// Length (`Content-Range` span or `Content-Length`).
    pub length: Option<u64>,
}

impl Registry {
    /// Opens a new upload session in `repo`.
    pub async fn start_upload(&self, repo: &RepoName) -> Result<UploadStatus, RegistryError> {
        let id = Uuid::new_v4();
        let repo = repo.clone();
        let record = self.metadata(move |m| m.create_upload(id, &repo)).await?;
        Ok(UploadStatus {
            id: record.id,
            size: record.size,
        })
    }

    pub async fn upload_status(
        &self,
        repo: &RepoName,
        id: Uuid,
    ) -> Result<UploadStatus, RegistryError> {
        let record = self.live_upload(repo, id).await?;
        Ok(UploadStatus {
            id,
            size: record.size,
        })
    }

    /// Appends one chunk to session `id` and acknowledges it once written
    /// (see the module comment for why not synced).
    pub async fn append_upload<S, E>(
        &self,
        repo: &RepoName,
        id: Uuid,
        claim: ChunkClaim,
        body: S,
    ) -> Result<UploadStatus, RegistryError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let session = self.session(id);
        let mut state = session.lock().await;
        let (hasher, size) = self
            .write_session_chunk(&mut state, repo, id, claim, body, Ack::Written)
            .await?;
        // Acknowledged only once the new size is recorded.
        self.metadata(move |m| m.set_upload_size(id, size)).await?;
        state.hash = Some((size, hasher));
        Ok(UploadStatus { id, size })
    }

    /// Appends the optional last chunk, checks the whole content against
    /// `digest` and makes the blob visible in `repo`.
    pub async fn finish_upload<S, E>(
        &self,
        repo: &RepoName,
        id: Uuid,
        digest: &Digest,
        claim: ChunkClaim,
        body: S,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let session = self.session(id);
        let mut state = session.lock().await;
        let (hasher, size) = self
            .write_session_chunk(&mut state, repo, id, claim, body, Ack::Durable)
            .await?;
        self.check_digest(id, size, digest, hasher).await?;
        self.commit_blob(repo, digest, size, id).await?;
        drop(state);
        self.forget_session(id);
        Ok(())
    }

    /// Writes a chunk after the session's acknowledged bytes; returns the
    /// hash and size including it. Nothing is acknowledged here: on any
    /// failure, `state` and the session's record still describe the bytes
    /// before this chunk, and the next append cuts off what was written.
    async fn write_session_chunk<S, E>(
        &self,
        state: &mut SessionState,
        repo: &RepoName,
        id: Uuid,
        claim: ChunkClaim,
        body: S,
        ack: Ack,
    ) -> Result<(Hasher, u64), RegistryError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let record = self.live_upload(repo, id).await?;
        check_start(&claim, record.size)?;
        let before = self.hash_of_session(state, &record).await?;
        self.write_chunk(id, record.size, before, claim, body, ack)
            .await
    }

    /// Stores a blob sent whole in one request (`POST ?digest=`).
    pub async fn push_blob<S, E>(
        &self,
        repo: &RepoName,
        digest: &Digest,
        claim: ChunkClaim,
        body: S,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        // No session row: if this request dies, its file is an orphan that
        // the expiry sweep removes.
        let id = Uuid::new_v4();
        let hasher = Hasher::new(digest.algorithm());
        let outcome = async {
            let (hasher, size) = self
                .write_chunk(id, 0, hasher, claim, body, Ack::Durable)
                .await?;
            self.check_digest(id, size, digest, hasher).await?;
            self.commit_blob(repo, digest, size, id).await
        }
        .await;
        if outcome.is_err() {
            self.discard_upload_file(id).await;
        }
        outcome
    }

    /// Cancels session `id`, removing its data.
    pub async fn cancel_upload(&self, repo: &RepoName, id: Uuid) -> Result<(), RegistryError> {
        let session = self.session(id);
        let _state = session.lock().await;
        self.live_upload(repo, id).await?;
        self.metadata(move |m| m.delete_upload(id)).await?;
        self.discard_upload_file(id).await;
        drop(_state);
        self.forget_session(id);
        Ok(())
    }

    /// Removes sessions idle for longer than the configured expiry, and
    /// upload files that belong to no session and are as old. With
    /// `dry_run`, only counts them.
    pub async fn sweep_uploads(&self, dry_run: bool) -> Result<Removed, RegistryError> {
        let expiry_ms = i64::try_from(self.config.upload_expiry.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_millis().saturating_sub(expiry_ms);
        let expired = self.metadata(move |m| m.expired_uploads(cutoff)).await?;
        let blobs = Arc::clone(&self.blobs);
        let files = blocking(move || Ok(blobs.list_uploads()?)).await?;
        let size_of = |id: Uuid| files.iter().find(|f| f.id == id).map_or(0, |f| f.size);

        let mut removed = Removed::default();
        for &id in &expired {
            let session = self.session(id);
            // A session in use right now is not idle.
            let Ok(_state) = session.try_lock() else {
                continue;
            };
            removed.add(size_of(id));
            if !dry_run {
                self.metadata(move |m| m.delete_upload(id)).await?;
                self.discard_upload_file(id).await;
                self.forget_session(id);
            }
        }
        let expiry = self.config.upload_expiry;
        // Files of the sessions just removed are gone already.
        let stray = files
            .iter()
            .filter(|f| !expired.contains(&f.id))
            .filter(|f| f.modified.elapsed().unwrap_or(Duration::ZERO) > expiry);
        for file in stray {
            let id = file.id;
            if self.metadata(move |m| m.upload(id)).await?.is_none() {
                removed.add(file.size);
                if !dry_run {
                    self.discard_upload_file(id).await;
                }
            }
        }
        Ok(removed)
    }

    fn session(&self, id: Uuid) -> Arc<tokio::sync::Mutex<SessionState>> {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(sessions.entry(id).or_default())
    }

    fn forget_session(&self, id: Uuid) {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.remove(&id);
    }

    /// The session's record, if it exists in `repo` and has not expired.
    async fn live_upload(&self, repo: &RepoName, id: Uuid) -> Result<UploadRecord, RegistryError> {
        let record = self
            .metadata(move |m| m.upload(id))
            .await?
            .ok_or(RegistryError::UploadUnknown)?;
        let idle_ms = now_millis().saturating_sub(record.updated_at);
        let expired = u128::try_from(idle_ms).unwrap_or(0) > self.config.upload_expiry.as_millis();
        if record.repo != *repo || expired {
            return Err(RegistryError::UploadUnknown);
        }
        Ok(record)
    }

    /// The running sha256 of the session's acknowledged bytes, rebuilt from
    /// the file when this process has not seen them (after a restart).
    async fn hash_of_session(
        &self,
        state: &mut SessionState,
        record: &UploadRecord,
    ) -> Result<Hasher, RegistryError> {
        if let Some((size, hasher)) = &state.hash {
            if *size == record.size {
                return Ok(hasher.clone());
            }
        }
        let hasher = if record.size == 0 {
            Hasher::new(Algorithm::Sha256)
        } else {
            self.rehash_upload(record.id, record.size, Algorithm::Sha256)
                .await?
        };
        state.hash = Some((record.size, hasher.clone()));
        Ok(hasher)
    }

    async fn rehash_upload(
        &self,
        id: Uuid,
        size: u64,
        algorithm: Algorithm,
    ) -> Result<Hasher, RegistryError> {
        let blobs = Arc::clone(&self.blobs);
        blocking(move || {
            let Some(reader) = blobs.read_upload(id)? else {
                return Err(lost_upload_data(id, 0, size));
            };
            let mut reader = reader.take(size);
            let mut hasher = Hasher::new(algorithm);
            let mut buffer = vec![0u8; REHASH_BUFFER];
            let mut read = 0u64;
            loop {
                let n = reader
                    .read(&mut buffer)
                    .map_err(|e| StorageError::io("upload data", e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                read += n as u64;
            }
            if read != size {
                return Err(lost_upload_data(id, read, size));
            }
            Ok(hasher)
        })
        .await
    }

    /// Streams `body` to the session's data from `offset` while hashing it,
    /// then flushes it to the file, or with [`Ack::Durable`] syncs the whole
    /// file (earlier chunks included) to disk. Returns the hash and the
    /// session's new size.
    async fn write_chunk<S, E>(
        &self,
        id: Uuid,
        offset: u64,
        mut hasher: Hasher,
        claim: ChunkClaim,
        mut body: S,
        ack: Ack,
    ) -> Result<(Hasher, u64), RegistryError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        // `None` in the queue means the body failed: stop without syncing.
        // Each frame travels with its share of the byte budget, given back
        // once written.
        let (sender, mut receiver) =
            tokio::sync::mpsc::unbounded_channel::<Option<(Bytes, OwnedSemaphorePermit)>>();
        let budget = Arc::new(Semaphore::new(WRITE_BUDGET));
        let blobs: Arc<dyn BlobStore> = Arc::clone(&self.blobs);
        let writer =
            tokio::task::spawn_blocking(move || -> Result<(Hasher, u64), RegistryError> {
                let mut out = blobs.append_to_upload(id, offset)?;
                if let Some(length) = claim.length {
                    out.reserve(length)
                        .map_err(|e| StorageError::io("upload data", e))?;
                }
                let mut written = 0u64;
                while let Some(chunk) = receiver.blocking_recv() {
                    let Some((bytes, _permit)) = chunk else {
                        return Err(RegistryError::BodyRead("the client stopped sending".into()));
                    };
                    hasher.update(&bytes);
                    out.write_all(&bytes)
                        .map_err(|e| StorageError::io("upload data", e))?;
                    written += bytes.len() as u64;
                }
                match ack {
                    Ack::Written => out.flush(),
                    Ack::Durable => out.sync(),
                }
                .map_err(|e| StorageError::io("upload data", e))?;
                Ok((hasher, written))
            });

        let mut body_error = None;
        loop {
            let frame = tokio::select! {
                frame = body.next() => frame,
                // The writer stopped early (it failed, e.g. no space for
                // the announced length): answer now, not after the client's
                // next bytes. Its error is reported below.
                () = sender.closed() => break,
            };
            let Some(frame) = frame else { break };
            let item = match frame {
                Ok(bytes) => {
                    let share = u32::try_from(bytes.len().min(WRITE_BUDGET)).unwrap_or(u32::MAX);
                    match Arc::clone(&budget).acquire_many_owned(share).await {
                        Ok(permit) => Some((bytes, permit)),
                        Err(_) => break,
                    }
                }
                Err(e) => {
                    body_error = Some(e.to_string());
                    None
                }
            };
            let failed = item.is_none();
            // A closed queue means the writer failed; its error is reported below.
            if sender.send(item).is_err() || failed {
                break;
            }
        }

        drop(sender);
        let written = writer
            .await
            .map_err(|e| RegistryError::Internal(format!("upload writer failed: {e}")))?;
        if let Some(e) = body_error {
            return Err(RegistryError::BodyRead(e));
        }
        let (hasher, written) = written?;
        if let Some(length) = claim.length {
            if length != written {
                return Err(RegistryError::SizeInvalid(format!(
                    "the request announced {length} bytes but sent {written}"
                )));
            }
        }
        Ok((hasher, offset + written))
    }

    /// Checks that the session's data hashes to `digest`.
    async fn check_digest(
        &self,
        id: Uuid,
        size: u64,
        digest: &Digest,
        hasher: Hasher,
    ) -> Result<(), RegistryError> {
        let actual = if hasher.algorithm() == digest.algorithm() {
            hasher.finish()
        } else {
            // The running hash is sha256; another algorithm needs a second pass.
            self.rehash_upload(id, size, digest.algorithm())
                .await?
                .finish()
        };
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Makes the synced data of upload `id` visible as `digest` in `repo`.
    /// Invariants 1 and 2: the row is committed only while holding the
    /// write lock and after checking, under it, that a complete file is in
    /// place; garbage collection removes files only under the same lock.
    async fn commit_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        id: Uuid,
    ) -> Result<(), RegistryError> {
        let metadata = Arc::clone(&self.metadata);
        let blobs = Arc::clone(&self.blobs);
        let (repo, digest) = (repo.clone(), digest.clone());
        blocking(move || {
            // The slow part (a new name and a folder sync) happens before
            // the write lock, and concurrent pushes overlap in it.
            let placed = blobs.place_upload(id, &digest)?;
            metadata.commit_blob(&repo, &digest, size, id, &mut |state| match state {
                // Complete by invariant 1: nothing to do.
                Some(BlobState::Present) => Ok(()),
                // Ours is in place, unless a sweep took it since.
                _ if placed && blobs.blob_exists(&digest)? => Ok(()),
                // A copy that is being collected, damaged, or of unknown
                // origin (no row): ours replaces it.
                _ => blobs.replace_with_upload(id, &digest),
            })?;
            // The upload's own name; its data lives on as the blob's.
            blobs.remove_upload(id)?;
            Ok(())
        })
        .await
    }

    async fn discard_upload_file(&self, id: Uuid) {
        let blobs = Arc::clone(&self.blobs);
        let removed = blocking(move || blobs.remove_upload(id).map_err(RegistryError::from)).await;
        if let Err(e) = removed {
            tracing::warn!(upload = %id, error = %e, "could not remove upload data; gc will");
        }
    }
}

fn check_start(claim: &ChunkClaim, size: u64) -> Result<(), RegistryError> {
    match claim.start {
        Some(start) if start != size => Err(RegistryError::UploadOutOfOrder {
            expected: size,
            got: start,
        }),
        _ => Ok(()),
    }
}
