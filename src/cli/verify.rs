//! `artispace verify`: re-hash every blob and check every record.

use std::sync::Arc;

use clap::Args;
use indicatif::ProgressBar;

use super::exit;
use super::output::{human_bytes, CommonArgs, Output};
use super::store::{finish, open_store, Failure};
use crate::registry::{Progress, RegistryConfig, VerifyOptions, VerifyReport};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Fix what is safe to fix: remove orphan files and dangling rows,
    /// mark corrupt blobs so that the next push replaces them.
    #[arg(long)]
    pub repair: bool,

    /// Threads hashing blobs (default: one per core).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
}

/// Draws hashing progress as a byte bar.
struct BarProgress(ProgressBar);

impl Progress for BarProgress {
    fn start(&self, total_bytes: u64) {
        self.0.set_length(total_bytes);
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

pub fn run(args: VerifyArgs) -> i32 {
    finish(verify(args))
}

fn verify(args: VerifyArgs) -> Result<i32, Failure> {
    let output = Output::new(&args.common);
    let registry = open_store(&args.common, RegistryConfig::default())?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    if jobs == 0 {
        return Err(Failure::usage("--jobs must be at least 1"));
    }
    let options = VerifyOptions {
        jobs,
        repair: args.repair,
    };
    let runtime =
        super::output::runtime().map_err(|e| Failure::usage(format!("cannot start: {e}")))?;
    let progress = Arc::new(BarProgress(output.bytes_bar(0, "hashing blobs")));
    let report = runtime.block_on(registry.verify(&options, progress))?;

    if output.json {
        output.print_json(&report);
    } else {
        print_report(&report);
    }
    Ok(if report.clean {
        exit::SUCCESS
    } else {
        exit::FOUND_PROBLEM
    })
}

fn print_report(report: &VerifyReport) {
    for problem in &report.problems {
        let state = if problem.repaired {
            " [repaired]"
        } else if report.repair {
            " [not repairable]"
        } else {
            ""
        };
        println!(
            "{} {}: {}{state}",
            problem.kind.as_str(),
            problem.subject,
            problem.detail
        );
        for manifest in &problem.affects {
            let tags = if manifest.tags.is_empty() {
                "untagged".to_owned()
            } else {
                manifest.tags.join(", ")
            };
            println!(
                "    breaks {}@{} ({tags})",
                manifest.repository, manifest.digest
            );
        }
    }
    if report.gc_running {
        println!("a garbage collection is running: the blobs it is removing were left to it");
    }
    let repaired = report.problems.iter().filter(|p| p.repaired).count();
    println!(
        "checked {} blobs ({}) and {} manifests: {} problem(s){}",
        report.checked.blobs,
        human_bytes(report.checked.bytes),
        report.checked.manifests,
        report.problems.len(),
        if report.repair {
            format!(", {repaired} repaired")
        } else {
            String::new()
        }
    );
}
