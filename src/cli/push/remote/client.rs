//! Talking to a remote registry: URLs, credentials (Basic, or a Bearer token
//! fetched from the realm a `401` challenge names), and retries with
//! exponential backoff on connection errors and `5xx`/`429` answers.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;

use super::super::PushError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// `401` challenges a request (or an upload) answers in a row; the next one
/// ends it. A second may ask for a token with wider scopes; a third means
/// the credentials will not do.
pub const ANSWERED_CHALLENGES: u32 = 2;

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// What the client sends in `Authorization`, learnt from challenges.
#[derive(Clone, Default)]
enum Auth {
    #[default]
    Anonymous,
    Basic,
    Bearer {
        token: String,
        scopes: BTreeSet<String>,
    },
}

/// The current `Auth`, and how often it changed: a `401` to a request sent
/// before the last change is answered by sending it again, not by another
/// round of authentication (blobs go in parallel, so several requests meet
/// the first challenge at once).
#[derive(Default)]
struct AuthState {
    auth: Auth,
    generation: u64,
}

pub struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    credentials: Option<Credentials>,
    auth: Mutex<AuthState>,
    /// Held while a token is fetched, so that concurrent challenges take
    /// turns: each fetch starts from the token the previous one installed,
    /// and a slow fetch for fewer scopes cannot replace a newer token that
    /// has more (which made a blob's PATCH meet a pull-only token).
    token_fetch: tokio::sync::Mutex<()>,
    /// How often a failed request is tried again.
    pub retries: u32,
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl RegistryClient {
    pub fn new(
        base: Url,
        credentials: Option<Credentials>,
        retries: u32,
    ) -> Result<RegistryClient, PushError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("artispace/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PushError::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(RegistryClient {
            http,
            base,
            credentials,
            auth: Mutex::new(AuthState::default()),
            token_fetch: tokio::sync::Mutex::new(()),
            retries,
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `path` (`/v2/…`) on the registry.
    pub fn url(&self, path: &str) -> Result<Url, PushError> {
        self.resolve(path)
    }

    /// A `Location` header value (a path or an absolute URL).
    pub fn resolve(&self, location: &str) -> Result<Url, PushError> {
        self.base.join(location).map_err(|e| {
            PushError::Refused(format!("the registry sent a bad URL {location:?}: {e}"))
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes each time the credentials sent change; read it before
    /// sending a request that `authenticate` may later be asked about.
    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Adds the credentials the registry asked for so far.
    pub fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        let auth = self.state().auth.clone();
        match (auth, &self.credentials) {
            (Auth::Basic, Some(c)) => request.basic_auth(&c.username, Some(&c.password)),
            (Auth::Bearer { token, .. }, _) => request.bearer_auth(token),
            _ => request,
        }
    }

    /// Answers a `401` challenge to a request sent at `generation`: Basic
    /// credentials from now on, or a fresh Bearer token for the scopes asked
    /// so far.
    pub async fn authenticate(
        &self,
        response: &Response,
        generation: u64,
    ) -> Result<(), PushError> {
        let header = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (scheme, params) = parse_challenge(header);
        let denied = |why: &str| {
            PushError::Refused(format!(
                "the registry refused the request (401 unauthorized): {why}"
            ))
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            let realm =
                param(&params, "realm").ok_or_else(|| denied("its challenge names no realm"))?;
            let asked: Vec<String> = param(&params, "scope")
                .map(|scope| scope.split(' ').map(str::to_owned).collect())
                .unwrap_or_default();
            let _turn = self.token_fetch.lock().await;
            let mut scopes = {
                let state = self.state();
                let current = match &state.auth {
                    Auth::Bearer { scopes, .. } => scopes.clone(),
                    _ => BTreeSet::new(),
                };
                // A token installed since the request was sent that covers
                // what this challenge asks: send the request again with it.
                let covered = asked.iter().all(|s| current.contains(s));
                if state.generation != generation && covered {
                    return Ok(());
                }
                current
            };
            scopes.extend(asked);
            let token = self
                .fetch_token(realm, param(&params, "service"), &scopes)
                .await?;
            let mut state = self.state();
            state.auth = Auth::Bearer { token, scopes };
            state.generation += 1;
            return Ok(());
        }
        if self.credentials.is_none() {
            return Err(denied(
                "give credentials with --username and --password-stdin (or ARTISPACE_USERNAME/ARTISPACE_PASSWORD)",
            ));
        }
        let mut state = self.state();
        if state.generation != generation {
            return Ok(());
        }
        if matches!(state.auth, Auth::Basic) {
            return Err(denied("the credentials were not accepted"));
        }
        state.auth = Auth::Basic;
        state.generation += 1;
        Ok(())
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &BTreeSet<String>,
    ) -> Result<String, PushError> {
        let mut url = Url::parse(realm).map_err(|e| {
            PushError::Refused(format!("the token realm {realm:?} is not a URL: {e}"))
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
        }
        let credentials = self.credentials.clone();
        let response = self
            .retrying("fetching a token", || {
                let request = self.http.get(url.clone());
                match &credentials {
                    Some(c) => request.basic_auth(&c.username, Some(&c.password)),
                    None => request,
                }
            })
            .await?;
        if !response.status().is_success() {
            return Err(refusal("fetching a token", response).await);
        }
        let reply: TokenReply = response
            .json()
            .await
            .map_err(|e| PushError::Refused(format!("the token service sent no token: {e}")))?;
        reply
            .token
            .or(reply.access_token)
            .ok_or_else(|| PushError::Refused("the token service sent no token".into()))
    }

    /// Sends a request that may safely be repeated, with credentials, retries
    /// and one answer to a `401` challenge.
    pub async fn send(
        &self,
        what: &str,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, PushError> {
        let mut challenges = 0;
        loop {
            let generation = self.generation();
            let response = self.retrying(what, || self.authorize(make())).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            if challenges == ANSWERED_CHALLENGES {
                return Err(refusal(what, response).await);
            }
            challenges += 1;
            self.authenticate(&response, generation).await?;
        }
    }

    async fn retrying(
        &self,
        what: &str,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, PushError> {
        let mut attempt = 0;
        let mut resent_on_a_fresh_connection = false;
        loop {
            let outcome = make().send().await;
            if let Err(e) = &outcome {
                if is_stale_connection(e) && !resent_on_a_fresh_connection {
                    resent_on_a_fresh_connection = true;
                    continue;
                }
            }
            let retry = match &outcome {
                Ok(response) => is_transient(response.status()),
                Err(e) => !e.is_builder(),
            };
            if !retry || attempt >= self.retries {
                return outcome.map_err(|e| unreachable(what, &e));
            }
            attempt += 1;
            let why = match &outcome {
                Ok(response) => response.status().to_string(),
                Err(e) => e.to_string(),
            };
            tracing::warn!(what, attempt, error = %why, "retrying");
            backoff(attempt).await;
        }
    }
}

/// Whether the request went out on a kept-alive connection that the server
/// closed at that moment, before any answer (hyper's "connection closed
/// before message completed"): a registry closes a connection after
/// answering a request whose body it did not read (a 401 to a PATCH whose
/// token expired), and the next request can race that close. Requests sent
/// through [`RegistryClient::send`] may be repeated, so such a request goes
/// again at once, once, and that is not one of the user's `--retries` (Go's
/// HTTP client does the same for idempotent requests). A chunk (`PATCH`) is
/// not resent this way: a cut in its middle looks the same, and its resume
/// asks the registry where the session stands.
fn is_stale_connection(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(error) = source {
        if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
            return hyper.is_incomplete_message();
        }
        source = error.source();
    }
    false
}

/// Server errors and throttling are worth another try; other answers are
/// final.
pub fn is_transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// Waits before attempt `attempt` (1, 2, …): 250 ms, 500 ms, 1 s, … 8 s.
pub async fn backoff(attempt: u32) {
    let delay = FIRST_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(6));
    tokio::time::sleep(delay.min(MAX_BACKOFF)).await;
}

pub fn unreachable(what: &str, e: &reqwest::Error) -> PushError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    PushError::Unreachable(format!("{what}: {message}"))
}

/// A registry's error answer as a message: the status and the OCI error
/// codes and messages of the body.
pub async fn refusal(what: &str, response: Response) -> PushError {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<OciError>,
    }
    #[derive(Deserialize)]
    struct OciError {
        code: String,
        #[serde(default)]
        message: String,
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let detail = match serde_json::from_str::<Errors>(&body) {
        Ok(errors) => errors
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => body.chars().take(200).collect(),
    };
    PushError::Refused(format!("{what}: the registry answered {status} {detail}"))
}

/// `Bearer realm="…",service="…"` → ("Bearer", [(realm, …), (service, …)]).
fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied().filter(|c| *c != ',') {
                value.push(c);
                chars.next();
            }
        }
        params.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    (scheme.to_owned(), params)
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn read_request_head(conn: &mut TcpStream) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(conn.read(&mut byte).await.unwrap(), 1, "request cut short");
            head.push(byte[0]);
        }
    }

    async fn answer_ok(conn: &mut TcpStream) {
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_request_the_server_closed_the_kept_connection_on_is_sent_again_without_a_retry() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // The first connection answers one request, then takes the next
            // and closes without an answer; the second answers.
            let (mut kept, _) = listener.accept().await.unwrap();
            read_request_head(&mut kept).await;
            answer_ok(&mut kept).await;
            read_request_head(&mut kept).await;
            drop(kept);
            let (mut fresh, _) = listener.accept().await.unwrap();
            read_request_head(&mut fresh).await;
            answer_ok(&mut fresh).await;
        });
        let base = Url::parse(&format!("http://{addr}/")).unwrap();
        let client = RegistryClient::new(base, None, 0).unwrap();
        for _ in 0..2 {
            let response = client
                .send("probing", || client.http().get(client.url("/v2/").unwrap()))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(&response.bytes().await.unwrap()[..], b"{}");
        }
        server.await.unwrap();
    }

    #[test]
    fn bearer_challenges_are_parsed() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(param(&params, "realm"), Some("https://auth.example/token"));
        assert_eq!(param(&params, "service"), Some("registry.example"));
        assert_eq!(param(&params, "scope"), Some("repository:a/b:pull,push"));
    }

    #[test]
    fn basic_challenges_are_parsed() {
        let (scheme, params) = parse_challenge(r#"Basic realm=artispace"#);
        assert_eq!(scheme, "Basic");
        assert_eq!(param(&params, "realm"), Some("artispace"));
    }
}
