//! The behaviour every [`MetadataStore`] backend must have, as one suite of
//! tests generic over the trait. A new backend (PostgreSQL) runs the same
//! suite from its own test.

use std::cell::Cell;

use uuid::Uuid;

use super::{BlobState, GcPolicy, MetadataError, MetadataStore, NewManifest, WriteCondition};
use crate::oci::manifest::parse;
use crate::oci::{Digest, RepoName, Tag};

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn tag(name: &str) -> Tag {
    name.parse().unwrap()
}

/// Records a blob as pushed to `repo`; returns the state the store saw
/// under its lock before recording it.
fn push_blob(
    store: &dyn MetadataStore,
    repo_name: &str,
    content: &[u8],
) -> (Digest, Option<BlobState>) {
    let digest = Digest::sha256_of(content);
    let id = Uuid::new_v4();
    store.create_upload(id, &repo(repo_name)).unwrap();
    let mut seen = None;
    let mut calls = 0;
    store
        .commit_blob(
            &repo(repo_name),
            &digest,
            content.len() as u64,
            id,
            &mut |state| {
                seen = state;
                calls += 1;
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(calls, 1, "the file check runs once, under the lock");
    assert!(
        store.upload(id).unwrap().is_none(),
        "committing ends the session"
    );
    (digest, seen)
}

fn image_manifest(config: &Digest, layer: &Digest, subject: Option<&Digest>) -> Vec<u8> {
    let subject = subject
        .map(|s| format!(r#","subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{s}","size":1}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},
        "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":1}}]{subject}}}"#
    )
    .into_bytes()
}

fn put(
    store: &dyn MetadataStore,
    repo_name: &str,
    content: &[u8],
    tag_name: Option<&str>,
) -> Result<Digest, MetadataError> {
    let parsed = parse(content, None).unwrap();
    let digest = Digest::sha256_of(content);
    let tag = tag_name.map(tag);
    store.put_manifest(NewManifest {
        repo: &repo(repo_name),
        digest: &digest,
        parsed: &parsed,
        content,
        tag: tag.as_ref(),
        condition: None,
    })?;
    Ok(digest)
}

pub fn blobs_are_stored_once_and_linked_per_repository(store: &dyn MetadataStore) {
    let (digest, first) = push_blob(store, "a", b"layer");
    assert_eq!(first, None, "a new blob has no row yet");
    let (_, again) = push_blob(store, "b", b"layer");
    assert_eq!(
        again,
        Some(BlobState::Present),
        "the second push finds it present"
    );
    assert_eq!(
        store.linked_blob_size(&repo("a"), &digest).unwrap(),
        Some(5)
    );
    assert_eq!(store.linked_blob_size(&repo("c"), &digest).unwrap(), None);
    assert!(store.unlink_blob(&repo("a"), &digest).unwrap());
    assert_eq!(store.linked_blob_size(&repo("a"), &digest).unwrap(), None);
    assert_eq!(
        store.linked_blob_size(&repo("b"), &digest).unwrap(),
        Some(5)
    );
}

pub fn mounting_needs_a_link_in_the_source(store: &dyn MetadataStore) {
    let (digest, _) = push_blob(store, "from", b"shared");
    assert!(!store
        .mount_blob(&repo("to"), &repo("elsewhere"), &digest)
        .unwrap());
    assert!(store
        .mount_blob(&repo("to"), &repo("from"), &digest)
        .unwrap());
    assert_eq!(
        store.linked_blob_size(&repo("to"), &digest).unwrap(),
        Some(6)
    );
}

pub fn manifests_need_their_blobs_in_the_same_repository(store: &dyn MetadataStore) {
    let (config, _) = push_blob(store, "app", b"config");
    let (layer, _) = push_blob(store, "other", b"layer");
    let manifest = image_manifest(&config, &layer, None);
    assert!(
        matches!(put(store, "app", &manifest, Some("v1")), Err(MetadataError::MissingBlob(d)) if d == layer)
    );
    assert!(store
        .manifest_by_tag(&repo("app"), &tag("v1"))
        .unwrap()
        .is_none());
    push_blob(store, "app", b"layer");
    let digest = put(store, "app", &manifest, Some("v1")).unwrap();
    let stored = store
        .manifest_by_tag(&repo("app"), &tag("v1"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.digest, stored.content),
        (digest.clone(), manifest.clone())
    );
    assert!(store
        .manifest_by_digest(&repo("app"), &digest)
        .unwrap()
        .is_some());
}

pub fn deleting_a_manifest_takes_its_tags_and_deleting_a_tag_only_the_tag(
    store: &dyn MetadataStore,
) {
    let (config, _) = push_blob(store, "app", b"c");
    let (layer, _) = push_blob(store, "app", b"l");
    let manifest = image_manifest(&config, &layer, None);
    let digest = put(store, "app", &manifest, Some("v1")).unwrap();
    put(store, "app", &manifest, Some("v2")).unwrap();
    assert!(store.delete_tag(&repo("app"), &tag("v1")).unwrap());
    assert_eq!(
        store.list_tags(&repo("app"), None, 10).unwrap().items,
        ["v2"]
    );
    assert!(store.delete_manifest(&repo("app"), &digest).unwrap());
    assert!(store
        .list_tags(&repo("app"), None, 10)
        .unwrap()
        .items
        .is_empty());
    assert!(!store.delete_manifest(&repo("app"), &digest).unwrap());
}

pub fn listings_page_in_lexical_order(store: &dyn MetadataStore) {
    let (config, _) = push_blob(store, "app", b"c");
    let (layer, _) = push_blob(store, "app", b"l");
    let manifest = image_manifest(&config, &layer, None);
    for t in ["b", "a", "c", "B"] {
        put(store, "app", &manifest, Some(t)).unwrap();
    }
    let first = store.list_tags(&repo("app"), None, 2).unwrap();
    assert_eq!(
        (first.items.clone(), first.more),
        (vec!["B".to_owned(), "a".to_owned()], true)
    );
    let rest = store.list_tags(&repo("app"), Some("a"), 2).unwrap();
    assert_eq!(
        (rest.items, rest.more),
        (vec!["b".to_owned(), "c".to_owned()], false)
    );
    push_blob(store, "zeta", b"x");
    let repos = store.list_repositories(Some("app"), 10).unwrap();
    assert_eq!(repos.items, ["zeta"]);
}

pub fn referrers_are_found_by_subject_and_filtered_by_artifact_type(store: &dyn MetadataStore) {
    let (config, _) = push_blob(store, "app", b"c");
    let (layer, _) = push_blob(store, "app", b"l");
    let subject = put(
        store,
        "app",
        &image_manifest(&config, &layer, None),
        Some("v1"),
    )
    .unwrap();
    let (layer2, _) = push_blob(store, "app", b"sig");
    put(
        store,
        "app",
        &image_manifest(&config, &layer2, Some(&subject)),
        None,
    )
    .unwrap();
    let all = store.referrers(&repo("app"), &subject, None).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0].artifact_type.as_deref(),
        Some("application/vnd.oci.image.config.v1+json")
    );
    assert!(store
        .referrers(&repo("app"), &subject, Some("other/type"))
        .unwrap()
        .is_empty());
    assert!(store
        .referrers(&repo("elsewhere"), &subject, None)
        .unwrap()
        .is_empty());
}

pub fn upload_sessions_record_their_size(store: &dyn MetadataStore) {
    let id = Uuid::new_v4();
    let created = store.create_upload(id, &repo("app")).unwrap();
    assert_eq!(created.size, 0);
    store.set_upload_size(id, 42).unwrap();
    assert_eq!(store.upload(id).unwrap().unwrap().size, 42);
    assert_eq!(
        store.expired_uploads(created.updated_at - 1).unwrap(),
        Vec::<Uuid>::new()
    );
    assert!(store.expired_uploads(i64::MAX).unwrap().contains(&id));
    assert!(store.delete_upload(id).unwrap());
    assert!(store.upload(id).unwrap().is_none());
}

pub fn gc_marks_only_what_nothing_holds_and_a_push_revives_it(store: &dyn MetadataStore) {
    let (config, _) = push_blob(store, "app", b"c");
    let (layer, _) = push_blob(store, "app", b"l");
    put(
        store,
        "app",
        &image_manifest(&config, &layer, None),
        Some("v1"),
    )
    .unwrap();
    let (loose, _) = push_blob(store, "app", b"loose");
    let fresh = GcPolicy {
        linked_before: 0,
        delete_untagged: false,
        dry_run: false,
    };
    assert!(
        store.mark_garbage(&fresh).unwrap().blobs.is_empty(),
        "recent links are kept"
    );

    let past_grace = GcPolicy {
        linked_before: i64::MAX,
        delete_untagged: false,
        dry_run: true,
    };
    let planned = store.mark_garbage(&past_grace).unwrap();
    let planned: Vec<&Digest> = planned.blobs.iter().map(|b| &b.digest).collect();
    assert_eq!(planned, [&loose]);
    assert!(
        store
            .blobs()
            .unwrap()
            .iter()
            .all(|b| b.state == BlobState::Present),
        "dry run changed nothing"
    );

    let marks = store
        .mark_garbage(&GcPolicy {
            dry_run: false,
            ..past_grace
        })
        .unwrap();
    assert_eq!(marks.blobs.len(), 1);
    // A push of the same bytes before the sweep moves its file in and wins.
    let (_, seen) = push_blob(store, "app", b"loose");
    assert_eq!(
        seen,
        Some(BlobState::Deleting),
        "the push sees the mark and replaces the file"
    );

    let removed = Cell::new(0);
    let swept = store
        .sweep_blobs(std::slice::from_ref(&loose), &mut |_| {
            removed.set(removed.get() + 1);
            Ok(())
        })
        .unwrap();
    assert_eq!((swept, removed.get()), (0, 0));
    assert_eq!(
        store.linked_blob_size(&repo("app"), &loose).unwrap(),
        Some(5)
    );
}

/// A named check of the suite.
type Check = (&'static str, fn(&dyn MetadataStore));

/// A condition that holds only when the reference names `expected`, and
/// records what it was shown.
struct Names {
    expected: Option<Digest>,
    shown: std::sync::Mutex<Vec<Option<Digest>>>,
}

impl WriteCondition for Names {
    fn holds(&self, current: Option<&Digest>) -> bool {
        self.shown.lock().unwrap().push(current.cloned());
        current == self.expected.as_ref()
    }
}

fn put_if(
    store: &dyn MetadataStore,
    content: &[u8],
    tag_name: Option<&str>,
    expected: Option<&Digest>,
) -> (Result<(), MetadataError>, Vec<Option<Digest>>) {
    let parsed = parse(content, None).unwrap();
    let digest = Digest::sha256_of(content);
    let tag = tag_name.map(tag);
    let condition = Names {
        expected: expected.cloned(),
        shown: Default::default(),
    };
    let outcome = store.put_manifest(NewManifest {
        repo: &repo("app"),
        digest: &digest,
        parsed: &parsed,
        content,
        tag: tag.as_ref(),
        condition: Some(&condition),
    });
    (outcome, condition.shown.into_inner().unwrap())
}

pub fn a_conditional_write_sees_what_the_reference_names_and_writes_nothing_when_refused(
    store: &dyn MetadataStore,
) {
    let (config, _) = push_blob(store, "app", b"c");
    let (layer, _) = push_blob(store, "app", b"l");
    let (other_layer, _) = push_blob(store, "app", b"m");
    let first = image_manifest(&config, &layer, None);
    let second = image_manifest(&config, &other_layer, None);
    let first_digest = Digest::sha256_of(&first);
    let second_digest = Digest::sha256_of(&second);

    // A new tag: the condition is shown nothing.
    let (outcome, shown) = put_if(store, &first, Some("v1"), None);
    assert!(outcome.is_ok());
    assert_eq!(shown, [None]);
    // The tag now names the first manifest: a write expecting nothing is
    // refused, says what is there, and stores nothing of the second.
    let (outcome, shown) = put_if(store, &second, Some("v1"), None);
    assert!(
        matches!(&outcome, Err(MetadataError::ConditionFailed { current: Some(d) }) if *d == first_digest),
        "{outcome:?}"
    );
    assert_eq!(shown, [Some(first_digest.clone())]);
    let tagged = store.manifest_by_tag(&repo("app"), &tag("v1")).unwrap();
    assert_eq!(tagged.map(|m| m.digest), Some(first_digest.clone()));
    assert!(store
        .manifest_by_digest(&repo("app"), &second_digest)
        .unwrap()
        .is_none());
    // Expecting the first: the tag moves.
    let (outcome, _) = put_if(store, &second, Some("v1"), Some(&first_digest));
    assert!(outcome.is_ok());
    let tagged = store.manifest_by_tag(&repo("app"), &tag("v1")).unwrap();
    assert_eq!(tagged.map(|m| m.digest), Some(second_digest.clone()));
    // By digest: the condition is shown the digest once it is stored.
    let (_, shown) = put_if(store, &first, None, Some(&first_digest));
    assert_eq!(shown, [Some(first_digest)]);
}

/// One garbage collection at a time: the claim is exclusive while held,
/// seen as held, and free again once dropped.
pub fn garbage_collection_is_claimed_by_one_at_a_time(store: &dyn MetadataStore) {
    assert!(!store.gc_claimed().unwrap(), "no collection has run yet");
    let claim = store.claim_gc(false).unwrap().expect("a free claim");
    assert!(store.gc_claimed().unwrap());
    assert!(store.claim_gc(false).unwrap().is_none(), "claimed twice");
    drop(claim);
    assert!(!store.gc_claimed().unwrap());
    let again = store.claim_gc(true).unwrap();
    assert!(again.is_some(), "a free claim is given to a waiting caller");
}

/// gc removes a repository left holding nothing, and only such: one with
/// a manifest, a blob linked within the grace period or an upload in
/// progress stays. A dry run only names it; a push brings it back.
pub fn gc_removes_repositories_left_holding_nothing(store: &dyn MetadataStore) {
    let (config, _) = push_blob(store, "gone", b"c");
    let (layer, _) = push_blob(store, "gone", b"l");
    let manifest = image_manifest(&config, &layer, None);
    put(store, "gone", &manifest, Some("v1")).unwrap();
    assert!(store
        .delete_manifest(&repo("gone"), &Digest::sha256_of(&manifest))
        .unwrap());
    let (kept_config, _) = push_blob(store, "kept", b"c");
    let (kept_layer, _) = push_blob(store, "kept", b"l");
    put(
        store,
        "kept",
        &image_manifest(&kept_config, &kept_layer, None),
        Some("v1"),
    )
    .unwrap();
    store
        .create_upload(Uuid::new_v4(), &repo("uploading"))
        .unwrap();
    // Links made before this moment are past the grace period; the next
    // one is within it.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let grace_start = crate::metadata::sqlite::now_millis();
    std::thread::sleep(std::time::Duration::from_millis(5));
    push_blob(store, "linked", b"recent");

    let policy = GcPolicy {
        linked_before: grace_start,
        delete_untagged: false,
        dry_run: true,
    };
    assert_eq!(store.mark_garbage(&policy).unwrap().repositories, ["gone"]);
    assert!(store.repository_exists(&repo("gone")).unwrap(), "dry run");
    let marks = store
        .mark_garbage(&GcPolicy {
            dry_run: false,
            ..policy
        })
        .unwrap();
    assert_eq!(marks.repositories, ["gone"]);
    let names = store.list_repositories(None, 100).unwrap().items;
    assert_eq!(names, ["kept", "linked", "uploading"]);
    assert!(!store.repository_exists(&repo("gone")).unwrap());

    push_blob(store, "gone", b"again");
    assert!(store.repository_exists(&repo("gone")).unwrap());
}

/// Runs the whole suite against stores made by `new_store` (a fresh one per check).
pub fn run_all(new_store: &dyn Fn() -> Box<dyn MetadataStore>) {
    let checks: [Check; 11] = [
        (
            "gc_removes_repositories_left_holding_nothing",
            gc_removes_repositories_left_holding_nothing,
        ),
        (
            "garbage_collection_is_claimed_by_one_at_a_time",
            garbage_collection_is_claimed_by_one_at_a_time,
        ),
        (
            "a_conditional_write_sees_what_the_reference_names_and_writes_nothing_when_refused",
            a_conditional_write_sees_what_the_reference_names_and_writes_nothing_when_refused,
        ),
        (
            "blobs_are_stored_once_and_linked_per_repository",
            blobs_are_stored_once_and_linked_per_repository,
        ),
        (
            "mounting_needs_a_link_in_the_source",
            mounting_needs_a_link_in_the_source,
        ),
        (
            "manifests_need_their_blobs_in_the_same_repository",
            manifests_need_their_blobs_in_the_same_repository,
        ),
        (
            "deleting_a_manifest_takes_its_tags_and_deleting_a_tag_only_the_tag",
            deleting_a_manifest_takes_its_tags_and_deleting_a_tag_only_the_tag,
        ),
        (
            "listings_page_in_lexical_order",
            listings_page_in_lexical_order,
        ),
        (
            "referrers_are_found_by_subject_and_filtered_by_artifact_type",
            referrers_are_found_by_subject_and_filtered_by_artifact_type,
        ),
        (
            "upload_sessions_record_their_size",
            upload_sessions_record_their_size,
        ),
        (
            "gc_marks_only_what_nothing_holds_and_a_push_revives_it",
            gc_marks_only_what_nothing_holds_and_a_push_revives_it,
        ),
    ];
    for (name, check) in checks {
        eprintln!("metadata store conformance: {name}");
        check(new_store().as_ref());
    }
}

#[cfg(test)]
mod tests {
    use crate::metadata::sqlite::SqliteMetadata;

    #[test]
    fn sqlite_store_conforms() {
        let dirs = std::cell::RefCell::new(Vec::new());
        super::run_all(&|| {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteMetadata::open(&dir.path().join("artispace.db")).unwrap();
            dirs.borrow_mut().push(dir);
            Box::new(store)
        });
    }

    #[test]
    fn a_store_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("artispace.db");
        drop(SqliteMetadata::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        drop(conn);
        let err = SqliteMetadata::open(&path)
            .err()
            .expect("a newer schema is refused");
        assert!(err.to_string().contains("newer artispace"), "{err}");
    }
}
