//! OCI image layouts (a directory, or the same in a `.tar`: an OCI archive).
//!
//! `index.json` lists the layout's top-level manifests. One entry is the
//! image (or multi-platform index) to push; several entries are pushed
//! whole, with `index.json` itself as the root index.

use std::collections::HashMap;

use bytes::Bytes;
use serde::Deserialize;

use super::files::Files;
use super::{BlobSource, Catalog, Descriptor, Manifest, SourceError};
use crate::oci::manifest::MAX_MANIFEST_BYTES;
use crate::oci::media_types as mt;
use crate::oci::Digest;

#[derive(Deserialize)]
struct LayoutIndex {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

pub fn catalog(files: Files, kind: &str) -> Result<Catalog, SourceError> {
    let origin = format!("{kind} {}", files.describe());
    let bytes = files
        .read_small("index.json", MAX_MANIFEST_BYTES as u64)?
        .ok_or_else(|| SourceError::Invalid("index.json is missing".into()))?;
    let index: LayoutIndex = serde_json::from_slice(&bytes)
        .map_err(|e| SourceError::Invalid(format!("index.json is not a valid OCI index: {e}")))?;
    let root = Manifest {
        digest: Digest::sha256_of(&bytes),
        media_type: mt::OCI_INDEX.to_owned(),
        bytes: Bytes::from(bytes),
    };
    let mut extra = HashMap::new();
    extra.insert(root.digest.clone(), BlobSource::Memory(root.bytes.clone()));
    let mut catalog = Catalog {
        origin,
        files,
        blobs_dir: true,
        extra,
        root,
    };
    match index.manifests.as_slice() {
        [] => Err(SourceError::Invalid("index.json lists no manifests".into())),
        [only] => {
            catalog.root = catalog.manifest(only)?;
            Ok(catalog)
        }
        _ => Ok(catalog),
    }
}
