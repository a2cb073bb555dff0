//! Random secrets: access tokens, salts, and the token signing key.
//!
//! Access tokens look like `aspt_<43 base64url characters>` (256 random
//! bits): the prefix lets secret scanners and the login code recognise
//! them. Only their SHA-256 is stored.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest as _, Sha256};

/// What every access token starts with.
pub const ACCESS_TOKEN_PREFIX: &str = "aspt_";
/// Length of the signing key in bytes (HS256 wants at least 32).
const SIGNING_KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the system's random number generator failed")]
    Random,
    #[error("cannot {action} the token signing key {path}: {source}")]
    KeyFile {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the token signing key {0} is malformed; remove it to have a new one generated (tokens issued so far stop working)")]
    MalformedKey(String),
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SecretError::Random)?;
    Ok(bytes)
}

/// A new access token, in clear (shown once, never stored).
pub fn new_access_token() -> Result<String, SecretError> {
    let bytes = random_bytes::<32>()?;
    Ok(format!(
        "{ACCESS_TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes)
    ))
}

pub fn is_access_token(secret: &str) -> bool {
    secret.starts_with(ACCESS_TOKEN_PREFIX)
}

/// What the store keeps of an access token: SHA-256, lowercase hex. The
/// token carries 256 random bits, so a fast hash is enough.
pub fn access_token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the signing key at `path`, generating it first when missing. The
/// file is created with mode 0600 and appears whole (written aside, then
/// linked into place), so two processes starting at once agree on one key.
pub fn load_or_create_signing_key(path: &Path) -> Result<Vec<u8>, SecretError> {
    let file_error = |action: &'static str| {
        let path = path.display().to_string();
        move |source| SecretError::KeyFile {
            action,
            path,
            source,
        }
    };
    if !path.exists() {
        let key = random_bytes::<SIGNING_KEY_LEN>()?;
        let text = URL_SAFE_NO_PAD.encode(key);
        let aside = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
        write_private(&aside, text.as_bytes()).map_err(file_error("write"))?;
        let linked = std::fs::hard_link(&aside, path);
        let _ = std::fs::remove_file(&aside);
        match linked {
            Ok(()) => {}
            // Another process was quicker: use its key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(file_error("create")(e)),
        }
    }
    warn_if_readable_by_others(path);
    let text = std::fs::read_to_string(path).map_err(file_error("read"))?;
    let key = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| SecretError::MalformedKey(path.display().to_string()))?;
    if key.len() < SIGNING_KEY_LEN {
        return Err(SecretError::MalformedKey(path.display().to_string()));
    }
    Ok(key)
}

fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"),
                "the token signing key is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_are_prefixed_and_random() {
        let a = new_access_token().unwrap();
        let b = new_access_token().unwrap();
        assert!(is_access_token(&a));
        assert_ne!(a, b);
        assert_eq!(a.len(), ACCESS_TOKEN_PREFIX.len() + 43);
        assert_eq!(access_token_hash(&a).len(), 64);
    }

    #[test]
    fn the_signing_key_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let first = load_or_create_signing_key(&path).unwrap();
        let second = load_or_create_signing_key(&path).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), SIGNING_KEY_LEN);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(
            load_or_create_signing_key(&path),
            Err(SecretError::MalformedKey(_))
        ));
    }
}
