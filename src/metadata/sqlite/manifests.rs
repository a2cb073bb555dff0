//! SQL for manifests, tags, referrers and the repository catalog.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::schema::db;
use super::{
    ensure_repository, is_linked_and_present, limit_plus_one, now_millis, page_of, parse_digest,
};
use crate::metadata::{MetadataError, NewManifest, Page, StoredManifest};
use crate::oci::{Descriptor, Digest, RepoName, Tag};

pub(super) fn list_repositories(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Page, MetadataError> {
    let mut stmt = conn
        .prepare_cached("SELECT name FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2")
        .map_err(db)?;
    let items = stmt
        .query_map(params![after.unwrap_or(""), limit_plus_one(limit)], |r| {
            r.get(0)
        })
        .and_then(Iterator::collect)
        .map_err(db)?;
    Ok(page_of(items, limit))
}

pub(super) fn put(tx: &Transaction<'_>, m: NewManifest<'_>) -> Result<(), MetadataError> {
    let now = now_millis();
    let annotations = match &m.parsed.annotations {
        Some(a) => {
            Some(serde_json::to_string(a).map_err(|e| MetadataError::Database(e.to_string()))?)
        }
        None => None,
    };
    let repo_id = ensure_repository(tx, m.repo, now)?;
    if let Some(condition) = m.condition {
        let current = match m.tag {
            Some(tag) => tagged_digest(tx, repo_id, tag)?,
            None => tx
                .prepare_cached("SELECT 1 FROM manifests WHERE repository_id = ?1 AND digest = ?2")
                .and_then(|mut stmt| stmt.exists(params![repo_id, m.digest.to_string()]))
                .map_err(db)?
                .then(|| m.digest.clone()),
        };
        if !condition.holds(current.as_ref()) {
            return Err(MetadataError::ConditionFailed { current });
        }
    }
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
        tx.prepare_cached(
            "INSERT OR IGNORE INTO manifest_blobs (manifest_id, digest) VALUES (?1, ?2)",
        )
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
}

/// The digest of the manifest `tag` names in the repository, if any.
fn tagged_digest(
    tx: &Transaction<'_>,
    repo_id: i64,
    tag: &Tag,
) -> Result<Option<Digest>, MetadataError> {
    let digest: Option<String> = tx
        .prepare_cached(
            "SELECT m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
             WHERE t.repository_id = ?1 AND t.name = ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![repo_id, tag.as_str()], |r| r.get(0))
                .optional()
        })
        .map_err(db)?;
    digest.map(parse_digest).transpose()
}

pub(super) fn by_tag(
    conn: &Connection,
    repo: &RepoName,
    tag: &Tag,
) -> Result<Option<StoredManifest>, MetadataError> {
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
}

pub(super) fn by_digest(
    conn: &Connection,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Option<StoredManifest>, MetadataError> {
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
}

pub(super) fn delete(
    tx: &Transaction<'_>,
    repo: &RepoName,
    digest: &Digest,
) -> Result<bool, MetadataError> {
    // Tags, blob references and child lists go with it (ON DELETE CASCADE).
    tx.prepare_cached(
        "DELETE FROM manifests
         WHERE repository_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2",
    )
    .and_then(|mut stmt| stmt.execute(params![repo.as_str(), digest.to_string()]))
    .map(|n| n > 0)
    .map_err(db)
}

pub(super) fn delete_tag(
    tx: &Transaction<'_>,
    repo: &RepoName,
    tag: &Tag,
) -> Result<bool, MetadataError> {
    tx.prepare_cached(
        "DELETE FROM tags
         WHERE repository_id = (SELECT id FROM repositories WHERE name = ?1) AND name = ?2",
    )
    .and_then(|mut stmt| stmt.execute(params![repo.as_str(), tag.as_str()]))
    .map(|n| n > 0)
    .map_err(db)
}

pub(super) fn list_tags(
    conn: &Connection,
    repo: &RepoName,
    after: Option<&str>,
    limit: usize,
) -> Result<Page, MetadataError> {
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
}

pub(super) fn referrers(
    conn: &Connection,
    repo: &RepoName,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Vec<Descriptor>, MetadataError> {
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
        .query_map(
            params![repo.as_str(), subject.to_string(), artifact_type],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .and_then(Iterator::collect)
        .map_err(db)?;
    rows.into_iter()
        .map(|(media_type, digest, size, artifact_type, annotations)| {
            let annotations = annotations
                .map(|a| serde_json::from_str(&a))
                .transpose()
                .map_err(|e| {
                    MetadataError::Database(format!("stored annotations are malformed: {e}"))
                })?;
            Ok(Descriptor {
                media_type,
                digest: parse_digest(digest)?,
                size: size as u64,
                artifact_type,
                annotations,
            })
        })
        .collect()
}
