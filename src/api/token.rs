//! `GET /token` and `POST /token`: the token server of Docker's token
//! protocol, and its OAuth2 variant.
//!
//! - `GET /token?service=artispace&scope=repository:john/app:pull,push`
//!   with Basic credentials (or none, for anonymous access) answers
//!   `{"token","access_token","expires_in","issued_at"}`; with
//!   `offline_token=true` and credentials, also a `refresh_token`.
//! - `POST /token` with a form: `grant_type=password` (`username`,
//!   `password`) or `grant_type=refresh_token` (`refresh_token`), `scope`
//!   (space-separated), `access_type=offline` for a refresh token.
//!
//! A token carries exactly the requested actions the caller holds; asking
//! for more is not an error, the token just carries less.

use std::time::{Duration, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::{access_error, authenticate, client_address};
use super::error::{ApiError, ErrorCode};
use super::AppState;
use crate::access::{AccessError, Actions, Caller, Identity, IssuedToken, Resource};

/// Largest form body accepted by `POST /token`.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Decodes `application/x-www-form-urlencoded` text (also query strings)
/// into pairs, keeping repeated keys.
pub fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(key), form_decode(value))
        })
        .collect()
}

/// Form encoding is percent encoding with `+` for a space.
fn form_decode(text: &str) -> String {
    super::routes::percent_decode(&text.replace('+', " "))
}

/// Reads one scope of the token spec: `repository:<name>:<actions>` (the
/// type may carry a class, `repository(plugin)`) or `registry:catalog:*`.
/// Scopes this registry cannot grant are skipped.
pub fn parse_scope(scope: &str) -> Option<(Resource, Actions)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let kind = kind.split('(').next().unwrap_or(kind);
    match (kind, name) {
        ("repository", name) => {
            let repo = name.parse().ok()?;
            Some((
                Resource::Repository(repo),
                Actions::from_names(actions.split(',')),
            ))
        }
        ("registry", "catalog") => Some((Resource::Catalog, Actions::NONE)),
        _ => None,
    }
}

fn scopes<'a>(values: impl Iterator<Item = &'a str>) -> Vec<(Resource, Actions)> {
    values
        .flat_map(|v| v.split(' '))
        .filter_map(parse_scope)
        .collect()
}

fn rfc3339(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_secs)).to_string()
}

fn token_response(issued: IssuedToken, refresh: Option<String>) -> Response {
    let scope = issued
        .access
        .iter()
        .map(|a| format!("{}:{}:{}", a.kind, a.name, a.actions.join(",")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut body = json!({
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": rfc3339(issued.issued_at),
        "scope": scope,
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    // Tokens are credentials: no cache may keep them.
    (StatusCode::OK, [(CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn issue(
    state: &AppState,
    parts: &Parts,
    caller: &Caller,
    wanted: &[(Resource, Actions)],
) -> Result<IssuedToken, ApiError> {
    state
        .access
        .issue(caller, wanted)
        .map_err(|e| access_error(state, parts, e))
}

/// `GET /token`
pub async fn get(
    State(state): State<AppState>,
    request: Request<axum::body::Body>,
) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let pairs = form_pairs(parts.uri.query().unwrap_or(""));
    let value = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let wanted = scopes(
        pairs
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    let caller = authenticate(&state, &parts).await?;
    let issued = issue(&state, &parts, &caller, &wanted)?;
    let refresh = match (value("offline_token"), &caller.identity) {
        (Some("true"), Identity::User { .. }) => Some(
            state
                .access
                .issue_refresh_token(&caller.identity)
                .await
                .map_err(|e| access_error(&state, &parts, e))?,
        ),
        _ => None,
    };
    Ok(token_response(issued, refresh))
}

/// `POST /token` (OAuth2 form).
pub async fn post(
    State(state): State<AppState>,
    request: Request<axum::body::Body>,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let form = read_form(&parts, body).await?;
    let value = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let wanted = scopes(
        form.iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    let client = client_address(&state, &parts);
    let bad = |parts: &Parts, e: AccessError| access_error(&state, parts, e);
    let identity = match value("grant_type").as_deref() {
        Some("password") => {
            let (Some(user), Some(password)) = (value("username"), value("password")) else {
                return Err(invalid_request(
                    "grant_type=password needs username and password",
                ));
            };
            state
                .access
                .login(client, &user, &password)
                .await
                .map_err(|e| bad(&parts, e))?
        }
        Some("refresh_token") => {
            let Some(refresh) = value("refresh_token") else {
                return Err(invalid_request(
                    "grant_type=refresh_token needs refresh_token",
                ));
            };
            state
                .access
                .login_with_refresh_token(client, &refresh)
                .await
                .map_err(|e| bad(&parts, e))?
        }
        _ => {
            return Err(invalid_request(
                "grant_type must be password or refresh_token",
            ))
        }
    };
    let caller = state
        .access
        .caller(identity, None)
        .await
        .map_err(|e| bad(&parts, e))?;
    let issued = issue(&state, &parts, &caller, &wanted)?;
    let refresh = match value("access_type").as_deref() {
        Some("offline") => Some(
            state
                .access
                .issue_refresh_token(&caller.identity)
                .await
                .map_err(|e| bad(&parts, e))?,
        ),
        _ => None,
    };
    Ok(token_response(issued, refresh))
}

fn invalid_request(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unsupported, message).with_status(StatusCode::BAD_REQUEST)
}

async fn read_form(
    parts: &Parts,
    body: axum::body::Body,
) -> Result<Vec<(String, String)>, ApiError> {
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(invalid_request(
            "POST /token takes an application/x-www-form-urlencoded form",
        ));
    }
    let bytes: Bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| invalid_request("the form is too large or could not be read"))?;
    Ok(form_pairs(&String::from_utf8_lossy(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_of_the_token_spec() {
        let (resource, actions) = parse_scope("repository:john/app:pull,push").unwrap();
        assert_eq!(resource, Resource::Repository("john/app".parse().unwrap()));
        assert_eq!(actions, Actions::PULL.with(Actions::PUSH));
        assert!(matches!(
            parse_scope("repository(plugin):a/b:pull"),
            Some((Resource::Repository(_), _))
        ));
        assert_eq!(
            parse_scope("registry:catalog:*"),
            Some((Resource::Catalog, Actions::NONE))
        );
        assert!(parse_scope("repository:BAD:pull").is_none());
        assert!(parse_scope("nonsense").is_none());
    }

    #[test]
    fn forms_decode_plus_and_escapes_and_keep_repeats() {
        let pairs = form_pairs("scope=repository%3Aa%3Apull+repository:b:push&scope=x&empty=");
        assert_eq!(pairs[0].1, "repository:a:pull repository:b:push");
        assert_eq!(pairs[1], ("scope".to_owned(), "x".to_owned()));
        assert_eq!(pairs[2], ("empty".to_owned(), String::new()));
    }
}
