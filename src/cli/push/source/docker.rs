//! Docker archives, as `docker save` and `podman save` write them:
//! `manifest.json` lists each image's config file and layer tars.
//!
//! The archive names no digests, so each layer is hashed as it is read here,
//! and a Docker schema2 manifest is built for each image. Several images are
//! pushed whole under an OCI index that lists them with their platforms and
//! tags.

use std::collections::HashMap;
use std::io::Read;

use bytes::Bytes;
use indicatif::ProgressBar;
use serde::Deserialize;
use serde_json::{json, Value};

use super::files::{read_small, Files};
use super::{BlobSource, Catalog, Manifest, Platform, SourceError, MAX_CONFIG_BYTES};
use crate::oci::media_types as mt;
use crate::oci::{Digest, Hasher};

const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const MAX_ARCHIVE_MANIFEST: u64 = 16 * 1024 * 1024;
const HASH_BUFFER: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// A layer tar as found in the archive: its digest, size and media type.
#[derive(Clone)]
struct Layer {
    digest: Digest,
    size: u64,
    media_type: &'static str,
}

pub fn catalog(files: Files, hashing: &ProgressBar) -> Result<Catalog, SourceError> {
    let origin = format!("Docker archive {}", files.describe());
    let listing = files
        .read_small("manifest.json", MAX_ARCHIVE_MANIFEST)?
        .ok_or_else(|| SourceError::Invalid("manifest.json is missing".into()))?;
    let images: Vec<ArchiveImage> = serde_json::from_slice(&listing).map_err(|e| {
        SourceError::Invalid(format!(
            "manifest.json is not a Docker archive manifest: {e}"
        ))
    })?;
    if images.is_empty() {
        return Err(SourceError::Invalid("manifest.json lists no images".into()));
    }
    let mut extra = HashMap::new();
    let mut hashed: HashMap<String, Layer> = HashMap::new();
    let names: std::collections::HashSet<&String> = images.iter().flat_map(|i| &i.layers).collect();
    let total: u64 = names
        .iter()
        .filter_map(|name| files.get(name).ok().flatten())
        .map(|s| s.len())
        .sum();
    hashing.set_length(total);
    let mut entries = Vec::new();
    for image in &images {
        let config_source = file(&files, &image.config, "config")?;
        let config = read_small(&config_source, MAX_CONFIG_BYTES, &image.config)?;
        let config_digest = Digest::sha256_of(&config);
        let platform = serde_json::from_slice::<Platform>(&config).ok();
        let config_size = config.len();
        extra.insert(
            config_digest.clone(),
            BlobSource::Memory(Bytes::from(config)),
        );
        let mut layers = Vec::new();
        for name in &image.layers {
            let layer = match hashed.get(name) {
                Some(layer) => layer.clone(),
                None => {
                    let source = file(&files, name, "layer")?;
                    let layer = hash_layer(&source, hashing)?;
                    extra.insert(layer.digest.clone(), source);
                    hashed.insert(name.clone(), layer.clone());
                    layer
                }
            };
            layers.push(json!({
                "mediaType": layer.media_type,
                "size": layer.size,
                "digest": layer.digest.to_string(),
            }));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": mt::DOCKER_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG,
                "size": config_size,
                "digest": config_digest.to_string(),
            },
            "layers": layers,
        });
        let manifest = made(&manifest, mt::DOCKER_MANIFEST)?;
        extra.insert(
            manifest.digest.clone(),
            BlobSource::Memory(manifest.bytes.clone()),
        );
        let tag = image.repo_tags.as_ref().and_then(|t| t.first()).cloned();
        entries.push((manifest, platform, tag));
    }
    let root = if entries.len() == 1 {
        entries.remove(0).0
    } else {
        let index = made(&index_of(&entries), mt::OCI_INDEX)?;
        extra.insert(
            index.digest.clone(),
            BlobSource::Memory(index.bytes.clone()),
        );
        index
    };
    Ok(Catalog {
        origin,
        files,
        blobs_dir: false,
        extra,
        root,
    })
}

fn file(files: &Files, name: &str, what: &str) -> Result<BlobSource, SourceError> {
    files.get(name)?.ok_or_else(|| {
        SourceError::Invalid(format!(
            "manifest.json names {what} {name:?}, which is missing"
        ))
    })
}

fn made(value: &Value, media_type: &str) -> Result<Manifest, SourceError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| SourceError::Invalid(format!("cannot encode a manifest: {e}")))?;
    Ok(Manifest {
        digest: Digest::sha256_of(&bytes),
        media_type: media_type.to_owned(),
        bytes: Bytes::from(bytes),
    })
}

fn index_of(entries: &[(Manifest, Option<Platform>, Option<String>)]) -> Value {
    let manifests: Vec<Value> = entries
        .iter()
        .map(|(manifest, platform, tag)| {
            let mut descriptor = json!({
                "mediaType": manifest.media_type,
                "size": manifest.bytes.len(),
                "digest": manifest.digest.to_string(),
            });
            if let Some(p) = platform {
                let mut platform = json!({"architecture": p.architecture, "os": p.os});
                if let Some(variant) = &p.variant {
                    platform["variant"] = json!(variant);
                }
                descriptor["platform"] = platform;
            }
            if let Some(tag) = tag {
                descriptor["annotations"] = json!({ REF_NAME: tag });
            }
            descriptor
        })
        .collect();
    json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_INDEX,
        "manifests": manifests,
    })
}

/// Hashes a layer tar and tells a gzip-compressed one by its magic bytes.
fn hash_layer(source: &BlobSource, progress: &ProgressBar) -> Result<Layer, SourceError> {
    let io = |e| SourceError::io(source.path(), e);
    let mut reader = source.open().map_err(io)?;
    let mut hasher = Hasher::new(crate::oci::Algorithm::Sha256);
    let mut buffer = vec![0u8; HASH_BUFFER];
    let mut head: Vec<u8> = Vec::with_capacity(2);
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        if head.len() < 2 {
            head.extend(buffer[..n].iter().take(2 - head.len()));
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
        progress.inc(n as u64);
    }
    if size != source.len() {
        return Err(SourceError::Invalid(format!(
            "a layer of {} ends after {size} of {} bytes",
            source.path().display(),
            source.len()
        )));
    }
    let media_type = if head == [0x1f, 0x8b] {
        DOCKER_LAYER_GZIP
    } else {
        DOCKER_LAYER
    };
    Ok(Layer {
        digest: hasher.finish(),
        size,
        media_type,
    })
}
