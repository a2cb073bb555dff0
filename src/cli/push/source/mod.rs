//! What `push` reads: an OCI image layout (a directory or a `.tar` of one) or
//! a Docker archive (`docker save`), turned into one model, an [`ImageSet`]:
//! the blobs to copy and the manifests to put, children before parents, the
//! root last.
//!
//! Manifests are read and checked against their digests here, before
//! anything is pushed; blobs (configs and layers) are only located here and
//! are checked while they are copied (see `stream`).

mod docker;
mod files;
mod layout;
mod platform;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use indicatif::ProgressBar;
use serde::Deserialize;

use crate::oci::manifest::MAX_MANIFEST_BYTES;
use crate::oci::media_types as mt;
use crate::oci::Digest;
use files::{Files, TarIndex};
use platform::pick_platform;
pub use platform::Platform;

/// Largest image config read to learn an image's platform.
const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Unrecognised(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the source is invalid: {0}")]
    Invalid(String),
    #[error("blob {digest} ({what}) is missing from the source")]
    Missing { digest: Digest, what: String },
    #[error("blob {digest} in the source is corrupt: {detail}")]
    Corrupt { digest: Digest, detail: String },
    /// The receiving side stopped reading (its request ended early).
    #[error("the copy was abandoned")]
    Abandoned,
    #[error("the source has no image for platform {wanted} (it has: {available})")]
    NoPlatform { wanted: Platform, available: String },
}

impl SourceError {
    pub fn io(path: &Path, source: std::io::Error) -> SourceError {
        SourceError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Whether the fault is in how the command was called or its
    /// environment (exit 2) rather than in the source's content (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SourceError::NotFound(_) | SourceError::Unrecognised(_) | SourceError::Io { .. }
        )
    }
}

/// Where the bytes of a blob are: `len` bytes of a file from `offset` (a
/// whole file, or an entry inside a tar archive), or in memory (manifests
/// and indexes that `push` made itself).
#[derive(Debug, Clone)]
pub enum BlobSource {
    File {
        path: Arc<PathBuf>,
        offset: u64,
        len: u64,
    },
    Memory(Bytes),
}

impl BlobSource {
    pub fn len(&self) -> u64 {
        match self {
            BlobSource::File { len, .. } => *len,
            BlobSource::Memory(bytes) => bytes.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn path(&self) -> &Path {
        match self {
            BlobSource::File { path, .. } => path,
            BlobSource::Memory(_) => Path::new("(memory)"),
        }
    }

    /// A blocking reader of the whole content.
    pub fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        self.open_at(0)
    }

    /// A blocking reader of the content from byte `start` on.
    pub fn open_at(&self, start: u64) -> std::io::Result<Box<dyn Read + Send>> {
        let start = start.min(self.len());
        match self {
            BlobSource::File { path, offset, len } => {
                let mut file = File::open(path.as_ref())?;
                file.seek(SeekFrom::Start(offset + start))?;
                Ok(Box::new(file.take(len - start)))
            }
            BlobSource::Memory(bytes) => Ok(Box::new(std::io::Cursor::new(
                bytes.slice(start as usize..),
            ))),
        }
    }
}

/// A blob to copy: a config or a layer.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub source: BlobSource,
}

/// A manifest or index to put, with its exact bytes.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

/// Everything one push copies.
#[derive(Debug)]
pub struct ImageSet {
    /// What the source is, for messages (`OCI layout ./dir`).
    pub origin: String,
    /// Each blob once.
    pub blobs: Vec<Blob>,
    /// Children before the manifests that reference them; the root is last.
    pub manifests: Vec<Manifest>,
}

impl ImageSet {
    pub fn root(&self) -> Option<&Manifest> {
        self.manifests.last()
    }
}

/// A descriptor as found in manifests and indexes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// Whether an index entry names a manifest. Other entries (BuildKit's
    /// cache puts layers and a cache config in an index) are blobs of the
    /// index, as the registry takes them; an entry without a media type is
    /// taken for a manifest.
    fn names_a_manifest(&self) -> bool {
        self.media_type.as_deref().is_none_or(mt::is_manifest)
    }

    fn digest(&self) -> Result<Digest, SourceError> {
        self.digest
            .parse()
            .map_err(|e| SourceError::Invalid(format!("descriptor digest: {e}")))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestBody {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// The content of a source: its root manifest and where every blob is.
pub struct Catalog {
    origin: String,
    files: Files,
    /// Whether blobs are found at `blobs/<alg>/<hex>` (an OCI layout).
    blobs_dir: bool,
    /// Blobs not at `blobs/<alg>/<hex>` of a layout: those of a Docker
    /// archive and manifests made by `push`.
    extra: HashMap<Digest, BlobSource>,
    root: Manifest,
}

impl Catalog {
    fn locate(&self, digest: &Digest) -> Result<Option<BlobSource>, SourceError> {
        if let Some(source) = self.extra.get(digest) {
            return Ok(Some(source.clone()));
        }
        if !self.blobs_dir {
            return Ok(None);
        }
        self.files.get(&format!(
            "blobs/{}/{}",
            digest.algorithm().as_str(),
            digest.hex()
        ))
    }

    fn blob(&self, descriptor: &Descriptor, what: &str) -> Result<Blob, SourceError> {
        let digest = descriptor.digest()?;
        let source = self.locate(&digest)?.ok_or_else(|| SourceError::Missing {
            digest: digest.clone(),
            what: what.to_owned(),
        })?;
        if source.len() != descriptor.size {
            return Err(SourceError::Corrupt {
                digest,
                detail: format!(
                    "{} bytes in the source, but its descriptor says {}",
                    source.len(),
                    descriptor.size
                ),
            });
        }
        Ok(Blob {
            digest,
            size: descriptor.size,
            media_type: descriptor.media_type.clone().unwrap_or_default(),
            source,
        })
    }

    /// Reads a manifest and checks its bytes against its descriptor.
    fn manifest(&self, descriptor: &Descriptor) -> Result<Manifest, SourceError> {
        let blob = self.blob(descriptor, "a manifest")?;
        let bytes = files::read_small(&blob.source, MAX_MANIFEST_BYTES as u64, "a manifest")?;
        let actual = Digest::of(blob.digest.algorithm(), &bytes);
        if actual != blob.digest {
            return Err(SourceError::Corrupt {
                digest: blob.digest,
                detail: format!("its bytes hash to {actual}"),
            });
        }
        let body: ManifestBody = serde_json::from_slice(&bytes).map_err(|e| {
            SourceError::Invalid(format!("manifest {} is not valid JSON: {e}", blob.digest))
        })?;
        let media_type = body
            .media_type
            .or(descriptor.media_type.clone())
            .unwrap_or_else(|| {
                if body.manifests.is_some() {
                    mt::OCI_INDEX.to_owned()
                } else {
                    mt::OCI_MANIFEST.to_owned()
                }
            });
        Ok(Manifest {
            digest: blob.digest,
            media_type,
            bytes: Bytes::from(bytes),
        })
    }

    /// The platform an image manifest is for, from its config.
    fn image_platform(&self, manifest: &Manifest) -> Result<Option<Platform>, SourceError> {
        let body = parse_body(manifest)?;
        let Some(config) = body.config else {
            return Ok(None);
        };
        let blob = self.blob(&config, "a config")?;
        let bytes = files::read_small(&blob.source, MAX_CONFIG_BYTES, "an image config")?;
        Ok(serde_json::from_slice::<Platform>(&bytes).ok())
    }
}

fn parse_body(manifest: &Manifest) -> Result<ManifestBody, SourceError> {
    serde_json::from_slice(&manifest.bytes).map_err(|e| {
        SourceError::Invalid(format!(
            "manifest {} is not valid JSON: {e}",
            manifest.digest
        ))
    })
}

fn is_index(media_type: &str) -> bool {
    media_type == mt::OCI_INDEX || media_type == mt::DOCKER_MANIFEST_LIST
}

/// Opens the source at `path` and gathers what to push: the whole of it, or
/// the one image for `platform`.
pub fn open(
    path: &Path,
    platform: Option<&Platform>,
    hashing: &ProgressBar,
) -> Result<ImageSet, SourceError> {
    let catalog = catalog(path, hashing)?;
    let root = match platform {
        Some(wanted) => pick_platform(&catalog, catalog.root.clone(), wanted)?,
        None => catalog.root.clone(),
    };
    let mut set = ImageSet {
        origin: catalog.origin.clone(),
        blobs: Vec::new(),
        manifests: Vec::new(),
    };
    let mut seen = HashSet::new();
    collect(&catalog, root, &mut set, &mut seen, 0)?;
    Ok(set)
}

fn catalog(path: &Path, hashing: &ProgressBar) -> Result<Catalog, SourceError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SourceError::NotFound(path.display().to_string()))
        }
        Err(e) => return Err(SourceError::io(path, e)),
    };
    if meta.is_dir() {
        let files = Files::Dir(path.to_path_buf());
        if files.get("index.json")?.is_some() {
            return layout::catalog(files, "OCI layout");
        }
        if files.get("manifest.json")?.is_some() {
            return docker::catalog(files, hashing);
        }
        return Err(SourceError::Unrecognised(format!(
            "{} is neither an OCI image layout (no index.json) nor an unpacked Docker archive (no manifest.json)",
            path.display()
        )));
    }
    refuse_compressed(path)?;
    let index = TarIndex::read(path)?;
    if index.contains("index.json") {
        // Newer `docker save` writes an OCI layout beside manifest.json: the
        // layout is the more exact description, so it wins.
        return layout::catalog(Files::Tar(index), "OCI archive");
    }
    if index.contains("manifest.json") {
        return docker::catalog(Files::Tar(index), hashing);
    }
    Err(SourceError::Unrecognised(format!(
        "{} holds neither index.json (OCI archive) nor manifest.json (Docker archive)",
        path.display()
    )))
}

/// Compressed archives cannot be read in place; say so instead of failing
/// with a tar parse error.
fn refuse_compressed(path: &Path) -> Result<(), SourceError> {
    let mut magic = [0u8; 4];
    let mut file = File::open(path).map_err(|e| SourceError::io(path, e))?;
    let n = file
        .read(&mut magic)
        .map_err(|e| SourceError::io(path, e))?;
    let compressed = match &magic[..n] {
        [0x1f, 0x8b, ..] => Some("gzip"),
        [0x28, 0xb5, 0x2f, 0xfd] => Some("zstd"),
        [b'B', b'Z', b'h', ..] => Some("bzip2"),
        [0xfd, b'7', b'z', b'X'] => Some("xz"),
        _ => None,
    };
    match compressed {
        Some(kind) => Err(SourceError::Unrecognised(format!(
            "{} is {kind}-compressed; decompress it first (push reads archives in place)",
            path.display()
        ))),
        None => Ok(()),
    }
}

/// Depth-first: children and blobs are gathered before the manifest that
/// references them, so pushing in order never refers to anything missing.
fn collect(
    catalog: &Catalog,
    manifest: Manifest,
    set: &mut ImageSet,
    seen: &mut HashSet<Digest>,
    depth: usize,
) -> Result<(), SourceError> {
    if depth > 8 {
        return Err(SourceError::Invalid("indexes nest more than 8 deep".into()));
    }
    if !seen.insert(manifest.digest.clone()) {
        return Ok(());
    }
    let body = parse_body(&manifest)?;
    if let Some(children) = &body.manifests {
        for child in children {
            if !child.names_a_manifest() {
                let blob = catalog.blob(child, "a blob of an index")?;
                if seen.insert(blob.digest.clone()) {
                    set.blobs.push(blob);
                }
                continue;
            }
            let child = catalog.manifest(child)?;
            collect(catalog, child, set, seen, depth + 1)?;
        }
    } else {
        let config = body.config.as_ref().ok_or_else(|| {
            SourceError::Invalid(format!("manifest {} has no config", manifest.digest))
        })?;
        let layers = body.layers.iter().filter(|l| !is_foreign(l));
        for (descriptor, what) in
            std::iter::once((config, "a config")).chain(layers.map(|l| (l, "a layer")))
        {
            let blob = catalog.blob(descriptor, what)?;
            if seen.insert(blob.digest.clone()) {
                set.blobs.push(blob);
            }
        }
    }
    set.manifests.push(manifest);
    Ok(())
}

/// Foreign and non-distributable layers live elsewhere (their `urls`);
/// registries do not expect them to be pushed.
fn is_foreign(layer: &Descriptor) -> bool {
    layer.media_type.as_deref().is_some_and(|m| {
        m == mt::DOCKER_FOREIGN_LAYER || m.starts_with(mt::OCI_NONDISTRIBUTABLE_PREFIX)
    })
}
