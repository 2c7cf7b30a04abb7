//! The chunk checksum (layout.md 4.3): XXH3-128 by default, SHA-256 on
//! request, recorded in the archive; archives written before format 1.2
//! (SHA-256 only) still read, from frozen fixtures written by the 1.1 code.

#[macro_use]
mod common;

use std::path::Path;

use achronyme_env::*;
use common::*;
use proptest::prelude::*;

/// What `tests/fixtures/v1_0.ach` holds (written by the format 1.1 code,
/// before this reader existed, with `Compression::None`); `v1_1.ach` holds
/// the same plus `c`, a compressed tensor.
fn fixture_env(with_compressed: bool) -> Environment {
    let mut env = Environment::new();
    let t = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    env.set("t", Value::Tensor(t));
    env.set("x", Value::Number(1.5));
    env.set("s", Value::from("hello"));
    let v = vec![Value::Number(1.0), Value::Boolean(true), Value::Null];
    env.set("v", Value::Vector(v));
    if with_compressed {
        let smooth: Vec<f64> = (0..1024).map(|i| (i as f64 * 0.01).sin()).collect();
        env.set("c", Value::Tensor(Tensor::from_vec(smooth)));
    }
    env
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn archives_of_formats_1_0_and_1_1_still_open_load_and_verify() {
    for (file, version, compressed) in [("v1_0.ach", (1, 0), false), ("v1_1.ach", (1, 1), true)] {
        let archive = Archive::open(fixture(file)).unwrap();
        assert_eq!(archive.format_version(), version, "{file}");
        assert_eq!(archive.checksum(), Checksum::Sha256, "{file}");
        assert_eq!(archive.info().compressed, compressed, "{file}");
        let env = fixture_env(compressed);
        for (name, v) in env.iter() {
            assert_eq!(&archive.get(name).unwrap(), v, "{file}: {name}");
        }
        assert_eq!(archive.len(), env.iter().count());
        archive.verify().unwrap();
        // Its digests are the SHA-256 of its chunks.
        let blob = archive.stored_blob(Section::Bindings, "x").unwrap();
        let digests = archive.stored_digests(Section::Bindings, "x").unwrap();
        assert_eq!(digests, [hash::sha256(&[blob.as_slice()])]);
    }
}

#[test]
fn a_fixture_with_a_flipped_blob_byte_fails_its_sha256_check() {
    let mut bytes = std::fs::read(fixture("v1_0.ach")).unwrap();
    let map = Map::of(&bytes);
    let i = map.index_of(&bytes, "s");
    bytes[map.payload(i).start + 3] ^= 1;
    let archive = Archive::from_bytes(bytes).unwrap();
    assert_matches!(archive.get("s"), Err(Error::ChecksumMismatch { ref name, chunk: 0, .. }) if name == "s");
}

/// The algorithm is the one asked for, recorded in the table of contents
/// header, and decides the digests' length in the pool; SHA-256 archives
/// have byte 61 zero and 32-byte digests, as the 1.0/1.1 writer wrote.
/// Every archive is 1.4 now (its table ends with a page index and holds
/// the small values).
#[test]
fn the_checksum_is_recorded_and_sets_digest_length_and_version() {
    let env = testdata::every_type();
    for (checksum, byte, dlen, minor) in
        [(Checksum::Xxh3, 1u8, 16, 5), (Checksum::Sha256, 0, 32, 5)]
    {
        let opts = SaveOptions { checksum, ..fast() };
        let bytes = archive_bytes_with(&env, &opts);
        let map = Map::of(&bytes);
        assert_eq!(bytes[map.toc_offset + 61], byte);
        assert_eq!(map.checksum, checksum);
        assert_eq!(checksum.len(), dlen);
        let archive = Archive::from_bytes(bytes.clone()).unwrap();
        assert_eq!(archive.format_version(), (1, minor));
        assert_eq!(archive.info().checksum, checksum);
        // The pool ends where the padding before the table starts.
        assert!(map.toc_offset - map.pool_end() < 64);
        for name in ["text", "number"] {
            let blob = archive.stored_blob(Section::Bindings, name).unwrap();
            let stored = archive.stored_digests(Section::Bindings, name).unwrap();
            assert_eq!(stored.len(), 1);
            assert_eq!(
                &stored[0][..dlen],
                checksum.digest(blob.as_slice()).as_slice()
            );
            assert!(stored[0][dlen..].iter().all(|&b| b == 0));
        }
        archive.verify().unwrap();
    }
}

/// An unknown algorithm byte is refused at open, naming the part; so is a
/// byte that names the other algorithm, whose digests would not fill the
/// page index that ends the table (layout.md 6.8: its length follows
/// from the digest length).
#[test]
fn an_unknown_or_swapped_checksum_byte_is_refused_at_open() {
    let bytes = archive_bytes(&testdata::every_type());
    let map = Map::of(&bytes);
    for (byte, part, reason) in [
        (2u8, Part::TocHeader, "unknown checksum algorithm"),
        (255, Part::TocHeader, "unknown checksum algorithm"),
        (
            0,
            Part::TocHeader,
            "section sizes do not add up to its length",
        ),
    ] {
        let mut b = bytes.clone();
        b[map.toc_offset + 61] = byte;
        // Resealed with the algorithm the edited byte names (SHA-256 for
        // an unknown byte), as a reader hashes the table with it.
        achronyme_env::fuzzing::reseal(&mut b).unwrap();
        let err = Archive::from_bytes(b).unwrap_err();
        assert_matches!(err, Error::InvalidToc { part: p, reason: r } if p == part && r == reason);
    }
}

/// A large blob's XXH3 digests, checked on every core, catch a flip in any
/// of its 1 MiB chunks and name that chunk.
#[test]
fn a_flip_in_any_chunk_of_a_large_blob_names_the_chunk() {
    let mut env = Environment::new();
    env.set(
        "big",
        Value::Tensor(Tensor::from_vec(testdata::normal(5 << 17, 1))),
    );
    let bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    let e = &map.entries[0];
    assert_eq!(e.hash_count.get(), 6, "5 MiB and a 64-byte head: 6 chunks");
    for k in 0..6u64 {
        let mut b = bytes.clone();
        // The last chunk is the span's last 64 bytes.
        let at = e.blob_offset.get() + k * (1 << 20) + 10;
        b[at as usize] ^= 0x10;
        let archive = Archive::from_bytes(b).unwrap();
        assert_matches!(
            archive.get("big"),
            Err(Error::ChecksumMismatch { chunk, offset, .. })
                if chunk == k && offset == e.blob_offset.get() + k * (1 << 20)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any tensor length (across the 1 MiB chunk boundaries) and any text
    /// round-trip and verify under either algorithm, compressed or not.
    #[test]
    fn every_algorithm_round_trips(
        seed in any::<u64>(),
        len in 0usize..300_000,
        text in ".{0,200}",
        sha in any::<bool>(),
        compress in any::<bool>(),
    ) {
        let mut env = testdata::every_type();
        let mut data = testdata::normal(len, seed);
        // Half of it smooth, so that compression has chunks to pack.
        data.truncate(len / 2);
        data.extend(testdata::smooth(len - len / 2));
        env.set("r", Value::Tensor(Tensor::from_vec(data)));
        env.set("u", Value::String(text));
        let checksum = if sha { Checksum::Sha256 } else { Checksum::Xxh3 };
        let base = if compress { packed() } else { fast() };
        let opts = SaveOptions { checksum, ..base };
        let archive = Archive::from_bytes(archive_bytes_with(&env, &opts)).unwrap();
        prop_assert_eq!(archive.checksum(), checksum);
        for (name, v) in env.iter() {
            prop_assert_eq!(&archive.get(name).unwrap(), v);
        }
        prop_assert!(archive.verify().is_ok());
    }
}

/// A small value lives in the table since format 1.4, where it has no
/// digests of its own: it reports those of the raw blob it would have had,
/// so `ach diff` finds it unchanged against an older archive that stored
/// it in a blob (here the 1.0 fixture, whose blobs are raw and SHA-256).
#[test]
fn an_inline_value_reports_the_digests_of_the_blob_it_replaces() {
    let old = Archive::open(fixture("v1_0.ach")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("now.ach");
    let opts = SaveOptions {
        checksum: Checksum::Sha256,
        compression: Compression::None,
        ..fast()
    };
    save_environment(&fixture_env(false), &path, &opts).unwrap();
    let now = Archive::open(&path).unwrap();
    assert_eq!(now.format_version(), (1, 5));
    for name in ["t", "x", "s", "v"] {
        let (at, _) = now.blob_range(Section::Bindings, name).unwrap();
        let toc_start = std::fs::metadata(&path).unwrap().len() - 64 - now.toc_len();
        assert!(at >= toc_start, "{name} is in the table");
        assert_eq!(
            now.stored_digests(Section::Bindings, name).unwrap(),
            old.stored_digests(Section::Bindings, name).unwrap(),
            "{name}"
        );
    }
    // A changed value does not compare equal.
    let mut changed = fixture_env(false);
    changed.set("x", Value::Number(2.5));
    save_environment(
        &changed,
        &path,
        &SaveOptions {
            allow_overwrite: true,
            ..opts
        },
    )
    .unwrap();
    let now = Archive::open(&path).unwrap();
    assert_ne!(
        now.stored_digests(Section::Bindings, "x").unwrap(),
        old.stored_digests(Section::Bindings, "x").unwrap()
    );
}
