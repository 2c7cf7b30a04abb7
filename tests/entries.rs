//! The two forms of a table entry (layout.md 6.2): the 56-byte one of
//! formats 1.0 to 1.4 and the 40-byte one of 1.5. The writer writes the
//! compact form; the reader reads both, and the same table in either form
//! must read the same.

#[macro_use]
mod common;

use achronyme_env::layout::{COMPACT_MAX, CompactEntry, ENTRY_LEN, RawEntry};
use achronyme_env::*;
use common::*;
use proptest::prelude::*;
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U32, U64};

/// `bytes` (a 1.5 archive) with its table rewritten in the 56-byte form
/// and its version set to 1.4: the same entries, pools, metadata and page
/// index summary; the page digests, the top digests and the trailer
/// recomputed for the longer table.
fn widened(bytes: &[u8]) -> Vec<u8> {
    let map = Map::of(bytes);
    assert_eq!(map.entry_size, 40);
    let (_, body_len) = map.pages.expect("a paged table");
    let toc = &bytes[map.toc_offset..map.toc_offset + map.toc_len];
    let mut body = toc[..64].to_vec();
    body[4..8].copy_from_slice(&(ENTRY_LEN as u32).to_le_bytes());
    for e in &map.entries {
        body.extend_from_slice(e.as_bytes());
    }
    let dims = 64 + 40 * map.entries.len();
    body.extend_from_slice(&toc[dims..body_len]);
    // The page index: its head as it was, then the page digests and the
    // top digests for the new length (layout.md 6.8), filled by reseal.
    let dlen = map.checksum.len();
    let pages = body.len().div_ceil(4096);
    let tops = (pages * dlen).div_ceil(4096);
    let mut out = bytes[..map.toc_offset].to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&toc[body_len..body_len + 64]);
    out.resize(out.len() + (pages + tops) * dlen, 0);
    let toc_len = out.len() - map.toc_offset;
    out.extend_from_slice(&[0; 64]);
    out[6..8].copy_from_slice(&4u16.to_le_bytes());
    out[48..56].copy_from_slice(&(toc_len as u64).to_le_bytes());
    achronyme_env::fuzzing::reseal(&mut out).expect("locatable");
    out
}

/// Bindings of every kind the table holds differently: small values in the
/// value pool, tensors with blobs of their own, a shared blob, a nested
/// tensor in the storage section.
fn mixed(small: &[f64], big: usize, shared: bool) -> Environment {
    let mut env = Environment::new();
    for (i, &x) in small.iter().enumerate() {
        env.set(format!("n{i:03}"), Value::Number(x));
        env.set(format!("s{i:03}"), Value::from(format!("text {x}")));
        env.set(
            format!("t{i:03}"),
            Value::Tensor(Tensor::from_vec(vec![x; i % 5])),
        );
    }
    let large = Value::Tensor(iota(&[big.max(1), 600]));
    env.set("large", large.clone());
    if shared {
        env.set("large_again", large.clone());
        let mut r = Record::new();
        r.insert("w", Value::Tensor(iota(&[100, 100])));
        r.insert("label", Value::from("nested"));
        env.set("model", Value::Record(r));
    }
    env
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The same table in both forms: every binding, the listing, the
    /// summary and a full verification agree.
    #[test]
    fn a_table_reads_the_same_in_either_entry_form(
        small in proptest::collection::vec(-1e6f64..1e6, 0..60),
        big in 1usize..20,
        shared in any::<bool>(),
    ) {
        let env = mixed(&small, big, shared);
        let compact = archive_bytes(&env);
        let wide = widened(&compact);
        // 16 bytes more per entry, and the page digests of the longer table.
        prop_assert!(wide.len() >= compact.len() + 16 * Map::of(&compact).entries.len());
        let a = open_checked(compact).unwrap();
        let b = open_checked(wide).unwrap();
        prop_assert_eq!(a.format_version(), (1, 5));
        prop_assert_eq!(b.format_version(), (1, 4));
        b.verify().unwrap();
        prop_assert!(a.names(Section::Bindings).eq(b.names(Section::Bindings)));
        let (ia, ib) = (a.info(), b.info());
        prop_assert_eq!(ia.entries.len(), ib.entries.len());
        for (x, y) in ia.entries.iter().zip(&ib.entries) {
            prop_assert_eq!(&x.name, &y.name);
            prop_assert_eq!(x.stored_bytes, y.stored_bytes);
        }
        for (name, v) in env.iter() {
            prop_assert_eq!(&b.get(name).unwrap(), v, "{}", name);
            prop_assert_eq!(&a.get(name).unwrap(), v, "{}", name);
            prop_assert_eq!(
                a.stored_digests(Section::Bindings, name).unwrap(),
                b.stored_digests(Section::Bindings, name).unwrap()
            );
        }
    }

    /// Any entry whose fields fit the compact form narrows and widens back
    /// to itself, byte for byte.
    #[test]
    fn narrowing_then_widening_gives_the_entry_back(
        small in (any::<u32>(), 0u32..=u16::MAX as u32, 0u32..=255, any::<u32>(), any::<u32>()),
        big in (0..=COMPACT_MAX, 0..=COMPACT_MAX, 0..=COMPACT_MAX),
        bytes in any::<[u8; 3]>(),
        dims in any::<u32>(),
    ) {
        let e = RawEntry {
            name_offset: small.0.into(),
            name_len: small.1.into(),
            blob_offset: big.0.into(),
            stored_len: big.1.into(),
            raw_len: big.2.into(),
            dims_index: dims.into(),
            ndim: small.2.into(),
            hash_index: small.3.into(),
            hash_count: small.4.into(),
            tag: bytes[0],
            section: bytes[1],
            codec: bytes[2],
            filter: 0,
            reserved: [0; 4],
        };
        let c = CompactEntry::narrow(&e).expect("fits");
        prop_assert_eq!(c.as_bytes().len(), 40);
        let (back, read) = (c.widen(), RawEntry::read(c.as_bytes(), 40).unwrap());
        prop_assert_eq!(back.as_bytes(), e.as_bytes());
        prop_assert_eq!(read.as_bytes(), e.as_bytes());
    }
}

/// A field the compact form cannot hold, or a filter or reserved byte it
/// has no room for, does not narrow (so the writer refuses to write it
/// rather than store something else).
#[test]
fn an_entry_that_does_not_fit_the_compact_form_does_not_narrow() {
    let fits = RawEntry {
        name_offset: U32::new(0),
        name_len: U32::new(1),
        blob_offset: U64::new(COMPACT_MAX),
        stored_len: U64::new(COMPACT_MAX),
        raw_len: U64::new(COMPACT_MAX),
        dims_index: U32::new(0),
        ndim: U32::new(255),
        hash_index: U32::new(0),
        hash_count: U32::new(1),
        tag: 1,
        section: 0,
        codec: 0,
        filter: 0,
        reserved: [0; 4],
    };
    assert!(CompactEntry::narrow(&fits).is_some());
    let over = COMPACT_MAX + 1;
    type Edit = Box<dyn Fn(&mut RawEntry)>;
    let cases: [(&str, Edit); 7] = [
        (
            "blob_offset",
            Box::new(move |e| e.blob_offset = over.into()),
        ),
        ("stored_len", Box::new(move |e| e.stored_len = over.into())),
        ("raw_len", Box::new(|e| e.raw_len = u64::MAX.into())),
        ("name_len", Box::new(|e| e.name_len = 65_536.into())),
        ("ndim", Box::new(|e| e.ndim = 256.into())),
        ("filter", Box::new(|e| e.filter = 1)),
        ("reserved", Box::new(|e| e.reserved[3] = 1)),
    ];
    for (what, edit) in cases {
        let mut e = fits;
        edit(&mut e);
        assert!(CompactEntry::narrow(&e).is_none(), "{what}");
    }
    // Neither form has another size.
    assert!(RawEntry::read(&[0; 64], 48).is_none());
    assert!(RawEntry::read(&[0; 39], 40).is_none());
}

/// Every kind of entry, for the tests below: small values in the pool, a
/// tensor with a blob of its own, one sharing it, a nested tensor in the
/// storage section.
fn kinds() -> Environment {
    mixed(&[1.5, -2.0, 3.25], 20, true)
}

/// Rule 12 (layout.md 8.1) comes first on a paged table too: an entry size
/// that is neither 56 nor 40 says so, rather than that the sizes it
/// implies do not add up.
#[test]
fn an_unknown_entry_size_is_refused_by_its_own_rule() {
    let bytes = archive_bytes(&kinds());
    let map = Map::of(&bytes);
    assert!(map.pages.is_some());
    for size in [0u32, 1, 48, 57, 64, u32::MAX] {
        let mut b = bytes.clone();
        b[map.toc_offset + 4..map.toc_offset + 8].copy_from_slice(&size.to_le_bytes());
        map.reseal(&mut b);
        let err = Archive::from_bytes(b).err();
        assert!(
            matches!(
                err,
                Some(Error::InvalidToc {
                    part: Part::TocHeader,
                    reason: "entry size is not 56 or 40"
                })
            ),
            "entry size {size}: {err:?}"
        );
    }
}

/// Values each form holds, swept over every field of every entry of the
/// same table in both forms (the 56-byte one holds what the compact one
/// cannot: lengths up to 2^64 - 1): nothing panics, and every edit that
/// opens is used safely (`fuzzing::exercise_archive`).
#[test]
fn extreme_fields_in_either_form_never_panic() {
    use field::*;
    let compact = archive_bytes(&kinds());
    let wide = widened(&compact);
    let fields = [
        NAME_OFFSET,
        NAME_LEN,
        BLOB_OFFSET,
        STORED_LEN,
        RAW_LEN,
        DIMS_INDEX,
        NDIM,
        HASH_INDEX,
        HASH_COUNT,
        TAG,
        SECTION,
        CODEC,
    ];
    let values = [
        0,
        1,
        7,
        64,
        255,
        4097,
        65_535,
        u64::from(u32::MAX),
        COMPACT_MAX - 63,
        COMPACT_MAX,
        COMPACT_MAX + 1,
        1 << 63,
        u64::MAX - 8,
        u64::MAX,
    ];
    let mut refused = 0;
    for bytes in [&compact, &wide] {
        let map = Map::of(bytes);
        for i in 0..map.entries.len() {
            for f in fields {
                let width = map.field_width(f);
                for v in values
                    .into_iter()
                    .filter(|&v| width == 8 || v < 1 << (8 * width))
                {
                    let mut b = bytes.clone();
                    map.put_field(&mut b, i, f, v);
                    map.reseal(&mut b);
                    refused += usize::from(open_checked(b.clone()).is_err());
                    achronyme_env::fuzzing::exercise_archive(b);
                }
            }
        }
    }
    assert!(refused > 1000, "most edits break a rule ({refused})");
}

/// The declarations only a 56-byte entry can make (lengths near 2^64) are
/// refused by the same rules: a lookup of an inline value claimed to end
/// past the pool, and the walk of the table.
#[test]
fn lengths_near_2_64_in_a_56_byte_table_are_refused() {
    let mut env = Environment::new();
    env.set("a", Value::Number(1.0));
    env.set("b", Value::from("x"));
    env.set("c", Value::Number(2.0));
    let wide = widened(&archive_bytes(&env));
    let map = Map::of(&wide);
    assert_eq!(map.entry_size, 56);
    let mut b = wide.clone();
    map.put_field(&mut b, 2, field::STORED_LEN, u64::MAX - 8);
    map.put_field(&mut b, 2, field::RAW_LEN, u64::MAX - 8);
    map.reseal(&mut b);
    assert_matches!(
        Archive::from_bytes(b.clone()).unwrap().get("c"),
        Err(Error::InvalidToc {
            part: Part::Entry(2),
            reason: "inline value lies past the value pool"
        })
    );
    assert_matches!(
        open_checked(b),
        Err(Error::InvalidToc {
            part: Part::Entry(2),
            ..
        })
    );
}

/// The reader takes the entry form from the table header alone, whatever
/// the minor version says (layout.md 10: a reader does not interpret it).
#[test]
fn the_entry_form_does_not_depend_on_the_minor_version() {
    let env = kinds();
    let compact = archive_bytes(&env);
    let mut wide_15 = widened(&compact);
    wide_15[6..8].copy_from_slice(&5u16.to_le_bytes());
    achronyme_env::fuzzing::reseal(&mut wide_15).unwrap();
    let mut compact_14 = compact;
    compact_14[6..8].copy_from_slice(&4u16.to_le_bytes());
    achronyme_env::fuzzing::reseal(&mut compact_14).unwrap();
    for b in [wide_15, compact_14] {
        let a = open_checked(b).unwrap();
        assert_eq!(&a.get("large").unwrap(), env.get("large").unwrap());
    }
}

/// 438 bindings with 100-byte names, `value(i)` each.
fn long_names(value: impl Fn(usize) -> Value) -> Vec<u8> {
    let mut env = Environment::new();
    for i in 0..438 {
        env.set(long_name(i), value(i));
    }
    archive_bytes(&env)
}

fn long_name(i: usize) -> String {
    format!("k{i:04}{}", "x".repeat(95))
}

/// A lookup in a 56-byte table checks the page of every byte of the entry
/// it reads: entry 437 starts 40 bytes before a page boundary, so its tag
/// is on a page no other part of its lookup reads. Damaged there (not
/// resealed), the lookup fails that page's digest.
#[test]
fn a_lookup_checks_every_page_of_a_56_byte_entry() {
    let wide = widened(&long_names(|i| Value::from(format!("{i}").repeat(1666))));
    let map = Map::of(&wide);
    assert_eq!(map.entry_size, 56);
    let start = map.entry_at(437) - map.toc_offset;
    assert_eq!((start + 40) % 4096, 0, "bytes 40.. start a page");
    let mut b = wide.clone();
    b[map.entry_field(437, field::TAG)] = 0xEE;
    let got = Archive::from_bytes(b).unwrap().get(&long_name(437));
    assert_matches!(got, Err(Error::TocChecksum));
}

/// A lookup in a paged 56-byte table refuses an entry whose reserved bytes
/// are set (rule 18, in the bounded check of layout.md 6.8).
#[test]
fn a_lookup_in_a_56_byte_table_checks_its_reserved_bytes() {
    let compact = archive_bytes(&kinds());
    let name = Archive::from_bytes(compact.clone()).unwrap().info().entries[3]
        .name
        .clone();
    let wide = widened(&compact);
    let map = Map::of(&wide);
    let mut b = wide.clone();
    b[map.entry_at(3) + field::RESERVED + 1] = 1;
    map.reseal(&mut b);
    assert_matches!(
        Archive::from_bytes(b).unwrap().get(&name),
        Err(Error::InvalidToc {
            part: Part::Entry(3),
            reason: "reserved bytes are not zero"
        })
    );
}

/// A lookup in a 56-byte table checks the pages of the shape it reads:
/// entry 219's shape lies on a page of the dimension pool that only its
/// lookup reads. Damaged there (not resealed), the lookup fails its digest.
#[test]
fn a_lookup_checks_the_pages_of_a_56_byte_tables_shape() {
    let wide = widened(&long_names(|i| Value::Tensor(iota(&[512 + i % 2]))));
    let map = Map::of(&wide);
    assert_eq!(map.entry_size, 56);
    let dim = map.dims_at() + 8 * map.entries[219].dims_index.get() as usize;
    let mut b = wide.clone();
    b[dim] ^= 0x01;
    let got = Archive::from_bytes(b).unwrap().get(&long_name(219));
    assert_matches!(got, Err(Error::TocChecksum));
}

/// A failed read of a constant's blob names the entry's index in the whole
/// table (after every binding), not its index among the constants.
#[test]
fn a_read_error_in_the_constants_names_the_table_index() {
    struct Failing(MemorySource, u64);
    impl Source for Failing {
        fn len(&self) -> u64 {
            self.0.len()
        }
        fn read(&self, offset: u64, len: u64) -> std::result::Result<Bytes, ReadError> {
            if (offset..offset.saturating_add(len)).contains(&self.1) {
                return Err(ReadError::Io(std::io::Error::other("injected")));
            }
            self.0.read(offset, len)
        }
    }
    let mut env = Environment::new();
    env.set("a", Value::Number(1.0));
    env.set("b", Value::Number(2.0));
    env.set_constant("K", Value::Tensor(iota(&[512])));
    let opts = SaveOptions {
        include_constants: true,
        ..fast()
    };
    let bytes = archive_bytes_with(&env, &opts);
    let map = Map::of(&bytes);
    assert_eq!(map.entries[2].section, 1);
    let at = map.entries[2].blob_offset.get();
    let source = Failing(MemorySource::from_vec(bytes), at);
    let archive = Archive::from_source(std::sync::Arc::new(source)).unwrap();
    let mut into = Environment::new();
    let err = restore_from_archive(&mut into, &archive, &RestoreOptions::default()).unwrap_err();
    assert_matches!(err, Error::SourceRead { index: Some(2), .. });
}
