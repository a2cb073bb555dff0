//! Every path of the store on disk, in one place.
//!
//! ```text
//! <root>/artispace.db                   SQLite in WAL mode: the source of truth for what exists
//! <root>/artispace.db-wal, -shm         SQLite's write-ahead log and shared index, kept when
//!                                       the store closes (so a full disk cannot stop it opening)
//! <root>/artispace.gc-lock              locked (flock) by the garbage collection that runs, if
//!                                       any; the SQLite backend names it after the database
//! <root>/blobs/<alg>/<hh>/<hex>         blob contents, named by digest (<hh> = first two hex chars),
//!                                       immutable once in place
//! <root>/uploads/<uuid>                 bytes received so far by an upload session
//! <root>/token-signing.key              the key bearer tokens are signed with (mode 0600),
//!                                       generated on the first `serve`
//! <root>/tls/self-signed.crt, .key      the certificate of `serve --tls-self-signed`
//!                                       (key mode 0600), generated on first use
//! ```
//!
//! Blob paths are built only from a validated [`Digest`] and upload paths
//! only from a parsed [`Uuid`], so no string from a request ever reaches the
//! filesystem. A blob's file appears by an atomic link or rename from
//! `uploads/` into `blobs/` on the same filesystem; it becomes visible only
//! when its metadata row is committed.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::oci::Digest;

pub const DATABASE_FILE: &str = "artispace.db";
const BLOBS_DIR: &str = "blobs";
const UPLOADS_DIR: &str = "uploads";
const SIGNING_KEY_FILE: &str = "token-signing.key";
const TLS_DIR: &str = "tls";

/// The paths under one store root.
#[derive(Debug, Clone)]
pub struct StoreLayout {
    root: PathBuf,
}

impl StoreLayout {
    pub fn new(root: impl Into<PathBuf>) -> StoreLayout {
        StoreLayout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join(DATABASE_FILE)
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join(BLOBS_DIR)
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join(UPLOADS_DIR)
    }

    pub fn blob(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.blobs_dir()
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    pub fn upload(&self, id: Uuid) -> PathBuf {
        self.uploads_dir().join(id.as_hyphenated().to_string())
    }

    pub fn signing_key(&self) -> PathBuf {
        self.root.join(SIGNING_KEY_FILE)
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.root.join(TLS_DIR)
    }

    pub fn self_signed_cert(&self) -> PathBuf {
        self.tls_dir().join("self-signed.crt")
    }

    pub fn self_signed_key(&self) -> PathBuf {
        self.tls_dir().join("self-signed.key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths_fan_out_by_the_first_two_hex_characters() {
        let layout = StoreLayout::new("/r");
        let digest = Digest::sha256_of(b"");
        assert_eq!(
            layout.blob(&digest),
            Path::new("/r/blobs/sha256/e3/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }
}
