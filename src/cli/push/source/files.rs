//! The files of a source, wherever they are: a directory on disk, or the
//! entries of a `.tar` archive.
//!
//! An archive is indexed once (names, data offsets and sizes); its entries
//! are then read in place by seeking to their data, so no layer is ever
//! extracted or held in memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::{BlobSource, SourceError};

/// How many symlinks in a row are followed inside an archive.
const MAX_LINK_HOPS: usize = 8;

/// The files of a source.
pub enum Files {
    Dir(PathBuf),
    Tar(TarIndex),
}

/// Where each regular file of a tar archive keeps its data.
pub struct TarIndex {
    path: Arc<PathBuf>,
    files: HashMap<String, (u64, u64)>,
    links: HashMap<String, String>,
}

impl Files {
    /// The file `name` (a `/`-separated path relative to the source), if any.
    pub fn get(&self, name: &str) -> Result<Option<BlobSource>, SourceError> {
        match self {
            Files::Dir(dir) => {
                let Some(relative) = safe_relative(name) else {
                    return Ok(None);
                };
                let path = dir.join(relative);
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.is_file() => Ok(Some(BlobSource::File {
                        path: Arc::new(path),
                        offset: 0,
                        len: meta.len(),
                    })),
                    Ok(_) => Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(SourceError::io(&path, e)),
                }
            }
            Files::Tar(index) => Ok(index.get(name)),
        }
    }

    /// Reads the small file `name` whole (an index, a manifest, a config),
    /// refusing files larger than `cap`.
    pub fn read_small(&self, name: &str, cap: u64) -> Result<Option<Vec<u8>>, SourceError> {
        match self.get(name)? {
            Some(source) => read_small(&source, cap, name).map(Some),
            None => Ok(None),
        }
    }

    /// What to call the source in messages.
    pub fn describe(&self) -> String {
        match self {
            Files::Dir(dir) => dir.display().to_string(),
            Files::Tar(index) => index.path.display().to_string(),
        }
    }
}

/// Reads a whole (small) blob source into memory.
pub fn read_small(source: &BlobSource, cap: u64, what: &str) -> Result<Vec<u8>, SourceError> {
    if source.len() > cap {
        return Err(SourceError::Invalid(format!(
            "{what} is {} bytes, more than the {cap} expected of it",
            source.len()
        )));
    }
    let mut reader = source
        .open()
        .map_err(|e| SourceError::io(source.path(), e))?;
    let mut bytes = Vec::with_capacity(source.len() as usize);
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| SourceError::io(source.path(), e))?;
    if bytes.len() as u64 != source.len() {
        return Err(SourceError::Invalid(format!(
            "{what} ends early: {} of {} bytes",
            bytes.len(),
            source.len()
        )));
    }
    Ok(bytes)
}

impl TarIndex {
    /// Indexes the entries of the tar archive at `path`, skipping over their
    /// data.
    pub fn read(path: &Path) -> Result<TarIndex, SourceError> {
        let file = File::open(path).map_err(|e| SourceError::io(path, e))?;
        let mut archive = tar::Archive::new(file);
        let not_tar = |e: std::io::Error| {
            SourceError::Unrecognised(format!(
                "{} is not a readable tar archive: {e}",
                path.display()
            ))
        };
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        for entry in archive.entries_with_seek().map_err(not_tar)? {
            let entry = entry.map_err(not_tar)?;
            let Some(name) = normalise(&entry.path().map_err(not_tar)?) else {
                continue;
            };
            let kind = entry.header().entry_type();
            if kind.is_file() || kind.is_contiguous() {
                files.insert(name, (entry.raw_file_position(), entry.size()));
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Some(target) = entry.link_name().map_err(not_tar)? else {
                    continue;
                };
                // A symlink is relative to its own folder; a hard link names
                // a path from the archive's root.
                let target = if kind.is_symlink() {
                    Path::new(&name)
                        .parent()
                        .unwrap_or(Path::new(""))
                        .join(&target)
                } else {
                    target.into_owned()
                };
                if let Some(target) = normalise(&target) {
                    links.insert(name, target);
                }
            }
        }
        Ok(TarIndex {
            path: Arc::new(path.to_path_buf()),
            files,
            links,
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn get(&self, name: &str) -> Option<BlobSource> {
        let mut name = normalise(Path::new(name))?;
        for _ in 0..=MAX_LINK_HOPS {
            if let Some(&(offset, len)) = self.files.get(&name) {
                return Some(BlobSource::File {
                    path: Arc::clone(&self.path),
                    offset,
                    len,
                });
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }
}

/// `a/./b/../c` → `a/c`; `None` for a path that leaves the root or is empty.
fn normalise(path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A name from inside the source as a path under its directory, refusing
/// anything that would leave it.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        .then(|| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_within_the_root() {
        assert_eq!(normalise(Path::new("./a/b")).as_deref(), Some("a/b"));
        assert_eq!(normalise(Path::new("a/../b")).as_deref(), Some("b"));
        assert_eq!(
            normalise(Path::new("/index.json")).as_deref(),
            Some("index.json")
        );
        assert_eq!(normalise(Path::new("../x")), None);
        assert_eq!(normalise(Path::new(".")), None);
    }

    #[test]
    fn directory_names_may_not_escape() {
        assert!(safe_relative("blobs/sha256/ab").is_some());
        assert!(safe_relative("../etc/passwd").is_none());
        assert!(safe_relative("/etc/passwd").is_none());
    }
}
