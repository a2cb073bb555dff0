//! The behaviour every [`BlobStore`] backend must have, as one suite of
//! tests generic over the trait. A new backend adds one line to the list at
//! the bottom and must pass all of it.

use std::io::{Read, Write};

use uuid::Uuid;

use super::BlobStore;
use crate::oci::Digest;

fn write_upload(store: &dyn BlobStore, id: Uuid, offset: u64, bytes: &[u8]) {
    let mut writer = store.append_to_upload(id, offset).unwrap();
    writer.write_all(bytes).unwrap();
    writer.sync().unwrap();
}

fn read_upload(store: &dyn BlobStore, id: Uuid) -> Vec<u8> {
    let mut bytes = Vec::new();
    store
        .read_upload(id)
        .unwrap()
        .expect("the upload has data")
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

pub fn appends_continue_where_the_offset_says(store: &dyn BlobStore) {
    let id = Uuid::new_v4();
    write_upload(store, id, 0, b"hello ");
    write_upload(store, id, 6, b"world");
    assert_eq!(read_upload(store, id), b"hello world");
    assert_eq!(store.upload_size(id).unwrap(), Some(11));
}

pub fn appending_cuts_off_unacknowledged_bytes(store: &dyn BlobStore) {
    let id = Uuid::new_v4();
    write_upload(store, id, 0, b"keep-this-and-not-this");
    write_upload(store, id, 9, b"!");
    assert_eq!(read_upload(store, id), b"keep-this!");
}

/// Space reserved for bytes that never came is never part of the data,
/// whether the short request is followed by another append or not.
pub fn reservations_never_become_data(store: &dyn BlobStore) {
    let id = Uuid::new_v4();
    let first = vec![7u8; 1024 * 1024];
    let mut writer = store.append_to_upload(id, 0).unwrap();
    writer.reserve(4 * 1024 * 1024).unwrap();
    writer.write_all(&first).unwrap();
    writer.sync().unwrap();
    drop(writer);
    assert_eq!(read_upload(store, id), first);

    // The next request announces 2 MiB and sends nothing.
    let mut writer = store.append_to_upload(id, first.len() as u64).unwrap();
    writer.reserve(2 * 1024 * 1024).unwrap();
    drop(writer);
    write_upload(store, id, first.len() as u64, b"end");
    let mut all = first.clone();
    all.extend_from_slice(b"end");
    assert_eq!(read_upload(store, id), all);

    let digest = Digest::sha256_of(&all);
    assert!(store.place_upload(id, &digest).unwrap());
    let blob = store.open_blob(&digest).unwrap().unwrap();
    assert_eq!(blob.size(), all.len() as u64);
}

/// Reads by offset return the bytes at that offset, whether the store
/// serves them from memory or not, and 0 at the end.
pub fn reads_at_an_offset_return_the_bytes_there(store: &dyn BlobStore) {
    let id = Uuid::new_v4();
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    write_upload(store, id, 0, &content);
    let digest = Digest::sha256_of(&content);
    store.place_upload(id, &digest).unwrap();
    let blob = store.open_blob(&digest).unwrap().unwrap();

    let mut buf = vec![0u8; 1000];
    let n = blob.read_at(&mut buf, 123_456).unwrap();
    assert!(n > 0);
    assert_eq!(&buf[..n], &content[123_456..123_456 + n]);
    if let Some(read) = blob.read_at_if_cached(&mut buf, 7) {
        let n = read.unwrap();
        assert_eq!(&buf[..n], &content[7..7 + n]);
    }
    let n = blob.read_at(&mut buf, content.len() as u64 - 10).unwrap();
    assert_eq!(&buf[..n], &content[content.len() - 10..]);
    assert_eq!(blob.read_at(&mut buf, content.len() as u64).unwrap(), 0);
}

pub fn placed_uploads_become_readable_blobs(store: &dyn BlobStore) {
    let id = Uuid::new_v4();
    let content = b"blob content for promotion";
    write_upload(store, id, 0, content);
    let digest = Digest::sha256_of(content);
    assert!(
        store.place_upload(id, &digest).unwrap(),
        "nothing was stored before"
    );
    assert!(store.blob_exists(&digest).unwrap());

    let reader = store.open_blob(&digest).unwrap().expect("blob is stored");
    assert_eq!(reader.size(), content.len() as u64);
    let mut tail = vec![0u8; content.len() - 5];
    let mut read = 0;
    while read < tail.len() {
        let n = reader.read_at(&mut tail[read..], 5 + read as u64).unwrap();
        assert!(n > 0, "the blob ends early");
        read += n;
    }
    assert_eq!(tail, &content[5..]);
    assert!(
        store.list_uploads().unwrap().iter().any(|u| u.id == id),
        "placing keeps the upload's data for a later replace"
    );
    let listed = store.list_blobs().unwrap();
    assert!(listed
        .iter()
        .any(|b| b.digest == digest && b.size == content.len() as u64));
}

pub fn placing_never_replaces_and_replacing_always_does(store: &dyn BlobStore) {
    let digest = Digest::sha256_of(b"good");
    let first = Uuid::new_v4();
    write_upload(store, first, 0, b"damaged copy");
    assert!(store.place_upload(first, &digest).unwrap());
    let second = Uuid::new_v4();
    write_upload(store, second, 0, b"good");
    assert!(
        !store.place_upload(second, &digest).unwrap(),
        "a stored copy stays"
    );
    let read = |store: &dyn BlobStore| {
        let mut bytes = Vec::new();
        store
            .open_blob(&digest)
            .unwrap()
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    };
    assert_eq!(read(store), b"damaged copy");
    store.replace_with_upload(second, &digest).unwrap();
    assert_eq!(read(store), b"good");
    assert!(
        store.list_uploads().unwrap().iter().all(|u| u.id != second),
        "replacing consumes the upload"
    );
}

pub fn missing_things_are_none_or_false(store: &dyn BlobStore) {
    let digest = Digest::sha256_of(b"never stored");
    assert!(store.open_blob(&digest).unwrap().is_none());
    assert!(!store.remove_blob(&digest).unwrap());
    assert!(store.read_upload(Uuid::new_v4()).unwrap().is_none());
    assert_eq!(store.upload_size(Uuid::new_v4()).unwrap(), None);
    store.remove_upload(Uuid::new_v4()).unwrap();
}

pub fn removed_blobs_and_uploads_are_gone(store: &dyn BlobStore) {
    let id = Uuid::new_v4();
    write_upload(store, id, 0, b"to be removed");
    let digest = Digest::sha256_of(b"to be removed");
    store.replace_with_upload(id, &digest).unwrap();
    assert!(store.remove_blob(&digest).unwrap());
    assert!(!store.blob_exists(&digest).unwrap());
    assert!(store.open_blob(&digest).unwrap().is_none());

    let abandoned = Uuid::new_v4();
    write_upload(store, abandoned, 0, b"abandoned");
    assert!(store
        .list_uploads()
        .unwrap()
        .iter()
        .any(|u| u.id == abandoned && u.size == 9));
    store.remove_upload(abandoned).unwrap();
    assert_eq!(store.upload_size(abandoned).unwrap(), None);
    assert!(store
        .list_uploads()
        .unwrap()
        .iter()
        .all(|u| u.id != abandoned));
}

/// A named check of the suite.
type Check = (&'static str, fn(&dyn BlobStore));

/// Runs the whole suite against stores made by `new_store` (a fresh one per check).
pub fn run_all(new_store: &dyn Fn() -> Box<dyn BlobStore>) {
    let checks: [Check; 8] = [
        (
            "reads_at_an_offset_return_the_bytes_there",
            reads_at_an_offset_return_the_bytes_there,
        ),
        (
            "reservations_never_become_data",
            reservations_never_become_data,
        ),
        (
            "appends_continue_where_the_offset_says",
            appends_continue_where_the_offset_says,
        ),
        (
            "appending_cuts_off_unacknowledged_bytes",
            appending_cuts_off_unacknowledged_bytes,
        ),
        (
            "placed_uploads_become_readable_blobs",
            placed_uploads_become_readable_blobs,
        ),
        (
            "placing_never_replaces_and_replacing_always_does",
            placing_never_replaces_and_replacing_always_does,
        ),
        (
            "missing_things_are_none_or_false",
            missing_things_are_none_or_false,
        ),
        (
            "removed_blobs_and_uploads_are_gone",
            removed_blobs_and_uploads_are_gone,
        ),
    ];
    for (name, check) in checks {
        eprintln!("blob store conformance: {name}");
        check(new_store().as_ref());
    }
}

#[cfg(test)]
mod tests {
    use crate::layout::StoreLayout;
    use crate::storage::fs::FsBlobStore;

    #[test]
    fn filesystem_store_conforms() {
        let dirs = std::cell::RefCell::new(Vec::new());
        super::run_all(&|| {
            let dir = tempfile::tempdir().unwrap();
            let store = FsBlobStore::open(StoreLayout::new(dir.path())).unwrap();
            dirs.borrow_mut().push(dir);
            Box::new(store)
        });
    }
}
