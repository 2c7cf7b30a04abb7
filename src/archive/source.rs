//! Where an archive's bytes come from: the one seam between the reader and
//! storage ("read this range"), and the one place that maps files.
//!
//! A reader never touches storage any other way, so a future backend (an
//! object store answering ranged reads) only has to implement [`Source`].

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use memmap2::Mmap;

use crate::error::{Error, Result};
pub use crate::value::Bytes;

/// Random access to an archive's bytes.
pub trait Source: Send + Sync {
    /// Total length in bytes.
    fn len(&self) -> u64;

    /// True when the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes `offset..offset + len`, or `None` when that range is not
    /// inside the source. May copy; implementations over memory return a
    /// view.
    fn read(&self, offset: u64, len: u64) -> Option<Bytes>;

    /// Like [`Source::read`], but preferring a view that borrows the storage
    /// (a mapping) over a copy: what tensor loads ask for.
    fn view(&self, offset: u64, len: u64) -> Option<Bytes> {
        self.read(offset, len)
    }
}

/// Maps `file` read-only: the one place this crate maps files.
fn map_read_only(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: `Mmap::map` is unsafe because the mapped file could be
    // changed underneath us, which would change memory that Rust assumes
    // immutable. We map read-only, never write through the map, and this
    // crate replaces archives only by renaming a new file over the path,
    // which leaves this mapping's file untouched. Modification in place by
    // another program is outside what we can prevent; `Archive::open` and
    // `MemorySource::map_file` document it, and `Archive::open_copied` is
    // the copying alternative.
    unsafe { Mmap::map(file) }
}

/// Reads below this size are served by `pread` until the file is mapped.
const SMALL_READ: u64 = 1 << 20;

/// A file read in place: small reads (header, a small table of contents)
/// go through `pread`, and the file is mapped the first time something large
/// or a view is asked for. Opening an archive and reading its table of
/// contents therefore costs the same whatever the file's size: no mapping of
/// many gigabytes is made (and torn down) just to answer `env_info`.
pub struct FileSource {
    file: File,
    len: u64,
    map: OnceLock<Option<Bytes>>,
}

impl FileSource {
    /// Opens the file at `path` for reading.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", path, e))?;
        if meta.is_dir() {
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "it is a directory; give the path of an .ach file",
            );
            return Err(Error::io("opening", path, e));
        }
        let len = meta.len();
        Ok(FileSource {
            file,
            len,
            map: OnceLock::new(),
        })
    }

    /// The mapping, made on first use; `None` if the file cannot be mapped
    /// (reads then fall back to copies).
    fn mapping(&self) -> Option<&Bytes> {
        self.map
            .get_or_init(|| {
                if self.len == 0 {
                    return None;
                }
                let map = map_read_only(&self.file).ok()?;
                Some(Bytes::whole(Arc::new(map)))
            })
            .as_ref()
    }

    #[cfg(unix)]
    fn pread(&self, offset: u64, len: u64) -> Option<Bytes> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; usize::try_from(len).ok()?];
        self.file.read_exact_at(&mut buf, offset).ok()?;
        Some(Bytes::from_vec(buf))
    }

    #[cfg(not(unix))]
    fn pread(&self, offset: u64, len: u64) -> Option<Bytes> {
        self.mapping()?.slice(offset, len)
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, offset: u64, len: u64) -> Option<Bytes> {
        if offset.checked_add(len)? > self.len {
            return None;
        }
        if let Some(map) = self.map.get().and_then(Option::as_ref) {
            return map.slice(offset, len);
        }
        if len < SMALL_READ {
            return self.pread(offset, len);
        }
        self.view(offset, len)
    }

    fn view(&self, offset: u64, len: u64) -> Option<Bytes> {
        if offset.checked_add(len)? > self.len {
            return None;
        }
        match self.mapping() {
            Some(map) => map.slice(offset, len),
            None => self.pread(offset, len),
        }
    }
}

/// A source over bytes held in memory or mapped from a file.
pub struct MemorySource {
    bytes: Bytes,
}

impl MemorySource {
    /// A source over a vector (tests, fuzzing, copied reads).
    pub fn from_vec(v: Vec<u8>) -> Self {
        MemorySource {
            bytes: Bytes::from_vec(v),
        }
    }

    /// Maps the file at `path` read-only.
    ///
    /// The mapping reflects the file's bytes, so it is only sound while no
    /// one modifies that file in place. Saves of this crate never do: they
    /// write a new file and rename it over the old path, and a mapping keeps
    /// the old file's bytes. Another program that truncates or rewrites a
    /// mapped archive in place can make reads fault (SIGBUS) or see changed
    /// bytes; use [`MemorySource::read_file`] for files on storage you do not
    /// control.
    pub fn map_file(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", path, e))?
            .len();
        if len == 0 {
            // Mapping zero bytes fails on some systems; an empty archive is
            // simply too short, which the reader reports.
            return Ok(Self::from_vec(Vec::new()));
        }
        let map = map_read_only(&file).map_err(|e| Error::io("mapping", path, e))?;
        Ok(MemorySource {
            bytes: Bytes::whole(Arc::new(map)),
        })
    }

    /// Reads the whole file at `path` into memory (no mapping): for files on
    /// network or removable storage that might change or vanish while open.
    pub fn read_file(path: &Path) -> Result<Self> {
        let v = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
        Ok(Self::from_vec(v))
    }
}

impl Source for MemorySource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read(&self, offset: u64, len: u64) -> Option<Bytes> {
        self.bytes.slice(offset, len)
    }
}
