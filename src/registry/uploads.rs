//! Upload sessions: blobs arriving in one request or in many chunks.
//!
//! Bytes are hashed as they stream to the session's file, which a blocking
//! thread writes (see `write_chunk` for which thread hashes); nothing is
//! held whole in memory. A session is a metadata row (its acknowledged
//! size) plus a file, so it survives a restart. The running hash lives in
//! memory beside it; after a restart, the first request on the session
//! rebuilds it from the file.
//!
//! A request that fails leaves the session as it was: the row's size is
//! only raised after the chunk is written, and bytes past it are cut off by
//! the next append.
//!
//! All of a request's blocking work (checking the session, writing,
//! syncing, verifying and recording) runs in order on the one blocking
//! thread that writes its bytes, while the connection's task feeds it the
//! body. Every hand-off between threads costs a wake-up, and on a busy
//! machine a wait for a core (0.1 to 0.6 ms each, measured during a push
//! on two cores): a chunk pays them on every request, a monolithic push
//! once.
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
use crate::metadata::{BlobState, MetadataStore, UploadRecord};
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

/// How a request on an upload begins. `hasher` is the hash of the bytes
/// before it as this process last saw them; `check` runs first on the
/// thread that writes the request's bytes and gives the offset to write at,
/// with a hash rebuilt from the file when `hasher` does not describe the
/// bytes before that offset (after a restart).
struct Resume<C: ResumeCheck> {
    hasher: Hasher,
    check: C,
}

/// The check of a [`Resume`]: the offset, and a rebuilt hash if needed.
trait ResumeCheck:
    FnOnce(&UploadStores) -> Result<(u64, Option<Hasher>), RegistryError> + Send + 'static
{
}

impl<C> ResumeCheck for C where
    C: FnOnce(&UploadStores) -> Result<(u64, Option<Hasher>), RegistryError> + Send + 'static
{
}

/// What the connection's task sends the thread writing its upload.
enum Feed {
    /// Bytes to write, with their share of the write budget.
    Bytes(Bytes, OwnedSemaphorePermit),
    /// The body ended; the task's hash of the session's bytes up to its
    /// end, if the task hashed them.
    End(Option<Hasher>),
    /// Reading the body failed: stop without syncing.
    BodyFailed,
}

/// Largest announced chunk whose bytes the connection's task hashes (see
/// [`Registry::write_chunk`]): twice the 8 MiB chunks measured, well below
/// the 64 MiB whole blobs for which hashing on the task cost more CPU.
const TASK_HASHED_CHUNK: u64 = 16 << 20;

/// Bytes hashed between two yields to the executor when the connection's
/// task hashes a chunk: about 130 µs of sha256 on the machines we measure
/// on, so requests sharing the worker thread are not held up for long.
const HASH_SLICE: usize = 256 * 1024;

/// Hashes `bytes` into `hasher`, yielding between slices.
async fn hash_on_task(hasher: &mut Hasher, bytes: &[u8]) {
    let mut slices = bytes.chunks(HASH_SLICE).peekable();
    while let Some(slice) = slices.next() {
        hasher.update(slice);
        if slices.peek().is_some() {
            tokio::task::yield_now().await;
        }
    }
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

/// What an upload's blocking work reaches, owned so that it can move to the
/// thread that writes the upload.
struct UploadStores {
    metadata: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    upload_expiry: Duration,
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
        let stores = self.upload_stores();
        let repo = repo.clone();
        let record = blocking(move || {
            let record = stores.live_upload(&repo, id)?;
            // Report only bytes the file still holds: after a power cut it
            // can hold fewer than were acknowledged (chunks are not synced),
            // and the client should start over now rather than at its next
            // PATCH.
            if record.size > 0 {
                let on_disk = stores.blobs.upload_size(id)?.unwrap_or(0);
                if on_disk < record.size {
                    return Err(lost_upload_data(id, on_disk, record.size));
                }
            }
            Ok(record)
        })
        .await?;
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
        let resume = self.resume_session(repo, id, claim, state.hash.clone());
        let (hasher, size) = self
            .write_chunk(
                id,
                claim,
                body,
                Ack::Written,
                resume,
                move |stores, hasher, size| {
                    // Acknowledged only once the new size is recorded.
                    stores.metadata.set_upload_size(id, size)?;
                    Ok((hasher, size))
                },
            )
            .await?;
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
        let state = session.lock().await;
        let resume = self.resume_session(repo, id, claim, state.hash.clone());
        let (repo, digest) = (repo.clone(), digest.clone());
        self.write_chunk(
            id,
            claim,
            body,
            Ack::Durable,
            resume,
            move |stores, hasher, size| {
                stores.check_digest(id, size, &digest, hasher)?;
                stores.commit_blob(&repo, &digest, size, id)
            },
        )
        .await?;
        drop(state);
        self.forget_session(id);
        Ok(())
    }

    /// How a request on session `id` begins. Its check, run on the writing
    /// thread, makes sure that the session is live and that the chunk
    /// starts where the acknowledged bytes end. The request continues
    /// `known`, the hash this process kept (of the session's first `.0`
    /// bytes); if the session holds another number of bytes (after a
    /// restart), the hash is rebuilt from the file. Nothing is acknowledged
    /// before the request succeeds: on any failure the session's record
    /// still describes the bytes before this chunk, and the next append cuts
    /// off what was written.
    fn resume_session(
        &self,
        repo: &RepoName,
        id: Uuid,
        claim: ChunkClaim,
        known: Option<(u64, Hasher)>,
    ) -> Resume<impl ResumeCheck> {
        let (hashed, hasher) = known.unwrap_or_else(|| (0, Hasher::new(Algorithm::Sha256)));
        let repo = repo.clone();
        let check = move |stores: &UploadStores| {
            let record = stores.live_upload(&repo, id)?;
            check_start(&claim, record.size)?;
            let rebuilt = match record.size {
                size if size == hashed => None,
                0 => Some(Hasher::new(Algorithm::Sha256)),
                size => Some(stores.rehash_upload(id, size, Algorithm::Sha256)?),
            };
            Ok((record.size, rebuilt))
        };
        Resume { hasher, check }
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
        let algorithm = digest.algorithm();
        let (repo, digest) = (repo.clone(), digest.clone());
        let outcome = self
            .write_chunk(
                id,
                claim,
                body,
                Ack::Durable,
                Resume {
                    hasher: Hasher::new(algorithm),
                    check: |_: &UploadStores| Ok((0, None)),
                },
                move |stores, hasher, size| {
                    stores.check_digest(id, size, &digest, hasher)?;
                    stores.commit_blob(&repo, &digest, size, id)
                },
            )
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
        let stores = self.upload_stores();
        let repo = repo.clone();
        blocking(move || {
            stores.live_upload(&repo, id)?;
            stores.metadata.delete_upload(id)?;
            Ok(())
        })
        .await?;
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

    fn upload_stores(&self) -> UploadStores {
        UploadStores {
            metadata: Arc::clone(&self.metadata),
            blobs: Arc::clone(&self.blobs),
            upload_expiry: self.config.upload_expiry,
        }
    }

    /// Streams `body` to the data of upload `id` on one blocking thread,
    /// which first runs `resume.check` (giving the offset to write at) and,
    /// once the bytes are in the file ([`Ack::Written`]) or the whole file
    /// is synced ([`Ack::Durable`]), runs `end` with the hash and the new
    /// size.
    ///
    /// The bytes of a chunk of announced length up to [`TASK_HASHED_CHUNK`]
    /// are hashed on the connection's task as they arrive, continuing
    /// `resume.hasher`, while the writing thread writes them; all others
    /// (a completing request, a whole layer streamed as one PATCH) on the
    /// writing thread.
    /// When the check gives a rebuilt hash, the writing thread continues
    /// that one and `resume.hasher` is not used.
    async fn write_chunk<S, E, T>(
        &self,
        id: Uuid,
        claim: ChunkClaim,
        mut body: S,
        ack: Ack,
        resume: Resume<impl ResumeCheck>,
        end: impl FnOnce(&UploadStores, Hasher, u64) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
        T: Send + 'static,
    {
        // A chunk's 202 gates the client's next chunk, so a chunk's bytes
        // are hashed here as they arrive and the writing thread only
        // writes: the answer then follows the last byte by one write
        // instead of the writer's backlog of hashing (8 MiB chunked pushes
        // at 0.89-0.93 of monolithic speed against 0.82-0.84, medians of 6
        // and 15 alternated runs, no more CPU per GB). A request that
        // completes a blob, or streams a whole layer in one PATCH (as
        // Docker and containerd do), pays that backlog once per blob, and a
        // whole blob hashed on the writing thread costs less CPU per GB
        // (5-11% in alternated runs: the bytes are still in that thread's
        // cache when it writes them), so there it stays.
        let small_chunk = claim.length.is_some_and(|len| len <= TASK_HASHED_CHUNK);
        let Resume { hasher, check } = resume;
        let (mut task_hash, writer_hash) = if ack == Ack::Written && small_chunk {
            (Some(hasher), None)
        } else {
            (None, Some(hasher))
        };
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Feed>();
        let budget = Arc::new(Semaphore::new(WRITE_BUDGET));
        let stores = self.upload_stores();
        let writer = tokio::task::spawn_blocking(move || -> Result<T, RegistryError> {
            let (offset, rebuilt) = check(&stores)?;
            // A rebuilt hash means the task's started from the wrong place:
            // this thread hashes, and the task's is not used.
            let mut hash_here = rebuilt.or(writer_hash);
            let mut out = stores.blobs.append_to_upload(id, offset)?;
            if let Some(length) = claim.length {
                out.reserve(length)
                    .map_err(|e| StorageError::io("upload data", e))?;
            }
            let mut written = 0u64;
            let hashed_by_task = loop {
                match receiver.blocking_recv() {
                    Some(Feed::Bytes(bytes, _permit)) => {
                        if let Some(hasher) = &mut hash_here {
                            hasher.update(&bytes);
                        }
                        out.write_all(&bytes)
                            .map_err(|e| StorageError::io("upload data", e))?;
                        written += bytes.len() as u64;
                    }
                    Some(Feed::End(hasher)) => break hasher,
                    // The task is gone (its request was dropped): nothing
                    // is acknowledged.
                    None => {
                        return Err(RegistryError::BodyRead(
                            "the request ended before its body".into(),
                        ))
                    }
                    Some(Feed::BodyFailed) => {
                        return Err(RegistryError::BodyRead("the client stopped sending".into()))
                    }
                }
            };
            if let Some(length) = claim.length {
                if length != written {
                    return Err(RegistryError::SizeInvalid(format!(
                        "the request announced {length} bytes but sent {written}"
                    )));
                }
            }
            match ack {
                Ack::Written => out.flush(),
                Ack::Durable => out.sync(),
            }
            .map_err(|e| StorageError::io("upload data", e))?;
            drop(out);
            let hasher = hash_here.or(hashed_by_task).ok_or_else(|| {
                RegistryError::Internal("an upload's bytes were not hashed".into())
            })?;
            end(&stores, hasher, offset + written)
        });

        let mut body_error = None;
        loop {
            let frame = tokio::select! {
                frame = body.next() => frame,
                // The writer stopped early (the session is unknown, or no
                // space for the announced length): answer now, not after
                // the client's next bytes. Its error is reported below.
                () = sender.closed() => break,
            };
            let Some(frame) = frame else {
                // Fails only if the writer already failed; its error is
                // reported below.
                let _ = sender.send(Feed::End(task_hash));
                break;
            };
            let bytes = match frame {
                Ok(bytes) => bytes,
                Err(e) => {
                    body_error = Some(e.to_string());
                    let _ = sender.send(Feed::BodyFailed);
                    break;
                }
            };
            let share = u32::try_from(bytes.len().min(WRITE_BUDGET)).unwrap_or(u32::MAX);
            let Ok(permit) = Arc::clone(&budget).acquire_many_owned(share).await else {
                break;
            };
            // Written on the writing thread; a chunk is hashed here meanwhile.
            if sender.send(Feed::Bytes(bytes.clone(), permit)).is_err() {
                break;
            }
            if let Some(hasher) = &mut task_hash {
                hash_on_task(hasher, &bytes).await;
            }
        }

        drop(sender);
        let outcome = writer
            .await
            .map_err(|e| RegistryError::Internal(format!("upload writer failed: {e}")))?;
        match body_error {
            Some(e) => Err(RegistryError::BodyRead(e)),
            None => outcome,
        }
    }

    async fn discard_upload_file(&self, id: Uuid) {
        let blobs = Arc::clone(&self.blobs);
        let removed = blocking(move || blobs.remove_upload(id).map_err(RegistryError::from)).await;
        if let Err(e) = removed {
            tracing::warn!(upload = %id, error = %e, "could not remove upload data; gc will");
        }
    }
}

/// The blocking steps of an upload, run on the thread that writes it.
impl UploadStores {
    /// The session's record, if it exists in `repo` and has not expired.
    fn live_upload(&self, repo: &RepoName, id: Uuid) -> Result<UploadRecord, RegistryError> {
        let record = self
            .metadata
            .upload(id)?
            .ok_or(RegistryError::UploadUnknown)?;
        let idle_ms = now_millis().saturating_sub(record.updated_at);
        let expired = u128::try_from(idle_ms).unwrap_or(0) > self.upload_expiry.as_millis();
        if record.repo != *repo || expired {
            return Err(RegistryError::UploadUnknown);
        }
        Ok(record)
    }

    /// Hashes the first `size` bytes of upload `id`'s data.
    fn rehash_upload(
        &self,
        id: Uuid,
        size: u64,
        algorithm: Algorithm,
    ) -> Result<Hasher, RegistryError> {
        let Some(reader) = self.blobs.read_upload(id)? else {
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
    }

    /// Checks that the session's data hashes to `digest`.
    fn check_digest(
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
            self.rehash_upload(id, size, digest.algorithm())?.finish()
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
    fn commit_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        id: Uuid,
    ) -> Result<(), RegistryError> {
        let blobs = &self.blobs;
        // The slow part (a new name and a folder sync) happens before the
        // write lock, and concurrent pushes overlap in it.
        let placed = blobs.place_upload(id, digest)?;
        self.metadata
            .commit_blob(repo, digest, size, id, &mut |state| match state {
                // Complete by invariant 1: nothing to do.
                Some(BlobState::Present) => Ok(()),
                // Ours is in place, unless a sweep took it since.
                _ if placed && blobs.blob_exists(digest)? => Ok(()),
                // A copy that is being collected, damaged, or of unknown
                // origin (no row): ours replaces it.
                _ => blobs.replace_with_upload(id, digest),
            })?;
        // The upload's own name; its data lives on as the blob's.
        blobs.remove_upload(id)?;
        Ok(())
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
