//! `artispace push SOURCE TARGET`: copies an OCI layout, OCI archive or
//! Docker archive into the local store or a remote registry.
//!
//! The order keeps a failed push invisible: every blob first (in parallel,
//! each checked against its digest while it is copied), then child
//! manifests, and the root manifest (the one the tag names) last. Whatever
//! the target already holds is skipped, so pushing twice changes nothing.

pub mod local;
pub mod remote;
pub mod report;
pub mod source;
pub mod stream;
pub mod target;

use std::io::BufRead;
use std::path::PathBuf;

use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use indicatif::{MultiProgress, ProgressDrawTarget};

use super::output::{human_bytes, runtime, CommonArgs, Output};
use super::{exit, init_logging, LogFormat};
use crate::oci::{Reference, RepoName};
use crate::registry::{Registry, RegistryConfig};
use report::{short, Item, PushReport, Status};
use source::{Blob, ImageSet, Platform, SourceError};
use target::{Target, TargetRef};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// An OCI image layout directory, an OCI archive (.tar of a layout), or
    /// a Docker archive (`docker save`, `podman save`).
    pub source: PathBuf,

    /// `REPO:TAG` or `REPO@DIGEST` in the local store at --root, or a remote
    /// registry: `http://HOST:PORT/REPO:TAG`, `https://…`.
    pub target: String,

    /// Push only the image for this platform out of an index (`os/arch[/variant]`).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<Platform>,

    /// Blobs copied at the same time.
    #[arg(short = 'j', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// Size of the chunks of a remote upload (e.g. 16MiB, 512KiB, 1048576).
    #[arg(long, default_value = "16MiB", value_parser = parse_size, value_name = "SIZE")]
    pub chunk_size: u64,

    /// Repositories of the target registry to mount blobs from instead of
    /// uploading them (repeatable).
    #[arg(long, value_name = "REPO")]
    pub mount_from: Vec<RepoName>,

    /// User name for a remote registry.
    #[arg(long, env = "ARTISPACE_USERNAME")]
    pub username: Option<String>,

    /// Read the password from the first line of stdin (else ARTISPACE_PASSWORD).
    #[arg(long)]
    pub password_stdin: bool,

    /// How often a failed request to a remote registry is tried again.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub retries: u32,

    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unreachable(String),
}

impl PushError {
    fn exit_code(&self) -> i32 {
        match self {
            PushError::Usage(_) | PushError::Unreachable(_) => exit::USAGE,
            PushError::Source(e) if e.is_usage() => exit::USAGE,
            PushError::Source(_) | PushError::Refused(_) => exit::FOUND_PROBLEM,
        }
    }
}

pub fn run(args: PushArgs) -> i32 {
    let level = if args.common.quiet { "error" } else { "warn" };
    init_logging(level, LogFormat::Text);
    let output = Output::new(&args.common);
    match execute(&args, &output) {
        Ok(report) => {
            report.print(&output);
            exit::SUCCESS
        }
        Err(e) => {
            eprintln!("artispace push: {e}");
            if matches!(e, PushError::Source(SourceError::Corrupt { .. })) {
                eprintln!("artispace push: nothing was tagged; the target is unchanged");
            }
            e.exit_code()
        }
    }
}

fn execute(args: &PushArgs, output: &Output) -> Result<PushReport, PushError> {
    let target: TargetRef = args.target.parse().map_err(PushError::Usage)?;
    let credentials = credentials(args)?;
    let hashing = output.bytes_bar(0, "hashing layers");
    let set = source::open(&args.source, args.platform.as_ref(), &hashing)?;
    hashing.finish_and_clear();
    let root = set
        .root()
        .ok_or_else(|| PushError::Refused("the source holds nothing to push".into()))?;
    if let Reference::Digest(wanted) = &target.reference {
        if *wanted != root.digest {
            return Err(PushError::Refused(format!(
                "the source's manifest is {}, not the {wanted} the target names",
                root.digest
            )));
        }
    }
    output.note(format!(
        "pushing {} ({}, {}) to {target}",
        set.origin,
        count(set.blobs.len(), "blob"),
        count(set.manifests.len(), "manifest")
    ));
    let runtime =
        runtime().map_err(|e| PushError::Usage(format!("cannot start the async runtime: {e}")))?;
    let jobs = usize::from(args.jobs);
    let outcome = match &target.registry {
        None => {
            let registry = Registry::open_local(&args.common.root, RegistryConfig::default())
                .map_err(|e| {
                    PushError::Usage(format!(
                        "cannot open the store at {}: {e}",
                        args.common.root.display()
                    ))
                })?;
            let local = local::LocalTarget {
                registry,
                repo: target.repo.clone(),
                mount_from: args.mount_from.clone(),
            };
            runtime.block_on(push_set(&local, &set, &target.reference, jobs, output))
        }
        Some(url) => {
            let client = remote::RegistryClient::new(url.clone(), credentials, args.retries)?;
            let remote = remote::RemoteTarget {
                client,
                repo: target.repo.clone(),
                mount_from: args.mount_from.clone(),
                chunk_size: args.chunk_size,
            };
            runtime.block_on(push_set(&remote, &set, &target.reference, jobs, output))
        }
    };
    let (blobs, manifests) = outcome?;
    let mut report = PushReport {
        source: set.origin.clone(),
        target: target.to_string(),
        repository: target.repo.to_string(),
        reference: target.reference.to_string(),
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        size: root.bytes.len() as u64,
        manifests,
        blobs,
        totals: Default::default(),
    };
    report.count();
    Ok(report)
}

/// Blobs in parallel, then manifests in order, the root (under `reference`)
/// last.
async fn push_set<T: Target>(
    target: &T,
    set: &ImageSet,
    reference: &Reference,
    jobs: usize,
    output: &Output,
) -> Result<(Vec<Item>, Vec<Item>), PushError> {
    let bars = if output.chatty {
        MultiProgress::new()
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    };
    let blobs = futures_util::stream::iter(&set.blobs)
        .map(|blob| push_blob(target, blob, output, &bars))
        .buffered(jobs)
        .try_collect::<Vec<_>>()
        .await?;
    let mut manifests = Vec::new();
    for (i, manifest) in set.manifests.iter().enumerate() {
        let reference = if i + 1 == set.manifests.len() {
            reference.clone()
        } else {
            Reference::Digest(manifest.digest.clone())
        };
        let status = if target.manifest_digest(&reference).await?.as_ref() == Some(&manifest.digest)
        {
            Status::Skipped
        } else {
            target.put_manifest(&reference, manifest).await?;
            Status::Pushed
        };
        let _ = bars.println(format!(
            "manifest {} {}",
            short(&manifest.digest),
            status.as_str()
        ));
        manifests.push(Item {
            digest: manifest.digest.clone(),
            media_type: manifest.media_type.clone(),
            size: manifest.bytes.len() as u64,
            status,
        });
    }
    Ok((blobs, manifests))
}

async fn push_blob<T: Target>(
    target: &T,
    blob: &Blob,
    output: &Output,
    bars: &MultiProgress,
) -> Result<Item, PushError> {
    let status = if target.has_blob(blob).await? {
        Status::Skipped
    } else if target.mount_blob(blob).await? {
        Status::Mounted
    } else {
        // Made hidden and then handed to `bars`, which draws it (or not).
        let hidden = Output {
            chatty: false,
            ..output.clone()
        };
        let bar = bars.add(hidden.bytes_bar(blob.size, short(&blob.digest)));
        let uploaded = target.upload_blob(blob, &bar).await;
        bar.finish_and_clear();
        bars.remove(&bar);
        uploaded?;
        Status::Pushed
    };
    let _ = bars.println(format!(
        "blob     {} {} ({})",
        short(&blob.digest),
        status.as_str(),
        human_bytes(blob.size)
    ));
    Ok(Item {
        digest: blob.digest.clone(),
        media_type: blob.media_type.clone(),
        size: blob.size,
        status,
    })
}

fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// `--username` with a password from stdin or `ARTISPACE_PASSWORD`.
fn credentials(args: &PushArgs) -> Result<Option<remote::Credentials>, PushError> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| PushError::Usage(format!("cannot read the password from stdin: {e}")))?;
        Some(line.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        std::env::var("ARTISPACE_PASSWORD").ok()
    };
    match (&args.username, password) {
        (Some(username), Some(password)) => Ok(Some(remote::Credentials {
            username: username.clone(),
            password,
        })),
        (Some(_), None) => Err(PushError::Usage(
            "--username needs a password: --password-stdin or ARTISPACE_PASSWORD".into(),
        )),
        (None, Some(_)) if args.password_stdin => Err(PushError::Usage(
            "--password-stdin needs --username (or ARTISPACE_USERNAME)".into(),
        )),
        (None, _) => Ok(None),
    }
}

/// `16MiB`, `512KiB`, `16M`, `1048576` → bytes (at least 1).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 16MiB, 512KiB, 1048576)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    match number.checked_mul(factor) {
        Some(0) => Err("the size must be at least 1 byte".into()),
        Some(size) => Ok(size),
        None => Err(format!("{text:?} is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }
}
