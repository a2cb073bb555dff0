//! `artispace serve`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{exit, init_logging, LogFormat};
use crate::api::server::{serve, ServeConfig};
use crate::registry::RegistryConfig;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port, printed at start).
    #[arg(long, env = "ARTISPACE_ADDR", default_value = "127.0.0.1:5000")]
    pub addr: SocketAddr,

    /// Store root: database, blobs and uploads live under it.
    #[arg(long, env = "ARTISPACE_ROOT", default_value = "./artispace-data")]
    pub root: PathBuf,

    /// Log level or tracing filter (error, warn, info, debug, trace).
    #[arg(long, env = "ARTISPACE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format on stderr.
    #[arg(long, env = "ARTISPACE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Upload sessions idle for longer than this are removed (e.g. 30m, 24h).
    #[arg(long, env = "ARTISPACE_UPLOAD_EXPIRY", default_value = "24h", value_parser = super::parse_duration)]
    pub upload_expiry: Duration,

    /// Allow deleting blobs and manifests through the API.
    #[arg(long, env = "ARTISPACE_DELETE_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub delete_enabled: bool,
}

pub fn run(args: ServeArgs) -> i32 {
    init_logging(&args.log_level, args.log_format);
    let config = ServeConfig {
        addr: args.addr,
        root: args.root,
        registry: RegistryConfig {
            upload_expiry: args.upload_expiry,
            delete_enabled: args.delete_enabled,
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("artispace: cannot start the async runtime: {e}");
            return exit::USAGE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "serve failed");
            eprintln!("artispace: {e}");
            exit::USAGE
        }
    }
}
