//! The `artispace serve` process under test: started on `127.0.0.1:0` with a
//! temporary root, stopped by signal with its exit status checked.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::Client;
use tempfile::TempDir;

/// A debug build on a busy 2-core machine can take a while to open a store.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longer than the server's own bounded wait for requests in flight.
const STOP_TIMEOUT: Duration = Duration::from_secs(45);
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// How a test wants its server started, beyond the fixed
/// `serve --addr 127.0.0.1:0 --log-level warn`.
#[derive(Default, Clone)]
pub struct ServerConfig {
    /// Extra command-line arguments, e.g. `["--delete-enabled", "false"]`.
    pub args: Vec<String>,
    /// Extra `ARTISPACE_*` environment variables.
    pub env: Vec<(String, String)>,
    /// Pass the root as `ARTISPACE_ROOT` instead of `--root`.
    pub root_via_env: bool,
    /// Use `<tempdir>/<subdir>` (not yet existing) as the root.
    pub root_subdir: Option<String>,
    /// Use this folder, which the test owns, as the root (e.g. on a file
    /// system of the test's making).
    pub root_at: Option<PathBuf>,
    /// `--log-level`, `warn` unless set.
    pub log_level: Option<String>,
    /// For HTTPS servers: the CA certificate (PEM) the test client trusts.
    pub trust_pem: Option<Vec<u8>>,
    /// For HTTPS servers with a certificate no CA vouches for (self-signed):
    /// the test client accepts any; the test checks the certificate itself.
    pub trust_any_certificate: bool,
}

impl ServerConfig {
    pub fn args(args: &[&str]) -> Self {
        ServerConfig {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..ServerConfig::default()
        }
    }
}

pub struct TestServer {
    pub client: Client,
    base: String,
    child: Option<Child>,
    config: ServerConfig,
    root: PathBuf,
    // Held for their Drop, which runs after `TestServer::drop` has killed
    // the process.
    log_dir: TempDir,
    _root_dir: TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_configured(ServerConfig::default()).await
    }

    pub async fn start_with(args: &[&str]) -> Self {
        Self::start_configured(ServerConfig::args(args)).await
    }

    pub async fn start_configured(config: ServerConfig) -> Self {
        let root_dir = tempfile::tempdir().expect("create temporary root");
        let root = match (&config.root_at, &config.root_subdir) {
            (Some(root), _) => root.clone(),
            (None, Some(sub)) => root_dir.path().join(sub),
            (None, None) => root_dir.path().to_path_buf(),
        };
        let log_dir = tempfile::tempdir().expect("create log directory");
        let mut client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT);
        if let Some(pem) = &config.trust_pem {
            let ca = reqwest::Certificate::from_pem(pem).expect("the test CA is PEM");
            client = client
                .tls_built_in_root_certs(false)
                .add_root_certificate(ca);
        }
        if config.trust_any_certificate {
            client = client.danger_accept_invalid_certs(true);
        }
        let client = client.build().expect("build reqwest client");
        let mut server = TestServer {
            client,
            base: String::new(),
            child: None,
            config,
            root,
            log_dir,
            _root_dir: root_dir,
        };
        server.launch().await;
        server
    }

    /// The root directory the server stores its data in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `127.0.0.1:PORT`, the registry host as clients write it.
    pub fn host(&self) -> &str {
        self.base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Resolves a `Location` header value (a path or an absolute URL).
    pub fn location_url(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            self.url(location)
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.log_dir.path().join("server.log")
    }

    async fn launch(&mut self) {
        let root = self.root.clone();
        let log_path = self.log_path();
        let config = self.config.clone();
        let (child, base) = tokio::task::spawn_blocking(move || spawn(&root, &log_path, &config))
            .await
            .expect("spawn task");
        self.child = Some(child);
        self.base = base;
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(resp) = self.client.get(self.url("/readyz")).send().await {
                if resp.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "artispace did not answer 200 on /readyz within {START_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server with SIGTERM and asserts it exits with status 0.
    pub async fn stop(&mut self) {
        self.stop_with_signal("TERM").await;
    }

    /// Stops the server with the given signal (`TERM`, `INT`) and asserts it
    /// exits with status 0.
    pub async fn stop_with_signal(&mut self, signal: &str) {
        let status = self.signal_and_wait(signal).await;
        assert!(
            status.success(),
            "artispace exited with {status} after SIG{signal}, expected 0; log:\n{}",
            self.log()
        );
    }

    async fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        self.send_signal(signal);
        self.wait_for_exit(signal).await
    }

    /// Sends a signal (`TERM`, `INT`) to the server without waiting.
    pub fn send_signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server is running").id();
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid} failed");
    }

    /// Waits for the server to exit after `signal` was sent; kills it and
    /// fails when that takes longer than `STOP_TIMEOUT`.
    pub async fn wait_for_exit(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        let pid = child.id().to_string();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let waited = tokio::task::spawn_blocking(move || rx.recv_timeout(STOP_TIMEOUT))
            .await
            .expect("wait task");
        match waited {
            Ok(status) => status.expect("wait for artispace"),
            Err(_) => {
                let _ = Command::new("kill").arg("-KILL").arg(&pid).status();
                panic!(
                    "artispace did not exit within {STOP_TIMEOUT:?} after SIG{signal}; log:\n{}",
                    self.log()
                );
            }
        }
    }

    /// Stops the server gracefully and starts it again on the same root.
    /// The port changes; `url()` follows it.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch().await;
    }

    /// Starts again, on the same root, a server stopped with `stop()`.
    pub async fn restart_stopped(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.launch().await;
    }

    /// Kills the server with SIGKILL (no chance to clean up, as in a crash)
    /// and starts it again on the same root.
    pub async fn restart_after_kill(&mut self) {
        let status = self.signal_and_wait("KILL").await;
        assert!(!status.success(), "SIGKILL cannot end in exit code 0");
        self.launch().await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- artispace server log ---\n{}", self.log());
        }
    }
}

/// Starts `artispace serve` and reads its port from the one line it prints on
/// stdout: `artispace listening on http://127.0.0.1:PORT` (`https://` with
/// TLS).
fn spawn(root: &Path, log_path: &Path, config: &ServerConfig) -> (Child, String) {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("open server log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_artispace"));
    let log_level = config.log_level.as_deref().unwrap_or("warn");
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--log-level", log_level]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ARTISPACE_") {
            cmd.env_remove(key);
        }
    }
    if config.root_via_env {
        cmd.env("ARTISPACE_ROOT", root);
    } else {
        cmd.arg("--root").arg(root);
    }
    cmd.args(&config.args)
        .envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    let mut child = cmd.spawn().expect("spawn the artispace binary");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next().and_then(Result::ok));
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let read_log = || std::fs::read_to_string(log_path).unwrap_or_default();
    let line = match rx.recv_timeout(START_TIMEOUT) {
        Ok(Some(line)) => line,
        Ok(None) => {
            let status = child.wait().expect("wait for artispace");
            panic!(
                "artispace exited ({status}) without printing its listening line; log:\n{}",
                read_log()
            );
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "artispace printed no listening line within {START_TIMEOUT:?}; log:\n{}",
                read_log()
            );
        }
    };
    let listening = line
        .strip_prefix("artispace listening on ")
        .and_then(|url| url.split_once("://127.0.0.1:"))
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
        .and_then(|(scheme, port)| Some((scheme, port.trim().parse::<u16>().ok()?)));
    match listening {
        Some((scheme, port)) => (child, format!("{scheme}://127.0.0.1:{port}")),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "expected `artispace listening on http://127.0.0.1:PORT` on stdout, got {line:?}; log:\n{}",
                read_log()
            );
        }
    }
}
