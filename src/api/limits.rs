//! Request limits at the HTTP edge: URL length, and concurrent uploads per
//! client address. (Header size and timeouts are per connection, in
//! `transport`; the 4 MiB manifest limit is in `manifests`.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::Request;
use axum::http::header::RETRY_AFTER;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorCode};

/// Longest request target (path and query) accepted.
pub const MAX_URL_BYTES: usize = 8 * 1024;

/// Refuses request targets longer than [`MAX_URL_BYTES`] with 414.
pub async fn refuse_long_urls(request: Request, next: Next) -> Response {
    let length = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if length > MAX_URL_BYTES {
        return ApiError::new(
            ErrorCode::Unsupported,
            format!("the request URL is {length} bytes long; at most {MAX_URL_BYTES} are accepted"),
        )
        .with_status(StatusCode::URI_TOO_LONG)
        .into_response();
    }
    next.run(request).await
}

/// Uploads in progress per client address, bounded.
pub struct UploadSlots {
    max: usize,
    taken: Mutex<HashMap<IpAddr, usize>>,
}

/// One upload in progress; its slot frees when dropped.
pub struct UploadSlot {
    slots: Arc<UploadSlots>,
    client: IpAddr,
}

impl UploadSlots {
    pub fn new(max: usize) -> Arc<UploadSlots> {
        Arc::new(UploadSlots {
            max: max.max(1),
            taken: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `client`, or refuses with 429 when it has `max`
    /// uploads running already.
    pub fn take(self: &Arc<Self>, client: IpAddr) -> Result<UploadSlot, ApiError> {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let count = taken.entry(client).or_insert(0);
        if *count >= self.max {
            return Err(ApiError::new(
                ErrorCode::TooManyRequests,
                format!(
                    "this client has {} uploads running, the most allowed; retry when one ends",
                    self.max
                ),
            )
            .with_header(RETRY_AFTER, "1"));
        }
        *count += 1;
        Ok(UploadSlot {
            slots: Arc::clone(self),
            client,
        })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut taken = self
            .slots
            .taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = taken.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                taken.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_client_and_freed_on_drop() {
        let slots = UploadSlots::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert_eq!(
            slots.take(a).err().unwrap().code(),
            ErrorCode::TooManyRequests
        );
        let _other = slots.take(b).unwrap();
        drop(first);
        assert!(slots.take(a).is_ok());
    }
}
