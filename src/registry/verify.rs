//! Verification: re-hash every blob and check every record against what is
//! stored, reporting what each problem breaks; optionally repair what is
//! safe to repair.

use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::{blocking, Registry, RegistryError};
use crate::metadata::{BlobRow, BlobState, DanglingReference, ManifestRef};
use crate::oci::{Digest, Hasher};
use crate::storage::BlobStore;

const HASH_BUFFER: usize = 1 << 20;
const MANIFEST_PAGE: usize = 500;
/// Files younger than this may belong to a push being committed right now.
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(60);

/// Reports progress of long work; the CLI draws it as a bar.
pub trait Progress: Send + Sync {
    fn start(&self, total_bytes: u64);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

/// Progress nobody watches.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Threads hashing blobs.
    pub jobs: usize,
    pub repair: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A blob row says present but the file is gone.
    BlobMissing,
    /// The file's size differs from the row's.
    BlobSizeMismatch,
    /// The file's bytes do not hash to its digest.
    BlobCorrupt,
    /// A blob already marked corrupt, waiting for a push to replace it.
    BlobAwaitingRepush,
    /// A blob file that no row records.
    OrphanFile,
    /// A row left `deleting` by an interrupted garbage collection.
    InterruptedDeletion,
    /// A manifest references a blob that is not present.
    ManifestBlobMissing,
    /// An index references a child manifest that is not in its repository.
    ManifestChildMissing,
    /// A manifest's stored bytes do not hash to its digest.
    ManifestCorrupt,
    /// A tag points at a manifest that does not exist.
    TagWithoutManifest,
    /// SQLite's own integrity or foreign key checks failed.
    DatabaseIntegrity,
}

impl ProblemKind {
    /// The name used in output and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::BlobMissing => "blob_missing",
            ProblemKind::BlobSizeMismatch => "blob_size_mismatch",
            ProblemKind::BlobCorrupt => "blob_corrupt",
            ProblemKind::BlobAwaitingRepush => "blob_awaiting_repush",
            ProblemKind::OrphanFile => "orphan_file",
            ProblemKind::InterruptedDeletion => "interrupted_deletion",
            ProblemKind::ManifestBlobMissing => "manifest_blob_missing",
            ProblemKind::ManifestChildMissing => "manifest_child_missing",
            ProblemKind::ManifestCorrupt => "manifest_corrupt",
            ProblemKind::TagWithoutManifest => "tag_without_manifest",
            ProblemKind::DatabaseIntegrity => "database_integrity",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The blob, manifest or tag concerned.
    pub subject: String,
    pub detail: String,
    /// The manifests (with repositories and tags) this problem breaks.
    pub affects: Vec<ManifestRef>,
    pub repaired: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    pub blobs: u64,
    pub bytes: u64,
    pub manifests: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub clean: bool,
    pub repair: bool,
    /// A garbage collection held its claim: the blobs it is removing were
    /// left to it rather than reported as an interrupted run's.
    pub gc_running: bool,
    pub checked: Checked,
    pub problems: Vec<Problem>,
}

/// What hashing one blob found.
enum BlobFinding {
    Missing,
    SizeMismatch(u64),
    Corrupt(Digest),
    Unreadable(String),
}

impl Registry {
    pub async fn verify(
        &self,
        options: &VerifyOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<VerifyReport, RegistryError> {
        let rows = self.metadata(|m| m.blobs()).await?;
        let mut report = VerifyReport {
            repair: options.repair,
            ..VerifyReport::default()
        };
        let to_hash: Vec<BlobRow> = rows
            .iter()
            .filter(|r| r.state == BlobState::Present)
            .cloned()
            .collect();
        report.checked.blobs = to_hash.len() as u64;
        report.checked.bytes = to_hash.iter().map(|r| r.size).sum();

        let blobs = Arc::clone(&self.blobs);
        let jobs = options.jobs.max(1);
        let findings =
            blocking(move || Ok(hash_all(blobs.as_ref(), &to_hash, jobs, progress.as_ref())))
                .await?;

        let mut broken_blobs = HashSet::new();
        for (row, finding) in findings {
            let (kind, detail) = match finding {
                BlobFinding::Missing => {
                    (ProblemKind::BlobMissing, "the file is missing".to_owned())
                }
                BlobFinding::SizeMismatch(actual) => (
                    ProblemKind::BlobSizeMismatch,
                    format!("the file has {actual} bytes; {} were recorded", row.size),
                ),
                BlobFinding::Corrupt(actual) => (
                    ProblemKind::BlobCorrupt,
                    format!("the file hashes to {actual}"),
                ),
                BlobFinding::Unreadable(e) => (
                    ProblemKind::BlobMissing,
                    format!("the file cannot be read: {e}"),
                ),
            };
            broken_blobs.insert(row.digest.clone());
            report
                .problems
                .push(self.blob_problem(kind, &row.digest, detail).await?);
        }
        for row in rows.iter().filter(|r| r.state == BlobState::Corrupt) {
            broken_blobs.insert(row.digest.clone());
            let detail =
                "marked corrupt by an earlier repair; the next push of this digest replaces it"
                    .to_owned();
            report.problems.push(
                self.blob_problem(ProblemKind::BlobAwaitingRepush, &row.digest, detail)
                    .await?,
            );
        }
        let interrupted = self.interrupted_deletions(&rows).await?;
        report.gc_running = interrupted.is_none();
        for digest in interrupted.unwrap_or_default() {
            report.problems.push(Problem {
                kind: ProblemKind::InterruptedDeletion,
                subject: digest.to_string(),
                detail: "left in state deleting by an interrupted garbage collection".into(),
                affects: Vec::new(),
                repaired: false,
            });
        }
        for (digest, size) in self.orphan_blob_files(ORPHAN_MIN_AGE).await? {
            report.problems.push(Problem {
                kind: ProblemKind::OrphanFile,
                subject: digest.to_string(),
                detail: format!("a blob file of {size} bytes that no record knows"),
                affects: Vec::new(),
                repaired: false,
            });
        }
        self.check_manifests(&mut report, &broken_blobs).await?;
        for problem in self.metadata(|m| m.integrity_problems()).await? {
            report.problems.push(Problem {
                kind: ProblemKind::DatabaseIntegrity,
                subject: "database".into(),
                detail: problem,
                affects: Vec::new(),
                repaired: false,
            });
        }
        if options.repair {
            self.repair(&mut report).await?;
        }
        report.clean = report.problems.is_empty();
        Ok(report)
    }

    /// The blobs of `rows` left `deleting` by a garbage collection that
    /// ended before removing them, or `None` while a collection runs (its
    /// `deleting` rows are its work in progress). The rows are read again
    /// after asking, so a run that started or ended meanwhile is not taken
    /// for an interrupted one.
    async fn interrupted_deletions(
        &self,
        rows: &[BlobRow],
    ) -> Result<Option<Vec<Digest>>, RegistryError> {
        if self.metadata(|m| m.gc_claimed()).await? {
            return Ok(None);
        }
        let deleting: HashSet<&Digest> = rows
            .iter()
            .filter(|r| r.state == BlobState::Deleting)
            .map(|r| &r.digest)
            .collect();
        if deleting.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let still = self.metadata(|m| m.blobs()).await?;
        Ok(Some(
            still
                .into_iter()
                .filter(|r| r.state == BlobState::Deleting && deleting.contains(&r.digest))
                .map(|r| r.digest)
                .collect(),
        ))
    }

    async fn blob_problem(
        &self,
        kind: ProblemKind,
        digest: &Digest,
        detail: String,
    ) -> Result<Problem, RegistryError> {
        let d = digest.clone();
        let affects = self.metadata(move |m| m.blob_users(&d)).await?;
        Ok(Problem {
            kind,
            subject: digest.to_string(),
            detail,
            affects,
            repaired: false,
        })
    }

    /// Re-hashes every manifest and follows every recorded reference.
    async fn check_manifests(
        &self,
        report: &mut VerifyReport,
        broken_blobs: &HashSet<Digest>,
    ) -> Result<(), RegistryError> {
        let mut after = 0;
        loop {
            let page = self
                .metadata(move |m| m.manifests_after(after, MANIFEST_PAGE))
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for manifest in page {
                report.checked.manifests += 1;
                let actual = Digest::of(manifest.digest.algorithm(), &manifest.content);
                if actual != manifest.digest {
                    report.problems.push(Problem {
                        kind: ProblemKind::ManifestCorrupt,
                        subject: format!("{}@{}", manifest.repository, manifest.digest),
                        detail: format!("the stored bytes hash to {actual}"),
                        affects: vec![ManifestRef {
                            repository: manifest.repository,
                            digest: manifest.digest,
                            size: manifest.content.len() as u64,
                            tags: manifest.tags,
                        }],
                        repaired: false,
                    });
                }
            }
        }
        for dangling in self.metadata(|m| m.dangling_references()).await? {
            let problem = match dangling {
                // Already reported, with everything it breaks, as a blob problem.
                DanglingReference::MissingBlob { blob, .. } if broken_blobs.contains(&blob) => {
                    continue
                }
                DanglingReference::MissingBlob { manifest, blob } => Problem {
                    kind: ProblemKind::ManifestBlobMissing,
                    subject: format!("{}@{}", manifest.repository, manifest.digest),
                    detail: format!("references blob {blob}, which is not present"),
                    affects: vec![manifest],
                    repaired: false,
                },
                DanglingReference::MissingChild { manifest, child } => Problem {
                    kind: ProblemKind::ManifestChildMissing,
                    subject: format!("{}@{}", manifest.repository, manifest.digest),
                    detail: format!("lists manifest {child}, which is not in the repository"),
                    affects: vec![manifest],
                    repaired: false,
                },
                DanglingReference::TagWithoutManifest { repository, tag } => Problem {
                    kind: ProblemKind::TagWithoutManifest,
                    subject: format!("{repository}:{tag}"),
                    detail: "the tag's manifest does not exist".into(),
                    affects: Vec::new(),
                    repaired: false,
                },
            };
            report.problems.push(problem);
        }
        Ok(())
    }

    /// Does what is safe: forgets broken blob copies (so a push replaces
    /// them), finishes interrupted deletions, removes orphan files and
    /// dangling tags. Manifests and database damage are left for a person.
    async fn repair(&self, report: &mut VerifyReport) -> Result<(), RegistryError> {
        let mut interrupted = false;
        let mut orphans = false;
        for problem in &mut report.problems {
            match problem.kind {
                ProblemKind::BlobMissing
                | ProblemKind::BlobSizeMismatch
                | ProblemKind::BlobCorrupt => {
                    let digest: Digest = problem
                        .subject
                        .parse()
                        .map_err(|e| RegistryError::Internal(format!("{e}")))?;
                    self.metadata(move |m| m.set_blob_state(&digest, BlobState::Corrupt))
                        .await?;
                    problem.repaired = true;
                }
                ProblemKind::InterruptedDeletion => interrupted = true,
                ProblemKind::OrphanFile => orphans = true,
                _ => {}
            }
        }
        // Finishing an interrupted collection is a collection: it needs the
        // claim, and one that started since will finish the job itself.
        if interrupted {
            if let Some(_claim) = self.try_claim_gc().await? {
                self.sweep_deleting_blobs().await?;
                mark_repaired(report, ProblemKind::InterruptedDeletion);
            }
        }
        if orphans {
            self.remove_orphan_blob_files(ORPHAN_MIN_AGE, false).await?;
            mark_repaired(report, ProblemKind::OrphanFile);
        }
        if report
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::TagWithoutManifest)
        {
            self.metadata(|m| m.remove_dangling_tags()).await?;
            mark_repaired(report, ProblemKind::TagWithoutManifest);
        }
        Ok(())
    }
}

fn mark_repaired(report: &mut VerifyReport, kind: ProblemKind) {
    report
        .problems
        .iter_mut()
        .filter(|p| p.kind == kind)
        .for_each(|p| p.repaired = true);
}

/// Hashes `rows` on `jobs` threads; returns the rows whose file is wrong.
fn hash_all(
    blobs: &dyn BlobStore,
    rows: &[BlobRow],
    jobs: usize,
    progress: &dyn Progress,
) -> Vec<(BlobRow, BlobFinding)> {
    progress.start(rows.iter().map(|r| r.size).sum());
    let next = AtomicUsize::new(0);
    let findings = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                let mut buffer = vec![0u8; HASH_BUFFER];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(row) = rows.get(i) else { break };
                    if let Some(finding) = check_blob(blobs, row, &mut buffer, progress) {
                        findings
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((row.clone(), finding));
                    }
                }
            });
        }
    });
    progress.finish();
    let mut findings = findings
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    findings.sort_by(|a, b| a.0.digest.cmp(&b.0.digest));
    findings
}

fn check_blob(
    blobs: &dyn BlobStore,
    row: &BlobRow,
    buffer: &mut [u8],
    progress: &dyn Progress,
) -> Option<BlobFinding> {
    let mut reader = match blobs.open_blob(&row.digest) {
        Ok(Some(reader)) => reader,
        Ok(None) => return Some(BlobFinding::Missing),
        Err(e) => return Some(BlobFinding::Unreadable(e.to_string())),
    };
    let len = reader.size();
    if len != row.size {
        progress.advance(row.size);
        return Some(BlobFinding::SizeMismatch(len));
    }
    let mut hasher = Hasher::new(row.digest.algorithm());
    loop {
        match reader.read(buffer) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buffer[..n]);
                progress.advance(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Some(BlobFinding::Unreadable(e.to_string())),
        }
    }
    let actual = hasher.finish();
    (actual != row.digest).then_some(BlobFinding::Corrupt(actual))
}
