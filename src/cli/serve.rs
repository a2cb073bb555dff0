//! `artispace serve`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{exit, init_logging, LogFormat};
use crate::access::AccessConfig;
use crate::api::auth::AuthScheme;
use crate::api::server::{serve, ServeConfig};
use crate::api::tls::TlsSource;
use crate::api::transport::ConnectionLimits;
use crate::api::ApiConfig;
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

    /// What a 401 offers clients: Docker's token protocol (Bearer tokens
    /// from /token) or plain Basic. Both are accepted either way.
    #[arg(long, env = "ARTISPACE_AUTH", value_enum, default_value_t = AuthScheme::Token)]
    pub auth: AuthScheme,

    /// Let anyone pull any repository, even once users exist.
    #[arg(long, env = "ARTISPACE_ANONYMOUS_PULL")]
    pub anonymous_pull: bool,

    /// Lifetime of bearer tokens issued by /token.
    #[arg(long, env = "ARTISPACE_TOKEN_EXPIRY", default_value = "5m", value_parser = super::parse_duration)]
    pub token_expiry: Duration,

    /// Serve HTTPS with this certificate chain (PEM, leaf first); re-read on SIGHUP.
    #[arg(
        long,
        env = "ARTISPACE_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM); re-read on SIGHUP.
    #[arg(long, env = "ARTISPACE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a self-signed certificate for the listen address,
    /// generated on first start and kept under the root; prints its
    /// SHA-256 fingerprint.
    #[arg(long, env = "ARTISPACE_TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,

    /// Close connections on which nothing moved for this long.
    #[arg(long, env = "ARTISPACE_IDLE_TIMEOUT", default_value = "60s", value_parser = super::parse_duration)]
    pub idle_timeout: Duration,

    /// Close connections whose request headers take longer than this to arrive.
    #[arg(long, env = "ARTISPACE_HEADER_TIMEOUT", default_value = "30s", value_parser = super::parse_duration)]
    pub header_timeout: Duration,

    /// Uploads (blob or manifest bodies) one client address may run at once;
    /// more are refused with 429.
    #[arg(long, env = "ARTISPACE_MAX_UPLOADS_PER_CLIENT", default_value_t = 32)]
    pub max_uploads_per_client: usize,

    /// A reverse proxy in front of the registry, by address or network
    /// (`10.0.0.5`, `10.0.0.0/8`; repeat, or comma-separate in the variable).
    /// A request from one is taken to come from the client it reports in
    /// X-Forwarded-For (or Forwarded), so login rate limits and upload
    /// limits apply per client rather than to the proxy. Without it those
    /// headers are not believed.
    #[arg(
        long = "trusted-proxy",
        env = "ARTISPACE_TRUSTED_PROXIES",
        value_name = "ADDRESS[/PREFIX]",
        value_delimiter = ',',
        value_parser = parse_network
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// An address (`10.0.0.5`, a network of one) or a network (`10.0.0.0/8`).
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| {
            format!("{text:?} is not an address or a network (10.0.0.5, 10.0.0.0/8, fd00::/8)")
        })
}

pub fn run(args: ServeArgs) -> i32 {
    tune_malloc();
    init_logging(&args.log_level, args.log_format);
    let tls = match (args.tls_cert, args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => Some(TlsSource::Files { cert, key }),
        (_, _, true) => Some(TlsSource::SelfSigned),
        _ => None,
    };
    let config = ServeConfig {
        addr: args.addr,
        root: args.root,
        registry: RegistryConfig {
            upload_expiry: args.upload_expiry,
            delete_enabled: args.delete_enabled,
        },
        access: AccessConfig {
            anonymous_pull: args.anonymous_pull,
            token_lifetime: args.token_expiry,
            ..AccessConfig::default()
        },
        api: ApiConfig {
            auth: args.auth,
            max_uploads_per_client: args.max_uploads_per_client,
            trusted_proxies: args.trusted_proxies,
        },
        limits: ConnectionLimits {
            idle_timeout: args.idle_timeout,
            header_timeout: args.header_timeout,
            ..ConnectionLimits::default()
        },
        tls,
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

/// Sets glibc's allocator up for a server that moves large buffers between
/// threads.
///
/// Arenas: glibc makes up to 8 per core, one per thread that allocates
/// while the others are busy; each keeps its own freed memory, so a server
/// whose work hops between tokio workers and blocking threads holds several
/// copies of the same peak. Two arenas cut the bench's peak RSS by about a
/// third (50.7 -> 35.8 MiB over `run --quick`), and one arena by another
/// 2.7-3.7 MiB at the peak of a push (push-4: 21-22 against 24-25 MiB),
/// with no measurable cost: the allocations on the hot paths are few and
/// large, and small ones come from each thread's own cache without the
/// arena's lock. Alternated with two arenas (3-6 runs per batch, three
/// batches), CPU per GB pushed was lower or within 2% in every scenario
/// (push-4 2-4% lower in all three), and manifest, tag-list and catalog
/// requests per second the same.
///
/// Thresholds: hyper reads a pushed body into buffers of up to 512 KiB and
/// allocates a new one while the writing thread still holds frames of the
/// last. glibc's defaults hand such buffers to `mmap` or trim them back to
/// the kernel when freed, so the next one is faulted in page by page:
/// 24-94k minor faults per 2 GiB pushed. Kept in the arena (`mmap` only
/// from 4 MiB, trimmed only past 8 MiB free) it is 3-4k, and the server's
/// CPU per GB pushed fell by about 5% (three batches of 6-8 runs alternated
/// with the previous build, medians: push-1 -5, -7, -7%; push-4 -7, -8,
/// +2%) for 1-2 MiB more peak RSS (a full compare: 26.4 -> 28.6 MiB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    const MALLOC_ARENAS: libc::c_int = 1;
    const MMAP_FROM: libc::c_int = 4 << 20;
    const TRIM_PAST: libc::c_int = 8 << 20;
    // SAFETY: mallopt only sets tunables of glibc's allocator and touches
    // no memory of ours. It runs before the runtime or any other thread is
    // started, so nothing allocates concurrently. Its results are ignored:
    // if glibc refuses one, its default stays, which costs only speed or
    // memory.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_PAST);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let net = |s: &str| parse_network(s).map(|n| n.to_string());
        assert_eq!(net("10.0.0.5").as_deref(), Ok("10.0.0.5/32"));
        assert_eq!(net(" 10.1.2.3/8 ").as_deref(), Ok("10.0.0.0/8"));
        assert_eq!(net("fd00::/8").as_deref(), Ok("fd00::/8"));
        assert_eq!(net("::1").as_deref(), Ok("::1/128"));
        assert!(net("proxy.example.com").is_err());
        assert!(net("10.0.0.0/33").is_err());
    }
}
