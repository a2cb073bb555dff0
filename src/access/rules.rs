//! Who may do what: actions, repository patterns, and the grants that join
//! them.
//!
//! - `push` implies `pull`; `admin` implies `pull`, `push` and `delete`.
//! - A pattern is an exact name (`library/busybox`), a name with `*`
//!   standing for one path component or part of one (`john/*`,
//!   `john/app-*`), with `**` standing for one or more components
//!   (`john/**`), or `*` / `**` alone for every repository.
//!
//! Pure functions over validated values: no I/O, no clock.

use std::fmt;
use std::str::FromStr;

use crate::oci::RepoName;

/// A right a grant confers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Pull,
    Push,
    Delete,
    Admin,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Pull, Action::Push, Action::Delete, Action::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Admin => "admin",
        }
    }

    /// Everything granting this action allows.
    pub fn implied(self) -> Actions {
        match self {
            Action::Pull => Actions::PULL,
            Action::Push => Actions::PULL.with(Actions::PUSH),
            Action::Delete => Actions::DELETE,
            Action::Admin => Actions::ALL,
        }
    }
}

impl FromStr for Action {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| RuleError::UnknownAction(s.to_owned()))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of repository operations (`pull`, `push`, `delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const PULL: Actions = Actions(1);
    pub const PUSH: Actions = Actions(2);
    pub const DELETE: Actions = Actions(4);
    pub const ALL: Actions = Actions(7);

    pub const fn with(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    pub fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the operations, in the order the token spec writes them.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Actions::PULL, "pull"),
            (Actions::PUSH, "push"),
            (Actions::DELETE, "delete"),
        ]
        .into_iter()
        .filter(|(a, _)| self.contains(*a))
        .map(|(_, name)| name)
        .collect()
    }

    /// Reads operation names as the token spec writes them (`pull`, `push`,
    /// `delete`, `*` for all); unknown names are ignored.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Actions {
        names.into_iter().fold(Actions::NONE, |acc, name| {
            acc.with(match name.trim() {
                "pull" => Actions::PULL,
                "push" => Actions::PUSH,
                "delete" => Actions::DELETE,
                "*" => Actions::ALL,
                _ => Actions::NONE,
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("unknown action {0:?}: use pull, push, delete or admin")]
    UnknownAction(String),
    #[error("repository pattern {0:?} is invalid: use a repository name, optionally with * (one path component) or ** (any depth), e.g. john/*, john/**, library/busybox, *")]
    InvalidPattern(String),
}

/// Most `**` components one pattern may have.
const MAX_ANY_DEPTH: usize = 2;

/// A repository pattern, validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoPattern(String);

impl RepoPattern {
    /// The pattern matching every repository.
    pub fn everything() -> RepoPattern {
        RepoPattern("**".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, repo: &RepoName) -> bool {
        if self.0 == "*" || self.0 == "**" {
            return true;
        }
        let pattern: Vec<&str> = self.0.split('/').collect();
        let name: Vec<&str> = repo.as_str().split('/').collect();
        match_components(&pattern, &name)
    }
}

fn match_components(pattern: &[&str], name: &[&str]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(&"**"), Some(_)) => {
            // One or more components: take one, then either stop here or go on.
            match_components(&pattern[1..], &name[1..]) || match_components(pattern, &name[1..])
        }
        (Some(glob), Some(component)) => {
            glob_matches(glob.as_bytes(), component.as_bytes())
                && match_components(&pattern[1..], &name[1..])
        }
    }
}

/// `*` matches any run of characters within one component. Iterative, with
/// one backtracking point, so it costs at most `glob.len() * text.len()`.
fn glob_matches(glob: &[u8], text: &[u8]) -> bool {
    let (mut g, mut t) = (0, 0);
    // The last '*' seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if glob.get(g) == Some(&b'*') {
            star = Some((g, t));
            g += 1;
        } else if glob.get(g) == Some(&text[t]) {
            g += 1;
            t += 1;
        } else if let Some((star_g, star_t)) = star {
            // Let the '*' swallow one more character and retry.
            g = star_g + 1;
            t = star_t + 1;
            star = Some((star_g, star_t + 1));
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

impl FromStr for RepoPattern {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || RuleError::InvalidPattern(s.to_owned());
        if s == "*" || s == "**" {
            return Ok(RepoPattern(s.to_owned()));
        }
        if s.len() > crate::oci::name::MAX_NAME_LEN || s.is_empty() {
            return Err(invalid());
        }
        if !s.contains('*') {
            s.parse::<RepoName>().map_err(|_| invalid())?;
            return Ok(RepoPattern(s.to_owned()));
        }
        // Each '**' multiplies the ways a name can be split; two are plenty
        // and keep matching cheap.
        if s.split('/').filter(|c| *c == "**").count() > MAX_ANY_DEPTH {
            return Err(invalid());
        }
        for component in s.split('/') {
            if component == "**" {
                continue;
            }
            // A glob component: the name grammar's characters, with '*' as a
            // wildcard. Replacing each '*' by 'a' must leave a valid component.
            let filled = component.replace('*', "a");
            if component.contains("**") || filled.parse::<RepoName>().is_err() {
                return Err(invalid());
            }
        }
        Ok(RepoPattern(s.to_owned()))
    }
}

impl fmt::Display for RepoPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One grant: `action` on the repositories matching `pattern`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub pattern: RepoPattern,
    pub action: Action,
}

/// A set of rules; what they allow is the union of what each allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules(Vec<Rule>);

impl Rules {
    pub fn new(rules: Vec<Rule>) -> Rules {
        Rules(rules)
    }

    /// Rules that allow everything everywhere.
    pub fn everything() -> Rules {
        Rules(vec![Rule {
            pattern: RepoPattern::everything(),
            action: Action::Admin,
        }])
    }

    pub fn push(&mut self, rule: Rule) {
        self.0.push(rule);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.0.iter()
    }

    /// What the rules allow on `repo`.
    pub fn actions_on(&self, repo: &RepoName) -> Actions {
        self.0
            .iter()
            .filter(|rule| rule.pattern.matches(repo))
            .fold(Actions::NONE, |acc, rule| acc.with(rule.action.implied()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> RepoPattern {
        p.parse().unwrap()
    }

    fn matches(p: &str, name: &str) -> bool {
        pattern(p).matches(&name.parse().unwrap())
    }

    #[test]
    fn one_star_is_one_component() {
        assert!(matches("john/*", "john/app"));
        assert!(!matches("john/*", "john/app/x"));
        assert!(!matches("john/*", "johnny/app"));
        assert!(!matches("john/*", "john"));
        assert!(matches("john/app-*", "john/app-web"));
        assert!(!matches("john/app-*", "john/api"));
        assert!(matches("*/busybox", "library/busybox"));
        assert!(matches("a/*-*-*", "a/x-y-z"));
        assert!(!matches("a/*-*-*", "a/x-y"));
        assert!(matches("a/*", "a/x"));
        let many_stars = format!("a/{}b", "*a".repeat(40));
        assert!(
            !matches(&many_stars, &format!("a/{}", "a".repeat(200))),
            "stays fast too"
        );
    }

    #[test]
    fn two_stars_are_any_depth() {
        assert!(matches("john/**", "john/app"));
        assert!(matches("john/**", "john/a/b/c"));
        assert!(!matches("john/**", "john"));
        assert!(!matches("john/**", "jane/app"));
        assert!(matches("a/**/z", "a/b/c/z"));
        assert!(!matches("a/**/z", "a/z"));
    }

    #[test]
    fn exact_names_and_everything() {
        assert!(matches("library/busybox", "library/busybox"));
        assert!(!matches("library/busybox", "library/busybox2"));
        assert!(!matches("library/busybox", "library/busybox/x"));
        for p in ["*", "**"] {
            assert!(matches(p, "x"));
            assert!(matches(p, "a/b/c/d"));
        }
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "", "John/*", "a//b", "/a", "a/", "a/***", "a/b c", "a/**x", "../x",
        ] {
            assert!(bad.parse::<RepoPattern>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn actions_imply_others() {
        let rules = Rules::new(vec![
            Rule {
                pattern: pattern("john/*"),
                action: Action::Push,
            },
            Rule {
                pattern: pattern("shared/**"),
                action: Action::Delete,
            },
        ]);
        let on = |n: &str| rules.actions_on(&n.parse().unwrap());
        assert_eq!(on("john/app"), Actions::PULL.with(Actions::PUSH));
        assert_eq!(on("shared/x/y"), Actions::DELETE);
        assert_eq!(on("other"), Actions::NONE);
        assert_eq!(Action::Admin.implied(), Actions::ALL);
        assert_eq!(Actions::from_names("pull,push".split(',')), on("john/app"));
        assert_eq!(Actions::from_names(["*"]), Actions::ALL);
        assert_eq!(Actions::ALL.names(), vec!["pull", "push", "delete"]);
    }
}
