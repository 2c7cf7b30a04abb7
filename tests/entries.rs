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
