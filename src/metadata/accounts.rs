//! The account seam: users, their grants and their access tokens, as stored.
//!
//! [`AccountStore`] keeps records only. It stores what the access layer
//! (`crate::access`) hands it — password hashes, token hashes, patterns and
//! action names already validated there — and never decides who may do
//! what. It never sees a password or a token in clear.
//!
//! Methods block; callers run them on blocking threads.

use super::MetadataError;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    /// An Argon2id hash in PHC string form.
    pub password_hash: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

/// One grant: `subject` may do `action` on repositories matching `pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// A user name, or `None` for anonymous callers.
    pub subject: Option<String>,
    pub pattern: String,
    pub action: String,
}

/// A restriction carried by an access token: only `action` on `pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenScope {
    pub pattern: String,
    pub action: String,
}

/// An access token as stored (its secret is not: only a hash of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: i64,
    pub user: String,
    pub name: String,
    /// Empty: the token carries all of its user's rights.
    pub scopes: Vec<TokenScope>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// An access token to record.
pub struct NewToken<'a> {
    pub user: &'a str,
    pub name: &'a str,
    /// SHA-256 of the token, lowercase hex.
    pub secret_hash: &'a str,
    pub scopes: &'a [TokenScope],
    pub expires_at: Option<i64>,
}

pub trait AccountStore: Send + Sync + 'static {
    /// Whether at least one user exists (then authentication is enforced).
    fn has_users(&self) -> Result<bool, MetadataError>;

    /// [`Self::has_users`], answered at once if the store can do so without
    /// waiting (for a lock, another process or the network), else `None`
    /// and the caller asks `has_users` on a blocking thread. Every request
    /// asks this, and on a busy machine the trip to a blocking thread and
    /// back costs far more than the question.
    fn has_users_at_once(&self) -> Option<bool> {
        None
    }

    /// Creates a user; `false` when the name is taken.
    fn create_user(&self, name: &str, password_hash: &str) -> Result<bool, MetadataError>;
    fn user(&self, name: &str) -> Result<Option<UserRecord>, MetadataError>;
    fn list_users(&self) -> Result<Vec<UserRecord>, MetadataError>;
    /// Replaces a user's password hash; `false` when there is no such user.
    fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, MetadataError>;
    /// Removes a user with its grants and tokens; `false` when unknown.
    fn delete_user(&self, name: &str) -> Result<bool, MetadataError>;

    /// Adds a grant (`subject` `None` is anonymous); `false` when it already
    /// existed. A user subject that does not exist is
    /// [`MetadataError::UnknownUser`].
    fn add_grant(
        &self,
        subject: Option<&str>,
        pattern: &str,
        action: &str,
    ) -> Result<bool, MetadataError>;
    /// Removes the grants of `subject` on `pattern` (only `action`, when
    /// given); returns how many went.
    fn remove_grants(
        &self,
        subject: Option<&str>,
        pattern: &str,
        action: Option<&str>,
    ) -> Result<usize, MetadataError>;
    /// Every grant, of every subject, sorted by subject, pattern, action.
    fn all_grants(&self) -> Result<Vec<GrantRecord>, MetadataError>;
    /// The grants that apply to a caller: those of `user` (when given) and
    /// those of anonymous callers, which every caller has.
    fn grants_for(&self, user: Option<&str>) -> Result<Vec<GrantRecord>, MetadataError>;

    /// Records an access token; `false` when the user already has a live
    /// token of that name. An unknown user is [`MetadataError::UnknownUser`].
    fn create_token(&self, token: NewToken<'_>) -> Result<bool, MetadataError>;
    /// The token whose secret hashes to `secret_hash`, revoked or not.
    fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRecord>, MetadataError>;
    fn token_by_id(&self, id: i64) -> Result<Option<TokenRecord>, MetadataError>;
    /// Tokens (of `user`, when given), oldest first.
    fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenRecord>, MetadataError>;
    /// Revokes the live tokens named `name` (of `user`, when given); returns
    /// how many.
    fn revoke_token(&self, user: Option<&str>, name: &str) -> Result<usize, MetadataError>;
    /// Notes that a token was used at `now` (ms since the epoch).
    fn touch_token(&self, id: i64, now: i64) -> Result<(), MetadataError>;
}
