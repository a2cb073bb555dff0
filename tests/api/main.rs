//! Integration tests for `artispace serve`: each test starts the real binary
//! on `127.0.0.1:0` with its own temporary root and speaks HTTP to it the way
//! a registry client does. The contract they check is
//! OCI distribution-spec v1.1 as pinned in the project's HTTP contract.
//!
//! Everything lives in one test binary so the workspace links it once.

mod common;

mod admin;
mod auth;
mod base;
mod blobs;
mod clients;
mod conditional;
mod crash;
mod full_disk;
mod hardening;
mod manifests;
mod push;
mod races;
mod referrers;
mod restart;
mod tags_catalog;
mod tls;
mod uploads;
