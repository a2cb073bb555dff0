//! Read scenarios under concurrency: manifest HEAD/GET by tag, tag-list
//! walks and catalog walks, each for a fixed time.
//!
//! Fixtures (created untimed, only what is missing): repository `bench/tags`
//! holding one small image under `list_entries` tags `t000000…`, and
//! `list_entries` repositories `bench/cat/r000000…` with that image mounted
//! from `bench/tags`. Repository names are chosen so that byte order and a
//! directory walk's order agree. A complete walk must return every expected
//! entry exactly once; entries out of lexical order are noted in the result.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use reqwest::{Method, StatusCode};
use tokio::task::JoinSet;

use super::images::SmallImage;
use super::{collect, for_duration, parallel, Ctx};
use crate::registry::{self, get_page};
use crate::report::Work;

const TAGS_REPO: &str = "bench/tags";
const FIXTURE_LAYER: usize = 4096;
const SETUP_CONCURRENCY: usize = 8;

fn tag(i: usize) -> String {
    format!("t{i:06}")
}

fn cat_repo(i: usize) -> String {
    format!("bench/cat/r{i:06}")
}

fn fixture() -> SmallImage {
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
pub async fn ensure_tags(ctx: &Ctx) -> Result<SmallImage> {
    let img = fixture();
    let path = format!("/v2/{TAGS_REPO}/tags/list");
    let have: HashSet<String> = list_all(ctx, &path, "tags").await?.into_iter().collect();
    let missing: Vec<String> = (0..ctx.plan.list_entries)
        .map(tag)
        .filter(|t| !have.contains(t))
        .collect();
    if missing.is_empty() {
        return Ok(img);
    }
    img.push_blobs(&ctx.client, &ctx.base, TAGS_REPO).await?;
    let (c, missing) = (ctx.clone(), Arc::new(missing));
    let img2 = Arc::new(fixture());
    parallel(SETUP_CONCURRENCY, missing.len(), move |i| {
        let (c, missing, img) = (c.clone(), missing.clone(), img2.clone());
        async move {
            registry::put_manifest(
                &c.client,
                &c.base,
                TAGS_REPO,
                &missing[i],
                &img.manifest,
                &img.manifest_digest,
            )
            .await
        }
    })
    .await?;
    Ok(img)
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
    if missing.is_empty() {
        return Ok(());
    }
    let img = Arc::new(fixture());
    img.push_blobs(&ctx.client, &ctx.base, TAGS_REPO).await?;
    let (c, missing) = (ctx.clone(), Arc::new(missing));
    parallel(SETUP_CONCURRENCY, missing.len(), move |i| {
        let (c, missing, img) = (c.clone(), missing.clone(), img.clone());
        async move {
            let repo = &missing[i];
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

/// HEAD or GET of manifests by tag (tags spread over the fixture's tags).
pub async fn manifests(ctx: &Ctx, method: Method) -> Result<Work> {
    let digest = Arc::new(fixture().manifest_digest);
    let (c, n) = (ctx.clone(), ctx.plan.list_entries);
    let latencies = for_duration(ctx.plan.concurrency, ctx.plan.duration, move |w, i| {
        let (c, digest, method) = (c.clone(), digest.clone(), method.clone());
        let url = format!(
            "{}/v2/{TAGS_REPO}/manifests/{}",
            c.base,
            tag((w * 7919 + i * 104_729) % n)
        );
        async move { registry::fetch_manifest(&c.client, &url, method, &digest).await }
    })
    .await?;
    Ok(Work {
        ops: latencies.len() as u64,
        unit: "requests",
        latencies,
        ..Work::default()
    })
}

pub async fn tag_list(ctx: &Ctx) -> Result<Work> {
    let expected: Vec<String> = (0..ctx.plan.list_entries).map(tag).collect();
    walks(
        ctx,
        format!("/v2/{TAGS_REPO}/tags/list"),
        "tags",
        Expect::Exactly(expected),
    )
    .await
}

pub async fn catalog(ctx: &Ctx) -> Result<Work> {
    let expected: Vec<String> = (0..ctx.plan.list_entries).map(cat_repo).collect();
    walks(
        ctx,
        "/v2/_catalog".into(),
        "repositories",
        Expect::Contains(expected),
    )
    .await
}

/// What a complete walk must have returned.
enum Expect {
    Exactly(Vec<String>),
    Contains(Vec<String>),
}

impl Expect {
    /// Errors on missing, unexpected or repeated entries. Order is only
    /// noted: the reference registry returns tags in directory order, and its
    /// figures are still wanted.
    fn check(&self, got: &[String], what: &str, notes: &Mutex<BTreeSet<String>>) -> Result<()> {
        if got.windows(2).any(|w| w[0] >= w[1]) {
            let note = format!("entries not in strictly increasing lexical order ({what})");
            notes.lock().expect("lock").insert(note);
        }
        let unique: HashSet<&String> = got.iter().collect();
        if unique.len() != got.len() {
            bail!(
                "{what}: a walk returned {} entries of which only {} are distinct",
                got.len(),
                unique.len()
            );
        }
        let (want, exact) = match self {
            Expect::Exactly(w) => (w, true),
            Expect::Contains(w) => (w, false),
        };
        if let Some(m) = want.iter().find(|w| !unique.contains(w)) {
            bail!("{what}: a walk of {} entries lacks {m:?}", got.len());
        }
        if exact && got.len() != want.len() {
            bail!(
                "{what}: a walk returned {} entries, expected exactly the {} fixture entries",
                got.len(),
                want.len()
            );
        }
        Ok(())
    }
}

/// `concurrency` tasks walk the list page by page (n=page_size, following
/// Link) until the time is up; one latency per page, every complete walk
/// checked.
async fn walks(ctx: &Ctx, path: String, field: &'static str, expect: Expect) -> Result<Work> {
    let deadline = Instant::now() + ctx.plan.duration;
    let expect = Arc::new(expect);
    let notes = Arc::new(Mutex::new(BTreeSet::new()));
    let items = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for _ in 0..ctx.plan.concurrency.max(1) {
        let (c, expect, notes, items) = (ctx.clone(), expect.clone(), notes.clone(), items.clone());
        let first = format!("{}{path}?n={}", c.base, c.plan.page_size);
        set.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let walk =
                    walk_once(&c, &first, field, deadline, &mut latencies, &notes, &items).await?;
                if let Some(entries) = walk {
                    expect.check(&entries, &first, &notes)?;
                }
            }
            Ok(latencies)
        });
    }
    let latencies = collect(set).await?;
    let items = items.load(Ordering::Relaxed);
    let mut notes: Vec<String> = notes.lock().expect("lock").iter().cloned().collect();
    notes.push(format!("{items} entries in complete walks"));
    Ok(Work {
        ops: latencies.len() as u64,
        unit: "pages",
        latencies,
        notes,
        ..Work::default()
    })
}

/// One walk from the first page to the last; `None` if time ran out first.
async fn walk_once(
    c: &Ctx,
    first: &str,
    field: &str,
    deadline: Instant,
    latencies: &mut Vec<Duration>,
    notes: &Mutex<BTreeSet<String>>,
    items: &AtomicU64,
) -> Result<Option<Vec<String>>> {
    let mut url = Some(first.to_string());
    let mut all = Vec::new();
    while let Some(u) = url {
        if Instant::now() >= deadline {
            return Ok(None);
        }
        let t = Instant::now();
        let page = get_page(&c.client, &c.base, &u, field).await?;
        latencies.push(t.elapsed());
        items.fetch_add(page.entries.len() as u64, Ordering::Relaxed);
        if page.entries.len() > c.plan.page_size {
            let note = format!(
                "server ignored n={} and returned {} entries in one page",
                c.plan.page_size,
                page.entries.len()
            );
            notes.lock().expect("lock").insert(note);
        }
        all.extend(page.entries);
        url = page.next;
    }
    Ok(Some(all))
}
