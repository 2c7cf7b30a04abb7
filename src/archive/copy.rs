//! Copying a stored blob from one archive file into the one being written:
//! what describes such a blob ([`StoredBlob`] from a table entry, and the
//! [`Chunking`] it must agree with), and the one place that asks the kernel
//! to copy between files.
//!
//! On Linux a [`File`] sink copies with `copy_file_range(2)`, which shares
//! extents on file systems that can (btrfs, XFS with reflinks) and
//! otherwise copies page cache to page cache without passing through this
//! process. Every other sink, and a kernel copy that fails or is not
//! supported (older kernels, two different file systems, a file system
//! without it), falls back to reading and writing through a buffer.

use std::fs::File;
use std::io::{self, Seek, Write};

use crate::format::hash::Checksum;
use crate::format::layout::{RawEntry, Tag};
use crate::value::provenance::{StoredBlob, WrittenWith};

/// How an archive cut and hashed its blobs: what a stored blob must agree
/// with to be copied into another archive.
#[derive(Clone, Copy)]
pub(crate) struct Chunking {
    /// The chunk digests' algorithm.
    pub checksum: Checksum,
    /// Hash chunk size, log2.
    pub hash_chunk_log2: u32,
    /// Codec chunk size, log2 (0 when no blob is compressed).
    pub codec_chunk_log2: u32,
    /// The codec the archive's save asked for (header `default_codec`).
    pub default_codec: u8,
    /// That save's level and filter setting, when known (a save of this
    /// process; never an archive loaded, which does not record them).
    pub written_with: Option<WrittenWith>,
}

/// Blobs smaller than this (frame and payload) are written from memory
/// and carry no provenance: copying one costs a flush of the writer and a
/// system call, more than encoding and hashing its few bytes. Copying
/// W2's 25,000 16-element tensors one by one made its re-save 2.7x
/// slower than safetensors' save (`cargo bench --bench compare -- w2_save`,
/// BENCHMARKS.md), and giving each a provenance slowed its restore.
pub(crate) const COPY_MIN_SPAN: u64 = 4 << 10;

/// True when entry `e`'s blob is large enough to copy rather than write
/// ([`COPY_MIN_SPAN`]).
pub(crate) fn worth_copying(e: &RawEntry) -> bool {
    // A value in the table (format 1.4) has no blob to copy.
    !e.is_inline()
        && Tag::from_u8(e.tag).is_some_and(|tag| {
            tag.payload_start().saturating_add(e.stored_len.get()) >= COPY_MIN_SPAN
        })
}

/// The blob of table entry `e`, with its `digests`, as provenance records
/// it; None for an entry whose tag is unknown (never, once validated).
pub(crate) fn stored_blob(
    e: &RawEntry,
    digests: Box<[[u8; 32]]>,
    c: Chunking,
) -> Option<StoredBlob> {
    let tag = Tag::from_u8(e.tag)?;
    Some(StoredBlob {
        offset: e.blob_offset.get(),
        span: tag.payload_start() + e.stored_len.get(),
        tag: e.tag,
        codec: e.codec,
        stored_len: e.stored_len.get(),
        raw_len: e.raw_len.get(),
        digests,
        checksum: c.checksum as u8,
        hash_chunk_log2: c.hash_chunk_log2,
        codec_chunk_log2: c.codec_chunk_log2,
        default_codec: c.default_codec,
        written_with: c.written_with,
    })
}

/// What an archive is written to: a file, or in tests anything seekable.
/// Beyond writing and seeking, it can append a range of another file.
pub(crate) trait ArchiveFile: Write + Seek {
    /// Appends bytes `offset..offset + len` of `src` at the current
    /// position, and moves past them. The default reads them into a buffer
    /// and writes them; a [`File`] asks the kernel first.
    fn copy_from(&mut self, src: &File, offset: u64, len: u64) -> io::Result<()> {
        copy_by_reading(self, src, offset, len)
    }
}

impl ArchiveFile for File {
    fn copy_from(&mut self, src: &File, offset: u64, len: u64) -> io::Result<()> {
        let done = kernel_copy(self, src, offset, len);
        copy_by_reading(self, src, offset + done, len - done)
    }
}

impl ArchiveFile for io::Cursor<Vec<u8>> {}

/// Bytes per read of the fallback copy.
const COPY_BUFFER: usize = 1 << 20;

/// Appends `len` bytes of `src` from `offset` to `dst`, through a buffer.
/// A source shorter than that is an `UnexpectedEof` error.
pub(crate) fn copy_by_reading<W: Write + ?Sized>(
    dst: &mut W,
    src: &File,
    mut offset: u64,
    mut len: u64,
) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let mut buf = vec![0u8; COPY_BUFFER.min(usize::try_from(len).unwrap_or(usize::MAX))];
    while len > 0 {
        let n = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        read_exact_at(src, &mut buf[..n], offset)?;
        dst.write_all(&buf[..n])?;
        offset += n as u64;
        len -= n as u64;
    }
    Ok(())
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn read_exact_at(_: &File, _: &mut [u8], _: u64) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "positional reads are not supported on this platform",
    ))
}

/// Copies up to `len` bytes of `src` from `offset` to `dst` at its current
/// position, in the kernel; returns how many it copied (`dst`'s position
/// moved as far). Stops early, for the caller to copy the rest another
/// way, when the kernel refuses or fails: nothing is lost by trying.
///
/// `std::io::copy` also reaches `copy_file_range` for two files, but with
/// both descriptors' own offsets: the source's would have to be moved, and
/// the source is an archive other loads and saves may be reading at the
/// same time. Passing the source offset explicitly leaves it alone.
#[cfg(target_os = "linux")]
fn kernel_copy(dst: &File, src: &File, offset: u64, len: u64) -> u64 {
    use std::os::fd::AsRawFd;
    let mut done = 0u64;
    while done < len {
        let Ok(mut off_in) = libc::loff_t::try_from(offset + done) else {
            break;
        };
        // At most 1 GiB per call, well under what any kernel accepts.
        let want = (len - done).min(1 << 30) as usize;
        // SAFETY: both descriptors are open for the whole call (borrowed
        // from live `File`s); `off_in` points to a local `loff_t` the kernel
        // reads and updates during the call only; a null `off_out` tells it
        // to use and advance `dst`'s own offset. No memory of this process
        // is written through any other pointer.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                std::ptr::null_mut(),
                want,
                0,
            )
        };
        if n <= 0 {
            // 0: the source ended early (the fallback reports it); < 0:
            // EXDEV, ENOSYS, EOPNOTSUPP, EINVAL... (the fallback may work,
            // or reports the real I/O error).
            break;
        }
        done += n as u64;
    }
    done
}

#[cfg(not(target_os = "linux"))]
fn kernel_copy(_: &File, _: &File, _: u64, _: u64) -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, SeekFrom};

    fn source(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        f.write_all(&bytes).unwrap();
        (f, bytes)
    }

    #[test]
    fn a_file_and_an_in_memory_sink_copy_the_same_bytes_after_what_they_hold() {
        let len = 3 * COPY_BUFFER + 12_345;
        let (src, bytes) = source(len + 1000);
        let (offset, n) = (777u64, len as u64);
        let want = [b"head".as_slice(), &bytes[777..777 + len]].concat();

        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"head").unwrap();
        file.copy_from(src.as_file(), offset, n).unwrap();
        assert_eq!(file.stream_position().unwrap(), 4 + n);
        let mut got = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut got).unwrap();
        assert_eq!(got, want);

        let mut memory = io::Cursor::new(b"head".to_vec());
        memory.seek(SeekFrom::End(0)).unwrap();
        memory.copy_from(src.as_file(), offset, n).unwrap();
        assert_eq!(memory.into_inner(), want);
    }

    #[test]
    fn copying_past_the_end_of_the_source_is_an_error() {
        let (src, _) = source(100);
        for mut sink in [
            Box::new(tempfile::tempfile().unwrap()) as Box<dyn ArchiveFile>,
            Box::new(io::Cursor::new(Vec::new())),
        ] {
            let err = sink.copy_from(src.as_file(), 50, 51).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        }
    }

    #[test]
    fn the_source_offset_is_left_where_it_was() {
        let (src, _) = source(10_000);
        let mut f = src.reopen().unwrap();
        f.seek(SeekFrom::Start(123)).unwrap();
        let mut sink = tempfile::tempfile().unwrap();
        sink.copy_from(&f, 4000, 5000).unwrap();
        assert_eq!(f.stream_position().unwrap(), 123);
    }
}
