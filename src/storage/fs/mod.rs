//! [`BlobStore`] on the local filesystem, laid out as [`StoreLayout`] says.
//!
//! Durability: an upload's data is fsynced, all of it, before the blob it
//! completes is acknowledged (a chunk's 202 only promises that its bytes
//! reached the file; see `registry::uploads`); a blob's file is linked (or
//! renamed) into place and its directory fsynced before the metadata row
//! that makes it visible is committed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::SystemTime;

use uuid::Uuid;

use super::{BlobReader, BlobStore, StorageError, StoredBlob, StoredUpload, UploadWriter};
use crate::layout::StoreLayout;
use crate::oci::Digest;

/// Coalesces small network frames into fewer writes. Frames at least this
/// large (most of a streamed blob) bypass it and go straight to the file:
/// copying them into a buffer first costs a memcpy per byte and saves
/// nothing, and a small buffer keeps concurrent uploads' memory low.
const WRITE_BUFFER: usize = 64 << 10;
/// Announced lengths below this are not reserved: for small writes the
/// extra call costs more than the allocation it saves.
const RESERVE_FROM: u64 = 1 << 20;
/// Blocks a file may hold beyond its length for the file system's own
/// bookkeeping before they count as a leftover reservation.
const BOOKKEEPING_SLACK: u64 = 64 << 10;
/// Writeback of upload data is started every this many bytes. What is not
/// started yet when a blob completes is what its fsync must write while the
/// client waits: measured on this disk, 1 MiB cut that wait from about 1.5 ms
/// to 0.6 ms for a 64 MiB push and from about 12 ms to 3 ms after 8 MiB
/// chunks, against 4 MiB.
const WRITE_BEHIND: u64 = 1 << 20;

pub struct FsBlobStore {
    layout: StoreLayout,
}

impl FsBlobStore {
    /// Opens the blob directories under `layout`, creating them when missing.
    pub fn open(layout: StoreLayout) -> Result<FsBlobStore, StorageError> {
        for dir in [layout.blobs_dir(), layout.uploads_dir()] {
            fs::create_dir_all(&dir).map_err(|e| StorageError::io(dir.display().to_string(), e))?;
        }
        Ok(FsBlobStore { layout })
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |e| StorageError::io(path.display().to_string(), e)
}

/// fsync a directory so that renames and creations in it are durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

struct FsUploadWriter {
    file: BufWriter<File>,
    /// The file was created by this writer: its directory entry needs an
    /// fsync of the uploads directory to be durable.
    created_in: Option<std::path::PathBuf>,
    /// File offset of the next byte written.
    position: u64,
    /// Offset up to which writeback has been started.
    written_back: u64,
    /// End of the space reserved by `reserve`, if any.
    reserved_to: Option<u64>,
}

impl Drop for FsUploadWriter {
    /// A request that ends before filling its reservation (a client that
    /// announced more than it sent) gives the space back now, not when the
    /// session is next used or expires: announcing a length must not hold
    /// disk space for free.
    fn drop(&mut self) {
        if self.reserved_to.is_some_and(|end| self.position < end) {
            let _ = self.file.flush();
            let _ = self.file.get_ref().set_len(self.position);
        }
    }
}

impl FsUploadWriter {
    /// Starts writeback of what accumulated since the last time, so that
    /// the disk works while the network still sends and the fsync that
    /// acknowledges the upload finds little left to do.
    fn write_behind(&mut self) -> io::Result<()> {
        if self.position - self.written_back < WRITE_BEHIND {
            return Ok(());
        }
        self.file.flush()?;
        start_writeback(
            self.file.get_ref(),
            self.written_back,
            self.position - self.written_back,
        );
        self.written_back = self.position;
        Ok(())
    }
}

impl Write for FsUploadWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.position += n as u64;
        self.write_behind()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Asks the kernel to begin writing a range of `file` to disk, without
/// waiting. Only a hint: durability still comes from `sync_data`.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range takes a file descriptor and integers and
    // touches no memory of ours; the descriptor stays open for the call
    // because `file` is borrowed. Its result is ignored: a failed hint only
    // leaves the work to the fsync that follows.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// Whether a file holds reserved space past its end that was never written
/// (left by a request cut short by a crash; a request that ends short in a
/// running server gives its reservation back itself). A few blocks more
/// than the length needs are the file system's own bookkeeping (ext4 adds a
/// 4 KiB extent-tree block once a file has more than four extents), so
/// only more than [`BOOKKEEPING_SLACK`] counts. Truncating for nothing on
/// every append cost 96 truncates per 144 appends in a chunked push.
fn allocated_past_end(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let block = meta.blksize().max(512);
    let needed = meta.len().div_ceil(block) * block;
    meta.blocks() * 512 > needed + BOOKKEEPING_SLACK
}

/// Allocates `len` bytes of `file` from `offset` without changing its
/// length. Measured here, a 64 MiB blob written into reserved space costs
/// the system about a fifth less CPU than ext4's allocation page by page.
///
/// A file system asked for more than it has may take all it can before it
/// fails, filling the disk for everyone until the space is given back. So a
/// length above the free space is refused without asking, and whatever a
/// failed attempt took is given back at once.
#[cfg(target_os = "linux")]
fn reserve_space(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    if len > free_bytes(file)? {
        return Err(io::Error::from_raw_os_error(libc::ENOSPC));
    }
    let (Ok(start), Ok(count)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Ok(());
    };
    // SAFETY: fallocate takes a file descriptor and integers and touches no
    // memory of ours; the descriptor stays open for the call because `file`
    // is borrowed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, start, count) };
    if rc == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => {
            // A truncate to the current length frees blocks past the end.
            file.set_len(file.metadata()?.len())?;
            Err(error)
        }
        // Not supported here, or a length the file system refuses: the
        // writes will allocate as they go, as without a reservation.
        _ => Ok(()),
    }
}

/// Bytes an unprivileged writer may still allocate on `file`'s file system.
#[cfg(target_os = "linux")]
fn free_bytes(file: &File) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: fstatvfs writes one `statvfs` into the pointer it is given,
    // which points at space for exactly that; it is read only on success.
    let rc = unsafe { libc::fstatvfs(file.as_raw_fd(), stats.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatvfs succeeded, so it filled the struct.
    let stats = unsafe { stats.assume_init() };
    // Both fields are 64-bit on 64-bit Linux; the conversion is for the rest.
    #[allow(clippy::useless_conversion)]
    let (blocks, block_size) = (u64::from(stats.f_bavail), u64::from(stats.f_frsize));
    Ok(blocks.saturating_mul(block_size))
}

#[cfg(not(target_os = "linux"))]
fn reserve_space(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

impl UploadWriter for FsUploadWriter {
    fn reserve(&mut self, len: u64) -> io::Result<()> {
        if len < RESERVE_FROM {
            return Ok(());
        }
        self.file.flush()?;
        reserve_space(self.file.get_ref(), self.position, len)?;
        self.reserved_to = Some(self.position.saturating_add(len));
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        if let Some(dir) = self.created_in.take() {
            sync_dir(&dir)?;
        }
        Ok(())
    }
}

struct FsBlobReader {
    file: File,
    len: u64,
}

impl Read for FsBlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl BlobReader for FsBlobReader {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.file, buf, offset)
    }

    fn read_at_if_cached(&self, buf: &mut [u8], offset: u64) -> Option<io::Result<usize>> {
        read_from_page_cache(&self.file, buf, offset)
    }

    fn local_file(&self) -> Option<&File> {
        Some(&self.file)
    }

    fn is_in_memory(&self, offset: u64, len: u64) -> bool {
        all_in_page_cache(&self.file, offset, len)
    }
}

/// Whether every page of `offset..offset + len` of `file` is in the page
/// cache, asked with `cachestat(2)` (Linux 6.5), which counts them without
/// reading or mapping anything. Older kernels answer `false`.
#[cfg(target_os = "linux")]
fn all_in_page_cache(file: &File, offset: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    // The kernel's `struct cachestat_range` and `struct cachestat`.
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Counts {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    // One number on every architecture (the shared system call table);
    // the libc crate does not name it for x86_64.
    const SYS_CACHESTAT: libc::c_long = 451;
    // A length of 0 would ask about the rest of the file.
    if len == 0 {
        return true;
    }
    // SAFETY: sysconf reads a constant and touches no memory of ours.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let range = Range { off: offset, len };
    let mut counts = Counts::default();
    // SAFETY: cachestat reads `range` and writes one `struct cachestat` into
    // `counts`; both are `repr(C)` copies of the kernel's structs and live
    // across the call, and the descriptor stays open because `file` is
    // borrowed. Flags must be 0.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut counts as *mut Counts,
            0u32,
        )
    };
    let pages = (offset + len).div_ceil(page) - offset / page;
    rc == 0 && counts.nr_cache >= pages
}

#[cfg(not(target_os = "linux"))]
fn all_in_page_cache(_file: &File, _offset: u64, _len: u64) -> bool {
    false
}

/// `pread` with `RWF_NOWAIT`: succeeds only for bytes already in the page
/// cache (a short read when only some are), never waits for the disk.
#[cfg(target_os = "linux")]
fn read_from_page_cache(file: &File, buf: &mut [u8], offset: u64) -> Option<io::Result<usize>> {
    use std::os::fd::AsRawFd;
    let offset = i64::try_from(offset).ok()?;
    let target = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: the one iovec describes `buf`, which is valid for writes of
    // its whole length and mutably borrowed for the call; the kernel writes
    // at most that many bytes into it. The descriptor stays open for the
    // call because `file` is borrowed.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &target, 1, offset, libc::RWF_NOWAIT) };
    if let Ok(n) = usize::try_from(n) {
        return Some(Ok(n));
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        // Not in memory (EAGAIN), or this kernel or file system cannot
        // tell (the others): read the ordinary way.
        Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL | libc::EINTR) => None,
        _ => Some(Err(error)),
    }
}

#[cfg(not(target_os = "linux"))]
fn read_from_page_cache(_file: &File, _buf: &mut [u8], _offset: u64) -> Option<io::Result<usize>> {
    None
}

impl FsBlobStore {
    /// Creates the `<alg>/<hh>` folder of a blob path; returns whether it
    /// was new.
    fn ensure_fan_out_dir(&self, blob: &Path) -> Result<bool, StorageError> {
        let dir = blob.parent().unwrap_or(self.layout.root());
        if dir.exists() {
            return Ok(false);
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        Ok(true)
    }

    /// Makes a new name in the blob's folder durable (and the folder itself,
    /// when it was just created).
    fn sync_fan_out_dir(&self, blob: &Path, created_dir: bool) -> Result<(), StorageError> {
        let dir = blob.parent().unwrap_or(self.layout.root());
        sync_dir(dir).map_err(io_err(dir))?;
        if created_dir {
            if let Some(algorithm_dir) = dir.parent() {
                sync_dir(algorithm_dir).map_err(io_err(algorithm_dir))?;
            }
        }
        Ok(())
    }
}

impl BlobStore for FsBlobStore {
    fn append_to_upload(
        &self,
        id: Uuid,
        offset: u64,
    ) -> Result<Box<dyn UploadWriter>, StorageError> {
        let path = self.layout.upload(id);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        // Bytes past `offset` were never acknowledged, and space reserved
        // for a chunk that never came must not end up in a blob: cut both
        // off (a truncate to the same size frees space past the end). Only
        // when there are any, as a truncate also dirties the inode.
        let meta = file.metadata().map_err(io_err(&path))?;
        if meta.len() != offset || allocated_past_end(&meta) {
            file.set_len(offset).map_err(io_err(&path))?;
        }
        file.seek(SeekFrom::Start(offset)).map_err(io_err(&path))?;
        Ok(Box::new(FsUploadWriter {
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            created_in: (!existed).then(|| self.layout.uploads_dir()),
            position: offset,
            written_back: offset,
            reserved_to: None,
        }))
    }

    fn read_upload(&self, id: Uuid) -> Result<Option<Box<dyn Read + Send>>, StorageError> {
        let path = self.layout.upload(id);
        match File::open(&path) {
            Ok(file) => Ok(Some(Box::new(file))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn upload_size(&self, id: Uuid) -> Result<Option<u64>, StorageError> {
        let path = self.layout.upload(id);
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn remove_upload(&self, id: Uuid) -> Result<(), StorageError> {
        let path = self.layout.upload(id);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    fn list_uploads(&self) -> Result<Vec<StoredUpload>, StorageError> {
        let dir = self.layout.uploads_dir();
        let mut uploads = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            // Anything that is not named by a UUID is not ours; leave it.
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| Uuid::parse_str(n).ok())
            else {
                continue;
            };
            // An upload finished or cancelled while we list is simply gone.
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&entry.path())(e)),
            };
            uploads.push(StoredUpload {
                id,
                size: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        Ok(uploads)
    }

    fn place_upload(&self, id: Uuid, digest: &Digest) -> Result<bool, StorageError> {
        let from = self.layout.upload(id);
        let to = self.layout.blob(digest);
        let created_dir = self.ensure_fan_out_dir(&to)?;
        // A hard link never replaces an existing file, and leaves the
        // upload's own name in place for a later replace.
        match fs::hard_link(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err(&to)(e)),
        }
        self.sync_fan_out_dir(&to, created_dir)?;
        Ok(true)
    }

    fn replace_with_upload(&self, id: Uuid, digest: &Digest) -> Result<(), StorageError> {
        let from = self.layout.upload(id);
        let to = self.layout.blob(digest);
        let created_dir = self.ensure_fan_out_dir(&to)?;
        fs::rename(&from, &to).map_err(io_err(&to))?;
        self.sync_fan_out_dir(&to, created_dir)
    }

    fn blob_exists(&self, digest: &Digest) -> Result<bool, StorageError> {
        let path = self.layout.blob(digest);
        path.try_exists().map_err(io_err(&path))
    }

    fn open_blob(&self, digest: &Digest) -> Result<Option<Box<dyn BlobReader>>, StorageError> {
        let path = self.layout.blob(digest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let len = file.metadata().map_err(io_err(&path))?.len();
        Ok(Some(Box::new(FsBlobReader { file, len })))
    }

    fn remove_blob(&self, digest: &Digest) -> Result<bool, StorageError> {
        let path = self.layout.blob(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn list_blobs(&self) -> Result<Vec<StoredBlob>, StorageError> {
        let root = self.layout.blobs_dir();
        let mut blobs = Vec::new();
        // Files removed while we walk (by gc, or verify --repair) are skipped.
        let vanished = |e: &walkdir::Error| {
            e.io_error()
                .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
        };
        for entry in walkdir::WalkDir::new(&root).min_depth(3).max_depth(3) {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if vanished(&e) => continue,
                Err(e) => {
                    let path = e.path().unwrap_or(&root).display().to_string();
                    return Err(StorageError::io(path, e.into()));
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            // <alg>/<hh>/<hex>: rebuild the digest and keep only well-formed names.
            let algorithm = entry
                .path()
                .parent()
                .and_then(Path::parent)
                .and_then(Path::file_name)
                .and_then(|n| n.to_str());
            let hex = entry.file_name().to_str();
            let (Some(algorithm), Some(hex)) = (algorithm, hex) else {
                continue;
            };
            let Ok(digest) = format!("{algorithm}:{hex}").parse::<Digest>() else {
                continue;
            };
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if vanished(&e) => continue,
                Err(e) => {
                    return Err(StorageError::io(
                        entry.path().display().to_string(),
                        e.into(),
                    ))
                }
            };

            blobs.push(StoredBlob {
                digest,
                size: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        Ok(blobs)
    }
}

/// Reservations, which only this backend makes; the behaviour every backend
/// shares is checked by the suite in `conformance.rs`.
#[cfg(test)]
mod tests;
