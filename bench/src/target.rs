//! The servers a benchmark runs against, and how each was started.
//!
//! A `Target` is a base URL plus, when known, the process id whose CPU and
//! memory are sampled. Targets the bench spawned (artispace, Debian's
//! `docker-registry`, nginx for the static-file baseline) live in their own
//! temporary folder (store root, config, logs) and are stopped with SIGTERM
//! when the target is stopped or dropped. An external target (`--url`) is
//! never touched beyond HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tempfile::TempDir;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// What kind of server a target is; decides which scenarios apply and how
/// blobs are addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// A Docker Registry V2 / OCI distribution registry (ours or the reference).
    Registry,
    /// nginx serving files from `static_root`: the ceiling for blob pulls.
    StaticFiles,
    /// The bench's own bare receiver: the floor of a push's cost (push
    /// scenarios only; see `bare_receiver.rs`).
    BareReceiver,
}

/// How the target came to be running.
#[derive(Clone, Debug)]
pub enum Origin {
    Spawned { command: String },
    External,
}

pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    pub base_url: String,
    pub pid: Option<u32>,
    pub origin: Origin,
    /// Where a StaticFiles target serves files from.
    pub static_root: Option<PathBuf>,
    child: Option<Child>,
    workdir: Option<TempDir>,
    log_path: Option<PathBuf>,
}

impl Target {
    /// A registry that is already running; nothing is started or stopped.
    pub fn external(name: &str, url: &str, pid: Option<u32>) -> Target {
        Target {
            name: name.to_string(),
            kind: TargetKind::Registry,
            base_url: url.trim_end_matches('/').to_string(),
            pid,
            origin: Origin::External,
            static_root: None,
            child: None,
            workdir: None,
            log_path: None,
        }
    }

    /// Starts `artispace serve` on a free loopback port with a fresh root, and
    /// learns the port from the line it prints on stdout.
    pub async fn spawn_artispace(bin: &Path, work_parent: &Path) -> Result<Target> {
        if !bin.exists() {
            bail!(
                "server binary {} not found: build it with `cargo build --release` or pass --server-bin",
                bin.display()
            );
        }
        let workdir = tempdir_in(work_parent, "artispace")?;
        let root = workdir.path().join("root");
        let log_path = workdir.path().join("server.log");
        let mut cmd = Command::new(bin);
        cmd.args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--log-level",
            "warn",
            "--root",
        ])
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path)?);
        let command = describe(&cmd);
        let mut child = cmd.spawn().with_context(|| format!("spawning {command}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let url = match read_listening_line(stdout) {
            Ok(url) => url,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{e}; server log:\n{}", tail(&log_path));
            }
        };
        let target = Target {
            name: "artispace".into(),
            kind: TargetKind::Registry,
            base_url: url,
            pid: Some(child.id()),
            origin: Origin::Spawned { command },
            static_root: None,
            child: Some(child),
            workdir: Some(workdir),
            log_path: Some(log_path),
        };
        target.wait_ready("/v2/").await?;
        Ok(target)
    }

    /// Starts Debian's `docker-registry` (CNCF distribution 2.x), installing the
    /// package when missing, with filesystem storage in a fresh folder.
    pub async fn spawn_docker_registry(work_parent: &Path) -> Result<Target> {
        let bin = ensure_installed("docker-registry", "docker-registry")?;
        let workdir = tempdir_in(work_parent, "docker-registry")?;
        let port = free_port()?;
        let root = workdir.path().join("root");
        std::fs::create_dir_all(&root)?;
        let config = workdir.path().join("config.yml");
        std::fs::write(&config, registry_config(&root, port))?;
        let log_path = workdir.path().join("server.log");
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg(&config);
        let target = spawn_logged(cmd, "docker-registry", port, workdir, log_path)?;
        target.wait_ready("/v2/").await?;
        Ok(target)
    }

    /// Starts nginx serving a folder of static files with sendfile: the same
    /// client pulling plain files shows what the machine allows.
    pub async fn spawn_nginx(work_parent: &Path) -> Result<Target> {
        let bin = ensure_installed("nginx", "nginx-light")?;
        let workdir = tempdir_in(work_parent, "nginx")?;
        let port = free_port()?;
        let www = workdir.path().join("www");
        std::fs::create_dir_all(&www)?;
        let config = workdir.path().join("nginx.conf");
        std::fs::write(&config, nginx_config(workdir.path(), &www, port))?;
        let log_path = workdir.path().join("error.log");
        let mut cmd = Command::new(bin);
        cmd.arg("-p")
            .arg(workdir.path())
            .arg("-c")
            .arg(&config)
            .arg("-e")
            .arg(&log_path);
        let mut target = spawn_logged(cmd, "nginx", port, workdir, log_path)?;
        target.kind = TargetKind::StaticFiles;
        target.static_root = Some(www);
        std::fs::write(
            target.static_root.as_ref().expect("set").join("ping"),
            b"ok",
        )?;
        target.wait_ready("/ping").await?;
        Ok(target)
    }

    /// Starts this bench binary's `bare-receiver` (the push floor) on a free
    /// loopback port, writing into a fresh folder.
    pub async fn spawn_bare_receiver(work_parent: &Path) -> Result<Target> {
        let bin = std::env::current_exe().context("finding the bench's own binary")?;
        let workdir = tempdir_in(work_parent, "bare-receiver")?;
        let port = free_port()?;
        let log_path = workdir.path().join("receiver.log");
        let mut cmd = Command::new(bin);
        cmd.arg("bare-receiver")
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--root")
            .arg(workdir.path().join("blobs"));
        let mut target = spawn_logged(cmd, "bare-receiver", port, workdir, log_path)?;
        target.kind = TargetKind::BareReceiver;
        target.wait_ready("/v2/").await?;
        Ok(target)
    }

    /// Polls `path` until it answers 200, or the server exits, or time runs out.
    pub async fn wait_ready(&self, path: &str) -> Result<()> {
        let client = reqwest::Client::new();
        let url = format!("{}{path}", self.base_url);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = client.get(&url).send().await {
                if r.status() == 200 {
                    return Ok(());
                }
            }
            if let Some(pid) = self.pid {
                if !crate::proc_stats::process_exists(pid) {
                    bail!("{} exited during start-up{}", self.name, self.log_suffix());
                }
            }
            if Instant::now() > deadline {
                let name = &self.name;
                bail!(
                    "{name} did not answer 200 on {url} within {START_TIMEOUT:?}{}",
                    self.log_suffix()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// "; log:" and the log's tail, or nothing for a target without a log.
    fn log_suffix(&self) -> String {
        match self.log_tail() {
            t if t.is_empty() => String::new(),
            t => format!("; log:\n{t}"),
        }
    }

    /// The store root of a registry the bench spawned (the admin commands
    /// open it); `None` for an external one.
    pub fn store_root(&self) -> Option<PathBuf> {
        self.workdir.as_ref().map(|dir| dir.path().join("root"))
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        self.log_path.as_deref().map(tail).unwrap_or_default()
    }

    /// Stops a spawned server (SIGTERM, then SIGKILL after a bounded wait) and
    /// hands back its folder, so the caller decides when data is deleted.
    pub fn stop(mut self) -> Option<TempDir> {
        self.terminate();
        self.workdir.take()
    }

    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{} did not stop within {STOP_TIMEOUT:?} of SIGTERM; killing it",
            self.name
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn tempdir_in(parent: &Path, prefix: &str) -> Result<TempDir> {
    std::fs::create_dir_all(parent)?;
    tempfile::Builder::new()
        .prefix(&format!("artispace-bench-{prefix}-"))
        .tempdir_in(parent)
        .with_context(|| format!("creating a temporary folder in {}", parent.display()))
}

fn spawn_logged(
    mut cmd: Command,
    name: &str,
    port: u16,
    workdir: TempDir,
    log_path: PathBuf,
) -> Result<Target> {
    let log = std::fs::File::create(&log_path)?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let command = describe(&cmd);
    let child = cmd.spawn().with_context(|| format!("spawning {command}"))?;
    Ok(Target {
        name: name.into(),
        kind: TargetKind::Registry,
        base_url: format!("http://127.0.0.1:{port}"),
        pid: Some(child.id()),
        origin: Origin::Spawned { command },
        static_root: None,
        child: Some(child),
        workdir: Some(workdir),
        log_path: Some(log_path),
    })
}

/// Waits for `artispace listening on http://…` on the server's stdout, then
/// keeps draining stdout on a thread so the server never blocks on it.
fn read_listening_line(stdout: std::process::ChildStdout) -> Result<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(first);
        for _ in lines.by_ref() {}
    });
    let line = match rx.recv_timeout(START_TIMEOUT) {
        Ok(Some(Ok(line))) => line,
        Ok(_) => bail!("server closed stdout before printing its listening line"),
        Err(_) => bail!("server printed no listening line within {START_TIMEOUT:?}"),
    };
    line.trim()
        .strip_prefix("artispace listening on ")
        .map(|u| u.trim_end_matches('/').to_string())
        .ok_or_else(|| anyhow!("unexpected first stdout line from server: {line:?}"))
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A loopback port that was free a moment ago (for servers that cannot
/// report the port they bound).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn find_in_path(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Finds `bin`, installing Debian package `package` with apt-get when missing.
pub fn ensure_installed(bin: &str, package: &str) -> Result<PathBuf> {
    if let Some(p) = find_in_path(bin) {
        return Ok(p);
    }
    eprintln!("{bin} not found: installing Debian package {package}");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    if !install().is_ok_and(|s| s.success()) {
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        let status = install().context("running apt-get")?;
        if !status.success() {
            bail!("apt-get install {package} failed ({status})");
        }
    }
    find_in_path(bin).ok_or_else(|| anyhow!("{package} installed but {bin} is still not on PATH"))
}

/// The reference registry's configuration: Debian's defaults (in-memory blob
/// descriptor cache) with storage, port and logging set for the bench.
fn registry_config(root: &Path, port: u16) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        root.display()
    )
}

fn nginx_config(prefix: &Path, www: &Path, port: u16) -> String {
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;\n"
    } else {
        ""
    };
    let p = prefix.display();
    format!(
        "{user}daemon off;\nmaster_process on;\nworker_processes auto;\npid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000;\n\
         default_type application/octet-stream;\n\
         client_body_temp_path {p}/client_body;\n  proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n\
         uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
         server {{\n    listen 127.0.0.1:{port};\n    root {};\n  }}\n}}\n",
        www.display()
    )
}
