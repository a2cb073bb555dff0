//! HTTPS: rustls (TLS 1.2 and 1.3 only, ring provider), certificates from
//! files or self-signed, re-read on SIGHUP without dropping connections.
//!
//! The server config asks a [`ReloadableCert`] for the certificate on each
//! handshake, so replacing it affects new handshakes only; connections
//! already established keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use tokio::signal::unix::Signal;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::layout::StoreLayout;

/// Where the server's certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files: the certificate chain (leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate generated for the listen address and kept in the root.
    SelfSigned,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}")]
    Read {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("{0} holds no PEM certificate")]
    NoCertificate(String),
    #[error("the certificate and key do not go together: {0}")]
    Key(String),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Config(String),
}

/// The certificate handed to each new handshake; replaceable at run time.
#[derive(Debug)]
pub struct ReloadableCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

impl ReloadableCert {
    pub fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Reads a certificate chain and private key from PEM files.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read_error = |what: &'static str, path: &Path| {
        let path = path.display().to_string();
        move |e: rustls_pki_types::pem::Error| TlsError::Read {
            what,
            path,
            reason: e.to_string(),
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(read_error("the certificate", cert))?
        .collect::<Result<_, _>>()
        .map_err(read_error("the certificate", cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.display().to_string()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(read_error("the private key", key))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| TlsError::Key(e.to_string()))
}

/// The TLS side of the server: the acceptor and the certificate it serves.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub cert: Arc<ReloadableCert>,
}

impl Tls {
    pub fn new(key: CertifiedKey) -> Result<Tls, TlsError> {
        let cert = Arc::new(ReloadableCert {
            current: RwLock::new(Arc::new(key)),
        });
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(cert.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert,
        })
    }
}

/// SHA-256 of a certificate (DER), as colon-separated hex pairs.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The self-signed certificate kept under the root, generated on first use
/// for `names` (host names and IP addresses). Returns it with whether it
/// was generated now.
pub fn self_signed(
    layout: &StoreLayout,
    names: &[String],
) -> Result<(CertifiedKey, bool), TlsError> {
    let (cert_path, key_path) = (layout.self_signed_cert(), layout.self_signed_key());
    if cert_path.exists() && key_path.exists() {
        return Ok((load_certified_key(&cert_path, &key_path)?, false));
    }
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let dir = layout.tls_dir();
    std::fs::create_dir_all(&dir).map_err(|source| TlsError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    write_file(
        &key_path,
        generated.key_pair.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_file(&cert_path, generated.cert.pem().as_bytes(), 0o644)?;
    Ok((load_certified_key(&cert_path, &key_path)?, true))
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        file.write_all(content)?;
        file.sync_all()
    };
    write().map_err(|source| TlsError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// Re-reads the certificate files on every SIGHUP; a failed reload keeps
/// the certificate in use.
pub async fn reload_on_sighup(
    mut hangups: Signal,
    cert: Arc<ReloadableCert>,
    cert_path: PathBuf,
    key_path: PathBuf,
) {
    while hangups.recv().await.is_some() {
        let (c, k) = (cert_path.clone(), key_path.clone());
        match tokio::task::spawn_blocking(move || load_certified_key(&c, &k)).await {
            Ok(Ok(key)) => {
                let print = key.end_entity_cert().map(fingerprint).unwrap_or_default();
                cert.replace(key);
                tracing::info!(fingerprint = %print, "TLS certificate reloaded");
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "TLS certificate reload failed; keeping the current one")
            }
            Err(e) => tracing::error!(error = %e, "TLS certificate reload failed"),
        }
    }
}
