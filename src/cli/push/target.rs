//! Where `push` copies to: the local store (`repo:tag`) or a remote registry
//! (`http://host:port/repo:tag`), behind one small trait so the
//! orchestration is the same for both.

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use indicatif::ProgressBar;

use super::source::{Blob, Manifest};
use super::PushError;
use crate::oci::{Digest, Reference, RepoName};

/// A registry that blobs and manifests are pushed to.
pub trait Target: Sync {
    /// Whether the repository already holds `blob`.
    fn has_blob(&self, blob: &Blob) -> impl Future<Output = Result<bool, PushError>> + Send;

    /// Links `blob` from another repository of the same registry, if one
    /// is known to hold it.
    fn mount_blob(&self, blob: &Blob) -> impl Future<Output = Result<bool, PushError>> + Send;

    /// Copies `blob` from its source, counting bytes on `progress`.
    fn upload_blob(
        &self,
        blob: &Blob,
        progress: &ProgressBar,
    ) -> impl Future<Output = Result<(), PushError>> + Send;

    /// The digest `reference` points to now, if anything.
    fn manifest_digest(
        &self,
        reference: &Reference,
    ) -> impl Future<Output = Result<Option<Digest>, PushError>> + Send;

    /// Puts `manifest` under `reference` (a tag, or its own digest).
    fn put_manifest(
        &self,
        reference: &Reference,
        manifest: &Manifest,
    ) -> impl Future<Output = Result<(), PushError>> + Send;
}

/// A parsed TARGET argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    /// `http://host:port` of a remote registry; `None` for the local store.
    pub registry: Option<reqwest::Url>,
    pub repo: RepoName,
    pub reference: Reference,
}

impl FromStr for TargetRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (registry, name) = match s.split_once("://") {
            Some((scheme, rest)) => {
                if scheme != "http" && scheme != "https" {
                    return Err(format!(
                        "{s}: only http:// and https:// registries are supported"
                    ));
                }
                let (host, name) = rest
                    .split_once('/')
                    .ok_or_else(|| format!("{s}: expected {scheme}://HOST[:PORT]/REPO:TAG"))?;
                let url = reqwest::Url::parse(&format!("{scheme}://{host}/"))
                    .map_err(|e| format!("{s}: bad registry address {host:?}: {e}"))?;
                (Some(url), name)
            }
            None => (None, s),
        };
        let (repo, reference) = split_reference(name).ok_or_else(|| {
            format!("{s}: the target needs a tag or a digest (REPO:TAG or REPO@sha256:…)")
        })?;
        let repo: RepoName = repo.parse().map_err(|e| {
            let hint = if registry.is_none() && repo.contains(':') {
                " (for a remote registry write http://HOST:PORT/REPO:TAG)"
            } else {
                ""
            };
            format!("{s}: {e}{hint}")
        })?;
        let reference: Reference = reference.parse().map_err(|e| format!("{s}: {e}"))?;
        Ok(TargetRef {
            registry,
            repo,
            reference,
        })
    }
}

/// `repo:tag` or `repo@digest` → (repo, tag or digest).
fn split_reference(name: &str) -> Option<(&str, &str)> {
    if let Some((repo, digest)) = name.split_once('@') {
        return Some((repo, digest));
    }
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let colon = name[slash..].rfind(':')? + slash;
    Some((&name[..colon], &name[colon + 1..]))
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(url) = &self.registry {
            write!(f, "{}", url.as_str().trim_end_matches('/'))?;
            f.write_str("/")?;
        }
        match &self.reference {
            Reference::Tag(tag) => write!(f, "{}:{tag}", self.repo),
            Reference::Digest(digest) => write!(f, "{}@{digest}", self.repo),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn local_targets_name_a_repository_and_a_reference() {
        let t: TargetRef = "john/busybox:0.1".parse().unwrap();
        assert_eq!(t.registry, None);
        assert_eq!(t.repo.as_str(), "john/busybox");
        assert_eq!(t.reference.to_string(), "0.1");
        let t: TargetRef = format!("a/b@{DIGEST}").parse().unwrap();
        assert_eq!(t.reference, Reference::Digest(DIGEST.parse().unwrap()));
        assert_eq!(t.to_string(), format!("a/b@{DIGEST}"));
    }

    #[test]
    fn remote_targets_carry_the_registry() {
        let t: TargetRef = "http://127.0.0.1:5000/john/busybox:0.1".parse().unwrap();
        assert_eq!(
            t.registry.as_ref().map(|u| u.as_str()),
            Some("http://127.0.0.1:5000/")
        );
        assert_eq!(t.repo.as_str(), "john/busybox");
        assert_eq!(t.to_string(), "http://127.0.0.1:5000/john/busybox:0.1");
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        for bad in [
            "busybox",
            "Busybox:1",
            "ftp://host/a:b",
            "http://host",
            "127.0.0.1:5000/a:b",
            "a:b:c",
            "a@sha256:zz",
        ] {
            assert!(bad.parse::<TargetRef>().is_err(), "{bad} was accepted");
        }
        let err = "127.0.0.1:5000/a:b".parse::<TargetRef>().unwrap_err();
        assert!(err.contains("http://"), "{err}");
    }
}
