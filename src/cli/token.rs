//! `artispace token create|list|revoke`: access tokens for robots and CI,
//! usable anywhere a password is.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::CommonArgs;
use super::user::{format_grants, format_time, report, run_account_command, Failure};
use crate::access::{is_live, Action, GrantView, RepoPattern, Rule};
use crate::metadata::sqlite::now_millis;
use crate::metadata::TokenRecord;

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and stored only as a hash.
    Create {
        /// A name to list and revoke the token by.
        name: String,
        /// The user the token acts for.
        #[arg(long)]
        user: String,
        /// Lifetime (e.g. 30d, 12h); default: until revoked.
        #[arg(long, value_parser = parse_lifetime)]
        expires: Option<Duration>,
        /// Limit the token to PATTERN:ACTIONS (e.g. john/*:pull,push);
        /// repeatable. Default: all of the user's rights.
        #[arg(long = "scope", value_name = "PATTERN:ACTIONS")]
        scopes: Vec<String>,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by name.
    Revoke {
        name: String,
        /// Whose token (needed when several users have one of that name).
        #[arg(long)]
        user: Option<String>,
    },
}

fn parse_lifetime(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 12h, 30d)"))
}

/// `PATTERN:ACTIONS` into rules, one per action.
fn parse_scope(text: &str) -> Result<Vec<Rule>, Failure> {
    let (pattern, actions) = text.rsplit_once(':').ok_or_else(|| {
        Failure::usage(format!(
            "scope {text:?} must be PATTERN:ACTIONS, e.g. john/*:pull,push"
        ))
    })?;
    let pattern: RepoPattern = pattern
        .parse()
        .map_err(|e: crate::access::RuleError| Failure::usage(e.to_string()))?;
    actions
        .split(',')
        .map(|a| {
            a.trim()
                .parse::<Action>()
                .map(|action| Rule {
                    pattern: pattern.clone(),
                    action,
                })
                .map_err(|e| Failure::usage(e.to_string()))
        })
        .collect()
}

pub fn run(args: TokenArgs) -> i32 {
    run_account_command(&args.common, false, |access, output| async move {
        match args.command {
            TokenCommand::Create {
                name,
                user,
                expires,
                scopes,
            } => {
                let mut rules = Vec::new();
                for scope in &scopes {
                    rules.extend(parse_scope(scope)?);
                }
                let created = access.create_token(&user, &name, expires, &rules).await?;
                if output.json {
                    output.print_json(&created);
                } else {
                    // The one place the secret is ever shown: the result on stdout.
                    println!("{}", created.token);
                    output.note(format!(
                        "token {name} for {user} created; it is shown only this once"
                    ));
                }
            }
            TokenCommand::List { user } => {
                let tokens = access.tokens(user.as_deref()).await?;
                print_tokens(&output, &tokens);
            }
            TokenCommand::Revoke { name, user } => {
                let revoked = access.revoke_token(user.as_deref(), &name).await?;
                report(
                    &output,
                    json!({ "name": name, "user": user, "revoked": revoked }),
                    || format!("token {name} revoked"),
                );
                if !revoked {
                    return Err(Failure::found(format!(
                        "there is no live token named {name:?}"
                    )));
                }
            }
        }
        Ok(())
    })
}

fn state(token: &TokenRecord, now: i64) -> &'static str {
    if token.revoked_at.is_some() {
        "revoked"
    } else if is_live(token, now) {
        "live"
    } else {
        "expired"
    }
}

fn print_tokens(output: &super::output::Output, tokens: &[TokenRecord]) {
    let now = now_millis();
    let scopes = |t: &TokenRecord| -> Vec<GrantView> {
        t.scopes
            .iter()
            .map(|s| GrantView {
                pattern: s.pattern.clone(),
                action: s.action.clone(),
            })
            .collect()
    };
    if output.json {
        let list: Vec<_> = tokens
            .iter()
            .map(|t| {
                json!({
                    "user": t.user, "name": t.name, "state": state(t, now),
                    "scopes": scopes(t), "created_at": t.created_at, "expires_at": t.expires_at,
                    "revoked_at": t.revoked_at, "last_used_at": t.last_used_at,
                })
            })
            .collect();
        output.print_json(&json!({ "tokens": list }));
        return;
    }
    let mut table = output.table([
        "USER",
        "NAME",
        "STATE",
        "SCOPES",
        "CREATED",
        "EXPIRES",
        "LAST USED",
    ]);
    let time = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), format_time);
    for t in tokens {
        let scope_text = match t.scopes.is_empty() {
            true => "all of the user's".to_owned(),
            false => format_grants(&scopes(t)),
        };
        table.add_row([
            t.user.clone(),
            t.name.clone(),
            state(t, now).to_owned(),
            scope_text,
            format_time(t.created_at),
            time(t.expires_at),
            time(t.last_used_at),
        ]);
    }
    println!("{table}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_pattern_colon_actions() {
        let rules = parse_scope("john/*:pull,push").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].pattern.as_str(), "john/*");
        assert!(parse_scope("john/*").is_err());
        assert!(parse_scope("john/*:fly").is_err());
        assert!(parse_scope("JOHN:pull").is_err());
    }
}
