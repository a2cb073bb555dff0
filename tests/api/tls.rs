//! HTTPS: certificates made here (a test CA and a leaf for 127.0.0.1),
//! TLS 1.2 and 1.3 only, the self-signed mode, reloading on SIGHUP without
//! dropping connections, and skopeo and podman (after `podman login`)
//! pushing and pulling through token auth over TLS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::tls::Version;
use rustls_pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

use crate::auth::{add_user, challenge_of, grant};
use crate::clients::{
    layout_manifest_digest, lowercase_tempdir, podman, require, run, run_with_input, skopeo_in,
    text, write_oci_layout,
};
use crate::common::{sha256_digest, ServerConfig, TestServer};

/// A CA and a server certificate it signed, as PEM files in a directory.
struct TestPki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl TestPki {
    fn new(name: &str) -> TestPki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("artispace test CA {name}"),
        );
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.crt"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), leaf_key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        TestPki {
            dir,
            ca_pem: ca.pem(),
        }
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// A directory holding only `ca.crt`, as containers tools want it.
    fn ca_dir(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), &self.ca_pem).unwrap();
        dir
    }
}

async fn start_tls(pki: &TestPki, cert: &Path, key: &Path, extra: &[&str]) -> TestServer {
    let mut args = vec![
        "--tls-cert".to_owned(),
        cert.display().to_string(),
        "--tls-key".to_owned(),
        key.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    TestServer::start_configured(ServerConfig {
        args,
        trust_pem: Some(pki.ca_pem.clone().into_bytes()),
        ..ServerConfig::default()
    })
    .await
}

fn client_trusting(ca_pem: &str, version: Option<Version>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(30));
    if let Some(version) = version {
        builder = builder.min_tls_version(version).max_tls_version(version);
    }
    builder.build().unwrap()
}

/// Whether `openssl s_client` completes a handshake with `flag` (`-tls1_2`…).
fn openssl_handshake(host: &str, flag: &str) -> bool {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            host,
            flag,
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("BEGIN CERTIFICATE") && out.status.success()
}

#[tokio::test]
async fn https_with_a_certificate_made_in_the_test() {
    let pki = TestPki::new("one");
    let server = start_tls(&pki, &pki.cert(), &pki.key(), &[]).await;
    assert!(server.url("/").starts_with("https://"));
    assert_eq!(server.get("/v2/").await.status(), 200);
    let image = server.push_image("tls/app", "v1", 7).await;
    let resp = server.get("/v2/tls/app/manifests/v1").await;
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
    // Blobs over TLS pass through the cipher (no `sendfile` stand-ins).
    let layer = sha256_digest(&image.layer);
    let resp = server.get(&format!("/v2/tls/app/blobs/{layer}")).await;
    assert_eq!(resp.bytes().await.unwrap(), image.layer);
    let resp = server
        .client
        .get(server.url(&format!("/v2/tls/app/blobs/{layer}")))
        .header("range", "bytes=100-199,0-9")
        .send()
        .await
        .unwrap();
    crate::blobs::assert_byteranges(resp, &image.layer, &[(100, 199), (0, 9)]).await;

    for version in [Version::TLS_1_2, Version::TLS_1_3] {
        let client = client_trusting(&pki.ca_pem, Some(version));
        let resp = client.get(server.url("/v2/")).send().await;
        assert!(
            resp.is_ok_and(|r| r.status() == 200),
            "{version:?} must work"
        );
    }
    // TLS 1.1 is refused; TLS 1.2 from the same tool works (so the refusal
    // is the server's, not the tool's).
    let host = server.host().to_owned();
    let (old, current) = tokio::task::spawn_blocking(move || {
        (
            openssl_handshake(&host, "-tls1_1"),
            openssl_handshake(&host, "-tls1_2"),
        )
    })
    .await
    .unwrap();
    assert!(current, "openssl could not do TLS 1.2 with the server");
    assert!(!old, "the server accepted TLS 1.1");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(server.url("/v2/").replace("https://", "http://"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));
}

/// On a TLS connection of our own the token realm is `https`, whatever
/// forwarding headers a client sends.
#[tokio::test]
async fn the_realm_of_a_tls_connection_stays_https() {
    let pki = TestPki::new("realm");
    let server = start_tls(&pki, &pki.cert(), &pki.key(), &[]).await;
    add_user(&server, "dev", "dev-password").await;
    let resp = server
        .client
        .get(server.url("/v2/"))
        .header("x-forwarded-proto", "http")
        .header("forwarded", "proto=http")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = challenge_of(&resp);
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"https://{}/token\"", server.host())),
        "{challenge}"
    );
}

#[tokio::test]
async fn self_signed_mode_generates_keeps_and_prints_its_certificate() {
    let mut server = TestServer::start_configured(ServerConfig {
        args: vec!["--tls-self-signed".to_owned()],
        trust_any_certificate: true,
        ..ServerConfig::default()
    })
    .await;
    // No CA to trust: check the certificate by its fingerprint instead.
    let cert_path = server.root().join("tls/self-signed.crt");
    let pem = std::fs::read(&cert_path).expect("the certificate is kept in the root");
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
    let fingerprint = Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    assert!(
        server.log().contains(&fingerprint),
        "the fingerprint {fingerprint} is printed; log:\n{}",
        server.log()
    );
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(server.root().join("tls/self-signed.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    let served = served_certificate(server.host()).await;
    assert_eq!(
        served,
        der.as_ref(),
        "the server serves the kept certificate"
    );
    // The same certificate after a restart.
    server.restart().await;
    assert_eq!(served_certificate(server.host()).await, der.as_ref());
}

/// Accepts any certificate and keeps the one presented.
#[derive(Debug)]
struct Capture(
    std::sync::Mutex<Vec<u8>>,
    Arc<rustls::crypto::CryptoProvider>,
);

impl rustls::client::danger::ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = end_entity.as_ref().to_vec();
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.1.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.1.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

async fn served_certificate(host: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let capture = Arc::new(Capture(std::sync::Mutex::new(Vec::new()), provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let _tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let der = capture.0.lock().unwrap().clone();
    der
}

/// A TLS connection to the server trusting only `ca_pem`.
async fn connect(
    host: &str,
    ca_pem: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(host).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// Sends `GET /v2/` on an open connection and returns the status line.
async fn get_base<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
) -> String {
    stream
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer to /v2/ is small: read until its 2-byte body `{}` arrived.
    while !response.ends_with(b"{}") {
        let n = stream.read(&mut buf).await.expect("read the response");
        assert!(
            n > 0,
            "the connection closed: {}",
            String::from_utf8_lossy(&response)
        );
        response.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn sighup_rereads_the_certificate_and_keeps_open_connections() {
    let first = TestPki::new("first");
    let second = TestPki::new("second");
    let work = tempfile::tempdir().unwrap();
    let (cert, key) = (work.path().join("tls.crt"), work.path().join("tls.key"));
    std::fs::copy(first.cert(), &cert).unwrap();
    std::fs::copy(first.key(), &key).unwrap();
    let server = start_tls(&first, &cert, &key, &[]).await;

    let mut open = connect(server.host(), &first.ca_pem)
        .await
        .expect("trusting the first CA");
    assert_eq!(get_base(&mut open).await, "HTTP/1.1 200 OK");
    assert!(connect(server.host(), &second.ca_pem).await.is_err());

    std::fs::copy(second.cert(), &cert).unwrap();
    std::fs::copy(second.key(), &key).unwrap();
    server.send_signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while connect(server.host(), &second.ca_pem).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served after SIGHUP; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        connect(server.host(), &first.ca_pem).await.is_err(),
        "the old certificate is gone"
    );
    assert_eq!(
        get_base(&mut open).await,
        "HTTP/1.1 200 OK",
        "the open connection survived"
    );

    // A broken file on the next SIGHUP keeps the current certificate.
    std::fs::write(&cert, "not a certificate").unwrap();
    server.send_signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut again = connect(server.host(), &second.ca_pem)
        .await
        .expect("still the second certificate");
    assert_eq!(get_base(&mut again).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn skopeo_pushes_and_pulls_through_token_auth_over_tls() {
    let pki = TestPki::new("skopeo");
    let server = TestServer::start_configured(ServerConfig {
        args: vec![
            "--tls-cert".to_owned(),
            pki.cert().display().to_string(),
            "--tls-key".to_owned(),
            pki.key().display().to_string(),
        ],
        trust_pem: Some(pki.ca_pem.clone().into_bytes()),
        log_level: Some("info".to_owned()),
        ..ServerConfig::default()
    })
    .await;
    add_user(&server, "ci", "ci-password").await;
    grant(&server, "ci", "team/**", "push").await;
    let certs = pki.ca_dir();
    let work = tempfile::tempdir().unwrap();
    let (source, pulled) = (work.path().join("source"), work.path().join("pulled"));
    let manifest = write_oci_layout(&source);
    let remote = format!("docker://{}/team/app:v1", server.host());
    let copy = |args: &[&str], from: String, to: String| {
        let mut cmd = skopeo_in(work.path());
        cmd.arg("copy").args(args).arg(from).arg(to);
        cmd
    };
    let cert_dir = certs.path().display().to_string();

    // Without credentials the push is refused.
    let out = copy(
        &["--dest-cert-dir", &cert_dir],
        format!("oci:{}:v1", source.display()),
        remote.clone(),
    )
    .output()
    .unwrap();
    assert!(!out.status.success(), "an anonymous push must fail");

    let push = copy(
        &[
            "--preserve-digests",
            "--dest-cert-dir",
            &cert_dir,
            "--dest-creds",
            "ci:ci-password",
        ],
        format!("oci:{}:v1", source.display()),
        remote.clone(),
    );
    run(
        push,
        "skopeo copy into artispace with --dest-creds over TLS",
    );
    let pull = copy(
        &[
            "--preserve-digests",
            "--src-cert-dir",
            &cert_dir,
            "--src-creds",
            "ci:ci-password",
        ],
        remote.clone(),
        format!("oci:{}:v1", pulled.display()),
    );
    run(
        pull,
        "skopeo copy out of artispace with --src-creds over TLS",
    );
    assert_eq!(layout_manifest_digest(&pulled), sha256_digest(&manifest));

    // skopeo went through the token server, and was challenged first.
    let log = server.log();
    assert!(
        log.contains("path=/token") && log.contains("status=200"),
        "no token request in the log:\n{log}"
    );
    assert!(
        log.contains("status=401"),
        "no challenge in the log:\n{log}"
    );
    assert!(
        !log.contains("ci-password"),
        "the password must never be logged"
    );
}

#[tokio::test]
async fn podman_logs_in_pushes_and_pulls_through_token_auth_over_tls() {
    require("podman", &["--version"], "apt-get install podman");
    let pki = TestPki::new("podman");
    let server = start_tls(&pki, &pki.cert(), &pki.key(), &[]).await;
    add_user(&server, "dev", "dev-password").await;
    grant(&server, "dev", "dev/*", "push").await;
    let certs = pki.ca_dir();
    let cert_dir = certs.path().display().to_string();
    let work = tempfile::tempdir().unwrap();
    let authfile = work.path().join("auth.json").display().to_string();
    let layout_dir = lowercase_tempdir("tls-podman", &server);
    let source = layout_dir.path().join("source");
    write_oci_layout(&source);
    let remote = format!("{}/dev/app:v1", server.host());

    let mut load = podman(work.path());
    load.args(["pull", "-q"])
        .arg(format!("oci:{}:v1", source.display()));
    let image_id = text(run(load, "podman pull from the OCI layout"));

    let mut refused = podman(work.path());
    refused.args([
        "push",
        "--cert-dir",
        &cert_dir,
        "--authfile",
        &authfile,
        &image_id,
        &remote,
    ]);
    let out = refused.output().unwrap();
    assert!(!out.status.success(), "a push before logging in must fail");

    let mut login = podman(work.path());
    login
        .args([
            "login",
            "--cert-dir",
            &cert_dir,
            "--authfile",
            &authfile,
            "-u",
            "dev",
            "--password-stdin",
        ])
        .arg(server.host());
    run_with_input(login, b"dev-password\n", "podman login");

    let mut push = podman(work.path());
    push.args([
        "push",
        "--cert-dir",
        &cert_dir,
        "--authfile",
        &authfile,
        &image_id,
        &remote,
    ]);
    run(push, "podman push after login");
    let tags = server
        .client
        .get(server.url("/v2/dev/app/tags/list"))
        .header("authorization", crate::auth::basic("dev", "dev-password"))
        .send()
        .await
        .unwrap();
    let tags: serde_json::Value = tags.json().await.unwrap();
    assert_eq!(
        tags["tags"],
        serde_json::json!(["v1"]),
        "podman's push arrived"
    );
    let mut remove = podman(work.path());
    remove.args(["rmi", "-f", &image_id]);
    run(remove, "podman rmi");
    let mut pull = podman(work.path());
    pull.args([
        "pull",
        "-q",
        "--cert-dir",
        &cert_dir,
        "--authfile",
        &authfile,
        &remote,
    ]);
    assert_eq!(text(run(pull, "podman pull after login")), image_id);
}

/// nginx: on PATH, or where Debian puts it (`/usr/sbin`, which a user's
/// PATH may lack).
fn nginx() -> PathBuf {
    let on_path = Command::new("nginx").arg("-v").output();
    if on_path.is_ok_and(|out| out.status.success()) {
        PathBuf::from("nginx")
    } else {
        PathBuf::from("/usr/sbin/nginx")
    }
}

/// nginx ending TLS in front of a plain-HTTP registry, as it runs in
/// production; stopped when dropped.
struct TlsProxy {
    child: std::process::Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl TlsProxy {
    fn start(pki: &TestPki, upstream: &str) -> TlsProxy {
        let dir = tempfile::tempdir().unwrap();
        // A free port for nginx: taken from the kernel, then let go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let d = dir.path().display();
        let config = format!(
            "daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  client_max_body_size 0;
  server {{
    listen {host} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{
      proxy_pass http://{upstream};
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_http_version 1.1;
      proxy_request_buffering off;
      proxy_buffering off;
    }}
  }}
}}
",
            cert = pki.cert().display(),
            key = pki.key().display(),
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(nginx())
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            // Its workers must not hold the test's output open.
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx is installed (.ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {host}");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsProxy {
            child,
            host,
            _dir: dir,
        }
    }
}

impl Drop for TlsProxy {
    /// SIGTERM, so that the master stops its workers too (SIGKILL would
    /// leave them running); SIGKILL only if it is still there after that.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The usual production setup: nginx ends TLS and forwards plain HTTP. The
/// challenge sends clients to the proxy's https address for tokens (from
/// X-Forwarded-Proto), so skopeo logs in, pushes and pulls through it.
#[tokio::test]
async fn skopeo_logs_in_pushes_and_pulls_through_a_tls_terminating_nginx() {
    let nginx = nginx();
    require(
        &nginx.display().to_string(),
        &["-v"],
        "apt-get install nginx",
    );
    let server = TestServer::start().await;
    add_user(&server, "ci", "ci-password").await;
    grant(&server, "ci", "team/**", "push").await;
    let pki = TestPki::new("nginx");
    let proxy = TlsProxy::start(&pki, server.host());
    let certs = pki.ca_dir();
    let cert_dir = certs.path().display().to_string();

    let challenge = challenge_of(
        &client_trusting(&pki.ca_pem, None)
            .get(format!("https://{}/v2/", proxy.host))
            .send()
            .await
            .unwrap(),
    );
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"https://{}/token\"", proxy.host)),
        "{challenge}"
    );

    let work = tempfile::tempdir().unwrap();
    let (source, pulled) = (work.path().join("source"), work.path().join("pulled"));
    let manifest = write_oci_layout(&source);
    let remote = format!("docker://{}/team/app:v1", proxy.host);
    let skopeo = |args: &[&str]| {
        let mut cmd = skopeo_in(work.path());
        cmd.args(args);
        cmd
    };
    let mut login = skopeo(&[
        "login",
        "--cert-dir",
        &cert_dir,
        "-u",
        "ci",
        "--password-stdin",
    ]);
    login.arg(&proxy.host);
    run_with_input(login, b"ci-password\n", "skopeo login through nginx");
    let mut push = skopeo(&["copy", "--preserve-digests", "--dest-cert-dir", &cert_dir]);
    push.arg(format!("oci:{}:v1", source.display()))
        .arg(&remote);
    run(push, "skopeo copy into artispace through nginx");
    let mut pull = skopeo(&["copy", "--preserve-digests", "--src-cert-dir", &cert_dir]);
    pull.arg(&remote)
        .arg(format!("oci:{}:v1", pulled.display()));
    run(pull, "skopeo copy out of artispace through nginx");
    assert_eq!(layout_manifest_digest(&pulled), sha256_digest(&manifest));
}
