//! The test harness: a real `artispace serve` process with its own temporary
//! root, and helpers that speak the registry API the way a client does.
//!
//! Every test starts its own `TestServer`, so tests share nothing and run in
//! parallel. The server is killed when the `TestServer` is dropped; `stop()`
//! is the graceful path and asserts a clean exit.
//!
//! - `server`: starting, stopping and restarting the process;
//! - `client`: registry operations on a `TestServer` (push a blob, a manifest…);
//! - `raw_http`: a socket-level client for answers sent before the body is read;
//! - `content`: media types, digests, pseudo-random data, manifests as JSON;
//! - `responses`: reading headers and asserting OCI error bodies.

mod client;
mod content;
mod raw_http;
mod responses;
mod server;

pub use content::*;
pub use responses::*;
pub use server::{ServerConfig, TestServer};
