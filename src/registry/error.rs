//! The registry layer's error: every way a registry operation can fail, in
//! the registry's own words. The HTTP edge maps each to an OCI error code in
//! one place (`api::error`); the CLI maps them to messages and exit codes.

use crate::metadata::MetadataError;
use crate::oci::manifest::MAX_MANIFEST_BYTES;
use crate::oci::{Digest, ManifestError, RepoName};
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("repository {0} is not known to the registry")]
    NameUnknown(RepoName),
    #[error("blob {0} is not known in this repository")]
    BlobUnknown(Digest),
    #[error("upload session is not known (it may have finished, been cancelled or expired)")]
    UploadUnknown,
    #[error("chunk starts at byte {got}, but the upload has received {expected} bytes")]
    UploadOutOfOrder { expected: u64, got: u64 },
    #[error("{0}")]
    SizeInvalid(String),
    #[error("content has digest {actual}, not the {expected} given")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error(transparent)]
    ManifestInvalid(#[from] ManifestError),
    #[error("manifest is larger than the {MAX_MANIFEST_BYTES} bytes the registry accepts")]
    ManifestTooLarge,
    #[error("blob {0} referenced by the manifest is not in this repository")]
    ManifestBlobUnknown(Digest),
    #[error("manifest {0} referenced by the index is not in this repository")]
    ManifestChildUnknown(Digest),
    #[error("manifest {0} is not known in this repository")]
    ManifestUnknown(String),
    #[error("requested range is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("the condition of the request does not hold for what the reference names now")]
    PreconditionFailed { current: Option<Digest> },
    #[error("deletion is disabled on this registry")]
    DeleteDisabled,
    #[error("request body could not be read: {0}")]
    BodyRead(String),
    #[error(transparent)]
    Storage(StorageError),
    #[error("{0}")]
    Metadata(MetadataError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<MetadataError> for RegistryError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::MissingBlob(d) => RegistryError::ManifestBlobUnknown(d),
            MetadataError::MissingChild(d) => RegistryError::ManifestChildUnknown(d),
            MetadataError::Storage(e) => RegistryError::Storage(e),
            MetadataError::ConditionFailed { current } => {
                RegistryError::PreconditionFailed { current }
            }
            other => RegistryError::Metadata(other),
        }
    }
}

impl From<StorageError> for RegistryError {
    fn from(e: StorageError) -> Self {
        RegistryError::Storage(e)
    }
}
