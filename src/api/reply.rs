//! A small builder for success responses, so handlers read as the list of
//! headers the spec asks for.

use std::fmt::Display;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
pub const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
pub const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
pub const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

pub struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Body,
}

impl Reply {
    pub fn new(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
            body: Body::empty(),
        }
    }

    /// Adds a header. Values come from validated types (names, digests,
    /// ids, numbers), which are always valid header text.
    pub fn header(mut self, name: HeaderName, value: impl Display) -> Reply {
        match HeaderValue::from_str(&value.to_string()) {
            Ok(value) => {
                self.headers.insert(name, value);
            }
            Err(_) => {
                tracing::error!(header = %name, "header value is not valid header text; left out")
            }
        }
        self
    }

    pub fn body(mut self, body: impl Into<Body>) -> Reply {
        self.body = body.into();
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        (self.status, self.headers, self.body).into_response()
    }
}
