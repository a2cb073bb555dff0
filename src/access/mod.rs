//! Access control: who the caller is, and what they may do. Used by both the
//! HTTP API (every `/v2` request, the token endpoint) and the admin commands
//! (`user`, `grant`, `revoke`, `token`).
//!
//! - [`rules`]: actions, repository patterns, grants (pure).
//! - [`password`]: Argon2id hashing and constant-cost checks.
//! - [`secrets`]: access tokens, the signing key.
//! - [`tokens`]: the JWTs of Docker's token protocol.
//! - [`limiter`]: failed-login rate limiting.
//!
//! It reaches stored accounts only through [`AccountStore`], on blocking
//! threads. It knows nothing of HTTP: it answers "who is this" and "may
//! they", and the API layer turns answers into statuses and challenges.
//!
//! With no user at all the registry is open (everything allowed), so a
//! fresh store works as before; the first user switches enforcement on.

mod admin;
pub mod limiter;
mod login;
pub mod password;
pub mod rules;
pub mod secrets;
pub mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use admin::{
    is_live, validate_user_name, CreatedToken, GrantView, Subject, UserSummary, ANONYMOUS,
};
pub use limiter::LoginLimits;
pub use login::IssuedToken;
pub use rules::{Action, Actions, RepoPattern, Rule, RuleError, Rules};
pub use tokens::{Claims, Resource, SERVICE};

use crate::metadata::{AccountStore, GrantRecord, MetadataError};
use crate::oci::RepoName;
use limiter::LoginLimiter;
use password::{PasswordError, VerifiedPasswords};
use secrets::SecretError;
use tokens::{TokenError, TokenSigner};

/// Policy knobs of access control.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// Anyone may pull any repository, even on a registry with users.
    pub anonymous_pull: bool,
    /// Lifetime of bearer tokens from `/token`.
    pub token_lifetime: Duration,
    /// Lifetime of OAuth2 refresh tokens.
    pub refresh_lifetime: Duration,
    pub login_limits: LoginLimits,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            anonymous_pull: false,
            token_lifetime: Duration::from_secs(300),
            refresh_lifetime: Duration::from_secs(30 * 24 * 3600),
            login_limits: LoginLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("the user name or password is wrong")]
    BadCredentials,
    #[error("too many failed logins; retry in {} seconds", .0.as_secs())]
    TooManyAttempts(Duration),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("user {0:?} exists already")]
    UserExists(String),
    #[error("there is no user named {0:?}")]
    UnknownUser(String),
    #[error("user name {0:?} is invalid: use 1 to 128 letters, digits, '.', '_', '-' or '@', starting with a letter or digit; \"anonymous\" is reserved")]
    InvalidUserName(String),
    #[error("user {user:?} already has a live token named {name:?}")]
    TokenExists { user: String, name: String },
    #[error("token name {0:?} is invalid: use 1 to 64 letters, digits, '.', '_' or '-'")]
    InvalidTokenName(String),
    #[error("several users have a token named {0:?}; say whose with --user")]
    AmbiguousToken(String),
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("this registry issues no tokens (no signing key loaded)")]
    NoSigner,
    #[error("{0}")]
    Metadata(MetadataError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<MetadataError> for AccessError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::UnknownUser(name) => AccessError::UnknownUser(name),
            other => AccessError::Metadata(other),
        }
    }
}

/// Who a caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    User {
        name: String,
        /// The access token used instead of the password, if any.
        token: Option<i64>,
    },
}

impl Identity {
    pub fn user_name(&self) -> Option<&str> {
        match self {
            Identity::Anonymous => None,
            Identity::User { name, .. } => Some(name),
        }
    }
}

/// The answer to "may this caller do that".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// An anonymous caller lacks the right: logging in may help.
    LoginRequired,
    /// The caller has the right, but their bearer token does not carry it:
    /// a new token will.
    InsufficientScope,
    /// An authenticated caller lacks the right.
    Denied,
}

/// An authenticated caller with what they may do, resolved for one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    /// Grants of the user and of anonymous callers.
    rules: Rules,
    /// The scopes of the access token used, if it has any.
    scope: Option<Rules>,
    /// No user exists: the registry is open.
    open: bool,
    /// The bearer token presented, if any.
    bearer: Option<Claims>,
}

impl Caller {
    /// What the caller's grants allow on `repo` (the bearer token aside).
    pub fn actions_on(&self, repo: &RepoName) -> Actions {
        if self.open {
            return Actions::ALL;
        }
        let granted = self.rules.actions_on(repo);
        match &self.scope {
            Some(scope) => granted.intersect(scope.actions_on(repo)),
            None => granted,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Whether the caller presented a valid bearer token (possibly an
    /// anonymous one).
    pub fn has_bearer(&self) -> bool {
        self.bearer.is_some()
    }

    pub fn decide(&self, repo: &RepoName, needed: Actions) -> Decision {
        if self.open {
            return Decision::Allowed;
        }
        if !self.actions_on(repo).contains(needed) {
            return self.lacking();
        }
        match &self.bearer {
            Some(claims) if !claims.actions_on(repo).contains(needed) => {
                Decision::InsufficientScope
            }
            _ => Decision::Allowed,
        }
    }

    /// May the caller ask for the catalog (which then lists only what they
    /// may pull)?
    pub fn decide_catalog(&self) -> Decision {
        if self.open {
            return Decision::Allowed;
        }
        let may_pull_something = self
            .rules
            .iter()
            .any(|rule| rule.action.implied().contains(Actions::PULL));
        if self.identity == Identity::Anonymous && !may_pull_something {
            return Decision::LoginRequired;
        }
        match &self.bearer {
            Some(claims) if !claims.allows_catalog() => Decision::InsufficientScope,
            _ => Decision::Allowed,
        }
    }

    pub fn may_pull(&self, repo: &RepoName) -> bool {
        self.actions_on(repo).contains(Actions::PULL)
    }

    fn lacking(&self) -> Decision {
        match self.identity {
            Identity::Anonymous => Decision::LoginRequired,
            Identity::User { .. } => Decision::Denied,
        }
    }
}

/// Access control over one store's accounts.
pub struct Access {
    accounts: Arc<dyn AccountStore>,
    config: AccessConfig,
    signer: Option<TokenSigner>,
    limiter: LoginLimiter,
    verified: VerifiedPasswords,
    /// Argon2 takes ~19 MiB and real CPU per check: bound how many run.
    hashing: tokio::sync::Semaphore,
    /// When each access token's use was last recorded (to write rarely).
    touched: Mutex<HashMap<i64, Instant>>,
    /// When the store last said that users exist.
    secured_seen: Mutex<Option<Instant>>,
}

/// How long a "users exist" answer is reused.
const SECURED_REUSE: Duration = Duration::from_secs(1);

impl Access {
    /// Access control for the admin commands: no tokens are signed.
    pub fn new(accounts: Arc<dyn AccountStore>, config: AccessConfig) -> Access {
        let hashers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Access {
            accounts,
            limiter: LoginLimiter::new(config.login_limits),
            config,
            signer: None,
            verified: VerifiedPasswords::default(),
            hashing: tokio::sync::Semaphore::new(hashers),
            touched: Mutex::new(HashMap::new()),
            secured_seen: Mutex::new(None),
        }
    }

    /// Access control that also issues and checks bearer tokens signed with
    /// `signing_key`.
    pub fn with_signing_key(mut self, signing_key: &[u8]) -> Access {
        self.signer = Some(TokenSigner::new(signing_key));
        self
    }

    pub fn config(&self) -> &AccessConfig {
        &self.config
    }

    /// Whether no user exists, so that everything is allowed.
    ///
    /// Users are added by other processes (the admin commands), so this is
    /// asked of the store; a "users exist" answer is trusted for a second,
    /// which spares most requests the read. An "open" answer is never
    /// reused: the first user must take effect at once.
    pub async fn is_open(&self) -> Result<bool, AccessError> {
        let recently_secured = self
            .secured_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < SECURED_REUSE);
        if recently_secured {
            return Ok(false);
        }
        let has_users = match self.accounts.has_users_at_once() {
            Some(answer) => answer,
            None => self.accounts(|a| a.has_users()).await?,
        };
        if has_users {
            *self
                .secured_seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        }
        Ok(!has_users)
    }

    /// A caller on an open registry (no user exists): everything is allowed.
    pub fn open_caller(&self) -> Caller {
        Caller {
            identity: Identity::Anonymous,
            rules: Rules::everything(),
            scope: None,
            open: true,
            bearer: None,
        }
    }

    /// Resolves what `identity` may do (`bearer`: the token it came with).
    pub async fn caller(
        &self,
        identity: Identity,
        bearer: Option<Claims>,
    ) -> Result<Caller, AccessError> {
        let user = identity.user_name().map(str::to_owned);
        let token = match &identity {
            Identity::User { token, .. } => *token,
            Identity::Anonymous => None,
        };
        let open = self.is_open().await?;
        let (grants, token) = self
            .accounts(move |a| {
                let grants = a.grants_for(user.as_deref())?;
                let token = token.map(|id| a.token_by_id(id)).transpose()?.flatten();
                Ok((grants, token))
            })
            .await?;
        let mut rules = rules_of(&grants);
        if self.config.anonymous_pull {
            rules.push(Rule {
                pattern: RepoPattern::everything(),
                action: Action::Pull,
            });
        }
        let scope = match (&identity, token) {
            (Identity::User { token: Some(_), .. }, None) => {
                return Err(AccessError::BadCredentials)
            }
            (_, Some(record)) => {
                login::check_live(&record, identity.user_name())?;
                (!record.scopes.is_empty()).then(|| {
                    Rules::new(
                        record
                            .scopes
                            .iter()
                            .filter_map(|s| rule_of(&s.pattern, &s.action))
                            .collect(),
                    )
                })
            }
            (_, None) => None,
        };
        Ok(Caller {
            identity,
            rules,
            scope,
            open,
            bearer,
        })
    }

    /// Runs an account store call on the blocking pool.
    async fn accounts<T, F>(&self, f: F) -> Result<T, AccessError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn AccountStore) -> Result<T, MetadataError> + Send + 'static,
    {
        let accounts = Arc::clone(&self.accounts);
        tokio::task::spawn_blocking(move || f(accounts.as_ref()))
            .await
            .map_err(|e| AccessError::Internal(format!("blocking task failed: {e}")))?
            .map_err(AccessError::from)
    }
}

/// Stored grants as rules; a row this build cannot read is skipped (and
/// so grants nothing).
fn rules_of(grants: &[GrantRecord]) -> Rules {
    Rules::new(
        grants
            .iter()
            .filter_map(|g| rule_of(&g.pattern, &g.action))
            .collect(),
    )
}

fn rule_of(pattern: &str, action: &str) -> Option<Rule> {
    match (pattern.parse(), action.parse()) {
        (Ok(pattern), Ok(action)) => Some(Rule { pattern, action }),
        _ => {
            tracing::warn!(pattern, action, "stored grant is unreadable; ignored");
            None
        }
    }
}
