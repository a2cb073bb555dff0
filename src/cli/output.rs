//! How admin commands talk to people and to scripts.
//!
//! People at a terminal get tables sized to the terminal and progress bars;
//! scripts get `--json` (one stable document on stdout) and silence on
//! stderr unless something goes wrong. Logs and progress go to stderr only,
//! so stdout is always the command's result.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use comfy_table::{presets, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Flags every admin command shares.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Store root, as given to `artispace serve`.
    #[arg(
        long,
        env = "ARTISPACE_ROOT",
        default_value = "./artispace-data",
        global = true
    )]
    pub root: PathBuf,

    /// Print the result as one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// No progress bars or chatter on stderr (errors still print).
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

/// Where and how a command reports.
#[derive(Debug, Clone)]
pub struct Output {
    pub json: bool,
    /// Progress bars and chatter on stderr are wanted (a terminal, not quiet).
    pub chatty: bool,
}

impl Output {
    pub fn new(common: &CommonArgs) -> Output {
        Output {
            json: common.json,
            chatty: !common.quiet && !common.json && std::io::stderr().is_terminal(),
        }
    }

    /// A byte-counting progress bar, hidden unless `chatty`.
    pub fn bytes_bar(&self, total: u64, message: impl Into<String>) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(total), self.draw_target());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:24!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(message.into());
        bar
    }

    /// A counting progress bar (items), hidden unless `chatty`.
    pub fn count_bar(&self, total: u64, message: impl Into<String>) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(total), self.draw_target());
        bar.set_style(
            ProgressStyle::with_template("{msg:24!} [{bar:30}] {pos}/{len} {per_sec:>10} {eta:>4}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(message.into());
        bar
    }

    /// A spinner for work of unknown length, hidden unless `chatty`.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, self.draw_target());
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    fn draw_target(&self) -> ProgressDrawTarget {
        if self.chatty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }

    /// A table for stdout, fitted to the terminal when there is one.
    pub fn table<I, S>(&self, header: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<comfy_table::Cell>,
    {
        let mut table = Table::new();
        table
            .load_preset(presets::UTF8_HORIZONTAL_ONLY)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(header);
        if !std::io::stdout().is_terminal() {
            table.load_preset(presets::ASCII_MARKDOWN);
        }
        table
    }

    /// Prints `value` as pretty JSON on stdout.
    pub fn print_json(&self, value: &impl serde::Serialize) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("artispace: cannot encode the result as JSON: {e}"),
        }
    }

    /// A line of chatter for people (stderr), suppressed for scripts.
    pub fn note(&self, line: impl AsRef<str>) {
        if self.chatty {
            eprintln!("{}", line.as_ref());
        }
    }
}

/// Human-readable byte counts (binary units), for tables.
pub fn human_bytes(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}

/// The async runtime admin commands run the registry layer on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
