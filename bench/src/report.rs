//! Results: the records a run produces, the table on stdout and the JSON lines.
//!
//! Every figure printed is also written as one JSON object per line (when
//! `--json-out` is given), flushed as soon as it exists, so an interrupted
//! run still leaves its data. MB means 10^6 bytes; memory is in MiB.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;

use crate::proc_stats::Usage;

/// What a scenario did, as counted by the scenario itself.
#[derive(Debug, Default)]
pub struct Work {
    pub ops: u64,
    /// What one op is: "blobs", "images", "requests", "pages".
    pub unit: &'static str,
    /// Payload bytes moved (0 where throughput in bytes is meaningless).
    pub bytes: u64,
    /// Entries received by list scenarios (tags or repositories), else 0.
    pub items: u64,
    /// One latency per op.
    pub latencies: Vec<Duration>,
    /// Kinds of work timed separately within the scenario (push-paired).
    pub parts: Vec<Part>,
    pub notes: Vec<String>,
}

/// One kind of work inside a scenario, timed on its own.
#[derive(Clone, Debug, Serialize)]
pub struct Part {
    pub name: &'static str,
    pub bytes: u64,
    pub secs: f64,
    pub mb_per_s: f64,
}

impl Part {
    pub fn new(name: &'static str, bytes: u64, time: Duration) -> Part {
        let secs = time.as_secs_f64().max(1e-9);
        Part {
            name,
            bytes,
            secs,
            mb_per_s: bytes as f64 / 1e6 / secs,
        }
    }
}

/// One scenario against one target in one round.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    pub target: String,
    pub scenario: String,
    pub round: u32,
    pub ops: u64,
    pub unit: String,
    pub bytes: u64,
    pub secs: f64,
    pub mb_per_s: Option<f64>,
    pub ops_per_s: f64,
    /// Entries per second, for list scenarios.
    pub items_per_s: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// CPU seconds used by the bench itself (the client) during the scenario.
    pub client_cpu_secs: f64,
    pub server_cpu_secs: Option<f64>,
    /// The kernel's share of `server_cpu_secs`.
    pub server_system_cpu_secs: Option<f64>,
    pub server_peak_rss_mib: Option<f64>,
    pub server_rss_end_mib: Option<f64>,
    pub server_vm_hwm_mib: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    pub notes: Vec<String>,
}

impl ScenarioResult {
    pub fn new(
        target: &str,
        scenario: &str,
        round: u32,
        mut work: Work,
        elapsed: Duration,
        usage: Option<Usage>,
        client_cpu_secs: f64,
    ) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        work.latencies.sort_unstable();
        ScenarioResult {
            target: target.to_string(),
            scenario: scenario.to_string(),
            round,
            ops: work.ops,
            unit: work.unit.to_string(),
            bytes: work.bytes,
            secs,
            mb_per_s: (work.bytes > 0).then(|| work.bytes as f64 / 1e6 / secs),
            ops_per_s: work.ops as f64 / secs,
            items_per_s: (work.items > 0).then(|| work.items as f64 / secs),
            p50_ms: percentile_ms(&work.latencies, 0.50),
            p99_ms: percentile_ms(&work.latencies, 0.99),
            client_cpu_secs,
            server_cpu_secs: usage.map(|u| u.cpu_secs),
            server_system_cpu_secs: usage.map(|u| u.system_cpu_secs),
            server_peak_rss_mib: usage.map(|u| u.peak_rss_mib),
            server_rss_end_mib: usage.map(|u| u.rss_end_mib),
            server_vm_hwm_mib: usage.map(|u| u.vm_hwm_mib),
            parts: work.parts,
            notes: work.notes,
        }
    }
}

/// Nearest-rank percentile of sorted latencies, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1].as_secs_f64() * 1e3)
}

/// A physical limit of this machine measured in the same run.
#[derive(Clone, Debug, Serialize)]
pub struct LimitResult {
    pub limit: String,
    pub round: u32,
    pub mb_per_s: f64,
    /// CPU seconds the measuring process spent per GB (dd), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_secs_per_gb: Option<f64>,
    pub detail: String,
}

/// One line of the comparison: a metric for both servers and their ratio.
#[derive(Clone, Debug, Serialize)]
pub struct RatioRow {
    pub scenario: String,
    pub metric: String,
    pub ours: Option<f64>,
    pub reference: Option<f64>,
    pub ours_over_reference: Option<f64>,
    pub limit_name: Option<String>,
    pub limit: Option<f64>,
    pub ours_over_limit: Option<f64>,
    pub goal: String,
    pub met: Option<bool>,
}

/// Every JSON line has a `record` field saying which of these it is.
#[derive(Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record<'a> {
    Machine(&'a crate::machine::Machine),
    Scenario(&'a ScenarioResult),
    Failure {
        target: &'a str,
        scenario: &'a str,
        round: u32,
        error: String,
    },
    Limit(&'a LimitResult),
    Ratio(&'a RatioRow),
    GcScale(&'a crate::gc_scale::GcScaleResult),
}

/// The optional JSON lines file.
pub struct JsonOut(Option<BufWriter<File>>);

impl JsonOut {
    pub fn open(path: Option<&Path>) -> Result<Self> {
        let w = path
            .map(|p| File::create(p).with_context(|| format!("creating {}", p.display())))
            .transpose()?
            .map(BufWriter::new);
        Ok(JsonOut(w))
    }

    pub fn write(&mut self, record: &Record) -> Result<()> {
        if let Some(w) = &mut self.0 {
            serde_json::to_writer(&mut *w, record)?;
            w.write_all(b"\n")?;
            w.flush()?;
        }
        Ok(())
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map(|v| format!("{v:.decimals$}"))
        .unwrap_or_else(|| "-".into())
}

/// The per-scenario table of one target.
pub fn scenario_table(results: &[ScenarioResult]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "target",
        "round",
        "scenario",
        "ops",
        "secs",
        "MB/s",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "client CPU s",
        "srv CPU s",
        "srv peak RSS MiB",
        "srv VmHWM MiB",
    ]);
    for r in results {
        t.add_row([
            r.target.clone(),
            r.round.to_string(),
            r.scenario.clone(),
            format!("{} {}", r.ops, r.unit),
            format!("{:.2}", r.secs),
            opt(r.mb_per_s, 1),
            format!("{:.1} {}/s", r.ops_per_s, r.unit),
            opt(r.p50_ms, 2),
            opt(r.p99_ms, 2),
            format!("{:.2}", r.client_cpu_secs),
            opt(r.server_cpu_secs, 2),
            opt(r.server_peak_rss_mib, 1),
            opt(r.server_vm_hwm_mib, 1),
        ]);
    }
    t
}

/// Notes scenarios attached to their results (oddities seen on the wire).
pub fn print_notes(results: &[ScenarioResult]) {
    for r in results {
        for n in r
            .notes
            .iter()
            .filter(|n| !n.ends_with("entries in complete walks"))
        {
            println!("note: {} {} round {}: {n}", r.target, r.scenario, r.round);
        }
    }
}

pub fn limits_table(limits: &[LimitResult]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(["round", "limit", "MB/s", "CPU s/GB", "how"]);
    for l in limits {
        t.add_row([
            l.round.to_string(),
            l.limit.clone(),
            format!("{:.1}", l.mb_per_s),
            l.cpu_secs_per_gb.map_or("-".into(), |c| format!("{c:.2}")),
            l.detail.clone(),
        ]);
    }
    t
}

pub fn ratio_table(rows: &[RatioRow], reference: &str) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "scenario".to_string(),
        "metric".into(),
        "artispace".into(),
        reference.to_string(),
        format!("artispace ÷ {reference}"),
        "limit".into(),
        "artispace ÷ limit".into(),
        "goal".into(),
        "met".into(),
    ]);
    for r in rows {
        t.add_row([
            r.scenario.clone(),
            r.metric.clone(),
            opt(r.ours, 2),
            opt(r.reference, 2),
            opt(r.ours_over_reference, 2),
            match (&r.limit_name, r.limit) {
                // Ratios and CPU seconds need two decimals, rates one.
                (Some(n), Some(v)) if v.abs() < 10.0 => format!("{v:.2} ({n})"),
                (Some(n), Some(v)) => format!("{v:.1} ({n})"),
                _ => "-".into(),
            },
            opt(r.ours_over_limit, 2),
            r.goal.clone(),
            match r.met {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "-".into(),
            },
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&v, 0.5), Some(50.0));
        assert_eq!(percentile_ms(&v, 0.99), Some(99.0));
        assert_eq!(percentile_ms(&v[..1], 0.99), Some(1.0));
        assert_eq!(percentile_ms(&[], 0.5), None);
    }
}
