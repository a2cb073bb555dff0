//! Bearer tokens of Docker's token protocol: short-lived JWTs (HS256)
//! signed with the store's own key, carrying exactly the access granted; and
//! longer-lived refresh tokens for the OAuth2 variant.
//!
//! The registry is both the token server and the resource server, so a
//! shared-secret signature is enough: nobody else needs to verify them.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::rules::Actions;
use crate::oci::RepoName;

/// `iss` of every token, and the `service` clients name in requests.
pub const SERVICE: &str = "artispace";
/// `aud` of access tokens.
const ACCESS_AUDIENCE: &str = "artispace";
/// `aud` of refresh tokens, so one can never pass for the other.
const REFRESH_AUDIENCE: &str = "artispace-refresh";

/// One entry of a token's `access` claim, as the token spec writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAccess {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// What a resource in a token request or a token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Repository(RepoName),
    /// `registry:catalog:*`
    Catalog,
}

impl ResourceAccess {
    pub fn repository(repo: &RepoName, actions: Actions) -> ResourceAccess {
        ResourceAccess {
            kind: "repository".to_owned(),
            name: repo.to_string(),
            actions: actions.names().into_iter().map(str::to_owned).collect(),
        }
    }

    pub fn catalog() -> ResourceAccess {
        ResourceAccess {
            kind: "registry".to_owned(),
            name: "catalog".to_owned(),
            actions: vec!["*".to_owned()],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user name; empty for anonymous callers.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<ResourceAccess>,
    /// The access token the caller logged in with, if any: a revoked token
    /// ends the tokens issued through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<i64>,
    /// Refresh tokens only: a fingerprint of the password hash they were
    /// issued under, so changing the password ends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwd: Option<String>,
}

impl Claims {
    /// What the token allows on `repo`.
    pub fn actions_on(&self, repo: &RepoName) -> Actions {
        self.access
            .iter()
            .filter(|a| a.kind == "repository" && a.name == repo.as_str())
            .fold(Actions::NONE, |acc, a| {
                acc.with(Actions::from_names(a.actions.iter().map(String::as_str)))
            })
    }

    pub fn allows_catalog(&self) -> bool {
        self.access
            .iter()
            .any(|a| a.kind == "registry" && a.name == "catalog")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is invalid: {0}")]
    Invalid(String),
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs and checks tokens with one key.
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// What kind of token to issue or expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn audience(self) -> &'static str {
        match self {
            TokenKind::Access => ACCESS_AUDIENCE,
            TokenKind::Refresh => REFRESH_AUDIENCE,
        }
    }
}

/// The fields of a token to issue.
pub struct NewClaims {
    pub sub: String,
    pub access: Vec<ResourceAccess>,
    pub tid: Option<i64>,
    pub pwd: Option<String>,
    pub lifetime_secs: u64,
}

impl TokenSigner {
    pub fn new(key: &[u8]) -> TokenSigner {
        TokenSigner {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
        }
    }

    /// Issues a token; returns it with its issue time (Unix seconds).
    pub fn issue(&self, kind: TokenKind, new: NewClaims) -> Result<(String, u64), TokenError> {
        let now = unix_now();
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let claims = Claims {
            iss: SERVICE.to_owned(),
            sub: new.sub,
            aud: kind.audience().to_owned(),
            exp: now + new.lifetime_secs,
            nbf: now,
            iat: now,
            jti,
            access: new.access,
            tid: new.tid,
            pwd: new.pwd,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok((token, now))
    }

    /// Checks signature, algorithm, issuer, audience and lifetime (no leeway:
    /// the registry is the only clock involved).
    pub fn verify(&self, kind: TokenKind, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_audience(&[kind.audience()]);
        validation.set_issuer(&[SERVICE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(access: Vec<ResourceAccess>, lifetime_secs: u64) -> NewClaims {
        NewClaims {
            sub: "john".into(),
            access,
            tid: None,
            pwd: None,
            lifetime_secs,
        }
    }

    #[test]
    fn issued_tokens_verify_and_carry_their_access() {
        let signer = TokenSigner::new(&[7; 32]);
        let repo: RepoName = "john/app".parse().unwrap();
        let (token, _) = signer
            .issue(
                TokenKind::Access,
                claims(vec![ResourceAccess::repository(&repo, Actions::PULL)], 60),
            )
            .unwrap();
        let back = signer.verify(TokenKind::Access, &token).unwrap();
        assert_eq!(back.sub, "john");
        assert_eq!(back.actions_on(&repo), Actions::PULL);
        assert_eq!(
            back.actions_on(&"john/other".parse().unwrap()),
            Actions::NONE
        );
    }

    #[test]
    fn foreign_keys_other_kinds_and_tampering_are_refused() {
        let signer = TokenSigner::new(&[7; 32]);
        let (token, _) = signer
            .issue(TokenKind::Access, claims(Vec::new(), 60))
            .unwrap();
        assert!(TokenSigner::new(&[8; 32])
            .verify(TokenKind::Access, &token)
            .is_err());
        assert!(signer.verify(TokenKind::Refresh, &token).is_err());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1].insert(3, 'x');
        assert!(signer.verify(TokenKind::Access, &parts.join(".")).is_err());
    }
}
