//! `POST /v2/<name>/blobs/uploads/` and `GET|PATCH|PUT|DELETE
//! /v2/<name>/blobs/uploads/<id>`: monolithic, chunked and mounted uploads.

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_RANGE, LOCATION, RANGE};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use uuid::Uuid;

use super::error::{upload_range, ApiError, ErrorCode};
use super::reply::{Reply, DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID};
use super::AppState;
use crate::access::Caller;
use crate::oci::{Digest, RepoName};
use crate::registry::{ChunkClaim, UploadStatus};

#[derive(Debug, Default, Deserialize)]
pub struct UploadQuery {
    digest: Option<String>,
    mount: Option<String>,
    from: Option<String>,
}

fn parse_digest(text: &str) -> Result<Digest, ApiError> {
    Ok(text.parse()?)
}

fn session_reply(status: StatusCode, repo: &RepoName, upload: &UploadStatus) -> Reply {
    Reply::new(status)
        .header(LOCATION, format!("/v2/{repo}/blobs/uploads/{}", upload.id))
        .header(DOCKER_UPLOAD_UUID, upload.id)
        .header(RANGE, upload_range(upload.size))
        .header(CONTENT_LENGTH, 0)
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Reply {
    Reply::new(StatusCode::CREATED)
        .header(LOCATION, format!("/v2/{repo}/blobs/{digest}"))
        .header(DOCKER_CONTENT_DIGEST, digest)
        .header(CONTENT_LENGTH, 0)
}

/// Starts an upload: a session (202), a whole blob (`?digest=`, 201) or a
/// mount from another repository (`?mount=&from=`, 201 when possible).
pub async fn start(
    state: AppState,
    repo: RepoName,
    query: UploadQuery,
    headers: &HeaderMap,
    body: Body,
    caller: &Caller,
) -> Result<Reply, ApiError> {
    if let Some(mount) = &query.mount {
        let digest = parse_digest(mount)?;
        if let Some(from) = &query.from {
            let from: RepoName = from.parse()?;
            // Mounting reads `from`: only a caller who may pull it may mount
            // from it. Otherwise the mount quietly becomes a normal upload,
            // which tells nothing about what `from` holds.
            if caller.may_pull(&from) && state.registry.mount_blob(&repo, &from, &digest).await? {
                return Ok(blob_created(&repo, &digest));
            }
        }
        // Not mountable: the client uploads the blob in a normal session.
    } else if let Some(digest) = &query.digest {
        let digest = parse_digest(digest)?;
        let claim = ChunkClaim {
            start: None,
            length: content_length(headers)?,
        };
        state
            .registry
            .push_blob(&repo, &digest, claim, body.into_data_stream())
            .await?;
        return Ok(blob_created(&repo, &digest));
    }
    let upload = state.registry.start_upload(&repo).await?;
    Ok(session_reply(StatusCode::ACCEPTED, &repo, &upload))
}

pub async fn status(state: AppState, repo: RepoName, id: Uuid) -> Result<Reply, ApiError> {
    let upload = state.registry.upload_status(&repo, id).await?;
    Ok(session_reply(StatusCode::NO_CONTENT, &repo, &upload))
}

pub async fn append(
    state: AppState,
    repo: RepoName,
    id: Uuid,
    headers: &HeaderMap,
    body: Body,
) -> Result<Reply, ApiError> {
    let claim = chunk_claim(headers)?;
    let upload = state
        .registry
        .append_upload(&repo, id, claim, body.into_data_stream())
        .await?;
    Ok(session_reply(StatusCode::ACCEPTED, &repo, &upload))
}

pub async fn finish(
    state: AppState,
    repo: RepoName,
    id: Uuid,
    query: UploadQuery,
    headers: &HeaderMap,
    body: Body,
) -> Result<Reply, ApiError> {
    let digest = query
        .digest
        .as_deref()
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::DigestInvalid,
                "the digest query parameter is required to finish an upload",
            )
        })
        .and_then(parse_digest)?;
    let claim = chunk_claim(headers)?;
    state
        .registry
        .finish_upload(&repo, id, &digest, claim, body.into_data_stream())
        .await?;
    Ok(blob_created(&repo, &digest))
}

pub async fn cancel(state: AppState, repo: RepoName, id: Uuid) -> Result<Reply, ApiError> {
    state.registry.cancel_upload(&repo, id).await?;
    Ok(Reply::new(StatusCode::NO_CONTENT))
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get(CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    ApiError::new(ErrorCode::SizeInvalid, "Content-Length is not a number")
                })
        })
        .transpose()
}

/// What `Content-Range` (`<start>-<end>`, inclusive, no unit) and
/// `Content-Length` say about a chunk; they must agree.
fn chunk_claim(headers: &HeaderMap) -> Result<ChunkClaim, ApiError> {
    let length = content_length(headers)?;
    let Some(value) = headers.get(CONTENT_RANGE) else {
        return Ok(ChunkClaim {
            start: None,
            length,
        });
    };
    let invalid = || {
        ApiError::new(
            ErrorCode::BlobUploadInvalid,
            "Content-Range must be <start>-<end> with start <= end",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?;
    let text = text.trim().strip_prefix("bytes ").unwrap_or(text.trim());
    let text = text.split('/').next().unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(invalid)?;
    let (start, end): (u64, u64) = (
        start.trim().parse().map_err(|_| invalid())?,
        end.trim().parse().map_err(|_| invalid())?,
    );
    if end < start {
        return Err(invalid());
    }
    // end = u64::MAX would overflow: no real chunk is that long.
    let span = (end - start).checked_add(1).ok_or_else(invalid)?;
    if length.is_some_and(|l| l != span) {
        return Err(ApiError::new(
            ErrorCode::SizeInvalid,
            format!(
                "Content-Range spans {span} bytes but Content-Length is {}",
                length.unwrap_or(0)
            ),
        ));
    }
    Ok(ChunkClaim {
        start: Some(start),
        length: Some(span),
    })
}
