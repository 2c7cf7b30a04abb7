//! Errors about the structure of an archive name the structure at fault:
//! the header, the table of contents header, the name pool, an entry, the
//! table as a whole, the hash pool (layout.md section 8.1). They used to
//! say "(entry 0)" whatever was wrong, and bad header fields were
//! "metadata block is invalid".

#[macro_use]
mod common;

use achronyme_env::*;
use common::*;

/// Three bindings, saved raw: entries 0 "a", 1 "b", 2 "c".
fn three() -> Vec<u8> {
    let mut env = Environment::new();
    env.set("a", Value::Number(1.0));
    env.set("b", Value::from("two"));
    env.set("c", Value::Tensor(iota(&[4])));
    archive_bytes(&env)
}

/// Applies `edit` to the archive's bytes, reseals them, and returns the
/// error of opening it and checking its whole table, with its message.
fn open_edited(edit: impl FnOnce(&Map, &mut Vec<u8>)) -> (Error, String) {
    let mut bytes = three();
    let map = Map::of(&bytes);
    edit(&map, &mut bytes);
    map.reseal(&mut bytes);
    let err = open_checked(bytes).unwrap_err();
    let message = err.to_string();
    (err, message)
}

/// An edit of an archive's bytes, given where things are.
type Edit = fn(&Map, &mut Vec<u8>);

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn a_bad_header_field_names_the_header_not_the_metadata_block() {
    let cases: [(&str, Edit); 3] = [
        ("header names an unknown default codec", |_, b| b[12] = 9),
        ("runtime version is not NUL-padded UTF-8", |_, b| {
            b[24..28].copy_from_slice(&[0xff, 0xfe, 0, 1])
        }),
        ("table of contents location is invalid", |m, b| {
            put_u64(b, 40, m.toc_offset as u64 + 8)
        }),
    ];
    for (reason, edit) in cases {
        let (err, message) = open_edited(edit);
        assert_matches!(err, Error::InvalidToc { part: Part::Header, reason: r } if r == reason);
        assert!(message.contains("the header is invalid"), "{message}");
        assert!(!message.contains("metadata"), "{message}");
        assert!(!message.contains("entry"), "{message}");
    }
}

#[test]
fn a_bad_table_header_names_the_table_header_not_entry_0() {
    let (err, message) = open_edited(|m, b| b[m.toc_offset] = b'X');
    assert_matches!(
        err,
        Error::InvalidToc {
            part: Part::TocHeader,
            reason: "table of contents magic is not \"TOC\\0\""
        }
    );
    assert!(
        message.contains("the table of contents header is invalid"),
        "{message}"
    );
    assert!(!message.contains("entry 0"), "{message}");
    // The hash chunk size, at byte 56 of the table header.
    let (err, _) = open_edited(|m, b| b[m.toc_offset + 56] = 40);
    assert_matches!(
        err,
        Error::InvalidToc {
            part: Part::TocHeader,
            ..
        }
    );
}

#[test]
fn a_nul_in_the_name_pool_names_the_name_pool() {
    // The name pool follows the entries, the dimension pool (the tensor
    // "c" has one dimension) and the value pool (format 1.4, its length at
    // header byte 56); its first byte is "a".
    let (err, message) = open_edited(|m, b| {
        let values = u64::from_le_bytes(b[56..64].try_into().unwrap()) as usize;
        b[m.dims_at() + 8 + values] = 0
    });
    assert_matches!(
        err,
        Error::InvalidToc {
            part: Part::NamePool,
            reason: "a name contains NUL"
        }
    );
    assert!(message.contains("name pool"), "{message}");
    assert!(!message.contains("entry"), "{message}");
}

#[test]
fn a_bad_entry_names_its_index() {
    // Entry 1's type tag.
    let (err, message) = open_edited(|m, b| m.put_field(b, 1, field::TAG, 0xEE));
    assert_matches!(
        err,
        Error::InvalidToc {
            part: Part::Entry(1),
            reason: "unknown type tag"
        }
    );
    assert!(
        message.contains("entry 1 of the table of contents is invalid"),
        "{message}"
    );
}

/// The 56-byte entry of formats 1.0 to 1.4 has a filter byte and reserved
/// bytes (the 40-byte one of 1.5 has neither): nonzero, they are refused.
#[test]
fn a_56_byte_entry_with_its_filter_or_reserved_bytes_set_is_refused() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1_0.ach");
    let bytes = std::fs::read(path).unwrap();
    let map = Map::of(&bytes);
    assert_eq!(map.entry_size, 56);
    for (field, reason) in [
        (field::FILTER, "unknown filter"),
        (field::RESERVED, "reserved bytes are not zero"),
        (field::RESERVED + 3, "reserved bytes are not zero"),
    ] {
        let mut b = bytes.clone();
        b[map.entry_at(1) + field] = 1;
        map.reseal(&mut b);
        let err = open_checked(b).unwrap_err();
        assert_matches!(
            err,
            Error::InvalidToc { part: Part::Entry(1), reason: r } if r == reason
        );
    }
}

#[test]
fn a_misplaced_hash_pool_names_the_hash_pool() {
    let (err, message) =
        open_edited(|m, b| put_u64(b, m.toc_offset + 40, m.hashes_offset as u64 + 64));
    assert_matches!(
        err,
        Error::InvalidToc {
            part: Part::HashPool,
            // Rule 32: a paged table checks it at open, before the
            // entries' totals (rule 31).
            reason: "table of contents is not right after the hash pool"
        }
    );
    assert!(message.contains("the hash pool is invalid"), "{message}");
    assert!(!message.contains("entry"), "{message}");
}

#[test]
fn a_rule_about_all_entries_names_the_whole_table() {
    // A compressed chunk size (byte 60 of the table header) while no blob
    // is compressed: found only after the last entry.
    let (err, message) = open_edited(|m, b| b[m.toc_offset + 60] = 16);
    assert_matches!(
        err,
        Error::InvalidToc {
            part: Part::Toc,
            reason: "compressed chunk size set but no blob is compressed"
        }
    );
    assert!(
        message.contains("the table of contents is invalid"),
        "{message}"
    );
    assert!(!message.contains("entry"), "{message}");
}
