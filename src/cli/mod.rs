//! The command line: argument parsing and one module per subcommand.
//!
//! Subcommands call the registry layer (or the API server); they never
//! touch SQL or blob files themselves.

pub mod docs;
pub mod gc;
pub mod grant;
pub mod inspect;
pub mod output;
pub mod push;
pub mod serve;
pub mod store;
pub mod token;
pub mod user;
pub mod verify;

use clap::{Parser, Subcommand, ValueEnum};

/// ArtiSpace: an OCI / Docker registry on SQLite and a blob directory.
#[derive(Debug, Parser)]
#[command(name = "artispace", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the OCI Distribution / Docker Registry V2 API.
    Serve(serve::ServeArgs),
    /// Manage users (the first user switches authentication on).
    User(user::UserArgs),
    /// Let a user (or `anonymous`) pull, push, delete or administer
    /// repositories matching a pattern.
    Grant(grant::GrantArgs),
    /// Take back grants given with `grant`.
    Revoke(grant::RevokeArgs),
    /// Manage access tokens for robots and CI.
    Token(token::TokenArgs),
    /// Push an OCI layout, OCI archive or Docker archive to the local store or a remote registry.
    Push(push::PushArgs),
    /// Show repositories, a repository's tags, or one manifest in detail.
    Inspect(inspect::InspectArgs),
    /// Remove what nothing references any more (safe while serve runs).
    Gc(gc::GcArgs),
    /// Re-hash every blob and check every record; optionally repair.
    Verify(verify::VerifyArgs),
    /// Print shell completions.
    Completions(docs::CompletionsArgs),
    /// Rewrite the committed completions/ and man/ (for maintainers).
    #[command(hide = true)]
    GenerateDocs(docs::GenerateDocsArgs),
}

/// Parses durations such as `90s`, `30m`, `24h`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 90s, 30m, 24h)"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Exit codes shared by every subcommand.
pub mod exit {
    /// The command did what was asked.
    pub const SUCCESS: i32 = 0;
    /// The command ran and found or refused something.
    pub const FOUND_PROBLEM: i32 = 1;
    /// Usage or environment error (bad flags, unreadable store, port taken).
    pub const USAGE: i32 = 2;
}

/// Sends logs to stderr, as text or JSON lines, at `level` (or `RUST_LOG`).
pub fn init_logging(level: &str, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
