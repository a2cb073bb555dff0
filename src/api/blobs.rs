//! `HEAD|GET|DELETE /v2/<name>/blobs/<digest>`

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, RANGE,
};
use axum::http::{HeaderMap, StatusCode};

use super::conditional::{self, Precondition};
use super::error::ApiError;
use super::reply::{Reply, DOCKER_CONTENT_DIGEST};
use super::zero_copy::FileSends;
use super::AppState;
use crate::oci::{Digest, RepoName};
use crate::registry::{ByteRange, FileSendPath, RegistryError};

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
    let range = match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) if range_allowed => parse_range(value, size)?,
        _ => None,
    };
    let reply = match range {
        Some(r) => blob_reply(StatusCode::PARTIAL_CONTENT, &digest, r.byte_count()).header(
            CONTENT_RANGE,
            format!("bytes {}-{}/{size}", r.first, r.last),
        ),
        None => blob_reply(StatusCode::OK, &digest, size),
    };
    let file_sends = file_sends.map(|s| Arc::new(s) as Arc<dyn FileSendPath>);
    Ok(reply.body(Body::from_stream(content.into_stream(range, file_sends))))
}

pub async fn delete(state: AppState, repo: RepoName, digest: Digest) -> Result<Reply, ApiError> {
    state.registry.delete_blob(&repo, &digest).await?;
    Ok(Reply::new(StatusCode::ACCEPTED).header(CONTENT_LENGTH, 0))
}

/// Reads a `Range` header for a blob of `size` bytes. A single byte range
/// is honoured; anything else (other units, several ranges, bad syntax) is
/// ignored and the whole blob is sent, as RFC 9110 allows.
fn parse_range(value: &str, size: u64) -> Result<Option<ByteRange>, ApiError> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = || ApiError::from(RegistryError::RangeNotSatisfiable { size });
    let range = match (first.parse::<u64>().ok(), last.parse::<u64>().ok()) {
        // bytes=-N: the last N bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || size == 0 {
                return Err(unsatisfiable());
            }
            ByteRange {
                first: size.saturating_sub(suffix),
                last: size - 1,
            }
        }
        // bytes=A-
        (Some(first), None) if last.is_empty() => {
            if first >= size {
                return Err(unsatisfiable());
            }
            ByteRange {
                first,
                last: size - 1,
            }
        }
        (Some(first), Some(last)) if first <= last => {
            if first >= size {
                return Err(unsatisfiable());
            }
            ByteRange {
                first,
                last: last.min(size - 1),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Option<(u64, u64)> {
        parse_range(value, size).unwrap().map(|r| (r.first, r.last))
    }

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        assert_eq!(range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(range("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(range("bytes=10-", 100), Some((10, 99)));
        assert_eq!(range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(range("bytes=-500", 100), Some((0, 99)));
    }

    #[test]
    fn unusable_ranges_mean_the_whole_blob() {
        assert_eq!(range("items=0-9", 100), None);
        assert_eq!(range("bytes=0-1,5-6", 100), None);
        assert_eq!(range("bytes=9-1", 100), None);
        assert_eq!(range("bytes=x-y", 100), None);
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=100-200", 100).is_err());
        assert!(parse_range("bytes=-0", 100).is_err());
        assert!(parse_range("bytes=0-", 0).is_err());
    }
}
