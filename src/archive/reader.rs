//! The reader: [`Archive`] opens an archive cheaply (header, table of
//! contents and its checksum, nothing else), answers `info` from the table
//! alone, loads one binding by touching only its blob, and verifies
//! everything on request.
//!
//! Every offset and length from the file is validated once, in
//! [`Archive::from_source`]; the accessors then trust the validated table.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use zerocopy::{FromBytes, IntoBytes};

use crate::archive::copy::{Chunking, stored_blob, worth_copying};
use crate::archive::info::{BindingInfo, Entries, EnvInfo, Names};
use crate::archive::source::{Bytes, Checked, Checks, FileSource, MemorySource, ReadError, Source};
use crate::error::{Damage, Error, Part, Result, VerifyReport};
use crate::format::codec;
use crate::format::encoding::{self, Blobs, DecodeError};
use crate::format::hash;
use crate::format::layout::*;
use crate::format::metadata::{Metadata, iso8601};
use crate::format::pages::Pages;
use crate::format::toc::{
    Entry, PageLayout, TocFacts, TocView, closing_digest, paged_toc_digest, toc_checksum,
    toc_digest_from_chunks,
};
use crate::parallel;
use crate::value::provenance::{Provenance, SourceFile};
use crate::value::{Buffer, Complex, ComplexTensor, MAX_DEPTH, Tensor, Value};

/// An open archive. Cheap to open; holds the mapping (or bytes) and the
/// validated table of contents.
///
/// ```
/// use achronyme_env::{Archive, Environment, SaveOptions, Tensor, Value, save_environment};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("w.ach");
/// let mut env = Environment::new();
/// // 4 KiB of noise: a blob of its own, uncompressed (smaller values live
/// // in the table).
/// let elements = achronyme_env::testdata::normal(512, 1);
/// env.set("t", Value::Tensor(Tensor::from_vec(elements.clone())));
/// env.set("x", Value::Number(42.0));
/// save_environment(&env, &path, &SaveOptions::default()).unwrap();
///
/// let archive = Archive::open(&path).unwrap();
/// assert_eq!(archive.info().bindings, ["t", "x"]);
/// let Value::Tensor(t) = archive.get("t").unwrap() else { panic!() };
/// assert!(t.is_mapped()); // borrowed from the file, not copied
/// drop(archive);
/// assert_eq!(t.data(), &elements[..]); // the view keeps the mapping alive
/// ```
#[derive(Clone)]
pub struct Archive {
    source: Arc<dyn Source>,
    header: RawHeader,
    toc: TocView,
    trailer: RawTrailer,
    hashes_offset: u64,
    hash_count: u64,
    chunk: u64,
    codec_chunk: u64,
    metadata: Arc<Metadata>,
    counts: [u64; 3],
    compressed: bool,
    /// Whether the hash pool matches the closing SHA-256, once checked.
    pool_sealed: Arc<OnceLock<bool>>,
    compressed_blobs: u64,
    /// The algorithm of the chunk digests.
    checksum: hash::Checksum,
    /// The local file, kept open, when opened from one: tensors loaded
    /// from it carry their blob's provenance. None for remote and
    /// in-memory sources.
    file: Option<Arc<SourceFile>>,
    /// Storage entries, their stored bytes, and entries sharing a blob
    /// (format 1.3).
    storage: (u64, u64, u64),
}

/// Loads one entry of an [`Archive`] found by [`Archive::section_loaders`].
pub(crate) struct EntryLoader<'a> {
    archive: &'a Archive,
    entry: Entry,
}

impl EntryLoader<'_> {
    /// [`Archive::get_counted_in`] for this entry, without the name lookup.
    pub(crate) fn load_in(&self, opts: LoadOptions, cache: &mut BlobCache) -> Result<(Value, u64)> {
        let verify = opts.verify_checksum;
        self.archive
            .load_in(&self.entry, verify, opts.max_decoded_bytes, cache)
    }
}

/// How to load a binding.
///
/// # Memory budget
///
/// A decoded value can take far more memory than its bytes on disk: a
/// `Null` is one byte encoded and `size_of::<Value>()` (80) bytes in a
/// vector, and a compressed blob can declare up to about 250,000 times its
/// size. So a load counts the memory it is about to hold and refuses, with
/// [`Error::TooLarge`], anything past `max_decoded_bytes`, before building
/// it. What counts: the buffer a compressed blob decompresses into, a
/// tensor's elements when they are copied (compressed, or not aligned in
/// memory), and for other values each vector element and record field at
/// its in-memory size, every string's bytes, nested tensors' elements and
/// shapes. A tensor loaded as a view of a mapped (or in-memory) archive
/// costs nothing: its bytes are the file's, paged in by the system.
///
/// The default, [`LoadOptions::DEFAULT_MAX_DECODED_BYTES`] (4 GiB), loads
/// any value a workstation session holds comfortably (a 1 GiB compressed
/// tensor, a vector of 40 million numbers) and bounds what a hostile 50 KB
/// file can make a load allocate. Raise it to load bigger values from
/// archives you trust; `u64::MAX` removes the limit.
///
/// ```
/// use achronyme_env::{Archive, Environment, Error, LoadOptions, SaveOptions, Section, Value};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("nulls.ach");
/// let mut env = Environment::new();
/// env.set("v", Value::Vector(vec![Value::Null; 1000])); // about 1 KB on disk
/// achronyme_env::save_environment(&env, &path, &SaveOptions::default()).unwrap();
///
/// let archive = Archive::open(&path).unwrap();
/// let small = LoadOptions { max_decoded_bytes: 10_000, ..LoadOptions::default() };
/// let err = archive.get_with(Section::Bindings, "v", small).unwrap_err();
/// assert!(matches!(err, Error::TooLarge { limit: 10_000, .. }));
/// let roomy = LoadOptions { max_decoded_bytes: 1 << 20, ..LoadOptions::default() };
/// assert_eq!(archive.get_with(Section::Bindings, "v", roomy).unwrap(), env.get("v").unwrap().clone());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Check the blob's chunk digests before decoding (default true).
    pub verify_checksum: bool,
    /// Most bytes of memory one load may hold for the value it decodes
    /// (default [`LoadOptions::DEFAULT_MAX_DECODED_BYTES`]); past it the
    /// load fails with [`Error::TooLarge`] before building the value. See
    /// "Memory budget" above for what counts.
    pub max_decoded_bytes: u64,
}

impl LoadOptions {
    /// The default memory budget of one load (and of one restore): 4 GiB.
    pub const DEFAULT_MAX_DECODED_BYTES: u64 = 4 << 30;
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            verify_checksum: true,
            max_decoded_bytes: Self::DEFAULT_MAX_DECODED_BYTES,
        }
    }
}

impl Archive {
    /// Opens the archive at `path`: reads its header, table of contents and
    /// trailer, and maps the file the first time a blob is loaded.
    ///
    /// Loaded tensors borrow the mapping, so the file must not be modified
    /// in place while they live (this crate's saves never do: they rename a
    /// new file over the path). Another program truncating or rewriting the
    /// file in place can make reads fault; for files on storage you do not
    /// control, use [`Archive::open_copied`].
    pub fn open(path: impl AsRef<Path>) -> Result<Archive> {
        let path = path.as_ref();
        let source = FileSource::open(path)?;
        let file = source
            .keep_open()
            .map_err(|e| Error::io("reading metadata of", path, e))?;
        let mut archive = Self::from_source(Arc::new(source))?;
        archive.file = Some(Arc::new(file));
        Ok(archive)
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
    /// contents and the trailer, and validates them (layout.md 8.1).
    pub fn from_source(source: Arc<dyn Source>) -> Result<Archive> {
        let file_len = source.len();
        let header = read_header(&*source, file_len)?;
        check_header(&header)?;
        let (toc_offset, toc_len) = toc_location(&header, file_len)?;
        let toc = read(
            &*source,
            "reading the table of contents",
            toc_offset,
            toc_len,
        )?;
        let trailer = read_trailer(&*source, toc_offset + toc_len, file_len)?;
        let (toc, facts) = check_and_parse_toc(&header, toc, &trailer, toc_offset)?;
        Ok(Archive {
            source,
            header,
            toc,
            trailer,
            hashes_offset: facts.hashes_offset,
            hash_count: facts.hash_count,
            chunk: facts.chunk,
            codec_chunk: facts.codec_chunk,
            metadata: Arc::new(facts.metadata),
            counts: facts.counts,
            compressed: facts.compressed,
            pool_sealed: Arc::new(OnceLock::new()),
            compressed_blobs: facts.compressed_blobs,
            checksum: facts.checksum,
            file: None,
            storage: (
                facts.storage_entries,
                facts.storage_bytes,
                facts.shared_entries,
            ),
        })
    }

    /// Number of entries in all sections.
    pub fn len(&self) -> usize {
        self.toc.len()
    }

    /// True when the archive holds no bindings.
    pub fn is_empty(&self) -> bool {
        self.toc.len() == 0
    }

    /// The archive's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Runtime version recorded by the writer: whole from the metadata
    /// when the header holds only its first 16 bytes (`layout.md` 6.1).
    pub fn achronyme_version(&self) -> String {
        if let Some(full) = &self.metadata.runtime_version {
            return full.clone();
        }
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
        self.toc.names(section)
    }

    /// True when `section` holds `name`. False too when the part of the
    /// table the lookup reads is damaged; [`Archive::get`] says so.
    pub fn contains(&self, section: Section, name: &str) -> bool {
        matches!(self.toc.find(section, name), Ok(Some(_)))
    }

    /// Checks every rule of the table of contents (layout.md 8.1) and
    /// every page of it against its digest.
    ///
    /// Opening an archive of format 1.3 reads and checks only the table's
    /// header, metadata and page index, and a lookup only the pages it
    /// reads, so that both cost the same whatever the number of bindings.
    /// Listing the names ([`Archive::names`], [`EnvInfo::bindings`]), a
    /// restore and [`Archive::verify`] check the whole table first; a
    /// listing of a table that fails lists nothing, and this says why.
    /// Older archives are checked whole when opened.
    ///
    /// ```
    /// use achronyme_env::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("w.ach");
    /// let mut env = Environment::new();
    /// env.set("x", Value::Number(1.0));
    /// save_environment(&env, &path, &SaveOptions::default()).unwrap();
    /// let archive = Archive::open(&path).unwrap();
    /// archive.check_table().unwrap();
    /// assert_eq!(archive.names(Section::Bindings).collect::<Vec<_>>(), ["x"]);
    /// ```
    pub fn check_table(&self) -> Result<()> {
        self.toc.check_all()
    }

    /// How the table of contents describes `name` in `section` (type,
    /// shape, stored and raw size, codec), without reading its blob: one
    /// lookup, whatever the number of bindings. `None` when it is absent.
    ///
    /// ```
    /// use achronyme_env::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("w.ach");
    /// let mut env = Environment::new();
    /// env.set("t", Value::Tensor(Tensor::new(vec![2, 1], vec![1.0, 2.0]).unwrap()));
    /// save_environment(&env, &path, &SaveOptions::default()).unwrap();
    /// let archive = Archive::open(&path).unwrap();
    /// let t = archive.binding_info(Section::Bindings, "t").unwrap();
    /// assert_eq!((t.type_name, t.shape.as_slice(), t.codec), ("Tensor", &[2, 1][..], Codec::None));
    /// assert!(archive.binding_info(Section::Constants, "t").is_none());
    /// ```
    pub fn binding_info(&self, section: Section, name: &str) -> Option<BindingInfo> {
        let e = &self.toc.find(section, name).ok().flatten()?;
        Some(crate::archive::info::binding_info(&self.toc, e))
    }

    /// Describes the archive from its header and table of contents alone.
    /// Cheap: names and per-binding details are read in place from the
    /// mapped table when first looked at.
    pub fn info(&self) -> EnvInfo {
        let ts = self.header.created_timestamp.get();
        let m = &self.metadata;
        EnvInfo {
            version: format!(
                "{}.{}",
                self.header.version_major, self.header.version_minor
            ),
            created_at: iso8601(ts),
            created_timestamp: ts,
            created_by: m.created_by.clone(),
            platform: m.platform.clone(),
            achronyme_version: self.achronyme_version(),
            num_bindings: self.counts[Section::Bindings as usize],
            num_constants: self.counts[Section::Constants as usize],
            num_functions: self.counts[Section::Functions as usize],
            compressed: self.compressed,
            codec: Codec::from_u8(self.header.default_codec).unwrap_or(Codec::None),
            compressed_blobs: self.compressed_blobs,
            storage_blobs: self.storage.0,
            storage_bytes: self.storage.1,
            shared_entries: self.storage.2,
            checksum: self.checksum,
            file_size: self.source.len(),
            description: m.description.clone(),
            tags: m.tags.clone(),
            custom: m.custom.clone(),
            bindings: Names::new(self.toc.clone(), Section::Bindings),
            entries: Entries::new(self.toc.clone()),
        }
    }

    /// Loads the binding `name` (bindings section), checking its checksum.
    pub fn get(&self, name: &str) -> Result<Value> {
        self.get_with(Section::Bindings, name, LoadOptions::default())
    }

    /// Loads `name` from `section` with explicit options: whether to check
    /// its checksums, and how much memory it may take
    /// ([`LoadOptions::max_decoded_bytes`]).
    pub fn get_with(&self, section: Section, name: &str, opts: LoadOptions) -> Result<Value> {
        self.get_counted(section, name, opts).map(|(v, _)| v)
    }

    /// [`Archive::get_with`], also returning the bytes of memory the value
    /// was counted as holding (for a caller that loads several values under
    /// one budget).
    pub(crate) fn get_counted(
        &self,
        section: Section,
        name: &str,
        opts: LoadOptions,
    ) -> Result<(Value, u64)> {
        let e = &self.entry(section, name)?;
        // One load: a tensor entry loads as it is, and only the blobs its
        // value's references name (format 1.3) are remembered, so that the
        // value shares one storage per blob.
        let mut cache = BlobCache::new(false);
        let mut blobs = ArchiveBlobs::new(self, e, opts.verify_checksum, &mut cache);
        self.load(e, opts.verify_checksum, opts.max_decoded_bytes, &mut blobs)
    }

    /// [`Archive::get_counted`] for one of several loads (a restore): a
    /// tensor blob already in `cache` (reached through a blob reference or
    /// a shared entry, format 1.3) is given back sharing its storage, at no
    /// cost; one loaded now is added to it.
    pub(crate) fn get_counted_in(
        &self,
        section: Section,
        name: &str,
        opts: LoadOptions,
        cache: &mut BlobCache,
    ) -> Result<(Value, u64)> {
        let e = &self.entry(section, name)?;
        self.load_in(e, opts.verify_checksum, opts.max_decoded_bytes, cache)
    }

    /// Every binding of `section` in table order, as its name and a loader:
    /// what a restore walks, without a lookup per name.
    pub(crate) fn section_loaders(
        &self,
        section: Section,
    ) -> Result<impl Iterator<Item = (&str, EntryLoader<'_>)>> {
        Ok(self.toc.section_entries(section)?.iter().map(move |e| {
            (
                self.toc.name_of(&e),
                EntryLoader {
                    archive: self,
                    entry: e,
                },
            )
        }))
    }

    /// The table entry of `name`, or an error suggesting a close name.
    fn entry(&self, section: Section, name: &str) -> Result<Entry> {
        self.toc
            .find(section, name)?
            .ok_or_else(|| Error::NoSuchBinding {
                name: name.to_string(),
                suggestion: crate::suggest::closest(name, self.names(section)),
            })
    }

    fn blob(&self, e: &Entry) -> Result<(Tag, Bytes)> {
        let tag = Tag::from_u8(e.tag).expect("validated");
        let span = tag.payload_start() + e.stored_len.get();
        let blob = self.served(
            e,
            "reading the blob",
            span,
            self.source.view(e.blob_offset.get(), span),
        )?;
        Ok((tag, blob))
    }

    /// What the source returned for `len` bytes of entry `e`, exactly that
    /// many. The table of contents put the range inside the source's length
    /// at open, so a source that now refuses it or serves less (a short
    /// ranged read, a file cut short since) is failing: an error, never
    /// trusted and never reported as damage to the archive.
    fn served(
        &self,
        e: &Entry,
        action: &'static str,
        len: u64,
        got: std::result::Result<Bytes, ReadError>,
    ) -> Result<Bytes> {
        served(got, len, || {
            (action, Some(self.toc.name_of(e).to_string()), Some(e.index))
        })
    }

    /// A raw blob with its digests checked: by the source as it reads the
    /// blob when it can ([`Source::view_checked`], a remote source checking
    /// parts as they arrive), else here.
    fn blob_verified(&self, e: &Entry) -> Result<(Tag, Bytes)> {
        let tag = Tag::from_u8(e.tag).expect("validated");
        let span = tag.payload_start() + e.stored_len.get();
        let expected = self.digests_of(e)?;
        let expected = expected.as_slice();
        // The archive's own algorithm, as `check_digests` uses.
        let algo = self.checksum;
        let dlen = algo.len();
        let check = |k: u64, piece: &[u8]| {
            let at = k as usize * dlen;
            expected.get(at..at + dlen) == Some(&algo.of(&[piece])[..dlen])
        };
        let checks = Checks {
            chunk: self.chunk,
            check: &check,
        };
        let got = self.source.view_checked(e.blob_offset.get(), span, &checks);
        let (blob, checked) = match got {
            Ok((b, c)) => (Ok(b), c),
            Err(err) => (Err(err), Checked::NotRun),
        };
        let blob = self.served(e, "reading the blob", span, blob)?;
        match checked {
            Checked::NotRun => self.check_digests(e, blob.as_slice())?,
            Checked::Passed => {}
            // The count is checked too, to report a table that disagrees.
            Checked::Failed(k) => {
                self.check_digests(e, blob.as_slice())?;
                return Err(Error::ChecksumMismatch {
                    name: self.toc.name_of(e).to_string(),
                    chunk: k,
                    offset: e.blob_offset.get() + k * self.chunk,
                });
            }
        }
        Ok((tag, blob))
    }

    fn check_digests(&self, e: &Entry, blob: &[u8]) -> Result<()> {
        let found = hash::chunk_digests(self.checksum, &[], blob, self.chunk as usize);
        let expected = self.digests_of(e)?;
        let dlen = self.checksum.len();
        if expected.len() != found.len() * dlen {
            return Err(Error::toc(
                Part::Entry(e.index),
                "digests do not match the blob's length",
            ));
        }
        let expected = expected.as_slice().chunks_exact(dlen);
        for (k, (f, x)) in found.iter().zip(expected).enumerate() {
            if &f[..dlen] != x {
                return Err(Error::ChecksumMismatch {
                    name: self.toc.name_of(e).to_string(),
                    chunk: k as u64,
                    offset: e.blob_offset.get() + k as u64 * self.chunk,
                });
            }
        }
        Ok(())
    }

    /// Loads entry `e` within `limit` bytes of memory, sharing the tensors
    /// already in `cache` and adding those it loads; returns the value and
    /// the bytes it newly holds.
    fn load_in(
        &self,
        e: &Entry,
        verify: bool,
        limit: u64,
        cache: &mut BlobCache,
    ) -> Result<(Value, u64)> {
        if Tag::from_u8(e.tag).and_then(Tag::element_size).is_none() {
            let mut blobs = ArchiveBlobs::new(self, e, verify, cache);
            return self.load(e, verify, limit, &mut blobs);
        }
        // A tensor in the table (format 1.4) is small and shares no blob;
        // any other is loaded once, however many entries share its blob or
        // values refer to it.
        let key = (!e.is_inline()).then(|| e.blob_offset.get());
        if let Some(v) = key.and_then(|key| cache.loaded.get(&key)) {
            return Ok((v.clone(), 0));
        }
        let mut blobs = ArchiveBlobs::new(self, e, verify, cache);
        let (mut v, mut cost) = self.load(e, verify, limit, &mut blobs)?;
        if blobs.cache.copy && cost == 0 {
            // A view of the mapping, copied once for all who share it.
            cost = e.raw_len.get();
            if cost > limit {
                return Err(Error::CopyTooLarge {
                    name: self.toc.name_of(e).to_string(),
                    bytes: cost,
                    limit,
                });
            }
            v.detach_from_files();
        }
        if let Some(key) = key {
            blobs.cache.loaded.insert(key, v.clone());
        }
        Ok((v, cost))
    }

    /// Loads entry `e`, holding at most `limit` bytes of memory for it;
    /// returns the value and the bytes it holds. Blob references in it
    /// load through `blobs`.
    fn load(
        &self,
        e: &Entry,
        verify: bool,
        limit: u64,
        blobs: &mut ArchiveBlobs<'_>,
    ) -> Result<(Value, u64)> {
        if e.is_inline() {
            return self.load_inline(e, limit, blobs);
        }
        // A source that reads into memory (an object store) would fetch
        // the whole blob before the budget below could refuse it.
        if self.source.allocates_reads() && e.stored_len.get() > limit {
            return Err(self.too_large(e, e.stored_len.get(), limit));
        }
        let packed = e.codec != Codec::None as u8;
        let (tag, blob) = match verify && !packed {
            true => self.blob_verified(e)?,
            false => self.blob(e)?,
        };
        if packed {
            return self.load_packed(e, tag, blob.as_slice(), (verify, limit), blobs);
        }
        self.check_frame(e, tag, blob.as_slice())?;
        let start = tag.payload_start();
        let payload = blob
            .slice(start, e.stored_len.get())
            .expect("blob spans the payload");
        self.load_payload(e, (tag, payload), limit, blobs)
    }

    /// Entry `e`'s value from its raw payload (checked): tensor elements
    /// viewed or copied, anything else decoded.
    fn load_payload(
        &self,
        e: &Entry,
        (tag, payload): (Tag, Bytes),
        limit: u64,
        blobs: &mut ArchiveBlobs<'_>,
    ) -> Result<(Value, u64)> {
        match tag {
            Tag::Tensor => {
                let (data, cost) = self.view_or_copy(e, payload, limit)?;
                Ok((self.tensor(e, data)?, cost))
            }
            Tag::ComplexTensor => {
                let (data, cost) = self.view_or_copy(e, payload, limit)?;
                Ok((self.complex_tensor(e, data)?, cost))
            }
            _ => self.decode(e, tag, payload.as_slice(), (0, limit), blobs),
        }
    }

    /// Loads inline entry `e` (format 1.4, layout.md 6.9): its payload, a
    /// blob's without the frame, from the table's value pool, which the
    /// pages' digests check whatever `verify` says.
    fn load_inline(
        &self,
        e: &Entry,
        limit: u64,
        blobs: &mut ArchiveBlobs<'_>,
    ) -> Result<(Value, u64)> {
        let tag = Tag::from_u8(e.tag).expect("validated");
        // Damage in the pages that hold the value is damage to this value.
        let payload = self.toc.inline_payload(e).map_err(|err| match err {
            Error::TocChecksum => Error::ChecksumMismatch {
                name: self.toc.name_of(e).to_string(),
                chunk: 0,
                offset: self.inline_offset(e),
            },
            err => err,
        })?;
        self.load_payload(e, (tag, payload), limit, blobs)
    }

    /// The file offset of inline entry `e`'s payload (format 1.4).
    fn inline_offset(&self, e: &Entry) -> u64 {
        self.header.toc_offset.get() + self.toc.values_start() as u64 + e.blob_offset.get()
    }

    /// Tensor elements borrowing `payload` when it is aligned for `T`
    /// (always, for a mapped file: blobs start on 64-byte boundaries), at
    /// no cost; else copied, which costs their length.
    fn view_or_copy<T: bytemuck::Pod>(
        &self,
        e: &Entry,
        payload: Bytes,
        limit: u64,
    ) -> Result<(Buffer<T>, u64)> {
        let len = payload.len() as u64;
        let too_large = || self.too_large(e, len, limit);
        // A view of a file mapping costs nothing. A view of bytes a source
        // read into memory (a file it could not map, an archive held in
        // memory) holds them: it costs their length, like a copy.
        let cost = if payload.is_mapped() { 0 } else { len };
        if cost > limit {
            return Err(too_large());
        }
        // A value of a table read into memory (format 1.4) is copied: a
        // view would keep the whole table alive.
        let view = payload.is_mapped() || !e.is_inline();
        if let Some(view) = Buffer::from_bytes(payload.clone()).filter(|_| view) {
            return Ok((view, cost));
        }
        let mut v: Vec<T> =
            bytemuck::try_zeroed_vec(payload.len() / size_of::<T>()).map_err(|()| too_large())?;
        bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(payload.as_slice());
        Ok((Buffer::from_vec(v), len))
    }

    fn too_large(&self, e: &Entry, bytes: u64, limit: u64) -> Error {
        Error::TooLarge {
            name: self.toc.name_of(e).to_string(),
            bytes,
            limit,
        }
    }

    fn shape(&self, e: &Entry) -> Vec<usize> {
        self.toc
            .shape_of(e)
            .iter()
            .map(|d| d.get() as usize)
            .collect()
    }

    fn invalid(&self, e: &Entry, reason: &str) -> Error {
        Error::InvalidValue {
            name: self.toc.name_of(e).to_string(),
            reason: reason.to_string(),
        }
    }

    /// Where entry `e`'s blob is stored, for a tensor loaded from it to
    /// carry: only for an archive opened from a local file (a remote or
    /// in-memory source has no file to copy from). Best effort: digests
    /// that cannot be read leave the tensor without provenance, and its
    /// next save writes it in full.
    fn provenance(&self, e: &Entry) -> Option<Arc<Provenance>> {
        let file = self.file.as_ref().filter(|_| worth_copying(e))?;
        let digests = self.padded_digests(e).ok()?;
        let chunking = Chunking {
            checksum: self.checksum,
            hash_chunk_log2: self.chunk.trailing_zeros(),
            codec_chunk_log2: match self.codec_chunk {
                0 => 0,
                c => c.trailing_zeros(),
            },
            default_codec: self.header.default_codec,
            written_with: None,
        };
        Some(Arc::new(Provenance {
            file: file.clone(),
            blob: stored_blob(e, digests.into(), chunking)?,
        }))
    }

    /// `data`, carrying entry `e`'s blob as its provenance when known.
    fn stored<T: bytemuck::Pod>(&self, e: &Entry, data: Buffer<T>) -> Buffer<T> {
        if let Some(p) = self.provenance(e) {
            data.set_provenance(p);
        }
        data
    }

    fn tensor(&self, e: &Entry, data: Buffer<f64>) -> Result<Value> {
        let data = self.stored(e, data);
        Tensor::from_buffer(self.shape(e), data)
            .map(Value::Tensor)
            .map_err(|_| self.invalid(e, "shape"))
    }

    fn complex_tensor(&self, e: &Entry, data: Buffer<Complex>) -> Result<Value> {
        let data = self.stored(e, data);
        ComplexTensor::from_buffer(self.shape(e), data)
            .map(Value::ComplexTensor)
            .map_err(|_| self.invalid(e, "shape"))
    }

    /// Decodes an encoded (non-tensor) payload, when the value fits in what
    /// is left of `limit` after the `spent` bytes already held for it (a
    /// decompressed payload). Returns the value and the bytes it holds.
    fn decode(
        &self,
        e: &Entry,
        tag: Tag,
        payload: &[u8],
        (spent, limit): (u64, u64),
        blobs: &mut ArchiveBlobs<'_>,
    ) -> Result<(Value, u64)> {
        let left = limit.saturating_sub(spent);
        let worst = (payload.len() as u64).saturating_mul(encoding::MAX_BYTES_PER_ENCODED_BYTE);
        // A blob a reference names failed: its own error, not the value's.
        let failed = |err, blobs: &mut ArchiveBlobs<'_>| match (err, blobs.error.take()) {
            (DecodeError::Blob, Some(blob_error)) => blob_error,
            (err, _) => self.decode_error(e, err, spent, limit),
        };
        if payload.len() <= encoding::SMALL_PAYLOAD && worst <= left {
            // Small enough that even the worst case fits: one pass.
            let decoded = encoding::decode_small_with(payload, left, blobs)
                .map_err(|err| failed(err, blobs))?;
            self.check_tag(e, tag, payload)?;
            return Ok(decoded);
        }
        let cost = self.check_encoding(e, tag, payload, spent, limit)?;
        encoding::build_exact_with(payload, cost, left, blobs).map_err(|err| failed(err, blobs))
    }

    /// Checks an encoded payload as [`Archive::decode`] would, without
    /// building the value: every rule of layout.md 5.3, the type against the
    /// entry, and the memory the value would hold against the budget.
    /// Returns that memory.
    fn check_encoding(
        &self,
        e: &Entry,
        tag: Tag,
        payload: &[u8],
        spent: u64,
        limit: u64,
    ) -> Result<u64> {
        // Only checked, never loaded: nothing enters the cache.
        let mut unused = BlobCache::new(false);
        let mut blobs = ArchiveBlobs::new(self, e, false, &mut unused);
        let cost = encoding::measure_exact_with(payload, limit.saturating_sub(spent), &mut blobs)
            .map_err(|err| self.decode_error(e, err, spent, limit))?;
        self.check_tag(e, tag, payload)?;
        Ok(cost)
    }

    /// A value that decoded has its tag as first byte: it must be the
    /// entry's.
    fn check_tag(&self, e: &Entry, tag: Tag, payload: &[u8]) -> Result<()> {
        if payload.first() != Some(&(tag as u8)) {
            return Err(self.invalid(e, "value's type differs from its table entry"));
        }
        Ok(())
    }

    fn decode_error(&self, e: &Entry, err: DecodeError, spent: u64, limit: u64) -> Error {
        match err {
            DecodeError::TooDeep => Error::TooDeep {
                name: self.toc.name_of(e).to_string(),
                limit: MAX_DEPTH,
            },
            DecodeError::Invalid(reason) => self.invalid(e, reason),
            DecodeError::TooLarge(bytes) => self.too_large(e, spent.saturating_add(bytes), limit),
            DecodeError::Blob => {
                self.invalid(e, "a tensor its blob references name failed to load")
            }
        }
    }

    /// Loads a compressed blob: decompresses it, chunks on every core, into
    /// a buffer of exactly its raw length, held within `limit`.
    fn load_packed(
        &self,
        e: &Entry,
        tag: Tag,
        blob: &[u8],
        (verify, limit): (bool, u64),
        blobs: &mut ArchiveBlobs<'_>,
    ) -> Result<(Value, u64)> {
        // Everything that can be checked is checked before the raw buffer
        // is allocated; a buffer over the budget is refused before it is
        // allocated, and one the process cannot allocate is an error, not
        // an abort.
        let ready = self.check_packed(e, tag, blob, verify)?;
        let raw_bytes = e.raw_len.get();
        let too_large = || self.too_large(e, raw_bytes, limit);
        if raw_bytes > limit {
            return Err(too_large());
        }
        let raw_len = usize::try_from(raw_bytes).map_err(|_| too_large())?;
        match tag {
            Tag::Tensor => {
                let mut v: Vec<f64> =
                    bytemuck::try_zeroed_vec(raw_len / 8).map_err(|()| too_large())?;
                self.unpack(e, tag, blob, &ready, Some(bytemuck::cast_slice_mut(&mut v)))?;
                Ok((self.tensor(e, Buffer::from_vec(v))?, raw_bytes))
            }
            Tag::ComplexTensor => {
                let mut v: Vec<Complex> =
                    bytemuck::try_zeroed_vec(raw_len / 16).map_err(|()| too_large())?;
                self.unpack(e, tag, blob, &ready, Some(bytemuck::cast_slice_mut(&mut v)))?;
                Ok((self.complex_tensor(e, Buffer::from_vec(v))?, raw_bytes))
            }
            _ => {
                // The raw bytes stay held while the value is built from
                // them, so they count against the same budget; the value
                // alone outlives this call.
                let raw = self.unpack_encoded(e, tag, blob, &ready, limit)?;
                self.decode(e, tag, &raw, (raw_bytes, limit), blobs)
            }
        }
    }

    /// Decompresses a checked non-tensor blob into a buffer of its raw
    /// length, refused past `limit` before it is allocated.
    fn unpack_encoded(
        &self,
        e: &Entry,
        tag: Tag,
        blob: &[u8],
        ready: &Packed,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let raw_bytes = e.raw_len.get();
        let too_large = || self.too_large(e, raw_bytes, limit);
        if raw_bytes > limit {
            return Err(too_large());
        }
        let raw_len = usize::try_from(raw_bytes).map_err(|_| too_large())?;
        let mut raw: Vec<u8> = bytemuck::try_zeroed_vec(raw_len).map_err(|()| too_large())?;
        self.unpack(e, tag, blob, ready, Some(&mut raw))?;
        Ok(raw)
    }

    /// Checks a compressed blob's head: its digest (with `verify`), frame
    /// and chunk table. Returns the table and the blob's expected digests.
    fn check_packed(&self, e: &Entry, tag: Tag, blob: &[u8], verify: bool) -> Result<Packed> {
        let name = || self.toc.name_of(e).to_string();
        let start = tag.payload_start() as usize;
        let n = hash::chunk_count(e.raw_len.get(), self.codec_chunk) as usize;
        let head_end = start + n * size_of::<RawChunk>();
        let expected = if verify {
            Some(self.digests_of(e)?)
        } else {
            None
        };
        // The table of contents guarantees stored_len >= 17n.
        let head = &blob[..head_end];
        if let Some(x) = &expected
            && self.checksum.of(&[head])[..self.checksum.len()]
                != x.as_slice()[..self.checksum.len()]
        {
            return Err(Error::ChecksumMismatch {
                name: name(),
                chunk: 0,
                offset: e.blob_offset.get(),
            });
        }
        self.check_frame(e, tag, blob)?;
        let codec = Codec::from_u8(e.codec).expect("validated");
        let chunks = codec::parse_table(
            &blob[start..],
            codec,
            e.raw_len.get(),
            self.codec_chunk,
            tag.element_size().is_some(),
        )
        .map_err(|reason| Error::InvalidFrame {
            name: name(),
            offset: e.blob_offset.get(),
            reason,
        })?;
        Ok(Packed { expected, chunks })
    }

    /// Decompresses a checked blob into `out` (its raw length), or into a
    /// scratch buffer per core when `out` is None (verification). Each
    /// chunk's digest, when expected, is checked before it is decompressed.
    fn unpack(
        &self,
        e: &Entry,
        tag: Tag,
        blob: &[u8],
        ready: &Packed,
        out: Option<&mut [u8]>,
    ) -> Result<()> {
        let name = || self.toc.name_of(e).to_string();
        let start = tag.payload_start() as usize;
        let payload = &blob[start..];
        let chunks = &ready.chunks;
        let n = chunks.len();
        let expected = ready.expected.as_ref().map(|d| d.as_slice());
        let lag = codec::word_lag(tag).unwrap_or(1);
        let chunk = self.codec_chunk as usize;
        let payload_offset = e.blob_offset.get() + start as u64;
        // One job per chunk: its index, table record, and output slice.
        let mut outs: Vec<Option<&mut [u8]>> = match out {
            Some(out) => out.chunks_mut(chunk).map(Some).collect(),
            None => (0..n).map(|_| None).collect(),
        };
        let jobs: Vec<(usize, &codec::ChunkRef, Option<&mut [u8]>)> = chunks
            .iter()
            .zip(outs.iter_mut())
            .enumerate()
            .map(|(k, (c, o))| (k, c, o.take()))
            .collect();
        let run = |(k, c, o): (usize, &codec::ChunkRef, Option<&mut [u8]>)| -> Result<()> {
            let stored = &payload[c.stored_at..c.stored_at + c.stored_len];
            if let Some(x) = expected {
                let dlen = self.checksum.len();
                let at = (k + 1) * dlen;
                if self.checksum.of(&[stored])[..dlen] != x[at..at + dlen] {
                    return Err(Error::ChecksumMismatch {
                        name: name(),
                        chunk: k as u64 + 1,
                        offset: payload_offset + c.stored_at as u64,
                    });
                }
            }
            codec::with_unpacker(|unpacker| match o {
                Some(o) => unpacker.chunk(c, lag, stored, o),
                // Decompressed only to be checked (a verify).
                None => {
                    let len = codec::chunk_raw_len(e.raw_len.get(), self.codec_chunk, k as u64);
                    unpacker.check_chunk(c, lag, stored, len as usize)
                }
            })
            .map_err(|reason| Error::CorruptChunk {
                name: name(),
                chunk: k as u64,
                reason,
            })
        };
        // The first damaged chunk is reported, whichever core found it.
        parallel::map(jobs, run).into_iter().collect()
    }

    /// The blob's expected digests, from the hash pool.
    /// Entry `e`'s digests from the pool, each zero-padded to 32 bytes.
    fn padded_digests(&self, e: &Entry) -> Result<Vec<[u8; 32]>> {
        let digests = self.digests_of(e)?;
        let dlen = self.checksum.len();
        Ok(digests
            .as_slice()
            .chunks_exact(dlen)
            .map(|d| {
                let mut out = [0u8; 32];
                out[..dlen].copy_from_slice(d);
                out
            })
            .collect())
    }

    fn digests_of(&self, e: &Entry) -> Result<Bytes> {
        let dlen = self.checksum.len() as u64;
        let len = e.hash_count.get() as u64 * dlen;
        let offset = self.hashes_offset + e.hash_index.get() as u64 * dlen;
        self.served(
            e,
            "reading the chunk digests",
            len,
            self.source.read(offset, len),
        )
    }

    fn check_frame(&self, e: &Entry, tag: Tag, blob: &[u8]) -> Result<()> {
        let bad = |reason| Error::InvalidFrame {
            name: self.toc.name_of(e).to_string(),
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
        self.verify_report_within(LoadOptions::DEFAULT_MAX_DECODED_BYTES)
    }

    /// Like [`Archive::verify_report`], checking that every binding loads
    /// within a memory budget of `max_decoded_bytes` (see
    /// [`LoadOptions::max_decoded_bytes`]) instead of the default one. A
    /// binding over it is reported damaged with [`Error::TooLarge`]'s
    /// message. Verifying builds no value: it holds at most one
    /// decompressed non-tensor payload (within the budget) and, for
    /// compressed tensors, a few chunks.
    pub fn verify_report_within(&self, max_decoded_bytes: u64) -> VerifyReport {
        let limit = max_decoded_bytes;
        let mut report = VerifyReport::default();
        if let Err(e) = self.toc.check_all() {
            // No entry can be trusted to say where its blob is.
            report.table = Some(e.to_string());
            return report;
        }
        let mut pad_start = HEADER_LEN;
        for e in self.toc.entries().iter() {
            let e = &e;
            report.bindings_checked += 1;
            if e.is_inline() {
                // Its bytes passed their pages' digests with the table;
                // an encoded value is checked as a load decodes it.
                let outcome = self.check_inline(e, limit);
                if let Err(err) = outcome {
                    report.damaged.push(Damage {
                        name: self.toc.name_of(e).to_string(),
                        section: Section::from_u8(e.section).unwrap_or(Section::Bindings),
                        error: err.to_string(),
                    });
                }
                continue;
            }
            if e.blob_offset.get() < pad_start {
                // Shares an earlier entry's blob (format 1.3), checked
                // with that entry; the table's rules made them agree.
                continue;
            }
            self.check_zero(pad_start, e.blob_offset.get(), &mut report);
            let outcome = self.blob(e).and_then(|(tag, blob)| {
                report.bytes_hashed += blob.len() as u64;
                pad_start = e.blob_offset.get() + blob.len() as u64;
                let blob = blob.as_slice();
                if e.codec != Codec::None as u8 {
                    // Every digest, the table, and each chunk decompressed
                    // to exactly its size; non-tensors checked as well.
                    let ready = self.check_packed(e, tag, blob, true)?;
                    let raw_bytes = e.raw_len.get();
                    return match tag.element_size() {
                        Some(_) => {
                            self.unpack(e, tag, blob, &ready, None)?;
                            // A load holds the whole tensor.
                            match raw_bytes > limit {
                                true => Err(self.too_large(e, raw_bytes, limit)),
                                false => Ok(()),
                            }
                        }
                        None => {
                            let raw = self.unpack_encoded(e, tag, blob, &ready, limit)?;
                            self.check_encoding(e, tag, &raw, raw_bytes, limit)
                                .map(drop)
                        }
                    };
                }
                // Tensors are fully checked by their digests and frame
                // (verify passing means every load works); loading one
                // views the file's bytes, at no cost to the budget.
                self.check_digests(e, blob)?;
                self.check_frame(e, tag, blob)?;
                match tag.element_size() {
                    Some(_) => Ok(()),
                    None => {
                        let payload = blob.get(tag.payload_start() as usize..).unwrap_or(&[]);
                        self.check_encoding(e, tag, payload, 0, limit).map(drop)
                    }
                }
            });
            if let Err(err @ Error::SourceRead { .. }) = outcome {
                // The storage failed, not the archive.
                report.read_errors.push(err.to_string());
            } else if let Err(err) = outcome {
                report.damaged.push(Damage {
                    name: self.toc.name_of(e).to_string(),
                    // A storage entry (format 1.3) is reported as the
                    // binding data it holds.
                    section: Section::from_u8(e.section).unwrap_or(Section::Bindings),
                    error: err.to_string(),
                });
            }
        }
        let pool_len = self.hash_count * self.checksum.len() as u64;
        self.check_zero(pad_start, self.hashes_offset, &mut report);
        self.check_zero(
            self.hashes_offset + pool_len,
            self.header.toc_offset.get(),
            &mut report,
        );
        match self.pool_is_sealed() {
            Ok(sealed) => report.closing_checksum_ok = sealed,
            Err(e) => report.read_errors.push(e.to_string()),
        }
        report
    }

    /// What verify checks of inline entry `e` beyond its pages: an encoded
    /// value decodes within `limit`; a tensor's shape was checked with the
    /// table.
    fn check_inline(&self, e: &Entry, limit: u64) -> Result<()> {
        let tag = Tag::from_u8(e.tag).expect("validated");
        let payload = self.toc.inline_payload(e)?;
        if tag.element_size().is_some() {
            // As a load counts it: a view of a mapped table costs nothing.
            return match !payload.is_mapped() && e.raw_len.get() > limit {
                true => Err(self.too_large(e, e.raw_len.get(), limit)),
                false => Ok(()),
            };
        }
        self.check_encoding(e, tag, payload.as_slice(), 0, limit)
            .map(drop)
    }

    /// Whether the hash pool matches the closing SHA-256; an error when the
    /// pool cannot be read (a failure of the storage, not damage).
    fn pool_is_sealed(&self) -> Result<bool> {
        let len = self.hash_count * self.checksum.len() as u64;
        let pool = read(
            &*self.source,
            "reading the hash pool",
            self.hashes_offset,
            len,
        )?;
        let closing = closing_digest(
            &self.trailer.toc_sha256,
            self.toc.as_bytes(),
            pool.as_slice(),
            self.checksum,
        );
        Ok(closing == self.trailer.closing_sha256)
    }

    fn check_zero(&self, start: u64, end: u64, report: &mut VerifyReport) {
        let len = end.saturating_sub(start);
        match read(&*self.source, "reading padding", start, len) {
            Ok(b) => {
                if let Some(i) = b.as_slice().iter().position(|&x| x != 0) {
                    report.nonzero_padding.push(start + i as u64);
                }
            }
            Err(e) => report.read_errors.push(e.to_string()),
        }
    }

    /// The chunk digests this archive stores for one binding's blob, in
    /// order (each [`Archive::checksum`]'s length, zero-padded to 32
    /// bytes): one per [`digest_chunk_size`](Archive::digest_chunk_size)
    /// bytes of a raw blob, or one for the head and one per chunk of a
    /// compressed one (layout.md 4). Before any is returned, the whole hash
    /// pool is checked against the closing SHA-256 (once per archive: 16 or
    /// 32 bytes per MiB of data, plus the table of contents for an archive
    /// with XXH3-128 digests, layout.md 7), so the digests are the ones the archive
    /// was sealed with; a pool that does not match is
    /// [`Error::UnsealedDigests`]. The blob's bytes are not read.
    ///
    /// Two blobs stored with the same bytes have the same digests when the
    /// archives' chunk sizes agree: `ach diff` compares archives this way
    /// without reading their data.
    pub fn stored_digests(&self, section: Section, name: &str) -> Result<Vec<[u8; 32]>> {
        let e = &self.entry(section, name)?;
        // Only an answer is kept: after a failed read, the next call reads
        // the pool again.
        let sealed = match self.pool_sealed.get() {
            Some(&sealed) => sealed,
            None => {
                let sealed = self.pool_is_sealed()?;
                let _ = self.pool_sealed.set(sealed);
                sealed
            }
        };
        if !sealed {
            return Err(Error::UnsealedDigests);
        }
        // A value in the table (format 1.4) has no digests of its own:
        // those of the raw blob it would otherwise have stand for it, so
        // that it compares equal to the same value in a blob. Digests are
        // zero-padded to 32 bytes, as the pool's are below.
        let mut out = match e.is_inline() {
            true => {
                let blob = self.inline_as_blob(e)?;
                hash::chunk_digests(self.checksum, &[], &blob, self.chunk as usize)
            }
            false => Vec::new(),
        };
        // The value's own blob, then (format 1.3) each tensor blob it
        // refers to, so that a changed tensor changes the list.
        for target in std::iter::once(*e).chain(self.referenced(e)?) {
            out.extend(self.padded_digests(&target)?);
        }
        Ok(out)
    }

    /// The raw blob (frame, tensor padding, payload) inline entry `e`
    /// (format 1.4) would have had outside the table.
    fn inline_as_blob(&self, e: &Entry) -> Result<Vec<u8>> {
        let payload = self.toc.inline_payload(e)?;
        let tag = Tag::from_u8(e.tag).expect("validated");
        let frame = RawFrame {
            magic: FRAME_MAGIC,
            tag: e.tag,
            codec: Codec::None as u8,
            filter: 0,
            reserved: [0; 3],
            stored_len: e.stored_len,
        };
        let mut blob = vec![0u8; tag.payload_start() as usize];
        blob[..FRAME_LEN as usize].copy_from_slice(frame.as_bytes());
        blob.extend_from_slice(payload.as_slice());
        Ok(blob)
    }

    /// The entries whose blobs the value of `e` refers to (format 1.3), in
    /// the order the value first names them. Reads and checks `e`'s blob
    /// only in an archive that may hold references (minor version 3 or
    /// more) and only for non-tensors; nothing is built.
    fn referenced(&self, e: &Entry) -> Result<Vec<Entry>> {
        let tag = Tag::from_u8(e.tag).expect("validated");
        if self.header.version_minor.get() < FORMAT_VERSION_MINOR_SHARED
            || tag.element_size().is_some()
        {
            return Ok(Vec::new());
        }
        let limit = LoadOptions::DEFAULT_MAX_DECODED_BYTES;
        let stored = match e.is_inline() {
            true => self.toc.inline_payload(e)?,
            false => self.blob(e)?.1,
        };
        let blob = stored.as_slice();
        let raw;
        let payload = if e.is_inline() {
            blob
        } else if e.codec != Codec::None as u8 {
            let ready = self.check_packed(e, tag, blob, true)?;
            raw = self.unpack_encoded(e, tag, blob, &ready, limit)?;
            &raw[..]
        } else {
            self.check_digests(e, blob)?;
            &blob[tag.payload_start() as usize..]
        };
        let mut found = Referenced {
            archive: self,
            found: Vec::new(),
        };
        encoding::measure_exact_with(payload, limit, &mut found)
            .map_err(|err| self.decode_error(e, err, 0, limit))?;
        Ok(found.found)
    }

    /// The algorithm of this archive's chunk digests (SHA-256 for every
    /// archive before format 1.2).
    pub fn checksum(&self) -> hash::Checksum {
        self.checksum
    }

    /// One binding's blob as stored (frame, padding and payload, layout.md
    /// 3), unchecked and undecoded: a view of the mapped file. For tools
    /// that compare or copy stored blobs; a load checks what it reads.
    /// A value stored in the table itself (format 1.4, layout.md 6.9) has
    /// no blob: the raw blob it would have had is built from its payload
    /// (checked by its pages' digests), so that it compares equal to the
    /// same value stored in a blob.
    pub fn stored_blob(&self, section: Section, name: &str) -> Result<Bytes> {
        let e = &self.entry(section, name)?;
        match e.is_inline() {
            true => Ok(Bytes::from_vec(self.inline_as_blob(e)?)),
            false => Ok(self.blob(e)?.1),
        }
    }

    /// Bytes per hashed chunk of a raw blob (layout.md 4.1; 1 MiB as this
    /// crate writes).
    pub fn digest_chunk_size(&self) -> u64 {
        self.chunk
    }

    /// Bytes of the table of contents (for tools that inspect the format).
    pub fn toc_len(&self) -> u64 {
        self.toc.byte_len() as u64
    }

    /// The first byte offset of `name`'s blob and its length on disk; for
    /// a value stored in the table itself (format 1.4), where its payload
    /// lies in the file.
    pub fn blob_range(&self, section: Section, name: &str) -> Option<(u64, u64)> {
        let e = &self.toc.find(section, name).ok().flatten()?;
        if e.is_inline() {
            return Some((self.inline_offset(e), e.stored_len.get()));
        }
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
            .field("len", &self.toc.len())
            .field("file_size", &self.source.len())
            .finish()
    }
}

/// The tensors a restore (or one load) has loaded, by blob offset, so that
/// every entry sharing a blob and every blob reference naming it (format
/// 1.3) gives back one shared storage.
pub(crate) struct BlobCache {
    loaded: std::collections::HashMap<u64, Value>,
    /// Copy each tensor that views a file mapping into memory of its own
    /// (once, for all who share it) and count its bytes.
    copy: bool,
}

impl BlobCache {
    pub(crate) fn new(copy: bool) -> Self {
        BlobCache {
            loaded: std::collections::HashMap::new(),
            copy,
        }
    }
}

/// Collects the targets of a value's blob references, in first-seen order.
struct Referenced<'c> {
    archive: &'c Archive,
    found: Vec<Entry>,
}

impl Blobs for Referenced<'_> {
    fn check(&self, index: u64) -> std::result::Result<Tag, DecodeError> {
        tensor_entry(self.archive, index).map(|(_, tag)| tag)
    }

    fn check_and_note(&mut self, index: u64) -> std::result::Result<Tag, DecodeError> {
        let (e, tag) = tensor_entry(self.archive, index)?;
        if !self.found.iter().any(|f| f.index == e.index) {
            self.found.push(e);
        }
        Ok(tag)
    }

    fn load(&mut self, _: u64, _: u64) -> std::result::Result<(Value, u64), DecodeError> {
        Err(DecodeError::Invalid(
            "nothing is loaded while references are listed",
        ))
    }
}

/// An error of a tensor blob loaded for a reference in `binding`'s value,
/// naming the binding as well as the tensor's entry.
fn within(err: Error, binding: &str) -> Error {
    let named = |name: String| format!("{binding}, at its nested tensor {name}");
    match err {
        Error::ChecksumMismatch {
            name,
            chunk,
            offset,
        } => Error::ChecksumMismatch {
            name: named(name),
            chunk,
            offset,
        },
        Error::InvalidFrame {
            name,
            offset,
            reason,
        } => Error::InvalidFrame {
            name: named(name),
            offset,
            reason,
        },
        Error::CorruptChunk {
            name,
            chunk,
            reason,
        } => Error::CorruptChunk {
            name: named(name),
            chunk,
            reason,
        },
        Error::TooLarge { name, bytes, limit } => Error::TooLarge {
            name: named(name),
            bytes,
            limit,
        },
        Error::CopyTooLarge { name, bytes, limit } => Error::CopyTooLarge {
            name: named(name),
            bytes,
            limit,
        },
        other => other,
    }
}

/// Entry `index` and its tag, when a blob reference may name it: it
/// exists and holds a tensor.
fn tensor_entry(archive: &Archive, index: u64) -> std::result::Result<(Entry, Tag), DecodeError> {
    // A paged table checks the entry's pages and rules first (layout.md
    // 6.8): an entry that fails them is an invalid reference.
    let e = archive
        .toc
        .entry_at(index)
        .map_err(|_| DecodeError::Invalid("blob reference names an entry that fails its checks"))?
        .ok_or(DecodeError::Invalid("blob reference names no entry"))?;
    match Tag::from_u8(e.tag) {
        Some(t @ (Tag::Tensor | Tag::ComplexTensor)) => Ok((e, t)),
        _ => Err(DecodeError::Invalid(
            "blob reference names an entry that is not a tensor",
        )),
    }
}

/// The archive's tensor blobs, as blob references see them.
struct ArchiveBlobs<'c> {
    archive: &'c Archive,
    verify: bool,
    cache: &'c mut BlobCache,
    /// Why the last load of a blob failed.
    error: Option<Error>,
    /// The binding whose value is being loaded, for the errors of the
    /// blobs it refers to.
    binding: &'c str,
}

impl<'c> ArchiveBlobs<'c> {
    /// The blobs of `archive` for the value of entry `e`.
    fn new(archive: &'c Archive, e: &Entry, verify: bool, cache: &'c mut BlobCache) -> Self {
        ArchiveBlobs {
            archive,
            verify,
            cache,
            error: None,
            binding: archive.toc.name_of(e),
        }
    }
}

impl Blobs for ArchiveBlobs<'_> {
    fn check(&self, index: u64) -> std::result::Result<Tag, DecodeError> {
        tensor_entry(self.archive, index).map(|(_, tag)| tag)
    }

    fn load(&mut self, index: u64, left: u64) -> std::result::Result<(Value, u64), DecodeError> {
        let binding = self.binding;
        // An entry that fails its own checks is an invalid reference.
        let (e, _) = tensor_entry(self.archive, index)?;
        self.archive
            .load_in(&e, self.verify, left, self.cache)
            .map_err(|err| {
                self.error = Some(within(err, binding));
                DecodeError::Blob
            })
    }
}

/// A compressed blob whose head has been checked: its chunk table and, when
/// checksums are on, its expected digests (head first, then one per chunk).
struct Packed {
    expected: Option<Bytes>,
    chunks: Vec<codec::ChunkRef>,
}

/// Reads the header: layout.md 8.1, rules 1 to 3 (a file too short to be
/// an archive, or not one at all).
fn read_header(source: &dyn Source, file_len: u64) -> Result<RawHeader> {
    let min_len = MIN_ARCHIVE_LEN;
    let first = read(source, "reading the header", 0, file_len.min(HEADER_LEN))?;
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
    RawHeader::read_from_bytes(first).map_err(|_| Error::Truncated {
        expected: min_len,
        found: file_len,
    })
}

/// Rules 4 to 6: a version, flags and default codec this reader knows, a
/// NUL-padded UTF-8 runtime version, zero reserved bytes.
fn check_header(header: &RawHeader) -> Result<()> {
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
    if Codec::from_u8(header.default_codec).is_none() {
        return Err(Error::toc(
            Part::Header,
            "header names an unknown default codec",
        ));
    }
    let version = &header.achronyme_version;
    let end = version
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(version.len());
    if std::str::from_utf8(&version[..end]).is_err() || version[end..].iter().any(|&b| b != 0) {
        return Err(Error::toc(
            Part::Header,
            "runtime version is not NUL-padded UTF-8",
        ));
    }
    if header.reserved0 != [0; 3] {
        return Err(Error::ReservedNotZero {
            field: "header",
            offset: 0,
        });
    }
    Ok(())
}

/// Rules 7 to 9: the table of contents lies after the header, aligned, and
/// the table and the trailer end exactly at the end of the file. Returns
/// the table's offset and length.
fn toc_location(header: &RawHeader, file_len: u64) -> Result<(u64, u64)> {
    let toc_offset = header.toc_offset.get();
    let toc_len = header.toc_len.get();
    let expected = toc_offset
        .checked_add(toc_len)
        .and_then(|n| n.checked_add(TRAILER_LEN))
        .ok_or(Error::toc(
            Part::Header,
            "table of contents location overflows",
        ))?;
    if toc_offset < HEADER_LEN || !toc_offset.is_multiple_of(ALIGN) || toc_len < TOC_HEADER_LEN {
        return Err(Error::toc(
            Part::Header,
            "table of contents location is invalid",
        ));
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
    Ok((toc_offset, toc_len))
}

/// Reads the trailer at `offset`, the last `TRAILER_LEN` bytes of the file
/// (rule 9 put it there).
fn read_trailer(source: &dyn Source, offset: u64, file_len: u64) -> Result<RawTrailer> {
    let bytes = read(source, "reading the trailer", offset, TRAILER_LEN)?;
    RawTrailer::read_from_bytes(bytes.as_slice()).map_err(|_| Error::Truncated {
        expected: offset.saturating_add(TRAILER_LEN),
        found: file_len,
    })
}

/// Rule 10, then rules 11 to 32 (`TocView::parse`): the table of contents
/// matches the trailer's checksum, then every rule of the table.
fn check_and_parse_toc(
    header: &RawHeader,
    toc: Bytes,
    trailer: &RawTrailer,
    toc_offset: u64,
) -> Result<(TocView, TocFacts)> {
    let values_len = header.values_len.get();
    if let Some(pages) = paged(header, toc.as_slice(), trailer)? {
        return TocView::parse(toc, (toc_offset, values_len), Some(pages));
    }
    // Validate the table on this thread while others hash it. The
    // validation only reads within bounds, so running it on unverified
    // bytes is safe; a checksum mismatch is reported before any rule.
    let algo = toc_checksum(toc.as_slice());
    let (chunks, parsed) =
        hash::chunk_digests_alongside(algo, &[], toc.as_slice(), 1 << TOC_CHUNK_LOG2, || {
            TocView::parse(toc.clone(), (toc_offset, values_len), None)
        });
    if toc_digest_from_chunks(header.as_bytes(), &chunks, algo) != trailer.toc_sha256 {
        return Err(Error::TocChecksum);
    }
    parsed
}

/// The pages of a paged table (format 1.3, layout.md 6.8), once its page
/// index matches the trailer's `toc_sha256`; `None` for a table without a
/// page index. The index is found from the unverified table header: a
/// damaged one misplaces it, which the digest check reports, unless its
/// sizes cannot describe any table (rules 14 and 15, reported as such).
fn paged(header: &RawHeader, toc: &[u8], trailer: &RawTrailer) -> Result<Option<Pages>> {
    let Ok((th, _)) = RawTocHeader::read_from_prefix(toc) else {
        return Ok(None);
    };
    if th.page_log2 == 0 {
        return Ok(None);
    }
    let layout = PageLayout::of(&th, toc.len() as u64, header.values_len.get())
        .map_err(|reason| Error::toc(Part::TocHeader, reason))?
        .expect("page_log2 is not 0");
    if paged_toc_digest(header.as_bytes(), toc, &layout) != trailer.toc_sha256 {
        return Err(Error::TocChecksum);
    }
    let algo = hash::Checksum::from_u8(th.checksum).expect("PageLayout::of checked it");
    Ok(Some(Pages::new(layout, algo)))
}

/// `source.read` at open. Every range read there was first checked against
/// the source's length, so a range the source then refuses or serves short
/// is a failure of the storage (a file cut short since it was opened), not
/// a truncated archive: [`Error::SourceRead`] saying what was being read.
fn read(source: &dyn Source, action: &'static str, offset: u64, len: u64) -> Result<Bytes> {
    served(source.read(offset, len), len, || (action, None, None))
}

/// A read's outcome: the bytes when all `len` came, else
/// [`Error::SourceRead`] with what was being read (`what`: the action, and
/// the binding and its index when a blob was read).
fn served(
    got: std::result::Result<Bytes, ReadError>,
    len: u64,
    what: impl FnOnce() -> (&'static str, Option<String>, Option<u64>),
) -> Result<Bytes> {
    let failed = |source| {
        let (action, name, index) = what();
        Error::SourceRead {
            action,
            name,
            index,
            source,
        }
    };
    match got {
        Ok(b) if b.len() as u64 == len => Ok(b),
        Ok(_) | Err(ReadError::OutOfRange) => Err(failed(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the source served fewer bytes than its length promised \
             (was the file cut short after it was opened?)",
        ))),
        Err(ReadError::Io(e)) => Err(failed(e)),
    }
}
