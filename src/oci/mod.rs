//! The OCI vocabulary: digests, repository names, tags, references, media
//! types and manifest parsing.
//!
//! Everything a request names is parsed here, once, at the edge, into a
//! validated type. Inner layers only ever see these types, never raw strings
//! from a request; that is what lets the storage layer build file paths from
//! a `Digest` without further checks.

pub mod digest;
pub mod manifest;
pub mod media_types;
pub mod name;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use manifest::{Descriptor, ManifestError, ManifestKind, ParsedManifest};
pub use name::{NameError, Reference, RepoName, Tag};
