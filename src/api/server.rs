//! Running the HTTP server: binding, serving, background upkeep and a
//! graceful stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::{router, AppState};
use crate::registry::{Registry, RegistryConfig};

/// How long in-flight requests may run on after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub registry: RegistryConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the store at {root}: {source}")]
    Open {
        root: String,
        #[source]
        source: crate::registry::OpenError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Opens the store, serves until SIGINT or SIGTERM, then lets in-flight
/// requests finish (for at most [`SHUTDOWN_GRACE`]) and closes the store.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let root = config.root.clone();
    let registry_config = config.registry.clone();
    let registry =
        tokio::task::spawn_blocking(move || Registry::open_local(&root, registry_config))
            .await
            .map_err(|e| ServeError::Serve(std::io::Error::other(e)))?
            .map_err(|source| ServeError::Open {
                root: config.root.display().to_string(),
                source,
            })?;
    let registry = Arc::new(registry);

    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.addr,
            source,
        })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    // Scripts and tests read this line to learn the port of `--addr …:0`.
    println!("artispace listening on http://{local}");
    tracing::info!(addr = %local, root = %config.root.display(), "serving");

    let upkeep = tokio::spawn(expire_uploads_periodically(Arc::clone(&registry)));
    let app = router(AppState {
        registry: Arc::clone(&registry),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(async move {
        let mut stop_rx = stop_rx;
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            })
            .await
    });

    tokio::select! {
        result = &mut server => {
            upkeep.abort();
            return result.map_err(|e| ServeError::Serve(std::io::Error::other(e)))?.map_err(ServeError::Serve);
        }
        () = stop_signal() => {}
    }
    tracing::info!("stopping: no new connections; waiting for requests in flight");
    let _ = stop_tx.send(true);
    upkeep.abort();
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(result) => result
            .map_err(|e| ServeError::Serve(std::io::Error::other(e)))?
            .map_err(ServeError::Serve)?,
        Err(_) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still running after the grace period; closing them");
            server.abort();
        }
    }
    // Dropping the last handle closes the database connections cleanly.
    drop(registry);
    tracing::info!("stopped");
    Ok(())
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
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
