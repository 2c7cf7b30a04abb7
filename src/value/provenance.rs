//! Where a tensor's elements are stored, unchanged, in an archive file: what
//! a save needs to copy that stored blob instead of encoding, hashing and
//! compressing the elements again (README "Saving what did not change").
//!
//! A [`Provenance`] is attached to a tensor's [`Buffer`](super::Buffer) by
//! the reader (a tensor loaded from a local archive) or by a save (the
//! tensor it has just written), shared by clones, and dropped by anything
//! that writes to the elements. Fields are plain numbers: this layer sits
//! below the format's types, which the writer checks them against.

use std::fs::File;
use std::io;
use std::time::SystemTime;

/// An archive file kept open so that its blobs can be copied later, even
/// after a save renamed another file over its path (the open descriptor
/// keeps the old file's bytes, as a mapping does).
#[derive(Debug)]
pub(crate) struct SourceFile {
    file: File,
    /// Length and modification time when it was opened (or written): a
    /// file changed since is not copied from.
    len: u64,
    modified: Option<SystemTime>,
}

impl SourceFile {
    /// Keeps `file` open, remembering its length and modification time now.
    pub(crate) fn new(file: File) -> io::Result<Self> {
        let meta = file.metadata()?;
        Ok(SourceFile {
            len: meta.len(),
            modified: meta.modified().ok(),
            file,
        })
    }

    /// Opens the file at `path` for reading if it is the file `written`
    /// describes (same device and inode): a file this process has just
    /// written and published, whose length and modification time are
    /// taken now. None otherwise, or where files have no inode numbers to
    /// compare.
    pub(crate) fn reopen(path: &std::path::Path, written: &std::fs::Metadata) -> Option<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let kept = Self::new(File::open(path).ok()?).ok()?;
            let now = kept.file.metadata().ok()?;
            let same = now.dev() == written.dev() && now.ino() == written.ino();
            same.then_some(kept)
        }
        #[cfg(not(unix))]
        {
            let _ = (path, written);
            None
        }
    }

    /// The open file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// True when the file still has the length and modification time it
    /// had when this handle was made: nobody wrote to it in place since (a
    /// rename over its path does not count: this handle still reads the
    /// old file). Unlinking or renaming it changes neither.
    pub(crate) fn unchanged(&self) -> bool {
        match self.file.metadata() {
            Ok(meta) => {
                meta.len() == self.len
                    && self.modified.is_some()
                    && meta.modified().ok() == self.modified
            }
            Err(_) => false,
        }
    }
}

/// One blob of an archive file, as its table of contents describes it:
/// enough to copy it byte for byte and list its digests in another
/// archive's hash pool.
#[derive(Debug)]
pub(crate) struct StoredBlob {
    /// File offset of the blob's frame.
    pub offset: u64,
    /// Bytes from the frame to the end of the payload (the hashed span).
    pub span: u64,
    /// Value tag byte (tensor or complex tensor).
    pub tag: u8,
    /// Codec byte of the payload.
    pub codec: u8,
    /// Payload bytes as stored.
    pub stored_len: u64,
    /// Payload bytes once decompressed (the elements).
    pub raw_len: u64,
    /// The blob's chunk digests, each `digest_len` bytes used of 32.
    pub digests: Box<[[u8; 32]]>,
    /// Checksum algorithm byte of the source archive.
    pub checksum: u8,
    /// The source archive's hash chunk size, log2.
    pub hash_chunk_log2: u32,
    /// The source archive's codec chunk size, log2 (0 when it holds no
    /// compressed blob).
    pub codec_chunk_log2: u32,
    /// The codec the source archive's save asked for (its header's
    /// `default_codec`): a raw blob written under a codec is one that codec
    /// was found not to pay for.
    pub default_codec: u8,
    /// The compression level and filter setting of the save that wrote the
    /// blob, when known: by a save of this process (a tensor it wrote), not
    /// by a load (an archive does not record them).
    pub written_with: Option<WrittenWith>,
}

/// Compression settings of the save that wrote a blob (with
/// [`StoredBlob::default_codec`], its codec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WrittenWith {
    /// Compression level.
    pub level: i32,
    /// Whether the float filters were tried.
    pub filters: bool,
}

/// A stored blob holding exactly a buffer's elements, in a file kept open.
#[derive(Debug)]
pub(crate) struct Provenance {
    /// The archive file.
    pub file: std::sync::Arc<SourceFile>,
    /// The blob in it.
    pub blob: StoredBlob,
}
