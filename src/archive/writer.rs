//! The streaming writer: blob by blob straight to the file, hashing as it
//! goes, then the hash pool, the table of contents, the trailer, and last
//! the header (which points at the table of contents).
//!
//! Extra memory is the write buffer plus the table of contents (which grows
//! with the number of bindings, never with their bytes). Tensor elements are
//! written from the tensor's own slice; large ones are hashed on every core
//! while this thread writes them.
//!
//! A tensor whose buffer knows the blob that stores it unchanged in an
//! archive file ([`Provenance`]) is not written that way when the save's
//! options accept that blob as it is stored ([`reusable`]): the blob is
//! copied from that file by the kernel and its digests are taken from that
//! archive's hash pool, so the archive is the same, byte for byte, as if it
//! had been written from the elements.

use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use zerocopy::little_endian::U64;
use zerocopy::{FromBytes, IntoBytes};

use crate::archive::copy::{ArchiveFile, COPY_MIN_SPAN, Chunking, stored_blob, worth_copying};
use crate::archive::shared::{SharedPlan, storage_key_of};
use crate::error::{Error, Result};
use crate::format::codec::{self, ChunkOut, ChunkPlan, Filter, Packer, Settings};
use crate::format::encoding::{self, BlobIndex, EncodeError};
use crate::format::hash::{self, Checksum, ChunkState, Digest32};
use crate::format::layout::*;
use crate::format::metadata::Metadata;
use crate::format::toc::{PageLayout, closing_digest_of_parts, seal_index};
use crate::parallel;
use crate::value::provenance::{Provenance, StoredBlob, WrittenWith};
use crate::value::{MAX_DEPTH, Value};

/// One binding to write, in table-of-contents order.
pub(crate) struct Planned<'a> {
    pub section: Section,
    pub name: &'a str,
    pub value: &'a Value,
}

/// Header fields chosen by the caller.
pub(crate) struct HeaderFields {
    pub timestamp: u64,
    pub achronyme_version: [u8; 16],
}

/// Tensor payloads at least this large are hashed on other threads while
/// this one writes.
const PARALLEL_HASH_MIN: usize = 4 << 20;
const WRITE_BUFFER: usize = 1 << 20;
/// Encoded (non-tensor) values larger than this are written raw, streamed,
/// even when compression is on: compressing them would hold the whole
/// encoding in memory.
const COMPRESS_ENCODED_MAX: u64 = 64 << 20;

/// Byte counter and limit shared by every write of a save.
struct Sink<W: Write> {
    w: W,
    pos: u64,
    limit: u64,
    over_limit: bool,
    /// Hashes what is written while `hashing` is set; one for the whole
    /// save, so its state is allocated once, not once per blob.
    hasher: ChunkHasher,
    hashing: bool,
    /// The furthest offset ever written, when a rewind moved back from it.
    high_water: u64,
    /// What the save did with the bytes of its blobs.
    counts: Counts,
}

/// The storage section's blobs as written, by the storage key of the
/// tensor each holds (`Buffer::storage_key`).
pub(crate) type NestedBlobs = Vec<((usize, usize), StoredBlob)>;

/// What a save did with its blobs' bytes (`SaveReport` reports them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Raw payload bytes written from values in memory: tensor elements
    /// and value encodings, before compression.
    pub encoded: u64,
    /// Bytes of blobs run through the chunk checksum.
    pub hashed: u64,
    /// Bytes of blobs copied from other archive files.
    pub copied: u64,
}

/// What [`write_archive`] wrote.
pub(crate) struct Written {
    /// The archive's length.
    pub len: u64,
    /// What the blobs' bytes cost.
    pub counts: Counts,
    /// The planned items (by index) that are tensors with a blob worth
    /// copying, and that blob as written: a tensor saved to a file that
    /// stays can carry it as its provenance. Sparse: W2's 100,000 small
    /// bindings have none, and a dense list of them cost a 10 MB
    /// allocation per save.
    pub blobs: Vec<(usize, StoredBlob)>,
    /// The storage section's blobs (nested tensors stored apart, format
    /// 1.3), by the storage key of the tensor each holds, for the same use.
    pub nested: NestedBlobs,
}

/// Splits a blob's bytes into hash chunks as they stream past.
struct ChunkHasher {
    chunk: usize,
    filled: usize,
    h: ChunkState,
    digests: Vec<Digest32>,
}

impl ChunkHasher {
    fn new(algo: Checksum) -> Self {
        ChunkHasher {
            chunk: 1 << HASH_CHUNK_LOG2,
            filled: 0,
            h: ChunkState::new(algo),
            digests: Vec::new(),
        }
    }

    fn update(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            let n = buf.len().min(self.chunk - self.filled);
            self.h.update(&buf[..n]);
            self.filled += n;
            buf = &buf[n..];
            if self.filled == self.chunk {
                self.digests.push(self.h.finish_reset());
                self.filled = 0;
            }
        }
    }

    /// The digests of everything hashed since the last call; starts
    /// afresh for the next blob.
    fn finish(&mut self) -> Vec<Digest32> {
        if self.filled > 0 || self.digests.is_empty() {
            self.digests.push(self.h.finish_reset());
        }
        self.filled = 0;
        std::mem::take(&mut self.digests)
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.reserve(buf.len() as u64)?;
        self.w.write_all(buf)?;
        if self.hashing {
            self.hasher.update(buf);
        }
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

impl<W: Write> Sink<W> {
    fn reserve(&mut self, n: u64) -> io::Result<()> {
        if self.pos.checked_add(n).is_none_or(|end| end > self.limit) {
            self.over_limit = true;
            return Err(io::Error::other("max_file_size exceeded"));
        }
        Ok(())
    }

    fn pad_to_align(&mut self) -> io::Result<()> {
        const ZEROS: [u8; ALIGN as usize] = [0; ALIGN as usize];
        let pad = (ALIGN - self.pos % ALIGN) % ALIGN;
        self.write_all(&ZEROS[..pad as usize])
    }

    fn write_zeros(&mut self, mut n: usize) -> io::Result<()> {
        const ZEROS: [u8; 4096] = [0; 4096];
        while n > 0 {
            let k = n.min(ZEROS.len());
            self.write_all(&ZEROS[..k])?;
            n -= k;
        }
        Ok(())
    }
}

impl<W: Write + Seek> Sink<W> {
    /// Moves back to `offset` to write over what follows it. The bytes
    /// past the new position stay in the file until overwritten;
    /// `high_water` remembers how far they reach.
    fn rewind(&mut self, offset: u64) -> io::Result<()> {
        self.high_water = self.high_water.max(self.pos);
        self.w.seek(SeekFrom::Start(offset))?;
        self.pos = offset;
        Ok(())
    }

    /// Overwrites bytes already written at `offset` (a placeholder of the
    /// same length), then returns to the end.
    fn patch(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.w.seek(SeekFrom::Start(offset))?;
        self.w.write_all(bytes)?;
        self.w.seek(SeekFrom::Start(self.pos))?;
        Ok(())
    }
}

/// Counts the bytes an encoding would take, without storing them.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How the blobs are stored: compressed (where it pays) or not, and the
/// algorithm of their chunk digests.
#[derive(Clone, Copy)]
pub(crate) struct Storage {
    pub compression: Option<Settings>,
    pub checksum: Checksum,
    /// Copy stored blobs where [`reusable`] accepts them.
    pub reuse: bool,
}

/// Writes a whole archive to `file`, from offset 0 (it is rewound first).
/// Returns the archive's length, what its blobs cost, and where each
/// tensor's blob is. Generic so tests can inject I/O errors and write to
/// memory.
pub(crate) fn write_archive<F: ArchiveFile + ?Sized>(
    file: &mut F,
    path: &Path,
    (items, plan): (&[Planned<'_>], &SharedPlan),
    meta: &Metadata,
    header: &HeaderFields,
    limit: Option<u64>,
    storage: Storage,
) -> Result<Written> {
    let compression = storage.compression;
    let io_err = |e| Error::io("writing", path, e);
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut sink = Sink {
        w: BufWriter::with_capacity(WRITE_BUFFER, &mut *file),
        pos: 0,
        limit: limit.unwrap_or(u64::MAX),
        over_limit: false,
        hasher: ChunkHasher::new(storage.checksum),
        hashing: false,
        high_water: 0,
        counts: Counts::default(),
    };
    let mut toc = TocBuilder::new(storage.checksum);
    // Sized up front, so that 100,000 small bindings do not regrow them.
    toc.entries.reserve(items.len());
    toc.names.reserve(items.iter().map(|i| i.name.len()).sum());
    let mut current = "";
    let result = (|| -> Result<(), WriteError> {
        let mut packers = match compression {
            Some(settings) => (0..codec::workers(settings, parallel::cores()))
                .map(|_| Packer::new(settings))
                .collect::<io::Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        // Placeholder; the real header is written last.
        sink.write_all(&[0u8; HEADER_LEN as usize])?;
        for (i, item) in items.iter().enumerate() {
            current = item.name;
            if let Some(owner) = plan.alias_of(i) {
                toc.push_shared(item, owner)?;
                continue;
            }
            let to = (item.section as u8, plan as &dyn BlobIndex);
            let place = Place {
                inline: !plan.is_shared(i),
            };
            write_blob(
                &mut sink,
                &mut toc,
                item,
                to,
                (&mut packers, place),
                storage,
            )?;
        }
        write_storage(
            &mut sink,
            &mut toc,
            plan,
            (&mut packers, storage),
            &mut current,
        )?;
        current = "(table of contents)";
        Ok(())
    })();
    if let Err(e) = result {
        return Err(e.into_error(sink.over_limit, limit, current, path));
    }

    // Hash pool, table of contents, trailer.
    let hashes_offset = sink.pos;
    let pool = toc.pool();
    let pool: &[u8] = &pool;
    let tail = (|| -> io::Result<RawHeader> {
        sink.write_all(pool)?;
        sink.pad_to_align()?;
        let toc_offset = sink.pos;
        let table = toc.finish(meta, hashes_offset);
        let parts = table.parts();
        let toc_len = parts.iter().map(|p| p.len() as u64).sum::<u64>();
        let default_codec = compression.map_or(Codec::None, |c| c.codec);
        let raw_header = build_header(
            header,
            meta,
            items,
            (toc_offset, toc_len, toc.values.len() as u64),
            default_codec,
            toc.compressed,
        );
        let algo = storage.checksum;
        let toc_sha256 =
            crate::format::toc::index_digest(raw_header.as_bytes(), &table.index, &table.layout());
        // The closing SHA-256 covers the whole table with XXH3 digests
        // (10 MB for 100,000 small bindings): a large one is hashed on
        // another core while this one writes the table.
        let closing = || closing_digest_of_parts(&toc_sha256, &parts, pool, algo);
        let write_table = |sink: &mut Sink<_>| parts.iter().try_for_each(|p| sink.write_all(p));
        let closing_sha256 = if toc_len < PARALLEL_HASH_MIN as u64 {
            write_table(&mut sink)?;
            closing()
        } else {
            let (closing_sha256, written) = std::thread::scope(|s| {
                let closing = s.spawn(closing);
                let written = write_table(&mut sink);
                (closing.join().expect("hashing does not panic"), written)
            });
            written?;
            closing_sha256
        };
        let trailer = RawTrailer {
            toc_sha256,
            closing_sha256,
        };
        sink.write_all(trailer.as_bytes())?;
        Ok(raw_header)
    })();
    let raw_header = match tail {
        Ok(t) => t,
        Err(e) => {
            return Err(WriteError::Io(e).into_error(sink.over_limit, limit, current, path));
        }
    };
    let total = sink.pos;
    let counts = sink.counts;
    // A blob rewound to be written raw can be 16 bytes per chunk shorter
    // than its compressed attempt; its own digests, the table of contents
    // and the trailer, written after it, always cover the difference.
    if sink.high_water > total {
        return Err(io_err(io::Error::other(
            "internal error: the archive ended before bytes written earlier",
        )));
    }
    sink.flush().map_err(io_err)?;
    drop(sink);
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    file.write_all(raw_header.as_bytes()).map_err(io_err)?;
    Ok(Written {
        len: total,
        counts,
        blobs: toc.stored_blobs(items, storage),
        nested: toc.nested_blobs(items.len(), plan, storage),
    })
}

fn build_header(
    fields: &HeaderFields,
    meta: &Metadata,
    items: &[Planned<'_>],
    (toc_offset, toc_len, values_len): (u64, u64, u64),
    default_codec: Codec,
    compressed: bool,
) -> RawHeader {
    let mut flags = 0;
    if meta.description.is_some() || !meta.tags.is_empty() || !meta.custom.is_empty() {
        flags |= FLAG_EXTENDED_METADATA;
    }
    if items.iter().any(|i| i.section == Section::Constants) {
        flags |= FLAG_CONSTANTS;
    }
    if compressed {
        flags |= FLAG_COMPRESSED;
    }
    // Every table ends with a page index (1.3), holds the small values
    // (1.4) and stores compact entries (1.5); readers before 1.4 refuse a
    // value pool (its length's bytes were reserved), and before 1.5 an
    // entry size other than 56.
    let minor = FORMAT_VERSION_MINOR_COMPACT;
    RawHeader {
        magic: MAGIC,
        version_major: FORMAT_VERSION_MAJOR.into(),
        version_minor: minor.into(),
        flags: flags.into(),
        default_codec: default_codec as u8,
        reserved0: [0; 3],
        created_timestamp: fields.timestamp.into(),
        achronyme_version: fields.achronyme_version,
        toc_offset: toc_offset.into(),
        toc_len: toc_len.into(),
        values_len: values_len.into(),
    }
}

enum WriteError {
    Io(io::Error),
    Encode(EncodeError),
    Name(&'static str),
    /// The encoding's length differed between the counting pass and the
    /// writing pass: a `mut` reference was written to meanwhile.
    Changed,
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

impl WriteError {
    fn into_error(self, over_limit: bool, limit: Option<u64>, name: &str, path: &Path) -> Error {
        if over_limit {
            return Error::SizeLimitExceeded {
                limit: limit.unwrap_or(u64::MAX),
                name: name.to_string(),
            };
        }
        match self {
            WriteError::Io(e) | WriteError::Encode(EncodeError::Io(e)) => {
                Error::io("writing", path, e)
            }
            WriteError::Encode(EncodeError::TooDeep) => Error::TooDeep {
                name: name.to_string(),
                limit: MAX_DEPTH,
            },
            WriteError::Encode(EncodeError::Lambda) => Error::Unsaveable {
                name: name.to_string(),
                reason: "it holds a user lambda, which archives cannot store",
            },
            WriteError::Encode(EncodeError::TooManyDims) => Error::Unsaveable {
                name: name.to_string(),
                reason: "it holds a tensor of more than 64 dimensions",
            },
            WriteError::Name(reason) => Error::InvalidName {
                name: name.to_string(),
                reason,
            },
            WriteError::Changed => Error::ValueChanged {
                name: name.to_string(),
            },
        }
    }
}

/// Where a value may be stored besides a blob of its own.
#[derive(Clone, Copy)]
struct Place {
    /// In the table's value pool (format 1.4), when it is small: not a
    /// blob another entry shares, nor a storage entry.
    inline: bool,
}

/// Values whose blob (frame and payload) would be smaller than this are
/// stored in the table's value pool instead (format 1.4, layout.md 6.9):
/// packed back to back, checked by the table's page digests, with no
/// frame, padding or digest of their own. It is the size under which a
/// blob is not worth copying ([`COPY_MIN_SPAN`]), so every value that could
/// be copied on a re-save keeps its blob, and a loaded tensor under it is
/// a copy of a few hundred bytes at most.
const INLINE_SPAN_MAX: u64 = COPY_MIN_SPAN;

/// Writes one binding's value: into the table's value pool when it is
/// small (format 1.4); else its blob, copied from the archive that stores
/// it unchanged when the save accepts it as stored, else compressed when
/// compression is on and pays, raw otherwise, and padded to the next
/// 64-byte boundary.
fn write_blob<F: ArchiveFile + ?Sized>(
    sink: &mut Sink<BufWriter<&mut F>>,
    toc: &mut TocBuilder,
    item: &Planned<'_>,
    (section, blobs): (u8, &dyn BlobIndex),
    (packers, place): (&mut [Packer], Place),
    storage: Storage,
) -> Result<(), WriteError> {
    let blob = Blob::of(item, section, blobs)?;
    if let Some(origin) = reusable(&blob, storage) {
        copy_stored(sink, toc, &blob, origin)?;
        return Ok(sink.pad_to_align()?);
    }
    let payload_len = blob.payload_len()?;
    if place.inline && blob.tag.payload_start() + payload_len < INLINE_SPAN_MAX {
        sink.counts.encoded += payload_len;
        return toc.push_inline(&blob, payload_len);
    }
    write_stored(sink, toc, &blob, packers, payload_len)?;
    Ok(sink.pad_to_align()?)
}

/// Writes `blob` uncopied: compressed when compression is on and pays, raw
/// otherwise.
fn write_stored<W: Write + Seek>(
    sink: &mut Sink<W>,
    toc: &mut TocBuilder,
    blob: &Blob<'_>,
    packers: &mut [Packer],
    payload_len: u64,
) -> Result<(), WriteError> {
    let compressible = !packers.is_empty()
        && payload_len >= codec::MIN_COMPRESS_LEN as u64
        && (blob.elements.is_some() || payload_len <= COMPRESS_ENCODED_MAX);
    if !compressible {
        return write_raw(sink, toc, blob, blob.elements, payload_len);
    }
    // A small enough encoded value is encoded once into memory; the bytes
    // are then compressed, or written raw.
    let encoded = match blob.elements {
        Some(_) => None,
        None => Some(blob.encode(payload_len)?),
    };
    let payload = blob
        .elements
        .or(encoded.as_deref())
        .expect("tensor elements or encoded above");
    if try_packed(sink, toc, blob, payload, packers)? {
        return Ok(());
    }
    write_raw(sink, toc, blob, Some(payload), payload_len)
}

/// The stored blob `blob` can be copied from instead of being written, if
/// any: its tensor's buffer knows a blob that holds exactly its elements
/// (same tag, same length), in a file not written to since, and this
/// save's options would store those elements that way:
///
/// - same chunk checksum algorithm and hash chunk size, so the source's
///   digests are this archive's;
/// - a compressed blob when this save compresses with the same codec and
///   codec chunk size, and, with filters off, its chunks use none;
/// - a raw blob when this save does not compress, or when the blob is too
///   small to compress (under 1 KiB), or when its archive was saved asking
///   for the same codec as this save (that save found compression did not
///   pay for these elements, and this one would find the same);
/// - in both cases, when the blob was written by a save of this process
///   (which knows its settings), only at the same level and filter
///   setting. A loaded archive does not record them: its blobs are
///   accepted at any level, and a raw one whatever filter setting made it.
///
/// Same options as the source archive's save give the same bytes as
/// writing the elements; a loaded blob saved at another level keeps its
/// compressed chunks (valid, equal once decoded, possibly different in
/// size; `reuse_stored: false` recompresses).
fn reusable<'a>(blob: &Blob<'a>, storage: Storage) -> Option<&'a Provenance> {
    let origin = blob.origin.filter(|_| storage.reuse)?;
    let stored = &origin.blob;
    if stored.span < COPY_MIN_SPAN {
        return None;
    }
    let elements = blob.elements?;
    let want = storage.compression.map_or(Codec::None, |c| c.codec) as u8;
    let same_settings = match (stored.written_with, storage.compression) {
        (Some(w), Some(c)) => w.level == c.level && w.filters == c.filters,
        _ => true,
    };
    let filters = storage.compression.is_some_and(|c| c.filters);
    let codec_ok = if stored.codec == Codec::None as u8 {
        stored.stored_len == stored.raw_len
            && (want == Codec::None as u8
                || stored.raw_len < codec::MIN_COMPRESS_LEN as u64
                || (stored.default_codec == want && same_settings))
    } else {
        stored.codec == want
            && same_settings
            && stored.codec_chunk_log2 == u32::from(codec::CODEC_CHUNK_LOG2)
            && (filters || unfiltered(origin))
    };
    let same = stored.tag == blob.tag as u8
        && stored.raw_len == elements.len() as u64
        && stored.span == blob.tag.payload_start() + stored.stored_len
        && stored.checksum == storage.checksum as u8
        && stored.hash_chunk_log2 == HASH_CHUNK_LOG2
        && stored.digests.len() as u64 == digest_count(stored);
    (codec_ok && same && origin.file.unchanged() && frame_matches(origin)).then_some(&**origin)
}

/// How many digests a blob stored as `stored` has (layout.md 4.1): one per
/// hash chunk of its span when raw; when compressed, one for its head and
/// one per codec chunk.
fn digest_count(stored: &StoredBlob) -> u64 {
    if stored.codec == Codec::None as u8 {
        return hash::chunk_count(stored.span, 1 << HASH_CHUNK_LOG2);
    }
    1 + hash::chunk_count(stored.raw_len, 1 << stored.codec_chunk_log2)
}

/// True when every chunk of a compressed blob is stored without a filter
/// (its chunk table, read from the file: 16 bytes per 4 MiB chunk), as a
/// save with filters off writes them.
fn unfiltered(origin: &Provenance) -> bool {
    let stored = &origin.blob;
    let Some(tag) = Tag::from_u8(stored.tag) else {
        return false;
    };
    let chunks = hash::chunk_count(stored.raw_len, 1 << stored.codec_chunk_log2);
    let len = chunks * size_of::<RawChunk>() as u64;
    let Ok(room) = usize::try_from(len) else {
        return false;
    };
    let mut table = vec![0u8; room];
    let mut sink = &mut table[..];
    let at = stored.offset + tag.payload_start();
    crate::archive::copy::copy_by_reading(&mut sink, origin.file.file(), at, len).is_ok()
        && <[RawChunk]>::ref_from_bytes(&table)
            .is_ok_and(|t| t.iter().all(|c| c.filter == Filter::None as u8))
}

/// True when the frame at the blob's offset in its file is the one its
/// table entry described: a cheap check (16 bytes) that the file still
/// holds that blob where it was, before copying it blind.
fn frame_matches(origin: &Provenance) -> bool {
    let stored = &origin.blob;
    let want = RawFrame {
        magic: FRAME_MAGIC,
        tag: stored.tag,
        codec: stored.codec,
        filter: 0,
        reserved: [0; 3],
        stored_len: stored.stored_len.into(),
    };
    let mut found = [0u8; FRAME_LEN as usize];
    let mut sink = &mut found[..];
    crate::archive::copy::copy_by_reading(&mut sink, origin.file.file(), stored.offset, FRAME_LEN)
        .is_ok()
        && found == want.as_bytes()
}

/// Copies `origin`'s blob into the archive as `blob`'s, with its digests:
/// no encoding, no hashing, no compression. The source's bytes are not
/// checked against their digests here: the load that made the buffer did
/// (unless told not to), and any load or verify of the new archive will.
fn copy_stored<F: ArchiveFile + ?Sized>(
    sink: &mut Sink<BufWriter<&mut F>>,
    toc: &mut TocBuilder,
    blob: &Blob<'_>,
    origin: &Provenance,
) -> Result<(), WriteError> {
    let stored = &origin.blob;
    let offset = sink.pos;
    sink.reserve(stored.span)?;
    sink.w.flush()?;
    sink.w
        .get_mut()
        .copy_from(origin.file.file(), stored.offset, stored.span)?;
    sink.pos += stored.span;
    sink.counts.copied += stored.span;
    let codec = Codec::from_u8(stored.codec).expect("checked by the reader");
    let placed = Stored {
        offset,
        stored_len: stored.stored_len,
        raw_len: stored.raw_len,
        codec,
    };
    toc.push(blob, placed, stored.digests.to_vec())
}

/// A binding about to be written: its tag, shape, a tensor's elements as
/// bytes (None for values stored by their encoding), and the blob that
/// already stores them, if known.
struct Blob<'a> {
    item: &'a Planned<'a>,
    /// The entry's section byte (a `Section`, or the storage section).
    section: u8,
    tag: Tag,
    shape: &'a [usize],
    elements: Option<&'a [u8]>,
    origin: Option<&'a Arc<Provenance>>,
    /// Where nested tensors with blobs of their own are.
    blobs: &'a dyn BlobIndex,
}

impl<'a> Blob<'a> {
    fn of(
        item: &'a Planned<'a>,
        section: u8,
        blobs: &'a dyn BlobIndex,
    ) -> Result<Blob<'a>, WriteError> {
        let tag = encoding::tag_of(item.value);
        let (shape, elements, origin): (&[usize], Option<&[u8]>, _) = match item.value {
            Value::Tensor(t) => (
                t.shape(),
                Some(bytemuck::cast_slice(t.data())),
                t.buffer().provenance(),
            ),
            Value::ComplexTensor(t) => (
                t.shape(),
                Some(bytemuck::cast_slice(t.data())),
                t.buffer().provenance(),
            ),
            _ => (&[], None, None),
        };
        if shape.len() > MAX_NDIM as usize {
            return Err(WriteError::Encode(EncodeError::TooManyDims));
        }
        Ok(Blob {
            item,
            section,
            tag,
            shape,
            elements,
            origin,
            blobs,
        })
    }

    /// Bytes of the raw payload: the elements, or the encoding (counted,
    /// not stored).
    fn payload_len(&self) -> Result<u64, WriteError> {
        if let Some(bytes) = self.elements {
            return Ok(bytes.len() as u64);
        }
        let mut c = Counter(0);
        encoding::encode_with(&mut c, self.item.value, 0, self.blobs)
            .map_err(WriteError::Encode)?;
        Ok(c.0)
    }

    /// The value's encoding in memory; it must be `len` bytes, as counted.
    fn encode(&self, len: u64) -> Result<Vec<u8>, WriteError> {
        let mut buf = Vec::with_capacity(len as usize);
        encoding::encode_with(&mut buf, self.item.value, 0, self.blobs)
            .map_err(WriteError::Encode)?;
        if buf.len() as u64 != len {
            return Err(WriteError::Changed);
        }
        Ok(buf)
    }
}

/// Writes `payload` compressed if its samples say that pays (layout.md
/// 3.4). Returns false, having written nothing that stays, when the blob
/// is to be written raw instead.
fn try_packed<W: Write + Seek>(
    sink: &mut Sink<W>,
    toc: &mut TocBuilder,
    blob: &Blob<'_>,
    payload: &[u8],
    packers: &mut [Packer],
) -> Result<bool, WriteError> {
    let lag = codec::word_lag(blob.tag);
    let chunk = 1usize << codec::CODEC_CHUNK_LOG2;
    let Some(plans) = packers[0].plan(lag, payload, chunk)? else {
        return Ok(false);
    };
    // false when the samples promised more than the chunks gave: the blob
    // was rewound, and is written raw so it stays mappable.
    write_packed(sink, toc, blob, payload, (lag, plans), packers)
}

/// Writes a raw blob (codec 0): frame, padding, payload, hashed as written.
/// `payload` is the raw payload when it is in memory; without it the value
/// is encoded straight into the file.
fn write_raw<W: Write + Seek>(
    sink: &mut Sink<W>,
    toc: &mut TocBuilder,
    blob: &Blob<'_>,
    payload: Option<&[u8]>,
    payload_len: u64,
) -> Result<(), WriteError> {
    let frame = RawFrame {
        magic: FRAME_MAGIC,
        tag: blob.tag as u8,
        codec: Codec::None as u8,
        filter: 0,
        reserved: [0; 3],
        stored_len: payload_len.into(),
    };
    let mut prefix = [0u8; ALIGN as usize];
    prefix[..FRAME_LEN as usize].copy_from_slice(frame.as_bytes());
    let prefix = &prefix[..blob.tag.payload_start() as usize];

    let blob_offset = sink.pos;
    let digests = match payload {
        Some(bytes) if bytes.len() >= PARALLEL_HASH_MIN => {
            sink.reserve(prefix.len() as u64 + payload_len)?;
            let (digests, written) = hash::chunk_digests_alongside(
                toc.checksum,
                prefix,
                bytes,
                1 << HASH_CHUNK_LOG2,
                || {
                    sink.write_all(prefix)?;
                    sink.write_all(bytes)
                },
            );
            written?;
            digests
        }
        _ => {
            sink.hashing = true;
            let written = (|| -> Result<(), WriteError> {
                sink.write_all(prefix)?;
                match payload {
                    Some(bytes) => sink.write_all(bytes)?,
                    None => encoding::encode_with(sink, blob.item.value, 0, blob.blobs)
                        .map_err(WriteError::Encode)?,
                }
                Ok(())
            })();
            sink.hashing = false;
            let digests = sink.hasher.finish();
            written?;
            if sink.pos - blob_offset != prefix.len() as u64 + payload_len {
                return Err(WriteError::Changed);
            }
            digests
        }
    };
    sink.counts.encoded += payload_len;
    sink.counts.hashed += prefix.len() as u64 + payload_len;
    let stored = Stored {
        offset: blob_offset,
        stored_len: payload_len,
        raw_len: payload_len,
        codec: Codec::None,
    };
    toc.push(blob, stored, digests)
}

/// Writes a compressed blob (layout.md 3.4): a placeholder for the frame and
/// chunk table, then the chunks in order, each written as soon as it and
/// those before it are compressed while the pool compresses the next ones
/// ([`parallel::ordered`]); then the frame and table over the placeholder.
/// Memory: per packer, one chunk being filtered and compressed; at most
/// twice as many compressed chunks waiting; and the table. Returns false,
/// with the sink rewound to the blob's start, when the whole blob does not
/// save an eighth after all (layout.md 3.4): the caller then writes it raw.
fn write_packed<W: Write + Seek>(
    sink: &mut Sink<W>,
    toc: &mut TocBuilder,
    blob: &Blob<'_>,
    payload: &[u8],
    (lag, plans): (Option<usize>, Vec<ChunkPlan>),
    packers: &mut [Packer],
) -> Result<bool, WriteError> {
    let codec = packers[0].codec();
    let chunk = 1usize << codec::CODEC_CHUNK_LOG2;
    let chunks: Vec<&[u8]> = payload.chunks(chunk).collect();
    let start = blob.tag.payload_start() as usize;
    let head_len = start + chunks.len() * size_of::<RawChunk>();
    let blob_offset = sink.pos;
    sink.write_zeros(head_len)?;
    let mut table = Vec::with_capacity(chunks.len());
    let mut digests = Vec::with_capacity(chunks.len() + 1);
    digests.push([0u8; 32]);
    let algo = toc.checksum;
    // On the pool: compress and hash one chunk.
    let pack = |p: &mut Packer, k: usize| {
        let out = p.chunk(lag, chunks[k], plans[k])?;
        let d = match &out {
            ChunkOut::Raw => algo.of(&[chunks[k]]),
            ChunkOut::Packed { bytes, .. } => algo.of(&[bytes]),
        };
        io::Result::Ok((out, d))
    };
    // Here, in chunk order: write it and record it.
    let write = |k: usize, packed: io::Result<(ChunkOut, Digest32)>| -> Result<(), WriteError> {
        let (out, d) = packed?;
        let c = chunks[k];
        match out {
            ChunkOut::Raw => {
                sink.write_all(c)?;
                table.push(codec::table_record(
                    c.len() as u64,
                    Codec::None,
                    Filter::None,
                ));
            }
            ChunkOut::Packed { filter, bytes } => {
                sink.write_all(&bytes)?;
                table.push(codec::table_record(bytes.len() as u64, codec, filter));
            }
        }
        digests.push(d);
        Ok(())
    };
    parallel::ordered(packers, chunks.len(), pack, write)?;

    let stored_len = sink.pos - blob_offset - start as u64;
    if !codec::pays(payload.len(), stored_len as usize) {
        sink.rewind(blob_offset)?;
        return Ok(false);
    }
    let frame = RawFrame {
        magic: FRAME_MAGIC,
        tag: blob.tag as u8,
        codec: codec as u8,
        filter: 0,
        reserved: [0; 3],
        stored_len: stored_len.into(),
    };
    let mut head = vec![0u8; start];
    head[..FRAME_LEN as usize].copy_from_slice(frame.as_bytes());
    head.extend_from_slice(table.as_bytes());
    digests[0] = algo.of(&[&head]);
    sink.patch(blob_offset, &head)?;
    sink.counts.encoded += payload.len() as u64;
    sink.counts.hashed += start as u64 + stored_len;
    let stored = Stored {
        offset: blob_offset,
        stored_len,
        raw_len: payload.len() as u64,
        codec,
    };
    toc.push(blob, stored, digests)?;
    Ok(true)
}

/// Where and how a blob was stored.
struct Stored {
    offset: u64,
    stored_len: u64,
    raw_len: u64,
    codec: Codec,
}

/// `e` in the compact form the table stores (format 1.5), or the error
/// that says the archive is full.
fn compact(e: &RawEntry) -> Result<CompactEntry, WriteError> {
    CompactEntry::narrow(e).ok_or(WriteError::Name(
        "archive is full (over 256 TiB: the table stores offsets and lengths in 48 bits)",
    ))
}

/// A table index as the `u32` the table stores, or the error that says
/// the archive is full.
fn small(n: usize) -> Result<u32, WriteError> {
    u32::try_from(n).map_err(|_| {
        WriteError::Name("archive index is full (over 4 GiB of names, shapes or chunks)")
    })
}

/// Writes the storage section (format 1.3): one blob per nested tensor the
/// plan gave an entry of its own, each through [`write_blob`] exactly as a
/// binding's tensor, after every binding and constant.
fn write_storage<'p, F: ArchiveFile + ?Sized>(
    sink: &mut Sink<BufWriter<&mut F>>,
    toc: &mut TocBuilder,
    plan: &'p SharedPlan,
    (packers, storage): (&mut [Packer], Storage),
    current: &mut &'p str,
) -> Result<(), WriteError> {
    for (name, value) in plan.storage() {
        *current = name;
        let item = Planned {
            // Not a binding: the entry's section byte is the storage one.
            section: Section::Bindings,
            name,
            value,
        };
        let place = Place { inline: false };
        write_blob(
            sink,
            toc,
            &item,
            (SECTION_STORAGE, plan),
            (packers, place),
            storage,
        )?;
    }
    Ok(())
}

/// Accumulates the table of contents while blobs are written.
struct TocBuilder {
    /// The entries, in the compact form they are stored in (format 1.5).
    entries: Vec<CompactEntry>,
    /// The dims pool, as stored (little-endian).
    dims: Vec<U64>,
    names: Vec<u8>,
    /// The value pool (format 1.4): small values' payloads, back to back.
    values: Vec<u8>,
    digests: Vec<Digest32>,
    compressed: bool,
    checksum: Checksum,
    /// Entries that share an earlier entry's blob.
    shared: u64,
}

impl TocBuilder {
    fn new(checksum: Checksum) -> Self {
        TocBuilder {
            entries: Vec::new(),
            dims: Vec::new(),
            names: Vec::new(),
            values: Vec::new(),
            digests: Vec::new(),
            compressed: false,
            checksum,
            shared: 0,
        }
    }

    /// Each of `items` (the planned bindings, in the order written) that
    /// is a tensor with a blob worth copying: its index, where its blob is
    /// and its digests.
    fn stored_blobs(&self, items: &[Planned<'_>], storage: Storage) -> Vec<(usize, StoredBlob)> {
        self.entries
            .iter()
            .take(items.len())
            .enumerate()
            // Tags first: the values themselves are not read for the
            // others.
            .filter(|(_, e)| matches!(Tag::from_u8(e.tag), Some(Tag::Tensor | Tag::ComplexTensor)))
            .filter_map(|(i, e)| Some((i, self.stored_blob(&e.widen(), storage)?)))
            .collect()
    }

    /// The storage section's blobs, which follow the `items` planned
    /// bindings' entries, by the storage key of the tensor each holds.
    fn nested_blobs(&self, items: usize, plan: &SharedPlan, storage: Storage) -> NestedBlobs {
        plan.storage()
            .iter()
            .zip(self.entries.get(items..).unwrap_or(&[]))
            .filter_map(|((_, value), e)| {
                Some((
                    storage_key_of(value)?,
                    self.stored_blob(&e.widen(), storage)?,
                ))
            })
            .collect()
    }

    /// Where entry `e`'s blob is, and its digests; none for a blob too
    /// small to be worth copying.
    fn stored_blob(&self, e: &RawEntry, storage: Storage) -> Option<StoredBlob> {
        if !worth_copying(e) {
            return None;
        }
        let default_codec = storage.compression.map_or(Codec::None, |c| c.codec) as u8;
        let first = e.hash_index.get() as usize;
        let digests = self
            .digests
            .get(first..first + e.hash_count.get() as usize)?;
        let chunking = Chunking {
            checksum: self.checksum,
            hash_chunk_log2: HASH_CHUNK_LOG2,
            codec_chunk_log2: if self.compressed {
                u32::from(codec::CODEC_CHUNK_LOG2)
            } else {
                0
            },
            default_codec,
            written_with: storage.compression.map(|c| WrittenWith {
                level: c.level,
                filters: c.filters,
            }),
        };
        stored_blob(e, digests.into(), chunking)
    }

    /// The hash pool: each digest at its algorithm's length.
    fn pool(&self) -> Vec<u8> {
        let dlen = self.checksum.len();
        let mut out = Vec::with_capacity(self.digests.len() * dlen);
        for d in &self.digests {
            out.extend_from_slice(&d[..dlen]);
        }
        out
    }

    fn push(
        &mut self,
        blob: &Blob<'_>,
        stored: Stored,
        digests: Vec<Digest32>,
    ) -> Result<(), WriteError> {
        let (item, tag, shape) = (blob.item, blob.tag, blob.shape);
        let entry = RawEntry {
            name_offset: small(self.names.len())?.into(),
            name_len: small(item.name.len())?.into(),
            blob_offset: stored.offset.into(),
            stored_len: stored.stored_len.into(),
            raw_len: stored.raw_len.into(),
            dims_index: small(self.dims.len())?.into(),
            ndim: small(shape.len())?.into(),
            hash_index: small(self.digests.len())?.into(),
            hash_count: small(digests.len())?.into(),
            tag: tag as u8,
            section: blob.section,
            codec: stored.codec as u8,
            filter: 0,
            reserved: [0; 4],
        };
        small(self.digests.len() + digests.len())?;
        self.compressed |= stored.codec != Codec::None;
        self.entries.push(compact(&entry)?);
        self.names.extend_from_slice(item.name.as_bytes());
        self.dims.extend(shape.iter().map(|&d| U64::new(d as u64)));
        self.digests.extend(digests);
        Ok(())
    }

    /// Adds `blob`'s entry with its payload (`payload_len` bytes, as
    /// counted) in the value pool (format 1.4): a tensor's elements, or the
    /// value's encoding.
    fn push_inline(&mut self, blob: &Blob<'_>, payload_len: u64) -> Result<(), WriteError> {
        if blob.elements.is_some() {
            // Aligned, so that a load can view the mapped table.
            let at = self
                .values
                .len()
                .next_multiple_of(INLINE_TENSOR_ALIGN as usize);
            self.values.resize(at, 0);
        }
        let offset = self.values.len();
        match blob.elements {
            Some(bytes) => self.values.extend_from_slice(bytes),
            None => encoding::encode_with(&mut self.values, blob.item.value, 0, blob.blobs)
                .map_err(WriteError::Encode)?,
        }
        if (self.values.len() - offset) as u64 != payload_len {
            return Err(WriteError::Changed);
        }
        let stored = Stored {
            offset: offset as u64,
            stored_len: payload_len,
            raw_len: payload_len,
            codec: Codec::None,
        };
        self.push(blob, stored, Vec::new())
    }

    /// Adds binding `item`'s entry sharing the blob of the earlier entry
    /// `owner` (format 1.3): same blob, lengths, codec and digests; its own
    /// name and (equal) shape.
    fn push_shared(&mut self, item: &Planned<'_>, owner: usize) -> Result<(), WriteError> {
        let mut entry = self.entries[owner].widen();
        let ndim = entry.ndim.get() as usize;
        let at = entry.dims_index.get() as usize;
        entry.name_offset = small(self.names.len())?.into();
        entry.name_len = small(item.name.len())?.into();
        entry.dims_index = small(self.dims.len())?.into();
        entry.section = item.section as u8;
        self.entries.push(compact(&entry)?);
        self.shared += 1;
        self.names.extend_from_slice(item.name.as_bytes());
        self.dims.extend_from_within(at..at + ndim);
        Ok(())
    }

    /// The table, sealed, as the parts it is written in (no copy of the
    /// whole table is made: 10 MB for 100,000 small bindings).
    fn finish(&self, meta: &Metadata, hashes_offset: u64) -> TocParts<'_> {
        let meta = meta.encode();
        let head = RawTocHeader {
            magic: TOC_MAGIC,
            entry_size: (ENTRY_LEN_COMPACT as u32).into(),
            entry_count: (self.entries.len() as u64).into(),
            dims_count: (self.dims.len() as u64).into(),
            names_len: (self.names.len() as u64).into(),
            meta_len: (meta.len() as u64).into(),
            hashes_offset: hashes_offset.into(),
            hash_count: (self.digests.len() as u64).into(),
            hash_chunk_log2: HASH_CHUNK_LOG2.into(),
            codec_chunk_log2: if self.compressed {
                codec::CODEC_CHUNK_LOG2
            } else {
                0
            },
            checksum: self.checksum as u8,
            page_log2: TOC_PAGE_LOG2,
            reserved: 0,
        };
        // The page index (layout.md 6.8): the summary, then each page's
        // digest and the top digests over those, so that a reader checks
        // only the pages it reads.
        // Sections 0 to 2, then the storage section (byte 3).
        let (mut counts, mut storage_bytes, mut compressed_blobs) = ([0u64; 4], 0, 0);
        for e in &self.entries {
            counts[usize::from(e.section)] += 1;
            compressed_blobs += u64::from(e.codec != 0);
            if e.section == SECTION_STORAGE {
                storage_bytes += e.widen().stored_len.get();
            }
        }
        let index_head = RawPageIndexHead {
            magic: PAGE_INDEX_MAGIC,
            reserved0: [0; 4],
            counts: counts.map(Into::into),
            compressed_blobs: compressed_blobs.into(),
            storage_bytes: storage_bytes.into(),
            shared_entries: self.shared.into(),
        };
        let mut table = TocParts {
            head,
            entries: self.entries.as_bytes(),
            dims: self.dims.as_bytes(),
            values: &self.values,
            names: &self.names,
            meta,
            index: index_head.as_bytes().to_vec(),
            checksum: self.checksum,
        };
        table.seal();
        table
    }
}

/// A table of contents as written: its parts in file order, the pages
/// (`body`) then the page index.
struct TocParts<'t> {
    head: RawTocHeader,
    entries: &'t [u8],
    dims: &'t [u8],
    values: &'t [u8],
    names: &'t [u8],
    meta: Vec<u8>,
    /// The page index: its head, the page digests and the top digests.
    index: Vec<u8>,
    checksum: Checksum,
}

impl TocParts<'_> {
    /// The table's pages, as parts in order.
    fn body(&self) -> [&[u8]; 6] {
        [
            self.head.as_bytes(),
            self.entries,
            self.dims,
            self.values,
            self.names,
            &self.meta,
        ]
    }

    /// Where the page index lies.
    fn layout(&self) -> PageLayout {
        let body_len = self.body().iter().map(|p| p.len() as u64).sum();
        PageLayout::for_body(body_len, TOC_PAGE_LOG2, self.checksum)
    }

    /// Fills in the page index after its head: the page digests and the
    /// top digests.
    fn seal(&mut self) {
        let layout = self.layout();
        let mut index = std::mem::take(&mut self.index);
        let digests = (layout.pages + layout.tops) * layout.digest_len;
        index.resize((PAGE_INDEX_HEAD_LEN + digests) as usize, 0);
        seal_index(&self.body(), &mut index, &layout, self.checksum);
        self.index = index;
    }

    /// The whole table, as parts in order.
    fn parts(&self) -> [&[u8]; 7] {
        let [head, entries, dims, values, names, meta] = self.body();
        [head, entries, dims, values, names, meta, &self.index]
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};

    use super::*;
    use crate::archive::reader::Archive;
    use crate::format::codec::Settings;
    use crate::testdata;
    use crate::value::{ComplexTensor, Tensor};

    /// Writes `values` as bindings with fixed header fields, to `file`.
    fn write_to<F: ArchiveFile>(
        file: &mut F,
        values: &[(&str, &Value)],
        storage: Storage,
    ) -> Written {
        let items: Vec<Planned<'_>> = values
            .iter()
            .map(|&(name, value)| Planned {
                section: Section::Bindings,
                name,
                value,
            })
            .collect();
        let header = HeaderFields {
            timestamp: 1_700_000_000,
            achronyme_version: *b"v0.1.0\0\0\0\0\0\0\0\0\0\0",
        };
        let meta = Metadata::default();
        write_archive(
            file,
            Path::new("test.ach"),
            (&items, &SharedPlan::new(&items)),
            &meta,
            &header,
            None,
            storage,
        )
        .unwrap()
    }

    fn file_bytes(mut f: std::fs::File) -> Vec<u8> {
        let mut out = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut out).unwrap();
        out
    }

    /// A file sink copies in the kernel, a memory sink by reading: both
    /// write what a write from the elements writes, and count the same.
    #[test]
    fn file_and_memory_sinks_copy_stored_blobs_into_the_same_bytes_as_a_full_write() {
        let zstd = Some(Settings {
            codec: Codec::Zstd,
            level: 3,
            filters: true,
        });
        let xxh3 = Checksum::Xxh3;
        for compression in [None, zstd] {
            let storage = Storage {
                compression,
                checksum: xxh3,
                reuse: true,
            };
            // Whole numbers: compressed by zstd, but to more than the
            // smallest blob worth copying (copy::COPY_MIN_SPAN).
            let rounded: Vec<f64> = testdata::normal(300_000, 5)
                .iter()
                .map(|x| (x * 100.0).round())
                .collect();
            let complex = Value::ComplexTensor(ComplexTensor::from_vec(
                rounded[..50_000]
                    .iter()
                    .map(|&re| crate::value::Complex::new(re, 1.0))
                    .collect(),
            ));
            let smooth = Value::Tensor(Tensor::from_vec(rounded));
            let noise = Value::Tensor(testdata::normal_tensor(300, 1000, 4));
            let text = Value::from("not a tensor");
            let values = [("a", &smooth), ("b", &noise), ("c", &complex), ("d", &text)];
            let mut first = tempfile::tempfile().unwrap();
            let full = write_to(&mut first, &values, storage);
            assert_eq!(full.counts.copied, 0);
            let source = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(source.path(), file_bytes(first)).unwrap();
            let full_bytes = std::fs::read(source.path()).unwrap();

            let archive = Archive::open(source.path()).unwrap();
            let loaded: Vec<Value> = ["a", "b", "c", "d"]
                .iter()
                .map(|n| archive.get(n).unwrap())
                .collect();
            let values: Vec<(&str, &Value)> =
                ["a", "b", "c", "d"].into_iter().zip(&loaded).collect();
            let mut file = tempfile::tempfile().unwrap();
            let by_kernel = write_to(&mut file, &values, storage);
            let mut memory = Cursor::new(Vec::new());
            let by_reading = write_to(&mut memory, &values, storage);

            let tensor_spans: u64 = ["a", "b", "c"]
                .iter()
                .map(|n| {
                    64 + archive
                        .binding_info(Section::Bindings, n)
                        .unwrap()
                        .stored_bytes
                })
                .sum();
            for (written, bytes) in [
                (by_kernel, file_bytes(file)),
                (by_reading, memory.into_inner()),
            ] {
                assert_eq!(bytes, full_bytes);
                assert_eq!(written.len, full.len);
                assert_eq!(written.counts.copied, tensor_spans);
                assert_eq!(written.counts.hashed + tensor_spans, full.counts.hashed);
                assert_eq!(written.counts.encoded, "not a tensor".len() as u64 + 9);
            }
        }
    }
}
