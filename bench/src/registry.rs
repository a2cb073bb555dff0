//! The registry API calls the scenarios are made of, each checked.
//!
//! Every call verifies the status code (and the digest headers where the
//! distribution spec promises them); a pulled body is hashed while it streams
//! and compared with the expected digest. A failed check is an error that
//! names the exact request and response, because a benchmark of a wrong
//! answer is worthless. This module knows the wire protocol and nothing about
//! timing.

use anyhow::{anyhow, bail, Result};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Body, Client, Method, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::content::{finish_digest, BlobSource, BlobSpec};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCTET_STREAM: &str = "application/octet-stream";

/// Checks the status of a response; on a mismatch, the error shows the
/// request, the status, the headers and the start of the body.
pub async fn expect_status(resp: Response, method: &Method, want: StatusCode) -> Result<Response> {
    if resp.status() == want {
        return Ok(resp);
    }
    let url = resp.url().clone();
    let status = resp.status();
    let headers = format_headers(resp.headers());
    let body = resp
        .text()
        .await
        .unwrap_or_else(|e| format!("<unreadable body: {e}>"));
    let body: String = body.chars().take(600).collect();
    bail!("{method} {url} -> {status} (expected {want})\n{headers}\n{body}")
}

fn format_headers(h: &HeaderMap) -> String {
    h.iter()
        .map(|(k, v)| format!("  {k}: {}", v.to_str().unwrap_or("<binary>")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Checks `Docker-Content-Digest` when the server sends it.
fn expect_digest_header(resp: &Response, method: &Method, want: &str) -> Result<()> {
    match header(resp, "docker-content-digest") {
        Some(got) if got != want => {
            bail!(
                "{method} {} -> Docker-Content-Digest {got}, expected {want}",
                resp.url()
            )
        }
        _ => Ok(()),
    }
}

/// Resolves a `Location` header (absolute or relative to the host).
fn location(resp: &Response, base: &str) -> Result<String> {
    let loc = header(resp, "location")
        .ok_or_else(|| anyhow!("{} answered without Location", resp.url()))?;
    Ok(
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else {
            format!("{base}{loc}")
        },
    )
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// `POST /v2/<repo>/blobs/uploads/` → 202; returns the session URL.
pub async fn start_upload(client: &Client, base: &str, repo: &str) -> Result<String> {
    let m = Method::POST;
    let resp = client
        .request(m.clone(), format!("{base}/v2/{repo}/blobs/uploads/"))
        .header(CONTENT_LENGTH, 0)
        .send()
        .await?;
    let resp = expect_status(resp, &m, StatusCode::ACCEPTED).await?;
    location(&resp, base)
}

/// `PUT <session>?digest=` with the whole body → 201.
pub async fn finish_upload(
    client: &Client,
    session: &str,
    digest: &str,
    body: Body,
    len: u64,
) -> Result<()> {
    let m = Method::PUT;
    let resp = client
        .request(m.clone(), with_query(session, "digest", digest))
        .header(CONTENT_LENGTH, len)
        .header(CONTENT_TYPE, OCTET_STREAM)
        .body(body)
        .send()
        .await?;
    let resp = expect_status(resp, &m, StatusCode::CREATED).await?;
    expect_digest_header(&resp, &m, digest)
}

/// Monolithic upload: POST, then PUT ?digest= with the streamed body.
pub async fn push_blob(
    client: &Client,
    base: &str,
    repo: &str,
    src: &BlobSource,
    spec: &BlobSpec,
) -> Result<()> {
    let session = start_upload(client, base, repo).await?;
    let body = Body::wrap_stream(src.body_stream(spec));
    finish_upload(client, &session, &spec.digest, body, spec.size).await
}

/// Chunked upload: POST, PATCH chunks of `chunk` bytes with Content-Range,
/// then PUT ?digest= with no body.
pub async fn push_blob_chunked(
    client: &Client,
    base: &str,
    repo: &str,
    src: &BlobSource,
    spec: &BlobSpec,
    chunk: u64,
) -> Result<()> {
    let mut session = start_upload(client, base, repo).await?;
    let mut start = 0u64;
    while start < spec.size {
        let end = (start + chunk).min(spec.size);
        let m = Method::PATCH;
        let resp = client
            .request(m.clone(), &session)
            .header("content-range", format!("{}-{}", start, end - 1))
            .header(CONTENT_LENGTH, end - start)
            .header(CONTENT_TYPE, OCTET_STREAM)
            .body(Body::wrap_stream(src.range_stream(spec, start, end)))
            .send()
            .await?;
        let resp = expect_status(resp, &m, StatusCode::ACCEPTED).await?;
        let want_range = format!("0-{}", end - 1);
        if header(&resp, "range") != Some(want_range.as_str()) {
            bail!(
                "PATCH {session} -> Range {:?}, expected {want_range}",
                header(&resp, "range")
            );
        }
        session = location(&resp, base)?;
        start = end;
    }
    finish_upload(client, &session, &spec.digest, Body::from(Vec::new()), 0).await
}

/// Uploads a small in-memory blob (POST then PUT).
pub async fn push_small_blob(
    client: &Client,
    base: &str,
    repo: &str,
    data: &[u8],
    digest: &str,
) -> Result<()> {
    let session = start_upload(client, base, repo).await?;
    finish_upload(
        client,
        &session,
        digest,
        Body::from(data.to_vec()),
        data.len() as u64,
    )
    .await
}

/// `POST ?mount=&from=`: links a blob from another repository. Falls back to
/// uploading `data` when the server opens a session instead (202).
pub async fn mount_or_push(
    client: &Client,
    base: &str,
    repo: &str,
    from: &str,
    data: &[u8],
    digest: &str,
) -> Result<()> {
    let m = Method::POST;
    let url = format!("{base}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}");
    let resp = client
        .request(m.clone(), url)
        .header(CONTENT_LENGTH, 0)
        .send()
        .await?;
    if resp.status() == StatusCode::CREATED {
        return Ok(());
    }
    let resp = expect_status(resp, &m, StatusCode::ACCEPTED).await?;
    let session = location(&resp, base)?;
    finish_upload(
        client,
        &session,
        digest,
        Body::from(data.to_vec()),
        data.len() as u64,
    )
    .await
}

/// `HEAD` on a blob: true for 200, false for 404, an error otherwise.
pub async fn blob_exists(client: &Client, base: &str, repo: &str, digest: &str) -> Result<bool> {
    let resp = client
        .head(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .await?;
    match resp.status() {
        StatusCode::OK => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => expect_status(resp, &Method::HEAD, StatusCode::OK)
            .await
            .map(|_| true),
    }
}

/// GETs `url` and verifies length and sha256 of the body while it streams.
/// Returns the number of bytes received.
pub async fn pull_verified(client: &Client, url: &str, spec: &BlobSpec) -> Result<u64> {
    let m = Method::GET;
    let resp = client.get(url).send().await?;
    let resp = expect_status(resp, &m, StatusCode::OK).await?;
    expect_digest_header(&resp, &m, &spec.digest)?;
    if let Some(len) = resp.content_length() {
        if len != spec.size {
            bail!("GET {url} -> Content-Length {len}, expected {}", spec.size);
        }
    }
    let mut hasher = Sha256::new();
    let mut n = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece?;
        n += piece.len() as u64;
        hasher.update(&piece);
    }
    let got = finish_digest(hasher);
    if n != spec.size || got != spec.digest {
        bail!(
            "GET {url} -> body of {n} bytes hashing to {got}, expected {} bytes with {}",
            spec.size,
            spec.digest
        );
    }
    Ok(n)
}

/// `PUT /v2/<repo>/manifests/<reference>` → 201 with the expected digest.
pub async fn put_manifest(
    client: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    body: &[u8],
    digest: &str,
) -> Result<()> {
    let m = Method::PUT;
    let resp = client
        .request(m.clone(), format!("{base}/v2/{repo}/manifests/{reference}"))
        .header(CONTENT_TYPE, OCI_MANIFEST)
        .body(body.to_vec())
        .send()
        .await?;
    let resp = expect_status(resp, &m, StatusCode::CREATED).await?;
    expect_digest_header(&resp, &m, digest)
}

/// HEAD or GET of a manifest; GET bodies are hashed and compared.
pub async fn fetch_manifest(
    client: &Client,
    url: &str,
    method: Method,
    digest: &str,
) -> Result<()> {
    let resp = client
        .request(method.clone(), url)
        .header("accept", OCI_MANIFEST)
        .send()
        .await?;
    let resp = expect_status(resp, &method, StatusCode::OK).await?;
    expect_digest_header(&resp, &method, digest)?;
    if method == Method::GET {
        let body = resp.bytes().await?;
        let got = crate::content::sha256_digest(&body);
        if got != digest {
            bail!("GET {url} -> manifest body hashing to {got}, expected {digest}");
        }
    }
    Ok(())
}

/// One page of a paginated list: its entries and the next page's URL.
pub struct Page {
    pub entries: Vec<String>,
    pub next: Option<String>,
}

/// GETs a tag list or catalog page; `field` is `tags` or `repositories`.
pub async fn get_page(client: &Client, base: &str, url: &str, field: &str) -> Result<Page> {
    let m = Method::GET;
    let resp = client.get(url).send().await?;
    let resp = expect_status(resp, &m, StatusCode::OK).await?;
    let next = header(&resp, "link")
        .map(|l| parse_next_link(l, base))
        .transpose()?;
    let json: serde_json::Value = resp.json_lenient().await?;
    let entries = match json.get(field) {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>(),
        Some(serde_json::Value::Null) => Some(Vec::new()),
        _ => None,
    }
    .ok_or_else(|| anyhow!("GET {url} -> body without a string array {field:?}: {json}"))?;
    Ok(Page { entries, next })
}

/// `<url>; rel="next"` → absolute URL.
fn parse_next_link(link: &str, base: &str) -> Result<String> {
    let target = link
        .split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map(|(t, _)| t)
        .filter(|_| link.contains("rel=\"next\""))
        .ok_or_else(|| anyhow!("unparsable Link header {link:?}"))?;
    Ok(if target.starts_with("http") {
        target.to_string()
    } else {
        format!("{base}{target}")
    })
}

/// `Response::json` needs reqwest's `json` feature; this is all it does.
trait JsonLenient {
    async fn json_lenient(self) -> Result<serde_json::Value>;
}

impl JsonLenient for Response {
    async fn json_lenient(self) -> Result<serde_json::Value> {
        let url = self.url().clone();
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            anyhow!(
                "GET {url} -> invalid JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_relative_and_absolute() {
        let base = "http://127.0.0.1:1";
        assert_eq!(
            parse_next_link("</v2/a/tags/list?n=100&last=t1>; rel=\"next\"", base).unwrap(),
            "http://127.0.0.1:1/v2/a/tags/list?n=100&last=t1"
        );
        assert_eq!(
            parse_next_link("<http://h/x>; rel=\"next\"", base).unwrap(),
            "http://h/x"
        );
        assert!(parse_next_link("garbage", base).is_err());
    }

    #[test]
    fn query_appended_with_the_right_separator() {
        assert_eq!(
            with_query("http://h/u", "digest", "d"),
            "http://h/u?digest=d"
        );
        assert_eq!(
            with_query("http://h/u?_state=x", "digest", "d"),
            "http://h/u?_state=x&digest=d"
        );
    }
}
