//! `artispace user add|list|remove|passwd`: the registry's users.
//!
//! Passwords come from standard input (`--password-stdin`) or from a prompt
//! that does not echo; they are never printed or logged.

use std::io::{IsTerminal, Read};
use std::time::{Duration, UNIX_EPOCH};

use clap::{Args, Subcommand};
use serde_json::json;

use super::exit;
use super::output::{runtime, CommonArgs, Output};
pub use super::store::Failure;
use crate::access::{Access, AccessConfig, GrantView, UserSummary};
use crate::registry::LocalStore;

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (the first one switches authentication on).
    Add {
        name: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with their grants (and the grants of anonymous callers).
    List,
    /// Remove a user, with their grants and access tokens.
    Remove { name: String },
    /// Change a user's password.
    Passwd {
        name: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Runs an account command on a fresh runtime and turns its outcome into an
/// exit code.
pub fn run_account_command<F, Fut>(common: &CommonArgs, create: bool, command: F) -> i32
where
    F: FnOnce(Access, Output) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let output = Output::new(common);
    let opened = if create {
        LocalStore::open(&common.root)
    } else {
        LocalStore::open_existing(&common.root)
    };
    let store = match opened {
        Ok(store) => store,
        Err(e) => {
            eprintln!("artispace: {e}");
            return exit::USAGE;
        }
    };
    let access = Access::new(store.accounts(), AccessConfig::default());
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("artispace: cannot start the async runtime: {e}");
            return exit::USAGE;
        }
    };
    match runtime.block_on(command(access, output)) {
        Ok(()) => exit::SUCCESS,
        Err(failure) => {
            eprintln!("artispace: {}", failure.message);
            failure.code
        }
    }
}

pub fn run(args: UserArgs) -> i32 {
    let create = matches!(args.command, UserCommand::Add { .. });
    run_account_command(&args.common, create, |access, output| async move {
        match args.command {
            UserCommand::Add {
                name,
                password_stdin,
            } => {
                let password = read_password(&name, password_stdin)?;
                access.add_user(&name, &password).await?;
                report(&output, json!({ "user": name, "added": true }), || {
                    format!("user {name} added")
                });
            }
            UserCommand::Passwd {
                name,
                password_stdin,
            } => {
                let password = read_password(&name, password_stdin)?;
                access.set_password(&name, &password).await?;
                report(
                    &output,
                    json!({ "user": name, "password_changed": true }),
                    || format!("password of {name} changed"),
                );
            }
            UserCommand::Remove { name } => {
                access.remove_user(&name).await?;
                report(&output, json!({ "user": name, "removed": true }), || {
                    format!("user {name} removed, with their grants and tokens")
                });
            }
            UserCommand::List => {
                let (users, anonymous) = access.users().await?;
                print_users(&output, &users, &anonymous);
            }
        }
        Ok(())
    })
}

/// Prints `value` with `--json`, else a line for people on stderr.
pub fn report(output: &Output, value: serde_json::Value, line: impl FnOnce() -> String) {
    if output.json {
        output.print_json(&value);
    } else {
        output.note(line());
    }
}

fn print_users(output: &Output, users: &[UserSummary], anonymous: &[GrantView]) {
    if output.json {
        output.print_json(&json!({
            "users": users,
            "anonymous": { "grants": anonymous },
        }));
        return;
    }
    let mut table = output.table(["USER", "CREATED", "GRANTS", "TOKENS"]);
    for user in users {
        table.add_row([
            user.name.clone(),
            format_time(user.created_at),
            format_grants(&user.grants),
            user.tokens.to_string(),
        ]);
    }
    if !anonymous.is_empty() {
        table.add_row([
            "anonymous (everyone)".to_owned(),
            "-".to_owned(),
            format_grants(anonymous),
            "-".to_owned(),
        ]);
    }
    println!("{table}");
}

pub fn format_grants(grants: &[GrantView]) -> String {
    if grants.is_empty() {
        return "-".to_owned();
    }
    grants
        .iter()
        .map(|g| format!("{} {}", g.action, g.pattern))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Milliseconds since the epoch as RFC 3339 (UTC, seconds).
pub fn format_time(millis: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(millis.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The new password: all of standard input (less one trailing newline)
/// with `--password-stdin`, else typed twice at a prompt that does not echo.
fn read_password(user: &str, from_stdin: bool) -> Result<String, Failure> {
    if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::usage(format!("cannot read the password from stdin: {e}")))?;
        let password = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        return Ok(password.to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(
            "no terminal to ask for the password: pass it on standard input with --password-stdin",
        ));
    }
    let prompt_error = |e: std::io::Error| Failure::usage(format!("cannot read the password: {e}"));
    let first =
        rpassword::prompt_password(format!("Password for {user}: ")).map_err(prompt_error)?;
    let again = rpassword::prompt_password("Again: ").map_err(prompt_error)?;
    if first != again {
        return Err(Failure::usage("the two passwords differ"));
    }
    Ok(first)
}
