//! `GET /v2/<name>/tags/list`, `GET /v2/_catalog` and
//! `GET /v2/<name>/referrers/<digest>`: the listings.

use axum::http::header::{CONTENT_TYPE, LINK};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ErrorCode};
use super::reply::{Reply, OCI_FILTERS_APPLIED};
use super::AppState;
use crate::access::Caller;
use crate::metadata::Page;
use crate::oci::media_types::OCI_INDEX;
use crate::oci::{Digest, RepoName};

/// Largest page served, whatever `n` asks for; a `Link` header leads on.
const MAX_PAGE: usize = 10_000;
/// Catalog page size when the client gives no `n`.
const DEFAULT_CATALOG_PAGE: usize = 1_000;

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    n: Option<String>,
    last: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ReferrersQuery {
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
}

impl PageQuery {
    /// The page size asked for, capped; `default` when `n` is absent.
    fn limit(&self, default: usize) -> Result<usize, ApiError> {
        match &self.n {
            None => Ok(default),
            Some(n) => n.parse::<usize>().map(|n| n.min(MAX_PAGE)).map_err(|_| {
                ApiError::new(
                    ErrorCode::PaginationNumberInvalid,
                    format!("n={n:?} is not a non-negative integer"),
                )
            }),
        }
    }
}

/// Minimal escaping of a query value (names and tags only need few).
fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn paged_reply(path: &str, page: &Page, limit: usize, body: serde_json::Value) -> Reply {
    let mut reply = Reply::new(StatusCode::OK).header(CONTENT_TYPE, "application/json");
    if let (true, Some(last)) = (page.more, page.items.last()) {
        let next = format!(
            "<{path}?n={limit}&last={}>; rel=\"next\"",
            query_escape(last)
        );
        reply = reply.header(LINK, next);
    }
    reply.body(body.to_string())
}

pub async fn tags(state: AppState, repo: RepoName, query: PageQuery) -> Result<Reply, ApiError> {
    let limit = query.limit(usize::MAX)?;
    let page = state
        .registry
        .tags(&repo, query.last.clone(), limit)
        .await?;
    let body = json!({ "name": repo.as_str(), "tags": page.items });
    Ok(paged_reply(
        &format!("/v2/{repo}/tags/list"),
        &page,
        limit,
        body,
    ))
}

pub async fn catalog(
    state: AppState,
    query: PageQuery,
    caller: &Caller,
) -> Result<Reply, ApiError> {
    let limit = query.limit(DEFAULT_CATALOG_PAGE)?;
    let page = if caller.is_open() {
        state
            .registry
            .repositories(query.last.clone(), limit)
            .await?
    } else {
        pullable_page(&state, caller, query.last.clone(), limit).await?
    };
    let body = json!({ "repositories": page.items });
    Ok(paged_reply("/v2/_catalog", &page, limit, body))
}

/// A catalog page of only the repositories `caller` may pull: reads the
/// full listing in batches until the page is full (plus one, to know
/// whether more follow) or the listing ends.
async fn pullable_page(
    state: &AppState,
    caller: &Caller,
    mut last: Option<String>,
    limit: usize,
) -> Result<Page, ApiError> {
    const BATCH: usize = 1000;
    let mut items = Vec::new();
    loop {
        let batch = state.registry.repositories(last.clone(), BATCH).await?;
        last = batch.items.last().cloned().or(last);
        for name in batch.items {
            let visible = name
                .parse::<RepoName>()
                .is_ok_and(|repo| caller.may_pull(&repo));
            if visible {
                if items.len() == limit {
                    return Ok(Page { items, more: true });
                }
                items.push(name);
            }
        }
        if !batch.more {
            return Ok(Page { items, more: false });
        }
    }
}

pub async fn referrers(
    state: AppState,
    repo: RepoName,
    subject: Digest,
    query: ReferrersQuery,
) -> Result<Reply, ApiError> {
    let filter = query.artifact_type.filter(|a| !a.is_empty());
    let filtered = filter.is_some();
    let manifests = state.registry.referrers(&repo, &subject, filter).await?;
    let body = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut reply = Reply::new(StatusCode::OK).header(CONTENT_TYPE, OCI_INDEX);
    if filtered {
        reply = reply.header(OCI_FILTERS_APPLIED, "artifactType");
    }
    Ok(reply.body(body.to_string()))
}
