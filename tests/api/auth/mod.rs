//! Access control over HTTP: users, grants and tokens set up with the real
//! admin commands (`artispace user add`, `grant`, `token create`) on the
//! root of a running server, then exercised the way clients do.
//!
//! Content is pushed while the registry is still open (no user yet); the
//! first `user add` switches authentication on.

mod basic;
mod privacy;
mod rate_limit;
mod tokens;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use crate::common::{header, Image, TestServer, OCI_MANIFEST};

/// What an admin command printed and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `artispace <args> --root <root>` with `stdin` as standard input.
pub async fn artispace(root: &Path, args: &[&str], stdin: &str) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_artispace"));
    command
        .args(args)
        .arg("--root")
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = stdin.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("run artispace");
        if let Some(mut pipe) = child.stdin.take() {
            let _ = pipe.write_all(input.as_bytes());
        }
        child.wait_with_output().expect("wait for artispace")
    })
    .await
    .expect("command task");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs an admin command that must succeed.
pub async fn admin(server: &TestServer, args: &[&str]) -> Run {
    let run = artispace(server.root(), args, "").await;
    assert_eq!(
        run.code, 0,
        "artispace {args:?} failed: {}{}",
        run.stdout, run.stderr
    );
    run
}

pub async fn add_user(server: &TestServer, name: &str, password: &str) {
    let run = artispace(
        server.root(),
        &["user", "add", name, "--password-stdin"],
        &format!("{password}\n"),
    )
    .await;
    assert_eq!(run.code, 0, "user add {name}: {}", run.stderr);
}

pub async fn grant(server: &TestServer, subject: &str, pattern: &str, action: &str) {
    admin(server, &["grant", subject, pattern, action]).await;
}

/// Creates an access token and returns its secret.
pub async fn create_token(server: &TestServer, user: &str, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "create", name, "--user", user];
    args.extend_from_slice(extra);
    let run = admin(server, &args).await;
    let token = run.stdout.trim().to_owned();
    assert!(token.starts_with("aspt_"), "token create printed {token:?}");
    token
}

pub fn basic(user: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{secret}")))
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A request with an optional `Authorization` header.
pub fn request(
    server: &TestServer,
    method: Method,
    path: &str,
    auth: Option<&str>,
) -> RequestBuilder {
    let req = server.client.request(method, server.url(path));
    match auth {
        Some(value) => req.header("authorization", value),
        None => req,
    }
}

pub async fn send(server: &TestServer, method: Method, path: &str, auth: Option<&str>) -> Response {
    request(server, method, path, auth)
        .send()
        .await
        .expect("request")
}

/// Pushes `image` to `repo:tag` with the given credentials; returns the
/// status of the manifest PUT (after asserting the blob pushes worked).
pub async fn push_image_as(
    server: &TestServer,
    auth: Option<&str>,
    repo: &str,
    tag: &str,
    image: &Image,
) -> u16 {
    for blob in [&image.config, &image.layer] {
        let digest = crate::common::sha256_digest(blob);
        let resp = request(
            server,
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            auth,
        )
        .header("content-type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .await
        .expect("push blob");
        let status = resp.status().as_u16();
        if status != 201 {
            return status;
        }
    }
    request(
        server,
        Method::PUT,
        &format!("/v2/{repo}/manifests/{tag}"),
        auth,
    )
    .header("content-type", OCI_MANIFEST)
    .body(image.manifest.clone())
    .send()
    .await
    .expect("push manifest")
    .status()
    .as_u16()
}

/// The `WWW-Authenticate` header of a response.
pub fn challenge_of(resp: &Response) -> String {
    header(resp, "www-authenticate").unwrap_or_default()
}

/// Fetches a bearer token from `GET /token` for `scope`.
pub async fn fetch_token(server: &TestServer, auth: Option<&str>, scope: &str) -> Value {
    let path = format!("/token?service=artispace&scope={scope}");
    let resp = send(server, Method::GET, &path, auth).await;
    crate::common::json_body(resp, 200).await
}

/// The claims of a JWT, read without checking it.
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .expect("JWT payload is base64url");
    serde_json::from_slice(&bytes).expect("JWT payload is JSON")
}

/// Starts a server, pushes one image to each of `repos` (tag `v1`) while it
/// is open, then adds `admin` (password `admin-pw`) with admin on `*` so that
/// authentication is on. Returns the server and the images in order.
pub async fn secured_server_with(args: &[&str], repos: &[&str]) -> (TestServer, Vec<Image>) {
    let server = TestServer::start_with(args).await;
    let mut images = Vec::new();
    for (i, repo) in repos.iter().enumerate() {
        images.push(server.push_image(repo, "v1", 100 + i as u64).await);
    }
    add_user(&server, "admin", "admin-pw").await;
    grant(&server, "admin", "*", "admin").await;
    (server, images)
}
