//! The table of contents, read in place: a validated view over its bytes in
//! the mapping. Parsing checks every rule once (layout.md section 8); the
//! accessors then trust the table.

use zerocopy::FromBytes;
use zerocopy::little_endian::U64;

use crate::error::{Error, Part, Result};
use crate::format::hash;
use crate::format::layout::*;
use crate::format::metadata::Metadata;
use crate::value::Bytes;

/// A validated table of contents. Cloning shares the bytes.
#[derive(Clone)]
pub(crate) struct TocView {
    bytes: Bytes,
    entries_end: usize,
    names_start: usize,
    names_end: usize,
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

impl TocView {
    /// Parses and validates the table at file offset `toc_offset`.
    pub(crate) fn parse(bytes: Bytes, toc_offset: u64) -> Result<(TocView, TocFacts)> {
        let b = bytes.as_slice();
        let (th, rest) = RawTocHeader::read_from_prefix(b).map_err(|_| {
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
        if th.entry_size.get() as u64 != ENTRY_LEN {
            return Err(Error::toc(Part::TocHeader, "entry size is not 56"));
        }
        if th.reserved != [0; 2] {
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
        let sizes = (|| {
            let entries = th.entry_count.get().checked_mul(ENTRY_LEN)?;
            let dims = th.dims_count.get().checked_mul(8)?;
            let total = entries
                .checked_add(dims)?
                .checked_add(th.names_len.get())?
                .checked_add(th.meta_len.get())?;
            Some((entries, dims, total))
        })();
        let (entries_len, dims_len, total) =
            sizes.ok_or(Error::toc(Part::TocHeader, "section sizes overflow"))?;
        if total != rest.len() as u64 {
            return Err(Error::toc(
                Part::TocHeader,
                "section sizes do not add up to its length",
            ));
        }
        // Each part lies inside `rest`, so every sum below fits in usize.
        let entries_end = TOC_HEADER_LEN as usize + entries_len as usize;
        let names_start = entries_end + dims_len as usize;
        let names_end = names_start + th.names_len.get() as usize;
        let metadata = Metadata::decode(&b[names_end..])
            .map_err(|reason| Error::InvalidMetadata { reason })?;
        let view = TocView {
            bytes,
            entries_end,
            names_start,
            names_end,
        };
        let mut facts = TocFacts {
            hashes_offset: th.hashes_offset.get(),
            hash_count: th.hash_count.get(),
            chunk: 1u64 << log2,
            codec_chunk: match th.codec_chunk_log2 {
                0 => 0,
                l if crate::format::codec::CODEC_CHUNK_LOG2_RANGE.contains(&l) => 1u64 << l,
                _ => {
                    return Err(Error::toc(
                        Part::TocHeader,
                        "compressed chunk size is outside 64 KiB..4 MiB",
                    ));
                }
            },
            metadata,
            counts: [0; 3],
            compressed: false,
            compressed_blobs: 0,
            checksum,
            storage_entries: 0,
            storage_bytes: 0,
            shared_entries: 0,
        };
        view.validate_entries(&mut facts, toc_offset)?;
        Ok((view, facts))
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
            owners: Vec::new(),
            sharing: false,
        };
        let mut prev: Option<(u8, &[u8])> = None;
        let entries = self.entries();
        for i in 0..entries.len() {
            check_entry((i, entries), names, dims, facts, &mut at, &mut prev)
                .map_err(|reason| Error::toc(Part::Entry(i as u64), reason))?;
        }
        check_totals(&at, names.len(), dims.len(), facts, toc_offset)
    }

    /// The table's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Length of the table in bytes.
    pub(crate) fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The entries, in table order.
    pub(crate) fn entries(&self) -> &[RawEntry] {
        let b = &self.bytes.as_slice()[TOC_HEADER_LEN as usize..self.entries_end];
        <[RawEntry]>::ref_from_bytes(b).expect("length is a multiple of 56; alignment 1")
    }

    /// The index of `e`, an entry of this table, in table order.
    pub(crate) fn index_of(&self, e: &RawEntry) -> u64 {
        let first = self.entries().as_ptr() as usize;
        let at = e as *const RawEntry as usize;
        (at.wrapping_sub(first) / size_of::<RawEntry>()) as u64
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        (self.entries_end - TOC_HEADER_LEN as usize) / ENTRY_LEN as usize
    }

    fn dims_pool(&self) -> &[U64] {
        let b = &self.bytes.as_slice()[self.entries_end..self.names_start];
        <[U64]>::ref_from_bytes(b).expect("length is a multiple of 8; alignment 1")
    }

    fn names_pool(&self) -> &[u8] {
        &self.bytes.as_slice()[self.names_start..self.names_end]
    }

    /// The entry's name as bytes, without re-checking UTF-8 (lookups).
    fn name_bytes(&self, e: &RawEntry) -> &[u8] {
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

    /// The entry at `index` in table order, if there is one.
    pub(crate) fn entry_at(&self, index: u64) -> Option<&RawEntry> {
        self.entries().get(usize::try_from(index).ok()?)
    }

    /// Binary search by (section, name).
    pub(crate) fn find(&self, section: Section, name: &str) -> Option<&RawEntry> {
        let entries = self.entries();
        entries
            .binary_search_by(|e| {
                e.section
                    .cmp(&(section as u8))
                    .then_with(|| self.name_bytes(e).cmp(name.as_bytes()))
            })
            .ok()
            .map(|i| &entries[i])
    }

    /// The entries of `section`, in order: a contiguous run of the table,
    /// since entries are sorted by section first (two binary searches).
    pub(crate) fn section_entries(&self, section: Section) -> &[RawEntry] {
        let entries = self.entries();
        let start = entries.partition_point(|e| e.section < section as u8);
        let end = entries.partition_point(|e| e.section <= section as u8);
        &entries[start..end]
    }

    /// Names in `section`, in order.
    pub(crate) fn names(&self, section: Section) -> impl Iterator<Item = &str> {
        self.section_entries(section)
            .iter()
            .map(|e| self.name_of(e))
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
    /// The entries that own a blob (all but those sharing one, format
    /// 1.3): (blob offset, entry index), in increasing offset order. Kept
    /// only from the first entry that shares a blob on: before it, every
    /// entry owns one, so an archive that shares nothing allocates nothing.
    owners: Vec<(u64, usize)>,
    sharing: bool,
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
    (index, entries): (usize, &[RawEntry]),
    names: &'a str,
    dims: &[U64],
    facts: &mut TocFacts,
    at: &mut Running,
    prev: &mut Option<(u8, &'a [u8])>,
) -> Check<()> {
    let e = &entries[index];
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
    // Not the next blob: a tensor's may be an earlier entry's (format 1.3).
    if e.blob_offset.get() != at.blob && tag.element_size().is_some() {
        if !at.sharing {
            at.sharing = true;
            at.owners = entries[..index]
                .iter()
                .enumerate()
                .map(|(k, owner)| (owner.blob_offset.get(), k))
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
    entries: &[RawEntry],
    dims: &[U64],
    shape_at: usize,
    owners: &[(u64, usize)],
) -> Check<()> {
    let offset = e.blob_offset.get();
    let owner = owners
        .binary_search_by_key(&offset, |&(at, _)| at)
        .map(|k| &entries[owners[k].1])
        .map_err(|_| "blob is not where the previous one ended")?;
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
    names_len: usize,
    dims_len: usize,
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
    if at.blob != facts.hashes_offset || at.hash != facts.hash_count {
        return Err(Error::toc(
            Part::HashPool,
            "hash pool is not right after the last blob",
        ));
    }
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

/// The digest that guards the header and the table of contents (layout.md
/// 7): SHA-256(header || d_0 || d_1 || ...), where d_k is the digest of the
/// table's k-th 64 KiB chunk with the archive's chunk checksum (`algo`).
/// Two levels let a large table be hashed on every core when it is opened;
/// with XXH3-128 chunks the open hashes at memory speed, and
/// [`closing_digest`] covers the table's bytes with SHA-256 instead.
pub(crate) fn toc_digest(header: &[u8], toc: &[u8], algo: hash::Checksum) -> hash::Digest32 {
    toc_digest_from_chunks(header, &toc_chunk_digests(toc, algo), algo)
}

/// The digest of each 64 KiB chunk of the table.
pub(crate) fn toc_chunk_digests(toc: &[u8], algo: hash::Checksum) -> Vec<hash::Digest32> {
    hash::chunk_digests(algo, &[], toc, 1 << TOC_CHUNK_LOG2)
}

/// [`toc_digest`] from the chunk digests.
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
    match algo {
        hash::Checksum::Sha256 => hash::sha256(&[toc_sha256, pool]),
        hash::Checksum::Xxh3 => hash::sha256(&[toc_sha256, toc, pool]),
    }
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
        let d = toc_chunk_digests(&toc, Checksum::Xxh3);
        assert_eq!(
            toc_digest(&header, &toc, Checksum::Xxh3),
            hash::sha256(&[&header, &d[0][..16]])
        );
    }
}
