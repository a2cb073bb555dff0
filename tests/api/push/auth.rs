//! Credentials: a proxy in front of a real `artispace serve` that demands
//! Basic credentials, or a Bearer token from its own token endpoint, the
//! way hosted registries do.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::TryStreamExt;

use super::*;
use crate::common::{sha256_digest, TestServer};

/// `user:secret`, base64-encoded as in a Basic `Authorization` header.
const GOOD_BASIC: &str = "Basic dXNlcjpzZWNyZXQ=";
const TOKEN: &str = "token-for-user";

#[derive(Clone)]
struct Gate {
    upstream: String,
    /// `Some(realm)`: Bearer tokens from `realm`; `None`: Basic.
    realm: Option<String>,
    tokens_issued: Arc<AtomicUsize>,
    http: reqwest::Client,
}

struct AuthProxy {
    host: String,
    tokens_issued: Arc<AtomicUsize>,
}

async fn auth_proxy(server: &TestServer, bearer: bool) -> AuthProxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let tokens_issued = Arc::new(AtomicUsize::new(0));
    let gate = Gate {
        upstream: server.url(""),
        realm: bearer.then(|| format!("http://{host}/token")),
        tokens_issued: Arc::clone(&tokens_issued),
        http: reqwest::Client::new(),
    };
    let app = Router::new()
        .route("/token", get(token))
        .fallback(forward)
        .with_state(gate);
    tokio::spawn(async move { axum::serve(listener, app).await });
    AuthProxy {
        host,
        tokens_issued,
    }
}

fn authorization(request: &Request) -> &str {
    request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn token(State(gate): State<Gate>, request: Request) -> Response {
    if authorization(&request) != GOOD_BASIC {
        return status(StatusCode::UNAUTHORIZED);
    }
    gate.tokens_issued.fetch_add(1, Ordering::SeqCst);
    Response::new(Body::from(format!(r#"{{"token":"{TOKEN}"}}"#)))
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}

/// Sends `request` on to the registry at `upstream` (without its
/// credentials) and streams the answer back.
async fn relay(http: &reqwest::Client, upstream: &str, request: Request) -> Response {
    let url = format!("{upstream}{}", request.uri());
    let mut onward = http.request(request.method().clone(), url);
    for (name, value) in request.headers() {
        if name != "host" && name != "authorization" {
            onward = onward.header(name, value);
        }
    }
    let body = request.into_body().into_data_stream();
    let answer = match onward.body(reqwest::Body::wrap_stream(body)).send().await {
        Ok(answer) => answer,
        Err(_) => return status(StatusCode::BAD_GATEWAY),
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = answer.status();
    *response.headers_mut() = answer.headers().clone();
    *response.body_mut() = Body::from_stream(answer.bytes_stream().map_err(std::io::Error::other));
    response
}

async fn forward(State(gate): State<Gate>, request: Request) -> Response {
    let (challenge, allowed) = match &gate.realm {
        Some(realm) => (
            format!(r#"Bearer realm="{realm}",service="test",scope="repository:x:pull,push""#),
            authorization(&request) == format!("Bearer {TOKEN}"),
        ),
        None => (
            r#"Basic realm="test""#.to_owned(),
            authorization(&request) == GOOD_BASIC,
        ),
    };
    if !allowed {
        let mut response = status(StatusCode::UNAUTHORIZED);
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_str(&challenge).unwrap(),
        );
        return response;
    }
    relay(&gate.http, &gate.upstream, request).await
}

fn layout_with_image(work: &Path, seed: u64) -> (PathBuf, SourceImage) {
    let image = SourceImage::new(seed, "linux", "amd64", &[30_000]);
    let layout = work.join("layout");
    single_image_layout(&layout, &image);
    (layout, image)
}

async fn push(args: Vec<String>, env: Vec<(String, String)>, stdin: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        artispace_with(&args, &env, stdin.as_deref())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_bearer_challenge_is_answered_with_a_token_from_the_realm() {
    let server = TestServer::start().await;
    let proxy = auth_proxy(&server, true).await;
    let (_keep, work) = work_dir();
    let (layout, image) = layout_with_image(&work, 40);
    let target = format!("http://{}/secure/app:v1", proxy.host);
    let args = |extra: &[&str]| {
        let mut all: Vec<String> = vec!["push".into(), "--chunk-size".into(), "8KiB".into()];
        all.extend(extra.iter().map(|s| s.to_string()));
        all.push(path_str(&layout).into());
        all.push(target.clone());
        all
    };

    let anonymous = push(args(&[]), vec![], None).await;
    assert_eq!(anonymous.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(stderr.contains("401"), "{stderr}");

    let out = push(
        args(&["--username", "user", "--password-stdin"]),
        vec![],
        Some("secret\n".into()),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(proxy.tokens_issued.load(Ordering::SeqCst) >= 1);
    let resp = server.get("/v2/secure/app/manifests/v1").await;
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
}

#[tokio::test]
async fn basic_credentials_come_from_the_environment() {
    let server = TestServer::start().await;
    let proxy = auth_proxy(&server, false).await;
    let (_keep, work) = work_dir();
    let (layout, image) = layout_with_image(&work, 41);
    let target = format!("http://{}/basic/app:v1", proxy.host);
    let args = vec!["push".to_owned(), path_str(&layout).to_owned(), target];
    let env = |password: &str| {
        vec![
            ("ARTISPACE_USERNAME".to_owned(), "user".to_owned()),
            ("ARTISPACE_PASSWORD".to_owned(), password.to_owned()),
        ]
    };

    let wrong = push(args.clone(), env("wrong"), None).await;
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("not accepted"), "{stderr}");

    let out = push(args, env("secret"), None).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let layer = sha256_digest(&image.layers[0]);
    let resp = server.get(&format!("/v2/basic/app/blobs/{layer}")).await;
    assert_eq!(resp.bytes().await.unwrap(), image.layers[0]);
}

/// A token server that hands out tokens for exactly the scopes asked
/// (pull, or pull and push) and a gate that checks them, arranged so that a
/// second, slower pull-only token arrives after the client started using a
/// pull-and-push one, and before its next PATCH: a client that let the late
/// token replace the newer one sends that PATCH with pull rights only.
#[derive(Clone)]
struct ScopedGate {
    upstream: String,
    realm: String,
    http: reqwest::Client,
    pull_only_asked: Arc<AtomicUsize>,
    /// A POST carried the pull-and-push token.
    push_used: Arc<AtomicBool>,
    /// The second pull-only token was handed out...
    stale_sent: Arc<AtomicBool>,
    /// ...and a request came back with it.
    stale_used: Arc<AtomicBool>,
    patched: Arc<AtomicBool>,
}

const PULL_TOKEN: &str = "pull-only";
const PUSH_TOKEN: &str = "pull-and-push";

/// Waits until `flag` is set or `limit` has passed.
async fn wait_for(flag: &AtomicBool, limit: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !flag.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn scoped_token(State(gate): State<ScopedGate>, request: Request) -> Response {
    if authorization(&request) != GOOD_BASIC {
        return status(StatusCode::UNAUTHORIZED);
    }
    if request.uri().query().unwrap_or("").contains("push") {
        return Response::new(Body::from(format!(r#"{{"token":"{PUSH_TOKEN}"}}"#)));
    }
    if gate.pull_only_asked.fetch_add(1, Ordering::SeqCst) > 0 {
        // A second pull-only fetch, racing the first: answer it late, as a
        // slow login would, once the pull-and-push token is in use.
        wait_for(&gate.push_used, std::time::Duration::from_secs(5)).await;
        gate.stale_sent.store(true, Ordering::SeqCst);
    }
    Response::new(Body::from(format!(r#"{{"token":"{PULL_TOKEN}"}}"#)))
}

async fn scoped_forward(State(gate): State<ScopedGate>, request: Request) -> Response {
    let reads = matches!(request.method().as_str(), "GET" | "HEAD");
    let token = authorization(&request)
        .trim_start_matches("Bearer ")
        .to_owned();
    if request.method() == "PATCH" {
        gate.patched.store(true, Ordering::SeqCst);
    }
    if token == PULL_TOKEN && gate.stale_sent.load(Ordering::SeqCst) {
        // The late token is installed; hold its bearer until the other
        // upload's PATCH has been sent.
        gate.stale_used.store(true, Ordering::SeqCst);
        wait_for(&gate.patched, std::time::Duration::from_secs(1)).await;
    }
    let allowed = token == PUSH_TOKEN || (reads && token == PULL_TOKEN);
    if !allowed {
        let actions = if reads { "pull" } else { "pull,push" };
        let challenge = format!(
            r#"Bearer realm="{}",service="test",scope="repository:x:{actions}""#,
            gate.realm
        );
        let mut response = status(StatusCode::UNAUTHORIZED);
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_str(&challenge).unwrap(),
        );
        return response;
    }
    if request.method() == "POST" {
        // Give a late pull-only token (if the client fetched one) the time
        // to be installed before this session's PATCH is sent.
        gate.push_used.store(true, Ordering::SeqCst);
        wait_for(&gate.stale_used, std::time::Duration::from_millis(300)).await;
    }
    relay(&gate.http, &gate.upstream, request).await
}

#[tokio::test]
async fn a_late_token_for_fewer_scopes_does_not_replace_a_newer_one() {
    let server = TestServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let gate = ScopedGate {
        upstream: server.url(""),
        realm: format!("http://{host}/token"),
        http: reqwest::Client::new(),
        pull_only_asked: Arc::new(AtomicUsize::new(0)),
        push_used: Arc::new(AtomicBool::new(false)),
        stale_sent: Arc::new(AtomicBool::new(false)),
        stale_used: Arc::new(AtomicBool::new(false)),
        patched: Arc::new(AtomicBool::new(false)),
    };
    let app = Router::new()
        .route("/token", get(scoped_token))
        .fallback(scoped_forward)
        .with_state(gate);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (_keep, work) = work_dir();
    // Two blobs (config and layer) meet the first challenge at once.
    let (layout, image) = layout_with_image(&work, 42);
    let args = vec![
        "push".to_owned(),
        "--username".to_owned(),
        "user".to_owned(),
        "--password-stdin".to_owned(),
        "--retries".to_owned(),
        "0".to_owned(),
        "--chunk-size".to_owned(),
        "8KiB".to_owned(),
        path_str(&layout).to_owned(),
        format!("http://{host}/scoped/app:v1"),
    ];
    let out = push(args, vec![], Some("secret\n".into())).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resp = server.get("/v2/scoped/app/manifests/v1").await;
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
}

/// A token server whose first token expires just as the layer's second
/// chunk arrives, as a short-lived token does during a long push: that
/// PATCH meets a new challenge. (Tied to a request rather than to a clock,
/// so the other blob's requests cannot renew the token first.)
#[derive(Clone)]
struct ExpiringGate {
    upstream: String,
    realm: String,
    http: reqwest::Client,
    /// Number of the token the gate accepts (`token-N`); 0 for none.
    valid: Arc<AtomicUsize>,
    issued: Arc<AtomicUsize>,
    /// PATCHes answered with a challenge because their token had expired.
    expired_patches: Arc<AtomicUsize>,
    /// Every token has expired by the time it reaches a PATCH.
    patches_always_expired: bool,
}

/// The chunk at which the first token expires: the second 8 KiB PATCH of
/// the 30 kB layer (the config blob fits in one).
const EXPIRES_AT_CHUNK: &str = "8192-";

async fn expiring_token(State(gate): State<ExpiringGate>, request: Request) -> Response {
    if authorization(&request) != GOOD_BASIC {
        return status(StatusCode::UNAUTHORIZED);
    }
    let n = gate.issued.fetch_add(1, Ordering::SeqCst) + 1;
    gate.valid.store(n, Ordering::SeqCst);
    Response::new(Body::from(format!(r#"{{"token":"token-{n}"}}"#)))
}

async fn expiring_forward(State(gate): State<ExpiringGate>, request: Request) -> Response {
    let patch = request.method() == "PATCH";
    let expiring_chunk = patch
        && request
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|range| range.starts_with(EXPIRES_AT_CHUNK));
    if expiring_chunk {
        // The first token's time is up.
        let _ = gate
            .valid
            .compare_exchange(1, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
    let valid = gate.valid.load(Ordering::SeqCst);
    let allowed = valid > 0
        && authorization(&request) == format!("Bearer token-{valid}")
        && !(patch && gate.patches_always_expired);
    if !allowed {
        if patch && authorization(&request).starts_with("Bearer token-") {
            gate.expired_patches.fetch_add(1, Ordering::SeqCst);
        }
        let challenge = format!(
            r#"Bearer realm="{}",service="test",scope="repository:x:pull,push""#,
            gate.realm
        );
        let mut response = status(StatusCode::UNAUTHORIZED);
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_str(&challenge).unwrap(),
        );
        return response;
    }
    relay(&gate.http, &gate.upstream, request).await
}

struct ExpiringProxy {
    host: String,
    issued: Arc<AtomicUsize>,
    expired_patches: Arc<AtomicUsize>,
}

async fn expiring_proxy(server: &TestServer, patches_always_expired: bool) -> ExpiringProxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let gate = ExpiringGate {
        upstream: server.url(""),
        realm: format!("http://{host}/token"),
        http: reqwest::Client::new(),
        valid: Arc::new(AtomicUsize::new(0)),
        issued: Arc::new(AtomicUsize::new(0)),
        expired_patches: Arc::new(AtomicUsize::new(0)),
        patches_always_expired,
    };
    let proxy = ExpiringProxy {
        host: host.clone(),
        issued: Arc::clone(&gate.issued),
        expired_patches: Arc::clone(&gate.expired_patches),
    };
    let app = Router::new()
        .route("/token", get(expiring_token))
        .fallback(expiring_forward)
        .with_state(gate);
    tokio::spawn(async move { axum::serve(listener, app).await });
    proxy
}

/// `artispace push` of `layout` to `repo:v1` through `proxy`, with
/// credentials, no retries and 8 KiB chunks.
async fn push_without_retries(proxy: &ExpiringProxy, layout: &Path, repo: &str) -> Output {
    let mut args: Vec<String> = ["push", "--username", "user", "--password-stdin"]
        .into_iter()
        .chain(["--retries", "0", "--chunk-size", "8KiB"])
        .map(str::to_owned)
        .collect();
    args.push(path_str(layout).to_owned());
    args.push(format!("http://{}/{repo}:v1", proxy.host));
    push(args, vec![], Some("secret\n".into())).await
}

#[tokio::test]
async fn a_token_that_expires_mid_upload_is_renewed_without_using_a_retry() {
    let server = TestServer::start().await;
    let proxy = expiring_proxy(&server, false).await;
    let (_keep, work) = work_dir();
    // A 30 kB layer in 8 KiB chunks: PATCHes follow the one that expires
    // the token.
    let (layout, image) = layout_with_image(&work, 43);
    let out = push_without_retries(&proxy, &layout, "expiry/app").await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        proxy.expired_patches.load(Ordering::SeqCst) >= 1,
        "no PATCH met the expired token"
    );
    assert!(
        proxy.issued.load(Ordering::SeqCst) >= 2,
        "no token was renewed"
    );
    let resp = server.get("/v2/expiry/app/manifests/v1").await;
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
    let layer = sha256_digest(&image.layers[0]);
    let resp = server.get(&format!("/v2/expiry/app/blobs/{layer}")).await;
    assert_eq!(resp.bytes().await.unwrap(), image.layers[0]);
}

#[tokio::test]
async fn an_upload_stops_when_every_fresh_token_is_refused() {
    let server = TestServer::start().await;
    let proxy = expiring_proxy(&server, true).await;
    let (_keep, work) = work_dir();
    let (layout, image) = layout_with_image(&work, 44);
    let out = push_without_retries(&proxy, &layout, "refused/app").await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("in a row"),
        "{stderr}"
    );
    // Three challenges per upload (config and layer), not an endless loop.
    let refused = proxy.expired_patches.load(Ordering::SeqCst);
    assert!((3..=6).contains(&refused), "{refused} PATCHes refused");
    let layer = sha256_digest(&image.layers[0]);
    let resp = server.head(&format!("/v2/refused/app/blobs/{layer}")).await;
    assert_eq!(resp.status(), 404);
}
