//! The wire contract: which `/v2/…` paths exist and what they name.
//!
//! Repository names contain slashes, so a path is split here by our own
//! parser rather than by router patterns: it recognises the tail
//! (`/blobs/<digest>`, `/blobs/uploads/[<id>]`, `/manifests/<ref>`,
//! `/tags/list`, `/referrers/<digest>`) and validates the name in front of it
//! before anything else happens. Handlers receive only validated types.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use uuid::Uuid;

use super::error::{ApiError, ErrorCode};
use crate::oci::{Digest, Reference, RepoName};

/// A parsed `/v2/…` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2Route {
    Base,
    Catalog,
    Blob {
        repo: RepoName,
        digest: Digest,
    },
    /// `/v2/<name>/blobs/uploads/`: starting an upload.
    Uploads {
        repo: RepoName,
    },
    Upload {
        repo: RepoName,
        id: Uuid,
    },
    Manifest {
        repo: RepoName,
        reference: Reference,
    },
    Tags {
        repo: RepoName,
    },
    Referrers {
        repo: RepoName,
        digest: Digest,
    },
}

impl V2Route {
    /// Parses a request path.
    pub fn parse(path: &str) -> Result<V2Route, ApiError> {
        if path == "/v2" {
            return Ok(V2Route::Base);
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return Err(not_found());
        };
        if rest.is_empty() {
            return Ok(V2Route::Base);
        }
        if rest == "_catalog" {
            return Ok(V2Route::Catalog);
        }
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Ok(V2Route::Tags {
                repo: name.parse()?,
            });
        }
        if let Some(name) = rest
            .strip_suffix("/blobs/uploads/")
            .or_else(|| rest.strip_suffix("/blobs/uploads"))
        {
            return Ok(V2Route::Uploads {
                repo: name.parse()?,
            });
        }
        let (front, last) = rest.rsplit_once('/').ok_or_else(not_found)?;
        let (name, kind) = front.rsplit_once('/').ok_or_else(not_found)?;
        let last = percent_decode(last);
        if kind == "uploads" {
            if let Some(name) = name.strip_suffix("/blobs") {
                let repo = name.parse()?;
                // A malformed id names no session; it never reaches the filesystem.
                let id = Uuid::parse_str(&last).map_err(|_| {
                    ApiError::new(
                        ErrorCode::BlobUploadUnknown,
                        "upload session id is not a UUID",
                    )
                })?;
                return Ok(V2Route::Upload { repo, id });
            }
        }
        match kind {
            "blobs" => Ok(V2Route::Blob {
                repo: name.parse()?,
                digest: parse_digest(name, &last)?,
            }),
            "manifests" => Ok(V2Route::Manifest {
                repo: name.parse()?,
                reference: last.parse()?,
            }),
            "referrers" => Ok(V2Route::Referrers {
                repo: name.parse()?,
                digest: parse_digest(name, &last)?,
            }),
            _ => Err(not_found()),
        }
    }
}

impl V2Route {
    /// The methods the endpoint answers, for the `Allow` header a 405 must
    /// carry (RFC 9110 §15.5.6). `DELETE` only while deletion is enabled.
    pub fn allowed_methods(&self, delete_enabled: bool) -> &'static str {
        match (self, delete_enabled) {
            (V2Route::Base, _) => "GET, HEAD",
            (V2Route::Catalog | V2Route::Tags { .. } | V2Route::Referrers { .. }, _) => "GET",
            (V2Route::Blob { .. }, true) => "GET, HEAD, DELETE",
            (V2Route::Blob { .. }, false) => "GET, HEAD",
            (V2Route::Uploads { .. }, _) => "POST",
            (V2Route::Upload { .. }, _) => "GET, PATCH, PUT, DELETE",
            (V2Route::Manifest { .. }, true) => "GET, HEAD, PUT, DELETE",
            (V2Route::Manifest { .. }, false) => "GET, HEAD, PUT",
        }
    }
}

/// Validates the name first, so a bad name is reported before a bad digest.
fn parse_digest(name: &str, digest: &str) -> Result<Digest, ApiError> {
    name.parse::<RepoName>()?;
    Ok(digest.parse()?)
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NameUnknown, "no such endpoint").with_detail(serde_json::json!({
        "hint": "paths are /v2/<name>/blobs/…, /v2/<name>/manifests/…, /v2/<name>/tags/list, /v2/<name>/referrers/…, /v2/_catalog"
    }))
}

/// Decodes `%XX` escapes (some clients escape the ':' of a digest). Invalid
/// escapes are left as they are and fail validation afterwards.
pub(super) fn percent_decode(segment: &str) -> String {
    if !segment.contains('%') {
        return segment.to_owned();
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| segment.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl<S: Send + Sync> FromRequestParts<S> for V2Route {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        V2Route::parse(parts.uri.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn route(path: &str) -> V2Route {
        V2Route::parse(path).unwrap()
    }

    fn code(path: &str) -> ErrorCode {
        V2Route::parse(path).unwrap_err().code()
    }

    #[test]
    fn names_with_many_components_are_split_from_the_tail() {
        assert_eq!(
            route(&format!("/v2/a/b/c/d/blobs/{DIGEST}")),
            V2Route::Blob {
                repo: "a/b/c/d".parse().unwrap(),
                digest: DIGEST.parse().unwrap()
            }
        );
        assert_eq!(
            route("/v2/a/b/manifests/latest"),
            V2Route::Manifest {
                repo: "a/b".parse().unwrap(),
                reference: "latest".parse().unwrap()
            }
        );
        assert_eq!(
            route("/v2/x/tags/list"),
            V2Route::Tags {
                repo: "x".parse().unwrap()
            }
        );
    }

    #[test]
    fn names_may_contain_endpoint_words() {
        assert_eq!(
            route("/v2/blobs/manifests/manifests/v1"),
            V2Route::Manifest {
                repo: "blobs/manifests".parse().unwrap(),
                reference: "v1".parse().unwrap()
            }
        );
        assert_eq!(
            route(&format!("/v2/a/blobs/uploads/blobs/{DIGEST}")),
            V2Route::Blob {
                repo: "a/blobs/uploads".parse().unwrap(),
                digest: DIGEST.parse().unwrap()
            }
        );
    }

    #[test]
    fn upload_paths_carry_a_uuid() {
        let id = Uuid::new_v4();
        assert_eq!(
            route("/v2/a/b/blobs/uploads/"),
            V2Route::Uploads {
                repo: "a/b".parse().unwrap()
            }
        );
        assert_eq!(
            route(&format!("/v2/a/blobs/uploads/{id}")),
            V2Route::Upload {
                repo: "a".parse().unwrap(),
                id
            }
        );
        assert_eq!(
            code("/v2/a/blobs/uploads/not-a-uuid"),
            ErrorCode::BlobUploadUnknown
        );
        assert!(V2Route::parse("/v2/a/blobs/uploads/../../etc").is_err());
    }

    #[test]
    fn invalid_parts_get_their_own_codes() {
        assert_eq!(code("/v2/UPPER/manifests/latest"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/ok/manifests/-bad"), ErrorCode::TagInvalid);
        assert_eq!(
            code("/v2/ok/manifests/sha256:abc"),
            ErrorCode::DigestInvalid
        );
        assert_eq!(code("/v2/ok/blobs/latest"), ErrorCode::DigestInvalid);
        assert_eq!(code("/v2/BAD/blobs/sha256:abc"), ErrorCode::NameInvalid);
    }

    #[test]
    fn escaped_colons_are_decoded() {
        let escaped = DIGEST.replace(':', "%3A");
        assert!(matches!(
            route(&format!("/v2/a/blobs/{escaped}")),
            V2Route::Blob { .. }
        ));
    }
}
