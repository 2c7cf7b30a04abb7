//! The bytes on disk, section by section as in `layout.md`: header, blob
//! frame, hash pool, table of contents, trailer. All integers little-endian.
//!
//! The structs here are read in place from the mapped file with zerocopy
//! (unaligned little-endian integer types, so no cast can be misaligned).

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Magic bytes at offset 0.
pub const MAGIC: [u8; 4] = *b"ACH\0";
/// Format major version written and read by this build.
pub const FORMAT_VERSION_MAJOR: u16 = 1;
/// Format minor version written by this build for archives with no
/// compressed blob: byte for byte what a 1.0 reader reads.
pub const FORMAT_VERSION_MINOR: u16 = 0;
/// Format minor version of archives with compressed blobs (1.1 adds
/// compressed payloads, layout.md section 3.4).
pub const FORMAT_VERSION_MINOR_COMPRESSED: u16 = 1;
/// Format minor version of archives whose chunk digests are not SHA-256
/// (1.2 adds the checksum byte of the table of contents header, layout.md
/// 4.3).
pub const FORMAT_VERSION_MINOR_CHECKSUM: u16 = 2;
/// Format minor version of archives whose table of contents ends with a
/// page index (1.3, layout.md 6.8): every archive this build writes.
pub const FORMAT_VERSION_MINOR_PAGED: u16 = 3;
/// Bytes per page of the table of contents, as log2 (4 KiB): the unit in
/// which an open or a lookup checks the table (layout.md 6.8).
pub const TOC_PAGE_LOG2: u8 = 12;
/// The page sizes a reader accepts, as log2 (4 KiB to 1 MiB).
pub const TOC_PAGE_LOG2_RANGE: std::ops::RangeInclusive<u8> = 12..=20;
/// The alignment of a tensor's elements in the table's value pool (format
/// 1.4, layout.md 6.9): the pool starts on a multiple of 8 in the file, so
/// a loaded tensor can be a view of the mapped table.
pub const INLINE_TENSOR_ALIGN: u64 = 8;
/// Magic of the page index.
pub const PAGE_INDEX_MAGIC: [u8; 4] = *b"PGX\0";
/// Bytes of the page index's fixed head.
pub const PAGE_INDEX_HEAD_LEN: u64 = 64;
/// Format minor version of archives that may store a tensor once for
/// several places (1.3 adds the storage section, blob references and
/// shared blobs, layout.md 3.6, with the page index).
pub const FORMAT_VERSION_MINOR_SHARED: u16 = FORMAT_VERSION_MINOR_PAGED;
/// Format minor version of archives whose table of contents may hold small
/// values itself, in its value pool (1.4, layout.md 6.9): every archive
/// this build writes.
pub const FORMAT_VERSION_MINOR_INLINE: u16 = 4;
/// Format minor version of archives whose table of contents stores its
/// entries in the compact 40-byte form (1.5, layout.md 6.2,
/// [`CompactEntry`]): every archive this build writes.
pub const FORMAT_VERSION_MINOR_COMPACT: u16 = 5;
/// The section byte of the storage section (format 1.3): anonymous tensor
/// blobs that only values refer to. Not a [`Section`]: its entries are not
/// bindings, and no listing of bindings shows them.
pub const SECTION_STORAGE: u8 = 3;
/// The value tag of a blob reference (format 1.3): a `u64` entry index
/// whose tensor blob stands for the value (layout.md 5.1).
pub const TAG_BLOB_REF: u8 = 0x0C;
/// Bytes of a storage entry's name: the entry's ordinal in the storage
/// section, as fixed-width lowercase hexadecimal (so that names sort in
/// ordinal order, as the table's order rule wants).
pub const STORAGE_NAME_LEN: usize = 16;
/// Every blob, the hash pool and the table of contents start on a multiple of
/// this many bytes.
pub const ALIGN: u64 = 64;
/// Bytes per hashed chunk of a blob, as log2 (1 MiB).
pub const HASH_CHUNK_LOG2: u32 = 20;
/// Bytes per hashed chunk of the table of contents, as log2 (64 KiB). Fixed
/// by the format, independent of the blobs' chunk size; small enough that a
/// large table's chunks spread evenly over the cores at open.
pub const TOC_CHUNK_LOG2: u32 = 16;
/// Size of one SHA-256 digest (the trailer's; a chunk digest's size
/// depends on the archive's checksum, `hash::Checksum::len`).
pub const DIGEST_LEN: usize = 32;
/// Most dimensions a tensor may have.
pub const MAX_NDIM: u32 = 64;
/// Longest binding name, in bytes.
pub const MAX_NAME_LEN: usize = 4096;

/// Header flag: description, tags or custom metadata present.
pub const FLAG_EXTENDED_METADATA: u32 = 1 << 0;
/// Header flag: user-defined functions present (never set by v1).
pub const FLAG_USER_FUNCTIONS: u32 = 1 << 1;
/// Header flag: the constants section is non-empty.
pub const FLAG_CONSTANTS: u32 = 1 << 2;
/// Header flag: at least one blob is compressed.
pub const FLAG_COMPRESSED: u32 = 1 << 3;
/// Flags this reader understands.
/// `FLAG_USER_FUNCTIONS` is not among them: v1 readers cannot load user
/// functions, so an archive that holds them asks for a newer reader.
pub const KNOWN_FLAGS: u32 = FLAG_EXTENDED_METADATA | FLAG_CONSTANTS | FLAG_COMPRESSED;
/// The smallest valid archive: header, table-of-contents header, the
/// smallest metadata block (two empty strings, no description, no tags, no
/// custom entries: 17 bytes) and the trailer.
pub const MIN_ARCHIVE_LEN: u64 = 64 + 64 + 17 + 64;

/// The fixed 64-byte header at offset 0.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawHeader {
    /// `ACH\0`.
    pub magic: [u8; 4],
    /// Format major version.
    pub version_major: U16,
    /// Format minor version.
    pub version_minor: U16,
    /// Feature flags (`FLAG_*`).
    pub flags: U32,
    /// Default codec of the archive (a [`Codec`] byte).
    pub default_codec: u8,
    /// Zero.
    pub reserved0: [u8; 3],
    /// Creation time, Unix seconds.
    pub created_timestamp: U64,
    /// Runtime version, UTF-8, NUL-padded.
    pub achronyme_version: [u8; 16],
    /// File offset of the table of contents.
    pub toc_offset: U64,
    /// Length of the table of contents in bytes.
    pub toc_len: U64,
    /// Bytes of the table of contents' value pool (format 1.4, layout.md
    /// 6.9): the small values stored in the table itself. Zero in every
    /// archive before 1.4, whose readers require it.
    pub values_len: U64,
}

/// The 64-byte header of the table of contents.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawTocHeader {
    /// `TOC\0`.
    pub magic: [u8; 4],
    /// Size of one entry: 56 ([`RawEntry`], formats 1.0 to 1.4) or 40
    /// ([`CompactEntry`], format 1.5).
    pub entry_size: U32,
    /// Number of entries.
    pub entry_count: U64,
    /// Number of u64 values in the dimension pool.
    pub dims_count: U64,
    /// Bytes in the name pool.
    pub names_len: U64,
    /// Bytes in the metadata block.
    pub meta_len: U64,
    /// File offset of the hash pool.
    pub hashes_offset: U64,
    /// Number of digests in the hash pool.
    pub hash_count: U64,
    /// log2 of the hash chunk size.
    pub hash_chunk_log2: U32,
    /// log2 of the raw bytes per chunk of a compressed payload; 0 when no
    /// blob is compressed.
    pub codec_chunk_log2: u8,
    /// Algorithm of the chunk digests (`hash::Checksum`): 0 SHA-256 (every
    /// archive before format 1.2), 1 XXH3-128.
    pub checksum: u8,
    /// log2 of the table's page size when the table ends with a page index
    /// (format 1.3, layout.md 6.8); 0 without one.
    pub page_log2: u8,
    /// Zero.
    pub reserved: u8,
}

/// The fixed head of the page index (64 bytes, layout.md 6.8): what an
/// archive's summary needs without reading its entries.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawPageIndexHead {
    /// `PGX\0`.
    pub magic: [u8; 4],
    /// Zero.
    pub reserved0: [u8; 4],
    /// Entries per section: bindings, constants, functions, storage
    /// (section byte 3).
    pub counts: [U64; 4],
    /// Entries whose blob is compressed.
    pub compressed_blobs: U64,
    /// Stored bytes of the storage section's blobs.
    pub storage_bytes: U64,
    /// Entries that share an earlier entry's blob.
    pub shared_entries: U64,
}

/// Magic of the table of contents.
pub const TOC_MAGIC: [u8; 4] = *b"TOC\0";

/// One table-of-contents entry (56 bytes), one per binding: the form of
/// formats 1.0 to 1.4, and the form the reader and writer work with in
/// memory (a [`CompactEntry`] widens to one).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawEntry {
    /// Offset of the name in the name pool.
    pub name_offset: U32,
    /// Length of the name in bytes.
    pub name_len: U32,
    /// File offset of the blob (a multiple of 64); for an inline entry
    /// (`hash_count` 0, format 1.4), the value's offset in the table's
    /// value pool.
    pub blob_offset: U64,
    /// Payload bytes as stored.
    pub stored_len: U64,
    /// Payload bytes once decoded.
    pub raw_len: U64,
    /// Index of the first dimension in the dimension pool.
    pub dims_index: U32,
    /// Number of dimensions (tensors only; 0 otherwise).
    pub ndim: U32,
    /// Index of the first digest of this blob in the hash pool.
    pub hash_index: U32,
    /// Number of digests (chunks) of this blob; 0 for an inline entry,
    /// whose value lies in the table's value pool (format 1.4).
    pub hash_count: U32,
    /// Value tag.
    pub tag: u8,
    /// Section.
    pub section: u8,
    /// Codec.
    pub codec: u8,
    /// Filter applied before the codec.
    pub filter: u8,
    /// Zero.
    pub reserved: [u8; 4],
}

impl RawEntry {
    /// Whether the entry's value lies in the table's value pool (format
    /// 1.4, layout.md 6.9) rather than in a blob: it has no digests.
    pub fn is_inline(&self) -> bool {
        self.hash_count.get() == 0
    }

    /// Reads the entry at the start of `bytes`, stored in the form whose
    /// size is `entry_size` (56 or 40, the table header's field); `None`
    /// when `bytes` is shorter or the size is neither.
    pub fn read(bytes: &[u8], entry_size: u64) -> Option<RawEntry> {
        match entry_size {
            ENTRY_LEN => RawEntry::read_from_prefix(bytes).ok().map(|(e, _)| e),
            ENTRY_LEN_COMPACT => CompactEntry::read_from_prefix(bytes)
                .ok()
                .map(|(e, _)| e.widen()),
            _ => None,
        }
    }
}

/// The 16-byte frame at the start of every blob.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawFrame {
    /// `BL`.
    pub magic: [u8; 2],
    /// Value tag (same as the entry's).
    pub tag: u8,
    /// Codec (same as the entry's).
    pub codec: u8,
    /// Filter (same as the entry's).
    pub filter: u8,
    /// Zero.
    pub reserved: [u8; 3],
    /// Payload bytes as stored (same as the entry's).
    pub stored_len: U64,
}

/// One record of a compressed payload's chunk table (16 bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawChunk {
    /// Bytes of this chunk as stored.
    pub stored_len: U64,
    /// Codec of this chunk: the blob's codec, or 0 (stored raw).
    pub codec: u8,
    /// Filter applied before the codec (0 when stored raw).
    pub filter: u8,
    /// Zero.
    pub reserved: [u8; 6],
}

/// Magic of a blob frame.
pub const FRAME_MAGIC: [u8; 2] = *b"BL";

/// The 64-byte trailer that closes the file.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawTrailer {
    /// SHA-256 of the header followed by the SHA-256 of each 64 KiB chunk of
    /// the table of contents (see `layout.md`).
    pub toc_sha256: [u8; 32],
    /// SHA-256 of `toc_sha256` followed by the hash pool: with the per-chunk
    /// digests it covers every byte of the file but zero padding.
    pub closing_sha256: [u8; 32],
}

/// One table-of-contents entry in the compact form of format 1.5 (40
/// bytes, layout.md 6.2): the fields of a [`RawEntry`] without its filter
/// and reserved bytes, with the name length and the number of dimensions
/// in the widths their limits need (4096, 64), and the offset and lengths
/// in 48 bits (256 TiB).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct CompactEntry {
    /// Offset of the name in the name pool.
    pub name_offset: U32,
    /// Length of the name in bytes.
    pub name_len: U16,
    /// Value tag.
    pub tag: u8,
    /// Section.
    pub section: u8,
    /// Codec.
    pub codec: u8,
    /// Number of dimensions (tensors only; 0 otherwise).
    pub ndim: u8,
    /// File offset of the blob, or an inline value's offset in the value
    /// pool (48-bit little-endian).
    pub blob_offset: [u8; 6],
    /// Payload bytes as stored (48-bit little-endian).
    pub stored_len: [u8; 6],
    /// Payload bytes once decoded (48-bit little-endian).
    pub raw_len: [u8; 6],
    /// Index of the first dimension in the dimension pool.
    pub dims_index: U32,
    /// Index of the first digest of this blob in the hash pool.
    pub hash_index: U32,
    /// Number of digests; 0 for an inline entry.
    pub hash_count: U32,
}

/// The largest offset or length a [`CompactEntry`] holds: 2^48 − 1.
pub const COMPACT_MAX: u64 = (1 << 48) - 1;

impl CompactEntry {
    /// The entry in its full form (filter and reserved bytes zero).
    pub fn widen(&self) -> RawEntry {
        let u48 = |b: [u8; 6]| {
            let mut w = [0u8; 8];
            w[..6].copy_from_slice(&b);
            u64::from_le_bytes(w)
        };
        RawEntry {
            name_offset: self.name_offset,
            name_len: u32::from(self.name_len.get()).into(),
            blob_offset: u48(self.blob_offset).into(),
            stored_len: u48(self.stored_len).into(),
            raw_len: u48(self.raw_len).into(),
            dims_index: self.dims_index,
            ndim: u32::from(self.ndim).into(),
            hash_index: self.hash_index,
            hash_count: self.hash_count,
            tag: self.tag,
            section: self.section,
            codec: self.codec,
            filter: 0,
            reserved: [0; 4],
        }
    }

    /// `e` in the compact form, or `None` when a field does not fit it
    /// (a name over 65,535 bytes, over 255 dimensions, an offset or length
    /// over [`COMPACT_MAX`]) or `e` has a filter or reserved bytes set, so
    /// that widening gives `e` back exactly.
    pub fn narrow(e: &RawEntry) -> Option<CompactEntry> {
        let u48 = |v: u64| -> Option<[u8; 6]> {
            (v <= COMPACT_MAX).then(|| v.to_le_bytes()[..6].try_into().expect("6 of 8 bytes"))
        };
        if e.filter != 0 || e.reserved != [0; 4] {
            return None;
        }
        Some(CompactEntry {
            name_offset: e.name_offset,
            name_len: u16::try_from(e.name_len.get()).ok()?.into(),
            tag: e.tag,
            section: e.section,
            codec: e.codec,
            ndim: u8::try_from(e.ndim.get()).ok()?,
            blob_offset: u48(e.blob_offset.get())?,
            stored_len: u48(e.stored_len.get())?,
            raw_len: u48(e.raw_len.get())?,
            dims_index: e.dims_index,
            hash_index: e.hash_index,
            hash_count: e.hash_count,
        })
    }
}

const _: () = assert!(size_of::<RawHeader>() == 64);
const _: () = assert!(size_of::<RawTocHeader>() == 64);
const _: () = assert!(size_of::<RawEntry>() == 56);
const _: () = assert!(size_of::<CompactEntry>() as u64 == ENTRY_LEN_COMPACT);
const _: () = assert!(size_of::<RawFrame>() == 16);
const _: () = assert!(size_of::<RawTrailer>() == 64);
const _: () = assert!(size_of::<RawPageIndexHead>() as u64 == PAGE_INDEX_HEAD_LEN);
const _: () = assert!(size_of::<RawChunk>() == 16);

/// Header size.
pub const HEADER_LEN: u64 = 64;
/// Table-of-contents header size.
pub const TOC_HEADER_LEN: u64 = 64;
/// Size of a [`RawEntry`], the entry of formats 1.0 to 1.4.
pub const ENTRY_LEN: u64 = 56;
/// Size of a [`CompactEntry`], the entry of format 1.5.
pub const ENTRY_LEN_COMPACT: u64 = 40;
/// Frame size.
pub const FRAME_LEN: u64 = 16;
/// Trailer size.
pub const TRAILER_LEN: u64 = 64;

/// Rounds `n` up to a multiple of [`ALIGN`]; `None` on overflow.
pub fn align_up(n: u64) -> Option<u64> {
    Some(n.checked_add(ALIGN - 1)? & !(ALIGN - 1))
}

/// The type tag of a value (spec 2.5, plus `Null`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// Null.
    Null = 0x00,
    /// f64.
    Number = 0x01,
    /// Boolean.
    Boolean = 0x02,
    /// UTF-8 string.
    String = 0x03,
    /// Complex number.
    Complex = 0x04,
    /// Heterogeneous vector.
    Vector = 0x05,
    /// f64 tensor.
    Tensor = 0x06,
    /// Complex tensor.
    ComplexTensor = 0x07,
    /// Record.
    Record = 0x08,
    /// Function (builtin by name).
    Function = 0x09,
    /// Graph edge.
    Edge = 0x0A,
    /// Mutable reference.
    MutableRef = 0x0B,
}

impl Tag {
    /// The tag for a byte, if it is one.
    pub fn from_u8(b: u8) -> Option<Tag> {
        use Tag::*;
        Some(match b {
            0x00 => Null,
            0x01 => Number,
            0x02 => Boolean,
            0x03 => String,
            0x04 => Complex,
            0x05 => Vector,
            0x06 => Tensor,
            0x07 => ComplexTensor,
            0x08 => Record,
            0x09 => Function,
            0x0A => Edge,
            0x0B => MutableRef,
            _ => return None,
        })
    }

    /// The type's name as users see it.
    pub fn name(self) -> &'static str {
        match self {
            Tag::Null => "Null",
            Tag::Number => "Number",
            Tag::Boolean => "Boolean",
            Tag::String => "String",
            Tag::Complex => "Complex",
            Tag::Vector => "Vector",
            Tag::Tensor => "Tensor",
            Tag::ComplexTensor => "ComplexTensor",
            Tag::Record => "Record",
            Tag::Function => "Function",
            Tag::Edge => "Edge",
            Tag::MutableRef => "MutableRef",
        }
    }

    /// Bytes per element for tensor tags.
    pub fn element_size(self) -> Option<u64> {
        match self {
            Tag::Tensor => Some(8),
            Tag::ComplexTensor => Some(16),
            _ => None,
        }
    }

    /// Where the payload starts inside a blob: tensors start on the next
    /// 64-byte boundary after the frame so their elements can be borrowed
    /// aligned; other values follow the frame directly.
    pub fn payload_start(self) -> u64 {
        if self.element_size().is_some() {
            ALIGN
        } else {
            FRAME_LEN
        }
    }
}

// The section byte of an entry (6.3) is the value model's `Section`.
pub use crate::value::Section;

/// How a blob's payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Codec {
    /// Stored as is (mappable).
    None = 0,
    /// Zstandard (format 1.1).
    Zstd = 1,
    /// LZ4 block format (format 1.1).
    Lz4 = 2,
}

impl Codec {
    /// The codec for a byte, if it is one.
    pub fn from_u8(b: u8) -> Option<Codec> {
        match b {
            0 => Some(Codec::None),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Lz4),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
        }
    }
}
