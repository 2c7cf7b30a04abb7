//! The reader: [`Archive`] opens an archive cheaply (header, table of
//! contents and its checksum, nothing else), answers `info` from the table
//! alone, loads one binding by touching only its blob, and verifies
//! everything on request.
//!
//! Every offset and length from the file is validated once, in
//! [`Archive::from_source`]; the accessors then trust the validated table.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use zerocopy::little_endian::U64;
use zerocopy::{FromBytes, IntoBytes};

use crate::encoding::{self, DecodeError};
use crate::error::{Error, Result};
use crate::hash;
use crate::layout::*;
use crate::metadata::{Metadata, iso8601};
use crate::source::{Bytes, MemorySource, Source};
use crate::value::{Buffer, ComplexTensor, Tensor, Value};

/// An open archive. Cheap to open; holds the mapping (or bytes) and the
/// validated table of contents.
///
/// ```
/// use achronyme_env::{Archive, Environment, SaveOptions, Tensor, Value, save_environment};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("w.ach");
/// let mut env = Environment::new();
/// env.set("t", Value::Tensor(Tensor::from_vec(vec![1.0, 2.0, 3.0])));
/// env.set("x", Value::Number(42.0));
/// save_environment(&env, &path, &SaveOptions::default()).unwrap();
///
/// let archive = Archive::open(&path).unwrap();
/// assert_eq!(archive.info().bindings, ["t", "x"]);
/// let Value::Tensor(t) = archive.get("t").unwrap() else { panic!() };
/// assert!(t.is_mapped()); // borrowed from the file, not copied
/// drop(archive);
/// assert_eq!(t.data(), &[1.0, 2.0, 3.0]); // the view keeps the mapping alive
/// ```
pub struct Archive {
    source: Arc<dyn Source>,
    header: RawHeader,
    toc: Bytes,
    trailer: RawTrailer,
    entry_count: usize,
    dims_start: usize,
    names_start: usize,
    names_len: usize,
    hashes_offset: u64,
    hash_count: u64,
    chunk: u64,
    metadata: Metadata,
}

/// What `env_info` reports (spec 3.1), plus per-binding details.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnvInfo {
    /// Format version, `"major.minor"`.
    pub version: String,
    /// Creation time, ISO 8601 UTC.
    pub created_at: String,
    /// Creation time, Unix seconds.
    pub created_timestamp: u64,
    /// Program that wrote the archive.
    pub created_by: String,
    /// Platform that wrote it.
    pub platform: String,
    /// Runtime version recorded in the header.
    pub achronyme_version: String,
    /// Bindings in the bindings section.
    pub num_bindings: u64,
    /// Bindings in the constants section.
    pub num_constants: u64,
    /// Bindings in the functions section.
    pub num_functions: u64,
    /// True when any blob is compressed.
    pub compressed: bool,
    /// File size in bytes.
    pub file_size: u64,
    /// Description, if any.
    pub description: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Custom metadata.
    pub custom: Vec<(String, String)>,
    /// Names in the bindings section, sorted.
    pub bindings: Vec<String>,
    /// Every entry, in table order (section, then name).
    pub entries: Vec<BindingInfo>,
}

/// One binding as the table of contents describes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BindingInfo {
    /// Name.
    pub name: String,
    /// Section.
    pub section: Section,
    /// Type name (`"Tensor"`, ...).
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// Shape (tensors only; empty otherwise).
    pub shape: Vec<u64>,
    /// Bytes as stored.
    pub stored_bytes: u64,
    /// Bytes once decoded.
    pub raw_bytes: u64,
    /// Codec.
    pub codec: Codec,
}

/// How to load a binding.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Check the blob's SHA-256 before decoding (default true).
    pub verify_checksum: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            verify_checksum: true,
        }
    }
}

/// What a full verification found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Bindings checked.
    pub bindings_checked: u64,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// Damaged bindings with the reason.
    pub damaged: Vec<Damage>,
    /// File offsets of padding that is not zero.
    pub nonzero_padding: Vec<u64>,
    /// False when the closing SHA-256 does not match.
    pub closing_checksum_ok: bool,
}

/// One damaged binding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Damage {
    /// Binding name.
    pub name: String,
    /// Section.
    pub section: Section,
    /// What is wrong.
    pub error: String,
}

impl VerifyReport {
    /// True when nothing is damaged.
    pub fn is_ok(&self) -> bool {
        self.damaged.is_empty() && self.nonzero_padding.is_empty() && self.closing_checksum_ok
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return write!(f, "archive is intact ({} bindings)", self.bindings_checked);
        }
        write!(f, "archive failed verification:")?;
        if !self.damaged.is_empty() {
            let names: Vec<&str> = self.damaged.iter().map(|d| d.name.as_str()).collect();
            write!(f, " damaged bindings: {}.", names.join(", "))?;
        }
        if let Some(off) = self.nonzero_padding.first() {
            write!(f, " padding is not zero at offset {off}.")?;
        }
        if !self.closing_checksum_ok {
            write!(f, " the closing SHA-256 does not match.")?;
        }
        write!(f, " Undamaged bindings can still be loaded one by one.")
    }
}

impl Archive {
    /// Opens the archive at `path` by mapping it (see
    /// [`MemorySource::map_file`] for what mapping requires).
    pub fn open(path: impl AsRef<Path>) -> Result<Archive> {
        Self::from_source(Arc::new(MemorySource::map_file(path.as_ref())?))
    }

    /// Opens the archive at `path` by reading it into memory instead of
    /// mapping it: for files on storage that may change while open.
    pub fn open_copied(path: impl AsRef<Path>) -> Result<Archive> {
        Self::from_source(Arc::new(MemorySource::read_file(path.as_ref())?))
    }

    /// Opens an archive held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Archive> {
        Self::from_source(Arc::new(MemorySource::from_vec(bytes)))
    }

    /// Opens an archive from any byte source; reads the header, the table of
    /// contents and the trailer, and validates them.
    pub fn from_source(source: Arc<dyn Source>) -> Result<Archive> {
        let file_len = source.len();
        let min_len = HEADER_LEN + TOC_HEADER_LEN + TRAILER_LEN;
        let first = source.read(0, file_len.min(HEADER_LEN)).expect("in range");
        let first = first.as_slice();
        let mut found = [0u8; 4];
        let n = first.len().min(4);
        found[..n].copy_from_slice(&first[..n]);
        if first.len() < 4 && MAGIC.starts_with(&found[..n]) && n > 0 || file_len == 0 {
            return Err(Error::Truncated {
                expected: min_len,
                found: file_len,
            });
        }
        if found != MAGIC {
            return Err(Error::NotAnArchive { found });
        }
        let header = RawHeader::read_from_bytes(first).map_err(|_| Error::Truncated {
            expected: min_len,
            found: file_len,
        })?;
        let major = header.version_major.get();
        if major > FORMAT_VERSION_MAJOR {
            return Err(Error::NewerVersion {
                found_major: major,
                found_minor: header.version_minor.get(),
                supported_major: FORMAT_VERSION_MAJOR,
            });
        }
        if major == 0 {
            return Err(Error::UnknownVersion { found: major });
        }
        let flags = header.flags.get();
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::UnknownFlags {
                flags: flags & !KNOWN_FLAGS,
            });
        }
        if header.reserved0 != [0; 3] || header.reserved1 != [0; 8] {
            return Err(Error::ReservedNotZero {
                field: "header",
                offset: 0,
            });
        }
        let toc_offset = header.toc_offset.get();
        let toc_len = header.toc_len.get();
        let expected = toc_offset
            .checked_add(toc_len)
            .and_then(|n| n.checked_add(TRAILER_LEN))
            .ok_or(Error::toc("table of contents location overflows", 0))?;
        if toc_offset < HEADER_LEN || toc_offset % ALIGN != 0 || toc_len < TOC_HEADER_LEN {
            return Err(Error::toc("table of contents location is invalid", 0));
        }
        if file_len < expected {
            return Err(Error::Truncated {
                expected,
                found: file_len,
            });
        }
        if file_len > expected {
            return Err(Error::TrailingBytes {
                expected,
                extra: file_len - expected,
            });
        }
        let toc = source.read(toc_offset, toc_len).expect("checked above");
        let trailer_bytes = source
            .read(toc_offset + toc_len, TRAILER_LEN)
            .expect("checked above");
        let trailer = RawTrailer::read_from_bytes(trailer_bytes.as_slice()).expect("64 bytes");
        if hash::sha256(&[header.as_bytes(), toc.as_slice()]) != trailer.toc_sha256 {
            return Err(Error::TocChecksum);
        }
        Self::validate(source, header, toc, trailer)
    }

    fn validate(
        source: Arc<dyn Source>,
        header: RawHeader,
        toc: Bytes,
        trailer: RawTrailer,
    ) -> Result<Archive> {
        let bytes = toc.as_slice();
        let (th, rest) = RawTocHeader::read_from_prefix(bytes)
            .map_err(|_| Error::toc("table of contents is shorter than its header", 0))?;
        if th.magic != TOC_MAGIC {
            return Err(Error::toc("table of contents magic is not \"TOC\\0\"", 0));
        }
        if th.entry_size.get() as u64 != ENTRY_LEN {
            return Err(Error::toc("entry size is not 56", 0));
        }
        if th.reserved != [0; 4] {
            return Err(Error::ReservedNotZero {
                field: "table of contents header",
                offset: header.toc_offset.get(),
            });
        }
        let log2 = th.hash_chunk_log2.get();
        if !(12..=30).contains(&log2) {
            return Err(Error::toc("hash chunk size is outside 4 KiB..1 GiB", 0));
        }
        let chunk = 1u64 << log2;
        let n = th.entry_count.get();
        let sizes = (|| {
            let entries = n.checked_mul(ENTRY_LEN)?;
            let dims = th.dims_count.get().checked_mul(8)?;
            let total = entries
                .checked_add(dims)?
                .checked_add(th.names_len.get())?
                .checked_add(th.meta_len.get())?;
            Some((entries, dims, total))
        })();
        let (entries_len, dims_len, total) =
            sizes.ok_or(Error::toc("section sizes overflow", 0))?;
        if total != rest.len() as u64 {
            return Err(Error::toc("section sizes do not add up to its length", 0));
        }
        // All four fit in `rest`, so they fit in usize.
        let entry_count = n as usize;
        let dims_start = TOC_HEADER_LEN as usize;
        let dims_off = dims_start + entries_len as usize;
        let names_start = dims_off + dims_len as usize;
        let names_len = th.names_len.get() as usize;
        let meta_start = names_start + names_len;
        let metadata = Metadata::decode(&bytes[meta_start..])
            .map_err(|reason| Error::InvalidMetadata { reason })?;

        let archive = Archive {
            source,
            header,
            toc,
            trailer,
            entry_count,
            dims_start: dims_off,
            names_start,
            names_len,
            hashes_offset: th.hashes_offset.get(),
            hash_count: th.hash_count.get(),
            chunk,
            metadata,
        };
        archive.validate_entries()?;
        Ok(archive)
    }

    fn validate_entries(&self) -> Result<()> {
        let names = self.names_pool();
        let dims = self.dims_pool();
        let mut next_name = 0u64;
        let mut next_dim = 0u64;
        let mut next_blob = HEADER_LEN;
        let mut next_hash = 0u64;
        let mut prev: Option<(u8, &[u8])> = None;
        for (i, e) in self.entries().iter().enumerate() {
            let bad = |reason| Error::toc(reason, i as u64);
            if e.reserved != [0; 4] {
                return Err(bad("reserved bytes are not zero"));
            }
            // Names are stored back to back in table order.
            let (off, len) = (e.name_offset.get() as u64, e.name_len.get() as u64);
            if off != next_name {
                return Err(bad("name is not where the previous one ended"));
            }
            next_name = off + len;
            let name = names
                .get(off as usize..next_name as usize)
                .ok_or(bad("name lies outside the name pool"))?;
            if name.is_empty() || name.len() > MAX_NAME_LEN {
                return Err(bad("name is empty or longer than 4096 bytes"));
            }
            if std::str::from_utf8(name).is_err() || name.contains(&0) {
                return Err(bad("name is not UTF-8 without NUL"));
            }
            if Section::from_u8(e.section).is_none() {
                return Err(bad("unknown section"));
            }
            if prev.is_some_and(|p| p >= (e.section, name)) {
                return Err(bad(
                    "entries are not sorted by (section, name), or repeat a name",
                ));
            }
            prev = Some((e.section, name));
            let tag = Tag::from_u8(e.tag).ok_or(bad("unknown type tag"))?;
            let codec = Codec::from_u8(e.codec).ok_or(bad("unknown codec"))?;
            if e.filter != 0 {
                return Err(bad("unknown filter"));
            }
            if codec == Codec::None && e.stored_len.get() != e.raw_len.get() {
                return Err(bad("uncompressed blob with stored length != raw length"));
            }
            // Shapes are stored back to back too; only tensors have one.
            let ndim = e.ndim.get();
            if e.dims_index.get() as u64 != next_dim {
                return Err(bad("shape is not where the previous one ended"));
            }
            next_dim += ndim as u64;
            match tag.element_size() {
                Some(size) => {
                    if ndim > MAX_NDIM {
                        return Err(bad("tensor has more than 64 dimensions"));
                    }
                    let shape = dims
                        .get(e.dims_index.get() as usize..next_dim as usize)
                        .ok_or(bad("shape lies outside the dimension pool"))?;
                    let bytes = shape
                        .iter()
                        .try_fold(size, |acc, d| {
                            usize::try_from(d.get()).ok()?;
                            acc.checked_mul(d.get())
                        })
                        .ok_or(bad("tensor shape overflows"))?;
                    if bytes != e.raw_len.get() {
                        return Err(bad("tensor shape does not match its length"));
                    }
                }
                None if ndim != 0 => return Err(bad("only tensors have a shape")),
                None => {}
            }
            // Blobs follow one another, each on the next 64-byte boundary.
            if e.blob_offset.get() != next_blob {
                return Err(bad("blob is not where the previous one ended"));
            }
            let end = tag
                .payload_start()
                .checked_add(e.stored_len.get())
                .and_then(|span| next_blob.checked_add(span))
                .ok_or(bad("blob length overflows"))?;
            let count = hash::chunk_count(end - next_blob, self.chunk);
            next_blob = align_up(end).ok_or(bad("blob length overflows"))?;
            if e.hash_index.get() as u64 != next_hash || e.hash_count.get() as u64 != count {
                return Err(bad("chunk digests do not match the blob's length"));
            }
            next_hash += count;
        }
        let end = self.entry_count as u64;
        if next_name != self.names_len as u64
            || next_dim * 8 != (self.names_start - self.dims_start) as u64
        {
            return Err(Error::toc("name or dimension pool has unused bytes", end));
        }
        if next_blob != self.hashes_offset || next_hash != self.hash_count {
            return Err(Error::toc(
                "hash pool is not right after the last blob",
                end,
            ));
        }
        let pool_end = self
            .hash_count
            .checked_mul(DIGEST_LEN as u64)
            .and_then(|n| n.checked_add(self.hashes_offset))
            .and_then(align_up);
        if pool_end != Some(self.header.toc_offset.get()) {
            return Err(Error::toc(
                "table of contents is not right after the hash pool",
                end,
            ));
        }
        Ok(())
    }

    /// The entries, in table order.
    fn entries(&self) -> &[RawEntry] {
        let b = &self.toc.as_slice()[TOC_HEADER_LEN as usize..self.dims_start];
        <[RawEntry]>::ref_from_bytes(b).expect("length is a multiple of 56; alignment 1")
    }

    fn dims_pool(&self) -> &[U64] {
        let b = &self.toc.as_slice()[self.dims_start..self.names_start];
        <[U64]>::ref_from_bytes(b).expect("length is a multiple of 8; alignment 1")
    }

    fn names_pool(&self) -> &[u8] {
        &self.toc.as_slice()[self.names_start..self.names_start + self.names_len]
    }

    fn name_of(&self, e: &RawEntry) -> &str {
        let start = e.name_offset.get() as usize;
        let end = start + e.name_len.get() as usize;
        // Validated UTF-8 at open; the fallback is unreachable.
        self.names_pool()
            .get(start..end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    fn shape_of(&self, e: &RawEntry) -> &[U64] {
        let start = e.dims_index.get() as usize;
        self.dims_pool()
            .get(start..start + e.ndim.get() as usize)
            .unwrap_or(&[])
    }

    fn find(&self, section: Section, name: &str) -> Option<&RawEntry> {
        let entries = self.entries();
        entries
            .binary_search_by(|e| {
                e.section
                    .cmp(&(section as u8))
                    .then_with(|| self.name_of(e).as_bytes().cmp(name.as_bytes()))
            })
            .ok()
            .map(|i| &entries[i])
    }

    /// Number of entries in all sections.
    pub fn len(&self) -> usize {
        self.entry_count
    }

    /// True when the archive holds no bindings.
    pub fn is_empty(&self) -> bool {
        self.entry_count == 0
    }

    /// The archive's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Runtime version recorded by the writer.
    pub fn achronyme_version(&self) -> String {
        let v = &self.header.achronyme_version;
        let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
        String::from_utf8_lossy(&v[..end]).into_owned()
    }

    /// Format version as `(major, minor)`.
    pub fn format_version(&self) -> (u16, u16) {
        (
            self.header.version_major.get(),
            self.header.version_minor.get(),
        )
    }

    /// Names in `section`, in sorted order.
    pub fn names(&self, section: Section) -> impl Iterator<Item = &str> {
        self.entries()
            .iter()
            .filter(move |e| e.section == section as u8)
            .map(|e| self.name_of(e))
    }

    /// True when `section` holds `name`.
    pub fn contains(&self, section: Section, name: &str) -> bool {
        self.find(section, name).is_some()
    }

    /// Describes the archive from its header and table of contents alone.
    pub fn info(&self) -> EnvInfo {
        let mut counts = [0u64; 3];
        let mut compressed = false;
        let entries: Vec<BindingInfo> = self
            .entries()
            .iter()
            .map(|e| {
                let section = Section::from_u8(e.section).expect("validated");
                counts[section as usize] += 1;
                let codec = Codec::from_u8(e.codec).expect("validated");
                compressed |= codec != Codec::None;
                BindingInfo {
                    name: self.name_of(e).to_string(),
                    section,
                    type_name: Tag::from_u8(e.tag).expect("validated").name(),
                    shape: self.shape_of(e).iter().map(|d| d.get()).collect(),
                    stored_bytes: e.stored_len.get(),
                    raw_bytes: e.raw_len.get(),
                    codec,
                }
            })
            .collect();
        let ts = self.header.created_timestamp.get();
        EnvInfo {
            version: format!(
                "{}.{}",
                self.header.version_major, self.header.version_minor
            ),
            created_at: iso8601(ts),
            created_timestamp: ts,
            created_by: self.metadata.created_by.clone(),
            platform: self.metadata.platform.clone(),
            achronyme_version: self.achronyme_version(),
            num_bindings: counts[0],
            num_constants: counts[1],
            num_functions: counts[2],
            compressed,
            file_size: self.source.len(),
            description: self.metadata.description.clone(),
            tags: self.metadata.tags.clone(),
            custom: self.metadata.custom.clone(),
            bindings: entries
                .iter()
                .filter(|b| b.section == Section::Bindings)
                .map(|b| b.name.clone())
                .collect(),
            entries,
        }
    }

    /// Loads the binding `name` (bindings section), checking its checksum.
    pub fn get(&self, name: &str) -> Result<Value> {
        self.get_with(Section::Bindings, name, LoadOptions::default())
    }

    /// Loads `name` from `section` with explicit options.
    pub fn get_with(&self, section: Section, name: &str, opts: LoadOptions) -> Result<Value> {
        let e = self
            .find(section, name)
            .ok_or_else(|| Error::NoSuchBinding {
                name: name.to_string(),
                suggestion: crate::suggest::closest(name, self.names(section)),
            })?;
        self.load(e, opts.verify_checksum)
    }

    fn blob(&self, e: &RawEntry) -> Result<(Tag, Bytes)> {
        let tag = Tag::from_u8(e.tag).expect("validated");
        let span = tag.payload_start() + e.stored_len.get();
        let blob = self
            .source
            .read(e.blob_offset.get(), span)
            .ok_or_else(|| Error::toc("blob lies outside the file", 0))?;
        Ok((tag, blob))
    }

    fn check_digests(&self, e: &RawEntry, blob: &[u8]) -> Result<()> {
        let found = hash::chunk_digests(&[], blob, self.chunk as usize);
        let expected = self
            .source
            .read(
                self.hashes_offset + e.hash_index.get() as u64 * DIGEST_LEN as u64,
                e.hash_count.get() as u64 * DIGEST_LEN as u64,
            )
            .ok_or_else(|| Error::toc("digests lie outside the file", 0))?;
        let expected = expected.as_slice().chunks_exact(DIGEST_LEN);
        for (k, (f, x)) in found.iter().zip(expected).enumerate() {
            if f.as_slice() != x {
                return Err(Error::ChecksumMismatch {
                    name: self.name_of(e).to_string(),
                    chunk: k as u64,
                    offset: e.blob_offset.get() + k as u64 * self.chunk,
                });
            }
        }
        Ok(())
    }

    fn load(&self, e: &RawEntry, verify: bool) -> Result<Value> {
        let name = self.name_of(e);
        let (tag, blob) = self.blob(e)?;
        if verify {
            self.check_digests(e, blob.as_slice())?;
        }
        self.check_frame(e, tag, blob.as_slice())?;
        let codec = Codec::from_u8(e.codec).expect("validated");
        if codec != Codec::None {
            return Err(Error::UnsupportedCodec {
                name: name.to_string(),
                codec: e.codec,
            });
        }
        let start = tag.payload_start();
        let payload = blob
            .slice(start, e.stored_len.get())
            .expect("blob spans the payload");
        let shape =
            || -> Vec<usize> { self.shape_of(e).iter().map(|d| d.get() as usize).collect() };
        let invalid = |reason: &str| Error::InvalidValue {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        match tag {
            Tag::Tensor => {
                let data = Buffer::from_bytes(payload.clone()).unwrap_or_else(|| {
                    Buffer::from_vec(bytemuck::pod_collect_to_vec(payload.as_slice()))
                });
                Tensor::from_buffer(shape(), data)
                    .map(Value::Tensor)
                    .map_err(|_| invalid("shape"))
            }
            Tag::ComplexTensor => {
                let data = Buffer::from_bytes(payload.clone()).unwrap_or_else(|| {
                    Buffer::from_vec(bytemuck::pod_collect_to_vec(payload.as_slice()))
                });
                ComplexTensor::from_buffer(shape(), data)
                    .map(Value::ComplexTensor)
                    .map_err(|_| invalid("shape"))
            }
            _ => {
                let v = encoding::decode_exact(payload.as_slice()).map_err(|err| match err {
                    DecodeError::TooDeep => Error::TooDeep {
                        name: name.to_string(),
                        limit: MAX_DEPTH,
                    },
                    DecodeError::Invalid(reason) => invalid(reason),
                })?;
                if Tag::of(&v) != tag {
                    return Err(invalid("value's type differs from its table entry"));
                }
                Ok(v)
            }
        }
    }

    fn check_frame(&self, e: &RawEntry, tag: Tag, blob: &[u8]) -> Result<()> {
        let bad = |reason| Error::InvalidFrame {
            name: self.name_of(e).to_string(),
            offset: e.blob_offset.get(),
            reason,
        };
        let (frame, rest) =
            RawFrame::read_from_prefix(blob).map_err(|_| bad("blob is too short"))?;
        if frame.magic != FRAME_MAGIC {
            return Err(bad("frame magic is not \"BL\""));
        }
        if frame.tag != e.tag || frame.codec != e.codec || frame.filter != e.filter {
            return Err(bad("frame disagrees with the table of contents"));
        }
        if frame.stored_len.get() != e.stored_len.get() {
            return Err(bad("frame length disagrees with the table of contents"));
        }
        let pad = (tag.payload_start() - FRAME_LEN) as usize;
        if frame.reserved != [0; 3] || rest.get(..pad).is_none_or(|p| p.iter().any(|&b| b != 0)) {
            return Err(bad("frame padding is not zero"));
        }
        Ok(())
    }

    /// Checks everything: every blob's digests, frames and encodings, zero
    /// padding, and the closing SHA-256. Returns the report when intact and
    /// [`Error::VerificationFailed`] with it otherwise.
    pub fn verify(&self) -> Result<VerifyReport> {
        let report = self.verify_report();
        if report.is_ok() {
            Ok(report)
        } else {
            Err(Error::VerificationFailed(Box::new(report)))
        }
    }

    /// Like [`Archive::verify`], but always returns the report.
    pub fn verify_report(&self) -> VerifyReport {
        let mut report = VerifyReport::default();
        let mut pad_start = HEADER_LEN;
        for e in self.entries() {
            self.check_zero(pad_start, e.blob_offset.get(), &mut report);
            report.bindings_checked += 1;
            let outcome = self.blob(e).and_then(|(tag, blob)| {
                report.bytes_hashed += blob.len() as u64;
                pad_start = e.blob_offset.get() + blob.len() as u64;
                self.check_digests(e, blob.as_slice())?;
                match tag.element_size() {
                    // Tensors are fully checked by their digests and frame.
                    Some(_) => self.check_frame(e, tag, blob.as_slice()),
                    None => self.load(e, false).map(drop),
                }
            });
            if let Err(err) = outcome {
                report.damaged.push(Damage {
                    name: self.name_of(e).to_string(),
                    section: Section::from_u8(e.section).expect("validated"),
                    error: err.to_string(),
                });
            }
        }
        let pool_len = self.hash_count * DIGEST_LEN as u64;
        self.check_zero(pad_start, self.hashes_offset, &mut report);
        self.check_zero(
            self.hashes_offset + pool_len,
            self.header.toc_offset.get(),
            &mut report,
        );
        let pool = self
            .source
            .read(self.hashes_offset, pool_len)
            .expect("validated");
        report.closing_checksum_ok = hash::sha256(&[&self.trailer.toc_sha256, pool.as_slice()])
            == self.trailer.closing_sha256;
        report
    }

    fn check_zero(&self, start: u64, end: u64, report: &mut VerifyReport) {
        let len = end.saturating_sub(start);
        match self.source.read(start, len) {
            Some(b) => {
                if let Some(i) = b.as_slice().iter().position(|&x| x != 0) {
                    report.nonzero_padding.push(start + i as u64);
                }
            }
            None => report.nonzero_padding.push(start),
        }
    }

    /// Bytes of the table of contents (for tools that inspect the format).
    pub fn toc_len(&self) -> u64 {
        self.toc.len() as u64
    }

    /// The first byte offset of `name`'s blob and its length on disk.
    pub fn blob_range(&self, section: Section, name: &str) -> Option<(u64, u64)> {
        let e = self.find(section, name)?;
        let tag = Tag::from_u8(e.tag)?;
        Some((
            e.blob_offset.get(),
            tag.payload_start() + e.stored_len.get(),
        ))
    }
}

impl fmt::Debug for Archive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Archive")
            .field("len", &self.entry_count)
            .field("file_size", &self.source.len())
            .finish()
    }
}
