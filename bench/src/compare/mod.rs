//! `compare`: artispace and Debian's docker-registry side by side, with this
//! machine's limits measured in the same run, and the ratios issue 5 asks
//! for.
//!
//! Each round measures the limits, then starts fresh servers (new temporary
//! roots): artispace, the reference, the bare receiver (the push floor,
//! which takes only the push scenarios) and nginx (which serves the pull
//! blobs as plain files and takes only the pulls). Every scenario then runs
//! on each server in turn, with the same client, before the next scenario
//! starts; the servers' order is reversed every other round, so that on
//! average each meets the machine at the same moments. Nothing is deleted
//! until the run ends, so no deletion speeds up or slows down a timed part.
//! Ratios use the median over rounds.

mod ratios;

use std::sync::Arc;

use anyhow::Result;
use tempfile::TempDir;

use crate::cli::CompareArgs;
use crate::report::{self, LimitResult, Record};
use crate::target::{ensure_installed, Target, TargetKind};
use crate::{blob_source, describe_target, http_client, limits, run_round, start_report};

const REFERENCE: &str = "docker-registry";

#[derive(Clone, Copy)]
enum Server {
    Ours,
    Reference,
    BareReceiver,
    Nginx,
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
        .tempdir_in(common.setup.work_dir())?;
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
                    "  limit {:<14} round {round} {:>8.1} MB/s{}",
                    l.limit,
                    l.mb_per_s,
                    l.cpu_secs_per_gb
                        .map_or(String::new(), |c| format!("  ({c:.2} CPU s/GB)"))
                );
                json.write(&Record::Limit(&l))?;
                limits.push(l);
            }
        }
        // A baseline joins only when some scenario runs on it.
        let runs_on = |kind| scenarios.iter().any(|s| s.applies_to(kind, &plan));
        let mut order = vec![Server::Ours, Server::Reference];
        if !args.no_bare_receiver && runs_on(TargetKind::BareReceiver) {
            order.push(Server::BareReceiver);
        }
        if !args.no_nginx && runs_on(TargetKind::StaticFiles) {
            order.push(Server::Nginx);
        }
        if round % 2 == 1 {
            order.reverse();
        }
        let mut targets = Vec::with_capacity(order.len());
        for server in order {
            let target = match server {
                Server::Ours => {
                    Target::spawn_artispace(&common.setup.server_bin(), run_dir.path()).await?
                }
                Server::Reference => Target::spawn_docker_registry(run_dir.path()).await?,
                Server::BareReceiver => Target::spawn_bare_receiver(run_dir.path()).await?,
                Server::Nginx => Target::spawn_nginx(run_dir.path()).await?,
            };
            describe_target(&target);
            targets.push(target);
        }
        // Scenario by scenario, every server in turn: the disk and this VM's
        // memory change speed within seconds, so the servers compared in a
        // row must meet the machine seconds apart, not minutes.
        for scenario in &scenarios {
            for target in &targets {
                let (r, f) = run_round(
                    target,
                    &client,
                    &src,
                    &plan,
                    std::slice::from_ref(scenario),
                    round,
                    &mut json,
                )
                .await?;
                results.extend(r);
                failures += f;
            }
        }
        kept.extend(targets.into_iter().filter_map(Target::stop));
    }

    println!("{}", report::scenario_table(&results));
    report::print_notes(&results);
    if !limits.is_empty() {
        println!("{}", report::limits_table(&limits));
    }
    let rows = ratios::ratio_rows(&results, &limits);
    for r in &rows {
        json.write(&Record::Ratio(r))?;
    }
    println!("{}", report::ratio_table(&rows, REFERENCE));
    println!(
        "Medians over {} round(s); MB = 10^6 bytes. Each scenario ran on every server in turn; the order was reversed every other round.",
        common.rounds
    );
    if failures > 0 {
        println!("{failures} scenario run(s) failed; see the errors above");
    }
    eprintln!(
        "deleting the run's temporary data in {} (minutes after a large scaling run)",
        run_dir.path().display()
    );
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
