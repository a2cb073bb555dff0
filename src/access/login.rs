//! Logging in (passwords, access tokens, refresh tokens) and issuing bearer
//! tokens.

use std::net::IpAddr;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use super::password;
use super::secrets::{access_token_hash, is_access_token};
use super::tokens::{Claims, NewClaims, Resource, ResourceAccess, TokenKind};
use super::{Access, AccessError, Actions, Caller, Identity};
use crate::metadata::sqlite::now_millis;
use crate::metadata::TokenRecord;

/// How often a token's "last used" time is written at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A bearer token issued by `/token`.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
    /// Unix seconds.
    pub issued_at: u64,
    /// What the token carries, as the token spec writes scopes.
    pub access: Vec<ResourceAccess>,
}

/// Fails unless the access token is live and (when `user` is given) theirs.
pub(super) fn check_live(record: &TokenRecord, user: Option<&str>) -> Result<(), AccessError> {
    let expired = record.expires_at.is_some_and(|at| at <= now_millis());
    let someone_else = user.is_some_and(|u| u != record.user);
    if record.revoked_at.is_some() || expired || someone_else {
        return Err(AccessError::BadCredentials);
    }
    Ok(())
}

/// A short fingerprint of a password hash, carried by refresh tokens.
fn password_fingerprint(phc: &str) -> String {
    Sha256::digest(phc.as_bytes())[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Access {
    /// Checks a user name with a password or an access token, under the
    /// failed-login limits of `client`.
    pub async fn login(
        &self,
        client: IpAddr,
        user: &str,
        secret: &str,
    ) -> Result<Identity, AccessError> {
        self.limiter
            .check(client, user)
            .map_err(AccessError::TooManyAttempts)?;
        let outcome = if is_access_token(secret) {
            self.login_with_access_token(user, secret).await
        } else {
            self.login_with_password(user, secret).await
        };
        match &outcome {
            Ok(_) => self.limiter.record_success(client, user),
            Err(AccessError::BadCredentials) => {
                tracing::warn!(%client, user, "failed login");
                self.limiter.record_failure(client, user);
            }
            Err(_) => {}
        }
        outcome
    }

    async fn login_with_password(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Identity, AccessError> {
        let name = user.to_owned();
        let stored = self
            .accounts(move |a| a.user(&name))
            .await?
            .map(|u| u.password_hash);
        if let Some(phc) = &stored {
            if self.verified.recalls(user, password, phc) {
                return Ok(Identity::User {
                    name: user.to_owned(),
                    token: None,
                });
            }
        }
        let permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| AccessError::Internal(e.to_string()))?;
        let (pw, phc) = (password.to_owned(), stored.clone());
        let ok = tokio::task::spawn_blocking(move || password::verify(&pw, phc.as_deref()))
            .await
            .map_err(|e| AccessError::Internal(e.to_string()))?;
        drop(permit);
        match (ok, stored) {
            (true, Some(phc)) => {
                self.verified.remember(user, password, &phc);
                Ok(Identity::User {
                    name: user.to_owned(),
                    token: None,
                })
            }
            _ => Err(AccessError::BadCredentials),
        }
    }

    async fn login_with_access_token(
        &self,
        user: &str,
        token: &str,
    ) -> Result<Identity, AccessError> {
        let hash = access_token_hash(token);
        let record = self
            .accounts(move |a| a.token_by_hash(&hash))
            .await?
            .ok_or(AccessError::BadCredentials)?;
        check_live(&record, Some(user))?;
        self.note_token_use(record.id).await;
        Ok(Identity::User {
            name: record.user,
            token: Some(record.id),
        })
    }

    /// Records (rarely) that an access token was used.
    async fn note_token_use(&self, id: i64) {
        {
            let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
            if touched
                .get(&id)
                .is_some_and(|at| at.elapsed() < TOUCH_EVERY)
            {
                return;
            }
            if touched.len() > 10_000 {
                touched.clear();
            }
            touched.insert(id, Instant::now());
        }
        let now = now_millis();
        if let Err(e) = self.accounts(move |a| a.touch_token(id, now)).await {
            tracing::warn!(error = %e, "could not record an access token's use");
        }
    }

    /// Checks a bearer token from `Authorization: Bearer`.
    pub fn verify_bearer(&self, token: &str) -> Result<Claims, AccessError> {
        let signer = self.signer.as_ref().ok_or(AccessError::NoSigner)?;
        Ok(signer.verify(TokenKind::Access, token)?)
    }

    /// Who a verified bearer token speaks for.
    pub fn identity_of(claims: &Claims) -> Identity {
        if claims.sub.is_empty() {
            Identity::Anonymous
        } else {
            Identity::User {
                name: claims.sub.clone(),
                token: claims.tid,
            }
        }
    }

    /// Issues a bearer token carrying what `caller` asked for and may do:
    /// each requested resource with the requested actions they hold.
    pub fn issue(
        &self,
        caller: &Caller,
        requested: &[(Resource, Actions)],
    ) -> Result<IssuedToken, AccessError> {
        let signer = self.signer.as_ref().ok_or(AccessError::NoSigner)?;
        let mut access: Vec<ResourceAccess> = Vec::new();
        for (resource, wanted) in requested {
            match resource {
                Resource::Repository(repo) => {
                    let granted = wanted.intersect(caller.actions_on(repo));
                    if !granted.is_empty() {
                        access.push(ResourceAccess::repository(repo, granted));
                    }
                }
                Resource::Catalog => {
                    if caller.decide_catalog() != super::Decision::LoginRequired {
                        access.push(ResourceAccess::catalog());
                    }
                }
            }
        }
        let lifetime = self.config.token_lifetime.as_secs().max(1);
        let (tid, sub) = match &caller.identity {
            Identity::Anonymous => (None, String::new()),
            Identity::User { name, token } => (*token, name.clone()),
        };
        let (token, issued_at) = signer.issue(
            TokenKind::Access,
            NewClaims {
                sub,
                access: access.clone(),
                tid,
                pwd: None,
                lifetime_secs: lifetime,
            },
        )?;
        Ok(IssuedToken {
            token,
            expires_in: lifetime,
            issued_at,
            access,
        })
    }

    /// Issues an OAuth2 refresh token for a logged-in user.
    pub async fn issue_refresh_token(&self, identity: &Identity) -> Result<String, AccessError> {
        let signer = self.signer.as_ref().ok_or(AccessError::NoSigner)?;
        let Identity::User { name, token } = identity else {
            return Err(AccessError::BadCredentials);
        };
        let user = name.clone();
        let stored = self
            .accounts(move |a| a.user(&user))
            .await?
            .ok_or(AccessError::BadCredentials)?;
        let (refresh, _) = signer.issue(
            TokenKind::Refresh,
            NewClaims {
                sub: name.clone(),
                access: Vec::new(),
                tid: *token,
                pwd: Some(password_fingerprint(&stored.password_hash)),
                lifetime_secs: self.config.refresh_lifetime.as_secs().max(1),
            },
        )?;
        Ok(refresh)
    }

    /// Logs in with a refresh token: valid while its user keeps the
    /// password it was issued under (and its access token, if any, lives).
    pub async fn login_with_refresh_token(
        &self,
        client: IpAddr,
        refresh: &str,
    ) -> Result<Identity, AccessError> {
        let signer = self.signer.as_ref().ok_or(AccessError::NoSigner)?;
        self.limiter
            .check(client, "")
            .map_err(AccessError::TooManyAttempts)?;
        let Ok(claims) = signer.verify(TokenKind::Refresh, refresh) else {
            self.limiter.record_failure(client, "");
            return Err(AccessError::BadCredentials);
        };
        let user = claims.sub.clone();
        let stored = self.accounts(move |a| a.user(&user)).await?;
        let current = stored.map(|u| password_fingerprint(&u.password_hash));
        if current.is_none() || current != claims.pwd {
            return Err(AccessError::BadCredentials);
        }
        Ok(Identity::User {
            name: claims.sub,
            token: claims.tid,
        })
    }
}
