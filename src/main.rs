//! The `artispace` binary: parse the command line and dispatch.

use clap::Parser;

use artispace::cli::{grant, serve, token, user, Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::User(args) => user::run(args),
        Command::Grant(args) => grant::run_grant(args),
        Command::Revoke(args) => grant::run_revoke(args),
        Command::Token(args) => token::run(args),
    };
    std::process::exit(code);
}
