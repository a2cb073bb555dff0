//! Running the HTTP(S) server: opening the store, binding, the accept loop,
//! background upkeep, and a graceful stop.
//!
//! axum's own `serve` can neither speak TLS nor set hyper's limits, so each
//! accepted connection is served here by hyper directly (see
//! [`transport`](super::transport)) and watched by a graceful shutdown.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::tls::{self, Tls, TlsError, TlsSource};
use super::transport::{serve_connection, ConnectionLimits};
use super::{router, ApiConfig, AppState};
use crate::access::secrets::{load_or_create_signing_key, SecretError};
use crate::access::{Access, AccessConfig};
use crate::layout::StoreLayout;
use crate::registry::{LocalStore, Registry, RegistryConfig};

/// How long in-flight requests may run on after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub registry: RegistryConfig,
    pub access: AccessConfig,
    pub api: ApiConfig,
    pub limits: ConnectionLimits,
    pub tls: Option<TlsSource>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the store at {root}: {source}")]
    Open {
        root: String,
        #[source]
        source: crate::registry::OpenError,
    },
    #[error(transparent)]
    SigningKey(#[from] SecretError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

fn task_failed(e: tokio::task::JoinError) -> ServeError {
    ServeError::Serve(std::io::Error::other(e))
}

/// Opens the store, serves until SIGINT or SIGTERM, then lets in-flight
/// requests finish (for at most 30 s, `SHUTDOWN_GRACE`) and closes the store.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let root = config.root.clone();
    let store = tokio::task::spawn_blocking(move || LocalStore::open(&root))
        .await
        .map_err(task_failed)?
        .map_err(|source| ServeError::Open {
            root: config.root.display().to_string(),
            source,
        })?;
    let key_path = store.layout.signing_key();
    let signing_key = tokio::task::spawn_blocking(move || load_or_create_signing_key(&key_path))
        .await
        .map_err(task_failed)??;
    let registry = Arc::new(store.registry(config.registry.clone()));
    let access = Arc::new(
        Access::new(store.accounts(), config.access.clone()).with_signing_key(&signing_key),
    );
    // The dummy password hash makes unknown users cost as much as known
    // ones from the first login on. It needs Argon2's 19 MiB for a moment,
    // so an open registry (no logins to check) does not compute it up front.
    let with_users = match access.is_open().await {
        Ok(true) => {
            tracing::warn!(
                "no users exist: anyone who can reach this registry may push, pull and delete; \
                 add one with `artispace user add NAME` to require authentication"
            );
            false
        }
        Ok(false) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell whether users exist");
            true
        }
    };

    // Reading (or generating) certificates is file and CPU work: off the
    // executor, like the dummy hash.
    let (source, layout, addr) = (config.tls.clone(), store.layout.clone(), config.addr);
    let tls = tokio::task::spawn_blocking(move || {
        if with_users {
            crate::access::password::prepare();
        }
        source
            .map(|source| setup_tls(&source, &layout, addr))
            .transpose()
    })
    .await
    .map_err(task_failed)??;
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.addr,
            source,
        })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    // Watched from before the "listening" line, so that a SIGHUP sent as
    // soon as the server is up cannot meet the default action (exit).
    let hangups = watch_sighup();
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Scripts and tests read this line to learn the port of `--addr …:0`.
    println!("artispace listening on {scheme}://{local}");
    tracing::info!(addr = %local, root = %config.root.display(), tls = tls.is_some(), "serving");

    let mut background = vec![tokio::spawn(expire_uploads_periodically(Arc::clone(
        &registry,
    )))];
    if let (Some(tls), Some(source)) = (&tls, &config.tls) {
        let (cert, key) = match source {
            TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
            TlsSource::SelfSigned => (
                store.layout.self_signed_cert(),
                store.layout.self_signed_key(),
            ),
        };
        if let Some(hangups) = hangups {
            background.push(tokio::spawn(tls::reload_on_sighup(
                hangups,
                Arc::clone(&tls.cert),
                cert,
                key,
            )));
        }
    } else if let Some(hangups) = hangups {
        background.push(tokio::spawn(shrug_off_sighup(hangups)));
    }
    let app = router(AppState::new(
        Arc::clone(&registry),
        access,
        config.api.clone(),
    ));
    let acceptor = tls.map(|t| t.acceptor);
    let graceful = GracefulShutdown::new();
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tokio::spawn(serve_connection(
                        tcp,
                        peer,
                        acceptor.clone(),
                        app.clone(),
                        config.limits,
                        graceful.watcher(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut stop => break,
        }
    }
    tracing::info!("stopping: no new connections; waiting for requests in flight");
    drop(listener);
    for task in &background {
        task.abort();
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still running after the grace period; closing them");
    }
    // Dropping the last handle closes the database connections cleanly.
    drop(app);
    drop(registry);
    tracing::info!("stopped");
    Ok(())
}

/// Loads or generates the certificate and builds the TLS acceptor.
fn setup_tls(
    source: &TlsSource,
    layout: &StoreLayout,
    addr: SocketAddr,
) -> Result<Tls, ServeError> {
    let key = match source {
        TlsSource::Files { cert, key } => tls::load_certified_key(cert, key)?,
        TlsSource::SelfSigned => {
            let (key, generated) = tls::self_signed(layout, &self_signed_names(addr))?;
            let print = key
                .end_entity_cert()
                .map(tls::fingerprint)
                .unwrap_or_default();
            let made = if generated { "generated" } else { "reused" };
            // For the person starting the server: what to pin or compare.
            // On stderr, so stdout stays the one listening line.
            eprintln!(
                "artispace: self-signed TLS certificate ({made}, {}) SHA-256 fingerprint {print}",
                layout.self_signed_cert().display()
            );
            key
        }
    };
    Ok(Tls::new(key)?)
}

/// Names a self-signed certificate covers: the listen address (when it is a
/// specific one) and the loopback names.
fn self_signed_names(addr: SocketAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let ip = addr.ip();
    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    if ip.is_unspecified() {
        if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
            let host = host.trim();
            if !host.is_empty() && host.parse::<IpAddr>().is_err() {
                names.push(host.to_owned());
            }
        }
    }
    names
}

/// SIGHUP, from now on: it reloads the TLS certificate, or does nothing.
fn watch_sighup() -> Option<Signal> {
    match signal(SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; it will stop the server");
            None
        }
    }
}

/// Without TLS there is nothing to reload on SIGHUP, but the signal must
/// not stop the registry (its default action): log rotation and service
/// managers send it as a matter of course.
async fn shrug_off_sighup(mut hangups: Signal) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: nothing to reload (no TLS certificate in use)");
    }
}

async fn stop_signal() {
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// Removes expired upload sessions now and then.
async fn expire_uploads_periodically(registry: Arc<Registry>) {
    let expiry = registry.config().upload_expiry;
    let period = (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        match registry.sweep_uploads(false).await {
            Ok(removed) if removed.count == 0 => {}
            Ok(removed) => tracing::info!(
                removed = removed.count,
                bytes = removed.bytes,
                "expired uploads removed"
            ),
            Err(e) => tracing::warn!(error = %e, "could not remove expired uploads"),
        }
    }
}
