//! `PUT|GET|HEAD|DELETE /v2/<name>/manifests/<reference>`

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::conditional::{self, Precondition};
use super::error::ApiError;
use super::reply::{Reply, DOCKER_CONTENT_DIGEST, OCI_SUBJECT};
use super::AppState;
use crate::oci::manifest::MAX_MANIFEST_BYTES;
use crate::oci::{Reference, RepoName};
use crate::registry::{RegistryError, WriteCondition};

pub async fn put(
    state: AppState,
    repo: RepoName,
    reference: Reference,
    headers: &HeaderMap,
    body: Body,
) -> Result<Reply, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let condition =
        conditional::PutCondition::read(headers).map(|c| Box::new(c) as Box<dyn WriteCondition>);
    let content = read_manifest_body(headers, body).await?;
    let pushed = state
        .registry
        .put_manifest(&repo, &reference, content_type, content, condition)
        .await?;
    let mut reply = Reply::new(StatusCode::CREATED)
        .header(LOCATION, format!("/v2/{repo}/manifests/{}", pushed.digest))
        .header(DOCKER_CONTENT_DIGEST, &pushed.digest)
        .header(CONTENT_LENGTH, 0);
    if let Some(subject) = &pushed.subject {
        reply = reply.header(OCI_SUBJECT, subject);
    }
    Ok(reply)
}

/// Oversized bodies up to this size are read and dropped before the 413,
/// because many clients (hyper's among them) cannot read an answer sent
/// while they are still writing. Larger ones are cut off at once.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Reads a manifest body, refusing more than the registry accepts without
/// buffering past the limit.
async fn read_manifest_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if announced.is_some_and(|n| n > MAX_MANIFEST_BYTES as u64) {
        if announced.is_some_and(|n| n <= DRAIN_LIMIT) {
            while let Some(Ok(_)) = stream.next().await {}
        }
        return Err(RegistryError::ManifestTooLarge.into());
    }
    let mut content =
        BytesMut::with_capacity(announced.unwrap_or(4096).min(MAX_MANIFEST_BYTES as u64) as usize);
    let mut read = 0u64;
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| RegistryError::BodyRead(e.to_string()))?;
        read += frame.len() as u64;
        if read > DRAIN_LIMIT {
            return Err(RegistryError::ManifestTooLarge.into());
        }
        // Past the limit, keep reading (to answer cleanly) but keep nothing.
        if read <= MAX_MANIFEST_BYTES as u64 {
            content.extend_from_slice(&frame);
        }
    }
    if read > MAX_MANIFEST_BYTES as u64 {
        return Err(RegistryError::ManifestTooLarge.into());
    }
    Ok(content.freeze())
}

/// `GET` (`with_body`) or `HEAD`: the manifest, or the 304 or 412 its
/// preconditions decide.
pub async fn get(
    state: AppState,
    repo: RepoName,
    reference: Reference,
    headers: &HeaderMap,
    with_body: bool,
) -> Result<Reply, ApiError> {
    let manifest = state.registry.manifest(&repo, &reference).await?;
    let validators = |status| {
        Reply::new(status)
            .header(DOCKER_CONTENT_DIGEST, &manifest.digest)
            .header(ETAG, format!("\"{}\"", manifest.digest))
    };
    match conditional::evaluate(headers, &manifest.digest) {
        Precondition::NotModified => Ok(validators(StatusCode::NOT_MODIFIED)),
        Precondition::Failed => Err(ApiError::precondition_failed(&manifest.digest)),
        Precondition::Send { .. } => {
            let reply = validators(StatusCode::OK)
                .header(CONTENT_TYPE, &manifest.media_type)
                .header(CONTENT_LENGTH, manifest.content.len());
            Ok(match with_body {
                true => reply.body(manifest.content),
                false => reply,
            })
        }
    }
}

pub async fn delete(
    state: AppState,
    repo: RepoName,
    reference: Reference,
) -> Result<Reply, ApiError> {
    state.registry.delete_manifest(&repo, &reference).await?;
    Ok(Reply::new(StatusCode::ACCEPTED).header(CONTENT_LENGTH, 0))
}
