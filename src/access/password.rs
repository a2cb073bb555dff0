//! Password hashing (Argon2id) and checking.
//!
//! A check costs one Argon2id verification whether or not the user exists:
//! an unknown user is checked against a dummy hash, so timing does not tell
//! which names exist. Successful checks are remembered for a few minutes
//! (keyed by a SHA-256 of name and password, bound to the stored hash), so
//! clients that send Basic credentials on every request do not pay Argon2
//! each time; a changed password changes the stored hash and ends that.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest as _, Sha256};

use super::secrets::random_bytes;

/// Longest password accepted; Argon2 does not need more, and it bounds work.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// How long a successful check is remembered.
const REMEMBER_FOR: Duration = Duration::from_secs(300);
const REMEMBERED_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,
    #[error("the password is longer than {MAX_PASSWORD_LEN} bytes")]
    TooLong,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Hashes `password` with Argon2id (default parameters, random salt) into a
/// PHC string.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong);
    }
    let salt_bytes = random_bytes::<16>().map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `stored`. With `stored` `None`
/// (no such user) it still does the work, against a dummy hash, and says no.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let dummy = dummy_hash();
    let (phc, real) = match stored {
        Some(phc) => (phc, true),
        None => (dummy, false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// Computes the dummy hash now (it takes as long as a real hash), so that
/// the first check of an unknown user costs no more than later ones.
pub fn prepare() {
    dummy_hash();
}

/// A hash of a random password with the same parameters as real ones.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let password = random_bytes::<24>()
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>())
            .unwrap_or_else(|_| "artispace-dummy-password".to_owned());
        // Hashing a fresh random password cannot fail in practice; if it
        // did, a fixed valid hash keeps the cost of the check similar.
        hash(&password).unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$m6ZHqOS8jOzBOw1rXLmt8QFwFI4oyXkGR7z3pQ0J4Sg".to_owned()
        })
    })
}

/// Recently verified (name, password) pairs, each bound to the stored hash
/// it was verified against.
#[derive(Default)]
pub struct VerifiedPasswords {
    entries: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl VerifiedPasswords {
    fn key(user: &str, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(user.as_bytes());
        hasher.update([0]);
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }

    /// Whether this pair was verified against `stored` recently.
    pub fn recalls(&self, user: &str, password: &str, stored: &str) -> bool {
        let key = Self::key(user, password);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&key)
            .is_some_and(|(hash, at)| hash == stored && at.elapsed() < REMEMBER_FOR)
    }

    pub fn remember(&self, user: &str, password: &str, stored: &str) {
        let key = Self::key(user, password);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= REMEMBERED_MAX {
            entries.retain(|_, (_, at)| at.elapsed() < REMEMBER_FOR);
            if entries.len() >= REMEMBERED_MAX {
                entries.clear();
            }
        }
        entries.insert(key, (stored.to_owned(), Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let phc = hash("s3cret").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("s3cret", Some(&phc)));
        assert!(!verify("S3cret", Some(&phc)));
        assert!(!verify("s3cret", None));
        assert_ne!(hash("s3cret").unwrap(), phc, "salts differ");
    }

    #[test]
    fn empty_and_huge_passwords_are_refused() {
        assert!(matches!(hash(""), Err(PasswordError::Empty)));
        let long = "x".repeat(MAX_PASSWORD_LEN + 1);
        assert!(matches!(hash(&long), Err(PasswordError::TooLong)));
    }

    #[test]
    fn remembered_checks_are_bound_to_the_stored_hash() {
        let cache = VerifiedPasswords::default();
        cache.remember("u", "p", "hash-1");
        assert!(cache.recalls("u", "p", "hash-1"));
        assert!(!cache.recalls("u", "p", "hash-2"));
        assert!(!cache.recalls("u", "q", "hash-1"));
    }
}
