//! Opening the store for an admin command, and turning registry errors
//! into messages and exit codes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::exit;
use super::output::CommonArgs;
use crate::access::AccessError;
use crate::registry::{LocalStore, OpenError, Registry, RegistryConfig, RegistryError};
use crate::storage::StorageError;

/// A failure that ends an admin command: what to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: i32,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: exit::USAGE,
        }
    }

    pub fn found(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: exit::FOUND_PROBLEM,
        }
    }
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NameUnknown(_)
            | RegistryError::ManifestUnknown(_)
            | RegistryError::BlobUnknown(_) => Failure::found(e.to_string()),
            // Even gc needs a little room: its records of what it removes
            // go to the database's log before any file goes.
            RegistryError::Storage(StorageError::Full(_)) => Failure::usage(format!(
                "{e}; free some space on its disk first (gc too needs a little to record what it removes)"
            )),
            other => Failure::usage(other.to_string()),
        }
    }
}

impl From<AccessError> for Failure {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::UserExists(_)
            | AccessError::UnknownUser(_)
            | AccessError::TokenExists { .. }
            | AccessError::AmbiguousToken(_) => Failure::found(e.to_string()),
            other => Failure::usage(other.to_string()),
        }
    }
}

/// Opens an existing store at `--root`; an admin command never creates one.
pub fn open_store(common: &CommonArgs, config: RegistryConfig) -> Result<Registry, Failure> {
    match LocalStore::open_existing(&common.root) {
        Ok(store) => Ok(store.registry(config)),
        Err(OpenError::Missing(_)) => Err(Failure::usage(format!(
            "no ArtiSpace store at {} (give --root or ARTISPACE_ROOT, or start `artispace serve` there first)",
            common.root.display()
        ))),
        Err(e) => Err(Failure::usage(format!(
            "cannot open the store at {}: {e}",
            common.root.display()
        ))),
    }
}

/// Runs an admin command body and reports its failure, returning the exit code.
pub fn finish(result: Result<i32, Failure>) -> i32 {
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("artispace: {}", failure.message);
            failure.code
        }
    }
}

/// Milliseconds since the epoch as an RFC 3339 time, to the second.
pub fn format_millis(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

/// How long ago `ms` was, briefly ("3m ago").
pub fn ago(ms: i64) -> String {
    let then = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    let elapsed = SystemTime::now()
        .duration_since(then)
        .unwrap_or(Duration::ZERO);
    let secs = elapsed.as_secs();
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}
