//! Server resource usage read from /proc: CPU time and resident memory.
//!
//! A `ProcessMeter` brackets one scenario: it records CPU ticks at the start,
//! samples resident memory every 50 ms on its own OS thread (so a busy async
//! runtime cannot delay the samples), and reports deltas at the end. The
//! process and its descendants are summed, so nginx's workers count too.
//! `VmHWM` is a lifetime peak; the sampled `VmRSS` maximum is the per-scenario
//! peak.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// Resource figures of one scenario, for one server process tree.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User plus system CPU seconds.
    pub cpu_secs: f64,
    /// The part of `cpu_secs` spent in the kernel on the server's behalf
    /// (socket and page-cache copies, file system, page faults).
    pub system_cpu_secs: f64,
    /// Highest VmRSS seen by the 50 ms sampler during the scenario.
    pub peak_rss_mib: f64,
    /// VmRSS at the end of the scenario.
    pub rss_end_mib: f64,
    /// VmHWM at the end of the scenario (peak over the process lifetime).
    pub vm_hwm_mib: f64,
}

/// All processes of the tree rooted at `pid` (children listed by the kernel).
fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let children =
                    std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                all.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
        i += 1;
    }
    all
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU time of a process, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct CpuTicks {
    user: u64,
    system: u64,
}

impl CpuTicks {
    fn total(self) -> u64 {
        self.user + self.system
    }

    fn since(self, earlier: CpuTicks) -> CpuTicks {
        CpuTicks {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

impl std::iter::Sum for CpuTicks {
    fn sum<I: Iterator<Item = CpuTicks>>(iter: I) -> CpuTicks {
        iter.fold(CpuTicks::default(), |a, b| CpuTicks {
            user: a.user + b.user,
            system: a.system + b.system,
        })
    }
}

/// utime and stime of one process.
fn cpu_ticks(pid: u32) -> CpuTicks {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return CpuTicks::default();
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return CpuTicks::default();
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    CpuTicks {
        user: get(11),
        system: get(12),
    }
}

/// A `kB` field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) this bench process has used so far: the
/// client shares the cores with the server, so its cost is part of the story.
pub fn own_cpu_secs() -> f64 {
    cpu_ticks(std::process::id()).total() as f64 / clock_ticks_per_sec()
}

fn tree_cpu_ticks(pid: u32) -> CpuTicks {
    process_tree(pid).into_iter().map(cpu_ticks).sum()
}

fn tree_kib(pid: u32, field: &str) -> u64 {
    process_tree(pid)
        .into_iter()
        .map(|p| status_kib(p, field))
        .sum()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Whether a process with this id is alive (and readable).
pub fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
}

pub struct ProcessMeter {
    pid: Option<u32>,
    start_ticks: CpuTicks,
    stop: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
    sampler: Option<JoinHandle<()>>,
}

impl ProcessMeter {
    /// Starts metering `pid` (or nothing, for a target without a known pid).
    pub fn start(pid: Option<u32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let (start_ticks, sampler) = match pid {
            Some(pid) => {
                peak_kib.store(tree_kib(pid, "VmRSS"), Ordering::Relaxed);
                let (stop, peak) = (stop.clone(), peak_kib.clone());
                let handle = std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        peak.fetch_max(tree_kib(pid, "VmRSS"), Ordering::Relaxed);
                        std::thread::sleep(SAMPLE_EVERY);
                    }
                });
                (tree_cpu_ticks(pid), Some(handle))
            }
            None => (CpuTicks::default(), None),
        };
        ProcessMeter {
            pid,
            start_ticks,
            stop,
            peak_kib,
            sampler,
        }
    }

    pub fn finish(mut self) -> Option<Usage> {
        let pid = self.pid?;
        let rss_end = tree_kib(pid, "VmRSS");
        self.peak_kib.fetch_max(rss_end, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.sampler.take() {
            let _ = h.join();
        }
        let ticks = tree_cpu_ticks(pid).since(self.start_ticks);
        let secs = |t: u64| t as f64 / clock_ticks_per_sec();
        Some(Usage {
            cpu_secs: secs(ticks.total()),
            system_cpu_secs: secs(ticks.system),
            peak_rss_mib: mib(self.peak_kib.load(Ordering::Relaxed)),
            rss_end_mib: mib(rss_end),
            vm_hwm_mib: mib(tree_kib(pid, "VmHWM")),
        })
    }
}

impl Drop for ProcessMeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_this_process() {
        let me = std::process::id();
        let m = ProcessMeter::start(Some(me));
        // Busy until the kernel has charged this process a few ticks.
        let until = own_cpu_secs() + 0.05;
        let mut x = 0u64;
        while own_cpu_secs() < until {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        let u = m.finish().expect("usage");
        assert!(u.peak_rss_mib > 0.0 && u.vm_hwm_mib >= u.rss_end_mib);
        assert!(u.cpu_secs > 0.0, "a busy loop used no CPU: {u:?}");
        assert!(u.system_cpu_secs <= u.cpu_secs);
    }
}
