//! No response to a caller without rights tells whether a private
//! repository exists: asking about one that does and one that does not
//! gives the same status, headers and body (up to the name itself).

use reqwest::Method;

use super::*;
use crate::common::sha256_digest;

const EXISTS: &str = "private/exists";
const ABSENT: &str = "private/absent";

/// Everything a client can learn from a response, with the repository name
/// replaced by a placeholder.
async fn observe(resp: Response, repo: &str) -> (u16, Vec<(String, String)>, String) {
    let status = resp.status().as_u16();
    let mut headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or_default().replace(repo, "<repo>");
            (name.as_str().to_owned(), value)
        })
        .collect();
    headers.sort();
    let body = resp
        .text()
        .await
        .unwrap_or_default()
        .replace(repo, "<repo>");
    (status, headers, body)
}

/// Requests on `repo` covering every endpoint family.
fn probes(repo: &str, image: &crate::common::Image) -> Vec<(Method, String)> {
    let layer = sha256_digest(&image.layer);
    let manifest = &image.digest;
    let session = "6b1c3c1a-9e0e-4f3b-8f57-0d7e0c5b6c11";
    vec![
        (Method::GET, format!("/v2/{repo}/manifests/v1")),
        (Method::HEAD, format!("/v2/{repo}/manifests/v1")),
        (Method::GET, format!("/v2/{repo}/manifests/{manifest}")),
        (Method::GET, format!("/v2/{repo}/manifests/nosuchtag")),
        (Method::GET, format!("/v2/{repo}/blobs/{layer}")),
        (Method::HEAD, format!("/v2/{repo}/blobs/{layer}")),
        (Method::GET, format!("/v2/{repo}/tags/list")),
        (Method::GET, format!("/v2/{repo}/referrers/{manifest}")),
        (Method::POST, format!("/v2/{repo}/blobs/uploads/")),
        (
            Method::POST,
            format!("/v2/{repo}/blobs/uploads/?mount={layer}&from={EXISTS}"),
        ),
        (Method::GET, format!("/v2/{repo}/blobs/uploads/{session}")),
        (Method::PUT, format!("/v2/{repo}/manifests/v2")),
        (Method::DELETE, format!("/v2/{repo}/manifests/v1")),
        (Method::DELETE, format!("/v2/{repo}/blobs/{layer}")),
    ]
}

async fn assert_indistinguishable(
    server: &TestServer,
    auth: Option<&str>,
    image: &crate::common::Image,
    expected: u16,
) {
    let existing = probes(EXISTS, image);
    let absent = probes(ABSENT, image);
    for ((method, path), (_, other)) in existing.into_iter().zip(absent) {
        let seen = observe(send(server, method.clone(), &path, auth).await, EXISTS).await;
        let unseen = observe(send(server, method.clone(), &other, auth).await, ABSENT).await;
        assert_eq!(seen.0, expected, "{method} {path}: {seen:?}");
        assert_eq!(seen, unseen, "{method} {path} tells the repository exists");
    }
}

#[tokio::test]
async fn anonymous_callers_learn_nothing_about_private_repositories() {
    let (server, images) = secured_server_with(&[], &[EXISTS]).await;
    assert_indistinguishable(&server, None, &images[0], 401).await;
    // Nor with a public area next door.
    grant(&server, "anonymous", "public/**", "pull").await;
    assert_indistinguishable(&server, None, &images[0], 401).await;
    // Nor with wrong credentials (two tries: well under the login limit).
    let wrong = basic("admin", "wrong");
    let seen = send(
        &server,
        Method::GET,
        &format!("/v2/{EXISTS}/manifests/v1"),
        Some(&wrong),
    )
    .await;
    let unseen = send(
        &server,
        Method::GET,
        &format!("/v2/{ABSENT}/manifests/v1"),
        Some(&wrong),
    )
    .await;
    assert_eq!(observe(seen, EXISTS).await, observe(unseen, ABSENT).await);
}

#[tokio::test]
async fn users_without_a_grant_learn_nothing_either() {
    let (server, images) = secured_server_with(&[], &[EXISTS]).await;
    add_user(&server, "jane", "jane-pw").await;
    grant(&server, "jane", "jane/**", "admin").await;
    assert_indistinguishable(&server, Some(&basic("jane", "jane-pw")), &images[0], 403).await;
    let body = fetch_token(
        &server,
        Some(&basic("jane", "jane-pw")),
        &format!("repository:{EXISTS}:pull"),
    )
    .await;
    let token = bearer(body["token"].as_str().unwrap());
    assert_indistinguishable(&server, Some(&token), &images[0], 403).await;
}
