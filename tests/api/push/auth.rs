//! Credentials: a proxy in front of a real `artispace serve` that demands
//! Basic credentials, or a Bearer token from its own token endpoint, the
//! way hosted registries do.

use std::sync::atomic::{AtomicUsize, Ordering};
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
    let url = format!("{}{}", gate.upstream, request.uri());
    let mut upstream = gate.http.request(request.method().clone(), url);
    for (name, value) in request.headers() {
        if name != "host" && name != "authorization" {
            upstream = upstream.header(name, value);
        }
    }
    let body = request.into_body().into_data_stream();
    let answer = match upstream.body(reqwest::Body::wrap_stream(body)).send().await {
        Ok(answer) => answer,
        Err(_) => return status(StatusCode::BAD_GATEWAY),
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = answer.status();
    *response.headers_mut() = answer.headers().clone();
    *response.body_mut() = Body::from_stream(answer.bytes_stream().map_err(std::io::Error::other));
    response
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
