//! Reservations, which only the local filesystem store makes, and what it
//! tells of a blob's pages in memory.

use std::io::Write;
use std::os::unix::fs::MetadataExt;

use uuid::Uuid;

use super::FsBlobStore;
use crate::layout::StoreLayout;
use crate::oci::Digest;
use crate::storage::{BlobStore, StorageError, UploadWriter};

/// A store in a temporary folder and one upload in it.
struct Upload {
    _dir: tempfile::TempDir,
    layout: StoreLayout,
    store: FsBlobStore,
    id: Uuid,
}

impl Upload {
    fn new() -> Upload {
        let dir = tempfile::tempdir().unwrap();
        let layout = StoreLayout::new(dir.path());
        let store = FsBlobStore::open(layout.clone()).unwrap();
        Upload {
            _dir: dir,
            layout,
            store,
            id: Uuid::new_v4(),
        }
    }

    fn append_at(&self, offset: u64) -> Box<dyn UploadWriter> {
        self.store.append_to_upload(self.id, offset).unwrap()
    }

    fn file(&self) -> std::fs::Metadata {
        std::fs::metadata(self.layout.upload(self.id)).unwrap()
    }

    /// Asserts the file holds 4096 bytes and not much more disk space.
    fn assert_only_4096_bytes_allocated(&self) {
        let kept = self.file();
        assert_eq!(kept.len(), 4096);
        assert!(
            kept.blocks() * 512 < 1024 * 1024,
            "{} bytes still allocated for 4096 bytes of data",
            kept.blocks() * 512
        );
    }
}

/// A request that ends short of its announced length gives the reserved
/// space back at once: announcing bytes never sent holds no disk space.
#[test]
fn unused_reservations_are_freed_when_the_request_ends() {
    let upload = Upload::new();
    let mut writer = upload.append_at(0);
    writer.reserve(64 * 1024 * 1024).unwrap();
    writer.write_all(&[1u8; 4096]).unwrap();
    drop(writer);
    upload.assert_only_4096_bytes_allocated();
}

/// A reservation left behind by a request that never ended (the server
/// died mid-request: simulated by skipping the writer's drop) is cut off
/// by the next append, so it can never end up inside a blob.
#[test]
fn reservations_left_by_a_crash_are_cut_off_by_the_next_append() {
    let upload = Upload::new();
    let mut writer = upload.append_at(0);
    writer.reserve(8 * 1024 * 1024).unwrap();
    writer.write_all(&[3u8; 4096]).unwrap();
    writer.sync().unwrap();
    std::mem::forget(writer);

    drop(upload.append_at(4096));
    upload.assert_only_4096_bytes_allocated();
}

/// A reservation larger than the free space fails with "storage full"
/// and takes nothing: a file system asked for too much may otherwise fill
/// the disk for everyone before it fails.
#[test]
fn reservations_above_the_free_space_fail_and_take_nothing() {
    let upload = Upload::new();
    let mut writer = upload.append_at(0);
    let error = writer.reserve(u64::MAX / 4).unwrap_err();
    assert!(matches!(
        StorageError::io("upload", error),
        StorageError::Full(_)
    ));
    assert_eq!(upload.file().blocks(), 0);
}

/// A blob just written is in the page cache, and known to be; once its
/// pages are dropped, it is known not to be (which sends it through the
/// ordinary reads instead of `sendfile`). Needs Linux 6.5 (`cachestat`).
#[cfg(target_os = "linux")]
#[test]
fn blob_pages_in_memory_are_told_apart_from_pages_on_disk() {
    use std::os::fd::AsRawFd;
    let upload = Upload::new();
    let data = vec![7u8; 1 << 20];
    let mut writer = upload.append_at(0);
    writer.write_all(&data).unwrap();
    writer.sync().unwrap();
    drop(writer);
    let digest = Digest::sha256_of(&data);
    upload.store.place_upload(upload.id, &digest).unwrap();
    let blob = upload.store.open_blob(&digest).unwrap().unwrap();
    let file = blob.local_file().expect("a local file");
    assert!(blob.is_in_memory(0, 1 << 20));
    assert!(blob.is_in_memory(4095, 2));

    // SAFETY: posix_fadvise takes a descriptor and integers and touches no
    // memory of ours; `blob` keeps the descriptor open for the call.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
    assert!(!blob.is_in_memory(0, 1 << 20));
    assert!(!blob.is_in_memory(8192, 1));
}
