//! Parsing and validation of pushed manifests: OCI image manifests and
//! indexes, Docker schema2 manifests and manifest lists, and OCI artifacts.
//!
//! The registry stores the exact bytes a client pushed; this module only
//! extracts what the registry needs to know about them (kind, media type,
//! referenced blobs and child manifests, subject, artifact type) and refuses
//! what it must not store.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::digest::Digest;
use super::media_types::{self as mt};

/// Largest manifest body the registry accepts (4 MiB, as the spec suggests).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting of JSON objects and arrays accepted in a manifest. Real
/// manifests nest four or five levels; the limit keeps hostile documents
/// from costing deep recursion, and says so clearly.
pub const MAX_JSON_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image manifest (OCI or Docker schema2): a config and layers.
    Image,
    /// An index (OCI index or Docker manifest list): child manifests (and,
    /// as BuildKit's cache writes them, blobs).
    Index,
}

/// A descriptor as the registry reports it (for example in a referrers list).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(rename = "artifactType", skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// What the registry learned from a valid manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    pub kind: ManifestKind,
    /// The manifest's own media type: the body's `mediaType`, else the
    /// request's Content-Type, else inferred from the structure.
    pub media_type: String,
    /// `artifactType`, else (for image manifests) the config's media type.
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// Config and distributable layers, or an index's entries that are not
    /// manifests; each once: they must be present.
    pub blobs: Vec<Digest>,
    /// An index's entries that are manifests, each once: they must be
    /// present.
    pub children: Vec<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error(
        "Docker schema1 manifests are not supported; push with a current client (schema2 or OCI)"
    )]
    Schema1,
    #[error("manifest schemaVersion must be 2")]
    SchemaVersion,
    #[error("Content-Type {header:?} does not match the manifest's mediaType {body:?}")]
    MediaTypeMismatch { header: String, body: String },
    #[error("manifest media type {0:?} is not a manifest or index type this registry accepts")]
    UnknownMediaType(String),
    #[error("an image manifest must have a config descriptor")]
    MissingConfig,
    #[error("an index must have a manifests list")]
    MissingManifests,
    #[error("descriptor {field}: {reason}")]
    BadDescriptor { field: String, reason: String },
    #[error("manifest JSON nests deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
}

/// Refuses JSON nested deeper than [`MAX_JSON_DEPTH`], by a scan that
/// needs no recursion (brackets inside strings do not count).
pub fn check_depth(bytes: &[u8]) -> Result<(), ManifestError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(ManifestError::TooDeep);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<u64>,
}

impl RawDescriptor {
    fn validate(&self, field: &str) -> Result<(String, Digest), ManifestError> {
        let bad = |reason: &str| ManifestError::BadDescriptor {
            field: field.to_owned(),
            reason: reason.to_owned(),
        };
        let media_type = self
            .media_type
            .clone()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| bad("mediaType is missing"))?;
        let digest = self
            .digest
            .as_deref()
            .ok_or_else(|| bad("digest is missing"))?
            .parse::<Digest>()
            .map_err(|e| bad(&e.to_string()))?;
        if self.size.is_none() {
            return Err(bad("size is missing"));
        }
        Ok((media_type, digest))
    }
}

/// Parses `bytes` pushed with the given Content-Type.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<ParsedManifest, ManifestError> {
    check_depth(bytes)?;
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    let header = content_type.map(mt::essence).filter(|h| !h.is_empty());

    let schema1 = [mt::DOCKER_SCHEMA1, mt::DOCKER_SCHEMA1_SIGNED];
    if raw.schema_version == Some(1)
        || header.is_some_and(|h| schema1.contains(&h))
        || raw
            .media_type
            .as_deref()
            .is_some_and(|m| schema1.contains(&m))
    {
        return Err(ManifestError::Schema1);
    }
    if raw.schema_version != Some(2) {
        return Err(ManifestError::SchemaVersion);
    }

    let media_type = effective_media_type(&raw, header)?;
    let kind = match media_type.as_str() {
        mt::OCI_MANIFEST | mt::DOCKER_MANIFEST => ManifestKind::Image,
        mt::OCI_INDEX | mt::DOCKER_MANIFEST_LIST => ManifestKind::Index,
        other => return Err(ManifestError::UnknownMediaType(other.to_owned())),
    };

    let subject = match &raw.subject {
        Some(s) => Some(s.validate("subject")?.1),
        None => None,
    };
    let mut parsed = ParsedManifest {
        kind,
        media_type,
        artifact_type: raw.artifact_type.clone().filter(|a| !a.is_empty()),
        subject,
        annotations: raw.annotations.clone(),
        blobs: Vec::new(),
        children: Vec::new(),
    };
    match kind {
        ManifestKind::Image => collect_image_blobs(&raw, &mut parsed)?,
        ManifestKind::Index => collect_index_children(&raw, &mut parsed)?,
    }
    Ok(parsed)
}

/// The body's `mediaType` wins; the header must agree with it when both are
/// manifest types. Generic headers (`application/json`) say nothing.
fn effective_media_type(raw: &RawManifest, header: Option<&str>) -> Result<String, ManifestError> {
    let header = header.filter(|h| !matches!(*h, "application/json" | "application/octet-stream"));
    match (raw.media_type.as_deref(), header) {
        (Some(body), Some(header)) if body != header => Err(ManifestError::MediaTypeMismatch {
            header: header.to_owned(),
            body: body.to_owned(),
        }),
        (Some(body), _) => Ok(body.to_owned()),
        (None, Some(header)) => Ok(header.to_owned()),
        (None, None) if raw.manifests.is_some() => Ok(mt::OCI_INDEX.to_owned()),
        (None, None) => Ok(mt::OCI_MANIFEST.to_owned()),
    }
}

fn collect_image_blobs(
    raw: &RawManifest,
    parsed: &mut ParsedManifest,
) -> Result<(), ManifestError> {
    let config = raw.config.as_ref().ok_or(ManifestError::MissingConfig)?;
    let (config_media_type, config_digest) = config.validate("config")?;
    if parsed.artifact_type.is_none() {
        parsed.artifact_type = Some(config_media_type);
    }
    parsed.blobs.push(config_digest);
    for (i, layer) in raw.layers.iter().flatten().enumerate() {
        let (media_type, digest) = layer.validate(&format!("layers[{i}]"))?;
        // Foreign layers live elsewhere (their `urls`); clients never push them.
        let foreign = media_type == mt::DOCKER_FOREIGN_LAYER
            || media_type.starts_with(mt::OCI_NONDISTRIBUTABLE_PREFIX);
        if !foreign && !parsed.blobs.contains(&digest) {
            parsed.blobs.push(digest);
        }
    }
    Ok(())
}

fn collect_index_children(
    raw: &RawManifest,
    parsed: &mut ParsedManifest,
) -> Result<(), ManifestError> {
    let manifests = raw
        .manifests
        .as_ref()
        .ok_or(ManifestError::MissingManifests)?;
    for (i, entry) in manifests.iter().enumerate() {
        let (media_type, digest) = entry.validate(&format!("manifests[{i}]"))?;
        // BuildKit's registry cache (`--cache-to type=registry`) is an index
        // whose entries are layers and a cache config: blobs, not manifests.
        // Docker Hub and distribution take it, so any entry whose type is not
        // a manifest's is held to what an image's layers are: present in the
        // repository as a blob, and kept while the index is.
        let entries = if mt::is_manifest(&media_type) {
            &mut parsed.children
        } else {
            &mut parsed.blobs
        };
        if !entries.contains(&digest) {
            entries.push(digest);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn image(media_type: Option<&str>) -> String {
        let mt = media_type
            .map(|m| format!(r#""mediaType":"{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{D2}","size":3}}]}}"#
        )
    }

    #[test]
    fn image_manifest_lists_config_and_layers() {
        let m = parse(
            image(Some(mt::OCI_MANIFEST)).as_bytes(),
            Some(mt::OCI_MANIFEST),
        )
        .unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn content_type_decides_when_body_has_no_media_type() {
        let m = parse(image(None).as_bytes(), Some(mt::DOCKER_MANIFEST)).unwrap();
        assert_eq!(m.media_type, mt::DOCKER_MANIFEST);
    }

    #[test]
    fn header_and_body_must_agree() {
        let err = parse(
            image(Some(mt::OCI_MANIFEST)).as_bytes(),
            Some(mt::DOCKER_MANIFEST),
        );
        assert!(matches!(err, Err(ManifestError::MediaTypeMismatch { .. })));
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(check_depth(nest(MAX_JSON_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            check_depth(nest(MAX_JSON_DEPTH + 1).as_bytes()),
            Err(ManifestError::TooDeep)
        );
        let quoted = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert!(
            check_depth(quoted.as_bytes()).is_ok(),
            "brackets in strings do not count"
        );
        let body = format!(
            r#"{{"schemaVersion":2,"annotations":{{"x":{}}}}}"#,
            nest(200)
        );
        assert_eq!(parse(body.as_bytes(), None), Err(ManifestError::TooDeep));
    }

    #[test]
    fn schema1_is_refused() {
        let body = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert_eq!(parse(body, None), Err(ManifestError::Schema1));
    }

    #[test]
    fn index_lists_children_and_subject() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{D1}","size":9}}],
            "subject":{{"mediaType":"{}","digest":"{D2}","size":9}},"artifactType":"x/y"}}"#,
            mt::OCI_INDEX,
            mt::OCI_MANIFEST,
            mt::OCI_MANIFEST
        );
        let m = parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.children, vec![D1.parse().unwrap()]);
        assert_eq!(m.subject, Some(D2.parse().unwrap()));
        assert_eq!(m.artifact_type.as_deref(), Some("x/y"));
    }

    /// BuildKit's registry cache: an index of layers and a cache config.
    #[test]
    fn index_entries_that_are_not_manifests_are_blobs() {
        const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[
            {{"mediaType":"{}; charset=utf-8","digest":"{D1}","size":9}},
            {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D2}","size":9}},
            {{"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"{D3}","size":9}}]}}"#,
            mt::DOCKER_MANIFEST_LIST,
            mt::DOCKER_MANIFEST,
        );
        let m = parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.children, vec![D1.parse().unwrap()]);
        assert_eq!(m.blobs, vec![D2.parse().unwrap(), D3.parse().unwrap()]);
    }

    #[test]
    fn bad_descriptors_are_refused() {
        let body =
            r#"{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:zz","size":1}}"#;

        assert!(matches!(
            parse(body.as_bytes(), None),
            Err(ManifestError::BadDescriptor { .. })
        ));
        assert!(matches!(
            parse(b"{not json", None),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            parse(br#"{"schemaVersion":2}"#, None),
            Err(ManifestError::MissingConfig)
        ));
    }
}
