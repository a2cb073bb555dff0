//! `PUT|GET|HEAD|DELETE /v2/<name>/manifests/<reference>`: every manifest
//! type, exact bytes, validation, and deletion by tag and by digest.

use serde_json::{json, Value};

use crate::common::{
    artifact_manifest, assert_oci_error, descriptor, header, image_index, image_manifest,
    json_body, json_bytes, random_bytes, sha256_digest, Image, TestServer, DOCKER_CONFIG,
    DOCKER_LAYER, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, EMPTY_CONFIG_DIGEST, MAX_MANIFEST_SIZE,
    OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
};

/// Pushes the config and layer of `image` to `repo` without its manifest.
async fn push_image_blobs(server: &TestServer, repo: &str, image: &Image) {
    server.push_blob(repo, &image.config).await;
    server.push_blob(repo, &image.layer).await;
}

fn platform_descriptor(media_type: &str, manifest: &[u8], arch: &str) -> Value {
    let mut desc = descriptor(media_type, manifest);
    desc["platform"] = json!({"architecture": arch, "os": "linux"});
    desc
}

/// A Docker schema2 image; its blobs are pushed to `repo`.
async fn push_docker_image_blobs(server: &TestServer, repo: &str, seed: u64) -> Vec<u8> {
    let config = json_bytes(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"seed": seed.to_string()}},
        "rootfs": {"type": "layers", "diff_ids": []}
    }));
    let layer = random_bytes(seed, 900);
    server.push_blob(repo, &config).await;
    server.push_blob(repo, &layer).await;
    json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, &config),
        "layers": [descriptor(DOCKER_LAYER, &layer)],
    }))
}

async fn assert_manifest_response(resp: reqwest::Response, media_type: &str, body: &[u8]) {
    assert_eq!(resp.status(), 200, "GET manifest");
    assert_eq!(header(&resp, "content-type").as_deref(), Some(media_type));
    assert_eq!(
        header(&resp, "docker-content-digest"),
        Some(sha256_digest(body))
    );
    assert_eq!(
        header(&resp, "content-length"),
        Some(body.len().to_string())
    );
    assert_eq!(resp.bytes().await.unwrap(), body);
}

// --- pushing each type ----------------------------------------------------

#[tokio::test]
async fn oci_image_manifest_put_is_201_with_location_and_digest() {
    let server = TestServer::start().await;
    let image = Image::new(40);
    push_image_blobs(&server, "repo", &image).await;
    let resp = server
        .put_manifest("repo", "v1", OCI_MANIFEST, &image.manifest)
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        header(&resp, "location"),
        Some(format!("/v2/repo/manifests/{}", image.digest))
    );
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(&*image.digest)
    );
    assert_eq!(header(&resp, "oci-subject"), None);
    let resp = server.get("/v2/repo/manifests/v1").await;
    assert_manifest_response(resp, OCI_MANIFEST, &image.manifest).await;
}

#[tokio::test]
async fn oci_index_put_is_201() {
    let server = TestServer::start().await;
    let amd = server.push_image("repo", "amd64", 41).await;
    let arm = server.push_image("repo", "arm64", 42).await;
    let index = json_bytes(&image_index(vec![
        platform_descriptor(OCI_MANIFEST, &amd.manifest, "amd64"),
        platform_descriptor(OCI_MANIFEST, &arm.manifest, "arm64"),
    ]));
    let resp = server
        .put_manifest("repo", "multi", OCI_INDEX, &index)
        .await;
    assert_eq!(resp.status(), 201);
    let digest = sha256_digest(&index);
    assert_eq!(
        header(&resp, "location"),
        Some(format!("/v2/repo/manifests/{digest}"))
    );
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest));
    let resp = server.get("/v2/repo/manifests/multi").await;
    assert_manifest_response(resp, OCI_INDEX, &index).await;
}

#[tokio::test]
async fn docker_schema2_manifest_put_is_201() {
    let server = TestServer::start().await;
    let manifest = push_docker_image_blobs(&server, "repo", 43).await;
    let resp = server
        .put_manifest("repo", "docker", DOCKER_MANIFEST, &manifest)
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        header(&resp, "docker-content-digest"),
        Some(sha256_digest(&manifest))
    );
    let resp = server.get("/v2/repo/manifests/docker").await;
    assert_manifest_response(resp, DOCKER_MANIFEST, &manifest).await;
}

#[tokio::test]
async fn docker_manifest_list_put_is_201() {
    let server = TestServer::start().await;
    let amd = push_docker_image_blobs(&server, "repo", 44).await;
    let arm = push_docker_image_blobs(&server, "repo", 45).await;
    server
        .push_manifest("repo", &sha256_digest(&amd), DOCKER_MANIFEST, &amd)
        .await;
    server
        .push_manifest("repo", &sha256_digest(&arm), DOCKER_MANIFEST, &arm)
        .await;
    let list = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [
            platform_descriptor(DOCKER_MANIFEST, &amd, "amd64"),
            platform_descriptor(DOCKER_MANIFEST, &arm, "arm64"),
        ],
    }));
    let resp = server
        .put_manifest("repo", "list", DOCKER_MANIFEST_LIST, &list)
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        header(&resp, "docker-content-digest"),
        Some(sha256_digest(&list))
    );
    let resp = server.get("/v2/repo/manifests/list").await;
    assert_manifest_response(resp, DOCKER_MANIFEST_LIST, &list).await;
}

#[test]
fn empty_config_blob_has_the_well_known_digest() {
    assert_eq!(sha256_digest(b"{}"), EMPTY_CONFIG_DIGEST);
}

#[tokio::test]
async fn artifact_with_artifact_type_and_empty_config_put_is_201() {
    let server = TestServer::start().await;
    assert_eq!(server.push_blob("repo", b"{}").await, EMPTY_CONFIG_DIGEST);
    let sbom = br#"{"spdxVersion":"SPDX-2.3"}"#;
    server.push_blob("repo", sbom).await;
    let manifest = json_bytes(&artifact_manifest(
        "application/spdx+json",
        descriptor("application/spdx+json", sbom),
        None,
        None,
    ));
    let resp = server
        .put_manifest("repo", "sbom", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(resp.status(), 201);
    let resp = server.get("/v2/repo/manifests/sbom").await;
    assert_manifest_response(resp, OCI_MANIFEST, &manifest).await;
}

#[tokio::test]
async fn artifact_with_custom_config_media_type_put_is_201() {
    let server = TestServer::start().await;
    let config = br#"{"chart":"demo","version":"1.0.0"}"#;
    let content = random_bytes(46, 700);
    server.push_blob("charts/demo", config).await;
    server.push_blob("charts/demo", &content).await;
    let manifest = json_bytes(&image_manifest(
        descriptor("application/vnd.cncf.helm.config.v1+json", config),
        vec![descriptor(
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
            &content,
        )],
    ));
    let resp = server
        .put_manifest("charts/demo", "1.0.0", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(resp.status(), 201);
    let resp = server.get("/v2/charts/demo/manifests/1.0.0").await;
    assert_manifest_response(resp, OCI_MANIFEST, &manifest).await;
}

#[tokio::test]
async fn manifest_with_subject_put_returns_oci_subject() {
    let server = TestServer::start().await;
    let subject = server.push_image("repo", "v1", 47).await;
    server.push_blob("repo", b"{}").await;
    let signature = b"signature bytes";
    server.push_blob("repo", signature).await;
    let manifest = json_bytes(&artifact_manifest(
        "application/vnd.example.signature.v1",
        descriptor("application/octet-stream", signature),
        Some(descriptor(OCI_MANIFEST, &subject.manifest)),
        None,
    ));
    let digest = sha256_digest(&manifest);
    let resp = server
        .put_manifest("repo", &digest, OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "oci-subject"), Some(subject.digest));
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest));
}

#[tokio::test]
async fn manifest_without_media_type_in_body_takes_the_content_type() {
    let server = TestServer::start().await;
    let image = Image::new(48);
    push_image_blobs(&server, "repo", &image).await;
    let mut value: Value = serde_json::from_slice(&image.manifest).unwrap();
    value.as_object_mut().unwrap().remove("mediaType");
    let manifest = json_bytes(&value);
    let resp = server
        .put_manifest("repo", "bare", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(resp.status(), 201);
    let resp = server.get("/v2/repo/manifests/bare").await;
    assert_manifest_response(resp, OCI_MANIFEST, &manifest).await;
}

#[tokio::test]
async fn manifest_put_by_its_digest_is_201() {
    let server = TestServer::start().await;
    let image = Image::new(49);
    push_image_blobs(&server, "repo", &image).await;
    let resp = server
        .put_manifest("repo", &image.digest, OCI_MANIFEST, &image.manifest)
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        header(&resp, "location"),
        Some(format!("/v2/repo/manifests/{}", image.digest))
    );
    let resp = server
        .get(&format!("/v2/repo/manifests/{}", image.digest))
        .await;
    assert_manifest_response(resp, OCI_MANIFEST, &image.manifest).await;
}

#[tokio::test]
async fn manifest_put_again_under_a_tag_moves_the_tag() {
    let server = TestServer::start().await;
    let first = server.push_image("repo", "latest", 50).await;
    let second = server.push_image("repo", "latest", 51).await;
    let resp = server.get("/v2/repo/manifests/latest").await;
    assert_manifest_response(resp, OCI_MANIFEST, &second.manifest).await;
    let resp = server
        .get(&format!("/v2/repo/manifests/{}", first.digest))
        .await;
    assert_manifest_response(resp, OCI_MANIFEST, &first.manifest).await;
}

// --- reading back ---------------------------------------------------------

/// Whitespace and key order a serializer would never produce, so only the
/// stored bytes can match.
fn unusual_manifest_bytes(image: &Image) -> Vec<u8> {
    let config = descriptor(OCI_CONFIG, &image.config);
    let layer = descriptor(OCI_LAYER, &image.layer);
    format!(
        "{{\n   \"layers\" : [ {layer} ],\n\t\"config\": {config} , \"schemaVersion\":2,\n  \"mediaType\": \"{OCI_MANIFEST}\"  }}\n\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn manifest_get_by_tag_returns_the_exact_bytes_and_headers() {
    let server = TestServer::start().await;
    let image = Image::new(52);
    push_image_blobs(&server, "repo", &image).await;
    let manifest = unusual_manifest_bytes(&image);
    server
        .push_manifest("repo", "odd", OCI_MANIFEST, &manifest)
        .await;
    let resp = server.get("/v2/repo/manifests/odd").await;
    assert_manifest_response(resp, OCI_MANIFEST, &manifest).await;
}

#[tokio::test]
async fn manifest_get_by_digest_returns_the_exact_bytes_and_headers() {
    let server = TestServer::start().await;
    let image = Image::new(53);
    push_image_blobs(&server, "repo", &image).await;
    let manifest = unusual_manifest_bytes(&image);
    let digest = server
        .push_manifest("repo", "odd", OCI_MANIFEST, &manifest)
        .await;
    let resp = server.get(&format!("/v2/repo/manifests/{digest}")).await;
    assert_manifest_response(resp, OCI_MANIFEST, &manifest).await;
}

#[tokio::test]
async fn manifest_head_by_tag_and_digest_has_headers_and_no_body() {
    let server = TestServer::start().await;
    let image = server.push_image("repo", "v1", 54).await;
    for reference in ["v1", image.digest.as_str()] {
        let resp = server
            .head(&format!("/v2/repo/manifests/{reference}"))
            .await;
        assert_eq!(resp.status(), 200, "HEAD {reference}");
        assert_eq!(header(&resp, "content-type").as_deref(), Some(OCI_MANIFEST));
        assert_eq!(
            header(&resp, "docker-content-digest").as_deref(),
            Some(&*image.digest)
        );
        assert_eq!(
            header(&resp, "content-length"),
            Some(image.manifest.len().to_string())
        );
        assert!(resp.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn manifest_in_unknown_repository_is_name_unknown() {
    let server = TestServer::start().await;
    server.push_image("known", "v1", 55).await;
    let digest = sha256_digest(b"nothing");
    assert_oci_error(
        server.get("/v2/unknown/manifests/v1").await,
        404,
        "NAME_UNKNOWN",
    )
    .await;
    let resp = server.get(&format!("/v2/unknown/manifests/{digest}")).await;
    assert_oci_error(resp, 404, "NAME_UNKNOWN").await;
    assert_eq!(server.head("/v2/unknown/manifests/v1").await.status(), 404);
    let resp = server
        .delete(&format!("/v2/unknown/manifests/{digest}"))
        .await;
    assert_oci_error(resp, 404, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn unknown_tag_is_manifest_unknown() {
    let server = TestServer::start().await;
    server.push_image("repo", "v1", 56).await;
    assert_oci_error(
        server.get("/v2/repo/manifests/v2").await,
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    assert_eq!(server.head("/v2/repo/manifests/v2").await.status(), 404);
}

#[tokio::test]
async fn unknown_digest_is_manifest_unknown() {
    let server = TestServer::start().await;
    server.push_image("repo", "v1", 57).await;
    let digest = sha256_digest(b"no such manifest");
    let resp = server.get(&format!("/v2/repo/manifests/{digest}")).await;
    assert_oci_error(resp, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn manifest_of_another_repository_is_manifest_unknown() {
    let server = TestServer::start().await;
    let image = server.push_image("one", "v1", 58).await;
    server.push_image("two", "v1", 59).await;
    let resp = server
        .get(&format!("/v2/two/manifests/{}", image.digest))
        .await;
    assert_oci_error(resp, 404, "MANIFEST_UNKNOWN").await;
}

// --- validation -----------------------------------------------------------

#[tokio::test]
async fn manifest_with_missing_layer_is_manifest_blob_unknown() {
    let server = TestServer::start().await;
    let image = Image::new(60);
    server.push_blob("repo", &image.config).await;
    let resp = server
        .put_manifest("repo", "v1", OCI_MANIFEST, &image.manifest)
        .await;
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert_oci_error(
        server.get("/v2/repo/manifests/v1").await,
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn manifest_with_missing_config_is_manifest_blob_unknown() {
    let server = TestServer::start().await;
    let image = Image::new(61);
    server.push_blob("repo", &image.layer).await;
    let resp = server
        .put_manifest("repo", "v1", OCI_MANIFEST, &image.manifest)
        .await;
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn manifest_blob_linked_only_in_another_repository_is_manifest_blob_unknown() {
    let server = TestServer::start().await;
    let image = Image::new(62);
    push_image_blobs(&server, "other", &image).await;
    server.push_blob("repo", &image.config).await;
    let resp = server
        .put_manifest("repo", "v1", OCI_MANIFEST, &image.manifest)
        .await;
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn artifact_without_its_empty_config_blob_is_manifest_blob_unknown() {
    let server = TestServer::start().await;
    let content = b"artifact content";
    server.push_blob("repo", content).await;
    let manifest = json_bytes(&artifact_manifest(
        "application/vnd.example.thing",
        descriptor("application/octet-stream", content),
        None,
        None,
    ));
    let resp = server
        .put_manifest("repo", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn index_with_missing_child_is_manifest_unknown() {
    let server = TestServer::start().await;
    let present = server.push_image("repo", "amd64", 63).await;
    let absent = Image::new(64);
    let index = json_bytes(&image_index(vec![
        platform_descriptor(OCI_MANIFEST, &present.manifest, "amd64"),
        platform_descriptor(OCI_MANIFEST, &absent.manifest, "arm64"),
    ]));
    let resp = server
        .put_manifest("repo", "multi", OCI_INDEX, &index)
        .await;
    assert_oci_error(resp, 400, "MANIFEST_UNKNOWN").await;
    assert_oci_error(
        server.get("/v2/repo/manifests/multi").await,
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn index_child_only_in_another_repository_is_manifest_unknown() {
    let server = TestServer::start().await;
    let child = server.push_image("other", "v1", 65).await;
    server.push_image("repo", "v1", 66).await;
    let index = json_bytes(&image_index(vec![platform_descriptor(
        OCI_MANIFEST,
        &child.manifest,
        "amd64",
    )]));
    let resp = server
        .put_manifest("repo", "multi", OCI_INDEX, &index)
        .await;
    assert_oci_error(resp, 400, "MANIFEST_UNKNOWN").await;
}

/// The index BuildKit pushes for `--cache-to type=registry`: its entries
/// are layers and a cache config (blobs, not manifests), each pushed to
/// `repo` first unless `missing` names one to leave out.
pub(crate) async fn buildkit_cache_index(
    server: &TestServer,
    repo: &str,
    media_type: &str,
    missing: Option<usize>,
) -> Vec<u8> {
    let layers = [random_bytes(71, 700), random_bytes(72, 900)];
    let cache_config = json_bytes(&json!({"layers": [], "records": []}));
    let mut entries = Vec::new();
    for layer in layers {
        let mut entry = descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &layer);
        entry["annotations"] = json!({"buildkit/createdat": "2026-11-27T12:00:00Z"});
        entries.push((entry, layer));
    }
    entries.push((
        descriptor("application/vnd.buildkit.cacheconfig.v0", &cache_config),
        cache_config,
    ));
    for (i, (_, blob)) in entries.iter().enumerate() {
        if missing != Some(i) {
            server.push_blob(repo, blob).await;
        }
    }
    let mut index = image_index(entries.into_iter().map(|(entry, _)| entry).collect());
    index["mediaType"] = json!(media_type);
    json_bytes(&index)
}

#[tokio::test]
async fn buildkit_cache_index_of_blobs_put_is_201() {
    let server = TestServer::start().await;
    for (tag, media_type) in [
        ("cache-oci", OCI_INDEX),
        ("cache-docker", DOCKER_MANIFEST_LIST),
    ] {
        let index = buildkit_cache_index(&server, "app", media_type, None).await;
        let resp = server.put_manifest("app", tag, media_type, &index).await;
        assert_eq!(resp.status(), 201, "{media_type}");
        assert_manifest_response(
            server.get(&format!("/v2/app/manifests/{tag}")).await,
            media_type,
            &index,
        )
        .await;
    }
}

#[tokio::test]
async fn buildkit_cache_index_with_a_missing_blob_is_manifest_blob_unknown() {
    let server = TestServer::start().await;
    // A layer missing, then the cache config, each in a repository of its own.
    for (repo, missing) in [("layer-missing", 0), ("config-missing", 2)] {
        let index = buildkit_cache_index(&server, repo, OCI_INDEX, Some(missing)).await;
        let resp = server.put_manifest(repo, "cache", OCI_INDEX, &index).await;
        assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
        assert_oci_error(
            server.get(&format!("/v2/{repo}/manifests/cache")).await,
            404,
            "MANIFEST_UNKNOWN",
        )
        .await;
    }
}

/// Builds a valid manifest for `image` padded with an annotation to exactly
/// `size` bytes.
fn manifest_of_size(image: &Image, size: usize) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(&image.manifest).unwrap();
    value["annotations"] = json!({"pad": ""});
    let base = json_bytes(&value).len();
    value["annotations"]["pad"] = Value::String("p".repeat(size - base));
    let bytes = json_bytes(&value);
    assert_eq!(bytes.len(), size);
    bytes
}

#[tokio::test]
async fn manifest_of_exactly_4_mib_is_accepted() {
    let server = TestServer::start().await;
    let image = Image::new(67);
    push_image_blobs(&server, "repo", &image).await;
    let manifest = manifest_of_size(&image, MAX_MANIFEST_SIZE);
    let resp = server
        .put_manifest("repo", "big", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(resp.status(), 201);
    let resp = server.get("/v2/repo/manifests/big").await;
    assert_manifest_response(resp, OCI_MANIFEST, &manifest).await;
}

#[tokio::test]
async fn manifest_larger_than_4_mib_is_413() {
    let server = TestServer::start().await;
    let image = Image::new(68);
    push_image_blobs(&server, "repo", &image).await;
    let manifest = manifest_of_size(&image, MAX_MANIFEST_SIZE + 1);
    let resp = server
        .raw_request(
            "PUT",
            "/v2/repo/manifests/big",
            &[("Content-Type", OCI_MANIFEST)],
            manifest,
        )
        .await;
    resp.assert_oci_error(413, "MANIFEST_INVALID");
    assert_oci_error(
        server.get("/v2/repo/manifests/big").await,
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn manifest_put_by_another_digest_is_digest_invalid() {
    let server = TestServer::start().await;
    let image = Image::new(69);
    push_image_blobs(&server, "repo", &image).await;
    let wrong = sha256_digest(b"not these bytes");
    let resp = server
        .put_manifest("repo", &wrong, OCI_MANIFEST, &image.manifest)
        .await;
    assert_oci_error(resp, 400, "DIGEST_INVALID").await;
    let resp = server.get(&format!("/v2/repo/manifests/{wrong}")).await;
    assert_eq!(resp.status(), 404);
    let resp = server
        .get(&format!("/v2/repo/manifests/{}", image.digest))
        .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn docker_schema1_manifest_is_manifest_invalid() {
    let server = TestServer::start().await;
    let schema1 = json_bytes(&json!({
        "schemaVersion": 1,
        "name": "repo",
        "tag": "old",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": sha256_digest(b"layer")}],
        "history": [{"v1Compatibility": "{}"}],
        "signatures": [],
    }));
    for content_type in [
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
    ] {
        let resp = server
            .put_manifest("repo", "old", content_type, &schema1)
            .await;
        assert_oci_error(resp, 400, "MANIFEST_INVALID").await;
    }
}

#[tokio::test]
async fn content_type_disagreeing_with_body_media_type_is_manifest_invalid() {
    let server = TestServer::start().await;
    let image = Image::new(70);
    push_image_blobs(&server, "repo", &image).await;
    for content_type in [DOCKER_MANIFEST, OCI_INDEX] {
        let resp = server
            .put_manifest("repo", "v1", content_type, &image.manifest)
            .await;
        assert_oci_error(resp, 400, "MANIFEST_INVALID").await;
    }
}

#[tokio::test]
async fn malformed_json_manifest_is_manifest_invalid() {
    let server = TestServer::start().await;
    server.push_image("repo", "v1", 71).await;
    for body in [
        &b"{\"schemaVersion\": 2, \"mediaType\": "[..],
        b"not json at all",
        b"",
        b"[]",
    ] {
        let resp = server.put_manifest("repo", "bad", OCI_MANIFEST, body).await;
        assert_oci_error(resp, 400, "MANIFEST_INVALID").await;
    }
}

#[tokio::test]
async fn descriptor_without_digest_is_manifest_invalid() {
    let server = TestServer::start().await;
    let image = Image::new(72);
    push_image_blobs(&server, "repo", &image).await;
    let mut value: Value = serde_json::from_slice(&image.manifest).unwrap();
    value["layers"][0].as_object_mut().unwrap().remove("digest");
    let resp = server
        .put_manifest("repo", "v1", OCI_MANIFEST, &json_bytes(&value))
        .await;
    assert_oci_error(resp, 400, "MANIFEST_INVALID").await;
}

#[tokio::test]
async fn manifest_put_to_invalid_tag_changes_nothing() {
    let server = TestServer::start().await;
    let image = server.push_image("repo", "v1", 73).await;
    let resp = server
        .put_manifest("repo", "-bad", OCI_MANIFEST, &image.manifest)
        .await;
    assert_oci_error(resp, 400, "TAG_INVALID").await;
    let tags = json_body(server.get("/v2/repo/tags/list").await, 200).await;
    assert_eq!(tags["tags"], json!(["v1"]));
}

// --- deleting -------------------------------------------------------------

#[tokio::test]
async fn manifest_delete_by_digest_removes_the_manifest_and_its_tags() {
    let server = TestServer::start().await;
    let image = server.push_image("repo", "v1", 74).await;
    server
        .push_manifest("repo", "v2", OCI_MANIFEST, &image.manifest)
        .await;
    server.push_image("repo", "keep", 75).await;
    let resp = server
        .delete(&format!("/v2/repo/manifests/{}", image.digest))
        .await;
    assert_eq!(resp.status(), 202);
    let resp = server
        .get(&format!("/v2/repo/manifests/{}", image.digest))
        .await;
    assert_oci_error(resp, 404, "MANIFEST_UNKNOWN").await;
    for tag in ["v1", "v2"] {
        let resp = server.get(&format!("/v2/repo/manifests/{tag}")).await;
        assert_oci_error(resp, 404, "MANIFEST_UNKNOWN").await;
    }
    let tags = json_body(server.get("/v2/repo/tags/list").await, 200).await;
    assert_eq!(tags["tags"], json!(["keep"]));
}

#[tokio::test]
async fn manifest_delete_by_tag_removes_only_the_tag() {
    let server = TestServer::start().await;
    let image = server.push_image("repo", "v1", 76).await;
    server
        .push_manifest("repo", "v2", OCI_MANIFEST, &image.manifest)
        .await;
    let resp = server.delete("/v2/repo/manifests/v1").await;
    assert_eq!(resp.status(), 202);
    assert_oci_error(
        server.get("/v2/repo/manifests/v1").await,
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    let resp = server
        .get(&format!("/v2/repo/manifests/{}", image.digest))
        .await;
    assert_manifest_response(resp, OCI_MANIFEST, &image.manifest).await;
    let resp = server.get("/v2/repo/manifests/v2").await;
    assert_manifest_response(resp, OCI_MANIFEST, &image.manifest).await;
    let tags = json_body(server.get("/v2/repo/tags/list").await, 200).await;
    assert_eq!(tags["tags"], json!(["v2"]));
}

#[tokio::test]
async fn manifest_delete_of_unknown_manifest_is_manifest_unknown() {
    let server = TestServer::start().await;
    server.push_image("repo", "v1", 77).await;
    let digest = sha256_digest(b"no such manifest");
    let resp = server.delete(&format!("/v2/repo/manifests/{digest}")).await;
    assert_oci_error(resp, 404, "MANIFEST_UNKNOWN").await;
    let resp = server.delete("/v2/repo/manifests/v2").await;
    assert_oci_error(resp, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn manifest_delete_when_disabled_is_405_unsupported() {
    let server = TestServer::start_with(&["--delete-enabled", "false"]).await;
    let image = server.push_image("repo", "v1", 78).await;
    let resp = server
        .delete(&format!("/v2/repo/manifests/{}", image.digest))
        .await;
    assert_eq!(header(&resp, "allow").as_deref(), Some("GET, HEAD, PUT"));
    assert_oci_error(resp, 405, "UNSUPPORTED").await;
    let resp = server.delete("/v2/repo/manifests/v1").await;
    assert_eq!(header(&resp, "allow").as_deref(), Some("GET, HEAD, PUT"));
    assert_oci_error(resp, 405, "UNSUPPORTED").await;
    let resp = server.get("/v2/repo/manifests/v1").await;
    assert_manifest_response(resp, OCI_MANIFEST, &image.manifest).await;
}
