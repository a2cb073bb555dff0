//! What `push` reports: the `--json` document (its shape is documented in
//! the README and kept stable) and the table people read.

use serde::Serialize;

use super::super::output::{human_bytes, Output};
use crate::oci::Digest;

/// What happened to one blob or manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Copied from the source.
    Pushed,
    /// Already there.
    Skipped,
    /// Linked from another repository of the same registry.
    Mounted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pushed => "pushed",
            Status::Skipped => "skipped",
            Status::Mounted => "mounted",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub status: Status,
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub blobs_pushed: usize,
    pub blobs_skipped: usize,
    pub blobs_mounted: usize,
    pub bytes_pushed: u64,
    pub bytes_skipped: u64,
    pub bytes_mounted: u64,
    pub manifests_pushed: usize,
    pub manifests_skipped: usize,
}

/// The result of a push; `--json` prints it as is.
#[derive(Debug, Serialize)]
pub struct PushReport {
    /// What was read, e.g. `OCI archive ./app.tar`.
    pub source: String,
    /// The target as given, normalised (`john/app:v1`, `http://host:5000/john/app:v1`).
    pub target: String,
    pub repository: String,
    /// The tag or digest the root manifest was put under.
    pub reference: String,
    /// The root manifest (or index).
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// Children before the indexes that list them; the root is last.
    pub manifests: Vec<Item>,
    pub blobs: Vec<Item>,
    pub totals: Totals,
}

impl PushReport {
    pub fn count(&mut self) {
        let mut totals = Totals::default();
        for blob in &self.blobs {
            match blob.status {
                Status::Pushed => {
                    totals.blobs_pushed += 1;
                    totals.bytes_pushed += blob.size;
                }
                Status::Skipped => {
                    totals.blobs_skipped += 1;
                    totals.bytes_skipped += blob.size;
                }
                Status::Mounted => {
                    totals.blobs_mounted += 1;
                    totals.bytes_mounted += blob.size;
                }
            }
        }
        for manifest in &self.manifests {
            match manifest.status {
                Status::Skipped => totals.manifests_skipped += 1,
                _ => totals.manifests_pushed += 1,
            }
        }
        self.totals = totals;
    }

    /// The table and summary for people, on stdout.
    pub fn print(&self, output: &Output) {
        if output.json {
            output.print_json(self);
            return;
        }
        let mut table = output.table(["kind", "digest", "media type", "size", "status"]);
        let rows = self
            .blobs
            .iter()
            .map(|b| ("blob", b))
            .chain(self.manifests.iter().map(|m| ("manifest", m)));
        for (kind, item) in rows {
            table.add_row([
                kind.to_owned(),
                short(&item.digest),
                item.media_type.clone(),
                human_bytes(item.size),
                item.status.as_str().to_owned(),
            ]);
        }
        println!("{table}");
        let t = &self.totals;
        println!(
            "blobs: {} pushed ({}), {} skipped, {} mounted; manifests: {} pushed, {} skipped",
            t.blobs_pushed,
            human_bytes(t.bytes_pushed),
            t.blobs_skipped,
            t.blobs_mounted,
            t.manifests_pushed,
            t.manifests_skipped
        );
        println!(
            "{}: digest: {} size: {}",
            self.target, self.digest, self.size
        );
    }
}

/// `sha256:` and the first 12 hex digits, as people compare digests.
pub fn short(digest: &Digest) -> String {
    let hex = digest.hex();
    format!(
        "{}:{}",
        digest.algorithm().as_str(),
        &hex[..hex.len().min(12)]
    )
}
