//! The `artispace` binary: parse the command line and dispatch.

use clap::Parser;

use artispace::cli::{docs, gc, grant, inspect, push, serve, token, user, verify, Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::User(args) => user::run(args),
        Command::Grant(args) => grant::run_grant(args),
        Command::Revoke(args) => grant::run_revoke(args),
        Command::Token(args) => token::run(args),
        Command::Push(args) => push::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Completions(args) => docs::print_completions(args),
        Command::GenerateDocs(args) => docs::generate_docs(args),
    };
    std::process::exit(code);
}
