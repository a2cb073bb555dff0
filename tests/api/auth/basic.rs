//! Who may do what, with Basic credentials (passwords and access tokens):
//! every action, anonymous callers, patterns, the catalog and mounts.

use reqwest::Method;

use super::*;
use crate::common::{assert_oci_error, json_body, sha256_digest, Image};

const PW: &str = "s3cret-pw";

/// What one caller can do on one repository holding image `v1`.
struct Can {
    pull: bool,
    push: bool,
    delete: bool,
}

/// Tries pull (manifest, blob, tags), push (a new image) and delete (a tag)
/// on `repo` and returns which worked; asserts every refusal is `refused`
/// (403 DENIED or 401 UNAUTHORIZED) and never anything else.
async fn probe(
    server: &TestServer,
    auth: Option<&str>,
    repo: &str,
    image: &Image,
    refused: u16,
) -> Can {
    let outcome = |status: u16, ok: u16, what: &str| -> bool {
        assert!(
            status == ok || status == refused,
            "{what} on {repo} answered {status}, expected {ok} or {refused}"
        );
        status == ok
    };
    let manifest = send(
        server,
        Method::GET,
        &format!("/v2/{repo}/manifests/v1"),
        auth,
    )
    .await;
    let pull_manifest = outcome(manifest.status().as_u16(), 200, "GET manifest");
    let blob = sha256_digest(&image.layer);
    let head = send(
        server,
        Method::HEAD,
        &format!("/v2/{repo}/blobs/{blob}"),
        auth,
    )
    .await;
    let pull_blob = outcome(head.status().as_u16(), 200, "HEAD blob");
    let tags = send(server, Method::GET, &format!("/v2/{repo}/tags/list"), auth).await;
    let pull_tags = outcome(tags.status().as_u16(), 200, "GET tags");
    assert_eq!((pull_manifest, pull_blob), (pull_tags, pull_tags));

    let pushed = push_image_as(server, auth, repo, "pushed", &Image::new(999)).await;
    let push = outcome(pushed, 201, "push");

    let deleted = send(
        server,
        Method::DELETE,
        &format!("/v2/{repo}/manifests/v1"),
        auth,
    )
    .await;
    let delete = outcome(deleted.status().as_u16(), 202, "DELETE tag");
    Can {
        pull: pull_tags,
        push,
        delete,
    }
}

#[tokio::test]
async fn with_no_user_the_registry_is_open_and_serve_warns() {
    let server = TestServer::start().await;
    let image = server.push_image("anyone/app", "v1", 1).await;
    let can = probe(&server, None, "anyone/app", &image, 0).await;
    assert!(can.pull && can.push && can.delete);
    let catalog = json_body(server.get("/v2/_catalog").await, 200).await;
    assert_eq!(catalog["repositories"][0], "anyone/app");
    assert!(
        server.log().contains("no users exist"),
        "serve should warn that the registry is open; log:\n{}",
        server.log()
    );
}

#[tokio::test]
async fn the_first_user_switches_authentication_on() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/v2/").await.status(), 200);
    add_user(&server, "john", PW).await;
    let resp = server.get("/v2/").await;
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;
    let resp = send(&server, Method::GET, "/v2/", Some(&basic("john", PW))).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn each_action_allows_exactly_what_it_implies() {
    let repos = ["team/pull", "team/push", "team/delete", "team/admin"];
    let (server, images) = secured_server_with(&[], &repos).await;
    for (user, action) in [
        ("puller", "pull"),
        ("pusher", "push"),
        ("deleter", "delete"),
        ("boss", "admin"),
    ] {
        add_user(&server, user, PW).await;
        grant(&server, user, &format!("team/{action}"), action).await;
    }
    let expected = [
        ("puller", "team/pull", (true, false, false)),
        ("pusher", "team/push", (true, true, false)),
        ("deleter", "team/delete", (false, false, true)),
        ("boss", "team/admin", (true, true, true)),
    ];
    for (i, (user, repo, (pull, push, delete))) in expected.into_iter().enumerate() {
        let auth = basic(user, PW);
        let can = probe(&server, Some(&auth), repo, &images[i], 403).await;
        assert_eq!(
            (can.pull, can.push, can.delete),
            (pull, push, delete),
            "{user} on {repo}: (pull, push, delete)"
        );
        // And nothing at all on a repository they were not granted.
        let other = repos[(i + 1) % repos.len()];
        let can = probe(&server, Some(&auth), other, &images[(i + 1) % 4], 403).await;
        assert_eq!(
            (can.pull, can.push, can.delete),
            (false, false, false),
            "{user} on {other}"
        );
    }
}

#[tokio::test]
async fn refusals_are_401_without_or_with_wrong_credentials_and_403_without_a_grant() {
    let (server, _) = secured_server_with(&[], &["john/app"]).await;
    add_user(&server, "jane", PW).await;
    let path = "/v2/john/app/manifests/v1";
    for auth in [
        None,
        Some(basic("jane", "wrong")),
        Some(basic("nobody", PW)),
    ] {
        let resp = send(&server, Method::GET, path, auth.as_deref()).await;
        assert_oci_error(resp, 401, "UNAUTHORIZED").await;
    }
    let resp = send(&server, Method::GET, path, Some(&basic("jane", PW))).await;
    assert_oci_error(resp, 403, "DENIED").await;
    grant(&server, "jane", "john/app", "pull").await;
    let resp = send(&server, Method::GET, path, Some(&basic("jane", PW))).await;
    assert_eq!(resp.status(), 200);
    admin(&server, &["revoke", "jane", "john/app"]).await;
    let resp = send(&server, Method::GET, path, Some(&basic("jane", PW))).await;
    assert_oci_error(resp, 403, "DENIED").await;
    admin(&server, &["user", "remove", "jane"]).await;
    let resp = send(&server, Method::GET, path, Some(&basic("jane", PW))).await;
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn patterns_match_one_level_any_depth_exact_names_and_everything() {
    let repos = [
        "john/app",
        "john/a/b",
        "johnny/app",
        "library/busybox",
        "library/busybox2",
    ];
    let (server, _) = secured_server_with(&[], &repos).await;
    let cases: [(&str, &[bool; 5]); 4] = [
        ("john/*", &[true, false, false, false, false]),
        ("john/**", &[true, true, false, false, false]),
        ("library/busybox", &[false, false, false, true, false]),
        ("*", &[true, true, true, true, true]),
    ];
    for (i, (pattern, expected)) in cases.iter().enumerate() {
        let user = format!("user{i}");
        add_user(&server, &user, PW).await;
        grant(&server, &user, pattern, "pull").await;
        let auth = basic(&user, PW);
        for (repo, expect) in repos.iter().zip(expected.iter()) {
            let resp = send(
                &server,
                Method::GET,
                &format!("/v2/{repo}/tags/list"),
                Some(&auth),
            )
            .await;
            let status = resp.status().as_u16();
            assert_eq!(status == 200, *expect, "{pattern} on {repo}: {status}");
            if !expect {
                assert_eq!(status, 403);
            }
        }
    }
}

#[tokio::test]
async fn anonymous_grants_open_only_what_they_name() {
    let (server, images) = secured_server_with(&[], &["public/app", "private/app"]).await;
    grant(&server, "anonymous", "public/**", "pull").await;
    let can = probe(&server, None, "public/app", &images[0], 401).await;
    assert_eq!((can.pull, can.push, can.delete), (true, false, false));
    let can = probe(&server, None, "private/app", &images[1], 401).await;
    assert_eq!((can.pull, can.push, can.delete), (false, false, false));
    // /v2/ still asks anonymous callers to log in, so clients learn how.
    assert_oci_error(server.get("/v2/").await, 401, "UNAUTHORIZED").await;
    // Every user has what anonymous callers have.
    add_user(&server, "jane", PW).await;
    let resp = send(
        &server,
        Method::GET,
        "/v2/public/app/tags/list",
        Some(&basic("jane", PW)),
    )
    .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn anonymous_pull_flag_opens_pulls_only() {
    let (server, images) = secured_server_with(&["--anonymous-pull"], &["a/b"]).await;
    let can = probe(&server, None, "a/b", &images[0], 401).await;
    assert_eq!((can.pull, can.push, can.delete), (true, false, false));
}

#[tokio::test]
async fn the_catalog_lists_only_pullable_repositories() {
    let repos = ["a/one", "a/two", "b/one", "c/one"];
    let (server, _) = secured_server_with(&[], &repos).await;
    add_user(&server, "jane", PW).await;
    grant(&server, "jane", "a/*", "pull").await;
    grant(&server, "jane", "c/one", "push").await;
    grant(&server, "jane", "b/one", "delete").await;
    let list = |v: Value| -> Vec<String> {
        v["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    };
    let resp = send(
        &server,
        Method::GET,
        "/v2/_catalog",
        Some(&basic("jane", PW)),
    )
    .await;
    assert_eq!(
        list(json_body(resp, 200).await),
        ["a/one", "a/two", "c/one"]
    );
    // Pages count visible repositories only.
    let resp = send(
        &server,
        Method::GET,
        "/v2/_catalog?n=2",
        Some(&basic("jane", PW)),
    )
    .await;
    assert!(header(&resp, "link").is_some_and(|l| l.contains("last=a/two")));
    assert_eq!(list(json_body(resp, 200).await), ["a/one", "a/two"]);
    let resp = send(
        &server,
        Method::GET,
        "/v2/_catalog?n=2&last=a/two",
        Some(&basic("jane", PW)),
    )
    .await;
    assert!(header(&resp, "link").is_none());
    assert_eq!(list(json_body(resp, 200).await), ["c/one"]);
    // The admin (admin on *) sees everything.
    let resp = send(
        &server,
        Method::GET,
        "/v2/_catalog",
        Some(&basic("admin", "admin-pw")),
    )
    .await;
    assert_eq!(list(json_body(resp, 200).await), repos);
    // Anonymous callers with no grant are asked to log in.
    assert_oci_error(server.get("/v2/_catalog").await, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn mounting_needs_pull_on_the_source_else_it_is_a_normal_upload() {
    let (server, images) = secured_server_with(&[], &["secret/app"]).await;
    add_user(&server, "jane", PW).await;
    grant(&server, "jane", "jane/**", "push").await;
    let layer = sha256_digest(&images[0].layer);
    let mount = format!("/v2/jane/copy/blobs/uploads/?mount={layer}&from=secret/app");
    let resp = send(&server, Method::POST, &mount, Some(&basic("jane", PW))).await;
    assert_eq!(
        resp.status(),
        202,
        "no pull on the source: a new session instead"
    );
    let head = format!("/v2/jane/copy/blobs/{layer}");
    let resp = send(&server, Method::HEAD, &head, Some(&basic("jane", PW))).await;
    assert_eq!(resp.status(), 404, "the blob must not have been mounted");

    grant(&server, "jane", "secret/app", "pull").await;
    let resp = send(&server, Method::POST, &mount, Some(&basic("jane", PW))).await;
    assert_eq!(resp.status(), 201);
    let resp = send(&server, Method::HEAD, &head, Some(&basic("jane", PW))).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn access_tokens_work_as_passwords_within_their_scopes_until_revoked() {
    let (server, images) = secured_server_with(&[], &["ci/app", "ci/other"]).await;
    add_user(&server, "robot", PW).await;
    grant(&server, "robot", "ci/**", "push").await;
    let full = create_token(&server, "robot", "full", &[]).await;
    let scoped = create_token(&server, "robot", "scoped", &["--scope", "ci/app:pull"]).await;

    let can = probe(
        &server,
        Some(&basic("robot", &full)),
        "ci/app",
        &images[0],
        403,
    )
    .await;
    assert_eq!((can.pull, can.push), (true, true));
    let can = probe(
        &server,
        Some(&basic("robot", &scoped)),
        "ci/app",
        &images[0],
        403,
    )
    .await;
    assert_eq!(
        (can.pull, can.push),
        (true, false),
        "the scope allows pull only"
    );
    let can = probe(
        &server,
        Some(&basic("robot", &scoped)),
        "ci/other",
        &images[1],
        403,
    )
    .await;
    assert_eq!((can.pull, can.push), (false, false), "outside the scope");

    // A token is bound to its user.
    add_user(&server, "jane", PW).await;
    let resp = send(
        &server,
        Method::GET,
        "/v2/ci/app/tags/list",
        Some(&basic("jane", &full)),
    )
    .await;
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;

    admin(&server, &["token", "revoke", "full", "--user", "robot"]).await;
    let resp = send(
        &server,
        Method::GET,
        "/v2/ci/app/tags/list",
        Some(&basic("robot", &full)),
    )
    .await;
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;
    let listed = admin(&server, &["token", "list", "--json"]).await;
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    let states: Vec<_> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        states.contains(&("full".into(), "revoked".into())),
        "{states:?}"
    );
    assert!(
        !listed.to_string().contains(&full),
        "token list must never show a secret"
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refused() {
    let (server, _) = secured_server_with(&[], &["ci/app"]).await;
    grant(&server, "admin", "ci/app", "pull").await;
    let token = create_token(&server, "admin", "short", &["--expires", "1s"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let resp = send(
        &server,
        Method::GET,
        "/v2/ci/app/tags/list",
        Some(&basic("admin", &token)),
    )
    .await;
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn basic_mode_challenges_with_basic() {
    let (server, _) = secured_server_with(&["--auth", "basic"], &["x/y"]).await;
    let resp = server.get("/v2/x/y/tags/list").await;
    assert_eq!(challenge_of(&resp), "Basic realm=\"artispace\"");
    assert_oci_error(resp, 401, "UNAUTHORIZED").await;
    let resp = send(
        &server,
        Method::GET,
        "/v2/x/y/tags/list",
        Some(&basic("admin", "admin-pw")),
    )
    .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn user_list_json_shows_users_and_grants_but_no_secrets() {
    let (server, _) = secured_server_with(&[], &[]).await;
    grant(&server, "anonymous", "public/**", "pull").await;
    let run = admin(&server, &["user", "list", "--json"]).await;
    let listed: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed["users"][0]["name"], "admin");
    assert_eq!(listed["users"][0]["grants"][0]["pattern"], "*");
    assert_eq!(listed["users"][0]["grants"][0]["action"], "admin");
    assert_eq!(listed["anonymous"]["grants"][0]["pattern"], "public/**");
    assert!(
        !run.stdout.contains("argon2"),
        "no password hash in the listing"
    );
    assert!(!server.log().contains("admin-pw"), "no password in the log");
}

#[tokio::test]
async fn user_commands_refuse_with_exit_codes() {
    let server = TestServer::start().await;
    add_user(&server, "john", PW).await;
    let again = artispace(
        server.root(),
        &["user", "add", "john", "--password-stdin"],
        "x\n",
    )
    .await;
    assert_eq!(again.code, 1, "{}", again.stderr);
    let bad = artispace(server.root(), &["grant", "john", "John/*", "pull"], "").await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let unknown = artispace(server.root(), &["grant", "nobody", "x", "pull"], "").await;
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    let no_tty = artispace(server.root(), &["user", "passwd", "john"], "").await;
    assert_eq!(
        no_tty.code, 2,
        "no terminal and no --password-stdin: {}",
        no_tty.stderr
    );
    let changed = artispace(
        server.root(),
        &["user", "passwd", "john", "--password-stdin"],
        "new-pw\n",
    )
    .await;
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    let resp = send(&server, Method::GET, "/v2/", Some(&basic("john", "new-pw"))).await;
    assert_eq!(resp.status(), 200);
    let resp = send(&server, Method::GET, "/v2/", Some(&basic("john", PW))).await;
    assert_eq!(resp.status(), 401);
}
