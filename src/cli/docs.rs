//! Shell completions and man pages, generated from the clap definition.
//!
//! The generated files are committed under `completions/` and `man/`;
//! `artispace generate-docs` rewrites them, and a test fails when they no
//! longer match the command line.

use std::io;
use std::path::Path;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{exit, Cli};

/// Shells we ship completions for.
pub const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::Elvish,
    Shell::PowerShell,
];

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct GenerateDocsArgs {
    /// Folder to write `completions/` and `man/` into (the repository root).
    #[arg(long, default_value = ".")]
    pub out: std::path::PathBuf,
}

pub fn print_completions(args: CompletionsArgs) -> i32 {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "artispace",
        &mut io::stdout(),
    );
    exit::SUCCESS
}

pub fn generate_docs(args: GenerateDocsArgs) -> i32 {
    match write_all(&args.out) {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            eprintln!("artispace: cannot write completions and man pages: {e}");
            exit::USAGE
        }
    }
}

/// Writes `<out>/completions/*` and `<out>/man/*.1`.
pub fn write_all(out: &Path) -> io::Result<()> {
    let completions = out.join("completions");
    let man = out.join("man");
    std::fs::create_dir_all(&completions)?;
    std::fs::create_dir_all(&man)?;
    for shell in SHELLS {
        clap_complete::generate_to(shell, &mut Cli::command(), "artispace", &completions)?;
    }
    clap_mangen::generate_to(Cli::command(), &man)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn committed_completions_and_man_pages_are_current() {
        let fresh = tempfile::tempdir().unwrap();
        write_all(fresh.path()).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in ["completions", "man"] {
            let committed = files(&repo.join(dir));
            let generated = files(&fresh.path().join(dir));
            let names =
                |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            assert_eq!(
                names(&committed),
                names(&generated),
                "{dir}/ is stale: run `cargo run -- generate-docs`"
            );
            for ((name, want), (_, have)) in generated.iter().zip(&committed) {
                assert!(
                    want == have,
                    "{dir}/{name} is stale: run `cargo run -- generate-docs`"
                );
            }
        }
    }
}
