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

/// `count` failed logins of `user` as the client a proxy reports in
/// `X-Forwarded-For`.
async fn fail_logins_as(server: &TestServer, forwarded_for: &str, user: &str, count: usize) {
    for attempt in 0..count {
        let resp = request(
            server,
            Method::GET,
            "/v2/",
            Some(&basic(user, &format!("guess{attempt}"))),
        )
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .expect("request");
        assert_oci_error(resp, 401, "UNAUTHORIZED").await;
    }
}

/// The status of a login of `user` with `password` as the client given by
/// `header: value`.
async fn login_status_as(
    server: &TestServer,
    header: &str,
    value: &str,
    user: &str,
    password: &str,
) -> u16 {
    request(server, Method::GET, "/v2/", Some(&basic(user, password)))
        .header(header, value)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// Behind a trusted proxy, failed logins count against the client it
/// reports, not against the proxy: one client guessing does not lock the
/// others out. Addresses a client writes into the header itself (left of
/// the one the proxy adds) change nothing.
#[tokio::test]
async fn behind_a_trusted_proxy_logins_are_limited_per_reported_client() {
    let (server, _) = secured_server_with(&["--trusted-proxy", "127.0.0.0/8"], &["a/one"]).await;
    add_user(&server, "jane", "jane-pw").await;
    grant(&server, "jane", "a/one", "pull").await;

    fail_logins_as(&server, "203.0.113.7", "jane", PER_USER).await;
    let locked =
        login_status_as(&server, "x-forwarded-for", "203.0.113.7", "jane", "jane-pw").await;
    assert_eq!(locked, 429, "the guessing client is limited");
    // A forged hop to the left is not where the proxy says the request
    // came from.
    let forged = login_status_as(
        &server,
        "x-forwarded-for",
        "198.51.100.1, 203.0.113.7",
        "jane",
        "jane-pw",
    )
    .await;
    assert_eq!(forged, 429, "a forged left hop does not escape the limit");
    let other = login_status_as(&server, "x-forwarded-for", "203.0.113.8", "jane", "jane-pw").await;
    assert_eq!(other, 200, "another client behind the same proxy logs in");

    // The same through Forwarded (RFC 7239), an IPv6 client with a port.
    let client = "for=\"[2001:db8::7]:4711\";proto=https";
    for attempt in 0..PER_USER {
        let resp = request(
            &server,
            Method::GET,
            "/v2/",
            Some(&basic("jane", &format!("x{attempt}"))),
        )
        .header("forwarded", client)
        .send()
        .await
        .expect("request");
        assert_oci_error(resp, 401, "UNAUTHORIZED").await;
    }
    assert_eq!(
        login_status_as(&server, "forwarded", client, "jane", "jane-pw").await,
        429
    );
    assert_eq!(
        login_status_as(&server, "forwarded", "for=2001:db8::8", "jane", "jane-pw").await,
        200
    );
}

/// Without `--trusted-proxy` the headers are not believed: every request
/// from this address is one client, whatever it claims.
#[tokio::test]
async fn forwarded_addresses_are_not_believed_from_untrusted_peers() {
    let (server, _) = secured_server_with(&[], &["a/one"]).await;
    add_user(&server, "jane", "jane-pw").await;
    grant(&server, "jane", "a/one", "pull").await;
    fail_logins_as(&server, "203.0.113.7", "jane", PER_USER).await;
    let claimed_other =
        login_status_as(&server, "x-forwarded-for", "203.0.113.8", "jane", "jane-pw").await;
    assert_eq!(claimed_other, 429);
}
