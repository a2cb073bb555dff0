//! `GET /v2/<name>/referrers/<digest>`: the index of manifests whose
//! `subject` is a digest, with and without the `artifactType` filter.

use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use crate::common::{
    artifact_manifest, assert_oci_error, descriptor, header, image_index, image_manifest,
    json_body, json_bytes, sha256_digest, Image, TestServer, OCI_INDEX, OCI_MANIFEST,
};

const SIGNATURE_TYPE: &str = "application/vnd.example.signature.v1";
const SBOM_TYPE: &str = "application/spdx+json";
const PROVENANCE_CONFIG_TYPE: &str = "application/vnd.example.provenance.config.v1+json";

/// Pushes a referrer of `subject` with the given artifactType and
/// annotations; returns its bytes.
async fn push_referrer(
    server: &TestServer,
    repo: &str,
    subject: &Image,
    artifact_type: &str,
    content: &[u8],
    annotations: Option<Value>,
) -> Vec<u8> {
    server.push_blob(repo, b"{}").await;
    server.push_blob(repo, content).await;
    let manifest = json_bytes(&artifact_manifest(
        artifact_type,
        descriptor("application/octet-stream", content),
        Some(descriptor(OCI_MANIFEST, &subject.manifest)),
        annotations,
    ));
    server
        .push_manifest(repo, &sha256_digest(&manifest), OCI_MANIFEST, &manifest)
        .await;
    manifest
}

/// A referrer with no artifactType: its config media type stands in.
async fn push_config_typed_referrer(server: &TestServer, repo: &str, subject: &Image) -> Vec<u8> {
    let config = br#"{"builder":"ci"}"#;
    let content = b"provenance statement";
    server.push_blob(repo, config).await;
    server.push_blob(repo, content).await;
    let mut manifest = image_manifest(
        descriptor(PROVENANCE_CONFIG_TYPE, config),
        vec![descriptor("application/octet-stream", content)],
    );
    manifest["subject"] = descriptor(OCI_MANIFEST, &subject.manifest);
    let manifest = json_bytes(&manifest);
    server
        .push_manifest(repo, &sha256_digest(&manifest), OCI_MANIFEST, &manifest)
        .await;
    manifest
}

async fn referrers(
    server: &TestServer,
    repo: &str,
    digest: &str,
    query: &str,
) -> (Value, HeaderMap) {
    let resp = server
        .get(&format!("/v2/{repo}/referrers/{digest}{query}"))
        .await;
    let headers = resp.headers().clone();
    let body = json_body(resp, 200).await;
    assert_eq!(
        headers.get("content-type").map(|v| v.as_bytes()),
        Some(OCI_INDEX.as_bytes())
    );
    assert_eq!(body["schemaVersion"], 2, "{body}");
    assert_eq!(body["mediaType"], OCI_INDEX, "{body}");
    (body, headers)
}

fn filters_applied(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("oci-filters-applied")
        .map(|v| v.to_str().expect("ASCII header"))
}

/// The descriptors of a referrers response, sorted by digest.
fn descriptors(body: &Value) -> Vec<Value> {
    let mut list = body["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("manifests is an array: {body}"))
        .clone();
    list.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    list
}

fn expected(manifest: &[u8], artifact_type: &str, annotations: Option<Value>) -> Value {
    let mut desc = descriptor(OCI_MANIFEST, manifest);
    desc["artifactType"] = json!(artifact_type);
    if let Some(annotations) = annotations {
        desc["annotations"] = annotations;
    }
    desc
}

#[tokio::test]
async fn referrers_lists_every_manifest_with_that_subject() {
    let server = TestServer::start().await;
    let subject = server.push_image("repo", "v1", 100).await;
    let other = server.push_image("repo", "v2", 101).await;
    let sig_notes = json!({"org.opencontainers.image.created": "2024-01-01T00:00:00Z"});
    let signature = push_referrer(
        &server,
        "repo",
        &subject,
        SIGNATURE_TYPE,
        b"sig",
        Some(sig_notes.clone()),
    )
    .await;
    let sbom = push_referrer(&server, "repo", &subject, SBOM_TYPE, b"sbom", None).await;
    push_referrer(&server, "repo", &other, SBOM_TYPE, b"other sbom", None).await;

    let (body, _) = referrers(&server, "repo", &subject.digest, "").await;
    let mut want = vec![
        expected(&signature, SIGNATURE_TYPE, Some(sig_notes)),
        expected(&sbom, SBOM_TYPE, None),
    ];
    want.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    let got = descriptors(&body);
    assert_eq!(got.len(), 2, "{body}");
    for (got, want) in got.iter().zip(&want) {
        for key in ["mediaType", "digest", "size", "artifactType"] {
            assert_eq!(got[key], want[key], "{key} of {got}");
        }
        if want.get("annotations").is_some() {
            assert_eq!(
                got["annotations"], want["annotations"],
                "annotations of {got}"
            );
        }
    }
}

#[tokio::test]
async fn referrer_descriptor_carries_the_manifest_annotations() {
    let server = TestServer::start().await;
    let subject = server.push_image("repo", "v1", 102).await;
    let notes = json!({
        "org.opencontainers.image.created": "2024-05-06T07:08:09Z",
        "org.example.signer": "ci@example.org",
    });
    push_referrer(
        &server,
        "repo",
        &subject,
        SIGNATURE_TYPE,
        b"sig",
        Some(notes.clone()),
    )
    .await;
    let (body, _) = referrers(&server, "repo", &subject.digest, "").await;
    let list = descriptors(&body);
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["annotations"], notes);
}

#[tokio::test]
async fn referrer_artifact_type_falls_back_to_the_config_media_type() {
    let server = TestServer::start().await;
    let subject = server.push_image("repo", "v1", 103).await;
    let provenance = push_config_typed_referrer(&server, "repo", &subject).await;
    let (body, _) = referrers(&server, "repo", &subject.digest, "").await;
    let list = descriptors(&body);
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["digest"], sha256_digest(&provenance));
    assert_eq!(list[0]["size"], provenance.len());
    assert_eq!(list[0]["mediaType"], OCI_MANIFEST);
    assert_eq!(list[0]["artifactType"], PROVENANCE_CONFIG_TYPE);
}

#[tokio::test]
async fn referrers_filtered_by_artifact_type_sets_oci_filters_applied() {
    let server = TestServer::start().await;
    let subject = server.push_image("repo", "v1", 104).await;
    push_referrer(&server, "repo", &subject, SIGNATURE_TYPE, b"sig", None).await;
    let sbom = push_referrer(&server, "repo", &subject, SBOM_TYPE, b"sbom", None).await;
    push_config_typed_referrer(&server, "repo", &subject).await;

    let (body, headers) = referrers(
        &server,
        "repo",
        &subject.digest,
        "?artifactType=application/spdx%2Bjson",
    )
    .await;
    assert_eq!(filters_applied(&headers), Some("artifactType"));
    let list = descriptors(&body);
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["digest"], sha256_digest(&sbom));
    assert_eq!(list[0]["artifactType"], SBOM_TYPE);
}

#[tokio::test]
async fn referrers_filter_matches_the_config_media_type_fallback() {
    let server = TestServer::start().await;
    let subject = server.push_image("repo", "v1", 105).await;
    push_referrer(&server, "repo", &subject, SIGNATURE_TYPE, b"sig", None).await;
    let provenance = push_config_typed_referrer(&server, "repo", &subject).await;
    let query = format!(
        "?artifactType={}",
        PROVENANCE_CONFIG_TYPE.replace('+', "%2B")
    );
    let (body, _) = referrers(&server, "repo", &subject.digest, &query).await;
    let list = descriptors(&body);
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["digest"], sha256_digest(&provenance));
}

#[tokio::test]
async fn referrers_filter_without_match_is_an_empty_index() {
    let server = TestServer::start().await;
    let subject = server.push_image("repo", "v1", 106).await;
    push_referrer(&server, "repo", &subject, SIGNATURE_TYPE, b"sig", None).await;
    let (body, headers) = referrers(
        &server,
        "repo",
        &subject.digest,
        "?artifactType=application/vnd.example.none",
    )
    .await;
    assert_eq!(body["manifests"], json!([]));
    assert_eq!(filters_applied(&headers), Some("artifactType"));
}

#[tokio::test]
async fn referrers_without_filter_has_no_oci_filters_applied() {
    let server = TestServer::start().await;
    let subject = server.push_image("repo", "v1", 107).await;
    push_referrer(&server, "repo", &subject, SIGNATURE_TYPE, b"sig", None).await;
    let (_, headers) = referrers(&server, "repo", &subject.digest, "").await;
    assert_eq!(filters_applied(&headers), None);
}

#[tokio::test]
async fn referrers_of_a_never_pushed_subject_is_an_empty_index() {
    let server = TestServer::start().await;
    server.push_image("repo", "v1", 108).await;
    let digest = sha256_digest(b"never pushed");
    let (body, _) = referrers(&server, "repo", &digest, "").await;
    assert_eq!(
        body,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    );
}

#[tokio::test]
async fn referrers_in_an_unknown_repository_is_an_empty_index() {
    let server = TestServer::start().await;
    let digest = sha256_digest(b"never pushed");
    let (body, _) = referrers(&server, "no/such/repo", &digest, "").await;
    assert_eq!(body["manifests"], json!([]));
}

#[tokio::test]
async fn referrer_pushed_before_its_subject_is_listed() {
    let server = TestServer::start().await;
    let subject = Image::new(109);
    let signature = push_referrer(&server, "repo", &subject, SIGNATURE_TYPE, b"sig", None).await;
    let (body, _) = referrers(&server, "repo", &subject.digest, "").await;
    let list = descriptors(&body);
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["digest"], sha256_digest(&signature));
}

#[tokio::test]
async fn referrers_of_another_repository_are_not_listed() {
    let server = TestServer::start().await;
    let subject = server.push_image("one", "v1", 110).await;
    push_referrer(&server, "one", &subject, SIGNATURE_TYPE, b"sig", None).await;
    server.push_image("two", "v1", 110).await;
    let (body, _) = referrers(&server, "two", &subject.digest, "").await;
    assert_eq!(body["manifests"], json!([]));
}

#[tokio::test]
async fn index_with_subject_is_listed_as_a_referrer() {
    let server = TestServer::start().await;
    let subject = server.push_image("repo", "v1", 111).await;
    let child = server.push_image("repo", "child", 112).await;
    let mut index = image_index(vec![descriptor(OCI_MANIFEST, &child.manifest)]);
    index["artifactType"] = json!("application/vnd.example.bundle");
    index["subject"] = descriptor(OCI_MANIFEST, &subject.manifest);
    let index = json_bytes(&index);
    let resp = server
        .put_manifest("repo", "bundle", OCI_INDEX, &index)
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "oci-subject"), Some(subject.digest.clone()));
    let (body, _) = referrers(&server, "repo", &subject.digest, "").await;
    let list = descriptors(&body);
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["mediaType"], OCI_INDEX);
    assert_eq!(list[0]["digest"], sha256_digest(&index));
    assert_eq!(list[0]["size"], index.len());
    assert_eq!(list[0]["artifactType"], "application/vnd.example.bundle");
}

#[tokio::test]
async fn deleted_referrer_is_no_longer_listed() {
    let server = TestServer::start().await;
    let subject = server.push_image("repo", "v1", 113).await;
    let signature = push_referrer(&server, "repo", &subject, SIGNATURE_TYPE, b"sig", None).await;
    let resp = server
        .delete(&format!("/v2/repo/manifests/{}", sha256_digest(&signature)))
        .await;
    assert_eq!(resp.status(), 202);
    let (body, _) = referrers(&server, "repo", &subject.digest, "").await;
    assert_eq!(body["manifests"], json!([]));
}

#[tokio::test]
async fn referrers_with_malformed_digest_is_digest_invalid() {
    let server = TestServer::start().await;
    server.push_image("repo", "v1", 114).await;
    let resp = server.get("/v2/repo/referrers/sha256:abc").await;
    assert_oci_error(resp, 400, "DIGEST_INVALID").await;
}
