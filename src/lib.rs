//! ArtiSpace: an OCI Distribution v1.1 / Docker Registry V2 artifact registry.
//!
//! Layers, from the outside in (each may call only the ones below it):
//! - [`api`]: HTTP handlers and the OCI error JSON (`artispace serve`);
//!   [`cli`]: the command line;
//! - [`registry`]: the rules of a registry, shared by both front ends;
//!   [`access`]: who callers are and what they may do, shared likewise;
//! - [`metadata`] (what exists; SQLite) and [`storage`] (blob bytes; local
//!   filesystem), each behind a trait;
//! - [`oci`]: validated names, digests, references and manifest parsing,
//!   used by every layer; [`layout`]: every path of the store on disk.

pub mod access;
pub mod api;
pub mod cli;
#[doc(hidden)]
pub mod fuzzing;
pub mod layout;
pub mod metadata;
pub mod oci;
pub mod registry;
pub mod storage;
