//! [`MetadataStore`] on SQLite. All of the registry's SQL lives in this
//! module: `blobs` (blobs, links, upload sessions), `manifests` (manifests,
//! tags, referrers, catalog), `upkeep` (gc, verify, inventory), `accounts`
//! (users, grants, access tokens), `schema` (migrations). This file holds
//! the connections and the trait impl.
//!

//! One write connection, guarded by a mutex, takes `BEGIN IMMEDIATE` for
//! every change: SQLite's write lock is the one lock shared by every process
//! on a store root (a `serve` and an admin command alike). Reads use a small
//! pool of connections, which WAL mode lets run beside the writer. Commits
//! are durable (`synchronous = FULL`): what the registry acknowledged
//! survives a power cut. The one exception is an upload chunk's size (see
//! `SqliteMetadata::write_unsynced`).

mod accounts;
mod blobs;
mod manifests;
mod schema;
mod upkeep;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use uuid::Uuid;

use super::{
    BlobRow, BlobState, DanglingReference, GcClaim, GcMarks, GcPolicy, ManifestRecord, ManifestRef,
    MetadataError, MetadataStore, NewManifest, Page, RepositorySummary, StoredManifest,
    UploadRecord,
};
use crate::oci::{Descriptor, Digest, RepoName, Tag};
use crate::storage::StorageError;
use schema::db;

pub use schema::CURRENT_VERSION as SCHEMA_VERSION;

/// Readers kept open between requests; more are opened under load.
const IDLE_READERS: usize = 16;
/// Page cache of each reader, in KiB (SQLite's default is 2000). Every
/// reader fills its own, so the default let 16 readers of a store with
/// 100,000 tags hold 32 MiB between them; the pages a request needs beyond
/// the B-trees' upper levels come from the operating system's cache anyway.
const READER_CACHE_KIB: i64 = 512;
/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SqliteMetadata {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// A reader for questions asked on async threads; see `read_at_once`.
    at_once: Mutex<Option<Connection>>,
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn open_connection(path: &Path) -> Result<Connection, MetadataError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(db)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
        .map_err(db)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
    keep_wal_files(&conn)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Keeps the write-ahead log and its shared index (`-wal`, `-shm`) when
/// the last connection closes; SQLite deletes them otherwise. Opening a
/// store without them must create the index (32 KiB), which a full disk
/// refuses ("disk I/O error"): a registry restarted on a disk that filled
/// up while it was down could not start at all, even to serve pulls. With
/// the files kept, it opens, reads, and answers writes with "storage full".
fn keep_wal_files(conn: &Connection) -> Result<(), MetadataError> {
    let mut keep: std::ffi::c_int = 1;
    // SAFETY: the handle is this open connection's, used on this thread for
    // the length of the call; SQLITE_FCNTL_PERSIST_WAL reads and writes the
    // int behind the pointer, which lives until the call returns.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut keep as *mut std::ffi::c_int).cast(),
        )
    };
    if rc == rusqlite::ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(MetadataError::Database(format!(
            "cannot keep the write-ahead log files (SQLite error {rc})"
        )))
    }
}

/// A connection for reading, with a small page cache of its own.
fn open_reader(path: &Path) -> Result<Connection, MetadataError> {
    let conn = open_connection(path)?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)
        .map_err(db)?;
    Ok(conn)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave a connection half-used: transactions
    // roll back on drop. So a poisoned lock is still safe to take.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` in a `BEGIN IMMEDIATE` transaction on `conn`, then commits it
/// (or rolls it back when `commit` is false); an error rolls back.
fn immediate_transaction<T>(
    conn: &mut Connection,
    commit: bool,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, MetadataError>,
) -> Result<T, MetadataError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let out = f(&tx)?;
    if commit {
        tx.commit().map_err(db)?;
    } else {
        tx.rollback().map_err(db)?;
    }
    Ok(out)
}

/// Reads the `state` column of the blobs table.
fn parse_state(text: &str) -> Result<BlobState, MetadataError> {
    match text {
        "present" => Ok(BlobState::Present),
        "deleting" => Ok(BlobState::Deleting),
        "corrupt" => Ok(BlobState::Corrupt),
        other => Err(MetadataError::Database(format!(
            "unknown blob state {other:?}"
        ))),
    }
}

fn parse_digest(text: String) -> Result<Digest, MetadataError> {
    text.parse()
        .map_err(|e| MetadataError::Database(format!("stored digest is malformed: {e}")))
}

impl SqliteMetadata {
    /// Opens (creating and migrating when needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteMetadata, MetadataError> {
        let mut writer = open_connection(path)?;
        schema::migrate(&mut writer)?;
        Ok(SqliteMetadata {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            at_once: Mutex::new(None),
        })
    }

    /// The file whose lock is the claim on garbage collection
    /// (`artispace.gc-lock` beside `artispace.db`).
    fn gc_lock_path(&self) -> PathBuf {
        self.path.with_extension("gc-lock")
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`); an error rolls
    /// everything back.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        immediate_transaction(&mut lock(&self.writer), true, f)
    }

    /// Like [`Self::write`], but the commit is not fsynced (`synchronous =
    /// NORMAL` for this one transaction). WAL commits stay in order, so it
    /// survives the process dying and becomes durable with the next synced
    /// commit; only a power cut before that can undo it. For records that
    /// describe data which is itself not synced yet (an upload's chunks).
    fn write_unsynced<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let mut conn = lock(&self.writer);
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        let outcome = immediate_transaction(&mut conn, true, f);
        // Every other commit on this connection must stay synced.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        outcome
    }

    /// Like [`Self::write`], but rolls back instead of committing when
    /// `commit` is false (for dry runs).
    fn write_or_rollback<T>(
        &self,
        commit: bool,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        immediate_transaction(&mut lock(&self.writer), commit, f)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let conn = match lock(&self.readers).pop() {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let out = f(&conn);
        let mut idle = lock(&self.readers);
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// Runs `f` on the async thread that asks, when that cannot wait: on a
    /// reader of its own, taken only if free, opened beforehand by
    /// [`Self::prepare_at_once_reader`]. `None` when it would wait; the
    /// caller then takes the blocking path.
    ///
    /// A WAL reader never waits for a writer, and with no busy timeout it
    /// fails instead of waiting in the rare cases that would make it (a
    /// checkpoint resetting the log, another process recovering it). For
    /// small, hot questions only: the pages they read are in memory, so they
    /// cost microseconds, less than the trip to a blocking thread.
    fn read_at_once<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let conn = self.at_once.try_lock().ok()?;
        f(conn.as_ref()?).ok()
    }

    /// Opens the reader of [`Self::read_at_once`] if it is not yet; called
    /// on blocking threads, as opening reads the disk.
    fn prepare_at_once_reader(&self) {
        let mut conn = lock(&self.at_once);
        if conn.is_none() {
            *conn = open_reader(&self.path)
                .and_then(|c| c.busy_timeout(Duration::ZERO).map_err(db).map(|()| c))
                .ok();
        }
    }
}

/// The id of `repo`, creating the repository when it does not exist yet.
fn ensure_repository(
    tx: &Transaction<'_>,
    repo: &RepoName,
    now: i64,
) -> Result<i64, MetadataError> {
    tx.prepare_cached(
        "INSERT INTO repositories (name, created_at) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
    )
    .and_then(|mut stmt| stmt.query_row(params![repo.as_str(), now], |r| r.get(0)))
    .map_err(db)
}

fn repository_id(conn: &Connection, repo: &RepoName) -> Result<Option<i64>, MetadataError> {
    conn.prepare_cached("SELECT id FROM repositories WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([repo.as_str()], |r| r.get(0)).optional())
        .map_err(db)
}

fn is_linked_and_present(
    conn: &Connection,
    repo_id: i64,
    digest: &Digest,
) -> Result<bool, MetadataError> {
    conn.prepare_cached(
        "SELECT 1 FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
         WHERE rb.repository_id = ?1 AND rb.digest = ?2 AND b.state = 'present'",
    )
    .and_then(|mut stmt| stmt.exists(params![repo_id, digest.to_string()]))
    .map_err(db)
}

fn link_blob(
    tx: &Transaction<'_>,
    repo_id: i64,
    digest: &Digest,
    now: i64,
) -> Result<(), MetadataError> {
    tx.prepare_cached(
        "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at",
    )
    .and_then(|mut stmt| stmt.execute(params![repo_id, digest.to_string(), now]))
    .map_err(db)?;
    Ok(())
}

fn page_of(mut items: Vec<String>, limit: usize) -> Page {
    let more = items.len() > limit;
    items.truncate(limit);
    Page { items, more }
}

/// SQLite's LIMIT for "at most `limit`, plus one to tell whether more follow".
fn limit_plus_one(limit: usize) -> i64 {
    i64::try_from(limit)
        .unwrap_or(i64::MAX - 1)
        .saturating_add(1)
}

impl MetadataStore for SqliteMetadata {
    fn repository_exists(&self, repo: &RepoName) -> Result<bool, MetadataError> {
        self.read(|conn| Ok(repository_id(conn, repo)?.is_some()))
    }

    fn list_repositories(&self, after: Option<&str>, limit: usize) -> Result<Page, MetadataError> {
        self.read(|conn| manifests::list_repositories(conn, after, limit))
    }

    fn linked_blob_size(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetadataError> {
        self.read(|conn| blobs::linked_blob_size(conn, repo, digest))
    }

    fn commit_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        upload: Uuid,
        ensure_file: &mut dyn FnMut(Option<BlobState>) -> Result<(), StorageError>,
    ) -> Result<(), MetadataError> {
        self.write(|tx| blobs::commit_blob(tx, repo, digest, size, upload, ensure_file))
    }

    fn mount_blob(
        &self,
        repo: &RepoName,
        from: &RepoName,
        digest: &Digest,
    ) -> Result<bool, MetadataError> {
        self.write(|tx| blobs::mount_blob(tx, repo, from, digest))
    }

    fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetadataError> {
        self.write(|tx| blobs::unlink_blob(tx, repo, digest))
    }

    fn create_upload(&self, id: Uuid, repo: &RepoName) -> Result<UploadRecord, MetadataError> {
        self.write(|tx| blobs::create_upload(tx, id, repo))
    }

    fn upload(&self, id: Uuid) -> Result<Option<UploadRecord>, MetadataError> {
        self.read(|conn| blobs::upload(conn, id))
    }

    fn set_upload_size(&self, id: Uuid, size: u64) -> Result<(), MetadataError> {
        self.write_unsynced(|tx| blobs::set_upload_size(tx, id, size))
    }

    fn delete_upload(&self, id: Uuid) -> Result<bool, MetadataError> {
        self.write(|tx| blobs::delete_upload(tx, id))
    }

    fn expired_uploads(&self, updated_before: i64) -> Result<Vec<Uuid>, MetadataError> {
        self.read(|conn| blobs::expired_uploads(conn, updated_before))
    }

    fn put_manifest(&self, m: NewManifest<'_>) -> Result<(), MetadataError> {
        self.write(|tx| manifests::put(tx, m))
    }

    fn manifest_by_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> Result<Option<StoredManifest>, MetadataError> {
        self.read(|conn| manifests::by_tag(conn, repo, tag))
    }

    fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>, MetadataError> {
        self.read(|conn| manifests::by_digest(conn, repo, digest))
    }

    fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetadataError> {
        self.write(|tx| manifests::delete(tx, repo, digest))
    }

    fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool, MetadataError> {
        self.write(|tx| manifests::delete_tag(tx, repo, tag))
    }

    fn list_tags(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, MetadataError> {
        self.read(|conn| manifests::list_tags(conn, repo, after, limit))
    }

    fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, MetadataError> {
        self.read(|conn| manifests::referrers(conn, repo, subject, artifact_type))
    }

    fn claim_gc(&self, wait: bool) -> Result<Option<GcClaim>, MetadataError> {
        upkeep::claim_gc(&self.gc_lock_path(), wait)
    }

    fn gc_claimed(&self) -> Result<bool, MetadataError> {
        upkeep::gc_claimed(&self.gc_lock_path())
    }

    fn mark_garbage(&self, policy: &GcPolicy) -> Result<GcMarks, MetadataError> {
        self.write_or_rollback(!policy.dry_run, |tx| upkeep::mark_garbage(tx, policy))
    }

    fn blobs(&self) -> Result<Vec<BlobRow>, MetadataError> {
        self.read(upkeep::blobs)
    }

    fn sweep_blobs(
        &self,
        digests: &[Digest],
        remove_file: &mut dyn FnMut(&Digest) -> Result<(), StorageError>,
    ) -> Result<usize, MetadataError> {
        self.write(|tx| upkeep::sweep_blobs(tx, digests, remove_file))
    }

    fn remove_unrecorded_files(
        &self,
        digests: &[Digest],
        remove_file: &mut dyn FnMut(&Digest) -> Result<(), StorageError>,
    ) -> Result<usize, MetadataError> {
        self.write(|tx| upkeep::remove_unrecorded_files(tx, digests, remove_file))
    }

    fn set_blob_state(&self, digest: &Digest, state: BlobState) -> Result<(), MetadataError> {
        self.write(|tx| upkeep::set_blob_state(tx, digest, state))
    }

    fn blob_users(&self, digest: &Digest) -> Result<Vec<ManifestRef>, MetadataError> {
        self.read(|conn| upkeep::blob_users(conn, digest))
    }

    fn manifests_after(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<ManifestRecord>, MetadataError> {
        self.read(|conn| upkeep::manifests_after(conn, after_id, limit))
    }

    fn repository_manifests(&self, repo: &RepoName) -> Result<Vec<ManifestRecord>, MetadataError> {
        self.read(|conn| upkeep::repository_manifests(conn, repo))
    }

    fn dangling_references(&self) -> Result<Vec<DanglingReference>, MetadataError> {
        self.read(upkeep::dangling_references)
    }

    fn remove_dangling_tags(&self) -> Result<usize, MetadataError> {
        self.write(upkeep::remove_dangling_tags)
    }

    fn integrity_problems(&self) -> Result<Vec<String>, MetadataError> {
        self.read(upkeep::integrity_problems)
    }

    fn repository_summaries(&self) -> Result<Vec<RepositorySummary>, MetadataError> {
        self.read(upkeep::repository_summaries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_size(conn: &Connection) -> Result<i64, MetadataError> {
        conn.pragma_query_value(None, "cache_size", |r| r.get(0))
            .map_err(db)
    }

    #[test]
    fn readers_keep_a_small_page_cache_and_the_writer_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetadata::open(&dir.path().join("db")).unwrap();
        assert_eq!(store.read(cache_size).unwrap(), -READER_CACHE_KIB);
        store.prepare_at_once_reader();
        let at_once =
            store.read_at_once(|c| c.pragma_query_value(None, "cache_size", |r| r.get(0)));
        assert_eq!(at_once, Some(-READER_CACHE_KIB));
        let writer = cache_size(&lock(&store.writer)).unwrap();
        assert!(writer < -READER_CACHE_KIB, "writer cache {writer}");
    }

    /// A database that cannot grow (here capped with `max_page_count`, as
    /// a full disk would stop it) fails its writes as "storage full", the
    /// error a full disk gives blob data, and keeps what it had.
    #[test]
    fn a_database_that_cannot_grow_reports_storage_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetadata::open(&dir.path().join("db")).unwrap();
        let repo: RepoName = "full/repo".parse().unwrap();
        let kept = Uuid::new_v4();
        store.create_upload(kept, &repo).unwrap();
        {
            let writer = lock(&store.writer);
            let pages: i64 = writer
                .pragma_query_value(None, "page_count", |r| r.get(0))
                .unwrap();
            writer.pragma_update(None, "max_page_count", pages).unwrap();
        }
        let failed = (0..10_000)
            .find_map(|_| store.create_upload(Uuid::new_v4(), &repo).err())
            .expect("a capped database fills up");
        assert!(
            matches!(failed, MetadataError::Storage(StorageError::Full(_))),
            "{failed:?}"
        );
        assert!(store.upload(kept).unwrap().is_some());
    }
}
