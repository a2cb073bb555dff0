//! `--platform os/arch[/variant]`: which image of an index to push.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use super::{is_index, parse_body, Catalog, Manifest, SourceError};

/// `os/arch[/variant]`, as in `--platform linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// Whether an image for `self` is what `wanted` asks for (a variant not
    /// asked for matches any).
    fn satisfies(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && (wanted.variant.is_none() || self.variant == wanted.variant)
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!("{s:?} is not os/arch or os/arch/variant"));
        }
        Ok(Platform {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// Narrows `root` to the image for `wanted`.
pub(super) fn pick_platform(
    catalog: &Catalog,
    root: Manifest,
    wanted: &Platform,
) -> Result<Manifest, SourceError> {
    if !is_index(&root.media_type) {
        let platform = catalog.image_platform(&root)?;
        return match platform {
            Some(p) if p.satisfies(wanted) => Ok(root),
            other => Err(SourceError::NoPlatform {
                wanted: wanted.clone(),
                available: other.map_or("an image of unknown platform".into(), |p| p.to_string()),
            }),
        };
    }
    let body = parse_body(&root)?;
    let children = body.manifests.unwrap_or_default();
    let mut available = Vec::new();
    for child in children.iter().filter(|c| c.names_a_manifest()) {
        let platform = match &child.platform {
            Some(p) => Some(p.clone()),
            None => {
                let manifest = catalog.manifest(child)?;
                if is_index(&manifest.media_type) {
                    None
                } else {
                    catalog.image_platform(&manifest)?
                }
            }
        };
        match platform {
            Some(p) if p.satisfies(wanted) => return catalog.manifest(child),
            Some(p) => available.push(p.to_string()),
            None => {}
        }
    }
    Err(SourceError::NoPlatform {
        wanted: wanted.clone(),
        available: if available.is_empty() {
            "no platform-specific images".into()
        } else {
            available.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let wanted: Platform = "linux/arm64".parse().unwrap();
        let v8: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(v8.satisfies(&wanted));
        assert!(!wanted.satisfies(&v8));
        assert_eq!(v8.to_string(), "linux/arm64/v8");
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad} was accepted");
        }
    }
}
