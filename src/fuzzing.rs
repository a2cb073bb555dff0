//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), shared with
//! the regression test that replays the kept corpus on every `cargo test`.
//!
//! Each takes arbitrary bytes, feeds them to a parser that sees untrusted
//! input, and checks what must hold whatever the input: no panic, and the
//! parser's own promises (a parsed value prints back as its input, a parsed
//! route names a valid repository, …). A broken promise panics, which the
//! fuzzer reports as a crash.

use crate::access::RepoPattern;
use crate::api::routes::V2Route;
use crate::oci::manifest;
use crate::oci::{Digest, Reference, RepoName, Tag};

/// Repository names, tags, references and digests.
pub fn names(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = text.parse::<RepoName>() {
        assert_eq!(name.as_str(), text);
        assert!(text.len() <= crate::oci::name::MAX_NAME_LEN);
        assert!(
            !text.contains(".."),
            "a name never walks up a path: {text:?}"
        );
    }
    if let Ok(tag) = text.parse::<Tag>() {
        assert_eq!(tag.as_str(), text);
        assert!(!text.contains('/') && !text.contains(':'));
    }
    if let Ok(digest) = text.parse::<Digest>() {
        assert_eq!(digest.to_string(), text);
        assert!(digest
            .hex()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    if let Ok(reference) = text.parse::<Reference>() {
        assert_eq!(reference.to_string(), text);
    }
}

/// The `/v2/…` path parser.
pub fn route(data: &[u8]) {
    let path = String::from_utf8_lossy(data);
    let Ok(route) = V2Route::parse(&path) else {
        return;
    };
    let repo = match &route {
        V2Route::Base | V2Route::Catalog => return,
        V2Route::Blob { repo, .. }
        | V2Route::Uploads { repo }
        | V2Route::Upload { repo, .. }
        | V2Route::Manifest { repo, .. }
        | V2Route::Tags { repo }
        | V2Route::Referrers { repo, .. } => repo,
    };
    assert!(
        path.starts_with(&format!("/v2/{repo}/")),
        "{path:?} parsed to repository {repo}"
    );
}

/// The manifest and index parser, with each kind of Content-Type.
pub fn manifest(data: &[u8]) {
    const CONTENT_TYPES: [Option<&str>; 5] = [
        None,
        Some("application/vnd.oci.image.manifest.v1+json"),
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
        Some("application/json"),
    ];
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let parsed = manifest::parse(body, content_type);
    if manifest::check_depth(body).is_err() {
        assert!(parsed.is_err(), "too deep, yet parsed");
    }
    if let Ok(parsed) = parsed {
        let mut blobs = parsed.blobs.clone();
        blobs.sort();
        blobs.dedup();
        assert_eq!(
            blobs.len(),
            parsed.blobs.len(),
            "blobs are listed once each"
        );
        let mut children = parsed.children.clone();
        children.sort();
        children.dedup();
        assert_eq!(children.len(), parsed.children.len());
    }
}

/// Grant patterns, and matching them against names: `pattern\nname`.
pub fn pattern(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (pattern, name) = text.split_once('\n').unwrap_or((&text, "a"));
    let Ok(pattern) = pattern.parse::<RepoPattern>() else {
        return;
    };
    if let Ok(name) = name.parse::<RepoName>() {
        let matched = pattern.matches(&name);
        if pattern.as_str() == name.as_str() {
            assert!(matched, "an exact pattern matches its own name");
        }
        if pattern.as_str() == "*" {
            assert!(matched);
        }
    }
}

/// The request headers a blob or manifest GET reads: `Range` against a
/// blob size picked by the first byte, and the same text as each
/// conditional header.
pub fn headers(data: &[u8]) {
    use crate::api::byte_ranges::{self, RangeRequest};
    use crate::api::conditional::{self, Precondition};
    use crate::registry::WriteCondition;
    use axum::http::header::{IF_MATCH, IF_NONE_MATCH, IF_RANGE};
    use axum::http::{HeaderMap, HeaderValue};

    const SIZES: [u64; 6] = [0, 1, 10, 100, 4096, u64::MAX];
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let size = SIZES[usize::from(selector) % SIZES.len()];
    let text = String::from_utf8_lossy(text);
    match byte_ranges::parse(&text, size) {
        Ok(RangeRequest::Whole) => {}
        Ok(RangeRequest::One(r)) => {
            assert!(r.first <= r.last && r.last < size, "{text:?}: {r:?}");
        }
        Ok(RangeRequest::Several(ranges)) => {
            assert!(!ranges.is_empty() && ranges.len() <= 1024, "{text:?}");
            let mut total = 0u64;
            for r in &ranges {
                assert!(r.first <= r.last && r.last < size, "{text:?}: {r:?}");
                total += r.byte_count();
            }
            assert!(
                total <= size,
                "{text:?}: the parts ask for more than the blob"
            );
        }
        // Unsatisfiable (416): only ever for byte ranges.
        Err(_) => assert!(
            text.trim().to_ascii_lowercase().starts_with("bytes="),
            "{text:?}"
        ),
    }
    let Ok(value) = HeaderValue::from_str(&text) else {
        return;
    };
    let digest = Digest::sha256_of(data);
    for name in [IF_MATCH, IF_NONE_MATCH, IF_RANGE] {
        let mut headers = HeaderMap::new();
        headers.insert(name.clone(), value.clone());
        let decided = conditional::evaluate(&headers, &digest);
        if let Some(condition) = conditional::PutCondition::read(&headers) {
            // Whatever the field says: If-None-Match never refuses a
            // reference that names nothing yet, If-Match never accepts one.
            condition.holds(Some(&digest));
            let absent = condition.holds(None);
            if name == IF_NONE_MATCH {
                assert!(absent, "{text:?}: If-None-Match refused a new reference");
            }
            if name == IF_MATCH {
                assert!(!absent, "{text:?}: If-Match held for a missing reference");
            }
        }
        if name == IF_RANGE {
            assert!(matches!(decided, Precondition::Send { .. }));
        }
        if name == IF_NONE_MATCH && text.trim_matches([' ', '\t']) == "*" {
            assert_eq!(decided, Precondition::NotModified);
        }
    }
    // The current tag, quoted, is always recognised.
    let mut headers = HeaderMap::new();
    if let Ok(current) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        headers.insert(IF_NONE_MATCH, current);
        assert_eq!(
            conditional::evaluate(&headers, &digest),
            Precondition::NotModified
        );
    }
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every entry point by the name of its fuzz target (and corpus folder).
pub const TARGETS: [(&str, Target); 5] = [
    ("names", names),
    ("route", route),
    ("manifest", manifest),
    ("pattern", pattern),
    ("headers", headers),
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::TARGETS;

    /// The kept inputs of `target`: the seed corpus and any crash found and
    /// fixed since (`fuzz/regressions/<target>/`).
    fn kept_inputs(target: &str) -> Vec<Vec<u8>> {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut inputs = Vec::new();
        for folder in [
            fuzz.join("corpus").join(target),
            fuzz.join("regressions").join(target),
        ] {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                inputs.push(std::fs::read(entry.path()).expect("read a corpus file"));
            }
        }
        inputs
    }

    #[test]
    fn the_kept_corpus_replays_cleanly() {
        for (target, check) in TARGETS {
            let inputs = kept_inputs(target);
            assert!(!inputs.is_empty(), "fuzz/corpus/{target} is empty");
            for input in inputs {
                check(&input);
            }
        }
    }

    /// What cargo-fuzz does, in small: random mutations of the kept inputs,
    /// a bounded number of them, so that stable `cargo test` exercises the
    /// same entry points beyond the corpus.
    #[test]
    fn random_mutations_of_the_corpus_keep_the_promises() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (target, check) in TARGETS {
            let inputs = kept_inputs(target);
            for _ in 0..3000 {
                let mut data = inputs[next() as usize % inputs.len()].clone();
                for _ in 0..1 + next() % 4 {
                    let at = if data.is_empty() {
                        0
                    } else {
                        next() as usize % data.len()
                    };
                    match next() % 5 {
                        0 if !data.is_empty() => data[at] ^= 1 << (next() % 8),
                        1 => data.insert(at, next() as u8),
                        2 if !data.is_empty() => {
                            let end = (at + 1 + next() as usize % 8).min(data.len());
                            data.drain(at..end);
                        }
                        3 => {
                            let other = &inputs[next() as usize % inputs.len()];
                            let from = next() as usize % (other.len() + 1);
                            data.splice(at..at, other[from..].iter().copied());
                        }
                        _ => data.insert(at, b"/:[{*.%\"\\-_"[next() as usize % 11]),
                    }
                }
                check(&data);
            }
        }
    }
}
