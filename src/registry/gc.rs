//! Garbage collection: mark and sweep on the metadata.
//!
//! Safe while `serve` runs on the same root (invariants 2 to 5 of the
//! architecture): the mark phase decides everything in one write
//! transaction and moves doomed blobs to `deleting`; the sweep phase then
//! removes each file only if its row is still `deleting`, under the write
//! lock, so a push that revived the blob in between wins. Sweeping works in
//! small batches so the lock is held briefly and never across the whole
//! store.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{blocking, Registry, RegistryError};
use crate::metadata::sqlite::now_millis;
use crate::metadata::{BlobState, GcClaim, GcPolicy, ManifestRef, MetadataError, MetadataStore};
use crate::oci::Digest;
use crate::storage::StorageError;

/// Blobs swept per write transaction.
const SWEEP_BATCH: usize = 256;

#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Blobs linked more recently than this stay, referenced or not (a
    /// client pushes layers before their manifest).
    pub grace: Duration,
    /// Untagged manifests that no index lists and no live manifest has as
    /// subject are garbage too.
    pub delete_untagged: bool,
    pub dry_run: bool,
}

/// A count of things and the bytes they held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub count: u64,
    pub bytes: u64,
}

impl Removed {
    pub fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// What a collection removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub manifests: Removed,
    /// Links of blobs to repositories that no manifest there uses.
    pub links: u64,
    pub blobs: Removed,
    /// Blob files that no row records (left by a crash).
    pub orphan_files: Removed,
    /// Expired upload sessions and stray upload files.
    pub uploads: Removed,
    /// The manifests removed, for the record.
    pub removed_manifests: Vec<ManifestRef>,
    /// Repositories left holding nothing (no manifest, no blob, no upload),
    /// removed: the catalog no longer lists them.
    pub repositories: u64,
    /// Their names, for the record.
    pub removed_repositories: Vec<String>,
}

impl Registry {
    /// Claims garbage collection of the store, across processes, or `None`
    /// at once while another run holds it.
    pub async fn try_claim_gc(&self) -> Result<Option<GcClaim>, RegistryError> {
        self.metadata(|m| m.claim_gc(false)).await
    }

    /// Claims garbage collection, waiting for a run that holds it to end.
    pub async fn claim_gc(&self) -> Result<GcClaim, RegistryError> {
        self.metadata(|m| m.claim_gc(true)).await?.ok_or_else(|| {
            RegistryError::Internal("waiting for the gc claim ended without it".into())
        })
    }

    /// Collects garbage; `_claim` keeps other runs out meanwhile, so the
    /// `deleting` rows this run finds and leaves are its own or an
    /// interrupted run's.
    pub async fn collect_garbage(
        &self,
        options: &GcOptions,
        _claim: &GcClaim,
    ) -> Result<GcReport, RegistryError> {
        let grace_ms = i64::try_from(options.grace.as_millis()).unwrap_or(i64::MAX);
        let policy = GcPolicy {
            linked_before: now_millis().saturating_sub(grace_ms),
            delete_untagged: options.delete_untagged,
            dry_run: options.dry_run,
        };
        let marks = self.metadata(move |m| m.mark_garbage(&policy)).await?;
        let mut report = GcReport {
            dry_run: options.dry_run,
            links: marks.links_removed,
            ..GcReport::default()
        };
        for manifest in &marks.manifests {
            report.manifests.add(manifest.size);
        }
        report.removed_manifests = marks.manifests;
        report.repositories = marks.repositories.len() as u64;
        report.removed_repositories = marks.repositories;

        if options.dry_run {
            for blob in &marks.blobs {
                report.blobs.add(blob.size);
            }
            // Rows left `deleting` by an interrupted run would go too.
            let rows = self.metadata(|m| m.blobs()).await?;
            for row in rows.iter().filter(|r| r.state == BlobState::Deleting) {
                report.blobs.add(row.size);
            }
        } else {
            report.blobs = self.sweep_deleting_blobs().await?;
        }
        report.orphan_files = self
            .remove_orphan_blob_files(options.grace, options.dry_run)
            .await?;
        report.uploads = self.sweep_uploads(options.dry_run).await?;
        Ok(report)
    }

    /// Removes every blob in state `deleting` (this run's and any left by
    /// an interrupted one), re-checking each under the write lock.
    pub(super) async fn sweep_deleting_blobs(&self) -> Result<Removed, RegistryError> {
        let rows = self.metadata(|m| m.blobs()).await?;
        let doomed: Vec<(Digest, u64)> = rows
            .into_iter()
            .filter(|r| r.state == BlobState::Deleting)
            .map(|r| (r.digest, r.size))
            .collect();
        self.remove_in_batches(doomed, |metadata, digests, remove| {
            metadata.sweep_blobs(digests, remove)
        })
        .await
    }

    /// Removes blob files that no row records and that are older than
    /// `grace` (younger ones may belong to a push being committed).
    pub(super) async fn remove_orphan_blob_files(
        &self,
        grace: Duration,
        dry_run: bool,
    ) -> Result<Removed, RegistryError> {
        let orphans = self.orphan_blob_files(grace).await?;
        if dry_run {
            let mut removed = Removed::default();
            orphans.iter().for_each(|(_, size)| removed.add(*size));
            return Ok(removed);
        }
        self.remove_in_batches(orphans, |metadata, digests, remove| {
            metadata.remove_unrecorded_files(digests, remove)
        })
        .await
    }

    /// Removes blob files in batches of [`SWEEP_BATCH`], each one write
    /// transaction of `sweep`, which decides under the lock which of the
    /// batch may go and calls `remove` for those. Counts what went.
    async fn remove_in_batches<F>(
        &self,
        candidates: Vec<(Digest, u64)>,
        sweep: F,
    ) -> Result<Removed, RegistryError>
    where
        F: Fn(
                &dyn MetadataStore,
                &[Digest],
                &mut dyn FnMut(&Digest) -> Result<(), StorageError>,
            ) -> Result<usize, MetadataError>
            + Send
            + 'static,
    {
        let metadata = Arc::clone(&self.metadata);
        let blobs = Arc::clone(&self.blobs);
        blocking(move || {
            let mut removed = Removed::default();
            for batch in candidates.chunks(SWEEP_BATCH) {
                let digests: Vec<Digest> = batch.iter().map(|(d, _)| d.clone()).collect();
                let mut gone = HashSet::new();
                sweep(metadata.as_ref(), &digests, &mut |digest| {
                    blobs.remove_blob(digest)?;
                    gone.insert(digest.clone());
                    Ok(())
                })?;
                batch
                    .iter()
                    .filter(|(d, _)| gone.contains(d))
                    .for_each(|(_, size)| removed.add(*size));
            }
            Ok(removed)
        })
        .await
    }

    /// Blob files with no row, older than `min_age`.
    pub(super) async fn orphan_blob_files(
        &self,
        min_age: Duration,
    ) -> Result<Vec<(Digest, u64)>, RegistryError> {
        let metadata = Arc::clone(&self.metadata);
        let blobs = Arc::clone(&self.blobs);
        blocking(move || {
            // Files first: a file renamed in after this listing is not judged.
            let files = blobs.list_blobs()?;
            let recorded: HashSet<Digest> =
                metadata.blobs()?.into_iter().map(|r| r.digest).collect();
            let now = SystemTime::now();
            Ok(files
                .into_iter()
                .filter(|f| !recorded.contains(&f.digest))
                .filter(|f| now.duration_since(f.modified).unwrap_or(Duration::ZERO) >= min_age)
                .map(|f| (f.digest, f.size))
                .collect())
        })
        .await
    }
}
