//! `artispace gc`: collect garbage in the store, safely beside `serve`.

use std::time::Duration;

use clap::Args;

use super::exit;
use super::output::{human_bytes, CommonArgs, Output};
use super::store::{finish, open_store, Failure};
use crate::registry::{GcOptions, RegistryConfig, Removed};

#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Report what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Keep unreferenced blobs linked more recently than this (a client
    /// pushes layers before their manifest).
    #[arg(long, default_value = "1h", value_parser = super::parse_duration)]
    pub grace: Duration,

    /// Also remove untagged manifests that no index lists and that are not
    /// referrers of a kept manifest.
    #[arg(long)]
    pub delete_untagged: bool,

    /// Upload sessions idle for longer than this are removed.
    #[arg(long, env = "ARTISPACE_UPLOAD_EXPIRY", default_value = "24h", value_parser = super::parse_duration)]
    pub upload_expiry: Duration,
}

pub fn run(args: GcArgs) -> i32 {
    finish(collect(args))
}

fn collect(args: GcArgs) -> Result<i32, Failure> {
    let output = Output::new(&args.common);
    let config = RegistryConfig {
        upload_expiry: args.upload_expiry,
        ..RegistryConfig::default()
    };
    let registry = open_store(&args.common, config)?;
    let options = GcOptions {
        grace: args.grace,
        delete_untagged: args.delete_untagged,
        dry_run: args.dry_run,
    };
    let runtime =
        super::output::runtime().map_err(|e| Failure::usage(format!("cannot start: {e}")))?;
    // One collection at a time; a run already going is waited for (a
    // scheduled run that overlaps the last one queues behind it).
    let claim = match runtime.block_on(registry.try_claim_gc())? {
        Some(claim) => claim,
        None => {
            let waiting =
                output.spinner("waiting for the garbage collection already running on this store");
            let claim = runtime.block_on(registry.claim_gc())?;
            waiting.finish_and_clear();
            claim
        }
    };
    let spinner = output.spinner(if args.dry_run {
        "deciding what to collect"
    } else {
        "collecting garbage"
    });
    let report = runtime.block_on(registry.collect_garbage(&options, &claim))?;
    spinner.finish_and_clear();

    if output.json {
        output.print_json(&report);
        return Ok(exit::SUCCESS);
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut table = output.table(["kind", verb, "bytes"]);
    let mut row = |kind: &str, removed: Removed| {
        table.add_row(vec![
            kind.to_owned(),
            removed.count.to_string(),
            human_bytes(removed.bytes),
        ]);
    };
    row("manifests", report.manifests);
    row("blobs", report.blobs);
    row("orphan blob files", report.orphan_files);
    row("upload sessions", report.uploads);
    table.add_row(vec![
        "stale blob links".to_owned(),
        report.links.to_string(),
        String::new(),
    ]);
    table.add_row(vec![
        "empty repositories".to_owned(),
        report.repositories.to_string(),
        String::new(),
    ]);
    println!("{table}");
    if report.dry_run {
        println!("dry run: nothing was changed");
    }
    Ok(exit::SUCCESS)
}
