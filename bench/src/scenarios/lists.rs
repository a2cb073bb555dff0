//! Read scenarios under concurrency, each for a fixed time: manifest
//! HEAD/GET by tag, tag-list and catalog walks (first page to last), and
//! single pages at random offsets (`last=`) of a small and, for the scaling
//! run, a large list.
//!
//! A complete walk must return every expected entry exactly once; entries
//! out of lexical order, pages larger than `n` and pages that do not start
//! right after `last` are noted in the result rather than failing it, because
//! the reference registry does all three for tag lists and its figures are
//! still wanted.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use reqwest::Method;
use tokio::task::JoinSet;

use super::fixtures::{cat_repo, fixture, scale_repo, scale_tag, tag, SCALE_TAGS_REPO, TAGS_REPO};
use super::{collect, for_duration, Ctx};
use crate::content::Prng;
use crate::registry::{self, get_page};
use crate::report::Work;

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
    let notes: Vec<String> = notes.lock().expect("lock").iter().cloned().collect();
    Ok(Work {
        ops: latencies.len() as u64,
        unit: "pages",
        items,
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

/// Single pages (n=page_size) starting after a random entry of a list of `n`
/// entries named by `name`: what one page costs anywhere in the list.
async fn random_pages(
    ctx: &Ctx,
    path: String,
    field: &'static str,
    n: usize,
    name: fn(usize) -> String,
) -> Result<Work> {
    let notes = Arc::new(Mutex::new(BTreeSet::new()));
    let items = Arc::new(AtomicU64::new(0));
    let page = ctx.plan.page_size;
    let span = n.saturating_sub(page + 1).max(1);
    let (c, notes2, items2) = (ctx.clone(), notes.clone(), items.clone());
    let latencies = for_duration(ctx.plan.concurrency, ctx.plan.duration, move |w, i| {
        let pick = (Prng::new(((w as u64) << 32) | i as u64).next_u64() % span as u64) as usize;
        let (c, notes, items) = (c.clone(), notes2.clone(), items2.clone());
        let (last, next) = (name(pick), name(pick + 1));
        let url = format!("{}{path}?n={page}&last={last}", c.base);
        async move {
            let p = get_page(&c.client, &c.base, &url, field).await?;
            items.fetch_add(p.entries.len() as u64, Ordering::Relaxed);
            let note = match p.entries.first() {
                None => bail!("GET {url} -> an empty page, expected the entries after {last}"),
                Some(_) if p.entries.len() > page => {
                    format!(
                        "server ignored n={page} and returned {} entries in one page",
                        p.entries.len()
                    )
                }
                Some(first) if *first != next => {
                    format!("a page after {last} started with {first}, not {next}")
                }
                Some(_) => return Ok(()),
            };
            notes.lock().expect("lock").insert(note);
            Ok(())
        }
    })
    .await?;
    let notes = notes.lock().expect("lock").iter().cloned().collect();
    let items = items.load(Ordering::Relaxed);
    Ok(Work {
        ops: latencies.len() as u64,
        unit: "pages",
        items,
        latencies,
        notes,
        ..Work::default()
    })
}

pub async fn tag_pages(ctx: &Ctx) -> Result<Work> {
    random_pages(
        ctx,
        format!("/v2/{TAGS_REPO}/tags/list"),
        "tags",
        ctx.plan.list_entries,
        tag,
    )
    .await
}

pub async fn tag_pages_scale(ctx: &Ctx) -> Result<Work> {
    let path = format!("/v2/{SCALE_TAGS_REPO}/tags/list");
    random_pages(ctx, path, "tags", ctx.plan.scale_entries, scale_tag).await
}

pub async fn catalog_pages(ctx: &Ctx) -> Result<Work> {
    random_pages(
        ctx,
        "/v2/_catalog".into(),
        "repositories",
        ctx.plan.list_entries,
        cat_repo,
    )
    .await
}

pub async fn catalog_pages_scale(ctx: &Ctx) -> Result<Work> {
    random_pages(
        ctx,
        "/v2/_catalog".into(),
        "repositories",
        ctx.plan.scale_entries,
        scale_repo,
    )
    .await
}
