//! The request log: one line per request, written when its response body
//! has been handed to the connection, so that a blob download is logged
//! with the time it took and the bytes that actually went out, and one cut
//! short by the client says so.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// What is known of a request when its response starts.
pub struct RequestLine {
    pub method: Method,
    pub path: String,
    pub status: StatusCode,
    pub bytes_in: u64,
    /// The body's announced length (its exact size hint, else its
    /// `Content-Length`): the bytes that make it complete.
    pub bytes_announced: u64,
    pub started: Instant,
}

/// Whether request lines are wanted at all: when they are not, responses
/// go out unwrapped.
pub fn enabled() -> bool {
    tracing::enabled!(tracing::Level::INFO)
}

impl RequestLine {
    /// `body` as it goes out, logging this line once it has.
    pub fn log_when_sent(self, body: Body) -> Body {
        Body::new(LoggedBody {
            inner: body,
            line: Some(self),
            sent: 0,
        })
    }

    fn emit(self, bytes_out: u64, complete: bool) {
        tracing::info!(
            method = %self.method,
            path = %self.path,
            status = self.status.as_u16(),
            bytes_in = self.bytes_in,
            bytes_out,
            complete,
            duration_ms = milliseconds(self.started.elapsed()),
            "request"
        );
    }
}

/// A duration in milliseconds to the microsecond: `1.043`, where the float
/// of the whole duration printed `1.0425849999999999`.
fn milliseconds(duration: std::time::Duration) -> f64 {
    // Exact below 2^53 µs (285 years); dividing an integer by 1000 gives
    // the float nearest to the decimal, which prints with at most three
    // decimals.
    duration.as_micros() as f64 / 1000.0
}

struct LoggedBody {
    inner: Body,
    /// Taken when the line is written.
    line: Option<RequestLine>,
    sent: u64,
}

impl LoggedBody {
    fn finish(&mut self, complete: bool) {
        if let Some(line) = self.line.take() {
            line.emit(self.sent, complete);
        }
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    /// The connection is done with the body: sent whole (hyper stops
    /// polling once the announced length went out, and never polls an empty
    /// body), or abandoned when the client went away.
    fn drop(&mut self) {
        let announced = self.line.as_ref().map(|l| l.bytes_announced);
        let complete = self.inner.is_end_stream() || announced == Some(self.sent);
        self.finish(complete);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::milliseconds;

    #[test]
    fn durations_print_in_milliseconds_to_the_microsecond() {
        let printed = |nanos| milliseconds(Duration::from_nanos(nanos)).to_string();
        assert_eq!(printed(1_042_584_999), "1042.584");
        assert_eq!(printed(1_042_585), "1.042");
        assert_eq!(printed(999), "0");
        assert_eq!(printed(7_000_000), "7");
        assert_eq!(printed(123_456_789_012_345), "123456789.012");
    }
}
