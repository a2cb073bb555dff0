//! The application layer: the rules of a registry, shared by `serve` and the
//! admin commands.
//!
//! It owns upload sessions, digest checks, manifest validation, references,
//! tags, referrers and deletion. It reaches data only through
//! [`MetadataStore`] and [`BlobStore`], and runs their blocking calls on
//! tokio's blocking pool, never on the async executor. It knows nothing of
//! HTTP.

mod blobs;
mod error;
mod gc;
mod inventory;
mod manifests;
mod uploads;
mod verify;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Conditions on manifest writes are checked by the metadata store, in the write's transaction.
pub use crate::metadata::{GcClaim, WriteCondition};
pub use blobs::{BlobContent, ByteRange, FileSendPath};
pub use error::RegistryError;
pub use gc::{GcOptions, GcReport, Removed};
pub use inventory::{ConfigSummary, LayerEntry, ManifestDescription, ManifestEntry, PlatformEntry};
pub use manifests::PushedManifest;
pub use uploads::{ChunkClaim, UploadStatus};
pub use verify::{NoProgress, Problem, ProblemKind, Progress, VerifyOptions, VerifyReport};

use crate::layout::StoreLayout;
use crate::metadata::sqlite::SqliteMetadata;
use crate::metadata::{AccountStore, MetadataError, MetadataStore};
use crate::storage::fs::FsBlobStore;
use crate::storage::BlobStore;

/// Policy knobs of a registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Upload sessions idle for longer than this are forgotten.
    pub upload_expiry: Duration,
    /// Whether blobs and manifests may be deleted through the API.
    pub delete_enabled: bool,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            upload_expiry: Duration::from_secs(24 * 60 * 60),
            delete_enabled: true,
        }
    }
}

pub struct Registry {
    metadata: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    config: RegistryConfig,
    /// In-memory state of upload sessions in progress, keyed by session id.
    sessions: Mutex<HashMap<uuid::Uuid, Arc<tokio::sync::Mutex<uploads::SessionState>>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the store root {path}: {source}")]
    Root {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("there is no store at {0} (artispace serve or artispace user add creates one)")]
    Missing(String),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// The embedded default store under one root: SQLite (which holds the
/// metadata and the accounts) and a local blob directory. Opening it once
/// gives the registry and the access layer the same database handle.
pub struct LocalStore {
    pub layout: StoreLayout,
    metadata: Arc<SqliteMetadata>,
    blobs: Arc<FsBlobStore>,
}

impl LocalStore {
    /// Opens the store under `root`, creating it when missing.
    pub fn open(root: &Path) -> Result<LocalStore, OpenError> {
        std::fs::create_dir_all(root).map_err(|source| OpenError::Root {
            path: root.display().to_string(),
            source,
        })?;
        Self::open_at(StoreLayout::new(root))
    }

    /// Opens the store under `root`, which must exist already.
    pub fn open_existing(root: &Path) -> Result<LocalStore, OpenError> {
        let layout = StoreLayout::new(root);
        if !layout.database().exists() {
            return Err(OpenError::Missing(root.display().to_string()));
        }
        Self::open_at(layout)
    }

    fn open_at(layout: StoreLayout) -> Result<LocalStore, OpenError> {
        let metadata = SqliteMetadata::open(&layout.database())?;
        let blobs = FsBlobStore::open(layout.clone())?;
        Ok(LocalStore {
            layout,
            metadata: Arc::new(metadata),
            blobs: Arc::new(blobs),
        })
    }

    pub fn registry(&self, config: RegistryConfig) -> Registry {
        Registry::new(self.metadata.clone(), self.blobs.clone(), config)
    }

    pub fn accounts(&self) -> Arc<dyn AccountStore> {
        self.metadata.clone()
    }
}

impl Registry {
    pub fn new(
        metadata: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        config: RegistryConfig,
    ) -> Registry {
        Registry {
            metadata,
            blobs,
            config,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Opens the embedded default store under `root` (SQLite metadata and a
    /// local blob directory), creating it when missing.
    pub fn open_local(root: &Path, config: RegistryConfig) -> Result<Registry, OpenError> {
        Ok(LocalStore::open(root)?.registry(config))
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Runs a metadata call on the blocking pool.
    async fn metadata<T, F>(&self, f: F) -> Result<T, RegistryError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn MetadataStore) -> Result<T, MetadataError> + Send + 'static,
    {
        let metadata = Arc::clone(&self.metadata);
        blocking(move || f(metadata.as_ref()).map_err(RegistryError::from)).await
    }
}

/// Runs blocking work on tokio's blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, RegistryError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, RegistryError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RegistryError::Internal(format!("blocking task failed: {e}")))?
}
