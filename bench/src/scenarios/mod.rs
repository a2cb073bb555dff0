//! The scenarios, and the runner that times and meters them.
//!
//! A scenario has an untimed `prepare` (make sure the blobs, tags or
//! repositories it needs exist: every scenario can run alone, against any
//! registry) and a timed `execute` that returns the `Work` done. The runner
//! alone owns timing and server metering, so every scenario is measured the
//! same way whichever target it runs against.

mod blobs;
mod fixtures;
pub mod images;
mod lists;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use reqwest::Client;
use tokio::task::JoinSet;

use crate::content::BlobSource;
use crate::proc_stats::{own_cpu_secs, ProcessMeter};
use crate::report::{ScenarioResult, Work};
use crate::target::{Target, TargetKind};

/// Sizes and durations of one run (after `--quick` and explicit flags).
#[derive(Clone, Debug)]
pub struct Plan {
    /// Bytes pushed (and pulled) per large-blob scenario.
    pub large_total: u64,
    /// Size of each large blob.
    pub blob_size: u64,
    /// PATCH size of the chunked push.
    pub chunk: u64,
    /// The single blob pushed and pulled while watching server RSS.
    pub big_blob: u64,
    pub small_images: usize,
    pub small_layer: usize,
    /// Tags in the tag-list repository and repositories in the catalog.
    pub list_entries: usize,
    pub page_size: usize,
    /// Tags and repositories of the scaling run's large lists (0: no scaling run).
    pub scale_entries: usize,
    /// Length of each fixed-time scenario.
    pub duration: Duration,
    /// Concurrency of the manifest and list scenarios.
    pub concurrency: usize,
    /// Concurrency of the small-image push.
    pub push_concurrency: usize,
    pub scenario_timeout: Duration,
}

impl Plan {
    pub fn large_blob_count(&self) -> usize {
        self.large_total.div_ceil(self.blob_size).max(1) as usize
    }
}

/// Everything a scenario needs, cheap to clone into worker tasks.
#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    pub base: String,
    pub kind: TargetKind,
    pub static_root: Option<PathBuf>,
    pub src: Arc<BlobSource>,
    pub plan: Arc<Plan>,
    pub round: u32,
}

impl Ctx {
    pub fn new(
        target: &Target,
        client: &Client,
        src: &Arc<BlobSource>,
        plan: &Arc<Plan>,
        round: u32,
    ) -> Ctx {
        Ctx {
            client: client.clone(),
            base: target.base_url.clone(),
            kind: target.kind,
            static_root: target.static_root.clone(),
            src: src.clone(),
            plan: plan.clone(),
            round,
        }
    }
}

macro_rules! scenarios {
    ($($variant:ident => $name:literal : $about:literal,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Scenario { $($variant,)* }

        impl Scenario {
            pub const ALL: &'static [Scenario] = &[$(Scenario::$variant,)*];

            pub fn name(self) -> &'static str {
                match self { $(Scenario::$variant => $name,)* }
            }

            pub fn about(self) -> &'static str {
                match self { $(Scenario::$variant => $about,)* }
            }
        }
    };
}

scenarios! {
    Push1 => "push-1": "monolithic push (POST + PUT ?digest=, streamed) of the large blobs, 1 stream",
    Push4 => "push-4": "monolithic push of the large blobs, 4 concurrent streams",
    PushChunked => "push-chunked": "chunked push, 8 MiB PATCHes with Content-Range, then PUT ?digest=",
    PushPaired => "push-paired": "monolithic and chunked pushes of equal blobs alternated blob by blob, each kind timed on its own: what chunking costs under the same disk",
    Pull1 => "pull-1": "blob GET of the large blobs, sha256 verified while streaming, 1 stream",
    Pull4 => "pull-4": "blob GET, sha256 verified, 4 concurrent streams",
    BigPush => "big-push": "one 2 GiB blob pushed (watch server peak RSS)",
    BigPull => "big-pull": "the 2 GiB blob pulled and verified (watch server peak RSS)",
    SmallImages => "small-images": "small images pushed: config blob + layer blob + manifest by tag",
    ManifestHead => "manifest-head": "manifest HEAD by tag, fixed time",
    ManifestGet => "manifest-get": "manifest GET by tag, body digest verified, fixed time",
    TagList => "tag-list": "walks of a 1000-tag list paged by n=100 following Link, fixed time",
    Catalog => "catalog": "walks of the catalog (1000 repositories) paged by n=100, fixed time",
    Mixed => "mixed": "2 streams pushing new blobs while 2 streams pull existing ones",
    TagPage => "tag-page": "single tag-list pages (n=100) after a random last= of the 1000-tag list, fixed time",
    CatalogPage => "catalog-page": "single catalog pages (n=100) after a random last=, fixed time",
    TagPageScale => "tag-page-scale": "as tag-page on a list of --scale-entries tags (only with --scale-entries)",
    CatalogPageScale => "catalog-page-scale": "as catalog-page over --scale-entries repositories (only with --scale-entries)",
}

impl Scenario {
    pub fn parse(name: &str) -> Result<Scenario> {
        Scenario::ALL
            .iter()
            .copied()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                anyhow!(
                    "unknown scenario {name:?}; known: {}",
                    Scenario::names().join(", ")
                )
            })
    }

    pub fn names() -> Vec<&'static str> {
        Scenario::ALL.iter().map(|s| s.name()).collect()
    }

    /// Whether the scenario runs on a kind of target (nginx serves files:
    /// only pulls) under this plan (the scaling run is opt-in).
    pub fn applies_to(self, kind: TargetKind, plan: &Plan) -> bool {
        let scaling = matches!(self, Scenario::TagPageScale | Scenario::CatalogPageScale);
        match kind {
            _ if scaling && plan.scale_entries == 0 => false,
            TargetKind::Registry => true,
            TargetKind::StaticFiles => matches!(self, Scenario::Pull1 | Scenario::Pull4),
            TargetKind::BareReceiver => self.is_blob_push(),
        }
    }

    /// The scenarios that push large blobs: issue 5's CPU-per-GB-pushed row.
    pub fn is_blob_push(self) -> bool {
        use Scenario::*;
        matches!(self, Push1 | Push4 | PushChunked | BigPush)
    }

    async fn prepare(self, ctx: &Ctx) -> Result<()> {
        use Scenario::*;
        match self {
            Pull1 | Pull4 | Mixed => blobs::ensure_pull_blobs(ctx).await,
            BigPull => blobs::ensure_big_blob(ctx).await,
            ManifestHead | ManifestGet | TagList | TagPage => fixtures::ensure_tags(ctx).await,
            Catalog | CatalogPage => fixtures::ensure_catalog(ctx).await,
            TagPageScale => fixtures::ensure_scale_tags(ctx).await,
            CatalogPageScale => fixtures::ensure_scale_catalog(ctx).await,
            Push1 | Push4 | PushChunked | PushPaired => {
                blobs::warm(ctx, ctx.plan.blob_size);
                Ok(())
            }
            BigPush => {
                blobs::warm(ctx, ctx.plan.big_blob);
                Ok(())
            }
            SmallImages => Ok(()),
        }
    }

    async fn execute(self, ctx: &Ctx) -> Result<Work> {
        use Scenario::*;
        match self {
            Push1 => blobs::push_monolithic(ctx, 1).await,
            Push4 => blobs::push_monolithic(ctx, 4).await,
            PushChunked => blobs::push_chunked(ctx).await,
            PushPaired => blobs::push_paired(ctx).await,
            Pull1 => blobs::pull(ctx, 1).await,
            Pull4 => blobs::pull(ctx, 4).await,
            BigPush => blobs::big_push(ctx).await,
            BigPull => blobs::big_pull(ctx).await,
            SmallImages => images::push_small_images(ctx).await,
            ManifestHead => lists::manifests(ctx, reqwest::Method::HEAD).await,
            ManifestGet => lists::manifests(ctx, reqwest::Method::GET).await,
            TagList => lists::tag_list(ctx).await,
            Catalog => lists::catalog(ctx).await,
            Mixed => blobs::mixed(ctx).await,
            TagPage => lists::tag_pages(ctx).await,
            CatalogPage => lists::catalog_pages(ctx).await,
            TagPageScale => lists::tag_pages_scale(ctx).await,
            CatalogPageScale => lists::catalog_pages_scale(ctx).await,
        }
    }
}

/// Prepares, then times and meters one scenario against one target.
pub async fn run_scenario(
    target: &Target,
    ctx: &Ctx,
    scenario: Scenario,
) -> Result<ScenarioResult> {
    let limit = ctx.plan.scenario_timeout;
    let timed = async {
        scenario
            .prepare(ctx)
            .await
            .map_err(|e| e.context("preparing (untimed)"))?;
        let meter = ProcessMeter::start(target.pid);
        let client_cpu = own_cpu_secs();
        let start = Instant::now();
        let work = scenario.execute(ctx).await?;
        let elapsed = start.elapsed();
        let client_cpu = own_cpu_secs() - client_cpu;
        let usage = meter.finish();
        Ok(ScenarioResult::new(
            &target.name,
            scenario.name(),
            ctx.round,
            work,
            elapsed,
            usage,
            client_cpu,
        ))
    };
    match tokio::time::timeout(limit, timed).await {
        Ok(r) => r,
        Err(_) => bail!(
            "{} against {} did not finish within {limit:?}",
            scenario.name(),
            target.name
        ),
    }
}

/// Runs `jobs` numbered jobs on `workers` tasks (spread over the runtime's
/// threads, so the client's hashing uses every core); returns one latency per
/// job. The first error cancels the rest.
pub async fn parallel<F, Fut>(workers: usize, jobs: usize, job: F) -> Result<Vec<Duration>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let mut set = JoinSet::new();
    for _ in 0..workers.max(1) {
        let (next, job) = (next.clone(), job.clone());
        set.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs {
                    return Ok(latencies);
                }
                let t = Instant::now();
                job(i).await?;
                latencies.push(t.elapsed());
            }
        });
    }
    collect(set).await
}

/// Runs `workers` tasks that repeat `job(worker, iteration)` until `duration`
/// has passed; returns one latency per completed job.
pub async fn for_duration<F, Fut>(
    workers: usize,
    duration: Duration,
    job: F,
) -> Result<Vec<Duration>>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let deadline = Instant::now() + duration;
    let job = Arc::new(job);
    let mut set = JoinSet::new();
    for w in 0..workers.max(1) {
        let job = job.clone();
        set.spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                job(w, i).await?;
                latencies.push(t.elapsed());
                i += 1;
            }
            Ok(latencies)
        });
    }
    collect(set).await
}

async fn collect(mut set: JoinSet<Result<Vec<Duration>>>) -> Result<Vec<Duration>> {
    let mut all = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(l) => all.extend(l),
            Err(e) => {
                set.abort_all();
                return Err(e);
            }
        }
    }
    Ok(all)
}
