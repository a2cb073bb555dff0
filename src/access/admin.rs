//! Managing accounts: users, grants and access tokens (what the `user`,
//! `grant`, `revoke` and `token` commands do).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::password::{self, PasswordError};
use super::secrets::{access_token_hash, new_access_token};
use super::{Access, AccessError, Action, RepoPattern, Rule};
use crate::metadata::sqlite::now_millis;
use crate::metadata::{NewToken, TokenRecord, TokenScope};

/// The name grants for unauthenticated callers are given to.
pub const ANONYMOUS: &str = "anonymous";
const MAX_USER_NAME: usize = 128;
const MAX_TOKEN_NAME: usize = 64;

/// Whom a grant is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Anonymous,
    User(String),
}

impl Subject {
    fn as_user(&self) -> Option<&str> {
        match self {
            Subject::Anonymous => None,
            Subject::User(name) => Some(name),
        }
    }
}

impl FromStr for Subject {
    type Err = AccessError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == ANONYMOUS {
            Ok(Subject::Anonymous)
        } else {
            validate_user_name(s)?;
            Ok(Subject::User(s.to_owned()))
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_user().unwrap_or(ANONYMOUS))
    }
}

/// User names go into Basic credentials (`name:password`) and logs, so
/// they are kept to a plain alphabet.
pub fn validate_user_name(name: &str) -> Result<(), AccessError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name != ANONYMOUS
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if valid {
        Ok(())
    } else {
        Err(AccessError::InvalidUserName(name.to_owned()))
    }
}

fn validate_token_name(name: &str) -> Result<(), AccessError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_TOKEN_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(AccessError::InvalidTokenName(name.to_owned()))
    }
}

/// A user with their grants, for listings.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub grants: Vec<GrantView>,
    /// Live access tokens.
    pub tokens: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GrantView {
    pub pattern: String,
    pub action: String,
}

/// A new access token: the secret is here once and nowhere else.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    pub user: String,
    pub name: String,
    pub token: String,
    /// Milliseconds since the Unix epoch, if the token expires.
    pub expires_at: Option<i64>,
    pub scopes: Vec<GrantView>,
}

impl Access {
    pub async fn add_user(&self, name: &str, password: &str) -> Result<(), AccessError> {
        validate_user_name(name)?;
        let phc = self.hash_password(password).await?;
        let user = name.to_owned();
        if self.accounts(move |a| a.create_user(&user, &phc)).await? {
            Ok(())
        } else {
            Err(AccessError::UserExists(name.to_owned()))
        }
    }

    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), AccessError> {
        let phc = self.hash_password(password).await?;
        let user = name.to_owned();
        if self.accounts(move |a| a.set_password(&user, &phc)).await? {
            Ok(())
        } else {
            Err(AccessError::UnknownUser(name.to_owned()))
        }
    }

    async fn hash_password(&self, password: &str) -> Result<String, AccessError> {
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || password::hash(&password))
            .await
            .map_err(|e| AccessError::Internal(e.to_string()))?
            .map_err(|e: PasswordError| e.into())
    }

    pub async fn remove_user(&self, name: &str) -> Result<(), AccessError> {
        let user = name.to_owned();
        if self.accounts(move |a| a.delete_user(&user)).await? {
            Ok(())
        } else {
            Err(AccessError::UnknownUser(name.to_owned()))
        }
    }

    /// Users with their grants, and the grants of anonymous callers.
    pub async fn users(&self) -> Result<(Vec<UserSummary>, Vec<GrantView>), AccessError> {
        let (users, grants, tokens) = self
            .accounts(|a| Ok((a.list_users()?, a.all_grants()?, a.list_tokens(None)?)))
            .await?;
        let view = |subject: Option<&str>| -> Vec<GrantView> {
            grants
                .iter()
                .filter(|g| g.subject.as_deref() == subject)
                .map(|g| GrantView {
                    pattern: g.pattern.clone(),
                    action: g.action.clone(),
                })
                .collect()
        };
        let now = now_millis();
        let summaries = users
            .iter()
            .map(|u| UserSummary {
                name: u.name.clone(),
                created_at: u.created_at,
                grants: view(Some(&u.name)),
                tokens: tokens
                    .iter()
                    .filter(|t| t.user == u.name && is_live(t, now))
                    .count(),
            })
            .collect();
        Ok((summaries, view(None)))
    }

    /// Grants `action` on `pattern`; `false` when it was granted already.
    pub async fn grant(
        &self,
        subject: &Subject,
        pattern: &RepoPattern,
        action: Action,
    ) -> Result<bool, AccessError> {
        let (user, pattern) = (subject.as_user().map(str::to_owned), pattern.to_string());
        self.accounts(move |a| a.add_grant(user.as_deref(), &pattern, action.as_str()))
            .await
    }

    /// Removes grants on `pattern` (all actions, or only `action`); returns
    /// how many went.
    pub async fn revoke(
        &self,
        subject: &Subject,
        pattern: &RepoPattern,
        action: Option<Action>,
    ) -> Result<usize, AccessError> {
        let (user, pattern) = (subject.as_user().map(str::to_owned), pattern.to_string());
        self.accounts(move |a| {
            a.remove_grants(user.as_deref(), &pattern, action.map(Action::as_str))
        })
        .await
    }

    /// Creates an access token for `user`, limited to `scopes` when any.
    pub async fn create_token(
        &self,
        user: &str,
        name: &str,
        lifetime: Option<Duration>,
        scopes: &[Rule],
    ) -> Result<CreatedToken, AccessError> {
        validate_token_name(name)?;
        let token = new_access_token()?;
        let expires_at = lifetime.map(|d| now_millis().saturating_add(d.as_millis() as i64));
        let stored_scopes: Vec<TokenScope> = scopes
            .iter()
            .map(|r| TokenScope {
                pattern: r.pattern.to_string(),
                action: r.action.to_string(),
            })
            .collect();
        let (u, n, hash, s) = (
            user.to_owned(),
            name.to_owned(),
            access_token_hash(&token),
            stored_scopes.clone(),
        );
        let created = self
            .accounts(move |a| {
                a.create_token(NewToken {
                    user: &u,
                    name: &n,
                    secret_hash: &hash,
                    scopes: &s,
                    expires_at,
                })
            })
            .await?;
        if !created {
            return Err(AccessError::TokenExists {
                user: user.to_owned(),
                name: name.to_owned(),
            });
        }
        Ok(CreatedToken {
            user: user.to_owned(),
            name: name.to_owned(),
            token,
            expires_at,
            scopes: stored_scopes
                .into_iter()
                .map(|s| GrantView {
                    pattern: s.pattern,
                    action: s.action,
                })
                .collect(),
        })
    }

    pub async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRecord>, AccessError> {
        let user = user.map(str::to_owned);
        if let Some(name) = &user {
            let n = name.clone();
            if self.accounts(move |a| a.user(&n)).await?.is_none() {
                return Err(AccessError::UnknownUser(name.clone()));
            }
        }
        self.accounts(move |a| a.list_tokens(user.as_deref())).await
    }

    /// Revokes the live token `name` (of `user`, when given; the name must
    /// then be unambiguous). Returns whether one was revoked.
    pub async fn revoke_token(&self, user: Option<&str>, name: &str) -> Result<bool, AccessError> {
        if user.is_none() {
            let now = now_millis();
            let owners = self
                .tokens(None)
                .await?
                .into_iter()
                .filter(|t| t.name == name && t.revoked_at.is_none() && is_live(t, now))
                .count();
            if owners > 1 {
                return Err(AccessError::AmbiguousToken(name.to_owned()));
            }
        }
        let (u, n) = (user.map(str::to_owned), name.to_owned());
        Ok(self
            .accounts(move |a| a.revoke_token(u.as_deref(), &n))
            .await?
            > 0)
    }
}

/// Not revoked and not expired at `now`.
pub fn is_live(token: &TokenRecord, now: i64) -> bool {
    token.revoked_at.is_none() && token.expires_at.is_none_or(|at| at > now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_plain_and_anonymous_is_reserved() {
        for ok in ["john", "ci-bot", "a.b_c", "me@example.com", "J0hn"] {
            assert!(validate_user_name(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "anonymous", "a:b", "-x", "a b", "é", &"a".repeat(129)] {
            assert!(validate_user_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!("anonymous".parse::<Subject>().unwrap(), Subject::Anonymous);
    }
}
