//! `HEAD|GET|DELETE /v2/<name>/blobs/<digest>`

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, RANGE,
};
use axum::http::{HeaderMap, StatusCode};

use super::byte_ranges::{self, RangeRequest};
use super::conditional::{self, Precondition};
use super::error::ApiError;
use super::reply::{Reply, DOCKER_CONTENT_DIGEST};
use super::zero_copy::FileSends;
use super::AppState;
use crate::oci::{Digest, RepoName};
use crate::registry::FileSendPath;

fn blob_reply(status: StatusCode, digest: &Digest, length: u64) -> Reply {
    validators(Reply::new(status), digest)
        .header(CONTENT_LENGTH, length)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(ACCEPT_RANGES, "bytes")
}

/// What a 304 repeats of a 200: the validator and caching headers.
fn validators(reply: Reply, digest: &Digest) -> Reply {
    reply
        .header(DOCKER_CONTENT_DIGEST, digest)
        .header(ETAG, format!("\"{digest}\""))
        // Content-addressed: the bytes behind a digest never change.
        .header(CACHE_CONTROL, "max-age=31536000")
}

pub async fn head(
    state: AppState,
    repo: RepoName,
    digest: Digest,
    headers: &HeaderMap,
) -> Result<Reply, ApiError> {
    let size = state.registry.blob_size(&repo, &digest).await?;
    match conditional::evaluate(headers, &digest) {
        Precondition::NotModified => Ok(validators(Reply::new(StatusCode::NOT_MODIFIED), &digest)),
        Precondition::Failed => Err(ApiError::precondition_failed(&digest)),
        Precondition::Send { .. } => Ok(blob_reply(StatusCode::OK, &digest, size)),
    }
}

pub async fn get(
    state: AppState,
    repo: RepoName,
    digest: Digest,
    headers: &HeaderMap,
    file_sends: Option<FileSends>,
) -> Result<Reply, ApiError> {
    let content = state.registry.open_blob(&repo, &digest).await?;
    let size = content.len();
    let range_allowed = match conditional::evaluate(headers, &digest) {
        Precondition::NotModified => {
            return Ok(validators(Reply::new(StatusCode::NOT_MODIFIED), &digest))
        }
        Precondition::Failed => return Err(ApiError::precondition_failed(&digest)),
        Precondition::Send { range_allowed } => range_allowed,
    };
    let ranges = match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) if range_allowed => byte_ranges::parse(value, size)?,
        _ => RangeRequest::Whole,
    };
    let file_sends = file_sends.map(|s| Arc::new(s) as Arc<dyn FileSendPath>);
    Ok(match ranges {
        RangeRequest::Whole => blob_reply(StatusCode::OK, &digest, size)
            .body(Body::from_stream(content.into_stream(None, file_sends))),
        RangeRequest::One(r) => blob_reply(StatusCode::PARTIAL_CONTENT, &digest, r.byte_count())
            .header(
                CONTENT_RANGE,
                format!("bytes {}-{}/{size}", r.first, r.last),
            )
            .body(Body::from_stream(content.into_stream(Some(r), file_sends))),
        RangeRequest::Several(ranges) => {
            let parts = byte_ranges::multipart(content, ranges, size, file_sends);
            blob_reply(StatusCode::PARTIAL_CONTENT, &digest, parts.length)
                .header(CONTENT_TYPE, parts.content_type)
                .body(Body::from_stream(parts.body))
        }
    })
}

pub async fn delete(state: AppState, repo: RepoName, digest: Digest) -> Result<Reply, ApiError> {
    state.registry.delete_blob(&repo, &digest).await?;
    Ok(Reply::new(StatusCode::ACCEPTED).header(CONTENT_LENGTH, 0))
}
