//! Conditional requests (RFC 9110 §13): GET and HEAD of blobs and
//! manifests, and manifest PUT.
//!
//! Blobs and manifests carry the quoted digest as their entity tag: a strong validator,
//! the same for a digest forever and changing with the manifest a tag
//! names. So a cache in front of the registry (or a client polling a tag)
//! revalidates with `If-None-Match` and gets a bodiless 304 while the bytes
//! are unchanged, a resumed download sends `If-Range` and gets the rest
//! only if it is still the same content, and `If-Match` makes a read fail
//! with 412 instead of returning other content than the one asked for.
//! On a manifest PUT the same fields make a write conditional on what the
//! tag names at that moment ([`PutCondition`]).
//! There is no modification date (`Last-Modified` is never sent), so the
//! date forms (`If-Modified-Since`, `If-Unmodified-Since`, a date in
//! `If-Range`) can never be shown true, and are treated as RFC 9110 says
//! for a resource without one.

use axum::http::header::{IF_MATCH, IF_NONE_MATCH, IF_RANGE};
use axum::http::{HeaderMap, HeaderName};

use crate::oci::Digest;
use crate::registry::WriteCondition;

/// What the preconditions of a GET or HEAD decide, in RFC 9110 §13.2.2's
/// order, for a representation that exists and whose entity tag is its
/// digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Send the representation; a `Range` may shape it only when
    /// `range_allowed` (no `If-Range`, or one naming this content).
    Send { range_allowed: bool },
    /// The client's copy is current: 304 without a body.
    NotModified,
    /// `If-Match` names other content: 412.
    Failed,
}

/// Evaluates `If-Match`, `If-None-Match` and `If-Range` against `digest`.
/// A header that breaks the entity-tag grammar is ignored, as if absent.
pub fn evaluate(headers: &HeaderMap, digest: &Digest) -> Precondition {
    if let Some(if_match) = Field::read(headers, IF_MATCH) {
        if !if_match.matches(Some(digest), Comparison::Strong) {
            return Precondition::Failed;
        }
    }
    if let Some(if_none_match) = Field::read(headers, IF_NONE_MATCH) {
        if if_none_match.matches(Some(digest), Comparison::Weak) {
            return Precondition::NotModified;
        }
    }
    Precondition::Send {
        range_allowed: if_range_holds(headers, digest),
    }
}

/// The `If-Match` and `If-None-Match` of a manifest PUT. The store checks
/// them against what the reference names in the transaction that writes
/// it: `If-Match: "<digest>"` moves a tag only if it still names that
/// manifest, `If-None-Match: *` creates a tag only if it does not exist.
/// Either failing is 412 and nothing is written.
#[derive(Debug)]
pub struct PutCondition {
    if_match: Option<Field>,
    if_none_match: Option<Field>,
}

impl PutCondition {
    /// `None` when the request has neither field (or only malformed ones).
    pub fn read(headers: &HeaderMap) -> Option<PutCondition> {
        let condition = PutCondition {
            if_match: Field::read(headers, IF_MATCH),
            if_none_match: Field::read(headers, IF_NONE_MATCH),
        };
        (condition.if_match.is_some() || condition.if_none_match.is_some()).then_some(condition)
    }
}

impl WriteCondition for PutCondition {
    fn holds(&self, current: Option<&Digest>) -> bool {
        let matched = |field: &Option<Field>, comparison| {
            field.as_ref().map(|f| f.matches(current, comparison))
        };
        matched(&self.if_match, Comparison::Strong) != Some(false)
            && matched(&self.if_none_match, Comparison::Weak) != Some(true)
    }
}

#[derive(Clone, Copy)]
enum Comparison {
    /// Both tags strong and equal (`If-Match`, `If-Range`).
    Strong,
    /// Equal once `W/` is set aside (`If-None-Match`).
    Weak,
}

/// A conditional field as received: `*`, or a list of entity tags
/// (`(weak, opaque)` each), gathered over all its lines.
#[derive(Debug)]
enum Field {
    Any,
    Tags(Vec<(bool, String)>),
}

impl Field {
    /// `None` when the field is absent or breaks the grammar.
    fn read(headers: &HeaderMap, name: HeaderName) -> Option<Field> {
        let mut any = false;
        let mut tags = Vec::new();
        let mut present = false;
        for value in headers.get_all(name) {
            let value = value.to_str().ok()?.trim();
            present = true;
            if value == "*" {
                any = true;
                continue;
            }
            for tag in EntityTags::new(value) {
                let (weak, opaque) = tag?;
                tags.push((weak, opaque.to_owned()));
            }
        }
        match (present, any) {
            (false, _) => None,
            (true, true) => Some(Field::Any),
            (true, false) => Some(Field::Tags(tags)),
        }
    }

    /// Whether the field matches `current` (`*` matches any existing
    /// representation; nothing matches when there is none).
    fn matches(&self, current: Option<&Digest>, comparison: Comparison) -> bool {
        let Some(current) = current else {
            return false;
        };
        match self {
            Field::Any => true,
            Field::Tags(tags) => tags.iter().any(|(weak, opaque)| {
                let comparable = match comparison {
                    Comparison::Strong => !weak,
                    Comparison::Weak => true,
                };
                comparable && names(opaque, current)
            }),
        }
    }
}

/// `If-Range` holds when it is absent or names this content with a strong
/// tag. A date never holds here (there is no `Last-Modified` to compare it
/// with), so the whole representation is sent, as RFC 9110 §13.1.5 asks.
fn if_range_holds(headers: &HeaderMap, digest: &Digest) -> bool {
    let Some(value) = headers.get(IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mut tags = EntityTags::new(value.trim());
    match (tags.next(), tags.next()) {
        (Some(Some((false, opaque))), None) => names(opaque, digest),
        _ => false,
    }
}

/// Whether an entity tag's opaque part is `digest`'s text, compared without
/// formatting the digest.
fn names(opaque: &str, digest: &Digest) -> bool {
    opaque.split_once(':') == Some((digest.algorithm().as_str(), digest.hex()))
}

/// The entity tags of a comma-separated list: `(weak, opaque)` each, or
/// `None` once the list breaks the grammar (which ends the iteration).
struct EntityTags<'a> {
    rest: &'a str,
}

impl<'a> EntityTags<'a> {
    fn new(list: &'a str) -> Self {
        EntityTags { rest: list }
    }
}

impl<'a> Iterator for EntityTags<'a> {
    type Item = Option<(bool, &'a str)>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            return None;
        }
        let (weak, rest) = match rest.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        // Opaque tags are quoted and may hold any visible character but a
        // quote, commas included.
        let parsed = rest.strip_prefix('"').and_then(|quoted| {
            let end = quoted.find('"')?;
            let after = &quoted[end + 1..];
            let separated = after
                .trim_start_matches([' ', '\t'])
                .chars()
                .next()
                .is_none_or(|c| c == ',');
            separated.then(|| (&quoted[..end], after))
        });
        match parsed {
            Some((opaque, after)) => {
                self.rest = after;
                Some(Some((weak, opaque)))
            }
            None => {
                self.rest = "";
                Some(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const OTHER: &str = "sha256:a3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn decide(fields: &[(HeaderName, &str)]) -> Precondition {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        evaluate(&headers, &DIGEST.parse().unwrap())
    }

    const SEND: Precondition = Precondition::Send {
        range_allowed: true,
    };
    const SEND_WHOLE: Precondition = Precondition::Send {
        range_allowed: false,
    };

    #[test]
    fn without_conditions_the_representation_is_sent() {
        assert_eq!(decide(&[]), SEND);
    }

    #[test]
    fn if_none_match_with_the_current_tag_is_not_modified() {
        let current = format!("\"{DIGEST}\"");
        assert_eq!(
            decide(&[(IF_NONE_MATCH, &current)]),
            Precondition::NotModified
        );
        assert_eq!(decide(&[(IF_NONE_MATCH, "*")]), Precondition::NotModified);
        // Weak comparison: W/ is set aside.
        let weak = format!("W/\"{DIGEST}\"");
        assert_eq!(decide(&[(IF_NONE_MATCH, &weak)]), Precondition::NotModified);
        // Anywhere in a list, or in a second field line.
        let list = format!("\"{OTHER}\", \"{DIGEST}\"");
        assert_eq!(decide(&[(IF_NONE_MATCH, &list)]), Precondition::NotModified);
        let other = format!("\"{OTHER}\"");
        assert_eq!(
            decide(&[(IF_NONE_MATCH, &other), (IF_NONE_MATCH, &current)]),
            Precondition::NotModified
        );
    }

    #[test]
    fn if_none_match_with_other_tags_sends() {
        let other = format!("\"{OTHER}\", W/\"x,y\"");
        assert_eq!(decide(&[(IF_NONE_MATCH, &other)]), SEND);
    }

    #[test]
    fn malformed_lists_are_ignored() {
        // Unquoted, unterminated, or junk after a tag: as if absent.
        for value in [
            DIGEST.to_owned(),
            format!("\"{DIGEST}"),
            format!("\"{DIGEST}\"x"),
            format!("\"{OTHER}\" \"{DIGEST}\""),
        ] {
            assert_eq!(decide(&[(IF_NONE_MATCH, &value)]), SEND, "{value}");
            assert_eq!(decide(&[(IF_MATCH, &value)]), SEND, "{value}");
        }
    }

    #[test]
    fn if_match_needs_a_strong_match() {
        let current = format!("\"{DIGEST}\"");
        assert_eq!(decide(&[(IF_MATCH, &current)]), SEND);
        assert_eq!(decide(&[(IF_MATCH, "*")]), SEND);
        let other = format!("\"{OTHER}\"");
        assert_eq!(decide(&[(IF_MATCH, &other)]), Precondition::Failed);
        let weak = format!("W/\"{DIGEST}\"");
        assert_eq!(decide(&[(IF_MATCH, &weak)]), Precondition::Failed);
        // If-Match is decided before If-None-Match.
        assert_eq!(
            decide(&[(IF_MATCH, &other), (IF_NONE_MATCH, &current)]),
            Precondition::Failed
        );
    }

    #[test]
    fn if_range_allows_a_range_only_for_the_same_content() {
        let current = format!("\"{DIGEST}\"");
        assert_eq!(decide(&[(IF_RANGE, &current)]), SEND);
        let other = format!("\"{OTHER}\"");
        assert_eq!(decide(&[(IF_RANGE, &other)]), SEND_WHOLE);
        let weak = format!("W/\"{DIGEST}\"");
        assert_eq!(decide(&[(IF_RANGE, &weak)]), SEND_WHOLE);
        assert_eq!(
            decide(&[(IF_RANGE, "Wed, 21 Oct 2015 07:28:00 GMT")]),
            SEND_WHOLE
        );
    }

    fn put_condition(fields: &[(HeaderName, &str)]) -> Option<PutCondition> {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        PutCondition::read(&headers)
    }

    #[test]
    fn put_conditions_follow_what_the_reference_names() {
        let (digest, other) = (DIGEST.parse::<Digest>().unwrap(), OTHER.parse().unwrap());
        assert!(put_condition(&[]).is_none());
        assert!(put_condition(&[(IF_MATCH, "unquoted")]).is_none());

        let create_only = put_condition(&[(IF_NONE_MATCH, "*")]).unwrap();
        assert!(create_only.holds(None));
        assert!(!create_only.holds(Some(&digest)));

        let must_exist = put_condition(&[(IF_MATCH, "*")]).unwrap();
        assert!(!must_exist.holds(None));
        assert!(must_exist.holds(Some(&digest)));

        let current = format!("\"{DIGEST}\"");
        let still = put_condition(&[(IF_MATCH, &current)]).unwrap();
        assert!(still.holds(Some(&digest)));
        assert!(!still.holds(Some(&other)));
        assert!(!still.holds(None));
        // If-Match compares strongly.
        let weak = format!("W/{current}");
        assert!(!put_condition(&[(IF_MATCH, &weak)])
            .unwrap()
            .holds(Some(&digest)));

        let not_that = put_condition(&[(IF_NONE_MATCH, &weak)]).unwrap();
        assert!(!not_that.holds(Some(&digest)));
        assert!(not_that.holds(Some(&other)));
        assert!(not_that.holds(None));
    }

    #[test]
    fn a_digest_of_another_algorithm_never_matches() {
        let sha512 = format!("\"sha512:{}\"", &DIGEST[7..]);
        assert_eq!(decide(&[(IF_NONE_MATCH, &sha512)]), SEND);
    }
}
