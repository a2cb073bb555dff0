//! Large-blob scenarios: monolithic and chunked push, verified pull, the
//! single big blob, and concurrent pushes mixed with pulls.
//!
//! All large blobs live in repository `bench/blobs`. Push scenarios use ids
//! that include the scenario and round, so each push sends new content; pull
//! scenarios share the `pull-N` blobs and push them (untimed) when missing.
//! Against a static-file target the same blobs are written as files named by
//! their hex digest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{parallel, Ctx};
use crate::content::BlobSpec;
use crate::registry;
use crate::report::{Part, Work};
use crate::target::TargetKind;

pub const REPO: &str = "bench/blobs";

/// Specs for `count` blobs `<prefix>-<i>`; cheap once `warm` ran for `size`.
fn specs(ctx: &Ctx, prefix: &str, count: usize, size: u64) -> Vec<BlobSpec> {
    tokio::task::block_in_place(|| {
        (0..count)
            .map(|i| ctx.src.spec(&format!("{prefix}-{i}"), size))
            .collect()
    })
}

fn pull_specs(ctx: &Ctx) -> Vec<BlobSpec> {
    specs(ctx, "pull", ctx.plan.large_blob_count(), ctx.plan.blob_size)
}

fn big_spec(ctx: &Ctx) -> BlobSpec {
    specs(ctx, &format!("big-r{}", ctx.round), 1, ctx.plan.big_blob).remove(0)
}

/// Hashes the common part of blobs of `size` so the timed part only hashes
/// the 32-byte suffixes.
pub fn warm(ctx: &Ctx, size: u64) {
    let _ = specs(ctx, "warm", 1, size);
}

fn blob_url(ctx: &Ctx, spec: &BlobSpec) -> String {
    match ctx.kind {
        TargetKind::Registry | TargetKind::BareReceiver => {
            format!("{}/v2/{REPO}/blobs/{}", ctx.base, spec.digest)
        }
        TargetKind::StaticFiles => {
            format!("{}/{}", ctx.base, spec.digest.trim_start_matches("sha256:"))
        }
    }
}

/// Makes sure each blob is on the target: pushed to a registry, or written
/// as a file for a static-file server.
async fn ensure(ctx: &Ctx, specs: &[BlobSpec]) -> Result<()> {
    for spec in specs {
        match (ctx.kind, &ctx.static_root) {
            (TargetKind::StaticFiles, Some(root)) => {
                let path = root.join(spec.digest.trim_start_matches("sha256:"));
                if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(spec.size) {
                    tokio::task::block_in_place(|| ctx.src.write_to(spec, &path))
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            _ => {
                if !registry::blob_exists(&ctx.client, &ctx.base, REPO, &spec.digest).await? {
                    registry::push_blob(&ctx.client, &ctx.base, REPO, &ctx.src, spec).await?;
                }
            }
        }
    }
    Ok(())
}

pub async fn ensure_pull_blobs(ctx: &Ctx) -> Result<()> {
    ensure(ctx, &pull_specs(ctx)).await
}

pub async fn ensure_big_blob(ctx: &Ctx) -> Result<()> {
    ensure(ctx, &[big_spec(ctx)]).await
}

fn total(specs: &[BlobSpec]) -> u64 {
    specs.iter().map(|s| s.size).sum()
}

async fn push_all(
    ctx: &Ctx,
    specs: Arc<Vec<BlobSpec>>,
    streams: usize,
    chunk: Option<u64>,
) -> Result<Work> {
    let (c, s) = (ctx.clone(), specs.clone());
    let latencies = parallel(streams, specs.len(), move |i| {
        let (c, s) = (c.clone(), s.clone());
        async move {
            match chunk {
                Some(chunk) => {
                    registry::push_blob_chunked(&c.client, &c.base, REPO, &c.src, &s[i], chunk)
                        .await
                }
                None => registry::push_blob(&c.client, &c.base, REPO, &c.src, &s[i]).await,
            }
        }
    })
    .await?;
    Ok(Work {
        ops: specs.len() as u64,
        unit: "blobs",
        bytes: total(&specs),
        latencies,
        ..Work::default()
    })
}

async fn pull_all(ctx: &Ctx, specs: Arc<Vec<BlobSpec>>, streams: usize) -> Result<Work> {
    let (c, s) = (ctx.clone(), specs.clone());
    let latencies = parallel(streams, specs.len(), move |i| {
        let (c, s) = (c.clone(), s.clone());
        async move {
            registry::pull_verified(&c.client, &blob_url(&c, &s[i]), &s[i])
                .await
                .map(|_| ())
        }
    })
    .await?;
    Ok(Work {
        ops: specs.len() as u64,
        unit: "blobs",
        bytes: total(&specs),
        latencies,
        ..Work::default()
    })
}

pub async fn push_monolithic(ctx: &Ctx, streams: usize) -> Result<Work> {
    let prefix = format!("push{streams}-r{}", ctx.round);
    let specs = specs(
        ctx,
        &prefix,
        ctx.plan.large_blob_count(),
        ctx.plan.blob_size,
    );
    push_all(ctx, Arc::new(specs), streams, None).await
}

pub async fn push_chunked(ctx: &Ctx) -> Result<Work> {
    let prefix = format!("chunked-r{}", ctx.round);
    let specs = specs(
        ctx,
        &prefix,
        ctx.plan.large_blob_count(),
        ctx.plan.blob_size,
    );
    push_all(ctx, Arc::new(specs), 1, Some(ctx.plan.chunk)).await
}

/// Pairs of equal-sized blobs, one pushed whole and one in chunks, one
/// after the other, the order swapped every pair. The disk here changes
/// speed by 2-4x within seconds (see the limits of any two rounds), so
/// push-chunked and push-1, run seconds apart, can differ by that much for
/// reasons that have nothing to do with chunking; interleaved, both kinds
/// meet the same disk, and the ratio of their rates is chunking's own cost.
/// Half as many pairs as the other push scenarios have blobs: a compare
/// keeps every round's data until the end, and the disk is finite.
pub async fn push_paired(ctx: &Ctx) -> Result<Work> {
    let count = (ctx.plan.large_blob_count() / 2).max(1);
    let size = ctx.plan.blob_size;
    let whole = specs(ctx, &format!("paired-whole-r{}", ctx.round), count, size);
    let chunked = specs(ctx, &format!("paired-chunked-r{}", ctx.round), count, size);
    let (mut whole_time, mut chunked_time) = (Duration::ZERO, Duration::ZERO);
    let mut latencies = Vec::with_capacity(2 * count);
    for i in 0..count {
        for chunk_first in [i % 2 == 1, i % 2 == 0] {
            let t = Instant::now();
            if chunk_first {
                registry::push_blob_chunked(
                    &ctx.client,
                    &ctx.base,
                    REPO,
                    &ctx.src,
                    &chunked[i],
                    ctx.plan.chunk,
                )
                .await?;
                chunked_time += t.elapsed();
            } else {
                registry::push_blob(&ctx.client, &ctx.base, REPO, &ctx.src, &whole[i]).await?;
                whole_time += t.elapsed();
            }
            latencies.push(t.elapsed());
        }
    }
    Ok(Work {
        ops: 2 * count as u64,
        unit: "blobs",
        bytes: total(&whole) + total(&chunked),
        latencies,
        parts: vec![
            Part::new("monolithic", total(&whole), whole_time),
            Part::new("chunked", total(&chunked), chunked_time),
        ],
        ..Work::default()
    })
}

pub async fn pull(ctx: &Ctx, streams: usize) -> Result<Work> {
    pull_all(ctx, Arc::new(pull_specs(ctx)), streams).await
}

pub async fn big_push(ctx: &Ctx) -> Result<Work> {
    push_all(ctx, Arc::new(vec![big_spec(ctx)]), 1, None).await
}

pub async fn big_pull(ctx: &Ctx) -> Result<Work> {
    pull_all(ctx, Arc::new(vec![big_spec(ctx)]), 1).await
}

/// Two streams push new blobs while two streams pull existing ones.
pub async fn mixed(ctx: &Ctx) -> Result<Work> {
    let half = ctx.plan.large_blob_count().div_ceil(2);
    let prefix = format!("mixed-r{}", ctx.round);
    let pushes = Arc::new(specs(ctx, &prefix, half, ctx.plan.blob_size));
    let pulls = Arc::new(pull_specs(ctx).into_iter().take(half).collect::<Vec<_>>());
    let (pushed, pulled) =
        tokio::try_join!(push_all(ctx, pushes, 2, None), pull_all(ctx, pulls, 2))?;
    let mut latencies = pushed.latencies;
    latencies.extend(pulled.latencies);
    Ok(Work {
        ops: pushed.ops + pulled.ops,
        unit: "blobs",
        bytes: pushed.bytes + pulled.bytes,
        latencies,
        ..Work::default()
    })
}
