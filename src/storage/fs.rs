//! [`BlobStore`] on the local filesystem, laid out as [`StoreLayout`] says.
//!
//! Durability: upload data is fsynced before a session acknowledges it; a
//! blob is renamed into place and its directory fsynced before the metadata
//! row that makes it visible is committed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::SystemTime;

use uuid::Uuid;

use super::{BlobReader, BlobStore, StorageError, StoredBlob, StoredUpload, UploadWriter};
use crate::layout::StoreLayout;
use crate::oci::Digest;

/// Large writes keep syscalls few; network frames arrive in small pieces.
const WRITE_BUFFER: usize = 1 << 20;

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
}

impl Write for FsUploadWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl UploadWriter for FsUploadWriter {
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

impl Seek for FsBlobReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl BlobReader for FsBlobReader {
    fn size(&self) -> u64 {
        self.len
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
        file.set_len(offset).map_err(io_err(&path))?;
        file.seek(SeekFrom::Start(offset)).map_err(io_err(&path))?;
        Ok(Box::new(FsUploadWriter {
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            created_in: (!existed).then(|| self.layout.uploads_dir()),
        }))
    }

    fn read_upload(&self, id: Uuid) -> Result<Box<dyn Read + Send>, StorageError> {
        let path = self.layout.upload(id);
        let file = File::open(&path).map_err(io_err(&path))?;
        Ok(Box::new(file))
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

    fn promote_upload(&self, id: Uuid, digest: &Digest) -> Result<(), StorageError> {
        let from = self.layout.upload(id);
        let to = self.layout.blob(digest);
        let fan_out_dir = to.parent().unwrap_or(self.layout.root());
        let created_dir = !fan_out_dir.exists();
        if created_dir {
            fs::create_dir_all(fan_out_dir).map_err(io_err(fan_out_dir))?;
        }
        fs::rename(&from, &to).map_err(io_err(&to))?;
        sync_dir(fan_out_dir).map_err(io_err(fan_out_dir))?;
        if created_dir {
            if let Some(algorithm_dir) = fan_out_dir.parent() {
                sync_dir(algorithm_dir).map_err(io_err(algorithm_dir))?;
            }
        }
        Ok(())
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
