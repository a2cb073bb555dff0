//! Authentication and authorization at the HTTP edge.
//!
//! [`Authorized`] is the extractor every `/v2` request goes through: it
//! reads the credentials (Basic — a password or an access token — or a
//! Bearer token from `/token`), parses the route, and asks the access layer
//! whether the caller may do what the route and method need. Refusals
//! become 401 `UNAUTHORIZED` with the challenge the registry offers (Basic
//! or Bearer), 403 `DENIED`, or 429 `TOOMANYREQUESTS`.
//!
//! Decisions depend only on the caller's grants, never on whether the
//! repository exists, so a refusal tells an outsider nothing about which
//! private repositories there are.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, HOST, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;

use super::error::{ApiError, ErrorCode};
use super::routes::V2Route;
use super::transport::Secure;
use super::AppState;
use crate::access::{Access, AccessError, Actions, Caller, Claims, Decision, Identity, SERVICE};
use crate::oci::RepoName;

/// A 401's message when the client sent no credentials.
const LOGIN_REQUIRED: &str = "authentication required";
/// A 401's message for a token that is malformed, forged or expired.
const INVALID_TOKEN: &str = "the token is invalid or has expired";

/// What a 401 offers clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthScheme {
    /// `WWW-Authenticate: Basic realm="artispace"`.
    Basic,
    /// Docker's token protocol: `Bearer realm="<base>/token",…`.
    Token,
}

/// A `/v2` request whose caller may do what it asks.
pub struct Authorized {
    pub route: V2Route,
    pub caller: Caller,
    pub client: IpAddr,
}

/// The client's address, which login rate limits and upload limits key on:
/// the TCP peer, unless the peer is one of the reverse proxies the registry
/// was told to trust (`--trusted-proxy`). Then it is the client the proxies
/// report: walking `X-Forwarded-For` (else the `for=` of `Forwarded`) from
/// the nearest hop back, the first address that is not itself a trusted
/// proxy. Hops a client wrote itself lie to the left of that one and are
/// never reached; an entry that is not an address ends the walk at the
/// peer. Unspecified when served without a socket (tests that drive the
/// router directly).
pub fn client_address(state: &AppState, parts: &Parts) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(a)| {
            a.ip().to_canonical()
        });
    let proxies = &state.config.trusted_proxies;
    let trusted = |ip: &IpAddr| proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let hops = forwarded_for(&parts.headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop else {
            return peer;
        };
        client = *ip;
        if !trusted(ip) {
            break;
        }
    }
    client
}

/// The addresses a request passed through, client first, as `X-Forwarded-For`
/// (all its lines) or else `Forwarded` lists them; `None` for an entry that
/// is not an address (`unknown`, an obfuscated name, garbage).
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    if headers.contains_key("x-forwarded-for") {
        return list_values(headers, "x-forwarded-for")
            .map(parse_hop)
            .collect();
    }
    list_values(headers, "forwarded")
        .map(|element| parameter(element, "for").and_then(parse_hop))
        .collect()
}

/// An address as proxies write it: `192.0.2.7`, `192.0.2.7:4711`,
/// `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Credentials as sent.
enum Credentials {
    None,
    Basic { user: String, secret: String },
    Bearer(String),
}

fn credentials(headers: &HeaderMap) -> Result<Credentials, ()> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(Credentials::None);
    };
    let text = value.to_str().map_err(|_| ())?.trim();
    let (scheme, rest) = text.split_once(' ').ok_or(())?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).map_err(|_| ())?;
        let decoded = String::from_utf8(decoded).map_err(|_| ())?;
        let (user, secret) = decoded.split_once(':').ok_or(())?;
        // Some clients send empty Basic credentials when they have none.
        if user.is_empty() && secret.is_empty() {
            return Ok(Credentials::None);
        }
        Ok(Credentials::Basic {
            user: user.to_owned(),
            secret: secret.to_owned(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Credentials::Bearer(rest.to_owned()))
    } else {
        Err(())
    }
}

/// Who is calling, checked against the store (or an open registry).
pub async fn authenticate(state: &AppState, parts: &Parts) -> Result<Caller, ApiError> {
    let access = &state.access;
    let internal = |e: AccessError| access_error(state, parts, e);
    if access.is_open().await.map_err(internal)? {
        // No user exists: credentials mean nothing yet, everything is allowed.
        return Ok(access.open_caller());
    }
    let client = client_address(state, parts);
    let bad = |e| access_error(state, parts, e);
    let (identity, bearer): (Identity, Option<Claims>) =
        match credentials(&parts.headers).map_err(|()| bad(AccessError::BadCredentials))? {
            Credentials::None => (Identity::Anonymous, None),
            Credentials::Basic { user, secret } => (
                access.login(client, &user, &secret).await.map_err(bad)?,
                None,
            ),
            Credentials::Bearer(token) => {
                let claims = access.verify_bearer(&token).map_err(|e| {
                    tracing::debug!(error = %e, "bearer token refused");
                    challenge(state, parts, None, Some("invalid_token"), INVALID_TOKEN)
                })?;
                (Access::identity_of(&claims), Some(claims))
            }
        };
    access.caller(identity, bearer).await.map_err(bad)
}

/// Maps an access error to its response.
pub fn access_error(state: &AppState, parts: &Parts, e: AccessError) -> ApiError {
    match e {
        AccessError::BadCredentials => challenge(
            state,
            parts,
            None,
            Some("invalid_token"),
            "incorrect user name or password",
        ),
        AccessError::Token(_) => {
            challenge(state, parts, None, Some("invalid_token"), INVALID_TOKEN)
        }
        AccessError::TooManyAttempts(wait) => ApiError::new(
            ErrorCode::TooManyRequests,
            format!(
                "too many failed logins; retry in {} seconds",
                wait.as_secs()
            ),
        )
        .with_header(RETRY_AFTER, wait.as_secs().to_string()),
        other => {
            tracing::error!(error = %other, "access check failed");
            ApiError::new(ErrorCode::Unknown, "internal error; see the registry's log")
        }
    }
}

/// The base URL clients reached the registry at, for the token realm. On a
/// plain connection a reverse proxy in front (which ends TLS itself) may say
/// what the client used: `X-Forwarded-Proto` and `X-Forwarded-Host`, or
/// `proto=` and `host=` of `Forwarded` (RFC 7239). Without them a registry
/// behind such a proxy would send clients to `http://` for tokens. A client
/// that sends them itself only misleads itself: the realm goes back to it.
fn base_url(parts: &Parts) -> String {
    let secure = parts.extensions.get::<Secure>().is_some_and(|s| s.0);
    let headers = &parts.headers;
    let forwarded = |x_header: &str, key: &str| {
        if secure {
            return None;
        }
        first_value(headers, x_header).or_else(|| forwarded_param(headers, key))
    };
    let scheme = match forwarded("x-forwarded-proto", "proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        Some(p) if p.eq_ignore_ascii_case("http") => "http",
        _ if secure => "https",
        _ => "http",
    };
    let host = forwarded("x-forwarded-host", "host")
        .filter(|h| is_host(h))
        .or_else(|| {
            headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| is_host(h))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// Whether `text` can stand as the host (and port) of a URL we hand out.
fn is_host(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

/// The comma-separated values of every line of header `name`, in order
/// (the client's side first), trimmed.
fn list_values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The first (the client's side) of a header's values.
fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    list_values(headers, name).next()
}

/// Parameter `key` of one element of `Forwarded` (`for=…;proto=…`),
/// unquoted.
fn parameter<'a>(element: &'a str, key: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case(key)
            .then(|| value.trim().trim_matches('"'))
    })
}

/// Parameter `key` of the first element of `Forwarded`.
fn forwarded_param<'a>(headers: &'a HeaderMap, key: &str) -> Option<&'a str> {
    parameter(first_value(headers, "forwarded")?, key)
}

/// 401 `UNAUTHORIZED` with the challenge this registry offers.
/// `scope` is the access the request needs; `error` the Bearer error code
/// (`invalid_token`, `insufficient_scope`); `message` what the client
/// shows its user.
pub fn challenge(
    state: &AppState,
    parts: &Parts,
    scope: Option<&Scope>,
    error: Option<&str>,
    message: &str,
) -> ApiError {
    let value = match state.config.auth {
        AuthScheme::Basic => format!("Basic realm=\"{SERVICE}\""),
        AuthScheme::Token => {
            let mut value = format!(
                "Bearer realm=\"{}/token\",service=\"{SERVICE}\"",
                base_url(parts)
            );
            if let Some(scope) = scope {
                value.push_str(&format!(",scope=\"{}\"", scope.token_form()));
            }
            if let Some(error) = error {
                value.push_str(&format!(",error=\"{error}\""));
            }
            value
        }
    };
    let refusal =
        ApiError::new(ErrorCode::Unauthorized, message).with_header(WWW_AUTHENTICATE, value);
    match scope {
        Some(scope) => refusal.with_detail(scope.detail()),
        None => refusal,
    }
}

/// The access a refused request needed: the challenge's `scope`, in the
/// token spec's form, and the error's `detail`, in distribution's.
///
/// The detail is not decoration. Docker's client reads an error that has
/// no detail and its code's default message as the bare code, which its
/// retry check does not know, so a push refused that way was retried five
/// times over 50 s before failing; with the detail it stops at once.
pub struct Scope {
    /// `repository` or `registry`.
    kind: &'static str,
    name: String,
    actions: Vec<&'static str>,
}

impl Scope {
    fn repository(repo: &RepoName, actions: Actions) -> Scope {
        Scope {
            kind: "repository",
            name: repo.to_string(),
            actions: actions.names(),
        }
    }

    fn catalog() -> Scope {
        Scope {
            kind: "registry",
            name: "catalog".to_owned(),
            actions: vec!["*"],
        }
    }

    /// `repository:team/app:pull,push`.
    fn token_form(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }

    /// `[{"Type":"repository","Name":"team/app","Action":"pull"}, …]`.
    fn detail(&self) -> serde_json::Value {
        self.actions
            .iter()
            .map(|action| json!({"Type": self.kind, "Name": self.name, "Action": action}))
            .collect()
    }
}

/// What a route needs, for the check (`needed`) and for the challenge's
/// scope (`asked`: clients ask for pull with push, as Docker does).
fn needs(route: &V2Route, method: &Method) -> (Actions, Actions) {
    let push = (Actions::PUSH, Actions::PULL.with(Actions::PUSH));
    match route {
        // Upload sessions are part of a push, whatever the method.
        V2Route::Uploads { .. } | V2Route::Upload { .. } => push,
        _ => match *method {
            Method::GET | Method::HEAD => (Actions::PULL, Actions::PULL),
            Method::DELETE => (Actions::DELETE, Actions::DELETE),
            _ => push,
        },
    }
}

fn repo_of(route: &V2Route) -> Option<&RepoName> {
    match route {
        V2Route::Base | V2Route::Catalog => None,
        V2Route::Blob { repo, .. }
        | V2Route::Uploads { repo }
        | V2Route::Upload { repo, .. }
        | V2Route::Manifest { repo, .. }
        | V2Route::Tags { repo }
        | V2Route::Referrers { repo, .. } => Some(repo),
    }
}

/// Turns a decision into the response of a refusal.
fn enforce(
    state: &AppState,
    parts: &Parts,
    decision: Decision,
    scope: Scope,
) -> Result<(), ApiError> {
    match decision {
        Decision::Allowed => Ok(()),
        Decision::LoginRequired => Err(challenge(state, parts, Some(&scope), None, LOGIN_REQUIRED)),
        Decision::InsufficientScope => Err(challenge(
            state,
            parts,
            Some(&scope),
            Some("insufficient_scope"),
            "the token does not grant the access this request needs",
        )),
        Decision::Denied => Err(ApiError::new(
            ErrorCode::Denied,
            "requested access to the resource is denied",
        )
        .with_detail(scope.detail())),
    }
}

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(state, parts).await?;
        let route = V2Route::parse(parts.uri.path())?;
        match &route {
            V2Route::Base => {
                // Clients probe /v2/ to learn whether and how to log in; any
                // valid token (even an anonymous one) answers that.
                if !caller.is_open()
                    && caller.identity == Identity::Anonymous
                    && !caller.has_bearer()
                {
                    return Err(challenge(state, parts, None, None, LOGIN_REQUIRED));
                }
            }
            V2Route::Catalog => enforce(state, parts, caller.decide_catalog(), Scope::catalog())?,
            _ => {
                if let Some(repo) = repo_of(&route) {
                    let (needed, asked) = needs(&route, &parts.method);
                    let scope = Scope::repository(repo, asked);
                    enforce(state, parts, caller.decide(repo, needed), scope)?;
                }
            }
        }
        Ok(Authorized {
            route,
            caller,
            client: client_address(state, parts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn creds(value: &str) -> Result<Credentials, ()> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        credentials(&headers)
    }

    #[test]
    fn basic_credentials_split_at_the_first_colon() {
        let value = format!("Basic {}", STANDARD.encode("john:pa:ss"));
        match creds(&value) {
            Ok(Credentials::Basic { user, secret }) => {
                assert_eq!((user.as_str(), secret.as_str()), ("john", "pa:ss"))
            }
            _ => panic!("not read as Basic"),
        }
        let empty = format!("Basic {}", STANDARD.encode(":"));
        assert!(matches!(creds(&empty), Ok(Credentials::None)));
        assert!(creds("Basic !!!").is_err());
        assert!(creds("Digest abc").is_err());
        assert!(matches!(creds("bearer abc"), Ok(Credentials::Bearer(t)) if t == "abc"));
    }

    #[test]
    fn upload_sessions_need_push_whatever_the_method() {
        let repo: RepoName = "a".parse().unwrap();
        let upload = V2Route::Upload {
            repo: repo.clone(),
            id: uuid::Uuid::nil(),
        };
        assert_eq!(needs(&upload, &Method::GET).0, Actions::PUSH);
        assert_eq!(needs(&upload, &Method::DELETE).0, Actions::PUSH);
        let tags = V2Route::Tags { repo };
        assert_eq!(needs(&tags, &Method::GET).0, Actions::PULL);
    }

    #[test]
    fn proxy_hops_are_read_in_every_form_proxies_write() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(parse_hop("192.0.2.7"), ip("192.0.2.7"));
        assert_eq!(parse_hop("192.0.2.7:4711"), ip("192.0.2.7"));
        assert_eq!(parse_hop("2001:db8::1"), ip("2001:db8::1"));
        assert_eq!(parse_hop("[2001:db8::1]"), ip("2001:db8::1"));
        assert_eq!(parse_hop("[2001:db8::1]:4711"), ip("2001:db8::1"));
        assert_eq!(parse_hop("::ffff:192.0.2.7"), ip("192.0.2.7"));
        assert_eq!(parse_hop("unknown"), None);
        assert_eq!(parse_hop("_hidden"), None);

        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 10.0.0.2"),
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.3"));
        headers.insert("forwarded", HeaderValue::from_static("for=192.0.2.9"));
        assert_eq!(
            forwarded_for(&headers),
            vec![ip("198.51.100.1"), ip("10.0.0.2"), ip("10.0.0.3")],
            "X-Forwarded-For first, all its lines in order"
        );
        headers.remove("x-forwarded-for");
        headers.insert(
            "forwarded",
            HeaderValue::from_static("for=unknown, for=\"[2001:db8::7]:80\";proto=https"),
        );
        assert_eq!(forwarded_for(&headers), vec![None, ip("2001:db8::7")]);
    }
}
