//! SQL for blobs, their links to repositories, and upload sessions.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use uuid::Uuid;

use super::schema::db;
use super::{
    ensure_repository, is_linked_and_present, link_blob, now_millis, parse_state, repository_id,
};
use crate::metadata::{BlobState, MetadataError, UploadRecord};
use crate::oci::{Digest, RepoName};
use crate::storage::StorageError;

pub(super) fn linked_blob_size(
    conn: &Connection,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Option<u64>, MetadataError> {
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
}

pub(super) fn commit_blob(
    tx: &Transaction<'_>,
    repo: &RepoName,
    digest: &Digest,
    size: u64,
    upload: Uuid,
    ensure_file: &mut dyn FnMut(Option<BlobState>) -> Result<(), StorageError>,
) -> Result<(), MetadataError> {
    let now = now_millis();
    let repo_id = ensure_repository(tx, repo, now)?;
    let state: Option<String> = tx
        .prepare_cached("SELECT state FROM blobs WHERE digest = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([digest.to_string()], |r| r.get(0))
                .optional()
        })
        .map_err(db)?;
    ensure_file(state.as_deref().map(parse_state).transpose()?)?;
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
    Ok(())
}

pub(super) fn mount_blob(
    tx: &Transaction<'_>,
    repo: &RepoName,
    from: &RepoName,
    digest: &Digest,
) -> Result<bool, MetadataError> {
    let now = now_millis();
    let Some(from_id) = repository_id(tx, from)? else {
        return Ok(false);
    };
    if !is_linked_and_present(tx, from_id, digest)? {
        return Ok(false);
    }
    let repo_id = ensure_repository(tx, repo, now)?;
    link_blob(tx, repo_id, digest, now)?;
    Ok(true)
}

pub(super) fn unlink_blob(
    tx: &Transaction<'_>,
    repo: &RepoName,
    digest: &Digest,
) -> Result<bool, MetadataError> {
    tx.prepare_cached(
        "DELETE FROM repository_blobs
         WHERE repository_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2",
    )
    .and_then(|mut stmt| stmt.execute(params![repo.as_str(), digest.to_string()]))
    .map(|n| n > 0)
    .map_err(db)
}

pub(super) fn create_upload(
    tx: &Transaction<'_>,
    id: Uuid,
    repo: &RepoName,
) -> Result<UploadRecord, MetadataError> {
    let now = now_millis();
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
}

pub(super) fn upload(conn: &Connection, id: Uuid) -> Result<Option<UploadRecord>, MetadataError> {
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
    let repo = name
        .parse()
        .map_err(|e| MetadataError::Database(format!("stored repository name is invalid: {e}")))?;
    Ok(Some(UploadRecord {
        id,
        repo,
        size: size as u64,
        started_at,
        updated_at,
    }))
}

pub(super) fn set_upload_size(
    tx: &Transaction<'_>,
    id: Uuid,
    size: u64,
) -> Result<(), MetadataError> {
    let now = now_millis();
    tx.prepare_cached("UPDATE uploads SET size = ?2, updated_at = ?3 WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute(params![id.to_string(), size as i64, now]))
        .map_err(db)?;
    Ok(())
}

pub(super) fn delete_upload(tx: &Transaction<'_>, id: Uuid) -> Result<bool, MetadataError> {
    tx.prepare_cached("DELETE FROM uploads WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute([id.to_string()]))
        .map(|n| n > 0)
        .map_err(db)
}

pub(super) fn expired_uploads(
    conn: &Connection,
    updated_before: i64,
) -> Result<Vec<Uuid>, MetadataError> {
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
}
