//! What the store holds, described for people and scripts: repository
//! summaries, a repository's manifests and tags, and one manifest in detail
//! (layers, config, platforms, referrers). Read-only.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::{blocking, Registry, RegistryError};
use crate::metadata::{ManifestRecord, RepositorySummary};
use crate::oci::{Descriptor, Digest, Reference, RepoName};
use crate::storage::StorageError;

/// Config blobs larger than this are not read for a summary.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// A manifest of a repository, as listed by `inspect REPO`.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestEntry {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub tags: Vec<String>,
    /// `os/arch[/variant]` of an image, or of each image an index lists.
    pub platforms: Vec<String>,
    /// The manifest and the distinct blobs it references, in bytes.
    pub size: u64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub subject: Option<Digest>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerEntry {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigSummary {
    pub digest: String,
    pub media_type: String,
    pub platform: Option<String>,
    pub created: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformEntry {
    pub digest: String,
    pub media_type: String,
    pub platform: Option<String>,
    pub size: u64,
}

/// One manifest in detail, as shown by `inspect REPO:TAG`.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestDescription {
    pub repository: String,
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub size: u64,
    pub tags: Vec<String>,
    pub subject: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub config: Option<ConfigSummary>,
    pub layers: Vec<LayerEntry>,
    /// The images an index lists.
    pub manifests: Vec<PlatformEntry>,
    pub referrers: Vec<Descriptor>,
    /// The exact bytes pushed.
    #[serde(skip)]
    pub raw: Vec<u8>,
}

fn platform_of(value: &Value) -> Option<String> {
    let os = value.get("os")?.as_str()?;
    let arch = value.get("architecture")?.as_str()?;
    Some(match value.get("variant").and_then(Value::as_str) {
        Some(variant) => format!("{os}/{arch}/{variant}"),
        None => format!("{os}/{arch}"),
    })
}

fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    value?.as_array().map(|items| {
        items
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    })
}

fn descriptor_fields(value: &Value) -> (String, String, u64) {
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (
        text("digest"),
        text("mediaType"),
        value.get("size").and_then(Value::as_u64).unwrap_or(0),
    )
}

impl Registry {
    pub async fn repository_summaries(&self) -> Result<Vec<RepositorySummary>, RegistryError> {
        self.metadata(|m| m.repository_summaries()).await
    }

    /// Every manifest of `repo`, newest first.
    pub async fn repository_manifests(
        &self,
        repo: &RepoName,
    ) -> Result<Vec<ManifestEntry>, RegistryError> {
        let r = repo.clone();
        if !self.metadata(move |m| m.repository_exists(&r)).await? {
            return Err(RegistryError::NameUnknown(repo.clone()));
        }
        let r = repo.clone();
        let records = self.metadata(move |m| m.repository_manifests(&r)).await?;
        let mut entries = Vec::with_capacity(records.len());
        for record in records {
            let platforms = self.platforms(repo, &record).await?;
            let size =
                record.content.len() as u64 + record.blobs.iter().map(|(_, s)| s).sum::<u64>();
            entries.push(ManifestEntry {
                digest: record.digest,
                media_type: record.media_type,
                artifact_type: record.artifact_type,
                tags: record.tags,
                platforms,
                size,
                created_at: record.created_at,
                subject: record.subject,
            });
        }
        Ok(entries)
    }

    /// The platforms of an image (from its config) or of an index's children.
    async fn platforms(
        &self,
        repo: &RepoName,
        record: &ManifestRecord,
    ) -> Result<Vec<String>, RegistryError> {
        let Ok(value) = serde_json::from_slice::<Value>(&record.content) else {
            return Ok(Vec::new());
        };
        if let Some(children) = value.get("manifests").and_then(Value::as_array) {
            return Ok(children
                .iter()
                .filter_map(|c| c.get("platform").and_then(platform_of))
                .collect());
        }
        let config = self.config_summary(repo, value.get("config")).await?;
        Ok(config.and_then(|c| c.platform).into_iter().collect())
    }

    async fn config_summary(
        &self,
        repo: &RepoName,
        descriptor: Option<&Value>,
    ) -> Result<Option<ConfigSummary>, RegistryError> {
        let Some(descriptor) = descriptor else {
            return Ok(None);
        };
        let (digest, media_type, _) = descriptor_fields(descriptor);
        let mut summary = ConfigSummary {
            digest: digest.clone(),
            media_type,
            ..ConfigSummary::default()
        };
        let Ok(parsed) = digest.parse::<Digest>() else {
            return Ok(Some(summary));
        };
        let Some(bytes) = self.read_small_blob(repo, &parsed).await? else {
            return Ok(Some(summary));
        };
        if let Ok(config) = serde_json::from_slice::<Value>(&bytes) {
            summary.platform = platform_of(&config);
            summary.created = config
                .get("created")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let inner = config.get("config");
            summary.entrypoint = strings(inner.and_then(|c| c.get("Entrypoint")));
            summary.cmd = strings(inner.and_then(|c| c.get("Cmd")));
            if let Some(labels) = inner
                .and_then(|c| c.get("Labels"))
                .and_then(Value::as_object)
            {
                summary.labels = labels
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect();
            }
        }
        Ok(Some(summary))
    }

    /// The bytes of a small blob linked to `repo`, or `None` when it is not
    /// there or too large to summarise.
    async fn read_small_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let (r, d) = (repo.clone(), digest.clone());
        match self.metadata(move |m| m.linked_blob_size(&r, &d)).await? {
            Some(size) if size <= MAX_CONFIG_BYTES => {}
            _ => return Ok(None),
        }
        let blobs = Arc::clone(&self.blobs);
        let d = digest.clone();
        blocking(move || {
            let Some(mut reader) = blobs.open_blob(&d)? else {
                return Ok(None);
            };
            let mut bytes = Vec::new();
            reader
                .read_to_end(&mut bytes)
                .map_err(|e| StorageError::io(format!("blob {d}"), e))?;
            Ok(Some(bytes))
        })
        .await
    }

    /// One manifest in detail.
    pub async fn describe_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestDescription, RegistryError> {
        let stored = self.manifest(repo, reference).await?;
        let value: Value = serde_json::from_slice(&stored.content).unwrap_or(Value::Null);
        // The records alone: the full listing would read every config blob
        // of the repository to show platforms.
        let r = repo.clone();
        let tags = self
            .metadata(move |m| m.repository_manifests(&r))
            .await?
            .into_iter()
            .find(|m| m.digest == stored.digest)
            .map(|m| m.tags)
            .unwrap_or_default();

        let layers = value
            .get("layers")
            .and_then(Value::as_array)
            .map(|layers| {
                layers
                    .iter()
                    .map(|l| {
                        let (digest, media_type, size) = descriptor_fields(l);
                        LayerEntry {
                            digest,
                            size,
                            media_type,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let manifests = value
            .get("manifests")
            .and_then(Value::as_array)
            .map(|children| {
                children
                    .iter()
                    .map(|c| {
                        let (digest, media_type, size) = descriptor_fields(c);
                        PlatformEntry {
                            digest,
                            media_type,
                            platform: c.get("platform").and_then(platform_of),
                            size,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let annotations = value
            .get("annotations")
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let config = self.config_summary(repo, value.get("config")).await?;
        let referrers = self.referrers(repo, &stored.digest, None).await?;
        Ok(ManifestDescription {
            repository: repo.to_string(),
            digest: stored.digest,
            media_type: stored.media_type,
            artifact_type: value
                .get("artifactType")
                .and_then(Value::as_str)
                .map(str::to_owned),
            size: stored.content.len() as u64,
            tags,
            subject: value
                .get("subject")
                .and_then(|s| s.get("digest"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            annotations,
            config,
            layers,
            manifests,
            referrers,
            raw: stored.content,
        })
    }
}
