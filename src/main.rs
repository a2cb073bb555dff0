//! The `artispace` binary: parse the command line and dispatch.

use clap::Parser;

use artispace::cli::{push, serve, Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Push(args) => push::run(args),
    };
    std::process::exit(code);
}
