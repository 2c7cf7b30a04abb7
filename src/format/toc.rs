//! The table of contents, read in place: a validated view over its bytes in
//! the mapping. Parsing checks every rule once (layout.md section 8); the
//! accessors then trust the table.

use std::sync::{Arc, OnceLock};

use zerocopy::FromBytes;
use zerocopy::little_endian::U64;

use crate::error::{Error, Part, Result};
use crate::format::hash;
use crate::format::layout::*;
use crate::format::metadata::Metadata;
use crate::format::pages::Pages;
use crate::value::Bytes;

/// A table of contents read in place. Cloning shares the bytes.
///
/// A table without a page index (format 1.2 and older) is validated whole
/// when it is parsed. A paged one (1.3, layout.md 6.8) is checked lazily:
/// each page against its digest before any of its bytes is used, each
/// entry by the rules about it alone when a lookup lands on it, and the
/// rules that relate entries ([`TocView::check_all`]) before anything walks
/// the whole table.
#[derive(Clone)]
pub(crate) struct TocView {
    bytes: Bytes,
    /// Bytes per entry: 56 (formats 1.0 to 1.4) or 40 (1.5).
    entry_size: usize,
    entries_end: usize,
    /// Where the value pool (format 1.4) starts, right after the dimension
    /// pool; it ends at `names_start`.
    values_start: usize,
    names_start: usize,
    names_end: usize,
    /// The page digests of a paged table; `None` for an older one.
    pages: Option<Arc<Pages>>,
    /// What the rules of one entry need to know (layout.md 8.1).
    limits: Limits,
    /// Set once every rule of the table has passed.
    whole: Arc<OnceLock<()>>,
}

/// One entry of a table, read from its stored form (56 or 40 bytes) into
/// the full one, with its index in table order. Derefs to the fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// Index in table order.
    pub index: u64,
    raw: RawEntry,
}

impl std::ops::Deref for Entry {
    type Target = RawEntry;
    fn deref(&self) -> &RawEntry {
        &self.raw
    }
}

/// A run of a table's entries (all of them, or one section's), read one
/// at a time: entries are stored in one of two sizes, so not a slice.
#[derive(Clone, Copy)]
pub(crate) struct EntryRun<'a> {
    /// The table's entry region, header excluded.
    bytes: &'a [u8],
    size: usize,
    range: (usize, usize),
}

impl<'a> EntryRun<'a> {
    /// Number of entries in the run.
    pub(crate) fn len(&self) -> usize {
        self.range.1 - self.range.0
    }

    /// The `k`-th entry of the run.
    pub(crate) fn get(&self, k: usize) -> Option<Entry> {
        let i = self.range.0.checked_add(k).filter(|&i| i < self.range.1)?;
        let raw = RawEntry::read(&self.bytes[i * self.size..], self.size as u64)?;
        Some(Entry {
            index: i as u64,
            raw,
        })
    }

    /// The entry at `index` in table order (not in the run), if the run
    /// holds it.
    fn at(&self, index: usize) -> Option<Entry> {
        self.get(index.checked_sub(self.range.0)?)
    }

    /// The entries of the run, in order.
    pub(crate) fn iter(self) -> impl ExactSizeIterator<Item = Entry> + 'a {
        (0..self.len()).map(move |k| self.get(k).expect("inside the run"))
    }

    /// The entries `start..end` of the run (positions in the run, cut to
    /// its length).
    fn slice(&self, start: usize, end: usize) -> EntryRun<'a> {
        let at = |k: usize| self.range.0 + k.min(self.len());
        EntryRun {
            range: (at(start), at(end.max(start))),
            ..*self
        }
    }

    /// The first index of the run whose entry fails `pred` (which holds
    /// for a prefix of the run and fails for the rest), by bisection.
    fn partition_point(&self, pred: impl Fn(&Entry) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match pred(&self.get(mid).expect("inside the run")) {
                true => lo = mid + 1,
                false => hi = mid,
            }
        }
        lo
    }
}

/// The table header's fields that entries are checked against, and a paged
/// table's counts from its index head.
#[derive(Clone, Copy)]
struct Limits {
    toc_offset: u64,
    hashes_offset: u64,
    hash_count: u64,
    chunk: u64,
    codec_chunk: u64,
    checksum: hash::Checksum,
    counts: [u64; 3],
    compressed_blobs: u64,
    storage_entries: u64,
    storage_bytes: u64,
    shared_entries: u64,
}

/// What parsing learns besides the view.
pub(crate) struct TocFacts {
    pub hashes_offset: u64,
    pub hash_count: u64,
    pub chunk: u64,
    /// Raw bytes per chunk of a compressed payload (0: none compressed).
    pub codec_chunk: u64,
    pub metadata: Metadata,
    /// Entries per section (bindings, constants, functions).
    pub counts: [u64; 3],
    pub compressed: bool,
    /// Entries whose blob is compressed.
    pub compressed_blobs: u64,
    /// The algorithm of the chunk digests.
    pub checksum: hash::Checksum,
    /// Entries of the storage section (format 1.3): blobs only values
    /// refer to.
    pub storage_entries: u64,
    /// Stored bytes of those entries' blobs.
    pub storage_bytes: u64,
    /// Entries that share an earlier entry's blob (format 1.3).
    pub shared_entries: u64,
}

impl Limits {
    /// What parsing reports, with these fields and `metadata`.
    fn facts(&self, metadata: Metadata) -> TocFacts {
        TocFacts {
            hashes_offset: self.hashes_offset,
            hash_count: self.hash_count,
            chunk: self.chunk,
            codec_chunk: self.codec_chunk,
            metadata,
            counts: self.counts,
            compressed: self.compressed_blobs > 0,
            compressed_blobs: self.compressed_blobs,
            checksum: self.checksum,
            storage_entries: self.storage_entries,
            storage_bytes: self.storage_bytes,
            shared_entries: self.shared_entries,
        }
    }
}

impl TocView {
    /// Parses the table at file offset `toc_offset`. A table without a page
    /// index is validated whole here; a paged one (whose page index the
    /// caller checked against the trailer) has its header, metadata and
    /// page index head checked, and the rest when it is used.
    pub(crate) fn parse(
        bytes: Bytes,
        (toc_offset, values_len): (u64, u64),
        pages: Option<Pages>,
    ) -> Result<(TocView, TocFacts)> {
        let b = bytes.as_slice();
        if let Some(p) = &pages {
            p.ensure(b, 0, TOC_HEADER_LEN as usize)?;
        }
        let (th, _) = RawTocHeader::read_from_prefix(b).map_err(|_| {
            Error::toc(
                Part::TocHeader,
                "table of contents is shorter than its header",
            )
        })?;
        if th.magic != TOC_MAGIC {
            return Err(Error::toc(
                Part::TocHeader,
                "table of contents magic is not \"TOC\\0\"",
            ));
        }
        let entry_size = entry_size(&th).map_err(|reason| Error::toc(Part::TocHeader, reason))?;
        if th.reserved != 0 {
            return Err(Error::ReservedNotZero {
                field: "table of contents header",
                offset: toc_offset,
            });
        }
        let log2 = th.hash_chunk_log2.get();
        if !(12..=30).contains(&log2) {
            return Err(Error::toc(
                Part::TocHeader,
                "hash chunk size is outside 4 KiB..1 GiB",
            ));
        }
        let checksum = hash::Checksum::from_u8(th.checksum)
            .ok_or(Error::toc(Part::TocHeader, "unknown checksum algorithm"))?;
        let layout = PageLayout::of(&th, b.len() as u64, values_len)
            .map_err(|reason| Error::toc(Part::TocHeader, reason))?;
        if layout.is_some() != pages.is_some() {
            return Err(Error::toc(
                Part::TocHeader,
                "page size differs from the one the page index was read with",
            ));
        }
        let body_len = layout.map_or(b.len() as u64, |l| l.body_len);
        let (entries_len, dims_len) = (th.entry_count.get() * entry_size, th.dims_count.get() * 8);
        // `PageLayout::of` checked (for every kind of table) that the parts
        // add up, without overflow, to the table before its page index.
        let entries_end = TOC_HEADER_LEN as usize + entries_len as usize;
        let values_start = entries_end + dims_len as usize;
        let names_start = values_start + values_len as usize;
        let names_end = names_start + th.names_len.get() as usize;
        if let Some(p) = &pages {
            p.ensure(b, names_end, body_len as usize)?;
        }
        let metadata = Metadata::decode(&b[names_end..body_len as usize])
            .map_err(|reason| Error::InvalidMetadata { reason })?;
        let codec_chunk = match th.codec_chunk_log2 {
            0 => 0,
            l if crate::format::codec::CODEC_CHUNK_LOG2_RANGE.contains(&l) => 1u64 << l,
            _ => {
                return Err(Error::toc(
                    Part::TocHeader,
                    "compressed chunk size is outside 64 KiB..4 MiB",
                ));
            }
        };
        let mut limits = Limits {
            toc_offset,
            hashes_offset: th.hashes_offset.get(),
            hash_count: th.hash_count.get(),
            chunk: 1u64 << log2,
            codec_chunk,
            checksum,
            counts: [0; 3],
            compressed_blobs: 0,
            storage_entries: 0,
            storage_bytes: 0,
            shared_entries: 0,
        };
        let paged = match (pages, layout) {
            (Some(pages), Some(layout)) => {
                read_index_head(b, layout, th.entry_count.get(), &mut limits)?;
                check_pool_placement(&limits.facts(Metadata::default()), toc_offset)?;
                Some(Arc::new(pages))
            }
            _ => None,
        };
        let view = TocView {
            bytes,
            entry_size: entry_size as usize,
            entries_end,
            values_start,
            names_start,
            names_end,
            pages: paged,
            limits,
            whole: Arc::new(OnceLock::new()),
        };
        let mut facts = limits.facts(metadata);
        if view.pages.is_none() {
            view.validate_entries(&mut facts, toc_offset)?;
            let _ = view.whole.set(());
        }
        Ok((view, facts))
    }

    /// Checks every rule of the table once (layout.md 8.1): every page
    /// against its digest, then the entries in order and what they add up
    /// to, and that the page index's counts are theirs. Cheap after the
    /// first success; a table validated when it was parsed passes at once.
    pub(crate) fn check_all(&self) -> Result<()> {
        if self.whole.get().is_some() {
            return Ok(());
        }
        let pages = self
            .pages
            .as_ref()
            .expect("unpaged tables are validated at parse");
        pages.ensure_all(self.as_bytes())?;
        let l = self.limits;
        // Counted afresh by the validation, to compare with the index's.
        let mut facts = Limits {
            counts: [0; 3],
            compressed_blobs: 0,
            storage_entries: 0,
            storage_bytes: 0,
            shared_entries: 0,
            ..l
        }
        .facts(Metadata::default());
        self.validate_entries(&mut facts, l.toc_offset)?;
        let summary = |f: &TocFacts| {
            (
                f.counts,
                f.compressed_blobs,
                f.storage_entries,
                f.storage_bytes,
                f.shared_entries,
            )
        };
        if summary(&facts) != summary(&l.facts(Metadata::default())) {
            return Err(Error::toc(
                Part::PageIndex,
                "counts differ from the entries'",
            ));
        }
        let _ = self.whole.set(());
        Ok(())
    }

    /// Checks the name pool, every entry in table order and what the
    /// entries add up to: layout.md 8.1, rules 17 to 32, in that order.
    fn validate_entries(&self, facts: &mut TocFacts, toc_offset: u64) -> Result<()> {
        let names = check_name_pool(self.names_pool())?;
        let dims = self.dims_pool();
        let mut at = Running {
            name: 0,
            dim: 0,
            blob: HEADER_LEN,
            hash: 0,
            value: 0,
            owners: Vec::new(),
            sharing: false,
        };
        let mut prev: Option<(u8, &[u8])> = None;
        let entries = self.entries();
        let values = &self.as_bytes()[self.values_start..self.names_start];
        for i in 0..entries.len() {
            check_entry(
                (i, &entries),
                (names, dims, values),
                facts,
                &mut at,
                &mut prev,
            )
            .map_err(|reason| Error::toc(Part::Entry(i as u64), reason))?;
        }
        check_totals(
            &at,
            (names.len(), dims.len(), self.values_len()),
            facts,
            toc_offset,
        )
    }

    /// Where the value pool (format 1.4) starts in the table.
    pub(crate) fn values_start(&self) -> usize {
        self.values_start
    }

    /// Bytes of the value pool (format 1.4).
    fn values_len(&self) -> u64 {
        (self.names_start - self.values_start) as u64
    }

    /// The payload of inline entry `e` (format 1.4, layout.md 6.9): its
    /// bytes in the value pool, once the pages holding them passed their
    /// digests. The entry's rules put them inside the pool.
    pub(crate) fn inline_payload(&self, e: &Entry) -> Result<Bytes> {
        let start = self.values_start as u64 + e.blob_offset.get();
        let len = e.stored_len.get();
        if let Some(pages) = &self.pages {
            pages.ensure(self.as_bytes(), start as usize, (start + len) as usize)?;
        }
        Ok(self
            .bytes
            .slice(start, len)
            .expect("the entry's rules put its value inside the pool"))
    }

    /// The table's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Length of the table in bytes.
    pub(crate) fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The entries, in table order, unchecked (callers check the pages
    /// and rules first).
    pub(crate) fn entries(&self) -> EntryRun<'_> {
        EntryRun {
            bytes: &self.bytes.as_slice()[TOC_HEADER_LEN as usize..self.entries_end],
            size: self.entry_size,
            range: (0, self.len()),
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        (self.entries_end - TOC_HEADER_LEN as usize) / self.entry_size
    }

    fn dims_pool(&self) -> &[U64] {
        let b = &self.bytes.as_slice()[self.entries_end..self.values_start];
        <[U64]>::ref_from_bytes(b).expect("length is a multiple of 8; alignment 1")
    }

    fn names_pool(&self) -> &[u8] {
        &self.bytes.as_slice()[self.names_start..self.names_end]
    }

    /// The entry's name as bytes, without re-checking UTF-8 (lookups).
    fn name_bytes(&self, e: &Entry) -> &[u8] {
        let start = e.name_offset.get() as usize;
        let end = start + e.name_len.get() as usize;
        self.names_pool().get(start..end).unwrap_or(&[])
    }

    /// The entry's name (validated at parse time).
    pub(crate) fn name_of(&self, e: &RawEntry) -> &str {
        let start = e.name_offset.get() as usize;
        let end = start + e.name_len.get() as usize;
        self.names_pool()
            .get(start..end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// The entry's shape (empty for non-tensors).
    pub(crate) fn shape_of(&self, e: &RawEntry) -> &[U64] {
        let start = e.dims_index.get() as usize;
        self.dims_pool()
            .get(start..start + e.ndim.get() as usize)
            .unwrap_or(&[])
    }

    /// The entry at `index` in table order (what a blob reference names),
    /// if there is one; on a paged table, checked first by the rules about
    /// it alone, as a lookup checks the entry it lands on.
    pub(crate) fn entry_at(&self, index: u64) -> Result<Option<Entry>> {
        let Some(i) = usize::try_from(index).ok().filter(|&i| i < self.len()) else {
            return Ok(None);
        };
        if let Some(pages) = &self.pages {
            self.check_one(pages, i)?;
        }
        Ok(self.entries().get(i))
    }

    /// Binary search by (section, name). On a paged table each probe checks
    /// the pages it reads, and the entry found is checked by the rules
    /// about it alone (layout.md 8.1, rules 18 to 29 without the running
    /// totals); an unpaged table was validated whole at parse.
    pub(crate) fn find(&self, section: Section, name: &str) -> Result<Option<Entry>> {
        let key = (section as u8, name.as_bytes());
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (e, name) = match &self.pages {
                Some(pages) => {
                    let e = self.entry_checked(pages, mid)?;
                    (e, self.name_checked(pages, &e)?)
                }
                None => {
                    let e = self.entries().get(mid).expect("inside the table");
                    (e, self.name_bytes(&e))
                }
            };
            match (e.section, name).cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    if let Some(pages) = &self.pages {
                        self.check_one(pages, mid)?;
                    }
                    return Ok(Some(e));
                }
            }
        }
        Ok(None)
    }

    /// Entry `i` once the pages holding it passed their digests.
    fn entry_checked(&self, pages: &Pages, i: usize) -> Result<Entry> {
        let start = TOC_HEADER_LEN as usize + i * self.entry_size;
        pages.ensure(self.as_bytes(), start, start + self.entry_size)?;
        Ok(self.entries().get(i).expect("inside the table"))
    }

    /// The name of `e` once its pages passed their digests; empty when the
    /// entry points outside the name pool (its own check then says so).
    fn name_checked(&self, pages: &Pages, e: &Entry) -> Result<&[u8]> {
        let start = e.name_offset.get() as usize;
        let Some(end) = start.checked_add(e.name_len.get() as usize) else {
            return Ok(&[]);
        };
        if end > self.names_end - self.names_start {
            return Ok(&[]);
        }
        let at = self.names_start;
        pages.ensure(self.as_bytes(), at + start, at + end)?;
        Ok(&self.names_pool()[start..end])
    }

    /// The rules of layout.md 8.1 that concern entry `i` alone: rules 18 to
    /// 29 with each running total replaced by the bound it implies (the
    /// name inside the name pool, the shape inside the dimension pool, the
    /// blob between the header and the hash pool, its digests inside the
    /// pool), so that everything read through the entry is in bounds and
    /// checked by a page digest. Order and the totals are
    /// [`TocView::check_all`]'s.
    fn check_one(&self, pages: &Pages, i: usize) -> Result<()> {
        let e = self.entry_checked(pages, i)?;
        let fail = |reason| Error::toc(Part::Entry(i as u64), reason);
        if e.reserved != [0; 4] {
            return Err(fail("reserved bytes are not zero"));
        }
        let len = e.name_len.get() as usize;
        if len == 0 || len > MAX_NAME_LEN {
            return Err(fail("name is empty or longer than 4096 bytes"));
        }
        let name = self.name_checked(pages, &e)?;
        if name.is_empty() {
            return Err(fail("name lies outside the name pool"));
        }
        if std::str::from_utf8(name).is_err() || name.contains(&0) {
            return Err(fail("name is not UTF-8 without NUL"));
        }
        let (tag, packed) = check_tag_and_codec(&e, self.limits.codec_chunk).map_err(fail)?;
        match e.section {
            SECTION_STORAGE if tag.element_size().is_none() => {
                return Err(fail("storage entry is not a tensor"));
            }
            SECTION_STORAGE => {}
            b => drop(Section::from_u8(b).ok_or_else(|| fail("unknown section"))?),
        }
        let dims_start = self.entries_end;
        let first = e.dims_index.get() as usize;
        let last = first.saturating_add(e.ndim.get() as usize);
        if last <= (self.values_start - dims_start) / 8 {
            pages.ensure(
                self.as_bytes(),
                dims_start + 8 * first,
                dims_start + 8 * last,
            )?;
        }
        let mut next_dim = first;
        check_shape(&e, tag, self.dims_pool(), &mut next_dim).map_err(fail)?;
        let blob = e.blob_offset.get();
        if !e.is_inline() && (blob < HEADER_LEN || blob % ALIGN != 0) {
            return Err(fail("blob is not where the previous one ended"));
        }
        let mut at = Running {
            name: 0,
            dim: 0,
            blob,
            hash: e.hash_index.get() as u64,
            value: e.blob_offset.get(),
            owners: Vec::new(),
            sharing: false,
        };
        if e.is_inline() {
            // Where the previous value ended is not known here: the gap
            // before a tensor is checked with the whole table.
            at.value = match tag.element_size() {
                Some(_) => e.blob_offset.get() & !(INLINE_TENSOR_ALIGN - 1),
                None => e.blob_offset.get(),
            };
            check_inline(&e, (tag, packed), &mut at, None).map_err(fail)?;
            return match at.value > self.values_len() || at.hash > self.limits.hash_count {
                true => Err(fail("inline value lies past the value pool")),
                false => Ok(()),
            };
        }
        check_blob(&e, tag, packed, self.limits.chunk, &mut at).map_err(fail)?;
        if at.blob > self.limits.hashes_offset || at.hash > self.limits.hash_count {
            return Err(fail("blob or its digests lie past the hash pool"));
        }
        Ok(())
    }

    /// The entries of `section`, in order: a contiguous run of the table,
    /// since entries are sorted by section first (two binary searches).
    /// Checks the whole table first.
    pub(crate) fn section_entries(&self, section: Section) -> Result<EntryRun<'_>> {
        self.check_all()?;
        let entries = self.entries();
        let start = entries.partition_point(|e| e.section < section as u8);
        let end = entries.partition_point(|e| e.section <= section as u8);
        Ok(entries.slice(start, end))
    }

    /// Every entry in table order, once the whole table passed its checks;
    /// none when it does not ([`TocView::check_all`] says why).
    pub(crate) fn checked_entries(&self) -> EntryRun<'_> {
        let all = self.entries();
        match self.check_all() {
            Ok(()) => all,
            Err(_) => all.slice(0, 0),
        }
    }

    /// Names in `section`, in order; none when the table fails its checks.
    pub(crate) fn names(&self, section: Section) -> impl Iterator<Item = &str> {
        let entries = match self.section_entries(section) {
            Ok(run) => run,
            Err(_) => self.entries().slice(0, 0),
        };
        entries.iter().map(|e| self.name_of(&e))
    }
}

/// A rule's outcome: the reason it failed, for an `InvalidToc` error.
type Check<T> = std::result::Result<T, &'static str>;

/// Where the next entry's name, shape, blob and digests must start: the
/// running totals of layout.md 8.1, rules 19 to 29.
struct Running {
    name: usize,
    dim: usize,
    blob: u64,
    hash: u64,
    /// Where the next inline value starts in the value pool (format 1.4).
    value: u64,
    /// The entries that own a blob (all but those sharing one, format
    /// 1.3): (blob offset, entry index), in increasing offset order. Kept
    /// only from the first entry that shares a blob on: before it, every
    /// entry owns one, so an archive that shares nothing allocates nothing.
    owners: Vec<(u64, usize)>,
    sharing: bool,
}

/// Rule 12: the table's entry size names one of the entry's two forms,
/// 56 bytes (formats 1.0 to 1.4) or 40 (1.5).
fn entry_size(th: &RawTocHeader) -> Check<u64> {
    match u64::from(th.entry_size.get()) {
        size @ (ENTRY_LEN | ENTRY_LEN_COMPACT) => Ok(size),
        _ => Err("entry size is not 56 or 40"),
    }
}

/// Rule 17: the name pool is UTF-8 without NUL.
fn check_name_pool(names: &[u8]) -> Result<&str> {
    // Names lie back to back, so the whole pool being UTF-8 without NUL,
    // and every name starting and ending on a character boundary, makes
    // each name valid UTF-8 without NUL.
    let names_str = std::str::from_utf8(names)
        .map_err(|_| Error::toc(Part::NamePool, "name pool is not UTF-8"))?;
    if names.contains(&0) {
        return Err(Error::toc(Part::NamePool, "a name contains NUL"));
    }
    Ok(names_str)
}

/// Rules 18 to 29 for one entry, in order, moving `at` past it: reserved
/// bytes, name, section and order, tag and codec, shape, blob and digests.
fn check_entry<'a>(
    (index, entries): (usize, &EntryRun<'_>),
    (names, dims, values): (&'a str, &[U64], &[u8]),
    facts: &mut TocFacts,
    at: &mut Running,
    prev: &mut Option<(u8, &'a [u8])>,
) -> Check<()> {
    let e = &entries.get(index).expect("inside the table");
    if e.reserved != [0; 4] {
        return Err("reserved bytes are not zero");
    }
    let name = check_name(e, names, &mut at.name)?;
    // The storage section (format 1.3) is no `Section`: not bindings.
    let section = match e.section {
        SECTION_STORAGE => None,
        b => Some(Section::from_u8(b).ok_or("unknown section")?),
    };
    if prev.is_some_and(|p| p >= (e.section, name)) {
        return Err("entries are not sorted by (section, name), or repeat a name");
    }
    *prev = Some((e.section, name));
    let (tag, packed_chunks) = check_tag_and_codec(e, facts.codec_chunk)?;
    match section {
        Some(section) => facts.counts[section as usize] += 1,
        None if tag.element_size().is_none() => return Err("storage entry is not a tensor"),
        None => {
            facts.storage_entries += 1;
            facts.storage_bytes += e.stored_len.get();
        }
    }
    facts.compressed |= packed_chunks.is_some();
    facts.compressed_blobs += u64::from(packed_chunks.is_some());
    let shape_at = at.dim;
    check_shape(e, tag, dims, &mut at.dim)?;
    if e.is_inline() {
        return check_inline(e, (tag, packed_chunks), at, Some(values));
    }
    // Not the next blob: a tensor's may be an earlier entry's (format 1.3).
    if e.blob_offset.get() != at.blob && tag.element_size().is_some() {
        if !at.sharing {
            at.sharing = true;
            // Inline entries (format 1.4) own no blob: their offsets are
            // the value pool's, and would break the order searched below.
            at.owners = entries
                .slice(0, index)
                .iter()
                .filter(|owner| !owner.is_inline())
                .map(|owner| (owner.blob_offset.get(), owner.index as usize))
                .collect();
        }
        check_shared(e, entries, dims, shape_at, &at.owners)?;
        facts.shared_entries += 1;
        return Ok(());
    }
    check_blob(e, tag, packed_chunks, facts.chunk, at)?;
    if at.sharing {
        at.owners.push((e.blob_offset.get(), index));
    }
    Ok(())
}

/// The alias rule (format 1.3, layout.md 3.6): an entry whose blob is not
/// the next one shares the blob of an earlier entry that owns one, and
/// describes it exactly as that entry does (tag, codec, lengths, digests,
/// shape). Only tensors share blobs (the caller checked `e` is one); an
/// entry that shares one owns no bytes of the file and no digests, so the
/// running totals stay put.
fn check_shared(
    e: &RawEntry,
    entries: &EntryRun<'_>,
    dims: &[U64],
    shape_at: usize,
    owners: &[(u64, usize)],
) -> Check<()> {
    let offset = e.blob_offset.get();
    let owner = owners
        .binary_search_by_key(&offset, |&(at, _)| at)
        .ok()
        .and_then(|k| entries.at(owners[k].1))
        .ok_or("blob is not where the previous one ended")?;
    // Both shapes were checked to lie inside the pool.
    let shape = &dims[shape_at..shape_at + e.ndim.get() as usize];
    let owner_at = owner.dims_index.get() as usize;
    let owner_shape = &dims[owner_at..owner_at + owner.ndim.get() as usize];
    let same = owner.tag == e.tag
        && owner.codec == e.codec
        && owner.stored_len.get() == e.stored_len.get()
        && owner.raw_len.get() == e.raw_len.get()
        && owner.hash_index.get() == e.hash_index.get()
        && owner.hash_count.get() == e.hash_count.get()
        && owner_shape == shape;
    if !same {
        return Err("shared blob differs from the entry that owns it");
    }
    Ok(())
}

/// Rules 19 to 21: the name is the next run of the name pool, 1 to 4096
/// bytes long, ending on a character boundary. Returns it.
fn check_name<'a>(e: &RawEntry, names: &'a str, next_name: &mut usize) -> Check<&'a [u8]> {
    let start = *next_name;
    if e.name_offset.get() as usize != start {
        return Err("name is not where the previous one ended");
    }
    let len = e.name_len.get() as usize;
    if len == 0 || len > MAX_NAME_LEN {
        return Err("name is empty or longer than 4096 bytes");
    }
    let end = start
        .checked_add(len)
        .filter(|&end| end <= names.len())
        .ok_or("name lies outside the name pool")?;
    // `start` is where the previous name ended, a character boundary, so
    // this fails only when `end` is not one.
    let name = names
        .get(start..end)
        .ok_or("name ends inside a UTF-8 character")?;
    *next_name = end;
    Ok(name.as_bytes())
}

/// Rules 24 and 25: a known tag, codec and filter, and the lengths the
/// codec allows. Returns the tag and, for a compressed blob, its chunk
/// count.
fn check_tag_and_codec(e: &RawEntry, codec_chunk: u64) -> Check<(Tag, Option<u64>)> {
    let tag = Tag::from_u8(e.tag).ok_or("unknown type tag")?;
    let codec = Codec::from_u8(e.codec).ok_or("unknown codec")?;
    if e.filter != 0 {
        return Err("unknown filter");
    }
    if codec == Codec::None && e.stored_len.get() != e.raw_len.get() {
        return Err("uncompressed blob with stored length != raw length");
    }
    // A compressed payload holds a 16-byte table record and at least
    // one byte per chunk: this bounds what a load allocates to
    // about codec_chunk / 17 times the bytes on disk.
    let packed_chunks = match codec {
        Codec::None => None,
        _ if codec_chunk == 0 => {
            return Err("compressed blob in an archive without a chunk size");
        }
        _ if e.raw_len.get() == 0 => return Err("compressed blob is empty"),
        _ => {
            let n = hash::chunk_count(e.raw_len.get(), codec_chunk);
            if n.checked_mul(17).is_none_or(|min| e.stored_len.get() < min) {
                return Err("compressed blob is too short for its chunk table");
            }
            Some(n)
        }
    };
    Ok((tag, packed_chunks))
}

/// Rules 26 and 27: the shape is the next run of the dimension pool, only
/// tensors have one, and a tensor's shape accounts for its raw length.
fn check_shape(e: &RawEntry, tag: Tag, dims: &[U64], next_dim: &mut usize) -> Check<()> {
    // Shapes lie back to back too; only tensors have one.
    let ndim = e.ndim.get() as usize;
    if e.dims_index.get() as usize != *next_dim {
        return Err("shape is not where the previous one ended");
    }
    let shape = dims
        .get(*next_dim..next_dim.saturating_add(ndim))
        .ok_or("shape lies outside the dimension pool")?;
    *next_dim += ndim;
    match tag.element_size() {
        Some(size) => {
            if ndim > MAX_NDIM as usize {
                return Err("tensor has more than 64 dimensions");
            }
            // Element count first, then bytes: a shape with a zero
            // dimension is empty whatever its other dimensions.
            let bytes = shape
                .iter()
                .try_fold(1u64, |acc, d| {
                    usize::try_from(d.get()).ok()?;
                    acc.checked_mul(d.get())
                })
                .and_then(|count| count.checked_mul(size))
                .ok_or("tensor shape overflows")?;
            if bytes != e.raw_len.get() {
                return Err("tensor shape does not match its length");
            }
        }
        None if ndim != 0 => return Err("only tensors have a shape"),
        None => {}
    }
    Ok(())
}

/// Rule 29a (format 1.4): an inline entry's value is uncompressed and lies
/// where the previous inline value ended in the value pool, or for a
/// tensor at the next multiple of 8 after it, with zero bytes between
/// (checked when `values`, the pool, is given); it has no digests, so its
/// `hash_index` is the running total as it stands.
fn check_inline(
    e: &RawEntry,
    (tag, packed_chunks): (Tag, Option<u64>),
    at: &mut Running,
    values: Option<&[u8]>,
) -> Check<()> {
    if packed_chunks.is_some() {
        return Err("inline value is compressed");
    }
    let start = match tag.element_size() {
        Some(_) => at
            .value
            .checked_next_multiple_of(INLINE_TENSOR_ALIGN)
            .ok_or("inline value lies past the value pool")?,
        None => at.value,
    };
    if e.blob_offset.get() != start {
        return Err("inline value is not where the previous one ended");
    }
    if let Some(values) = values {
        let gap = values
            .get(at.value as usize..start as usize)
            .ok_or("inline value lies past the value pool")?;
        if gap.iter().any(|&b| b != 0) {
            return Err("padding in the value pool is not zero");
        }
    }
    at.value = start;
    if e.hash_index.get() as u64 != at.hash {
        return Err("chunk digests do not match the blob's length");
    }
    at.value = at
        .value
        .checked_add(e.stored_len.get())
        .ok_or("inline value lies past the value pool")?;
    Ok(())
}

/// Rules 28 and 29: the blob starts where the previous one ended, and its
/// digests are the next run of the hash pool, as many as its span needs.
fn check_blob(
    e: &RawEntry,
    tag: Tag,
    packed_chunks: Option<u64>,
    chunk: u64,
    at: &mut Running,
) -> Check<()> {
    // Blobs follow one another, each on the next 64-byte boundary.
    if e.blob_offset.get() != at.blob {
        return Err("blob is not where the previous one ended");
    }
    let end = tag
        .payload_start()
        .checked_add(e.stored_len.get())
        .and_then(|span| at.blob.checked_add(span))
        .ok_or("blob length overflows")?;
    // Raw blobs: one digest per hash chunk of the span. Compressed
    // ones: one for the frame and chunk table, one per chunk.
    let count = match packed_chunks {
        None => hash::chunk_count(end - at.blob, chunk),
        Some(n) => n + 1,
    };
    at.blob = align_up(end).ok_or("blob length overflows")?;
    if e.hash_index.get() as u64 != at.hash || e.hash_count.get() as u64 != count {
        return Err("chunk digests do not match the blob's length");
    }
    at.hash += count;
    Ok(())
}

/// Rules 30 to 32, after the last entry: a compressed chunk size only with
/// compressed blobs, both pools used up, and the hash pool right after the
/// last blob and right before the table.
fn check_totals(
    at: &Running,
    (names_len, dims_len, values_len): (usize, usize, u64),
    facts: &TocFacts,
    toc_offset: u64,
) -> Result<()> {
    if !facts.compressed && facts.codec_chunk != 0 {
        return Err(Error::toc(
            Part::Toc,
            "compressed chunk size set but no blob is compressed",
        ));
    }
    if at.name != names_len || at.dim != dims_len {
        return Err(Error::toc(
            Part::Toc,
            "name or dimension pool has unused bytes",
        ));
    }
    if at.value != values_len {
        return Err(Error::toc(
            Part::Toc,
            "value pool's length differs from its values'",
        ));
    }
    if at.blob != facts.hashes_offset || at.hash != facts.hash_count {
        return Err(Error::toc(
            Part::HashPool,
            "hash pool is not right after the last blob",
        ));
    }
    check_pool_placement(facts, toc_offset)
}

/// Rule 32: the table starts right after the hash pool (its padding
/// included). Checked at open for a paged table: it bounds the pool.
fn check_pool_placement(facts: &TocFacts, toc_offset: u64) -> Result<()> {
    let pool_end = facts
        .hash_count
        .checked_mul(facts.checksum.len() as u64)
        .and_then(|len| len.checked_add(facts.hashes_offset))
        .and_then(align_up);
    if pool_end != Some(toc_offset) {
        return Err(Error::toc(
            Part::HashPool,
            "table of contents is not right after the hash pool",
        ));
    }
    Ok(())
}

/// Where a paged table's page index lies (layout.md 6.8).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageLayout {
    /// log2 of the page size.
    pub log2: u8,
    /// Bytes of the table before its page index (the pages' bytes).
    pub body_len: u64,
    /// Number of pages.
    pub pages: u64,
    /// Number of top digests: one per page-sized piece of the page
    /// digests.
    pub tops: u64,
    /// Digest length.
    pub digest_len: u64,
}

impl PageLayout {
    /// Rule 15 for any table, and where a paged table's index lies: `None`
    /// for a table without one. Reads only the table header's fields, so
    /// it works on unverified bytes (and for resealing edited ones).
    pub(crate) fn of(
        th: &RawTocHeader,
        toc_len: u64,
        values_len: u64,
    ) -> Check<Option<PageLayout>> {
        // Rule 12 first: the entry size sizes the rest.
        let entry_size = entry_size(th)?;
        let body = (|| {
            th.entry_count
                .get()
                .checked_mul(entry_size)?
                .checked_add(th.dims_count.get().checked_mul(8)?)?
                .checked_add(th.names_len.get())?
                .checked_add(values_len)?
                .checked_add(th.meta_len.get())?
                .checked_add(TOC_HEADER_LEN)
        })()
        .ok_or("section sizes overflow")?;
        if th.page_log2 == 0 {
            return match body == toc_len {
                true => Ok(None),
                false => Err("section sizes do not add up to its length"),
            };
        }
        if !TOC_PAGE_LOG2_RANGE.contains(&th.page_log2) {
            return Err("page size is outside 4 KiB..1 MiB");
        }
        let algo = hash::Checksum::from_u8(th.checksum).ok_or("unknown checksum algorithm")?;
        // At least 4 KiB pages of at most 32-byte digests: the index is a
        // small fraction of `body`, and only the total can overflow.
        let layout = PageLayout::for_body(body, th.page_log2, algo);
        let index = PAGE_INDEX_HEAD_LEN + (layout.pages + layout.tops) * layout.digest_len;
        match body.checked_add(index) == Some(toc_len) {
            true => Ok(Some(layout)),
            false => Err("section sizes do not add up to its length"),
        }
    }

    /// The layout of a table whose pages are `body_len` bytes.
    pub(crate) fn for_body(body_len: u64, log2: u8, algo: hash::Checksum) -> PageLayout {
        let digest_len = algo.len() as u64;
        let pages = body_len.div_ceil(1 << log2);
        PageLayout {
            log2,
            body_len,
            pages,
            tops: (pages * digest_len).div_ceil(1 << log2),
            digest_len,
        }
    }

    /// Where the page digests start within the table (after the head).
    pub(crate) fn digests_at(&self) -> usize {
        (self.body_len + PAGE_INDEX_HEAD_LEN) as usize
    }

    /// Where the top digests start within the table (after the page
    /// digests); they end the table.
    pub(crate) fn tops_at(&self) -> usize {
        self.digests_at() + (self.pages * self.digest_len) as usize
    }

    /// What `toc_sha256` covers besides the header: the index head and the
    /// top digests, as ranges of the table.
    pub(crate) fn sealed(&self) -> [std::ops::Range<usize>; 2] {
        let head = self.body_len as usize..self.digests_at();
        let tops = self.tops_at()..self.tops_at() + (self.tops * self.digest_len) as usize;
        [head, tops]
    }
}

/// The page index head's summary (entries per section, compressed blobs,
/// storage and shared entries) into `limits`, checked for what it can say
/// alone: its magic and reserved bytes, and counts that add up to the
/// entries and the others that stay within them.
fn read_index_head(
    toc: &[u8],
    layout: PageLayout,
    entries: u64,
    limits: &mut Limits,
) -> Result<()> {
    let at = layout.body_len as usize;
    let head = RawPageIndexHead::read_from_bytes(&toc[at..at + PAGE_INDEX_HEAD_LEN as usize])
        .expect("the layout holds the head");
    let fail = |reason| Error::toc(Part::PageIndex, reason);
    if head.magic != PAGE_INDEX_MAGIC {
        return Err(fail("magic is not \"PGX\\0\""));
    }
    if head.reserved0 != [0; 4] {
        return Err(Error::ReservedNotZero {
            field: "page index",
            offset: at as u64,
        });
    }
    let counts = head.counts.map(|c| c.get());
    let sum = counts.iter().try_fold(0u64, |acc, &c| acc.checked_add(c));
    let (compressed, shared) = (head.compressed_blobs.get(), head.shared_entries.get());
    if sum != Some(entries) || compressed > entries || shared > entries {
        return Err(fail("counts do not add up to the entries"));
    }
    limits.counts = [counts[0], counts[1], counts[2]];
    limits.storage_entries = counts[3];
    limits.compressed_blobs = compressed;
    limits.storage_bytes = head.storage_bytes.get();
    limits.shared_entries = shared;
    Ok(())
}

/// The trailer's `toc_sha256` of a paged table `toc` (layout.md 7):
/// SHA-256(header || index head || top digests); the top digests cover the
/// page digests, which cover the pages.
pub(crate) fn paged_toc_digest(header: &[u8], toc: &[u8], layout: &PageLayout) -> hash::Digest32 {
    index_digest(header, &toc[layout.body_len as usize..], layout)
}

/// [`paged_toc_digest`] from the table's page index alone (`index`: the
/// table from its index head to its end), for a writer that holds the
/// table in parts.
pub(crate) fn index_digest(header: &[u8], index: &[u8], layout: &PageLayout) -> hash::Digest32 {
    let body = layout.body_len as usize;
    let [head, tops] = layout.sealed().map(|r| r.start - body..r.end - body);
    hash::sha256(&[header, &index[head], &index[tops]])
}

/// Fills in a paged table's page digests and top digests (layout.md
/// 6.8) from its pages: what a writer does, and what resealing an edited
/// archive does.
pub(crate) fn seal_pages(toc: &mut [u8], layout: &PageLayout, algo: hash::Checksum) {
    let (body, index) = toc.split_at_mut(layout.body_len as usize);
    seal_index(&[body], index, layout, algo);
}

/// Fills in the page digests and top digests of `index` (the table from
/// its index head to its end) from the table's pages, given as the
/// consecutive `parts` they are written from: a page that straddles parts
/// is hashed across them, so the table is never copied into one buffer.
pub(crate) fn seal_index(
    parts: &[&[u8]],
    index: &mut [u8],
    layout: &PageLayout,
    algo: hash::Checksum,
) {
    let page = 1usize << layout.log2;
    let dlen = algo.len();
    let index = &mut index[PAGE_INDEX_HEAD_LEN as usize..];
    let (digests, tops) = index.split_at_mut((layout.pages * layout.digest_len) as usize);
    for (d, found) in digests
        .chunks_mut(dlen)
        .zip(page_digests(parts, page, algo))
    {
        d.copy_from_slice(&found[..dlen]);
    }
    for (d, found) in tops
        .chunks_mut(dlen)
        .zip(hash::chunk_digests(algo, &[], digests, page))
    {
        d.copy_from_slice(&found[..dlen]);
    }
}

/// The digest of each `page`-byte piece of the concatenation of `parts`
/// (the last piece may be shorter; at least one), on every core.
fn page_digests(parts: &[&[u8]], page: usize, algo: hash::Checksum) -> Vec<hash::Digest32> {
    /// A table is written in at most this many parts.
    const MAX_PARTS: usize = 8;
    assert!(parts.len() <= MAX_PARTS, "a table has at most 8 parts");
    let mut starts = [0usize; MAX_PARTS + 1];
    for (k, p) in parts.iter().enumerate() {
        starts[k + 1] = starts[k] + p.len();
    }
    let total = starts[parts.len()];
    let mut out = vec![[0u8; 32]; total.div_ceil(page).max(1)];
    let one = |k: usize| {
        let (from, to) = (k * page, ((k + 1) * page).min(total));
        // The pieces of the parts that page k covers, in order.
        let mut pieces: [&[u8]; MAX_PARTS] = [&[]; MAX_PARTS];
        let mut n = 0;
        for (p, &at) in parts.iter().zip(&starts) {
            let (lo, hi) = (from.max(at), to.min(at + p.len()));
            if lo < hi {
                pieces[n] = &p[lo - at..hi - at];
                n += 1;
            }
        }
        algo.of(&pieces[..n])
    };
    // As `hash::chunk_digests`: a small table is hashed here.
    if total < 4 << 20 {
        out.iter_mut().enumerate().for_each(|(k, d)| *d = one(k));
    } else {
        crate::parallel::fill(&mut out, one);
    }
    out
}

/// The digest that guards the header and a table without a page index
/// (format 1.2 and older, layout.md 7): SHA-256(header || d_0 || d_1 ||
/// ...), where d_k is the digest of the table's k-th 64 KiB chunk with the
/// archive's chunk checksum (`algo`), computed by the caller so that it can
/// hash the chunks on every core while it validates the table.
pub(crate) fn toc_digest_from_chunks(
    header: &[u8],
    chunks: &[hash::Digest32],
    algo: hash::Checksum,
) -> hash::Digest32 {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(chunks.len() + 1);
    parts.push(header);
    parts.extend(chunks.iter().map(|d| &d[..algo.len()]));
    hash::sha256(&parts)
}

/// The algorithm of the table's chunk digests, read from the unverified
/// table before its digest is checked: XXH3-128 when the table header's
/// checksum byte (offset 61) says so, SHA-256 otherwise (every archive
/// before 1.2, and an unknown byte, which the table's rules then refuse).
/// A damaged byte makes the table hash with the wrong algorithm, which the
/// digest check reports.
pub(crate) fn toc_checksum(toc: &[u8]) -> hash::Checksum {
    match toc.get(61) {
        Some(&b) if b == hash::Checksum::Xxh3 as u8 => hash::Checksum::Xxh3,
        _ => hash::Checksum::Sha256,
    }
}

/// The closing digest (layout.md 7): SHA-256(toc_sha256 || pool), and with
/// XXH3-128 chunk digests SHA-256(toc_sha256 || table || pool), so that it
/// authenticates the table's bytes whatever their own chunk digests are.
pub(crate) fn closing_digest(
    toc_sha256: &[u8],
    toc: &[u8],
    pool: &[u8],
    algo: hash::Checksum,
) -> hash::Digest32 {
    closing_digest_of_parts(toc_sha256, &[toc], pool, algo)
}

/// [`closing_digest`] of a table given as the consecutive `parts` it is
/// written from.
pub(crate) fn closing_digest_of_parts(
    toc_sha256: &[u8],
    toc: &[&[u8]],
    pool: &[u8],
    algo: hash::Checksum,
) -> hash::Digest32 {
    let mut covered = vec![toc_sha256];
    if algo == hash::Checksum::Xxh3 {
        covered.extend_from_slice(toc);
    }
    covered.push(pool);
    hash::sha256(&covered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::hash::Checksum;

    /// With XXH3-128 chunk digests the closing digest covers the table's
    /// bytes themselves (an XXH3 collision in a table chunk would keep
    /// toc_sha256); with SHA-256 it covers them through toc_sha256 only.
    #[test]
    fn the_closing_digest_covers_the_table_bytes_only_with_xxh3() {
        let toc: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut edited = toc.clone();
        edited[500] ^= 1;
        let (sha, pool) = ([7u8; 32], [9u8; 48]);
        let xxh = |t: &[u8]| closing_digest(&sha, t, &pool, Checksum::Xxh3);
        let sha2 = |t: &[u8]| closing_digest(&sha, t, &pool, Checksum::Sha256);
        assert_ne!(xxh(&toc), xxh(&edited));
        assert_eq!(sha2(&toc), sha2(&edited));
        assert_eq!(sha2(&toc), hash::sha256(&[&sha, &pool]));
        assert_eq!(xxh(&toc), hash::sha256(&[&sha, &toc, &pool]));
    }

    /// Sealing a table held in parts gives the index sealing it in one
    /// buffer gives, wherever the parts split it: a page inside a part, a
    /// page straddling several (tiny and empty parts included), and a
    /// table large enough to be hashed on every core; and the closing
    /// digest of the parts is that of the whole.
    #[test]
    fn a_table_sealed_in_parts_is_sealed_as_one_buffer() {
        let page_log2 = 12;
        for (body_len, algo) in [
            (64usize, Checksum::Xxh3),
            (3 * 4096 + 17, Checksum::Sha256),
            (50_000, Checksum::Xxh3),
            ((5 << 20) + 123, Checksum::Xxh3),
        ] {
            let layout = PageLayout::for_body(body_len as u64, page_log2, algo);
            let index_len = PAGE_INDEX_HEAD_LEN as usize
                + ((layout.pages + layout.tops) * layout.digest_len) as usize;
            let mut whole: Vec<u8> = (0..body_len + index_len)
                .map(|i| (i * 7 + i / 4096) as u8)
                .collect();
            seal_pages(&mut whole, &layout, algo);
            let (body, index) = whole.split_at(body_len);
            // The index as layout.md 6.8 defines it, hashed here.
            let dlen = algo.len();
            let digests: Vec<u8> = hash::chunk_digests(algo, &[], body, 4096)
                .iter()
                .flat_map(|d| d[..dlen].to_vec())
                .collect();
            let tops: Vec<u8> = hash::chunk_digests(algo, &[], &digests, 4096)
                .iter()
                .flat_map(|d| d[..dlen].to_vec())
                .collect();
            let head = &index[..PAGE_INDEX_HEAD_LEN as usize];
            assert_eq!(index, [head, &digests, &tops].concat());
            // Cut points: none, a page boundary, just around one, several
            // inside one page (a page over four parts), and the ends.
            let cuts: [&[usize]; 5] = [
                &[],
                &[0, 0, body_len],
                &[4096.min(body_len)],
                &[1.min(body_len), 4095.min(body_len), 4097.min(body_len)],
                &[
                    10.min(body_len),
                    20.min(body_len),
                    30.min(body_len),
                    body_len / 2,
                ],
            ];
            for cut in cuts {
                let mut parts = Vec::new();
                let mut from = 0;
                for &to in cut {
                    parts.push(&body[from..to]);
                    from = to;
                }
                parts.push(&body[from..]);
                let mut sealed = index.to_vec();
                sealed[PAGE_INDEX_HEAD_LEN as usize..].fill(0);
                seal_index(&parts, &mut sealed, &layout, algo);
                assert_eq!(sealed, index, "{body_len} bytes cut at {cut:?}");
                let header = [5u8; 64];
                assert_eq!(
                    index_digest(&header, &sealed, &layout),
                    paged_toc_digest(&header, &whole, &layout)
                );
                parts.push(index);
                let (sha, pool) = ([1u8; 32], [2u8; 40]);
                assert_eq!(
                    closing_digest_of_parts(&sha, &parts, &pool, algo),
                    closing_digest(&sha, &whole, &pool, algo)
                );
            }
        }
    }

    /// The table is hashed with XXH3 only when its checksum byte says so.
    #[test]
    fn the_table_checksum_byte_picks_the_table_chunk_digests() {
        let mut toc = vec![0u8; 64];
        assert_eq!(toc_checksum(&toc), Checksum::Sha256);
        toc[61] = 1;
        assert_eq!(toc_checksum(&toc), Checksum::Xxh3);
        toc[61] = 2;
        assert_eq!(toc_checksum(&toc), Checksum::Sha256);
        assert_eq!(toc_checksum(&toc[..10]), Checksum::Sha256);
        let header = [3u8; 64];
        let d = hash::chunk_digests(Checksum::Xxh3, &[], &toc, 1 << TOC_CHUNK_LOG2);
        assert_eq!(
            toc_digest_from_chunks(&header, &d, Checksum::Xxh3),
            hash::sha256(&[&header, &d[0][..16]])
        );
    }
}
