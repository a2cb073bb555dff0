//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`: lexical order and
//! `n`/`last` pagination with `Link` headers.

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::common::{
    assert_oci_error, descriptor, header, image_manifest, json_body, json_bytes, Image, TestServer,
    OCI_EMPTY, OCI_MANIFEST,
};

/// Tags whose lexical (byte) order differs from push order and from a
/// "natural" sort (`v10` before `v2`).
const TAGS_IN_PUSH_ORDER: [&str; 6] = ["v2", "latest", "v10", "a_b", "1.0", "a-b"];
const TAGS_SORTED: [&str; 6] = ["1.0", "a-b", "a_b", "latest", "v10", "v2"];

async fn server_with_tags(tags: &[&str]) -> TestServer {
    let server = TestServer::start().await;
    let image = server.push_image("repo", tags[0], 80).await;
    for tag in &tags[1..] {
        server
            .push_manifest("repo", tag, OCI_MANIFEST, &image.manifest)
            .await;
    }
    server
}

async fn tags_page(server: &TestServer, query: &str) -> (Value, Option<String>) {
    let resp = server.get(&format!("/v2/repo/tags/list{query}")).await;
    let link = header(&resp, "link");
    (json_body(resp, 200).await, link)
}

/// Repositories whose lexical order differs from push order: `-` (0x2d)
/// sorts before `/` (0x2f).
const REPOS_IN_PUSH_ORDER: [&str; 5] = ["c", "a/b", "a", "b/c", "a-b"];
const REPOS_SORTED: [&str; 5] = ["a", "a-b", "a/b", "b/c", "c"];

async fn server_with_repos(repos: &[&str]) -> TestServer {
    let server = TestServer::start().await;
    for (seed, repo) in repos.iter().enumerate() {
        server.push_image(repo, "latest", 90 + seed as u64).await;
    }
    server
}

async fn catalog_page(server: &TestServer, query: &str) -> (Value, Option<String>) {
    let resp = server.get(&format!("/v2/_catalog{query}")).await;
    let link = header(&resp, "link");
    (json_body(resp, 200).await, link)
}

// --- tags -----------------------------------------------------------------

#[tokio::test]
async fn tags_list_is_in_lexical_order() {
    let server = server_with_tags(&TAGS_IN_PUSH_ORDER).await;
    let (body, link) = tags_page(&server, "").await;
    assert_eq!(body, json!({"name": "repo", "tags": TAGS_SORTED}));
    assert_eq!(link, None);
}

#[tokio::test]
async fn tags_list_names_a_multi_component_repository() {
    let server = TestServer::start().await;
    server.push_image("a/b/c", "v1", 81).await;
    let body = json_body(server.get("/v2/a/b/c/tags/list").await, 200).await;
    assert_eq!(body, json!({"name": "a/b/c", "tags": ["v1"]}));
}

#[tokio::test]
async fn tags_list_of_untagged_digests_only_lists_tags() {
    let server = TestServer::start().await;
    server.push_image("repo", "v1", 82).await;
    let untagged = Image::new(83);
    server.push_blob("repo", &untagged.config).await;
    server.push_blob("repo", &untagged.layer).await;
    server
        .push_manifest("repo", &untagged.digest, OCI_MANIFEST, &untagged.manifest)
        .await;
    let (body, _) = tags_page(&server, "").await;
    assert_eq!(body["tags"], json!(["v1"]));
}

#[tokio::test]
async fn tags_list_with_n_pages_with_link_until_the_end() {
    let server = server_with_tags(&TAGS_IN_PUSH_ORDER).await;
    let (body, link) = tags_page(&server, "?n=2").await;
    assert_eq!(body, json!({"name": "repo", "tags": ["1.0", "a-b"]}));
    assert_eq!(
        link.as_deref(),
        Some(r#"</v2/repo/tags/list?n=2&last=a-b>; rel="next""#)
    );
    let (body, link) = tags_page(&server, "?n=2&last=a-b").await;
    assert_eq!(body["tags"], json!(["a_b", "latest"]));
    assert_eq!(
        link.as_deref(),
        Some(r#"</v2/repo/tags/list?n=2&last=latest>; rel="next""#)
    );
    let (body, link) = tags_page(&server, "?n=2&last=latest").await;
    assert_eq!(body["tags"], json!(["v10", "v2"]));
    assert_eq!(link, None, "no Link when nothing remains");
}

#[tokio::test]
async fn tags_list_following_link_headers_visits_every_tag_once() {
    let server = server_with_tags(&TAGS_IN_PUSH_ORDER).await;
    let mut path = "/v2/repo/tags/list?n=4".to_owned();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let resp = server.get(&path).await;
        let link = header(&resp, "link");
        let body = json_body(resp, 200).await;
        for tag in body["tags"].as_array().unwrap() {
            seen.push(tag.as_str().unwrap().to_owned());
        }
        match link {
            Some(link) => path = link_target(&link),
            None => break,
        }
    }
    assert_eq!(seen, TAGS_SORTED);
}

/// `</v2/…?n=2&last=x>; rel="next"` → `/v2/…?n=2&last=x`
fn link_target(link: &str) -> String {
    let start = link.find('<').expect("Link has <") + 1;
    let end = link.find('>').expect("Link has >");
    assert!(link[end..].contains(r#"rel="next""#), "Link {link:?}");
    link[start..end].to_owned()
}

#[tokio::test]
async fn tags_list_with_n_larger_than_the_rest_has_no_link() {
    let server = server_with_tags(&TAGS_IN_PUSH_ORDER).await;
    let (body, link) = tags_page(&server, "?n=100").await;
    assert_eq!(body["tags"], json!(TAGS_SORTED));
    assert_eq!(link, None);
}

#[tokio::test]
async fn tags_list_with_n_equal_to_the_count_has_no_link() {
    let server = server_with_tags(&TAGS_IN_PUSH_ORDER).await;
    let (body, link) = tags_page(&server, "?n=6").await;
    assert_eq!(body["tags"], json!(TAGS_SORTED));
    assert_eq!(link, None);
}

#[tokio::test]
async fn tags_list_with_n_zero_is_empty_without_link() {
    let server = server_with_tags(&TAGS_IN_PUSH_ORDER).await;
    let (body, link) = tags_page(&server, "?n=0").await;
    assert_eq!(body, json!({"name": "repo", "tags": []}));
    assert_eq!(link, None);
}

#[tokio::test]
async fn tags_list_with_invalid_n_is_pagination_number_invalid() {
    let server = server_with_tags(&["v1"]).await;
    for n in ["-1", "abc", "1.5", "1e3"] {
        let resp = server.get(&format!("/v2/repo/tags/list?n={n}")).await;
        assert_oci_error(resp, 400, "PAGINATION_NUMBER_INVALID").await;
    }
}

#[tokio::test]
async fn tags_list_with_last_returns_the_tags_after_it() {
    let server = server_with_tags(&TAGS_IN_PUSH_ORDER).await;
    let (body, link) = tags_page(&server, "?last=latest").await;
    assert_eq!(body["tags"], json!(["v10", "v2"]));
    assert_eq!(link, None);
}

#[tokio::test]
async fn tags_list_with_last_that_is_not_a_tag_starts_after_its_position() {
    let server = server_with_tags(&TAGS_IN_PUSH_ORDER).await;
    let (body, _) = tags_page(&server, "?last=b").await;
    assert_eq!(body["tags"], json!(["latest", "v10", "v2"]));
}

#[tokio::test]
async fn tags_list_with_last_beyond_the_end_is_empty() {
    let server = server_with_tags(&TAGS_IN_PUSH_ORDER).await;
    let (body, link) = tags_page(&server, "?n=2&last=zzz").await;
    assert_eq!(body, json!({"name": "repo", "tags": []}));
    assert_eq!(link, None);
}

#[tokio::test]
async fn tags_list_of_unknown_repository_is_name_unknown() {
    let server = server_with_tags(&["v1"]).await;
    let resp = server.get("/v2/unknown/tags/list").await;
    assert_oci_error(resp, 404, "NAME_UNKNOWN").await;
}

// --- catalog --------------------------------------------------------------

#[tokio::test]
async fn catalog_of_an_empty_registry_is_empty() {
    let server = TestServer::start().await;
    let (body, link) = catalog_page(&server, "").await;
    assert_eq!(body, json!({"repositories": []}));
    assert_eq!(link, None);
}

#[tokio::test]
async fn catalog_lists_repositories_in_lexical_order() {
    let server = server_with_repos(&REPOS_IN_PUSH_ORDER).await;
    let (body, link) = catalog_page(&server, "").await;
    assert_eq!(body, json!({"repositories": REPOS_SORTED}));
    assert_eq!(link, None);
}

#[tokio::test]
async fn catalog_with_n_pages_with_link_until_the_end() {
    let server = server_with_repos(&REPOS_IN_PUSH_ORDER).await;
    let (body, link) = catalog_page(&server, "?n=2").await;
    assert_eq!(body, json!({"repositories": ["a", "a-b"]}));
    assert_eq!(
        link.as_deref(),
        Some(r#"</v2/_catalog?n=2&last=a-b>; rel="next""#)
    );
    let (body, link) = catalog_page(&server, "?n=2&last=a-b").await;
    assert_eq!(body["repositories"], json!(["a/b", "b/c"]));
    let next = link.expect("Link while a repository remains");
    assert!(
        next.starts_with("</v2/_catalog?n=2&last=") && next.ends_with(r#">; rel="next""#),
        "Link {next:?}"
    );
    let (body, link) = catalog_page(&server, &link_target(&next)["/v2/_catalog".len()..]).await;
    assert_eq!(body["repositories"], json!(["c"]));
    assert_eq!(link, None, "no Link when nothing remains");
}

#[tokio::test]
async fn catalog_with_n_equal_to_the_count_has_no_link() {
    let server = server_with_repos(&REPOS_IN_PUSH_ORDER).await;
    let (body, link) = catalog_page(&server, "?n=5").await;
    assert_eq!(body["repositories"], json!(REPOS_SORTED));
    assert_eq!(link, None);
}

#[tokio::test]
async fn catalog_with_n_zero_is_empty_without_link() {
    let server = server_with_repos(&REPOS_IN_PUSH_ORDER).await;
    let (body, link) = catalog_page(&server, "?n=0").await;
    assert_eq!(body, json!({"repositories": []}));
    assert_eq!(link, None);
}

#[tokio::test]
async fn catalog_with_invalid_n_is_pagination_number_invalid() {
    let server = TestServer::start().await;
    for n in ["-1", "abc", "1.5", "1e3"] {
        let resp = server.get(&format!("/v2/_catalog?n={n}")).await;
        assert_oci_error(resp, 400, "PAGINATION_NUMBER_INVALID").await;
    }
}

#[tokio::test]
async fn catalog_with_last_returns_the_repositories_after_it() {
    let server = server_with_repos(&REPOS_IN_PUSH_ORDER).await;
    let (body, link) = catalog_page(&server, "?last=a-b").await;
    assert_eq!(body["repositories"], json!(["a/b", "b/c", "c"]));
    assert_eq!(link, None);
}

#[tokio::test]
async fn catalog_with_last_beyond_the_end_is_empty() {
    let server = server_with_repos(&REPOS_IN_PUSH_ORDER).await;
    let (body, link) = catalog_page(&server, "?n=2&last=zzz").await;
    assert_eq!(body, json!({"repositories": []}));
    assert_eq!(link, None);
}

/// 1001 repositories, each holding one tiny manifest; pushed 8 at a time.
async fn server_with_1001_repos() -> (TestServer, Vec<String>) {
    let server = TestServer::start().await;
    server.push_blob("seed", b"{}").await;
    let manifest = json_bytes(&image_manifest(
        descriptor(OCI_EMPTY, b"{}"),
        vec![descriptor(OCI_EMPTY, b"{}")],
    ));
    let names: Vec<String> = (0..1001).map(|i| format!("r{i:04}")).collect();
    let pushes = names.iter().map(|name| {
        let server = &server;
        let manifest = &manifest;
        async move {
            let digest = crate::common::EMPTY_CONFIG_DIGEST;
            let resp = server
                .client
                .post(server.url(&format!(
                    "/v2/{name}/blobs/uploads/?mount={digest}&from=seed"
                )))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201, "mount into {name}");
            server
                .push_manifest(name, "latest", OCI_MANIFEST, manifest)
                .await;
        }
    });
    futures_util::stream::iter(pushes)
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let mut all = names;
    all.push("seed".to_owned());
    all.sort();
    (server, all)
}

#[tokio::test]
async fn catalog_without_n_returns_at_most_1000_with_link() {
    let (server, all) = server_with_1001_repos().await;
    let (body, link) = catalog_page(&server, "").await;
    assert_eq!(body["repositories"], json!(all[..1000]));
    let link = link.expect("Link while repositories remain");
    let (body, link) = catalog_page(&server, &link_target(&link)["/v2/_catalog".len()..]).await;
    assert_eq!(body["repositories"], json!(all[1000..]));
    assert_eq!(link, None);
}
