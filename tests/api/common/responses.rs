//! Reading responses: headers, JSON bodies and OCI error bodies.

use reqwest::Response;
use serde_json::Value;

pub fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("header is ASCII").to_owned())
}

pub fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// Asserts an OCI error response: the status, a JSON `Content-Type`, and
/// `errors[0].code` with a message.
pub async fn assert_oci_error(resp: Response, status: u16, code: &str) {
    let actual = resp.status().as_u16();
    let content_type = header(&resp, "content-type").unwrap_or_default();
    let url = resp.url().clone();
    let body = resp.text().await.expect("read error body");
    assert_eq!(
        actual, status,
        "status of {url}, expected {status} {code}; body: {body}"
    );
    let value: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("error body of {url} is not JSON ({e}): {body:?}"));
    assert_eq!(
        value["errors"][0]["code"], code,
        "error code of {url}; body: {body}"
    );
    assert!(
        value["errors"][0]["message"].is_string(),
        "error of {url} has no message: {body}"
    );
    assert!(
        content_type.starts_with("application/json"),
        "error of {url} has Content-Type {content_type:?}, expected application/json"
    );
}

/// Reads a JSON body, asserting the status first.
pub async fn json_body(resp: Response, status: u16) -> Value {
    let actual = resp.status().as_u16();
    let url = resp.url().clone();
    let body = resp.text().await.expect("read body");
    assert_eq!(actual, status, "status of {url}; body: {body}");
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("body of {url} is not JSON ({e}): {body:?}"))
}
