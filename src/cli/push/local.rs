//! Pushing into the local store through the registry layer, with exactly
//! the rules `serve` applies; safe while `serve` runs on the same root.

use indicatif::ProgressBar;

use super::source::{Blob, Manifest};
use super::stream::copy_range;
use super::target::Target;
use super::PushError;
use crate::oci::{Digest, Hasher, Reference, RepoName};
use crate::registry::{ChunkClaim, Registry, RegistryError};

pub struct LocalTarget {
    pub registry: Registry,
    pub repo: RepoName,
    /// Repositories to link blobs from instead of copying them.
    pub mount_from: Vec<RepoName>,
}

fn refused(e: RegistryError) -> PushError {
    PushError::Refused(e.to_string())
}

impl Target for LocalTarget {
    async fn has_blob(&self, blob: &Blob) -> Result<bool, PushError> {
        match self.registry.blob_size(&self.repo, &blob.digest).await {
            Ok(size) => Ok(size == blob.size),
            Err(RegistryError::BlobUnknown(_)) => Ok(false),
            Err(e) => Err(refused(e)),
        }
    }

    async fn mount_blob(&self, blob: &Blob) -> Result<bool, PushError> {
        for from in &self.mount_from {
            if self
                .registry
                .mount_blob(&self.repo, from, &blob.digest)
                .await
                .map_err(refused)?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn upload_blob(&self, blob: &Blob, progress: &ProgressBar) -> Result<(), PushError> {
        let hasher = Hasher::new(blob.digest.algorithm());
        let copy = copy_range(blob, 0, blob.size, hasher, progress.clone());
        let claim = ChunkClaim {
            start: None,
            length: Some(blob.size),
        };
        let stored = self
            .registry
            .push_blob(&self.repo, &blob.digest, claim, copy.body)
            .await;
        // The source's own verdict names the blob better than the store's.
        if let Ok(Err(e)) = copy.done.await {
            return Err(PushError::Source(e));
        }
        stored.map_err(refused)
    }

    async fn manifest_digest(&self, reference: &Reference) -> Result<Option<Digest>, PushError> {
        match self.registry.manifest(&self.repo, reference).await {
            Ok(stored) => Ok(Some(stored.digest)),
            Err(RegistryError::ManifestUnknown(_) | RegistryError::NameUnknown(_)) => Ok(None),
            Err(e) => Err(refused(e)),
        }
    }

    async fn put_manifest(
        &self,
        reference: &Reference,
        manifest: &Manifest,
    ) -> Result<(), PushError> {
        self.registry
            .put_manifest(
                &self.repo,
                reference,
                Some(manifest.media_type.clone()),
                manifest.bytes.clone(),
                None,
            )
            .await
            .map(|_| ())
            .map_err(refused)
    }
}
