//! Where an archive's bytes come from: the one seam between the reader and
//! storage ("read this range"), and the one place that maps files.
//!
//! A reader never touches storage any other way, so a future backend (an
//! object store answering ranged reads) only has to implement [`Source`].

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use memmap2::Mmap;

use crate::error::{Error, Result};
pub use crate::value::Bytes;
use crate::value::provenance::SourceFile;

/// Why a [`Source`] did not return the range asked for.
///
/// The two outcomes mean different things to a reader: a range outside the
/// source is the archive's own fault (its offsets point past its end), while
/// an I/O failure says nothing about the archive, only about the storage or
/// the process (the same read may work later).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The range does not lie inside the source.
    #[error("the range lies outside the source")]
    OutOfRange,
    /// The storage failed to deliver bytes that exist: an I/O error, or a
    /// mapping or copy the process could not make.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Random access to an archive's bytes.
///
/// Implement it to read archives from other storage; [`Archive::from_source`]
/// opens any implementation.
///
/// [`Archive::from_source`]: crate::Archive::from_source
pub trait Source: Send + Sync {
    /// Total length in bytes.
    fn len(&self) -> u64;

    /// True when the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes `offset..offset + len`: exactly `len` of them,
    /// [`ReadError::OutOfRange`] when that range is not inside the source,
    /// or [`ReadError::Io`] when the storage fails. May copy;
    /// implementations over memory return a view.
    fn read(&self, offset: u64, len: u64) -> Result<Bytes, ReadError>;

    /// True when a read allocates memory of its own length and fetches
    /// bytes from elsewhere (an object store, a file read without a
    /// mapping): the reader then refuses a range over the load's memory
    /// budget before asking for it, instead of fetching it first. False
    /// (the default) for sources whose views cost nothing or that already
    /// hold their bytes.
    fn allocates_reads(&self) -> bool {
        false
    }

    /// Like [`Source::read`], but preferring a view that borrows the storage
    /// (a mapping) over a copy: what tensor loads ask for.
    fn view(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        self.read(offset, len)
    }

    /// Like [`Source::view`], for a range the caller will check piece by
    /// piece (a blob against its per-chunk digests). A source that reads the
    /// range in parts over a network may run `checks` on each piece as it
    /// arrives, overlapping the checking with the transfer, and say so in
    /// the [`Checked`] it returns; the default runs nothing
    /// ([`Checked::NotRun`]) and the caller checks.
    fn view_checked(
        &self,
        offset: u64,
        len: u64,
        checks: &Checks<'_>,
    ) -> Result<(Bytes, Checked), ReadError> {
        let _ = checks;
        Ok((self.view(offset, len)?, Checked::NotRun))
    }
}

/// The checks of [`Source::view_checked`]: the range is cut into pieces of
/// `chunk` bytes (the last may be shorter), and `check(k, piece)` says
/// whether piece `k` holds what it should.
pub struct Checks<'a> {
    /// Bytes per piece.
    pub chunk: u64,
    /// True when piece `k` is intact.
    pub check: &'a (dyn Fn(u64, &[u8]) -> bool + Sync),
}

/// Whether a [`Source::view_checked`] ran the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// The source ran no check: the caller must.
    NotRun,
    /// Every piece passed.
    Passed,
    /// Piece `k` (the first the source found) failed.
    Failed(u64),
}

/// Maps `file` read-only: the one place this crate maps files.
fn map_read_only(file: &File) -> io::Result<Mmap> {
    // SAFETY: `Mmap::map` is unsafe because the mapped file could be
    // changed underneath us, which would change memory that Rust assumes
    // immutable. We map read-only, never write through the map, and this
    // crate replaces archives only by renaming a new file over the path,
    // which leaves this mapping's file untouched. Modification in place by
    // another program is outside what we can prevent; `Archive::open` and
    // `MemorySource::map_file` document it, and `Archive::open_copied` is
    // the copying alternative. `open_regular` made sure it is a regular
    // file, not a device whose "mapping" could be anything.
    unsafe { Mmap::map(file) }
}

/// Opens `path` for reading if it is a regular file, and returns it with its
/// length.
///
/// On Unix the file is opened with `O_NONBLOCK`, so that opening a FIFO
/// with no writer returns at once instead of waiting for one, and the check
/// is made on the opened descriptor (`fstat`), so the path cannot be
/// swapped between the check and the open. `O_NONBLOCK` has no effect on
/// reads from a regular file, the only kind kept.
fn open_regular(path: &Path) -> Result<(File, u64)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options
        .open(path)
        .map_err(|e| Error::io("opening", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io("reading metadata of", path, e))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
            kind: kind_name(&kind),
        });
    }
    Ok((file, meta.len()))
}

/// What a file that is not a regular file is, for messages.
fn kind_name(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        return "directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "named pipe (FIFO)";
        }
        if kind.is_char_device() {
            return "character device";
        }
        if kind.is_block_device() {
            return "block device";
        }
        if kind.is_socket() {
            return "socket";
        }
    }
    "special file"
}

/// A zeroed buffer of `len` bytes, or an out-of-memory error instead of an
/// abort when the process cannot allocate it.
fn zeroed(len: u64, why: &str) -> io::Result<Vec<u8>> {
    let out_of_memory = || {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("cannot allocate {len} bytes {why}"),
        )
    };
    let n = usize::try_from(len).map_err(|_| out_of_memory())?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(n).map_err(|_| out_of_memory())?;
    buf.resize(n, 0);
    Ok(buf)
}

/// Reads below this size are served by `pread` until the file is mapped.
const SMALL_READ: u64 = 1 << 20;

/// A file read in place: small reads (header, a small table of contents)
/// go through `pread`, and the file is mapped the first time something large
/// or a view is asked for. Opening an archive and reading its table of
/// contents therefore costs the same whatever the file's size: no mapping of
/// many gigabytes is made (and torn down) just to answer `env_info`.
///
/// When the file cannot be mapped (address space exhausted, a file system
/// without mappings), ranges are copied instead, into buffers allocated
/// fallibly: a copy the process cannot allocate is an error, not an abort.
pub struct FileSource {
    file: File,
    len: u64,
    /// False for [`FileSource::open_unmapped`]: every read copies.
    may_map: bool,
    /// The mapping, or why it could not be made.
    map: OnceLock<std::result::Result<Bytes, String>>,
}

impl FileSource {
    /// Opens the file at `path` for reading. Anything but a regular file (a
    /// directory, a FIFO, a device) is [`Error::NotAFile`], returned at
    /// once: opening never waits for a writer.
    pub fn open(path: &Path) -> Result<Self> {
        let (file, len) = open_regular(path)?;
        Ok(FileSource {
            file,
            len,
            may_map: true,
            map: OnceLock::new(),
        })
    }

    /// Opens the file at `path` never to map it: every range, views
    /// included, is copied into memory of its own with `pread`. Values
    /// loaded from it then own their bytes, so rewriting or truncating the
    /// file in place later cannot change them or fault the process, and a
    /// file truncated while a range is read gives an I/O error. Unlike
    /// [`MemorySource::read_file`], only the ranges asked for are read.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use achronyme_env::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("w.ach");
    /// let mut env = Environment::new();
    /// env.set("t", Value::Tensor(Tensor::from_vec(vec![1.0, 2.0])));
    /// save_environment(&env, &path, &SaveOptions::default()).unwrap();
    /// let archive = Archive::from_source(Arc::new(FileSource::open_unmapped(&path).unwrap())).unwrap();
    /// let Value::Tensor(t) = archive.get("t").unwrap() else { panic!() };
    /// assert!(!t.is_mapped());
    /// ```
    pub fn open_unmapped(path: &Path) -> Result<Self> {
        Ok(FileSource {
            may_map: false,
            ..Self::open(path)?
        })
    }

    /// The file kept open, with its length and modification time now, for
    /// blobs to be copied from later ([`crate::value::provenance`]).
    pub(crate) fn keep_open(&self) -> io::Result<SourceFile> {
        SourceFile::new(self.file.try_clone()?)
    }

    /// The mapping, made on first use, or why the file cannot be mapped
    /// (reads then fall back to copies).
    fn mapping(&self) -> std::result::Result<&Bytes, &str> {
        self.map
            .get_or_init(|| {
                if !self.may_map {
                    return Err("it was opened to copy, never to map".to_string());
                }
                if self.len == 0 {
                    return Err("the file is empty".to_string());
                }
                let map = map_read_only(&self.file).map_err(|e| e.to_string())?;
                Ok(Bytes::from_mapping(Arc::new(map)))
            })
            .as_ref()
            .map_err(String::as_str)
    }

    #[cfg(unix)]
    fn pread(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        use std::os::unix::fs::FileExt;
        let mut buf = zeroed(len, "to copy a range of the file")?;
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from_vec(buf))
    }

    #[cfg(windows)]
    fn pread(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        use std::os::windows::fs::FileExt;
        let mut buf = zeroed(len, "to copy a range of the file")?;
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .file
                .seek_read(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
            done += n;
        }
        Ok(Bytes::from_vec(buf))
    }

    #[cfg(not(any(unix, windows)))]
    fn pread(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        let map = self
            .mapping()
            .map_err(|why| io::Error::other(format!("cannot map the file: {why}")))?;
        map.slice(offset, len).ok_or(ReadError::OutOfRange)
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<(), ReadError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(ReadError::OutOfRange),
        }
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn allocates_reads(&self) -> bool {
        // Unmapped, or mapped and failed: every large read is a copy.
        !self.may_map || matches!(self.map.get(), Some(Err(_)))
    }

    fn read(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        self.check_range(offset, len)?;
        if let Some(Ok(map)) = self.map.get() {
            return map.slice(offset, len).ok_or(ReadError::OutOfRange);
        }
        if len < SMALL_READ {
            return self.pread(offset, len);
        }
        self.view(offset, len)
    }

    fn view(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        self.check_range(offset, len)?;
        match self.mapping() {
            Ok(map) => map.slice(offset, len).ok_or(ReadError::OutOfRange),
            Err(why) => self.pread(offset, len).map_err(|e| match e {
                // Say why a copy was needed at all.
                ReadError::Io(e) => ReadError::Io(io::Error::new(
                    e.kind(),
                    format!("{e} (the file could not be mapped: {why})"),
                )),
                other => other,
            }),
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

    /// Maps the file at `path` read-only. Anything but a regular file is
    /// [`Error::NotAFile`].
    ///
    /// The mapping reflects the file's bytes, so it is only sound while no
    /// one modifies that file in place. Saves of this crate never do: they
    /// write a new file and rename it over the old path, and a mapping keeps
    /// the old file's bytes. Another program that truncates or rewrites a
    /// mapped archive in place can make reads fault (SIGBUS) or see changed
    /// bytes; use [`MemorySource::read_file`] for files on storage you do not
    /// control.
    pub fn map_file(path: &Path) -> Result<Self> {
        let (file, len) = open_regular(path)?;
        if len == 0 {
            // Mapping zero bytes fails on some systems; an empty archive is
            // simply too short, which the reader reports.
            return Ok(Self::from_vec(Vec::new()));
        }
        let map = map_read_only(&file).map_err(|e| Error::io("mapping", path, e))?;
        Ok(MemorySource {
            bytes: Bytes::from_mapping(Arc::new(map)),
        })
    }

    /// Reads the whole file at `path` into memory (no mapping): for files on
    /// network or removable storage that might change or vanish while open.
    /// Anything but a regular file is [`Error::NotAFile`]; a file larger
    /// than the process can allocate is an [`Error::Io`] of kind
    /// [`io::ErrorKind::OutOfMemory`], not an abort.
    pub fn read_file(path: &Path) -> Result<Self> {
        let (mut file, len) = open_regular(path)?;
        let reading = |e| Error::io("reading", path, e);
        let mut v = Vec::new();
        let room = usize::try_from(len).unwrap_or(usize::MAX);
        v.try_reserve_exact(room).map_err(|_| {
            reading(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("cannot allocate {len} bytes to read the file into memory"),
            ))
        })?;
        file.read_to_end(&mut v).map_err(reading)?;
        Ok(Self::from_vec(v))
    }
}

impl Source for MemorySource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        self.bytes.slice(offset, len).ok_or(ReadError::OutOfRange)
    }
}
