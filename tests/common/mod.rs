//! Helpers shared by the integration tests: fast saves, byte surgery on
//! archive files, and an `assert_matches!` that prints what it got.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use achronyme_env::hash::{Checksum, sha256};
use achronyme_env::layout::{CompactEntry, RawEntry, RawHeader, RawTocHeader};
use achronyme_env::{
    Archive, Complex, ComplexTensor, Compression, Environment, Part, SaveOptions, SaveReport,
    Tensor, Value, save_environment,
};
use zerocopy::{FromBytes, IntoBytes};

/// Asserts that an expression matches a pattern, printing the value when it
/// does not.
#[allow(unused_macros)]
macro_rules! assert_matches {
    ($e:expr, $p:pat $(if $g:expr)? $(,)?) => {
        match $e {
            $p $(if $g)? => {}
            ref other => panic!(
                "expected {}, got {:?}",
                stringify!($p $(if $g)?),
                other
            ),
        }
    };
}

/// Save options for scratch files: no fsync, so the suite stays fast, and
/// raw blobs, because these tests look at the raw layout (blob positions,
/// mapped views). Compressed archives have their own tests
/// (`tests/compression.rs`) and use [`packed`].
pub fn fast() -> SaveOptions {
    SaveOptions {
        durable: false,
        compression: Compression::None,
        ..SaveOptions::default()
    }
}

/// [`fast`] with compression on, as a user's default save has it.
pub fn packed() -> SaveOptions {
    SaveOptions {
        durable: false,
        ..SaveOptions::default()
    }
}

/// Saves `env` to `path` (which must not exist) with [`fast`] options.
pub fn save(env: &Environment, path: &Path) -> SaveReport {
    save_environment(env, path, &fast()).expect("save succeeds")
}

/// XORs the byte at `offset` of the file at `path` with `0xFF`.
pub fn flip(path: &Path, offset: u64) {
    flip_bits(path, offset, 0xFF);
}

/// XORs the byte at `offset` of the file at `path` with `mask`.
pub fn flip_bits(path: &Path, offset: u64, mask: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[usize::try_from(offset).unwrap()] ^= mask;
    fs::write(path, bytes).unwrap();
}

/// Names of the entries of `dir`, sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A path for `name` inside `dir`.
pub fn path_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// `0.0, 1.0, 2.0, ...` as a tensor of `shape`.
pub fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::new(shape.to_vec(), (0..n).map(|i| i as f64).collect()).unwrap()
}

/// A complex tensor of `shape` with distinct elements.
pub fn complex_iota(shape: &[usize]) -> ComplexTensor {
    let n: usize = shape.iter().product();
    ComplexTensor::new(
        shape.to_vec(),
        (0..n)
            .map(|i| Complex::new(i as f64, -(i as f64) - 0.5))
            .collect(),
    )
    .unwrap()
}

/// File offset where the table of contents starts (it is followed only by
/// the 64-byte trailer).
pub fn toc_offset(path: &Path) -> u64 {
    let len = fs::metadata(path).unwrap().len();
    let toc_len = Archive::open(path).unwrap().toc_len();
    len - 64 - toc_len
}

/// A value `levels` levels deep: containers (vector, record, mutable
/// reference, edge, in turn) around a number. `levels == 1` is the number
/// alone.
pub fn nested(levels: usize) -> Value {
    let mut v = Value::Number(levels as f64);
    for i in 1..levels {
        v = match i % 4 {
            0 => Value::Vector(vec![Value::Null, v]),
            1 => Value::Record([("inner".to_string(), v)].into_iter().collect()),
            2 => Value::new_ref(v),
            _ => Value::Edge(achronyme_env::Edge {
                from: "a".into(),
                to: "b".into(),
                directed: i % 8 == 3,
                properties: [("p".to_string(), v)].into_iter().collect(),
            }),
        };
    }
    v
}

/// Whether a top-level tensor of `bytes` bytes of elements gets a blob of
/// its own: its 64-byte frame and elements reach 4 KiB. Smaller values
/// live in the table's value pool (format 1.4, layout.md 6.9).
pub fn has_blob(bytes: usize) -> bool {
    bytes + 64 >= 4096
}

/// An entry's fields, named by their offset in the 56-byte entry of
/// formats 1.0 to 1.4 ([`Map::entry_field`] finds them in either form).
pub mod field {
    pub const NAME_OFFSET: usize = 0;
    pub const NAME_LEN: usize = 4;
    pub const BLOB_OFFSET: usize = 8;
    pub const STORED_LEN: usize = 16;
    pub const RAW_LEN: usize = 24;
    pub const DIMS_INDEX: usize = 32;
    pub const NDIM: usize = 36;
    pub const HASH_INDEX: usize = 40;
    pub const HASH_COUNT: usize = 44;
    pub const TAG: usize = 48;
    pub const SECTION: usize = 49;
    pub const CODEC: usize = 50;
    /// 56-byte entries only, as the reserved bytes (52 to 55).
    pub const FILTER: usize = 51;
    pub const RESERVED: usize = 52;
}

/// Where things are in a (valid) archive.
pub struct Map {
    pub toc_offset: usize,
    pub toc_len: usize,
    pub hashes_offset: usize,
    pub hash_count: usize,
    /// The algorithm of the chunk digests, and so their length in the pool.
    pub checksum: Checksum,
    pub entries: Vec<RawEntry>,
    /// Bytes per stored entry: 56 (formats 1.0 to 1.4) or 40 (1.5).
    pub entry_size: usize,
    /// A paged table's page size (log2) and the bytes before its page
    /// index (layout.md 6.8); `None` for a table without one.
    pub pages: Option<(u8, usize)>,
    /// File offset of the table's value pool (format 1.4, layout.md 6.9).
    pub values_at: usize,
}

impl Map {
    pub fn of(bytes: &[u8]) -> Map {
        let (header, _) = RawHeader::read_from_prefix(bytes).unwrap();
        let toc_offset = header.toc_offset.get() as usize;
        let toc_len = header.toc_len.get() as usize;
        let (th, rest) = RawTocHeader::read_from_prefix(&bytes[toc_offset..]).unwrap();
        let n = th.entry_count.get() as usize;
        let size = th.entry_size.get() as usize;
        let entries = rest[..n * size]
            .chunks(size)
            .map(|b| RawEntry::read(b, size as u64).unwrap())
            .collect();
        let values_len = header.values_len.get() as usize;
        Map {
            toc_offset,
            toc_len,
            hashes_offset: th.hashes_offset.get() as usize,
            hash_count: th.hash_count.get() as usize,
            checksum: Checksum::from_u8(th.checksum).unwrap(),
            pages: (th.page_log2 != 0).then(|| {
                let body = 64
                    + size * n
                    + 8 * th.dims_count.get() as usize
                    + values_len
                    + th.names_len.get() as usize
                    + th.meta_len.get() as usize;
                (th.page_log2, body)
            }),
            values_at: toc_offset + 64 + size * n + 8 * th.dims_count.get() as usize,
            entries,
            entry_size: size,
        }
    }

    /// Recomputes the trailer (table checksum and closing checksum) so that
    /// edits to the header, table or hash pool pass `open`. Uses the
    /// positions this map read from the unedited archive, so it works even
    /// when the edit made the header or table header unreadable
    /// (`achronyme_env::fuzzing::reseal` locates them in the edited bytes).
    pub fn reseal(&self, bytes: &mut [u8]) {
        let toc_sha = match self.pages {
            // layout.md 6.8 and 7: each page's digest into the page index,
            // then SHA-256(header ‖ page index).
            Some((log2, body_len)) => {
                // layout.md 6.8 and 7: each page's digest, then the top
                // digests over the page digests, then SHA-256(header ‖
                // index head ‖ top digests).
                let dlen = self.checksum.len();
                let page = 1usize << log2;
                let (header, after) = bytes.split_at_mut(64);
                let toc = &mut after[self.toc_offset - 64..self.toc_offset - 64 + self.toc_len];
                let (body, index) = toc.split_at_mut(body_len);
                let (head, rest) = index.split_at_mut(64);
                let pages = body_len.div_ceil(page);
                let (digests, tops) = rest.split_at_mut(pages * dlen);
                for (p, d) in body.chunks(page).zip(digests.chunks_mut(dlen)) {
                    d.copy_from_slice(&self.checksum.digest(p));
                }
                for (p, d) in digests.chunks(page).zip(tops.chunks_mut(dlen)) {
                    d.copy_from_slice(&self.checksum.digest(p));
                }
                sha256(&[header, head, tops])
            }
            // Without a page index (format 1.2 and older):
            // SHA-256(header ‖ T_0 ‖ … ‖ T_(m-1)), T_k the digest of the
            // TOC's k-th 64 KiB chunk (layout::TOC_CHUNK_LOG2).
            None => {
                let toc = &bytes[self.toc_offset..self.toc_offset + self.toc_len];
                let chunk_digests: Vec<Vec<u8>> = toc
                    .chunks(1 << achronyme_env::layout::TOC_CHUNK_LOG2)
                    .map(|c| self.checksum.digest(c))
                    .collect();
                let mut parts: Vec<&[u8]> = vec![&bytes[..64]];
                parts.extend(chunk_digests.iter().map(|d| d.as_slice()));
                sha256(&parts)
            }
        };
        // The closing digest also covers the TOC's bytes when the checksum
        // is XXH3-128.
        let toc = &bytes[self.toc_offset..self.toc_offset + self.toc_len];
        let pool = &bytes[self.hashes_offset..self.pool_end()];
        let closing = match self.checksum {
            Checksum::Sha256 => sha256(&[&toc_sha, pool]),
            Checksum::Xxh3 => sha256(&[&toc_sha, toc, pool]),
        };
        let trailer = self.toc_offset + self.toc_len;
        bytes[trailer..trailer + 32].copy_from_slice(&toc_sha);
        bytes[trailer + 32..trailer + 64].copy_from_slice(&closing);
    }

    /// File range of entry `i`'s payload: after the 16-byte frame of a
    /// non-tensor blob, or in the table's value pool for an inline entry.
    pub fn payload(&self, i: usize) -> std::ops::Range<usize> {
        let e = &self.entries[i];
        let start = match e.is_inline() {
            true => self.values_at + e.blob_offset.get() as usize,
            false => e.blob_offset.get() as usize + 16,
        };
        start..start + e.stored_len.get() as usize
    }

    /// Recomputes the digests of entry `i`'s (uncompressed, non-tensor)
    /// blob in the hash pool, one per 1 MiB of its span, then reseals
    /// (which is all an inline entry, checked by its pages, needs).
    pub fn fix_digest(&self, bytes: &mut [u8], i: usize) {
        let e = &self.entries[i];
        if e.is_inline() {
            return self.reseal(bytes);
        }
        assert_eq!(e.codec, 0, "raw blobs only");
        let start = e.blob_offset.get() as usize;
        let end = self.payload(i).end;
        let chunk = 1 << achronyme_env::layout::HASH_CHUNK_LOG2;
        let digests: Vec<Vec<u8>> = bytes[start..end]
            .chunks(chunk)
            .map(|c| self.checksum.digest(c))
            .collect();
        assert_eq!(digests.len(), e.hash_count.get() as usize);
        for (k, d) in digests.iter().enumerate() {
            let at = self.digest_at(e.hash_index.get() as usize + k);
            bytes[at..at + d.len()].copy_from_slice(d);
        }
        self.reseal(bytes);
    }

    /// File offset of digest `k` of the hash pool.
    pub fn digest_at(&self, k: usize) -> usize {
        self.hashes_offset + self.checksum.len() * k
    }

    /// File offset just past the hash pool's digests.
    pub fn pool_end(&self) -> usize {
        self.digest_at(self.hash_count)
    }

    /// File offset of the metadata block, `meta_len` bytes long: the end of
    /// the table, or of its pages when it has a page index.
    pub fn metadata_at(&self, meta_len: usize) -> usize {
        let end = self.pages.map_or(self.toc_len, |(_, body)| body);
        self.toc_offset + end - meta_len
    }

    /// File offset of entry `i`.
    pub fn entry_at(&self, i: usize) -> usize {
        self.toc_offset + 64 + self.entry_size * i
    }

    /// File offset of the dimension pool (after the entries).
    pub fn dims_at(&self) -> usize {
        self.entry_at(self.entries.len())
    }

    /// File offset of entry `i`'s `field` (one of [`field`]'s, named by its
    /// offset in the 56-byte entry), in the form the archive stores.
    pub fn entry_field(&self, i: usize, field: usize) -> usize {
        self.entry_at(i) + self.field_place(field).0
    }

    /// Bytes of `field` in the stored form.
    pub fn field_width(&self, field: usize) -> usize {
        self.field_place(field).1
    }

    /// Writes `value` into entry `i`'s `field` at the stored form's width
    /// (which it must fit).
    pub fn put_field(&self, bytes: &mut [u8], i: usize, field: usize, value: u64) {
        let (at, width) = (self.entry_field(i, field), self.field_width(field));
        assert!(
            width == 8 || value < 1 << (8 * width),
            "{value} fits {width} bytes"
        );
        bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
    }

    /// Writes `e` as entry `i`, in the stored form.
    pub fn put_entry(&self, bytes: &mut [u8], i: usize, e: &RawEntry) {
        let at = self.entry_at(i);
        match self.entry_size {
            56 => bytes[at..at + 56].copy_from_slice(e.as_bytes()),
            _ => bytes[at..at + 40].copy_from_slice(CompactEntry::narrow(e).unwrap().as_bytes()),
        }
    }

    /// (offset in the entry, width) of `field` in the stored form.
    fn field_place(&self, field: usize) -> (usize, usize) {
        use field::*;
        if self.entry_size == 56 {
            let width = match field {
                BLOB_OFFSET | STORED_LEN | RAW_LEN => 8,
                TAG | SECTION | CODEC | FILTER => 1,
                _ => 4,
            };
            return (field, width);
        }
        match field {
            NAME_OFFSET => (0, 4),
            NAME_LEN => (4, 2),
            TAG => (6, 1),
            SECTION => (7, 1),
            CODEC => (8, 1),
            NDIM => (9, 1),
            BLOB_OFFSET => (10, 6),
            STORED_LEN => (16, 6),
            RAW_LEN => (22, 6),
            DIMS_INDEX => (28, 4),
            HASH_INDEX => (32, 4),
            HASH_COUNT => (36, 4),
            _ => panic!("a 40-byte entry has no field at {field} of the 56-byte one"),
        }
    }

    /// Changes entry `i`'s type tag, in its TOC entry and its blob frame,
    /// then fixes its digest and reseals.
    pub fn retag(&self, bytes: &mut [u8], i: usize, tag: u8) {
        bytes[self.entry_field(i, field::TAG)] = tag;
        if !self.entries[i].is_inline() {
            bytes[self.entries[i].blob_offset.get() as usize + 2] = tag;
        }
        self.fix_digest(bytes, i);
    }

    pub fn index_of(&self, bytes: &[u8], name: &str) -> usize {
        let archive = Archive::from_bytes(bytes.to_vec()).unwrap();
        let info = archive.info();
        info.entries.iter().position(|e| e.name == name).unwrap()
    }
}

/// `bytes` edited by `edit` and resealed (so that the table's rules, not
/// its checksum, must refuse them): the part and rule that opening and
/// checking the whole table (layout.md 6.8) refuse them with.
pub fn refused_by_rule(bytes: &[u8], map: &Map, edit: impl FnOnce(&mut Vec<u8>)) -> (Part, String) {
    let mut b = bytes.to_vec();
    edit(&mut b);
    map.reseal(&mut b);
    match open_checked(b) {
        Err(achronyme_env::Error::InvalidToc { part, reason }) => (part, reason.to_string()),
        other => panic!("not refused by a rule of the table: {other:?}"),
    }
}

/// Opens `bytes` and checks the whole table of contents: what opening
/// checked before format 1.3, whose paged table is checked as it is used
/// (layout.md 6.8).
pub fn open_checked(bytes: Vec<u8>) -> Result<Archive, achronyme_env::Error> {
    let archive = Archive::from_bytes(bytes)?;
    archive.check_table()?;
    Ok(archive)
}

/// The bytes of `env` saved raw (see [`fast`]).
pub fn archive_bytes(env: &Environment) -> Vec<u8> {
    archive_bytes_with(env, &fast())
}

/// The bytes of `env` saved with `options`.
pub fn archive_bytes_with(env: &Environment, options: &SaveOptions) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "hostile.ach");
    save_environment(env, &path, options).expect("save succeeds");
    fs::read(&path).unwrap()
}

/// A record of `fields`, as the language's `{k: v, ...}` builds it.
pub fn rec(fields: &[(&str, Value)]) -> Value {
    Value::Record(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// The path of `name` in `dir`, as the string a builtin takes.
pub fn path(dir: &tempfile::TempDir, name: &str) -> Value {
    Value::from(dir.path().join(name).to_string_lossy().into_owned())
}

/// Makes a named pipe (FIFO) at `path`.
pub fn make_fifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");
}

/// Runs `f` on another thread and returns what it returns: a hang guard
/// for code that could block on the FIFO at `fifo`, not a speed check. If
/// `f` has not returned within a minute, the FIFO is opened for writing
/// (which releases a blocked open, so the process can end) and the test
/// fails saying `what` blocked.
pub fn unless_blocked_on<T: Send + 'static>(
    fifo: &Path,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(t) => t,
        Err(_) => {
            drop(fs::OpenOptions::new().write(true).open(fifo));
            panic!("{what} blocked for a minute on a FIFO");
        }
    }
}
