//! Fixtures for the read scenarios, created untimed and only when missing.
//!
//! - `bench/tags`: one small image under `list_entries` tags `t000000…`.
//! - `bench/cat/r000000…`: `list_entries` repositories holding that image
//!   (blobs mounted from `bench/tags`).
//! - Scaling run only: `bench/scaletags` with `scale_entries` tags
//!   `s000000…`, and `scale_entries` repositories `bench/scale/r000000…`;
//!   these are too many to list for a check, so a marker tag in
//!   `bench/scaleready` records that a fixture is complete.
//!
//! Repository names are chosen so that byte order and a directory walk's
//! order agree (the reference registry lists its catalog by walking folders).

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;
use reqwest::StatusCode;

use super::images::SmallImage;
use super::{parallel, Ctx};
use crate::registry::{self, get_page};

pub const TAGS_REPO: &str = "bench/tags";
const FIXTURE_LAYER: usize = 4096;
const SETUP_CONCURRENCY: usize = 16;

pub fn tag(i: usize) -> String {
    format!("t{i:06}")
}

pub fn cat_repo(i: usize) -> String {
    format!("bench/cat/r{i:06}")
}

pub fn fixture() -> SmallImage {
    SmallImage::new("fixture", FIXTURE_LAYER)
}

/// Every entry of a paginated list (untimed; pages of 100).
async fn list_all(ctx: &Ctx, path: &str, field: &str) -> Result<Vec<String>> {
    let mut url = Some(format!("{}{path}?n={}", ctx.base, ctx.plan.page_size));
    let mut all = Vec::new();
    if field == "tags" {
        let first = url.as_deref().expect("set");
        if ctx.client.get(first).send().await?.status() == StatusCode::NOT_FOUND {
            return Ok(all); // the repository does not exist yet
        }
    }
    while let Some(u) = url {
        let page = get_page(&ctx.client, &ctx.base, &u, field).await?;
        all.extend(page.entries);
        url = page.next;
    }
    Ok(all)
}

/// Makes `bench/tags` hold the fixture image under every expected tag.
pub async fn ensure_tags(ctx: &Ctx) -> Result<()> {
    let path = format!("/v2/{TAGS_REPO}/tags/list");
    let have: HashSet<String> = list_all(ctx, &path, "tags").await?.into_iter().collect();
    let missing: Vec<String> = (0..ctx.plan.list_entries)
        .map(tag)
        .filter(|t| !have.contains(t))
        .collect();
    create_tags(ctx, TAGS_REPO, missing).await
}

/// Makes the catalog hold every `bench/cat/…` repository.
pub async fn ensure_catalog(ctx: &Ctx) -> Result<()> {
    let have: HashSet<String> = list_all(ctx, "/v2/_catalog", "repositories")
        .await?
        .into_iter()
        .collect();
    let missing: Vec<String> = (0..ctx.plan.list_entries)
        .map(cat_repo)
        .filter(|r| !have.contains(r))
        .collect();
    create_repos(ctx, missing).await
}

pub const SCALE_TAGS_REPO: &str = "bench/scaletags";
const SCALE_READY_REPO: &str = "bench/scaleready";

pub fn scale_tag(i: usize) -> String {
    format!("s{i:06}")
}

pub fn scale_repo(i: usize) -> String {
    format!("bench/scale/r{i:06}")
}

/// Makes `bench/scaletags` hold `scale_entries` tags.
pub async fn ensure_scale_tags(ctx: &Ctx) -> Result<()> {
    let n = ctx.plan.scale_entries;
    ensure_marked(
        ctx,
        &format!("tags-{n}"),
        create_tags(ctx, SCALE_TAGS_REPO, (0..n).map(scale_tag).collect()),
    )
    .await
}

/// Makes the catalog hold `scale_entries` repositories `bench/scale/…`.
pub async fn ensure_scale_catalog(ctx: &Ctx) -> Result<()> {
    let n = ctx.plan.scale_entries;
    ensure_marked(
        ctx,
        &format!("repos-{n}"),
        create_repos(ctx, (0..n).map(scale_repo).collect()),
    )
    .await
}

/// Runs `create` unless marker tag `marker` exists, then sets the marker.
async fn ensure_marked(
    ctx: &Ctx,
    marker: &str,
    create: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    let url = format!("{}/v2/{SCALE_READY_REPO}/manifests/{marker}", ctx.base);
    let resp = ctx
        .client
        .head(&url)
        .header("accept", registry::OCI_MANIFEST)
        .send()
        .await?;
    if resp.status() == StatusCode::OK {
        return Ok(());
    }
    let started = std::time::Instant::now();
    eprintln!("  creating the {marker} scaling fixture (untimed)");
    create.await?;
    eprintln!(
        "  created the {marker} scaling fixture in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    create_tags(ctx, SCALE_READY_REPO, vec![marker.to_string()]).await
}

/// Pushes the fixture image's blobs to `repo`, then tags its manifest with
/// every name in `tags`.
async fn create_tags(ctx: &Ctx, repo: &'static str, tags: Vec<String>) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let img = Arc::new(fixture());
    img.push_blobs(&ctx.client, &ctx.base, repo).await?;
    let (c, tags) = (ctx.clone(), Arc::new(tags));
    parallel(SETUP_CONCURRENCY, tags.len(), move |i| {
        let (c, tags, img) = (c.clone(), tags.clone(), img.clone());
        async move {
            registry::put_manifest(
                &c.client,
                &c.base,
                repo,
                &tags[i],
                &img.manifest,
                &img.manifest_digest,
            )
            .await
        }
    })
    .await?;
    Ok(())
}

/// Creates each repository with the fixture image (blobs mounted from
/// `bench/tags`) under tag `v1`.
async fn create_repos(ctx: &Ctx, repos: Vec<String>) -> Result<()> {
    if repos.is_empty() {
        return Ok(());
    }
    let img = Arc::new(fixture());
    img.push_blobs(&ctx.client, &ctx.base, TAGS_REPO).await?;
    let (c, repos) = (ctx.clone(), Arc::new(repos));
    parallel(SETUP_CONCURRENCY, repos.len(), move |i| {
        let (c, repos, img) = (c.clone(), repos.clone(), img.clone());
        async move {
            let repo = &repos[i];
            for (data, digest) in [
                (&img.config, &img.config_digest),
                (&img.layer, &img.layer_digest),
            ] {
                registry::mount_or_push(&c.client, &c.base, repo, TAGS_REPO, data, digest).await?;
            }
            registry::put_manifest(
                &c.client,
                &c.base,
                repo,
                "v1",
                &img.manifest,
                &img.manifest_digest,
            )
            .await
        }
    })
    .await?;
    Ok(())
}
