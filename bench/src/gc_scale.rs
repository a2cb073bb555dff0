//! `gc-scale`: how long the admin commands take as the store grows. Issue 3
//! asks that a store of 100,000 blobs be collected in seconds and that the
//! time grow linearly.
//!
//! For each size, a fresh `artispace serve` gets small images (a config
//! and a layer: two blobs each) pushed through the API into a hundred
//! repositories, and every other manifest deleted again, so that half the
//! blobs are garbage. Then, as separate processes on the same root while the
//! server runs (as an operator would): the `gc` that removes that garbage,
//! a second `gc` that finds nothing (the cost of marking a live store), and
//! `verify` (every blob re-hashed). Each gc's report is checked.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;
use reqwest::{Method, StatusCode};
use serde::Serialize;

use crate::cli::GcScaleArgs;
use crate::registry::expect_status;
use crate::report::{JsonOut, Record};
use crate::scenarios::images::SmallImage;
use crate::scenarios::parallel;
use crate::target::Target;

const REPOSITORIES: usize = 100;
const LAYER_BYTES: usize = 1024;
const PUSHES_IN_FLIGHT: usize = 8;

/// The figures of one store size (a JSON line each with `--json-out`).
#[derive(Serialize)]
pub struct GcScaleResult {
    blobs: usize,
    garbage_blobs: u64,
    gc_secs: f64,
    gc_us_per_blob: f64,
    idle_gc_secs: f64,
    verify_secs: f64,
}

pub async fn gc_scale(args: GcScaleArgs) -> Result<bool> {
    let bin = args.setup.server_bin();
    let work = args.setup.work_dir();
    let mut json = JsonOut::open(args.setup.json_out.as_deref())?;
    let mut results = Vec::new();
    for &blobs in &args.blobs {
        let result = one_size(&bin, &work, blobs, args.keep).await?;
        json.write(&Record::GcScale(&result))?;
        results.push(result);
    }

    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "blobs in store",
        "garbage blobs",
        "gc",
        "µs per blob",
        "gc, nothing to do",
        "verify",
    ]);
    for r in &results {
        table.add_row([
            r.blobs.to_string(),
            r.garbage_blobs.to_string(),
            format!("{:.2} s", r.gc_secs),
            format!("{:.1}", r.gc_us_per_blob),
            format!("{:.2} s", r.idle_gc_secs),
            format!("{:.2} s", r.verify_secs),
        ]);
    }
    println!("{table}");
    if let [first, .., last] = results.as_slice() {
        println!(
            "gc time grew {:.2}x for {:.0}x the blobs",
            last.gc_secs / first.gc_secs.max(1e-9),
            last.blobs as f64 / first.blobs.max(1) as f64
        );
    }
    Ok(true)
}

async fn one_size(bin: &Path, work: &Path, blobs: usize, keep: bool) -> Result<GcScaleResult> {
    let images = blobs.div_ceil(2);
    eprintln!("gc-scale: pushing {images} small images ({blobs} blobs)");
    let server = Target::spawn_artispace(bin, work).await?;
    let root = server
        .store_root()
        .context("the spawned server has no store root")?;
    let client = crate::http_client()?;
    let base = server.base_url.clone();
    let prepared: Vec<SmallImage> = tokio::task::block_in_place(|| {
        (0..images)
            .map(|i| SmallImage::new(&format!("gc-{blobs}-{i}"), LAYER_BYTES))
            .collect()
    });
    let prepared = Arc::new(prepared);
    let repo_of = |i: usize| format!("gc/r{:03}", i % REPOSITORIES);
    {
        let (client, base, prepared) = (client.clone(), base.clone(), prepared.clone());
        parallel(PUSHES_IN_FLIGHT, images, move |i| {
            let (client, base, prepared) = (client.clone(), base.clone(), prepared.clone());
            async move {
                prepared[i]
                    .push(&client, &base, &repo_of(i), &format!("t{i}"))
                    .await
            }
        })
        .await?;
    }
    // Every other image becomes garbage: its manifest (and so its tag) goes.
    {
        let (client, base, prepared) = (client.clone(), base.clone(), prepared.clone());
        parallel(PUSHES_IN_FLIGHT, images / 2, move |half| {
            let (client, base, prepared) = (client.clone(), base.clone(), prepared.clone());
            async move {
                let i = half * 2;
                let url = format!(
                    "{base}/v2/{}/manifests/{}",
                    repo_of(i),
                    prepared[i].manifest_digest
                );
                let resp = client.delete(&url).send().await?;
                expect_status(resp, &Method::DELETE, StatusCode::ACCEPTED).await?;
                Ok(())
            }
        })
        .await?;
    }

    eprintln!("gc-scale: collecting");
    let (gc_secs, report) = admin(bin, &root, &["gc", "--grace", "0s", "--json"]).await?;
    let garbage_blobs = report["blobs"]["count"].as_u64().unwrap_or(0);
    let expected = 2 * (images / 2) as u64;
    ensure!(
        garbage_blobs == expected,
        "gc removed {garbage_blobs} blobs, expected {expected}"
    );
    let (idle_gc_secs, idle) = admin(bin, &root, &["gc", "--grace", "0s", "--json"]).await?;
    ensure!(
        idle["blobs"]["count"].as_u64() == Some(0),
        "a second gc removed blobs: {idle}"
    );
    let (verify_secs, verified) = admin(bin, &root, &["verify", "--json"]).await?;
    ensure!(
        verified["clean"] == true,
        "verify found problems: {verified}"
    );
    if let Some(folder) = server.stop().filter(|_| keep) {
        eprintln!(
            "gc-scale: store kept at {}",
            folder.keep().join("root").display()
        );
    }
    Ok(GcScaleResult {
        blobs,
        garbage_blobs,
        gc_secs,
        gc_us_per_blob: gc_secs * 1e6 / blobs.max(1) as f64,
        idle_gc_secs,
        verify_secs,
    })
}

/// Runs `artispace <args> --root <root>` to completion; its wall time and
/// its JSON report.
async fn admin(bin: &Path, root: &Path, args: &[&str]) -> Result<(f64, serde_json::Value)> {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(args).arg("--root").arg(root);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .with_context(|| format!("running artispace {}", args.join(" ")))?;
    let secs = started.elapsed().max(Duration::from_nanos(1)).as_secs_f64();
    if !out.status.success() {
        bail!(
            "artispace {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("artispace {} printed no JSON", args.join(" ")))?;
    Ok((secs, report))
}
