//! What this machine allows, measured in the same run as the servers:
//! sha256 on one core (the sha2 crate, in memory) and fsynced disk writes
//! (`dd … conv=fsync`, one file and several files at once), with the CPU
//! time dd spent per GB: the kernel's own cost of writing through the page
//! cache at that moment, which every server pays too. The nginx static-file
//! baseline is a target (see `target.rs`), not a limit here.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::content::BlobSource;
use crate::report::LimitResult;

/// sha256 of `total` bytes of the random buffer on one core.
pub fn sha256_one_core(src: &BlobSource, total: u64, round: u32) -> LimitResult {
    let base = src.base();
    let start = Instant::now();
    let mut h = Sha256::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(base.len() as u64) as usize;
        h.update(&base[..n]);
        left -= n as u64;
    }
    std::hint::black_box(h.finalize());
    let secs = start.elapsed().as_secs_f64();
    LimitResult {
        limit: "sha256-1-core".into(),
        round,
        mb_per_s: total as f64 / 1e6 / secs,
        cpu_secs_per_gb: None,
        detail: format!("sha2 crate over {} MiB in memory", total >> 20),
    }
}

/// `files` concurrent `dd conv=fsync` writers of `total / files` bytes each,
/// into `dir` (which must be on the servers' disk). The input is random data
/// on tmpfs when there is one, so neither zeroes nor a slow source flatter or
/// hide the disk. The output stays in `dir` (deleting it could speed up the
/// next measurement); the caller deletes `dir` at the end of the run.
pub fn dd_fsync(
    src: &BlobSource,
    dir: &Path,
    total: u64,
    files: usize,
    round: u32,
) -> Result<LimitResult> {
    let files = files.max(1);
    let per_file = total / files as u64;
    let shm = Path::new("/dev/shm");
    let input_dir = if shm.is_dir() { shm } else { dir };
    let input = tempfile::Builder::new()
        .prefix("artispace-bench-dd-")
        .tempfile_in(input_dir)?;
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(input.as_file());
        let mut left = per_file;
        while left > 0 {
            let n = left.min(src.base().len() as u64) as usize;
            w.write_all(&src.base()[..n])?;
            left -= n as u64;
        }
        w.flush()?;
    }
    let cpu_before = reaped_children_cpu_secs();
    let start = Instant::now();
    let children = (0..files)
        .map(|i| {
            Command::new("dd")
                .arg(format!("if={}", input.path().display()))
                .arg(format!(
                    "of={}",
                    dir.join(format!("dd-r{round}-{files}-{i}")).display()
                ))
                .args(["bs=8M", "conv=fsync", "status=none"])
                .stdin(Stdio::null())
                .spawn()
                .context("spawning dd")
        })
        .collect::<Result<Vec<_>>>()?;
    for mut c in children {
        let status = c.wait()?;
        if !status.success() {
            bail!("dd failed: {status}");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = (per_file * files as u64) as f64;
    let cpu = reaped_children_cpu_secs() - cpu_before;
    Ok(LimitResult {
        limit: format!("disk-fsync-{files}"),
        round,
        mb_per_s: bytes / 1e6 / secs,
        cpu_secs_per_gb: (cpu > 0.0).then(|| cpu / (bytes / 1e9)),
        detail: format!(
            "{files} x dd bs=8M conv=fsync of {} MiB random data",
            per_file >> 20
        ),
    })
}

/// User and system CPU seconds of this process's children that have been
/// waited for (the dd runs: no server is reaped while they run).
fn reaped_children_cpu_secs() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` into the pointer it is given,
    // which points at zeroed space for exactly that.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0.0;
    }
    // SAFETY: the space was zeroed (a valid `rusage`) and getrusage
    // succeeded, so it holds the figures.
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
