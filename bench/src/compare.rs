//! `compare`: artispace and Debian's docker-registry side by side, with this
//! machine's limits measured in the same run, and the ratios issue 5 asks
//! for.
//!
//! Each round measures the limits, then starts fresh servers (new temporary
//! roots) one after the other, in alternating order across rounds, and runs
//! the same scenarios against each with the same client; nginx then serves
//! the pull blobs as plain files. Nothing is deleted until the run ends, so
//! no deletion speeds up or slows down a timed part. Ratios use the median
//! over rounds.

use std::sync::Arc;

use anyhow::Result;
use tempfile::TempDir;

use crate::cli::CompareArgs;
use crate::report::{self, LimitResult, RatioRow, Record, ScenarioResult};
use crate::scenarios::Scenario;
use crate::target::{ensure_installed, Target};
use crate::{blob_source, describe_target, http_client, limits, run_round, start_report};

const OURS: &str = "artispace";
const REFERENCE: &str = "docker-registry";
const NGINX: &str = "nginx";

#[derive(Clone, Copy)]
enum Server {
    Ours,
    Reference,
}

pub async fn compare(args: CompareArgs) -> Result<bool> {
    let common = &args.common;
    let plan = Arc::new(common.plan());
    let scenarios = common.scenarios()?;
    let mut json = start_report(common)?;
    ensure_installed("docker-registry", "docker-registry")?;
    if !args.no_nginx {
        ensure_installed("nginx", "nginx-light")?;
    }
    let src = blob_source(common.seed);
    let client = http_client()?;
    let run_dir = tempfile::Builder::new()
        .prefix("artispace-bench-compare-")
        .tempdir_in(common.work_dir())?;
    let limit_bytes = args
        .limit_mib
        .unwrap_or(if common.quick { 128 } else { 1024 })
        << 20;
    let mut kept: Vec<TempDir> = Vec::new();
    let (mut results, mut limits, mut failures) = (Vec::new(), Vec::new(), 0);

    for round in 0..common.rounds {
        if !args.no_limits {
            for l in measure_limits(&src, run_dir.path(), limit_bytes, round)? {
                eprintln!(
                    "  limit {:<14} round {round} {:>8.1} MB/s",
                    l.limit, l.mb_per_s
                );
                json.write(&Record::Limit(&l))?;
                limits.push(l);
            }
        }
        let order = if round % 2 == 0 {
            [Server::Ours, Server::Reference]
        } else {
            [Server::Reference, Server::Ours]
        };
        for server in order {
            let target = match server {
                Server::Ours => {
                    Target::spawn_artispace(&common.server_bin(), run_dir.path()).await?
                }
                Server::Reference => Target::spawn_docker_registry(run_dir.path()).await?,
            };
            describe_target(&target);
            let (r, f) =
                run_round(&target, &client, &src, &plan, &scenarios, round, &mut json).await?;
            results.extend(r);
            failures += f;
            kept.extend(target.stop());
        }
        if !args.no_nginx
            && scenarios
                .iter()
                .any(|s| matches!(s, Scenario::Pull1 | Scenario::Pull4))
        {
            let target = Target::spawn_nginx(run_dir.path()).await?;
            describe_target(&target);
            let (r, f) =
                run_round(&target, &client, &src, &plan, &scenarios, round, &mut json).await?;
            results.extend(r);
            failures += f;
            kept.extend(target.stop());
        }
    }

    println!("{}", report::scenario_table(&results));
    report::print_notes(&results);
    if !limits.is_empty() {
        println!("{}", report::limits_table(&limits));
    }
    let rows = ratio_rows(&results, &limits);
    for r in &rows {
        json.write(&Record::Ratio(r))?;
    }
    println!("{}", report::ratio_table(&rows, REFERENCE));
    println!(
        "Medians over {} round(s); MB = 10^6 bytes. Server order alternated each round.",
        common.rounds
    );
    if failures > 0 {
        println!("{failures} scenario run(s) failed; see the errors above");
    }
    eprintln!("deleting the run's temporary data");
    drop(kept);
    drop(run_dir);
    Ok(failures == 0)
}

fn measure_limits(
    src: &crate::content::BlobSource,
    dir: &std::path::Path,
    bytes: u64,
    round: u32,
) -> Result<Vec<LimitResult>> {
    tokio::task::block_in_place(|| {
        Ok(vec![
            limits::sha256_one_core(src, bytes, round),
            limits::dd_fsync(src, dir, bytes, 1, round)?,
            limits::dd_fsync(src, dir, bytes, 4, round)?,
        ])
    })
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Median of one figure of one scenario on one target.
fn figure(
    results: &[ScenarioResult],
    target: &str,
    scenario: &str,
    f: fn(&ScenarioResult) -> Option<f64>,
) -> Option<f64> {
    median(
        results
            .iter()
            .filter(|r| r.target == target && r.scenario == scenario)
            .filter_map(f)
            .collect(),
    )
}

fn limit(limits: &[LimitResult], name: &str) -> Option<f64> {
    median(
        limits
            .iter()
            .filter(|l| l.limit == name)
            .map(|l| l.mb_per_s)
            .collect(),
    )
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Operations (images, requests, pages) per second.
fn throughput(r: &ScenarioResult) -> Option<f64> {
    Some(r.ops_per_s)
}

/// Server CPU seconds per GB moved by the given scenarios, per round, median.
fn cpu_per_gb(results: &[ScenarioResult], target: &str, scenarios: &[&str]) -> Option<f64> {
    let rounds: std::collections::BTreeSet<u32> = results.iter().map(|r| r.round).collect();
    let per_round = rounds.into_iter().filter_map(|round| {
        let rs: Vec<&ScenarioResult> = results
            .iter()
            .filter(|r| {
                r.target == target && r.round == round && scenarios.contains(&r.scenario.as_str())
            })
            .collect();
        let gb: f64 = rs.iter().map(|r| r.bytes as f64 / 1e9).sum();
        let cpu: Option<f64> = rs.iter().map(|r| r.server_cpu_secs).sum();
        (gb > 0.0).then_some(cpu? / gb)
    });
    median(per_round.collect())
}

fn peak_rss(results: &[ScenarioResult], target: &str) -> Option<f64> {
    results
        .iter()
        .filter(|r| r.target == target)
        .filter_map(|r| r.server_peak_rss_mib)
        .reduce(f64::max)
}

/// Builds the comparison rows; `met` is None when a figure is missing.
fn ratio_rows(results: &[ScenarioResult], limits: &[LimitResult]) -> Vec<RatioRow> {
    let mut rows = Vec::new();
    let mut add = |scenario: &str,
                   metric: &str,
                   ours: Option<f64>,
                   reference: Option<f64>,
                   lim: Option<(String, Option<f64>)>,
                   goal: &str,
                   met: Option<bool>| {
        let (limit_name, limit) = lim.map_or((None, None), |(n, v)| (Some(n), v));
        rows.push(RatioRow {
            scenario: scenario.into(),
            metric: metric.into(),
            ours,
            reference,
            ours_over_reference: ratio(ours, reference),
            ours_over_limit: ratio(ours, limit),
            limit_name,
            limit,
            goal: goal.into(),
            met,
        });
    };
    let both = |s: &str, f: fn(&ScenarioResult) -> Option<f64>| {
        (
            figure(results, OURS, s, f),
            figure(results, REFERENCE, s, f),
        )
    };
    let at_least = |x: Option<f64>, k: f64| x.map(|x| x >= k);
    let at_most = |x: Option<f64>, k: f64| x.map(|x| x <= k);
    let and = |a: Option<bool>, b: Option<bool>| match (a, b) {
        (Some(a), Some(b)) => Some(a && b),
        (x, None) | (None, x) => x,
    };

    let (o, r) = both("push-1", |r| r.mb_per_s);
    add(
        "push-1",
        "MB/s",
        o,
        r,
        Some(("disk-fsync-1".into(), limit(limits, "disk-fsync-1"))),
        "-",
        None,
    );
    let (o, r) = both("push-4", |r| r.mb_per_s);
    let lim = limit(limits, "disk-fsync-4");
    let need = match (r, lim) {
        (Some(r), Some(l)) => Some((1.1 * r).min(0.9 * l)),
        (Some(r), None) => Some(1.1 * r),
        (None, l) => l.map(|l| 0.9 * l),
    };
    let met = o.zip(need).map(|(o, n)| o >= n);
    add(
        "push-4",
        "MB/s",
        o,
        r,
        Some(("disk-fsync-4".into(), lim)),
        ">= min(1.1 x ref, 0.9 x limit)",
        met,
    );
    let (o, r) = both("push-chunked", |r| r.mb_per_s);
    let mono = figure(results, OURS, "push-1", |r| r.mb_per_s);
    add(
        "push-chunked",
        "MB/s",
        o,
        r,
        Some(("artispace push-1".into(), mono)),
        ">= 0.9 x our push-1",
        at_least(ratio(o, mono), 0.9),
    );
    for s in ["pull-1", "pull-4"] {
        let (o, r) = both(s, |r| r.mb_per_s);
        let nginx = figure(results, NGINX, s, |r| r.mb_per_s);
        let met = and(at_least(ratio(o, r), 1.0), at_least(ratio(o, nginx), 0.95));
        add(
            s,
            "MB/s",
            o,
            r,
            Some((format!("nginx {s}"), nginx)),
            ">= 1.0 x ref, >= 0.95 x nginx",
            met,
        );
    }
    for s in ["big-push", "big-pull"] {
        let (o, r) = both(s, |r| r.mb_per_s);
        add(s, "MB/s", o, r, None, "-", None);
        let (o, r) = both(s, |r| r.server_peak_rss_mib);
        add(
            s,
            "peak RSS MiB",
            o,
            r,
            None,
            "< 64 MiB",
            o.map(|o| o < 64.0),
        );
    }
    let (o, r) = both("small-images", throughput);
    add(
        "small-images",
        "images/s",
        o,
        r,
        None,
        ">= 3 x ref",
        at_least(ratio(o, r), 3.0),
    );
    for s in ["manifest-head", "manifest-get"] {
        let (o, r) = both(s, throughput);
        add(
            s,
            "req/s",
            o,
            r,
            None,
            ">= 4 x ref",
            at_least(ratio(o, r), 4.0),
        );
        let (o, r) = both(s, |r| r.p99_ms);
        add(
            s,
            "p99 ms",
            o,
            r,
            None,
            "<= 0.5 x ref",
            at_most(ratio(o, r), 0.5),
        );
    }
    for (s, k) in [("tag-list", 3.0), ("catalog", 20.0)] {
        let (o, r) = both(s, throughput);
        add(
            s,
            "pages/s",
            o,
            r,
            None,
            &format!(">= {k} x ref"),
            at_least(ratio(o, r), k),
        );
        let (o, r) = both(s, |r| r.p99_ms);
        add(s, "p99 ms", o, r, None, "-", None);
    }
    for s in [
        "tag-page",
        "catalog-page",
        "tag-page-scale",
        "catalog-page-scale",
    ] {
        let (o, r) = both(s, throughput);
        add(s, "pages/s", o, r, None, "-", None);
        let (o, r) = both(s, |r| r.p50_ms);
        add(s, "p50 ms", o, r, None, "-", None);
    }
    for (small, large) in [
        ("tag-page", "tag-page-scale"),
        ("catalog-page", "catalog-page-scale"),
    ] {
        let growth = |t: &str| {
            ratio(
                figure(results, t, large, |r| r.p50_ms),
                figure(results, t, small, |r| r.p50_ms),
            )
        };
        let (o, r) = (growth(OURS), growth(REFERENCE));
        add(
            large,
            "p50 large ÷ p50 small list",
            o,
            r,
            None,
            "<= 1.5",
            at_most(o, 1.5),
        );
    }
    let (o, r) = both("mixed", |r| r.mb_per_s);
    add("mixed", "MB/s", o, r, None, "-", None);
    let pushes = ["push-1", "push-4", "push-chunked", "big-push"];
    let (o, r) = (
        cpu_per_gb(results, OURS, &pushes),
        cpu_per_gb(results, REFERENCE, &pushes),
    );
    add(
        "all pushes",
        "server CPU s/GB",
        o,
        r,
        None,
        "<= 0.35 x ref",
        at_most(ratio(o, r), 0.35),
    );
    let pulls = ["pull-1", "pull-4", "big-pull"];
    let (o, r) = (
        cpu_per_gb(results, OURS, &pulls),
        cpu_per_gb(results, REFERENCE, &pulls),
    );
    add(
        "all pulls",
        "server CPU s/GB",
        o,
        r,
        None,
        "<= 1.0 x ref",
        at_most(ratio(o, r), 1.0),
    );
    let (o, r) = (peak_rss(results, OURS), peak_rss(results, REFERENCE));
    add(
        "whole run",
        "server peak RSS MiB",
        o,
        r,
        None,
        "<= 0.5 x ref",
        at_most(ratio(o, r), 0.5),
    );
    rows.retain(|row| row.ours.is_some() || row.reference.is_some());
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
