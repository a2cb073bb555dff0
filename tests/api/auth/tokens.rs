//! Docker's token protocol: challenges, `GET /token`, bearer tokens that
//! carry exactly what was granted, and the OAuth2 `POST /token` variant.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::*;
use crate::common::{assert_oci_error, json_body};

const PW: &str = "t0ken-pw";

#[tokio::test]
async fn a_401_carries_the_bearer_challenge_with_the_needed_scope() {
    let (server, _) = secured_server_with(&[], &["john/busybox"]).await;
    let realm = format!("realm=\"http://{}/token\"", server.host());
    let resp = server.get("/v2/john/busybox/manifests/v1").await;
    assert_eq!(
        challenge_of(&resp),
        format!("Bearer {realm},service=\"artispace\",scope=\"repository:john/busybox:pull\"")
    );
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;
    let resp = send(
        &server,
        Method::POST,
        "/v2/john/busybox/blobs/uploads/",
        None,
    )
    .await;
    assert_eq!(
        challenge_of(&resp),
        format!("Bearer {realm},service=\"artispace\",scope=\"repository:john/busybox:pull,push\"")
    );
    let resp = server.get("/v2/").await;
    assert_eq!(
        challenge_of(&resp),
        format!("Bearer {realm},service=\"artispace\"")
    );
}

/// A refusal names the access it needed in its detail, as distribution
/// does: Docker retries a refused push five times (50 s) when an
/// UNAUTHORIZED or DENIED error has no detail and its code's default
/// message, and fails at once when it has one.
#[tokio::test]
async fn refusals_name_the_access_needed_in_their_detail() {
    let (server, _) = secured_server_with(&[], &["john/busybox"]).await;
    add_user(&server, "jane", PW).await;
    let entry =
        |action: &str| json!({"Type": "repository", "Name": "john/busybox", "Action": action});
    let upload = "/v2/john/busybox/blobs/uploads/";
    let resp = send(&server, Method::POST, upload, None).await;
    let body = json_body(resp, 401).await;
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    assert_eq!(
        body["errors"][0]["detail"],
        json!([entry("pull"), entry("push")])
    );

    let resp = send(&server, Method::POST, upload, Some(&basic("jane", PW))).await;
    let body = json_body(resp, 403).await;
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert_eq!(
        body["errors"][0]["detail"],
        json!([entry("pull"), entry("push")])
    );

    let resp = send(&server, Method::GET, "/v2/_catalog", None).await;
    let body = json_body(resp, 401).await;
    assert_eq!(
        body["errors"][0]["detail"],
        json!([{"Type": "registry", "Name": "catalog", "Action": "*"}])
    );
}

/// A 401 says why: no credentials, wrong ones, or a token that is no
/// longer (or never was) valid; clients show the message to their user.
#[tokio::test]
async fn a_401_says_why_it_refused() {
    let (server, _) = secured_server_with(&[], &["john/busybox"]).await;
    add_user(&server, "jane", PW).await;
    let path = "/v2/john/busybox/tags/list";
    let message_for = |auth: Option<String>| {
        let server = &server;
        async move {
            let resp = send(server, Method::GET, path, auth.as_deref()).await;
            json_body(resp, 401).await["errors"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert_eq!(message_for(None).await, "authentication required");
    assert_eq!(
        message_for(Some(basic("jane", "wrong"))).await,
        "incorrect user name or password"
    );
    assert_eq!(
        message_for(Some(bearer("not.a.token"))).await,
        "the token is invalid or has expired"
    );
}

/// Behind a reverse proxy that ends TLS, the realm is where the client
/// came in, as the proxy reports it; on a TLS connection of our own the
/// headers cannot make it `http`.
#[tokio::test]
async fn the_realm_follows_what_a_reverse_proxy_reports() {
    let (server, _) = secured_server_with(&[], &["john/busybox"]).await;
    let realm_for = |headers: &[(&str, &str)]| {
        let mut req = server.client.get(server.url("/v2/"));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        async move { challenge_of(&req.send().await.expect("request")) }
    };
    let expect = |base: &str| format!("Bearer realm=\"{base}/token\",service=\"artispace\"");
    assert_eq!(
        realm_for(&[("x-forwarded-proto", "https")]).await,
        expect(&format!("https://{}", server.host()))
    );
    assert_eq!(
        realm_for(&[
            ("x-forwarded-proto", "https, http"),
            ("x-forwarded-host", "registry.example.com"),
        ])
        .await,
        expect("https://registry.example.com")
    );
    assert_eq!(
        realm_for(&[(
            "forwarded",
            "for=192.0.2.7;proto=https;host=\"registry.example.com:8443\", for=10.0.0.1"
        )])
        .await,
        expect("https://registry.example.com:8443")
    );
    // What cannot be a scheme or a host is ignored.
    assert_eq!(
        realm_for(&[
            ("x-forwarded-proto", "ftp"),
            ("x-forwarded-host", "evil.example/\"x"),
        ])
        .await,
        expect(&format!("http://{}", server.host()))
    );
}

#[tokio::test]
async fn a_token_carries_exactly_the_granted_actions_and_works() {
    let (server, _) = secured_server_with(&[], &["john/app"]).await;
    add_user(&server, "john", PW).await;
    grant(&server, "john", "john/app", "pull").await;
    let auth = basic("john", PW);
    let body = fetch_token(&server, Some(&auth), "repository:john/app:pull,push").await;
    for field in ["token", "access_token", "expires_in", "issued_at"] {
        assert!(!body[field].is_null(), "no {field} in {body}");
    }
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 300);
    let token = body["token"].as_str().unwrap();
    let claims = jwt_claims(token);
    assert_eq!(claims["sub"], "john");
    assert_eq!(claims["aud"], "artispace");
    assert_eq!(
        claims["access"],
        serde_json::json!([{"type": "repository", "name": "john/app", "actions": ["pull"]}])
    );

    let resp = send(
        &server,
        Method::GET,
        "/v2/john/app/manifests/v1",
        Some(&bearer(token)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    // The user may not push: asking for a new token will not help.
    let resp = send(
        &server,
        Method::POST,
        "/v2/john/app/blobs/uploads/",
        Some(&bearer(token)),
    )
    .await;
    assert_oci_error(resp, 403, "DENIED").await;
}

#[tokio::test]
async fn a_token_for_another_repository_asks_for_a_new_one() {
    let (server, _) = secured_server_with(&[], &["a/one", "a/two"]).await;
    let body = fetch_token(
        &server,
        Some(&basic("admin", "admin-pw")),
        "repository:a/one:pull",
    )
    .await;
    let token = bearer(body["token"].as_str().unwrap());
    assert_eq!(
        send(&server, Method::GET, "/v2/a/one/tags/list", Some(&token))
            .await
            .status(),
        200
    );
    let resp = send(&server, Method::GET, "/v2/a/two/tags/list", Some(&token)).await;
    let challenge = challenge_of(&resp);
    assert!(
        challenge.contains("scope=\"repository:a/two:pull\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;
    // Pull only: pushing with it asks for a new token too.
    let resp = send(
        &server,
        Method::POST,
        "/v2/a/one/blobs/uploads/",
        Some(&token),
    )
    .await;
    assert!(challenge_of(&resp).contains("insufficient_scope"));
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_refused() {
    let (server, _) = secured_server_with(&[], &["a/one"]).await;
    let body = fetch_token(
        &server,
        Some(&basic("admin", "admin-pw")),
        "repository:a/one:pull",
    )
    .await;
    let token = body["token"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    // Same signature, claims widened to another repository.
    let mut claims = jwt_claims(&token);
    claims["access"][0]["name"] = "a/two".into();
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    // An unsigned token ("alg":"none").
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    // A flipped signature byte.
    let mut signature = parts[2].to_owned();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    signature.replace_range(0..1, flipped);
    let bad_signature = format!("{}.{}.{signature}", parts[0], parts[1]);
    for bad in [forged, unsigned, bad_signature, "not-a-jwt".to_owned()] {
        let resp = send(
            &server,
            Method::GET,
            "/v2/a/one/tags/list",
            Some(&bearer(&bad)),
        )
        .await;
        let challenge = challenge_of(&resp);
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{bad}: {challenge}"
        );
        assert_oci_error(resp, 401, "UNAUTHORIZED").await;
    }
    // Another registry's key: a token from a second server is refused here.
    let (other, _) = secured_server_with(&[], &["a/one"]).await;
    let foreign = fetch_token(
        &other,
        Some(&basic("admin", "admin-pw")),
        "repository:a/one:pull",
    )
    .await;
    let resp = send(
        &server,
        Method::GET,
        "/v2/a/one/tags/list",
        Some(&bearer(foreign["token"].as_str().unwrap())),
    )
    .await;
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (server, _) = secured_server_with(&["--token-expiry", "1s"], &["a/one"]).await;
    let body = fetch_token(
        &server,
        Some(&basic("admin", "admin-pw")),
        "repository:a/one:pull",
    )
    .await;
    assert_eq!(body["expires_in"], 1);
    let token = bearer(body["token"].as_str().unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = send(&server, Method::GET, "/v2/a/one/tags/list", Some(&token)).await;
    assert!(challenge_of(&resp).contains("invalid_token"));
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn anonymous_tokens_carry_what_anonymous_callers_may_do() {
    let (server, _) = secured_server_with(&[], &["public/app", "private/app"]).await;
    grant(&server, "anonymous", "public/*", "pull").await;
    let body = fetch_token(&server, None, "repository:public/app:pull,push").await;
    let token = body["token"].as_str().unwrap();
    let claims = jwt_claims(token);
    assert_eq!(claims["sub"], "");
    assert_eq!(claims["access"][0]["actions"], serde_json::json!(["pull"]));
    let resp = send(
        &server,
        Method::GET,
        "/v2/public/app/manifests/v1",
        Some(&bearer(token)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    // Nothing for the private repository; the caller is told to log in.
    let body = fetch_token(&server, None, "repository:private/app:pull").await;
    let token = body["token"].as_str().unwrap();
    assert_eq!(jwt_claims(token)["access"], serde_json::json!([]));
    let resp = send(
        &server,
        Method::GET,
        "/v2/private/app/manifests/v1",
        Some(&bearer(token)),
    )
    .await;
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;
    // A valid anonymous token passes the /v2/ probe.
    let resp = send(&server, Method::GET, "/v2/", Some(&bearer(token))).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn get_token_with_wrong_credentials_is_401() {
    let (server, _) = secured_server_with(&[], &["a/one"]).await;
    let resp = send(
        &server,
        Method::GET,
        "/token?service=artispace&scope=repository:a/one:pull",
        Some(&basic("admin", "nope")),
    )
    .await;
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn access_tokens_log_in_to_the_token_server_and_revoking_ends_their_bearer_tokens() {
    let (server, _) = secured_server_with(&[], &["ci/app"]).await;
    add_user(&server, "robot", PW).await;
    grant(&server, "robot", "ci/**", "push").await;
    let secret = create_token(&server, "robot", "ci", &["--scope", "ci/app:pull"]).await;
    let body = fetch_token(
        &server,
        Some(&basic("robot", &secret)),
        "repository:ci/app:pull,push",
    )
    .await;
    let token = bearer(body["token"].as_str().unwrap());
    assert_eq!(
        jwt_claims(body["token"].as_str().unwrap())["access"][0]["actions"],
        serde_json::json!(["pull"])
    );
    assert_eq!(
        send(&server, Method::GET, "/v2/ci/app/tags/list", Some(&token))
            .await
            .status(),
        200
    );
    admin(&server, &["token", "revoke", "ci"]).await;
    let resp = send(&server, Method::GET, "/v2/ci/app/tags/list", Some(&token)).await;
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;
}

async fn post_token(server: &TestServer, form: &str) -> reqwest::Response {
    server
        .client
        .post(server.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .expect("POST /token")
}

#[tokio::test]
async fn oauth2_password_and_refresh_token_grants() {
    let (server, _) = secured_server_with(&[], &["a/one"]).await;
    add_user(&server, "john", PW).await;
    grant(&server, "john", "a/one", "pull").await;
    let form = format!(
        "grant_type=password&username=john&password={PW}&service=artispace&client_id=test&access_type=offline&scope=repository%3Aa%2Fone%3Apull"
    );
    let body = json_body(post_token(&server, &form).await, 200).await;
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"]
        .as_str()
        .expect("access_type=offline gives a refresh token")
        .to_owned();
    assert_eq!(body["scope"], "repository:a/one:pull");
    assert_eq!(
        send(
            &server,
            Method::GET,
            "/v2/a/one/tags/list",
            Some(&bearer(access))
        )
        .await
        .status(),
        200
    );
    // A refresh token is no access token.
    let resp = send(
        &server,
        Method::GET,
        "/v2/a/one/tags/list",
        Some(&bearer(&refresh)),
    )
    .await;
    assert_eq!(resp.status(), 401);

    let form = format!("grant_type=refresh_token&refresh_token={refresh}&service=artispace&client_id=test&scope=repository:a/one:pull");
    let body = json_body(post_token(&server, &form).await, 200).await;
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(
        send(
            &server,
            Method::GET,
            "/v2/a/one/tags/list",
            Some(&bearer(access))
        )
        .await
        .status(),
        200
    );

    // A new password ends the refresh tokens issued under the old one.
    let run = artispace(
        server.root(),
        &["user", "passwd", "john", "--password-stdin"],
        "other-pw\n",
    )
    .await;
    assert_eq!(run.code, 0);
    assert_oci_error(post_token(&server, &form).await, 401, "UNAUTHORIZED").await;
    let wrong = "grant_type=password&username=john&password=nope&client_id=test";
    assert_oci_error(post_token(&server, wrong).await, 401, "UNAUTHORIZED").await;
    let unsupported = "grant_type=client_credentials&client_id=test";
    assert_eq!(post_token(&server, unsupported).await.status(), 400);
}

#[tokio::test]
async fn the_catalog_with_a_token_needs_the_catalog_scope() {
    let (server, _) = secured_server_with(&[], &["a/one", "b/two"]).await;
    add_user(&server, "john", PW).await;
    grant(&server, "john", "a/*", "pull").await;
    let auth = basic("john", PW);
    let body = fetch_token(&server, Some(&auth), "repository:a/one:pull").await;
    let resp = send(
        &server,
        Method::GET,
        "/v2/_catalog",
        Some(&bearer(body["token"].as_str().unwrap())),
    )
    .await;
    assert!(challenge_of(&resp).contains("scope=\"registry:catalog:*\""));
    assert_eq!(resp.status(), 401);
    let body = fetch_token(&server, Some(&auth), "registry:catalog:*").await;
    let resp = send(
        &server,
        Method::GET,
        "/v2/_catalog",
        Some(&bearer(body["token"].as_str().unwrap())),
    )
    .await;
    assert_eq!(
        json_body(resp, 200).await["repositories"],
        serde_json::json!(["a/one"])
    );
}

#[tokio::test]
async fn artispace_push_logs_in_through_the_token_server() {
    let (server, _) = secured_server_with(&[], &[]).await;
    add_user(&server, "bob", PW).await;
    grant(&server, "bob", "bob/**", "push").await;
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    crate::clients::write_oci_layout(&layout);
    let layout = layout.display().to_string();
    let target = format!("http://{}/bob/app:v1", server.host());
    let push = |password: &'static str, target: String| {
        let (root, layout) = (server.root().to_owned(), layout.clone());
        async move {
            let args = [
                "push",
                &layout,
                &target,
                "--username",
                "bob",
                "--password-stdin",
                "--quiet",
                "--retries",
                "0",
            ];
            artispace(&root, &args, &format!("{password}\n")).await
        }
    };
    let pushed = push(PW, target).await;
    assert_eq!(pushed.code, 0, "artispace push: {}", pushed.stderr);
    // Last, as its failed logins (one per blob in flight) count against
    // bob's login limit.
    let refused = push("wrong", format!("http://{}/bob/other:v1", server.host())).await;
    assert_ne!(refused.code, 0, "a wrong password must fail the push");
    let resp = send(
        &server,
        Method::GET,
        "/v2/bob/app/tags/list",
        Some(&basic("bob", PW)),
    )
    .await;
    assert_eq!(
        json_body(resp, 200).await["tags"],
        serde_json::json!(["v1"])
    );
}
