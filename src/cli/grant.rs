//! `artispace grant` and `artispace revoke`: permissions by repository
//! pattern.

use clap::Args;
use serde_json::json;

use super::output::CommonArgs;
use super::user::{report, run_account_command, Failure};
use crate::access::{Action, RepoPattern, Subject};

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// A user name, or `anonymous` for callers without credentials.
    pub subject: String,
    /// Repositories: a name (library/busybox), john/* (one level), john/**
    /// (any depth) or * (all).
    pub pattern: String,
    /// pull, push (implies pull), delete, or admin (implies all).
    pub action: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// A user name, or `anonymous`.
    pub subject: String,
    /// The pattern exactly as granted.
    pub pattern: String,
    /// Only this action (default: every action granted on the pattern).
    pub action: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn parse(subject: &str, pattern: &str) -> Result<(Subject, RepoPattern), Failure> {
    let subject: Subject = subject.parse()?;
    let pattern: RepoPattern = pattern
        .parse()
        .map_err(|e: crate::access::RuleError| Failure::usage(e.to_string()))?;
    Ok((subject, pattern))
}

fn parse_action(action: &str) -> Result<Action, Failure> {
    action
        .parse()
        .map_err(|e: crate::access::RuleError| Failure::usage(e.to_string()))
}

pub fn run_grant(args: GrantArgs) -> i32 {
    // Granting to anonymous callers may be the first thing done to a store.
    let create = args.subject == crate::access::ANONYMOUS;
    run_account_command(&args.common, create, |access, output| async move {
        let (subject, pattern) = parse(&args.subject, &args.pattern)?;
        let action = parse_action(&args.action)?;
        let added = access.grant(&subject, &pattern, action).await?;
        report(
            &output,
            json!({ "subject": subject.to_string(), "pattern": pattern.as_str(), "action": action.as_str(), "added": added }),
            || match added {
                true => format!("{subject} may now {action} {pattern}"),
                false => format!("{subject} could already {action} {pattern}"),
            },
        );
        Ok(())
    })
}

pub fn run_revoke(args: RevokeArgs) -> i32 {
    run_account_command(&args.common, false, |access, output| async move {
        let (subject, pattern) = parse(&args.subject, &args.pattern)?;
        let action = args.action.as_deref().map(parse_action).transpose()?;
        let removed = access.revoke(&subject, &pattern, action).await?;
        report(
            &output,
            json!({ "subject": subject.to_string(), "pattern": pattern.as_str(), "action": action.map(Action::as_str), "removed": removed }),
            || format!("{removed} grant(s) of {subject} on {pattern} revoked"),
        );
        if removed == 0 {
            return Err(Failure::found(format!(
                "{subject} has no such grant on {pattern} (see artispace user list)"
            )));
        }
        Ok(())
    })
}
