//! The OCI error codes with their HTTP statuses, and the one place where
//! errors of the inner layers become HTTP responses.
//!
//! A handler returns an [`ApiError`] (usually by `?` on a registry call);
//! it never builds an error body by hand.

use axum::http::header::{CONTENT_RANGE, RANGE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::oci::{DigestError, NameError};
use crate::registry::RegistryError;
use crate::storage::StorageError;

/// Error codes of the OCI distribution spec (and the few that Docker's
/// registry added and clients know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    TagInvalid,
    PaginationNumberInvalid,
    RangeInvalid,
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::TagInvalid => "TAG_INVALID",
            ErrorCode::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }

    /// The status the spec gives the code; a few uses override it.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => StatusCode::NOT_FOUND,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Denied => StatusCode::FORBIDDEN,
            ErrorCode::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid
            | ErrorCode::TagInvalid
            | ErrorCode::PaginationNumberInvalid => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error response: `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    status: StatusCode,
    message: String,
    detail: Option<serde_json::Value>,
    headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            status: code.status(),
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// A GET or HEAD whose `If-Match` names other content than `current`:
    /// the same 412 as a manifest PUT whose condition fails.
    pub fn precondition_failed(current: &crate::oci::Digest) -> ApiError {
        RegistryError::PreconditionFailed {
            current: Some(current.clone()),
        }
        .into()
    }

    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> ApiError {
        self.detail = Some(detail);
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(detail) = self.detail {
            error["detail"] = detail;
        }
        let mut response = (self.status, Json(json!({ "errors": [error] }))).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

impl From<DigestError> for ApiError {
    fn from(e: DigestError) -> Self {
        ApiError::new(ErrorCode::DigestInvalid, e.to_string())
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        let code = match e {
            NameError::InvalidName(_) | NameError::NameTooLong(_) => ErrorCode::NameInvalid,
            NameError::InvalidTag(_) => ErrorCode::TagInvalid,
            NameError::InvalidDigest(_) => ErrorCode::DigestInvalid,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as R;
        let message = e.to_string();
        match e {
            R::NameUnknown(name) => ApiError::new(ErrorCode::NameUnknown, message)
                .with_detail(json!({ "name": name.as_str() })),
            R::BlobUnknown(digest) => ApiError::new(ErrorCode::BlobUnknown, message)
                .with_detail(json!({ "digest": digest })),
            R::UploadUnknown => ApiError::new(ErrorCode::BlobUploadUnknown, message),
            R::UploadOutOfOrder { expected, .. } => {
                ApiError::new(ErrorCode::BlobUploadInvalid, message)
                    .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .with_header(RANGE, upload_range(expected))
            }
            R::SizeInvalid(_) => ApiError::new(ErrorCode::SizeInvalid, message),
            R::DigestMismatch { expected, actual } => {
                ApiError::new(ErrorCode::DigestInvalid, message)
                    .with_detail(json!({ "expected": expected, "actual": actual }))
            }
            R::ManifestInvalid(_) => ApiError::new(ErrorCode::ManifestInvalid, message),
            R::ManifestTooLarge => ApiError::new(ErrorCode::ManifestInvalid, message)
                .with_status(StatusCode::PAYLOAD_TOO_LARGE),
            R::ManifestBlobUnknown(digest) => {
                ApiError::new(ErrorCode::ManifestBlobUnknown, message)
                    .with_detail(json!({ "digest": digest }))
            }
            R::ManifestChildUnknown(digest) => ApiError::new(ErrorCode::ManifestUnknown, message)
                .with_status(StatusCode::BAD_REQUEST)
                .with_detail(json!({ "digest": digest })),
            R::ManifestUnknown(_) => ApiError::new(ErrorCode::ManifestUnknown, message),
            R::RangeNotSatisfiable { size } => ApiError::new(ErrorCode::RangeInvalid, message)
                .with_header(CONTENT_RANGE, format!("bytes */{size}")),
            // The spec has no code for it; the status says it all.
            R::PreconditionFailed { current } => ApiError::new(ErrorCode::Unknown, message)
                .with_status(StatusCode::PRECONDITION_FAILED)
                .with_detail(json!({ "current": current })),
            R::DeleteDisabled => ApiError::new(ErrorCode::Unsupported, message),
            R::BodyRead(_) => ApiError::new(ErrorCode::BlobUploadInvalid, message),
            R::Storage(StorageError::Full(_)) => {
                tracing::error!(error = %message, "storage is full");
                ApiError::new(ErrorCode::Unknown, "the registry's storage is full")
                    .with_status(StatusCode::INSUFFICIENT_STORAGE)
            }
            R::Storage(_) | R::Metadata(_) | R::Internal(_) => {
                tracing::error!(error = %message, "request failed");
                ApiError::new(ErrorCode::Unknown, "internal error; see the registry's log")
            }
        }
    }
}

/// The `Range` header value of an upload holding `size` bytes. The spec's
/// form is inclusive, so an empty upload reads `0-0`.
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}
