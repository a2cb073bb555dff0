//! Manifests, tags, and the listings built from them (tags, catalog,
//! referrers).

use bytes::Bytes;

use super::{blocking, Registry, RegistryError};
use crate::metadata::{NewManifest, Page, StoredManifest, WriteCondition};
use crate::oci::manifest::{self, MAX_MANIFEST_BYTES};
use crate::oci::{Descriptor, Digest, Reference, RepoName};

/// What a successful manifest push reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

impl Registry {
    /// Validates and stores a manifest under `reference` (a tag, or the
    /// digest its bytes must have), if `condition` (when given) holds for
    /// what the reference names at that moment.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<String>,
        content: Bytes,
        condition: Option<Box<dyn WriteCondition>>,
    ) -> Result<PushedManifest, RegistryError> {
        if content.len() > MAX_MANIFEST_BYTES {
            return Err(RegistryError::ManifestTooLarge);
        }
        let metadata = std::sync::Arc::clone(&self.metadata);
        let (repo, reference) = (repo.clone(), reference.clone());
        // Parsing and hashing up to 4 MiB is real CPU work: keep it off the executor.
        blocking(move || {
            let parsed = manifest::parse(&content, content_type.as_deref())?;
            let (digest, tag) = match &reference {
                Reference::Digest(expected) => {
                    let actual = Digest::of(expected.algorithm(), &content);
                    if actual != *expected {
                        return Err(RegistryError::DigestMismatch {
                            expected: expected.clone(),
                            actual,
                        });
                    }
                    (actual, None)
                }
                Reference::Tag(tag) => (Digest::sha256_of(&content), Some(tag)),
            };
            metadata.put_manifest(NewManifest {
                repo: &repo,
                digest: &digest,
                parsed: &parsed,
                content: &content,
                tag,
                condition: condition.as_deref(),
            })?;
            Ok(PushedManifest {
                digest,
                subject: parsed.subject,
            })
        })
        .await
    }

    pub async fn manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<StoredManifest, RegistryError> {
        let (r, reference_) = (repo.clone(), reference.clone());
        let found = self
            .metadata(move |m| match &reference_ {
                Reference::Tag(tag) => m.manifest_by_tag(&r, tag),
                Reference::Digest(digest) => m.manifest_by_digest(&r, digest),
            })
            .await?;
        match found {
            Some(manifest) => Ok(manifest),
            None => Err(self.missing_manifest(repo, reference).await),
        }
    }

    /// Deletes a manifest (by digest, with every tag on it) or only a tag.
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(), RegistryError> {
        if !self.config.delete_enabled {
            return Err(RegistryError::DeleteDisabled);
        }
        let (r, reference_) = (repo.clone(), reference.clone());
        let deleted = self
            .metadata(move |m| match &reference_ {
                Reference::Tag(tag) => m.delete_tag(&r, tag),
                Reference::Digest(digest) => m.delete_manifest(&r, digest),
            })
            .await?;
        if deleted {
            Ok(())
        } else {
            Err(self.missing_manifest(repo, reference).await)
        }
    }

    /// Tells an unknown repository from an unknown manifest in a known one.
    async fn missing_manifest(&self, repo: &RepoName, reference: &Reference) -> RegistryError {
        match self.ensure_repository_exists(repo).await {
            Ok(()) => RegistryError::ManifestUnknown(reference.to_string()),
            Err(e) => e,
        }
    }

    async fn ensure_repository_exists(&self, repo: &RepoName) -> Result<(), RegistryError> {
        let r = repo.clone();
        if self.metadata(move |m| m.repository_exists(&r)).await? {
            Ok(())
        } else {
            Err(RegistryError::NameUnknown(repo.clone()))
        }
    }

    /// Tags of `repo` in lexical order after `after`, at most `limit`.
    pub async fn tags(
        &self,
        repo: &RepoName,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page, RegistryError> {
        let r = repo.clone();
        let page = self
            .metadata(move |m| m.list_tags(&r, after.as_deref(), limit))
            .await?;
        if page.items.is_empty() {
            // An empty page is only an answer for a repository that exists.
            self.ensure_repository_exists(repo).await?;
        }
        Ok(page)
    }

    /// Repository names in lexical order after `after`, at most `limit`.
    pub async fn repositories(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page, RegistryError> {
        self.metadata(move |m| m.list_repositories(after.as_deref(), limit))
            .await
    }

    /// Manifests in `repo` whose subject is `subject`.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<String>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let (r, s) = (repo.clone(), subject.clone());
        self.metadata(move |m| m.referrers(&r, &s, artifact_type.as_deref()))
            .await
    }
}
