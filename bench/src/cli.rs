//! Command line: subcommands, flags, and the `--quick` preset.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::scenarios::{Plan, Scenario};

const MIB: u64 = 1 << 20;

#[derive(Parser)]
#[command(
    name = "artispace-bench",
    version,
    about = "Benchmark for artispace serve (and, side by side, Debian's docker-registry)",
    long_about = "Benchmark for artispace serve: large blob push/pull (1 and 4 streams), chunked push, \
a 2 GiB blob while sampling server RSS, small image pushes, manifest HEAD/GET, tag-list and catalog \
pagination. Prints MB/s, requests/s, p50/p99 latency and the server's CPU seconds and peak RSS per \
scenario. MB = 10^6 bytes, MiB = 2^20.\n\n\
Quick smoke run:  cargo run --release -p artispace-bench -- run --quick\n\
Full run:         cargo run --release -p artispace-bench -- run\n\
Side by side:     cargo run --release -p artispace-bench -- compare --rounds 3"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the scenarios against artispace (spawned from --server-bin, or an already running registry
    /// given by --url/--pid) and print the figures.
    Run(RunArgs),
    /// Run the same scenarios against artispace and Debian's docker-registry (installed when missing),
    /// alternating their order over --rounds, measure this machine's limits (sha256 on one core, fsynced
    /// disk writes with dd, nginx sendfile pulls) and print ratios.
    Compare(CompareArgs),
    /// List the scenarios and what each measures.
    Scenarios,
    /// Time `artispace gc` and `artispace verify` on stores of growing size (small images pushed
    /// through the API, half of them deleted again), to see that the time grows linearly.
    GcScale(GcScaleArgs),
    /// The push floor `compare` runs beside the registries: receives blobs over HTTP, hashes them and
    /// fsyncs them to files, nothing more (see bench/src/bare_receiver.rs).
    #[command(hide = true)]
    BareReceiver {
        #[arg(long)]
        addr: std::net::SocketAddr,
        #[arg(long)]
        root: PathBuf,
    },
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// Benchmark an already running registry at this base URL (e.g. http://127.0.0.1:5000) instead of
    /// spawning one.
    #[arg(long)]
    pub url: Option<String>,
    /// Process id of the registry given by --url, for CPU and memory figures.
    #[arg(long, requires = "url")]
    pub pid: Option<u32>,
    /// Name of the target in the output.
    #[arg(long, default_value = "artispace")]
    pub name: String,
}

#[derive(Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub common: Common,
    /// Skip the nginx static-file baseline.
    #[arg(long)]
    pub no_nginx: bool,
    /// Skip the bare receiver (the push floor: receive, hash, write, fsync, nothing else).
    #[arg(long)]
    pub no_bare_receiver: bool,
    /// Skip measuring sha256 and disk limits.
    #[arg(long)]
    pub no_limits: bool,
    /// MiB written by each dd fsync measurement [default: 1024, --quick: 128].
    #[arg(long)]
    pub limit_mib: Option<u64>,
}

#[derive(Args)]
pub struct GcScaleArgs {
    #[command(flatten)]
    pub setup: Setup,
    /// Blobs in each store measured, smallest first (two per image).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    pub blobs: Vec<usize>,
    /// Leave each store in --work-dir and print where (to profile the commands on it).
    #[arg(long)]
    pub keep: bool,
}

/// What every command that starts servers needs: which binary, where their
/// data goes, where the figures go.
#[derive(Args)]
pub struct Setup {
    /// The artispace binary to spawn [default: $CARGO_TARGET_DIR/release/artispace when that variable
    /// is set, else <workspace>/target/release/artispace]. The bench never builds it.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Where servers' temporary roots and dd files go; must be on the disk being measured
    /// [default: the system temporary folder].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also write every figure as JSON lines to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

impl Setup {
    pub fn server_bin(&self) -> PathBuf {
        if let Some(p) = &self.server_bin {
            return p.clone();
        }
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
        target_dir.join("release").join("artispace")
    }

    pub fn work_dir(&self) -> PathBuf {
        self.work_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

#[derive(Args)]
pub struct Common {
    #[command(flatten)]
    pub setup: Setup,
    /// Small sizes and short durations for a smoke test (well under a minute); explicit size flags
    /// still win.
    #[arg(long)]
    pub quick: bool,
    /// MiB pushed (and pulled) by each large-blob scenario [default: 1024, --quick: 128].
    #[arg(long)]
    pub large_total_mib: Option<u64>,
    /// Size of each large blob in MiB [default: 64, --quick: 16].
    #[arg(long)]
    pub blob_mib: Option<u64>,
    /// PATCH size of the chunked push in MiB.
    #[arg(long, default_value_t = 8)]
    pub chunk_mib: u64,
    /// Size of the single blob pushed and pulled while sampling server RSS [default: 2048, --quick: 256].
    #[arg(long)]
    pub big_blob_mib: Option<u64>,
    /// Number of small images pushed [default: 1000, --quick: 100].
    #[arg(long)]
    pub small_images: Option<usize>,
    /// Layer size of each small image, in bytes.
    #[arg(long, default_value_t = 4096)]
    pub small_layer_bytes: usize,
    /// Tags in the tag-list repository and repositories in the catalog [default: 1000, --quick: 200].
    #[arg(long)]
    pub list_entries: Option<usize>,
    /// Entries of the scaling run's large tag list and catalog (issue 5 uses 100000); 0 skips the
    /// tag-page-scale and catalog-page-scale scenarios. Creating the fixture takes minutes.
    #[arg(long, default_value_t = 0)]
    pub scale_entries: usize,
    /// Page size (n=) for tag-list and catalog walks.
    #[arg(long, default_value_t = 100)]
    pub page_size: usize,
    /// Seconds each fixed-time scenario (manifest HEAD/GET, tag list, catalog) runs [default: 10,
    /// --quick: 2].
    #[arg(long)]
    pub duration_secs: Option<f64>,
    /// Concurrent requests in the manifest, tag-list and catalog scenarios.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Images in flight in the small-image push.
    #[arg(long, default_value_t = 4)]
    pub push_concurrency: usize,
    /// Comma-separated scenarios to run, in this order (see the `scenarios` subcommand) [default: all].
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Times to repeat every scenario (compare: rounds, each on fresh servers, order alternated).
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Seed of the random content.
    #[arg(long, default_value_t = 0x00a7_15ba_ce00)]
    pub seed: u64,
    /// A scenario taking longer than this fails.
    #[arg(long, default_value_t = 900)]
    pub scenario_timeout_secs: u64,
}

impl Common {
    fn pick<T>(&self, flag: Option<T>, full: T, quick: T) -> T {
        flag.unwrap_or(if self.quick { quick } else { full })
    }

    pub fn plan(&self) -> Plan {
        Plan {
            large_total: self.pick(self.large_total_mib, 1024, 128) * MIB,
            blob_size: self.pick(self.blob_mib, 64, 16).max(1) * MIB,
            chunk: self.chunk_mib.max(1) * MIB,
            big_blob: self.pick(self.big_blob_mib, 2048, 256).max(1) * MIB,
            small_images: self.pick(self.small_images, 1000, 100),
            small_layer: self.small_layer_bytes.max(1),
            list_entries: self.pick(self.list_entries, 1000, 200).max(1),
            page_size: self.page_size.max(1),
            scale_entries: self.scale_entries,
            duration: Duration::from_secs_f64(self.pick(self.duration_secs, 10.0, 2.0).max(0.1)),
            concurrency: self.concurrency.max(1),
            push_concurrency: self.push_concurrency.max(1),
            scenario_timeout: Duration::from_secs(self.scenario_timeout_secs),
        }
    }

    pub fn scenarios(&self) -> Result<Vec<Scenario>> {
        if self.scenarios.is_empty() {
            return Ok(Scenario::ALL.to_vec());
        }
        self.scenarios
            .iter()
            .map(|s| Scenario::parse(s.trim()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn quick_preset_is_small_and_flags_override_it() {
        let cli = Cli::parse_from(["b", "run", "--quick", "--small-images", "7"]);
        let Command::Run(args) = cli.command else {
            panic!("run")
        };
        let plan = args.common.plan();
        assert_eq!(plan.small_images, 7);
        assert_eq!(plan.large_total, 128 * MIB);
        assert_eq!(plan.duration, Duration::from_secs(2));
    }
}
