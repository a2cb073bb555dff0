//! [`MetadataStore`] on SQLite. All of the registry's SQL lives in this
//! module.
//!
//! One write connection, guarded by a mutex, takes `BEGIN IMMEDIATE` for
//! every change: SQLite's write lock is the one lock shared by every process
//! on a store root (a `serve` and an admin command alike). Reads use a small
//! pool of connections, which WAL mode lets run beside the writer. Commits
//! are durable (`synchronous = FULL`): what the registry acknowledged
//! survives a power cut.

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
    BlobRow, BlobState, DanglingReference, GcMarks, GcPolicy, ManifestRecord, ManifestRef,
    MetadataError, MetadataStore, NewManifest, Page, RepositorySummary, StoredManifest,
    UploadRecord,
};
use crate::oci::{Descriptor, Digest, RepoName, Tag};
use crate::storage::StorageError;
use schema::db;

pub use schema::CURRENT_VERSION as SCHEMA_VERSION;

/// Readers kept open between requests; more are opened under load.
const IDLE_READERS: usize = 16;
/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SqliteMetadata {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
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
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave a connection half-used: transactions
    // roll back on drop. So a poisoned lock is still safe to take.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
        })
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`); an error rolls
    /// everything back.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let out = f(&tx)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }

    /// Like [`Self::write`], but rolls back instead of committing when
    /// `commit` is false (for dry runs).
    fn write_or_rollback<T>(
        &self,
        commit: bool,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let mut conn = lock(&self.writer);
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

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let conn = match lock(&self.readers).pop() {
            Some(conn) => conn,
            None => open_connection(&self.path)?,
        };
        let out = f(&conn);
        let mut idle = lock(&self.readers);
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        out
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
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT name FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2",
                )
                .map_err(db)?;
            let items = stmt
                .query_map(params![after.unwrap_or(""), limit_plus_one(limit)], |r| {
                    r.get(0)
                })
                .and_then(Iterator::collect)
                .map_err(db)?;
            Ok(page_of(items, limit))
        })
    }

    fn linked_blob_size(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetadataError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT b.size FROM repositories r
                 JOIN repository_blobs rb ON rb.repository_id = r.id
                 JOIN blobs b ON b.digest = rb.digest
                 WHERE r.name = ?1 AND rb.digest = ?2 AND b.state = 'present'",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![repo.as_str(), digest.to_string()], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
            })
            .map(|size| size.map(|s| s as u64))
            .map_err(db)
        })
    }

    fn commit_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        upload: Uuid,
        move_into_place: &mut dyn FnMut() -> Result<(), StorageError>,
    ) -> Result<bool, MetadataError> {
        let now = now_millis();
        self.write(|tx| {
            let repo_id = ensure_repository(tx, repo, now)?;
            let state: Option<String> = tx
                .prepare_cached("SELECT state FROM blobs WHERE digest = ?1")
                .and_then(|mut stmt| {
                    stmt.query_row([digest.to_string()], |r| r.get(0))
                        .optional()
                })
                .map_err(db)?;
            // A present copy is complete by invariant 1; anything else (no row,
            // a row being collected, a corrupt copy) gets our file.
            let moved = state.as_deref() != Some("present");
            if moved {
                move_into_place()?;
            }
            tx.prepare_cached(
                "INSERT INTO blobs (digest, size, state, created_at) VALUES (?1, ?2, 'present', ?3)
                 ON CONFLICT (digest) DO UPDATE SET state = 'present', size = excluded.size",
            )
            .and_then(|mut stmt| stmt.execute(params![digest.to_string(), size as i64, now]))
            .map_err(db)?;
            link_blob(tx, repo_id, digest, now)?;
            tx.prepare_cached("DELETE FROM uploads WHERE id = ?1")
                .and_then(|mut stmt| stmt.execute([upload.to_string()]))
                .map_err(db)?;
            Ok(moved)
        })
    }

    fn mount_blob(
        &self,
        repo: &RepoName,
        from: &RepoName,
        digest: &Digest,
    ) -> Result<bool, MetadataError> {
        let now = now_millis();
        self.write(|tx| {
            let Some(from_id) = repository_id(tx, from)? else {
                return Ok(false);
            };
            if !is_linked_and_present(tx, from_id, digest)? {
                return Ok(false);
            }
            let repo_id = ensure_repository(tx, repo, now)?;
            link_blob(tx, repo_id, digest, now)?;
            Ok(true)
        })
    }

    fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetadataError> {
        self.write(|tx| {
            tx.prepare_cached(
                "DELETE FROM repository_blobs
                 WHERE repository_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2",
            )
            .and_then(|mut stmt| stmt.execute(params![repo.as_str(), digest.to_string()]))
            .map(|n| n > 0)
            .map_err(db)
        })
    }

    fn create_upload(&self, id: Uuid, repo: &RepoName) -> Result<UploadRecord, MetadataError> {
        let now = now_millis();
        self.write(|tx| {
            let repo_id = ensure_repository(tx, repo, now)?;
            tx.prepare_cached(
                "INSERT INTO uploads (id, repository_id, size, started_at, updated_at) VALUES (?1, ?2, 0, ?3, ?3)",
            )
            .and_then(|mut stmt| stmt.execute(params![id.to_string(), repo_id, now]))
            .map_err(db)?;
            Ok(UploadRecord {
                id,
                repo: repo.clone(),
                size: 0,
                started_at: now,
                updated_at: now,
            })
        })
    }

    fn upload(&self, id: Uuid) -> Result<Option<UploadRecord>, MetadataError> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(
                    "SELECT r.name, u.size, u.started_at, u.updated_at
                     FROM uploads u JOIN repositories r ON r.id = u.repository_id WHERE u.id = ?1",
                )
                .and_then(|mut stmt| {
                    stmt.query_row([id.to_string()], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get(2)?,
                            r.get(3)?,
                        ))
                    })
                    .optional()
                })
                .map_err(db)?;
            let Some((name, size, started_at, updated_at)) = row else {
                return Ok(None);
            };
            let repo = name.parse().map_err(|e| {
                MetadataError::Database(format!("stored repository name is invalid: {e}"))
            })?;
            Ok(Some(UploadRecord {
                id,
                repo,
                size: size as u64,
                started_at,
                updated_at,
            }))
        })
    }

    fn set_upload_size(&self, id: Uuid, size: u64) -> Result<(), MetadataError> {
        let now = now_millis();
        self.write(|tx| {
            tx.prepare_cached("UPDATE uploads SET size = ?2, updated_at = ?3 WHERE id = ?1")
                .and_then(|mut stmt| stmt.execute(params![id.to_string(), size as i64, now]))
                .map_err(db)?;
            Ok(())
        })
    }

    fn delete_upload(&self, id: Uuid) -> Result<bool, MetadataError> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM uploads WHERE id = ?1")
                .and_then(|mut stmt| stmt.execute([id.to_string()]))
                .map(|n| n > 0)
                .map_err(db)
        })
    }

    fn expired_uploads(&self, updated_before: i64) -> Result<Vec<Uuid>, MetadataError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id FROM uploads WHERE updated_at < ?1")
                .map_err(db)?;
            let ids: Vec<String> = stmt
                .query_map([updated_before], |r| r.get(0))
                .and_then(Iterator::collect)
                .map_err(db)?;
            Ok(ids
                .iter()
                .filter_map(|id| Uuid::parse_str(id).ok())
                .collect())
        })
    }

    fn put_manifest(&self, m: NewManifest<'_>) -> Result<(), MetadataError> {
        let now = now_millis();
        let annotations = match &m.parsed.annotations {
            Some(a) => {
                Some(serde_json::to_string(a).map_err(|e| MetadataError::Database(e.to_string()))?)
            }
            None => None,
        };
        self.write(|tx| {
            let repo_id = ensure_repository(tx, m.repo, now)?;
            for blob in &m.parsed.blobs {
                if !is_linked_and_present(tx, repo_id, blob)? {
                    return Err(MetadataError::MissingBlob(blob.clone()));
                }
            }
            for child in &m.parsed.children {
                let present = tx
                    .prepare_cached("SELECT 1 FROM manifests WHERE repository_id = ?1 AND digest = ?2")
                    .and_then(|mut stmt| stmt.exists(params![repo_id, child.to_string()]))
                    .map_err(db)?;
                if !present {
                    return Err(MetadataError::MissingChild(child.clone()));
                }
            }
            // The same digest means the same bytes: pushing again only re-tags.
            let manifest_id: i64 = tx
                .prepare_cached(
                    "INSERT INTO manifests
                       (repository_id, digest, media_type, artifact_type, subject, annotations, size, content, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (repository_id, digest) DO UPDATE SET digest = excluded.digest
                     RETURNING id",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(
                        params![
                            repo_id,
                            m.digest.to_string(),
                            m.parsed.media_type,
                            m.parsed.artifact_type,
                            m.parsed.subject.as_ref().map(Digest::to_string),
                            annotations,
                            m.content.len() as i64,
                            m.content,
                            now
                        ],
                        |r| r.get(0),
                    )
                })
                .map_err(db)?;
            for blob in &m.parsed.blobs {
                tx.prepare_cached("INSERT OR IGNORE INTO manifest_blobs (manifest_id, digest) VALUES (?1, ?2)")
                    .and_then(|mut stmt| stmt.execute(params![manifest_id, blob.to_string()]))
                    .map_err(db)?;
            }
            for child in &m.parsed.children {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO manifest_children (manifest_id, child_digest) VALUES (?1, ?2)",
                )
                .and_then(|mut stmt| stmt.execute(params![manifest_id, child.to_string()]))
                .map_err(db)?;
            }
            if let Some(tag) = m.tag {
                tx.prepare_cached(
                    "INSERT INTO tags (repository_id, name, manifest_id, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (repository_id, name) DO UPDATE
                     SET manifest_id = excluded.manifest_id, updated_at = excluded.updated_at",
                )
                .and_then(|mut stmt| stmt.execute(params![repo_id, tag.as_str(), manifest_id, now]))
                .map_err(db)?;
            }
            Ok(())
        })
    }

    fn manifest_by_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> Result<Option<StoredManifest>, MetadataError> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(
                    "SELECT m.digest, m.media_type, m.content FROM repositories r
                     JOIN tags t ON t.repository_id = r.id
                     JOIN manifests m ON m.id = t.manifest_id
                     WHERE r.name = ?1 AND t.name = ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![repo.as_str(), tag.as_str()], |r| {
                        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()
                })
                .map_err(db)?;
            row.map(|(digest, media_type, content)| {
                Ok(StoredManifest {
                    digest: parse_digest(digest)?,
                    media_type,
                    content,
                })
            })
            .transpose()
        })
    }

    fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>, MetadataError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT m.media_type, m.content FROM repositories r
                 JOIN manifests m ON m.repository_id = r.id
                 WHERE r.name = ?1 AND m.digest = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![repo.as_str(), digest.to_string()], |r| {
                    Ok(StoredManifest {
                        digest: digest.clone(),
                        media_type: r.get(0)?,
                        content: r.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(db)
        })
    }

    fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetadataError> {
        self.write(|tx| {
            // Tags, blob references and child lists go with it (ON DELETE CASCADE).
            tx.prepare_cached(
                "DELETE FROM manifests
                 WHERE repository_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2",
            )
            .and_then(|mut stmt| stmt.execute(params![repo.as_str(), digest.to_string()]))
            .map(|n| n > 0)
            .map_err(db)
        })
    }

    fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool, MetadataError> {
        self.write(|tx| {
            tx.prepare_cached(
                "DELETE FROM tags
                 WHERE repository_id = (SELECT id FROM repositories WHERE name = ?1) AND name = ?2",
            )
            .and_then(|mut stmt| stmt.execute(params![repo.as_str(), tag.as_str()]))
            .map(|n| n > 0)
            .map_err(db)
        })
    }

    fn list_tags(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, MetadataError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT t.name FROM tags t
                     WHERE t.repository_id = (SELECT id FROM repositories WHERE name = ?1) AND t.name > ?2
                     ORDER BY t.name LIMIT ?3",
                )
                .map_err(db)?;
            let items = stmt
                .query_map(
                    params![repo.as_str(), after.unwrap_or(""), limit_plus_one(limit)],
                    |r| r.get(0),
                )
                .and_then(Iterator::collect)
                .map_err(db)?;
            Ok(page_of(items, limit))
        })
    }

    fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, MetadataError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT m.media_type, m.digest, m.size, m.artifact_type, m.annotations FROM manifests m
                     WHERE m.repository_id = (SELECT id FROM repositories WHERE name = ?1) AND m.subject = ?2
                       AND (?3 IS NULL OR m.artifact_type = ?3)
                     ORDER BY m.created_at, m.digest",
                )
                .map_err(db)?;
            type Row = (String, String, i64, Option<String>, Option<String>);
            let rows: Vec<Row> = stmt
                .query_map(params![repo.as_str(), subject.to_string(), artifact_type], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .and_then(Iterator::collect)
                .map_err(db)?;
            rows.into_iter()
                .map(|(media_type, digest, size, artifact_type, annotations)| {
                    let annotations = annotations
                        .map(|a| serde_json::from_str(&a))
                        .transpose()
                        .map_err(|e| MetadataError::Database(format!("stored annotations are malformed: {e}")))?;
                    Ok(Descriptor {
                        media_type,
                        digest: parse_digest(digest)?,
                        size: size as u64,
                        artifact_type,
                        annotations,
                    })
                })
                .collect()
        })
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
