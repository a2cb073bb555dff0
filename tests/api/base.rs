//! The base endpoint, health probes, configuration, and the grammar of
//! names, tags and digests that every endpoint checks first.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{
    assert_oci_error, header, json_body, random_bytes, sha256_digest, sha512_digest, Image,
    ServerConfig, TestServer, OCI_MANIFEST,
};

const API_VERSION: &str = "registry/2.0";

#[tokio::test]
async fn base_endpoint_is_200_with_empty_json_object() {
    let server = TestServer::start().await;
    let resp = server.get("/v2/").await;
    assert_eq!(
        header(&resp, "docker-distribution-api-version").as_deref(),
        Some(API_VERSION)
    );
    assert_eq!(json_body(resp, 200).await, json!({}));
}

#[tokio::test]
async fn base_endpoint_answers_head() {
    let server = TestServer::start().await;
    let resp = server.head("/v2/").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "docker-distribution-api-version").as_deref(),
        Some(API_VERSION)
    );
}

#[tokio::test]
async fn every_response_carries_the_api_version_header() {
    let server = TestServer::start().await;
    let digest = sha256_digest(b"nothing");
    let paths = [
        "/healthz".to_owned(),
        "/readyz".to_owned(),
        "/v2/_catalog".to_owned(),
        format!("/v2/missing/blobs/{digest}"),
        "/v2/missing/manifests/latest".to_owned(),
        "/v2/Invalid/tags/list".to_owned(),
        format!("/v2/repo/referrers/{digest}"),
    ];
    for path in paths {
        let resp = server.get(&path).await;
        assert_eq!(
            header(&resp, "docker-distribution-api-version").as_deref(),
            Some(API_VERSION),
            "GET {path} answered {} without the API version header",
            resp.status()
        );
    }
}

#[tokio::test]
async fn healthz_is_200() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn readyz_is_200_once_the_store_is_open() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/readyz").await.status(), 200);
    assert!(
        server.root().join("artispace.db").is_file(),
        "ready before <root>/artispace.db exists"
    );
}

#[tokio::test]
async fn missing_root_is_created_on_start() {
    let server = TestServer::start_configured(ServerConfig {
        root_subdir: Some("not/yet/there".to_owned()),
        ..ServerConfig::default()
    })
    .await;
    assert!(server.root().is_dir());
    server.push_blob("repo", b"created").await;
}

#[tokio::test]
async fn a_method_an_endpoint_does_not_answer_is_405_with_the_methods_it_does() {
    let server = TestServer::start().await;
    let image = server.push_image("repo", "v1", 60).await;
    let location = server.start_upload("repo").await;
    let blob = format!("/v2/repo/blobs/{}", sha256_digest(&image.layer));
    for (method, path, allow) in [
        ("POST", "/v2/".to_owned(), "GET, HEAD"),
        ("OPTIONS", "/v2/".to_owned(), "GET, HEAD"),
        ("DELETE", "/v2/_catalog".to_owned(), "GET"),
        ("POST", "/v2/repo/tags/list".to_owned(), "GET"),
        ("PUT", format!("/v2/repo/referrers/{}", image.digest), "GET"),
        ("PUT", blob, "GET, HEAD, DELETE"),
        ("GET", "/v2/repo/blobs/uploads/".to_owned(), "POST"),
        ("POST", location, "GET, PATCH, PUT, DELETE"),
        (
            "POST",
            "/v2/repo/manifests/v1".to_owned(),
            "GET, HEAD, PUT, DELETE",
        ),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = server
            .client
            .request(method.clone(), server.location_url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&resp, "allow").as_deref(),
            Some(allow),
            "{method} {path}"
        );
        assert_oci_error(resp, 405, "UNSUPPORTED").await;
    }
}

#[tokio::test]
async fn settings_are_read_from_artispace_environment_variables() {
    let server = TestServer::start_configured(ServerConfig {
        root_via_env: true,
        env: vec![("ARTISPACE_DELETE_ENABLED".to_owned(), "false".to_owned())],
        ..ServerConfig::default()
    })
    .await;
    let digest = server.push_blob("repo", b"env").await;
    assert!(
        server.root().join("artispace.db").is_file(),
        "ARTISPACE_ROOT was not used as the root"
    );
    let resp = server.delete(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(header(&resp, "allow").as_deref(), Some("GET, HEAD"));
    assert_oci_error(resp, 405, "UNSUPPORTED").await;
}

#[tokio::test]
async fn requests_are_logged_as_json_lines_with_log_format_json() {
    let mut server = TestServer::start_configured(ServerConfig {
        args: vec!["--log-format".to_owned(), "json".to_owned()],
        log_level: Some("info".to_owned()),
        ..ServerConfig::default()
    })
    .await;
    assert_eq!(server.get("/v2/").await.status(), 200);
    server.stop().await;
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line:?}"))
        })
        .collect();
    let logged = lines.iter().any(|line| {
        let mut values = Vec::new();
        collect_scalars(line, &mut values);
        values.contains(&json!("GET"))
            && values.contains(&json!("/v2/"))
            && values.contains(&json!(200))
    });
    assert!(logged, "no JSON log line with GET /v2/ 200 in:\n{log}");
}

/// A download is logged when its body has gone out, with the bytes that
/// did: whole, cut short by a client that hung up, or none for HEAD, and
/// how long it took in milliseconds to the microsecond.
#[tokio::test]
async fn downloads_are_logged_with_the_bytes_that_went_out() {
    let mut server = TestServer::start_configured(ServerConfig {
        args: vec!["--log-format".to_owned(), "json".to_owned()],
        log_level: Some("info".to_owned()),
        ..ServerConfig::default()
    })
    .await;
    // Larger than loopback socket buffers, so that a client that stops
    // reading leaves the server still sending.
    let data = random_bytes(130, 32 * 1024 * 1024);
    let digest = server.push_blob("logged", &data).await;
    let path = format!("/v2/logged/blobs/{digest}");

    let whole = server.get(&path).await.bytes().await.unwrap();
    assert_eq!(whole.len(), data.len());
    assert_eq!(server.head(&path).await.status(), 200);
    let mut tcp = tokio::net::TcpStream::connect(server.host()).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.host());
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut start = vec![0u8; 64 * 1024];
    tcp.read_exact(&mut start).await.unwrap();
    drop(tcp);
    server.stop().await;

    let log = server.log();
    let mut downloads = Vec::new();
    for line in log.lines().filter(|l| l.contains(path.as_str())) {
        let duration = line
            .split_once("\"duration_ms\":")
            .map(|(_, rest)| rest.split([',', '}']).next().unwrap_or_default())
            .unwrap_or_else(|| panic!("no duration in {line}"));
        let decimals = duration.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 3, "duration not to the microsecond: {line}");
        let line: Value = serde_json::from_str(line).unwrap();
        downloads.push((
            line["method"].as_str().unwrap_or_default().to_owned(),
            line["bytes_out"].as_u64().unwrap_or(u64::MAX),
            line["complete"].as_bool(),
        ));
    }
    let size = data.len() as u64;
    assert!(
        downloads.contains(&("GET".to_owned(), size, Some(true))),
        "{downloads:?}"
    );
    assert!(
        downloads.contains(&("HEAD".to_owned(), 0, Some(true))),
        "{downloads:?}"
    );
    assert!(
        downloads
            .iter()
            .any(|(m, sent, complete)| m == "GET" && *sent < size && *complete == Some(false)),
        "no cut-short download in {downloads:?}"
    );
}

fn collect_scalars(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) => map.values().for_each(|v| collect_scalars(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_scalars(v, out)),
        scalar => out.push(scalar.clone()),
    }
}

/// Odd but well-formed HTTP: every answer is a client error or success,
/// never a 5xx, and the server is still serving afterwards.
#[tokio::test]
async fn hostile_requests_get_client_errors_and_the_server_stays_up() {
    let server = TestServer::start().await;
    let digest = server.push_blob("repo", b"target").await;
    let location = server.start_upload("repo").await;
    let client = &server.client;
    let long_name = "a/".repeat(2000) + "a";
    let requests = [
        client.get(server.url(&format!("/v2/{long_name}/tags/list"))),
        client.get(server.url("/v2/repo/blobs/uploads/%ff%fe")),
        client.get(server.url("/v2/repo/manifests/%00")),
        client.get(server.url("/v2/repo/tags/list?n=99999999999999999999999")),
        client.get(server.url("/v2/_catalog?n=18446744073709551616&last=%ff")),
        client
            .get(server.url(&format!("/v2/repo/blobs/{digest}")))
            .header("range", "bytes=abc-def"),
        client
            .get(server.url(&format!("/v2/repo/blobs/{digest}")))
            .header("range", "bytes=-0"),
        client
            .get(server.url(&format!("/v2/repo/blobs/{digest}")))
            .header("range", "bytes=18446744073709551615-"),
        client
            .patch(server.location_url(&location))
            .header("content-range", "0-18446744073709551615")
            .body(b"x".to_vec()),
        client
            .patch(server.location_url(&location))
            .header("content-range", "5-2")
            .body(b"x".to_vec()),
        client
            .patch(server.location_url(&location))
            .header("content-range", "garbage")
            .body(b"x".to_vec()),
        client
            .put(server.url("/v2/repo/manifests/v1"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(
                b"{\"schemaVersion\":2,\"config\":{\"digest\":1,\"size\":-1},\"layers\":null}"
                    .to_vec(),
            ),
        client
            .put(server.url("/v2/repo/manifests/v1"))
            .header("content-type", "text/plain")
            .body(b"{}".to_vec()),
        client.post(server.url("/v2/repo/blobs/uploads/?mount=&from=")),
        client.post(server.url("/v2/repo/blobs/uploads/?digest=")),
        client.request(reqwest::Method::OPTIONS, server.url("/v2/repo/tags/list")),
    ];
    let mut broken = Vec::new();
    for request in requests {
        let request = request.build().unwrap();
        let described = format!("{} {}", request.method(), request.url());
        match client.execute(request).await {
            Ok(resp) if resp.status().is_server_error() => {
                broken.push(format!("{described} answered {}", resp.status()))
            }
            Ok(_) => {}
            Err(e) => broken.push(format!("{described} got no response: {e}")),
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    assert_eq!(server.get("/healthz").await.status(), 200);
    let blob = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(blob.bytes().await.unwrap(), &b"target"[..]);
}

// --- repository names ---------------------------------------------------

async fn upload_start_status(server: &TestServer, name: &str) -> reqwest::Response {
    server
        .client
        .post(server.url(&format!("/v2/{name}/blobs/uploads/")))
        .send()
        .await
        .expect("POST upload")
}

#[tokio::test]
async fn multi_component_names_are_accepted() {
    let server = TestServer::start().await;
    for name in ["john/busybox", "a/b/c/d", "a/b/c/d/e/f/g/h/i/j"] {
        let image = server.push_image(name, "latest", 1).await;
        let resp = server.get(&format!("/v2/{name}/manifests/latest")).await;
        assert_eq!(resp.status(), 200, "GET manifest of {name}");
        assert_eq!(resp.bytes().await.unwrap(), image.manifest);
    }
}

#[tokio::test]
async fn names_with_spec_separators_are_accepted() {
    let server = TestServer::start().await;
    for name in [
        "a.b",
        "a_b",
        "a__b",
        "a-b",
        "a---b",
        "0/1.2/x-y_z__w",
        "registry.example/v1.0",
    ] {
        let resp = upload_start_status(&server, name).await;
        assert_eq!(resp.status(), 202, "starting an upload in {name:?}");
    }
}

#[tokio::test]
async fn name_of_255_characters_is_accepted() {
    let server = TestServer::start().await;
    let name = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    assert_eq!(name.len(), 255);
    let resp = upload_start_status(&server, &name).await;
    assert_eq!(resp.status(), 202);
}

#[tokio::test]
async fn name_longer_than_255_characters_is_name_invalid() {
    let server = TestServer::start().await;
    let name = format!("{}/{}", "a".repeat(128), "b".repeat(127));
    assert_eq!(name.len(), 256);
    assert_oci_error(
        upload_start_status(&server, &name).await,
        400,
        "NAME_INVALID",
    )
    .await;
}

#[tokio::test]
async fn uppercase_name_is_name_invalid() {
    let server = TestServer::start().await;
    for name in ["Library/busybox", "library/BusyBox", "A"] {
        assert_oci_error(
            upload_start_status(&server, name).await,
            400,
            "NAME_INVALID",
        )
        .await;
    }
}

#[tokio::test]
async fn name_with_bad_separators_is_name_invalid() {
    let server = TestServer::start().await;
    for name in [
        "a..b", "a___b", "a-", "-a", ".a", "_a", "a.", "a/_b", "a/.b", "a.-b", "a_-b", "a//b",
        "a/b/",
    ] {
        assert_oci_error(
            upload_start_status(&server, name).await,
            400,
            "NAME_INVALID",
        )
        .await;
    }
}

#[tokio::test]
async fn name_with_other_characters_is_name_invalid() {
    let server = TestServer::start().await;
    for name in ["a+b", "a%20b", "a~b", "a:b", "a@b"] {
        assert_oci_error(
            upload_start_status(&server, name).await,
            400,
            "NAME_INVALID",
        )
        .await;
    }
}

#[tokio::test]
async fn invalid_name_is_name_invalid_on_every_endpoint() {
    let server = TestServer::start().await;
    let name = "Bad..Name";
    let digest = sha256_digest(b"x");
    let uuid = uuid::Uuid::new_v4();
    let client = &server.client;
    let requests = [
        client.get(server.url(&format!("/v2/{name}/tags/list"))),
        client.get(server.url(&format!("/v2/{name}/manifests/latest"))),
        client
            .put(server.url(&format!("/v2/{name}/manifests/latest")))
            .header("content-type", OCI_MANIFEST)
            .body(Image::new(1).manifest),
        client.delete(server.url(&format!("/v2/{name}/manifests/{digest}"))),
        client.get(server.url(&format!("/v2/{name}/blobs/{digest}"))),
        client.delete(server.url(&format!("/v2/{name}/blobs/{digest}"))),
        client.post(server.url(&format!("/v2/{name}/blobs/uploads/"))),
        client.get(server.url(&format!("/v2/{name}/blobs/uploads/{uuid}"))),
        client.patch(server.url(&format!("/v2/{name}/blobs/uploads/{uuid}"))),
        client.put(server.url(&format!("/v2/{name}/blobs/uploads/{uuid}?digest={digest}"))),
        client.delete(server.url(&format!("/v2/{name}/blobs/uploads/{uuid}"))),
        client.get(server.url(&format!("/v2/{name}/referrers/{digest}"))),
    ];
    for request in requests {
        let resp = request.send().await.expect("request");
        assert_oci_error(resp, 400, "NAME_INVALID").await;
    }
}

#[tokio::test]
async fn names_containing_endpoint_words_are_accepted() {
    let server = TestServer::start().await;
    let name = "blobs/manifests/tags/uploads/referrers";
    let image = server.push_image(name, "v1", 2).await;
    let resp = server.get(&format!("/v2/{name}/manifests/v1")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
    let tags = json_body(server.get(&format!("/v2/{name}/tags/list")).await, 200).await;
    assert_eq!(tags, json!({"name": name, "tags": ["v1"]}));
    let blob = server
        .get(&format!("/v2/{name}/blobs/{}", sha256_digest(&image.layer)))
        .await;
    assert_eq!(blob.status(), 200);
}

// --- tags -----------------------------------------------------------------

#[tokio::test]
async fn tags_of_the_spec_grammar_are_accepted() {
    let server = TestServer::start().await;
    let image = server.push_image("repo", "seed", 3).await;
    let long = "t".repeat(128);
    for tag in ["latest", "_private", "1.0.0-rc_1", "V1", "0", long.as_str()] {
        server
            .push_manifest("repo", tag, OCI_MANIFEST, &image.manifest)
            .await;
        let resp = server.get(&format!("/v2/repo/manifests/{tag}")).await;
        assert_eq!(resp.status(), 200, "GET tag {tag:?}");
    }
}

#[tokio::test]
async fn tag_breaking_the_grammar_is_tag_invalid() {
    let server = TestServer::start().await;
    let image = server.push_image("repo", "seed", 4).await;
    let too_long = "t".repeat(129);
    for tag in ["-dash", ".dot", "a+b", "a~b", too_long.as_str()] {
        let resp = server
            .put_manifest("repo", tag, OCI_MANIFEST, &image.manifest)
            .await;
        assert_oci_error(resp, 400, "TAG_INVALID").await;
        let resp = server.get(&format!("/v2/repo/manifests/{tag}")).await;
        assert_oci_error(resp, 400, "TAG_INVALID").await;
    }
}

// --- digests --------------------------------------------------------------

/// Malformed digests, each paired with why it is wrong.
fn malformed_digests() -> Vec<(String, &'static str)> {
    let hex64 = "a".repeat(64);
    vec![
        (format!("sha256:{}", "a".repeat(63)), "sha256 with 63 hex"),
        (format!("sha256:{}", "a".repeat(65)), "sha256 with 65 hex"),
        ("sha256:abc".to_owned(), "sha256 with 3 hex"),
        (format!("sha256:{}", "A".repeat(64)), "uppercase hex"),
        (format!("sha256:{}", "g".repeat(64)), "non-hex characters"),
        (format!("md5:{}", "a".repeat(32)), "unknown algorithm md5"),
        (
            format!("sha384:{}", "a".repeat(96)),
            "unknown algorithm sha384",
        ),
        (format!("sha512:{hex64}"), "sha512 with 64 hex"),
        ("sha256:".to_owned(), "empty hex"),
        (format!(":{hex64}"), "empty algorithm"),
    ]
}

#[tokio::test]
async fn malformed_blob_digest_is_digest_invalid() {
    let server = TestServer::start().await;
    server.push_blob("repo", b"exists").await;
    for (digest, why) in malformed_digests() {
        let resp = server.get(&format!("/v2/repo/blobs/{digest}")).await;
        assert_eq!(resp.status(), 400, "GET blob with {why}");
        assert_oci_error(resp, 400, "DIGEST_INVALID").await;
    }
}

#[tokio::test]
async fn sha256_digest_with_wrong_length_is_digest_invalid() {
    let server = TestServer::start().await;
    server.push_blob("repo", b"exists").await;
    let short = format!("sha256:{}", "0".repeat(63));
    let resp = server.head(&format!("/v2/repo/blobs/{short}")).await;
    assert_eq!(resp.status(), 400);
    let resp = server.get(&format!("/v2/repo/blobs/{short}")).await;
    assert_oci_error(resp, 400, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn uppercase_hex_digest_is_digest_invalid() {
    let server = TestServer::start().await;
    let digest = server.push_blob("repo", b"upper").await;
    let upper = format!("sha256:{}", digest["sha256:".len()..].to_uppercase());
    let resp = server.get(&format!("/v2/repo/blobs/{upper}")).await;
    assert_oci_error(resp, 400, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn unknown_digest_algorithm_is_digest_invalid() {
    let server = TestServer::start().await;
    server.push_blob("repo", b"exists").await;
    let digest = format!("sha1:{}", "a".repeat(40));
    let resp = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_oci_error(resp, 400, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn sha512_digest_with_128_hex_is_accepted() {
    let server = TestServer::start().await;
    let data = b"a blob addressed by sha512";
    let digest = sha512_digest(data);
    assert_eq!(digest.len(), "sha512:".len() + 128);
    let resp = server
        .client
        .post(server.url(&format!("/v2/repo/blobs/uploads/?digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(&*digest)
    );
    let resp = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(&*digest)
    );
    assert_eq!(resp.bytes().await.unwrap(), &data[..]);
}

#[tokio::test]
async fn unknown_sha512_blob_is_blob_unknown_not_digest_invalid() {
    let server = TestServer::start().await;
    server.push_blob("repo", b"exists").await;
    let digest = sha512_digest(b"never pushed");
    let resp = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_oci_error(resp, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn malformed_digest_in_monolithic_post_is_digest_invalid() {
    let server = TestServer::start().await;
    for (digest, why) in malformed_digests() {
        let resp = server
            .client
            .post(server.url(&format!("/v2/repo/blobs/uploads/?digest={digest}")))
            .header("content-type", "application/octet-stream")
            .body(b"data".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "POST ?digest= with {why}");
        assert_oci_error(resp, 400, "DIGEST_INVALID").await;
    }
}

#[tokio::test]
async fn malformed_digest_in_upload_put_is_digest_invalid() {
    let server = TestServer::start().await;
    for (digest, why) in malformed_digests() {
        let location = server.start_upload("repo").await;
        let resp = server
            .put_upload(&location, &digest, b"data".to_vec())
            .await;
        assert_eq!(resp.status(), 400, "PUT ?digest= with {why}");
        assert_oci_error(resp, 400, "DIGEST_INVALID").await;
    }
}

#[tokio::test]
async fn malformed_digest_in_mount_is_digest_invalid() {
    let server = TestServer::start().await;
    server.push_blob("other", b"exists").await;
    for (digest, why) in malformed_digests() {
        let resp = server
            .client
            .post(server.url(&format!(
                "/v2/repo/blobs/uploads/?mount={digest}&from=other"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "POST ?mount= with {why}");
        assert_oci_error(resp, 400, "DIGEST_INVALID").await;
    }
}

#[tokio::test]
async fn malformed_digest_as_manifest_reference_is_digest_invalid() {
    let server = TestServer::start().await;
    let image = server.push_image("repo", "latest", 5).await;
    for (digest, why) in malformed_digests() {
        let resp = server.get(&format!("/v2/repo/manifests/{digest}")).await;
        assert_eq!(resp.status(), 400, "GET manifest by {why}");
        assert_oci_error(resp, 400, "DIGEST_INVALID").await;
        let resp = server
            .put_manifest("repo", &digest, OCI_MANIFEST, &image.manifest)
            .await;
        assert_eq!(resp.status(), 400, "PUT manifest by {why}");
        assert_oci_error(resp, 400, "DIGEST_INVALID").await;
    }
}

#[tokio::test]
async fn manifest_reference_with_colon_is_a_digest_not_a_tag() {
    let server = TestServer::start().await;
    server.push_image("repo", "latest", 6).await;
    let resp = server.get("/v2/repo/manifests/not:adigest").await;
    assert_oci_error(resp, 400, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn errors_are_oci_error_json() {
    let server = TestServer::start().await;
    let resp = server
        .get(&format!("/v2/repo/blobs/{}", sha256_digest(b"missing")))
        .await;
    assert_eq!(resp.status(), 404);
    assert!(header(&resp, "content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
    let body: Value = resp.json().await.unwrap();
    let errors = body["errors"].as_array().expect("errors is an array");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["code"], "BLOB_UNKNOWN");
    assert!(errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
}
