//! artispace-bench: a load generator for `artispace serve` and, side by side,
//! the reference registry (Debian's `docker-registry`) and nginx.
//!
//! It speaks HTTP only (it does not link the artispace library), generates
//! its random content up front, checks every status and verifies every
//! pulled digest. `run` measures one registry; `compare` runs the same
//! scenarios against artispace and the reference in alternating order, with
//! the machine's limits measured in the same run, and prints ratios.

mod bare_receiver;
mod cli;
mod compare;
mod content;
mod gc_scale;
mod limits;
mod machine;
mod proc_stats;
mod registry;
mod report;
mod scenarios;
mod target;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command, Common, RunArgs};
use crate::content::BlobSource;
use crate::report::{JsonOut, Record, ScenarioResult};
use crate::scenarios::{run_scenario, Ctx, Plan, Scenario};
use crate::target::Target;

fn main() -> std::process::ExitCode {
    let outcome = match Cli::parse().command {
        // Blocking threads only: the floor it measures has no runtime.
        Command::BareReceiver { addr, root } => bare_receiver::serve(addr, &root).map(|()| true),
        command => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(run_command(command))),
    };
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run_command(command: Command) -> Result<bool> {
    match command {
        Command::Run(args) => run(args).await,
        Command::Compare(args) => compare::compare(args).await,
        Command::GcScale(args) => gc_scale::gc_scale(args).await,
        Command::Scenarios => {
            for s in Scenario::ALL {
                println!("{:<14} {}", s.name(), s.about());
            }
            Ok(true)
        }
        // `main` serves it without a runtime; this arm only keeps the match whole.
        Command::BareReceiver { addr, root } => {
            tokio::task::spawn_blocking(move || bare_receiver::serve(addr, &root)).await??;
            Ok(true)
        }
    }
}

/// The HTTP client every scenario shares: HTTP/1.1, keep-alive, no timeouts
/// per request (scenarios have their own bound).
pub fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .no_proxy()
        .build()?)
}

/// Generates the 64 MiB random base buffer (before anything is timed).
pub fn blob_source(seed: u64) -> Arc<BlobSource> {
    Arc::new(tokio::task::block_in_place(|| BlobSource::generate(seed)))
}

/// Runs the selected scenarios against one target for one round, printing
/// progress to stderr; failures are reported and the run goes on.
pub async fn run_round(
    target: &Target,
    client: &reqwest::Client,
    src: &Arc<BlobSource>,
    plan: &Arc<Plan>,
    scenarios: &[Scenario],
    round: u32,
    json: &mut JsonOut,
) -> Result<(Vec<ScenarioResult>, usize)> {
    let ctx = Ctx::new(target, client, src, plan, round);
    let mut results = Vec::new();
    let mut failures = 0;
    for &s in scenarios.iter().filter(|s| s.applies_to(target.kind, plan)) {
        match run_scenario(target, &ctx, s).await {
            Ok(r) => {
                eprintln!(
                    "  {:<15} round {round} {:<18} {:>8.2}s  {}",
                    target.name,
                    s.name(),
                    r.secs,
                    match r.mb_per_s {
                        Some(mb) => format!("{mb:.1} MB/s"),
                        None => format!("{:.1} {}/s", r.ops_per_s, r.unit),
                    } + &r
                        .parts
                        .iter()
                        .map(|p| format!(" ({} {:.1} MB/s)", p.name, p.mb_per_s))
                        .collect::<String>()
                );
                json.write(&Record::Scenario(&r))?;
                results.push(r);
            }
            Err(e) => {
                failures += 1;
                eprintln!(
                    "  {:<15} round {round} {:<18} FAILED: {e:#}",
                    target.name,
                    s.name()
                );
                let tail = target.log_tail();
                if !tail.is_empty() {
                    eprintln!("  last lines of the {} log:\n{tail}", target.name);
                }
                let error = format!("{e:#}");
                json.write(&Record::Failure {
                    target: &target.name,
                    scenario: s.name(),
                    round,
                    error,
                })?;
            }
        }
    }
    Ok((results, failures))
}

/// Starts our server, or wraps the external one given by --url.
pub async fn artispace_target(
    common: &Common,
    url: Option<&str>,
    pid: Option<u32>,
    name: &str,
) -> Result<Target> {
    match url {
        Some(url) => {
            let target = Target::external(name, url, pid);
            target.wait_ready("/v2/").await?;
            Ok(target)
        }
        None => Target::spawn_artispace(&common.setup.server_bin(), &common.setup.work_dir()).await,
    }
}

/// `run`: every selected scenario against one registry.
async fn run(args: RunArgs) -> Result<bool> {
    let common = &args.common;
    let plan = Arc::new(common.plan());
    let scenarios = common.scenarios()?;
    let mut json = start_report(common)?;
    let src = blob_source(common.seed);
    let client = http_client()?;
    let target = artispace_target(common, args.url.as_deref(), args.pid, &args.name).await?;
    describe_target(&target);
    if target.pid.is_none() {
        eprintln!("note: no --pid given, so no server CPU or memory figures");
    }
    let mut all = Vec::new();
    let mut failures = 0;
    for round in 0..common.rounds {
        let (results, failed) =
            run_round(&target, &client, &src, &plan, &scenarios, round, &mut json).await?;
        all.extend(results);
        failures += failed;
    }
    let _kept = target.stop();
    println!("{}", report::scenario_table(&all));
    report::print_notes(&all);
    print_rss_goal(&all);
    if failures > 0 {
        println!("{failures} scenario run(s) failed; see the errors above");
    }
    Ok(failures == 0)
}

/// Opens the JSON lines file and records the machine in it and on stdout.
pub fn start_report(common: &Common) -> Result<JsonOut> {
    let mut json = JsonOut::open(common.setup.json_out.as_deref())?;
    let machine = machine::Machine::describe();
    println!("{}", machine.summary());
    json.write(&Record::Machine(&machine))?;
    Ok(json)
}

pub fn describe_target(t: &Target) {
    let how = match &t.origin {
        target::Origin::Spawned { command } => format!("started as `{command}`"),
        target::Origin::External => "already running".into(),
    };
    eprintln!(
        "{} at {} (pid {}), {how}",
        t.name,
        t.base_url,
        t.pid.map_or("unknown".into(), |p| p.to_string())
    );
}

/// Issue 2's memory goal: under 64 MiB resident while a 2 GiB blob passes.
fn print_rss_goal(results: &[ScenarioResult]) {
    const GOAL_MIB: f64 = 64.0;
    for r in results.iter().filter(|r| r.scenario.starts_with("big-")) {
        if let Some(peak) = r.server_peak_rss_mib {
            let verdict = if peak < GOAL_MIB { "met" } else { "MISSED" };
            println!(
                "{} {} round {}: server peak RSS {peak:.1} MiB during a {:.0} MiB blob (goal < {GOAL_MIB} MiB): {verdict}",
                r.target,
                r.scenario,
                r.round,
                r.bytes as f64 / 1048576.0
            );
        }
    }
}
