//! Conditional GET and HEAD of blobs and manifests: `If-None-Match` (304
//! while the content is the same), `If-Match` (412 when it is not) and
//! `If-Range` (a range only of the same content); and conditional manifest
//! PUT (`If-None-Match: *` creates only, `If-Match` moves a tag only from
//! the manifest it names, atomically). The entity tag is the quoted digest.

use reqwest::Response;

use crate::common::{
    assert_oci_error, header, random_bytes, sha256_digest, Image, TestServer, OCI_MANIFEST,
};

async fn request(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut request = server.client.request(method, server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("conditional request")
}

fn quoted(digest: &str) -> String {
    format!("\"{digest}\"")
}

/// A 304 carries the validators and nothing of the content.
async fn assert_not_modified(resp: Response, digest: &str) {
    assert_eq!(resp.status(), 304);
    assert_eq!(header(&resp, "etag"), Some(quoted(digest)));
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(digest)
    );
    assert_eq!(header(&resp, "content-type"), None);
    assert!(resp.bytes().await.unwrap().is_empty(), "304 has no body");
}

#[tokio::test]
async fn blob_get_and_head_are_304_while_the_client_has_the_content() {
    let server = TestServer::start().await;
    let data = random_bytes(700, 4096);
    let digest = server.push_blob("repo", &data).await;
    let path = format!("/v2/repo/blobs/{digest}");
    let current = quoted(&digest);
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let resp = request(
            &server,
            method.clone(),
            &path,
            &[("if-none-match", &current)],
        )
        .await;
        assert_eq!(
            header(&resp, "cache-control").as_deref(),
            Some("max-age=31536000"),
            "{method}"
        );
        assert_not_modified(resp, &digest).await;
        // Any tag, a weak one, or the tag in a list.
        for value in [
            "*".to_owned(),
            format!("W/{current}"),
            format!("\"x\", {current}"),
        ] {
            let resp = request(&server, method.clone(), &path, &[("if-none-match", &value)]).await;
            assert_not_modified(resp, &digest).await;
        }
    }
    // Another tag: the whole blob.
    let other = quoted(&sha256_digest(b"other"));
    let resp = request(
        &server,
        reqwest::Method::GET,
        &path,
        &[("if-none-match", &other)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), data);
}

#[tokio::test]
async fn a_tag_is_304_until_it_moves_to_another_manifest() {
    let server = TestServer::start().await;
    let first = server.push_image("repo", "latest", 701).await;
    let current = quoted(&first.digest);
    let conditional = [("if-none-match", current.as_str())];
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let resp = request(&server, method, "/v2/repo/manifests/latest", &conditional).await;
        assert_not_modified(resp, &first.digest).await;
    }
    // By digest too.
    let by_digest = format!("/v2/repo/manifests/{}", first.digest);
    let resp = request(&server, reqwest::Method::GET, &by_digest, &conditional).await;
    assert_not_modified(resp, &first.digest).await;

    let second = server.push_image("repo", "latest", 702).await;
    let resp = request(
        &server,
        reqwest::Method::GET,
        "/v2/repo/manifests/latest",
        &conditional,
    )
    .await;
    assert_eq!(
        resp.status(),
        200,
        "the tag moved: the new manifest is sent"
    );
    assert_eq!(header(&resp, "etag"), Some(quoted(&second.digest)));
    assert_eq!(resp.bytes().await.unwrap(), second.manifest);
}

#[tokio::test]
async fn if_match_with_other_content_is_412_and_with_this_content_sends_it() {
    let server = TestServer::start().await;
    let first = server.push_image("repo", "latest", 703).await;
    let second = server.push_image("repo", "latest", 704).await;
    let stale = quoted(&first.digest);
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let resp = request(
            &server,
            method.clone(),
            "/v2/repo/manifests/latest",
            &[("if-match", &stale)],
        )
        .await;
        assert_eq!(resp.status(), 412, "{method}");
        if method == reqwest::Method::GET {
            assert_oci_error(resp, 412, "UNKNOWN").await;
        }
    }
    let blob = format!("/v2/repo/blobs/{}", sha256_digest(&first.layer));
    let resp = request(
        &server,
        reqwest::Method::GET,
        &blob,
        &[("if-match", &stale)],
    )
    .await;
    assert_oci_error(resp, 412, "UNKNOWN").await;

    let current = quoted(&second.digest);
    let resp = request(
        &server,
        reqwest::Method::GET,
        "/v2/repo/manifests/latest",
        &[("if-match", &current)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), second.manifest);
}

#[tokio::test]
async fn if_range_gives_the_range_only_of_the_same_content() {
    let server = TestServer::start().await;
    let data = random_bytes(705, 1000);
    let digest = server.push_blob("repo", &data).await;
    let path = format!("/v2/repo/blobs/{digest}");
    let current = quoted(&digest);
    let resp = request(
        &server,
        reqwest::Method::GET,
        &path,
        &[("range", "bytes=100-199"), ("if-range", &current)],
    )
    .await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        header(&resp, "content-range").as_deref(),
        Some("bytes 100-199/1000")
    );
    assert_eq!(resp.bytes().await.unwrap(), &data[100..200]);

    // Another tag, or a date (there is no Last-Modified to match): the whole blob.
    let other = quoted(&sha256_digest(b"other"));
    for if_range in [other.as_str(), "Wed, 21 Oct 2015 07:28:00 GMT"] {
        let resp = request(
            &server,
            reqwest::Method::GET,
            &path,
            &[("range", "bytes=100-199"), ("if-range", if_range)],
        )
        .await;
        assert_eq!(resp.status(), 200, "{if_range}");
        assert_eq!(header(&resp, "content-range"), None);
        assert_eq!(resp.bytes().await.unwrap(), data);
    }
}

#[tokio::test]
async fn unknown_content_is_404_whatever_the_conditions() {
    let server = TestServer::start().await;
    server.push_image("repo", "latest", 706).await;
    let missing = sha256_digest(b"never pushed");
    for (path, code) in [
        (format!("/v2/repo/blobs/{missing}"), "BLOB_UNKNOWN"),
        (format!("/v2/repo/manifests/{missing}"), "MANIFEST_UNKNOWN"),
        ("/v2/repo/manifests/nope".to_owned(), "MANIFEST_UNKNOWN"),
    ] {
        for conditions in [[("if-none-match", "*")], [("if-match", "*")]] {
            let resp = request(&server, reqwest::Method::GET, &path, &conditions).await;
            assert_oci_error(resp, 404, code).await;
        }
    }
}

#[tokio::test]
async fn malformed_conditions_are_ignored() {
    let server = TestServer::start().await;
    let image = server.push_image("repo", "latest", 707).await;
    // Unquoted: not an entity tag, so as if the field were absent.
    for name in ["if-none-match", "if-match"] {
        let resp = request(
            &server,
            reqwest::Method::GET,
            "/v2/repo/manifests/latest",
            &[(name, &image.digest)],
        )
        .await;
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.bytes().await.unwrap(), image.manifest);
    }
}

async fn put_if(
    server: &TestServer,
    reference: &str,
    manifest: &[u8],
    condition: (&str, &str),
) -> Response {
    server
        .client
        .put(server.url(&format!("/v2/repo/manifests/{reference}")))
        .header("content-type", OCI_MANIFEST)
        .header(condition.0, condition.1)
        .body(manifest.to_vec())
        .send()
        .await
        .expect("conditional PUT")
}

/// The digest `repo:reference` names now, if any.
async fn tagged(server: &TestServer, reference: &str) -> Option<String> {
    let resp = server
        .head(&format!("/v2/repo/manifests/{reference}"))
        .await;
    header(&resp, "docker-content-digest")
}

/// Pushes the blobs of image `seed` without its manifest.
async fn image_blobs(server: &TestServer, seed: u64) -> Image {
    let image = Image::new(seed);
    server.push_blob("repo", &image.config).await;
    server.push_blob("repo", &image.layer).await;
    image
}

#[tokio::test]
async fn if_none_match_star_creates_a_tag_only_once() {
    let server = TestServer::start().await;
    let (first, second) = (
        image_blobs(&server, 710).await,
        image_blobs(&server, 711).await,
    );
    let resp = put_if(&server, "release", &first.manifest, ("if-none-match", "*")).await;
    assert_eq!(resp.status(), 201);
    let resp = put_if(&server, "release", &second.manifest, ("if-none-match", "*")).await;
    assert_eq!(resp.status(), 412);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNKNOWN");
    assert_eq!(
        body["errors"][0]["detail"]["current"],
        first.digest.as_str()
    );
    assert_eq!(tagged(&server, "release").await, Some(first.digest.clone()));
    // Nothing of the refused manifest was stored.
    let resp = server
        .get(&format!("/v2/repo/manifests/{}", second.digest))
        .await;
    assert_oci_error(resp, 404, "MANIFEST_UNKNOWN").await;
    // By digest: stored once, then refused.
    for expected in [201, 412] {
        let create_only = ("if-none-match", "*");
        let resp = put_if(&server, &second.digest, &second.manifest, create_only).await;
        assert_eq!(resp.status(), expected);
    }
}

#[tokio::test]
async fn if_match_moves_a_tag_only_from_the_manifest_it_names() {
    let server = TestServer::start().await;
    let first = server.push_image("repo", "latest", 712).await;
    let second = image_blobs(&server, 713).await;
    let third = image_blobs(&server, 714).await;
    // A tag that does not exist matches nothing, not even *.
    for condition in ["*", &quoted(&first.digest)] {
        let resp = put_if(&server, "new", &second.manifest, ("if-match", condition)).await;
        assert_eq!(resp.status(), 412, "If-Match: {condition}");
    }
    assert_eq!(tagged(&server, "new").await, None);

    let current = quoted(&first.digest);
    let resp = put_if(&server, "latest", &second.manifest, ("if-match", &current)).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(tagged(&server, "latest").await, Some(second.digest.clone()));
    // The same condition again is stale now: refused, the tag stays.
    let resp = put_if(&server, "latest", &third.manifest, ("if-match", &current)).await;
    assert_eq!(resp.status(), 412);
    assert_eq!(tagged(&server, "latest").await, Some(second.digest.clone()));
}

#[tokio::test]
async fn of_writers_racing_from_the_same_manifest_exactly_one_moves_the_tag() {
    let server = TestServer::start().await;
    let base = server.push_image("repo", "latest", 715).await;
    let mut candidates = Vec::new();
    for seed in 716..724 {
        candidates.push(image_blobs(&server, seed).await);
    }
    let current = quoted(&base.digest);
    let puts = candidates
        .iter()
        .map(|image| put_if(&server, "latest", &image.manifest, ("if-match", &current)));
    let statuses: Vec<u16> = futures_util::future::join_all(puts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 412).count(),
        candidates.len() - 1,
        "{statuses:?}"
    );
    let winner = statuses.iter().position(|&s| s == 201).unwrap();
    assert_eq!(
        tagged(&server, "latest").await,
        Some(candidates[winner].digest.clone())
    );
}
