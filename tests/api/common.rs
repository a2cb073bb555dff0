//! The test harness: a real `artispace serve` process with its own temporary
//! root, and helpers that speak the registry API the way a client does.
//!
//! Every test starts its own `TestServer`, so tests share nothing and run in
//! parallel. The server is killed when the `TestServer` is dropped; `stop()`
//! is the graceful path and asserts a clean exit.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::{Client, Response};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha512};
use tempfile::TempDir;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The digest of the two bytes `{}`, the OCI empty descriptor's content.
pub const EMPTY_CONFIG_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// 4 MiB, the largest manifest body the registry accepts.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// A debug build on a busy 2-core machine can take a while to open a store.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longer than the server's own bounded wait for requests in flight.
const STOP_TIMEOUT: Duration = Duration::from_secs(45);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

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
    /// `--log-level`, `warn` unless set.
    pub log_level: Option<String>,
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
        let root = match &config.root_subdir {
            Some(sub) => root_dir.path().join(sub),
            None => root_dir.path().to_path_buf(),
        };
        let log_dir = tempfile::tempdir().expect("create log directory");
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("build reqwest client");
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
        self.base.trim_start_matches("http://")
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

    // --- requests -------------------------------------------------------

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn head(&self, path: &str) -> Response {
        self.client.head(self.url(path)).send().await.expect("HEAD")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE")
    }

    /// Sends one HTTP/1.1 request over a plain socket, writing the body on
    /// one thread while reading the response on another, as curl and Go's
    /// client do. hyper's client gives up with a broken pipe when a server
    /// answers before reading the whole body (e.g. 413 on Content-Length),
    /// so tests of early answers use this instead.
    pub async fn raw_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> RawResponse {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host(),
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let addr = self.host().to_owned();
        tokio::task::spawn_blocking(move || raw_exchange(&addr, head.into_bytes(), body))
            .await
            .expect("raw request task")
    }

    /// `POST /v2/<repo>/blobs/uploads/`, asserting 202; returns the Location.
    pub async fn start_upload(&self, repo: &str) -> String {
        let resp = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send()
            .await
            .expect("POST upload");
        assert_eq!(resp.status(), 202, "starting an upload in {repo}");
        header(&resp, "location").expect("Location on upload start")
    }

    /// `PATCH <location>` with one chunk and an optional `Content-Range`.
    pub async fn patch_chunk(
        &self,
        location: &str,
        chunk: Vec<u8>,
        content_range: Option<(u64, u64)>,
    ) -> Response {
        let mut req = self
            .client
            .patch(self.location_url(location))
            .header("content-type", "application/octet-stream")
            .body(chunk);
        if let Some((start, end)) = content_range {
            req = req.header("content-range", format!("{start}-{end}"));
        }
        req.send().await.expect("PATCH chunk")
    }

    /// `PUT <location>?digest=<digest>` with an optional final chunk.
    pub async fn put_upload(&self, location: &str, digest: &str, last_chunk: Vec<u8>) -> Response {
        let url = with_query(&self.location_url(location), &format!("digest={digest}"));
        let mut req = self.client.put(url);
        if !last_chunk.is_empty() {
            req = req.header("content-type", "application/octet-stream");
        }
        req.body(last_chunk).send().await.expect("PUT upload")
    }

    /// Pushes a blob with a single `POST …/blobs/uploads/?digest=`, asserting
    /// 201; returns its sha256 digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256_digest(data);
        let resp = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("POST monolithic upload");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 201, "monolithic push of {digest} to {repo}: {body}");
        digest
    }

    /// Pushes a blob as a session of `chunk_size` PATCHes (with
    /// `Content-Range`) and a closing PUT, asserting every status; returns its
    /// sha256 digest.
    pub async fn push_blob_chunked(&self, repo: &str, data: &[u8], chunk_size: usize) -> String {
        let digest = sha256_digest(data);
        let mut location = self.start_upload(repo).await;
        let mut offset = 0u64;
        for chunk in data.chunks(chunk_size) {
            let end = offset + chunk.len() as u64 - 1;
            let resp = self
                .patch_chunk(&location, chunk.to_vec(), Some((offset, end)))
                .await;
            assert_eq!(resp.status(), 202, "PATCH {offset}-{end}");
            assert_eq!(
                header(&resp, "range").as_deref(),
                Some(&*format!("0-{end}"))
            );
            location = header(&resp, "location").expect("Location after PATCH");
            offset = end + 1;
        }
        let resp = self.put_upload(&location, &digest, Vec::new()).await;
        assert_eq!(resp.status(), 201, "closing PUT of a chunked upload");
        digest
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with the given Content-Type.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Response {
        self.client
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("PUT manifest")
    }

    /// Pushes a manifest, asserting 201; returns its sha256 digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let resp = self.put_manifest(repo, reference, media_type, body).await;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, 201, "PUT manifest {repo}:{reference}: {text}");
        sha256_digest(body)
    }

    /// Pushes a small OCI image (a config and one layer, both derived from
    /// `seed`) and its manifest under `reference`.
    pub async fn push_image(&self, repo: &str, reference: &str, seed: u64) -> Image {
        let image = Image::new(seed);
        self.push_blob(repo, &image.config).await;
        self.push_blob(repo, &image.layer).await;
        self.push_manifest(repo, reference, OCI_MANIFEST, &image.manifest)
            .await;
        image
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
/// stdout: `artispace listening on http://127.0.0.1:PORT`.
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
    let port = line
        .strip_prefix("artispace listening on http://127.0.0.1:")
        .and_then(|p| p.trim().parse::<u16>().ok());
    match port {
        Some(port) => (child, format!("http://127.0.0.1:{port}")),
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

pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn raw_exchange(addr: &str, head: Vec<u8>, body: Vec<u8>) -> RawResponse {
    use std::io::{Read, Write};
    let stream = std::net::TcpStream::connect(addr).expect("connect to artispace");
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .expect("set read timeout");
    let mut writer = stream.try_clone().expect("clone socket");
    let sender = std::thread::spawn(move || {
        // The server may answer and close before reading everything; a
        // failed write is expected then.
        let _ = writer
            .write_all(&head)
            .and_then(|()| writer.write_all(&body));
    });
    let mut raw = Vec::new();
    let mut reader = stream;
    let mut buf = [0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => panic!("no response from artispace: {e}"),
            Err(_) => break,
        }
        if response_complete(&raw) {
            break;
        }
    }
    let _ = sender.join();
    parse_raw_response(&raw)
}

fn split_head(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&raw[..end], &raw[end + 4..]))
}

fn response_complete(raw: &[u8]) -> bool {
    let Some((head, body)) = split_head(raw) else {
        return false;
    };
    let length = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok());
    length.is_some_and(|n| body.len() >= n)
}

fn parse_raw_response(raw: &[u8]) -> RawResponse {
    let (head, body) = split_head(raw).unwrap_or_else(|| {
        panic!(
            "incomplete HTTP response: {:?}",
            String::from_utf8_lossy(raw)
        )
    });
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_vec(),
    }
}

/// A small OCI image: config, one layer and the manifest bytes that
/// reference them.
pub struct Image {
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    pub manifest: Vec<u8>,
    pub digest: String,
}

impl Image {
    pub fn new(seed: u64) -> Self {
        let config = json_bytes(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"seed": seed.to_string()}},
            "rootfs": {"type": "layers", "diff_ids": []}
        }));
        let layer = random_bytes(seed, 1024 + seed as usize % 512);
        let manifest = json_bytes(&image_manifest(
            descriptor(OCI_CONFIG, &config),
            vec![descriptor(OCI_LAYER, &layer)],
        ));
        let digest = sha256_digest(&manifest);
        Image {
            config,
            layer,
            manifest,
            digest,
        }
    }
}

// --- digests and data ----------------------------------------------------

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

pub fn sha512_digest(data: &[u8]) -> String {
    format!("sha512:{}", hex(&Sha512::digest(data)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic pseudo-random bytes (xorshift64*), different per seed.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    fill_random(&mut Xorshift::new(seed), &mut out);
    out
}

pub struct Xorshift(u64);

impl Xorshift {
    pub fn new(seed: u64) -> Self {
        Xorshift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

pub fn fill_random(rng: &mut Xorshift, out: &mut [u8]) {
    for chunk in out.chunks_mut(8) {
        let word = rng.next().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

// --- JSON documents ------------------------------------------------------

pub fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialize JSON")
}

pub fn descriptor(media_type: &str, content: &[u8]) -> Value {
    json!({
        "mediaType": media_type,
        "digest": sha256_digest(content),
        "size": content.len(),
    })
}

pub fn image_manifest(config: Value, layers: Vec<Value>) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layers,
    })
}

pub fn image_index(manifests: Vec<Value>) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    })
}

/// An OCI 1.1 artifact: the empty config, the given `artifactType`, one
/// layer, and optionally a subject and annotations.
pub fn artifact_manifest(
    artifact_type: &str,
    layer: Value,
    subject: Option<Value>,
    annotations: Option<Value>,
) -> Value {
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_CONFIG_DIGEST, "size": 2},
        "layers": [layer],
    });
    if let Some(subject) = subject {
        manifest["subject"] = subject;
    }
    if let Some(annotations) = annotations {
        manifest["annotations"] = annotations;
    }
    manifest
}

// --- responses -----------------------------------------------------------

pub fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("header is ASCII").to_owned())
}

pub fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// Asserts an OCI error response: the status, a JSON `Content-Type`, and
/// `errors[0].code` with a message.
pub async fn assert_oci_error(resp: Response, status: u16, code: &str) {
    let actual = resp.status().as_u16();
    let content_type = header(&resp, "content-type").unwrap_or_default();
    let url = resp.url().clone();
    let body = resp.text().await.expect("read error body");
    assert_eq!(
        actual, status,
        "status of {url}, expected {status} {code}; body: {body}"
    );
    let value: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("error body of {url} is not JSON ({e}): {body:?}"));
    assert_eq!(
        value["errors"][0]["code"], code,
        "error code of {url}; body: {body}"
    );
    assert!(
        value["errors"][0]["message"].is_string(),
        "error of {url} has no message: {body}"
    );
    assert!(
        content_type.starts_with("application/json"),
        "error of {url} has Content-Type {content_type:?}, expected application/json"
    );
}

/// Reads a JSON body, asserting the status first.
pub async fn json_body(resp: Response, status: u16) -> Value {
    let actual = resp.status().as_u16();
    let url = resp.url().clone();
    let body = resp.text().await.expect("read body");
    assert_eq!(actual, status, "status of {url}; body: {body}");
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("body of {url} is not JSON ({e}): {body:?}"))
}
