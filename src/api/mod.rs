//! The HTTP API of `artispace serve`: OCI Distribution v1.1 and Docker
//! Registry V2.
//!
//! [`routes`] holds the wire contract (which paths exist), [`error`] the
//! error codes and their statuses; one module per endpoint family holds the
//! handlers. Handlers parse nothing by hand and touch no SQL or files: they
//! call the [`Registry`]. Every `/v2` request passes [`auth::Authorized`]
//! first; `/token` is the token server (the `token` module). [`server`] listens,
//! [`transport`] serves one connection under limits, [`tls`] holds the
//! certificates.

pub mod auth;
mod blobs;
pub(crate) mod byte_ranges;
pub(crate) mod conditional;
pub mod error;
mod limits;
mod listing;
mod manifests;
mod reply;
mod request_log;
pub mod routes;
pub mod server;
pub mod tls;
mod token;
pub mod transport;
mod uploads;
mod zero_copy;

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, HttpBody as _};
use axum::extract::{Query, Request, State};
use axum::http::header::{ALLOW, CONTENT_LENGTH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Extension, Router};
use serde::de::DeserializeOwned;

use auth::{AuthScheme, Authorized};
use error::{ApiError, ErrorCode};
use limits::UploadSlots;
use routes::V2Route;
use zero_copy::FileSends;

use crate::access::Access;
use crate::registry::Registry;

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// HTTP policy knobs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// What a 401 offers.
    pub auth: AuthScheme,
    /// Uploads (blob or manifest bodies) one client address may run at once.
    pub max_uploads_per_client: usize,
    /// Reverse proxies whose reports of the client's address are believed
    /// (see `auth::client_address`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            auth: AuthScheme::Token,
            max_uploads_per_client: 32,
            trusted_proxies: Vec::new(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub access: Arc<Access>,
    pub config: ApiConfig,
    uploads: Arc<UploadSlots>,
}

impl AppState {
    pub fn new(registry: Arc<Registry>, access: Arc<Access>, config: ApiConfig) -> AppState {
        AppState {
            registry,
            access,
            uploads: UploadSlots::new(config.max_uploads_per_client),
            config,
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/token", get(token::get).post(token::post))
        .route("/v2", any(v2))
        .route("/v2/", any(v2))
        .route("/v2/{*path}", any(v2))
        .fallback(|| async { ApiError::new(ErrorCode::NameUnknown, "no such endpoint") })
        .layer(middleware::from_fn(limits::refuse_long_urls))
        .layer(middleware::from_fn(log_and_stamp))
        .with_state(state)
}

/// Whether a request carries content to store: those count against the
/// client's concurrent uploads.
fn is_upload(route: &V2Route, method: &Method) -> bool {
    matches!(
        (route, method),
        (V2Route::Uploads { .. }, &Method::POST)
            | (V2Route::Upload { .. }, &Method::PATCH | &Method::PUT)
            | (V2Route::Manifest { .. }, &Method::PUT)
    )
}

/// Dispatches a `/v2/…` request to its handler by endpoint and method,
/// once [`Authorized`] has let it through.
async fn v2(
    State(state): State<AppState>,
    Authorized {
        route,
        caller,
        client,
    }: Authorized,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    file_sends: Option<Extension<FileSends>>,
    body: Body,
) -> Result<Response, ApiError> {
    // Held until the body has been read and stored.
    let _slot = match is_upload(&route, &method) {
        true => Some(state.uploads.take(client)?),
        false => None,
    };
    // A 405, whether for the method or for deletion being off, names the
    // methods the endpoint does answer.
    let allowed = route.allowed_methods(state.registry.config().delete_enabled);
    let with_allow = |e: ApiError| match e.status() {
        StatusCode::METHOD_NOT_ALLOWED => e.with_header(ALLOW, allowed),
        _ => e,
    };
    let reply = match (route, method) {
        (V2Route::Base, Method::GET | Method::HEAD) => {
            return Ok(
                (StatusCode::OK, [("content-type", "application/json")], "{}").into_response(),
            )
        }
        (V2Route::Catalog, Method::GET) => listing::catalog(state, query(&uri)?, &caller).await?,
        (V2Route::Tags { repo }, Method::GET) => listing::tags(state, repo, query(&uri)?).await?,
        (V2Route::Referrers { repo, digest }, Method::GET) => {
            listing::referrers(state, repo, digest, query(&uri)?).await?
        }
        (V2Route::Blob { repo, digest }, Method::HEAD) => {
            blobs::head(state, repo, digest, &headers).await?
        }
        (V2Route::Blob { repo, digest }, Method::GET) => {
            let file_sends = file_sends.map(|Extension(sends)| sends);
            blobs::get(state, repo, digest, &headers, file_sends).await?
        }
        (V2Route::Blob { repo, digest }, Method::DELETE) => blobs::delete(state, repo, digest)
            .await
            .map_err(with_allow)?,
        (V2Route::Uploads { repo }, Method::POST) => {
            uploads::start(state, repo, query(&uri)?, &headers, body, &caller).await?
        }
        (V2Route::Upload { repo, id }, Method::GET) => uploads::status(state, repo, id).await?,
        (V2Route::Upload { repo, id }, Method::PATCH) => {
            uploads::append(state, repo, id, &headers, body).await?
        }
        (V2Route::Upload { repo, id }, Method::PUT) => {
            uploads::finish(state, repo, id, query(&uri)?, &headers, body).await?
        }
        (V2Route::Upload { repo, id }, Method::DELETE) => uploads::cancel(state, repo, id).await?,
        (V2Route::Manifest { repo, reference }, Method::PUT) => {
            manifests::put(state, repo, reference, &headers, body).await?
        }
        (V2Route::Manifest { repo, reference }, method @ (Method::GET | Method::HEAD)) => {
            manifests::get(state, repo, reference, &headers, method == Method::GET).await?
        }
        (V2Route::Manifest { repo, reference }, Method::DELETE) => {
            manifests::delete(state, repo, reference)
                .await
                .map_err(with_allow)?
        }
        (_, method) => {
            return Err(ApiError::new(
                ErrorCode::Unsupported,
                format!("{method} is not supported on this endpoint"),
            )
            .with_header(ALLOW, allowed))
        }
    };
    Ok(reply.into_response())
}

/// Parses the query string into `T`; a malformed one is a bad request.
fn query<T: DeserializeOwned + Default>(uri: &Uri) -> Result<T, ApiError> {
    if uri.query().is_none() {
        return Ok(T::default());
    }
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Unsupported,
                format!("query string is malformed: {e}"),
            )
            .with_status(StatusCode::BAD_REQUEST)
        })
}

/// Logs each request (once its response body is sent) and stamps the API
/// version header on every response.
async fn log_and_stamp(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let logged = request_log::enabled().then(|| {
        (
            request.method().clone(),
            request.uri().path().to_owned(),
            content_length(request.headers()),
        )
    });
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    let Some((method, path, bytes_in)) = logged else {
        return response;
    };
    // Streamed bodies announce their length in a header, buffered ones in
    // their size hint; an answer to HEAD sends no body whatever it announces.
    let bytes_announced = if method == Method::HEAD {
        0
    } else {
        response
            .body()
            .size_hint()
            .exact()
            .unwrap_or_else(|| content_length(response.headers()))
    };
    let line = request_log::RequestLine {
        method,
        path,
        status: response.status(),
        bytes_in,
        bytes_announced,
        started,
    };
    response.map(|body| line.log_when_sent(body))
}

fn content_length(headers: &HeaderMap) -> u64 {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
