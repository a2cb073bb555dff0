//! Failed logins are limited per client address and user: 429
//! `TOOMANYREQUESTS` with `Retry-After`, the right password included,
//! while other users are unaffected.

use reqwest::Method;

use super::*;
use crate::common::assert_oci_error;

/// Failures of one user from one address allowed per minute (the server's
/// default).
const PER_USER: usize = 5;

#[tokio::test]
async fn repeated_wrong_passwords_lock_that_user_from_that_address() {
    let (server, _) = secured_server_with(&[], &["a/one"]).await;
    add_user(&server, "jane", "jane-pw").await;
    grant(&server, "jane", "a/one", "pull").await;
    let path = "/v2/a/one/tags/list";
    for attempt in 0..PER_USER {
        let resp = send(
            &server,
            Method::GET,
            path,
            Some(&basic("jane", &format!("guess{attempt}"))),
        )
        .await;
        assert_oci_error(resp, 401, "UNAUTHORIZED").await;
    }
    for secret in ["guess-again", "jane-pw"] {
        let resp = send(&server, Method::GET, path, Some(&basic("jane", secret))).await;
        let retry_after: u64 = header(&resp, "retry-after")
            .expect("429 carries Retry-After")
            .parse()
            .expect("Retry-After in seconds");
        assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
        assert_oci_error(resp, 429, "TOOMANYREQUESTS").await;
    }
    // The token server counts the same failures.
    let resp = send(
        &server,
        Method::GET,
        "/token?service=artispace",
        Some(&basic("jane", "jane-pw")),
    )
    .await;
    assert_oci_error(resp, 429, "TOOMANYREQUESTS").await;
    // Other users, and calls without credentials, go on as before.
    let resp = send(
        &server,
        Method::GET,
        path,
        Some(&basic("admin", "admin-pw")),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_oci_error(server.get(path).await, 401, "UNAUTHORIZED").await;
    assert!(
        server.log().contains("failed login"),
        "failed logins are logged"
    );
    assert!(
        !server.log().contains("guess"),
        "passwords are never logged"
    );
}

#[tokio::test]
async fn unknown_users_are_limited_like_known_ones() {
    let (server, _) = secured_server_with(&[], &["a/one"]).await;
    for _ in 0..PER_USER {
        let resp = send(&server, Method::GET, "/v2/", Some(&basic("ghost", "x"))).await;
        assert_eq!(resp.status(), 401);
    }
    let resp = send(&server, Method::GET, "/v2/", Some(&basic("ghost", "x"))).await;
    assert_oci_error(resp, 429, "TOOMANYREQUESTS").await;
}
