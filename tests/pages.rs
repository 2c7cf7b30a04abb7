//! The paged table of contents (format 1.3, layout.md 6.8): an open reads
//! the table's header, metadata and page index; a lookup checks only the
//! pages it reads; walking the table (a listing, a restore, verify) checks
//! all of it. Damage anywhere in the table is still found by whatever
//! reads it, and never turns into wrong data.

#[macro_use]
mod common;

use achronyme_env::layout::{PAGE_INDEX_HEAD_LEN, TOC_PAGE_LOG2};
use achronyme_env::*;
use common::*;

const PAGE: usize = 1 << TOC_PAGE_LOG2;

/// `n` small bindings `v000000`, ... (`testdata::many_small`), saved raw.
fn many(n: usize) -> (Environment, Vec<u8>, Map) {
    let env = testdata::many_small(n);
    let bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    (env, bytes, map)
}

/// File offset of entry `i`'s name.
fn name_at(bytes: &[u8], map: &Map, i: usize) -> usize {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let toc = map.toc_offset;
    // After the dimension pool and the value pool (format 1.4).
    let size = u32::from_le_bytes(bytes[toc + 4..toc + 8].try_into().unwrap()) as usize;
    let pool = toc + 64 + size * u64_at(toc + 8) + 8 * u64_at(toc + 16) + u64_at(56);
    let off = u32::from_le_bytes(bytes[map.entry_field(i, 0)..][..4].try_into().unwrap());
    pool + off as usize
}

#[test]
fn every_table_ends_with_a_page_index_that_covers_its_pages() {
    let (env, bytes, map) = many(2000);
    let (log2, body) = map.pages.expect("a paged table");
    assert_eq!(log2, TOC_PAGE_LOG2);
    let pages = body.div_ceil(PAGE);
    assert!(pages > 10, "{pages} pages: the test needs several");
    let dlen = map.checksum.len();
    let tops = (pages * dlen).div_ceil(PAGE);
    assert_eq!(
        map.toc_len,
        body + PAGE_INDEX_HEAD_LEN as usize + pages * dlen + tops * dlen
    );
    // Each page digest is its page's, in order, and each top digest that
    // of a page-sized piece of the page digests.
    let toc = &bytes[map.toc_offset..map.toc_offset + map.toc_len];
    let digests = &toc[body + PAGE_INDEX_HEAD_LEN as usize..][..pages * dlen];
    for (k, page) in toc[..body].chunks(PAGE).enumerate() {
        assert_eq!(&digests[k * dlen..][..dlen], map.checksum.digest(page));
    }
    let top = &toc[toc.len() - tops * dlen..];
    for (k, piece) in digests.chunks(PAGE).enumerate() {
        assert_eq!(&top[k * dlen..][..dlen], map.checksum.digest(piece));
    }
    // The head's counts are the entries'.
    let archive = Archive::from_bytes(bytes).unwrap();
    let info = archive.info();
    assert_eq!(info.num_bindings, 2000);
    assert_eq!((info.num_constants, info.compressed_blobs), (0, 0));
    assert_eq!(info.bindings.len(), env.iter().count());
}

/// The laziness itself: damage in one page of the table stops what reads
/// that page, and nothing else, until something walks the whole table.
#[test]
fn damage_in_one_page_fails_only_what_reads_it_until_the_table_is_walked() {
    let (env, mut bytes, map) = many(2000);
    // A name on a page that neither the open (the table header's page and
    // the metadata's) nor the search for "v001999" (entries 1000 and up)
    // reads.
    let page = |offset: usize| (offset - map.toc_offset) / PAGE;
    let (_, body) = map.pages.unwrap();
    let mut read: Vec<usize> = (1000..2000)
        .map(|j| page(name_at(&bytes, &map, j)))
        .collect();
    read.push(page(map.toc_offset + body - 1));
    // And the pages of its value, in the table's value pool (format 1.4).
    let value = map.payload(1999);
    read.extend([page(value.start), page(value.end - 1)]);
    let far = (0..1000)
        .find(|&j| !read.contains(&page(name_at(&bytes, &map, j))))
        .expect("a name on a page of its own");
    let far_name = format!("v{far:06}");
    let at = name_at(&bytes, &map, far);
    bytes[at + 3] ^= 0x01; // its name damaged, the page digest unchanged
    let archive = Archive::from_bytes(bytes).expect("open reads no entry page");
    assert_eq!(
        &archive.get("v001999").unwrap(),
        env.get("v001999").unwrap()
    );
    assert_matches!(archive.get(&far_name), Err(Error::TocChecksum));
    assert!(!archive.contains(Section::Bindings, &far_name));
    assert!(archive.binding_info(Section::Bindings, &far_name).is_none());
    assert_matches!(archive.check_table(), Err(Error::TocChecksum));
    // A listing of a table that fails lists nothing, a restore refuses, and
    // verify reports the table.
    assert_eq!(archive.names(Section::Bindings).count(), 0);
    assert!(archive.info().bindings.is_empty());
    let mut back = Environment::new();
    assert_matches!(
        restore_from_archive(&mut back, &archive, &RestoreOptions::default()),
        Err(Error::TocChecksum)
    );
    assert_eq!(back.iter().count(), 0, "nothing half-restored");
    let report = archive.verify_report();
    assert!(!report.is_ok());
    assert!(
        report.table.as_deref().unwrap().contains("checksum"),
        "{report}"
    );
}

/// One flipped bit in each byte of a several-page table, its page index
/// and the trailer: open, the whole-table check or (for the closing digest)
/// verify refuses it, and every lookup either fails or returns the
/// original value.
#[test]
fn a_flip_anywhere_in_a_paged_table_is_detected() {
    let (env, bytes, map) = many(300);
    assert!(map.pages.unwrap().1 > 2 * PAGE, "at least three pages");
    let probes = ["v000000", "v000150", "v000299", "v000301"];
    let mut rng = testdata::Rng::new(7);
    let (mut at_open, mut by_check) = (0, 0);
    for i in map.toc_offset..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 1 << (rng.next_u64() % 8);
        let Ok(archive) = Archive::from_bytes(b) else {
            at_open += 1;
            continue;
        };
        for name in probes {
            if let Ok(v) = archive.get(name) {
                assert_eq!(Some(&v), env.get(name), "flip at {i} changed {name}");
            }
        }
        let closing = bytes.len() - 32..bytes.len();
        assert!(
            archive.check_table().is_err() || closing.contains(&i),
            "flip at {i} passed"
        );
        assert!(
            !archive.verify_report().is_ok(),
            "flip at {i} passed verify"
        );
        by_check += 1;
    }
    assert_eq!(at_open + by_check, bytes.len() - map.toc_offset);
    assert!(
        at_open > 0 && by_check > 0,
        "{at_open} at open, {by_check} later"
    );
}

/// The page index's own rules, each behind a resealed trailer: its size
/// byte, magic, reserved bytes, and counts (checked against the entries
/// when the table is walked).
#[test]
fn a_hostile_page_index_is_refused_with_its_rule() {
    // Several pages, so that another page size gives another index length.
    let (_env, bytes, map) = many(300);
    let (_, body) = map.pages.unwrap();
    let head = map.toc_offset + body;
    let edited = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        edit(&mut b);
        map.reseal(&mut b);
        open_checked(b).unwrap_err()
    };
    let toc = map.toc_offset;
    for (log2, reason) in [
        (11, "page size is outside 4 KiB..1 MiB"),
        (21, "page size is outside 4 KiB..1 MiB"),
        (13, "section sizes do not add up to its length"),
    ] {
        let err = edited(&|b| b[toc + 62] = log2);
        assert_matches!(err, Error::InvalidToc { part: Part::TocHeader, reason: r } if r == reason);
    }
    let err = edited(&|b| b[head] = b'Q');
    assert_matches!(
        err,
        Error::InvalidToc {
            part: Part::PageIndex,
            reason: "magic is not \"PGX\\0\""
        }
    );
    let err = edited(&|b| b[head + 5] = 1);
    assert_matches!(
        err,
        Error::ReservedNotZero {
            field: "page index",
            ..
        }
    );
    // Counts that do not add up are refused at open; counts that add up
    // but misplace entries between sections, when the table is walked.
    let err = edited(&|b| b[head + 8] ^= 1);
    assert_matches!(
        err,
        Error::InvalidToc {
            part: Part::PageIndex,
            reason: "counts do not add up to the entries"
        }
    );
    let err = edited(&|b| {
        b[head + 8] -= 1; // one binding fewer
        b[head + 16] += 1; // one constant more
    });
    assert_matches!(
        err,
        Error::InvalidToc {
            part: Part::PageIndex,
            reason: "counts differ from the entries'"
        }
    );
    let err = edited(&|b| {
        b[head + 8] -= 1; // one binding fewer
        b[head + 32] += 1; // one storage entry more
    });
    assert_matches!(
        err,
        Error::InvalidToc {
            part: Part::PageIndex,
            reason: "counts differ from the entries'"
        }
    );
    // Compressed blobs, storage bytes, shared entries.
    for at in [40, 48, 56] {
        let err = edited(&|b| b[head + at] = 1);
        assert_matches!(
            err,
            Error::InvalidToc {
                part: Part::PageIndex,
                reason: "counts differ from the entries'"
            }
        );
    }
}

/// An entry a lookup lands on is checked by its own rules before anything
/// is read through it, whether or not the rest of the table was walked.
#[test]
fn a_lookup_checks_the_entry_it_lands_on() {
    let mut env = testdata::many_small(50);
    // A blob of its own (the others live in the table's value pool).
    env.set("v000010", Value::Tensor(iota(&[1024])));
    let bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    let i = map.index_of(&bytes, "v000010");
    assert!(!map.entries[i].is_inline());
    for (field, value, reason) in [
        // blob_offset past the hash pool
        (
            field::BLOB_OFFSET,
            map.hashes_offset as u64 + 64,
            "blob or its digests lie past the hash pool",
        ),
        // hash_index past the pool
        (
            field::HASH_INDEX,
            map.hash_count as u64,
            "blob or its digests lie past the hash pool",
        ),
        // blob_offset not aligned
        (
            field::BLOB_OFFSET,
            65,
            "blob is not where the previous one ended",
        ),
    ] {
        let mut b = bytes.clone();
        map.put_field(&mut b, i, field, value);
        map.reseal(&mut b);
        let archive = Archive::from_bytes(b).unwrap();
        assert_matches!(
            archive.get("v000010"),
            Err(Error::InvalidToc { part: Part::Entry(e), reason: r }) if e == i as u64 && r == reason
        );
        // A neighbour is unaffected until the table is walked.
        assert!(archive.get("v000011").is_ok());
        assert!(archive.check_table().is_err());
    }
    // An inline entry (format 1.4): its value inside the value pool, and a
    // tensor's on a multiple of 8.
    let pool_len = u64::from_le_bytes(bytes[56..64].try_into().unwrap());
    let tensor = map.index_of(&bytes, "v000014");
    let number = map.index_of(&bytes, "v000012");
    assert!(map.entries[tensor].is_inline() && map.entries[number].is_inline());
    let at_tensor = map.entries[tensor].blob_offset.get();
    for (i, name, value, reason) in [
        (
            number,
            "v000012",
            pool_len,
            "inline value lies past the value pool",
        ),
        (
            number,
            "v000012",
            achronyme_env::layout::COMPACT_MAX - 4,
            "inline value lies past the value pool",
        ),
        (
            tensor,
            "v000014",
            at_tensor + 4,
            "inline value is not where the previous one ended",
        ),
    ] {
        let mut b = bytes.clone();
        map.put_field(&mut b, i, field::BLOB_OFFSET, value);
        map.reseal(&mut b);
        let archive = Archive::from_bytes(b).unwrap();
        assert_matches!(
            archive.get(name),
            Err(Error::InvalidToc { part: Part::Entry(e), reason: r }) if e == i as u64 && r == reason
        );
        assert!(archive.get("v000013").is_ok());
        assert!(archive.check_table().is_err());
    }
}

/// Older archives (no page index) are still read, and checked whole at
/// open as before.
#[test]
fn archives_without_a_page_index_still_read() {
    for name in ["v1_0.ach", "v1_1.ach"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(Map::of(&bytes).pages, None);
        let archive = Archive::from_bytes(bytes).unwrap();
        archive.check_table().unwrap();
        archive.verify().unwrap();
        assert!(archive.names(Section::Bindings).count() > 0);
    }
}
