//! Untrusted input: every flipped byte and every truncation of a real
//! archive, hand-crafted blobs whose checksums were fixed up to match
//! (so the decoder, not the checksum, has to refuse them), fuzzed tables of
//! contents behind a recomputed table checksum, and values the writer
//! accepts that the reader must be able to read back.
//!
//! "Hostile" bytes are produced by editing a real archive and, where the
//! test needs to get past a checksum, recomputing that checksum with the
//! crate's public layout structs and SHA-256, as an attacker could.

#[macro_use]
mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use achronyme_env::*;
use common::*;

/// Every (section, name, value) of `env`.
fn all_values(env: &Environment) -> Vec<(Section, String, Value)> {
    env.iter()
        .map(|(k, v)| (Section::Bindings, k.to_string(), v.clone()))
        .chain(
            env.constants()
                .map(|(k, v)| (Section::Constants, k.to_string(), v.clone())),
        )
        .collect()
}

#[test]
fn the_reseal_helper_reproduces_the_writers_trailer() {
    // Guards the helpers below: resealing an untouched archive is a no-op.
    let bytes = archive_bytes(&testdata::every_type());
    let mut again = bytes.clone();
    Map::of(&bytes).reseal(&mut again);
    assert_eq!(again, bytes);
    let map = Map::of(&bytes);
    let i = map.index_of(&bytes, "text");
    map.fix_digest(&mut again, i);
    assert_eq!(again, bytes);
}

/// Every type, plus bindings the default save compresses: a smooth tensor
/// and complex tensor, a repetitive string, and a long vector, each over
/// 4 KiB (smaller values live in the table's value pool, uncompressed).
fn compressible_every_type() -> Environment {
    let mut env = testdata::every_type();
    let smooth = testdata::smooth(600);
    env.set("packed_t", Value::Tensor(Tensor::from_vec(smooth.clone())));
    let z = smooth.iter().map(|&re| Complex { re, im: -re }).collect();
    env.set("packed_z", Value::ComplexTensor(ComplexTensor::from_vec(z)));
    env.set("packed_s", Value::String("spectrum ".repeat(500)));
    let v = (0..500).map(|i| Value::Number((i % 7) as f64)).collect();
    env.set("packed_v", Value::Vector(v));
    env
}

/// The compressed archive of [`compressible_every_type`], checked to hold
/// compressed blobs of each kind.
fn compressed_archive_bytes() -> (Environment, Vec<u8>) {
    let env = compressible_every_type();
    let bytes = archive_bytes_with(&env, &packed());
    let info = Archive::from_bytes(bytes.clone()).unwrap().info();
    for e in info.entries.iter().filter(|e| e.name.starts_with("packed")) {
        eprintln!("{}: {} -> {} bytes", e.name, e.raw_bytes, e.stored_bytes);
    }
    let packed: Vec<&str> = info
        .entries
        .iter()
        .filter(|e| e.codec != Codec::None)
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(packed, ["packed_s", "packed_t", "packed_v", "packed_z"]);
    (env, bytes)
}

/// Flips all 8 bits of every byte, padding included: each flip must be
/// refused at open or by verify, and a load either fails or returns the
/// original value.
fn flip_sweep(env: &Environment, bytes: &[u8]) {
    flip_sweep_at(env, bytes, 0..bytes.len());
}

/// [`flip_sweep`] over the bytes at `offsets` only.
fn flip_sweep_at(env: &Environment, bytes: &[u8], offsets: impl Iterator<Item = usize>) {
    let values = all_values(env);
    let (mut tried, mut refused_at_open, mut refused_by_verify) = (0, 0, 0);
    let offsets: Vec<usize> = offsets.collect();
    for &i in &offsets {
        for mask in (0..8).map(|bit| 1u8 << bit) {
            tried += 1;
            let mut b = bytes.to_vec();
            b[i] ^= mask;
            let Ok(archive) = Archive::from_bytes(b) else {
                refused_at_open += 1;
                continue;
            };
            assert!(
                archive.verify().is_err(),
                "flip of byte {i} (mask {mask:#x}) passed verify"
            );
            refused_by_verify += 1;
            for (section, name, v) in &values {
                if let Ok(got) = archive.get_with(*section, name, LoadOptions::default()) {
                    assert_eq!(
                        &got, v,
                        "flip of byte {i} (mask {mask:#x}) changed {name} silently"
                    );
                }
            }
        }
    }
    assert_eq!(tried, offsets.len() * 8);
    assert_eq!(refused_at_open + refused_by_verify, tried);
    eprintln!(
        "{tried} bit flips of a {}-byte archive: {refused_at_open} refused at open, \
         {refused_by_verify} by verify",
        bytes.len()
    );
}

#[test]
fn every_single_bit_flip_is_detected_and_never_returns_different_data() {
    let env = testdata::every_type();
    flip_sweep(&env, &archive_bytes(&env));
}

#[test]
fn every_single_bit_flip_of_a_compressed_archive_is_detected() {
    let (env, bytes) = compressed_archive_bytes();
    flip_sweep(&env, &bytes);
}

/// The same sweep over an archive whose chunk digests are SHA-256 (32 bytes
/// each, format 1.0 bytes): every flip of its pool, table and blobs too.
#[test]
fn every_single_bit_flip_of_a_sha256_archive_is_detected() {
    let env = testdata::every_type();
    let opts = SaveOptions {
        checksum: Checksum::Sha256,
        ..fast()
    };
    flip_sweep(&env, &archive_bytes_with(&env, &opts));
}

/// Format 1.3: a record and a vector referring to a binding's tensor blob,
/// a storage entry for a nested complex tensor, and a binding sharing a
/// blob. Every bit of every byte outside the tensors' elements is flipped
/// (header, frames, padding, the small values' blobs with their
/// references, the hash pool, the table, the trailer), and one byte in
/// every 509 of the elements.
#[test]
fn every_single_bit_flip_of_an_archive_with_references_is_detected() {
    let big = 8200;
    let w = Value::Tensor(Tensor::from_vec((0..big).map(|i| i as f64).collect()));
    let z = Value::ComplexTensor(ComplexTensor::from_vec(
        (0..big / 2).map(|i| Complex::new(i as f64, 1.0)).collect(),
    ));
    let mut env = Environment::new();
    env.set(
        "model",
        rec(&[("w", w.clone()), ("z", z), ("n", Value::Number(1.0))]),
    );
    env.set(
        "history",
        Value::Vector(vec![w.clone(), Value::new_ref(w.clone())]),
    );
    env.set("w", w.clone());
    env.set("w2", w);
    let bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    assert_eq!(map.entries.len(), 5);
    let elements: Vec<std::ops::Range<usize>> = map
        .entries
        .iter()
        .filter(|e| e.tag == 6 || e.tag == 7)
        .map(|e| {
            let start = e.blob_offset.get() as usize + 64;
            start..start + e.stored_len.get() as usize
        })
        .collect();
    let offsets =
        (0..bytes.len()).filter(|i| !elements.iter().any(|r| r.contains(i)) || i % 509 == 0);
    flip_sweep_at(&env, &bytes, offsets);
}

fn truncation_sweep(bytes: &[u8]) {
    eprintln!("{} truncations tried", bytes.len());
    for cut in 0..bytes.len() {
        assert_matches!(
            Archive::from_bytes(bytes[..cut].to_vec()),
            Err(Error::Truncated { found, .. }) if found == cut as u64
        );
    }
}

#[test]
fn every_truncation_is_truncated() {
    truncation_sweep(&archive_bytes(&testdata::every_type()));
    truncation_sweep(&compressed_archive_bytes().1);
}

/// With verify_checksum off the decoder (and decompressor) sees the damage
/// directly: checked loads always fail, unchecked ones never panic.
fn unchecked_damage_sweep(bytes: &[u8]) {
    let archive = Archive::from_bytes(bytes.to_vec()).unwrap();
    let unchecked = LoadOptions {
        verify_checksum: false,
        ..LoadOptions::default()
    };
    let off_toc = Map::of(bytes).toc_offset;
    for e in archive.info().entries {
        let (off, len) = archive.blob_range(e.section, &e.name).unwrap();
        for at in off as usize..(off + len) as usize {
            for mask in [0x01u8, 0x80, 0xFF] {
                let mut b = bytes.to_vec();
                b[at] ^= mask;
                // A value in the first page of the table fails the open.
                let damaged = match Archive::from_bytes(b) {
                    Ok(archive) => archive,
                    Err(Error::TocChecksum) if at > off_toc => continue,
                    Err(other) => panic!("byte {at}: {other}"),
                };
                // Checked: always an error; a value in the table's value
                // pool (format 1.4) fails its page's digest, which the
                // lookup may read first.
                assert_matches!(
                    damaged.get_with(e.section, &e.name, LoadOptions::default()),
                    Err(Error::ChecksumMismatch { .. } | Error::TocChecksum)
                );
                // Unchecked: a value or a typed error, never a panic.
                let _ = damaged.get_with(e.section, &e.name, unchecked);
            }
        }
    }
}

#[test]
fn unchecked_loads_of_damaged_blobs_never_panic() {
    unchecked_damage_sweep(&archive_bytes(&testdata::every_type()));
    unchecked_damage_sweep(&compressed_archive_bytes().1);
}

#[test]
fn a_deeply_nested_blob_with_a_valid_checksum_is_too_deep_not_a_stack_overflow() {
    let mut env = Environment::new();
    env.set("s", Value::String("x".repeat(100_000)));
    env.set("t", Value::Number(1.0));
    let mut bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    let i = map.index_of(&bytes, "s");
    let payload = map.payload(i);
    // 100,008 nested mutable references around a null.
    let end = payload.end;
    bytes[payload.clone()].fill(0x0B);
    bytes[end - 1] = 0x00;
    map.fix_digest(&mut bytes, i);

    let archive = Archive::from_bytes(bytes.clone()).unwrap();
    assert_matches!(
        archive.get("s"),
        Err(Error::TooDeep { ref name, limit: 128 }) if name == "s"
    );
    assert_eq!(archive.get("t").unwrap(), Value::Number(1.0));
    match archive.verify() {
        Err(Error::VerificationFailed(r)) => {
            assert_eq!(r.damaged.len(), 1);
            assert_eq!(r.damaged[0].name, "s");
            assert!(r.closing_checksum_ok, "the helper resealed the file");
        }
        other => panic!("expected VerificationFailed, got {other:?}"),
    }

    // Vectors of one element, nested the same way.
    let mut vectors = Vec::new();
    while vectors.len() + 9 < payload.len() {
        vectors.push(0x05);
        vectors.extend_from_slice(&1u64.to_le_bytes());
    }
    vectors.resize(payload.len(), 0x00);
    bytes[payload].copy_from_slice(&vectors);
    map.fix_digest(&mut bytes, i);
    let archive = Archive::from_bytes(bytes).unwrap();
    assert_matches!(archive.get("s"), Err(Error::TooDeep { .. }));
}

#[test]
fn a_hand_made_record_with_many_fields_decodes() {
    // Hand-made: a binding whose record has 50,000 distinct fields, each
    // null (building it through Record::insert would itself be quadratic).
    let n = 50_000u64;
    let mut record = vec![0x08];
    record.extend_from_slice(&n.to_le_bytes());
    for i in 0..n {
        let name = format!("{i:x}");
        record.extend_from_slice(&(name.len() as u64).to_le_bytes());
        record.extend_from_slice(name.as_bytes());
        record.push(0x00);
    }
    let mut env = Environment::new();
    env.set("r", Value::String("x".repeat(record.len() - 9)));
    let mut bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    let payload = map.payload(0);
    assert_eq!(payload.len(), record.len());
    bytes[payload].copy_from_slice(&record);
    map.retag(&mut bytes, 0, 0x08);
    let archive = Archive::from_bytes(bytes).unwrap();

    // No timer here (speed belongs to benchmarks): a quadratic decoder
    // would make this test, and CI, take minutes instead of milliseconds.
    let Value::Record(r) = archive.get("r").unwrap() else {
        panic!("not a record")
    };
    assert_eq!(r.len(), n as usize);
    assert_eq!(r.fields()[0].0, "0");
}

#[test]
fn a_value_whose_type_differs_from_its_entry_is_invalid() {
    // An 8-byte string encodes in 17 bytes, like a complex number.
    let mut env = Environment::new();
    env.set("s", Value::from("abcdefgh"));
    let mut bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    let payload = map.payload(0);
    assert_eq!(payload.len(), 17);
    let mut complex = vec![0x04];
    complex.extend_from_slice(&1.0f64.to_le_bytes());
    complex.extend_from_slice(&2.0f64.to_le_bytes());
    bytes[payload].copy_from_slice(&complex);
    map.fix_digest(&mut bytes, 0);
    let archive = Archive::from_bytes(bytes).unwrap();
    assert_matches!(
        archive.get("s"),
        Err(Error::InvalidValue { ref name, .. }) if name == "s"
    );
}

#[test]
fn fuzzed_payloads_with_valid_checksums_decode_or_fail_cleanly() {
    let env = testdata::every_type();
    let bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    let archive = Archive::from_bytes(bytes.clone()).unwrap();
    let info = archive.info();
    // Non-tensor entries: their payload goes through the decoder.
    let targets: Vec<usize> = (0..map.entries.len())
        .filter(|&i| !info.entries[i].type_name.contains("Tensor"))
        .collect();
    let interesting = [0x00, 0x01, 0x05, 0x08, 0x0A, 0x0B, 0x0C, 0x7F, 0x80, 0xFF];
    let mut rng = testdata::Rng::new(11);
    for round in 0..3000 {
        let i = targets[(rng.next_u64() % targets.len() as u64) as usize];
        let payload = map.payload(i);
        let mut b = bytes.clone();
        for _ in 0..1 + rng.next_u64() % 4 {
            let at = payload.start + (rng.next_u64() % payload.len() as u64) as usize;
            b[at] = if rng.next_u64().is_multiple_of(2) {
                interesting[(rng.next_u64() % interesting.len() as u64) as usize]
            } else {
                rng.next_u64() as u8
            };
        }
        map.fix_digest(&mut b, i);
        let entry = &info.entries[i];
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let archive = Archive::from_bytes(b).unwrap();
            match archive.get_with(entry.section, &entry.name, LoadOptions::default()) {
                Ok(v) => assert_eq!(v.type_name(), entry.type_name),
                Err(Error::InvalidValue { .. } | Error::TooDeep { .. }) => {}
                Err(other) => panic!("unexpected error type: {other:?}"),
            }
            let _ = archive.verify_report();
        }));
        assert!(
            outcome.is_ok(),
            "round {round}: panicked on entry {:?}",
            entry.name
        );
    }
}

#[test]
fn fuzzed_tables_behind_a_valid_checksum_are_refused_or_safe_to_use() {
    let env = testdata::every_type();
    let bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    let interesting: [u8; 8] = [0x00, 0x01, 0x02, 0x07, 0x38, 0x40, 0x80, 0xFF];
    let mut rng = testdata::Rng::new(22);
    let mut opened = 0;
    for round in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.next_u64() % 3 {
            let at = map.toc_offset + (rng.next_u64() % map.toc_len as u64) as usize;
            b[at] = if rng.next_u64().is_multiple_of(2) {
                interesting[(rng.next_u64() % interesting.len() as u64) as usize]
            } else {
                b[at] ^ (1 << (rng.next_u64() % 8))
            };
        }
        map.reseal(&mut b);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let Ok(archive) = Archive::from_bytes(b) else {
                return false;
            };
            let info = archive.info();
            for e in &info.entries {
                let _ = archive.get_with(e.section, &e.name, LoadOptions::default());
                let _ = archive.blob_range(e.section, &e.name);
            }
            // Lookups read and check only the pages they touch, so they
            // run whether or not the whole table passes (which the
            // listing above needs).
            for (section, name, _) in all_values(&env) {
                let _ = archive.get_with(section, &name, LoadOptions::default());
                let _ = archive.binding_info(section, &name);
            }
            let _ = archive.verify_report();
            true
        }));
        match outcome {
            Ok(true) => opened += 1,
            Ok(false) => {}
            Err(_) => panic!("round {round}: panicked on a fuzzed table of contents"),
        }
    }
    // Some edits (metadata text, a name's letters) keep the table valid, so
    // the code after a successful open was exercised too.
    assert!(opened > 0);
}

#[test]
fn a_newer_minor_version_is_read() {
    // Minor versions only add things a v1 reader may ignore.
    let env = testdata::every_type();
    let mut bytes = archive_bytes(&env);
    bytes[6..8].copy_from_slice(&7u16.to_le_bytes());
    Map::of(&bytes).reseal(&mut bytes);
    let archive = Archive::from_bytes(bytes).unwrap();
    assert_eq!(archive.format_version(), (1, 7));
    assert_eq!(archive.info().version, "1.7");
    let mut back = Environment::new();
    restore_from_archive(&mut back, &archive, &RestoreOptions::default()).unwrap();
    assert_eq!(back, env);
}

// ---------------------------------------------------------------------------
// What the writer accepts, the reader must read
// ---------------------------------------------------------------------------

/// Saves `v` as `name` beside another binding, then requires either a
/// refused save (typed error, no file left) or, when `must_save`, an
/// archive that opens and gives `v` back.
fn saved_or_refused(name: &str, v: Value, must_save: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "edge.ach");
    let mut env = Environment::new();
    env.set("other", Value::Number(1.0));
    env.set(name, v.clone());
    match save_environment(&env, &path, &fast()) {
        Err(e) => {
            assert!(!must_save, "the save was refused: {e}");
            assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
        }
        Ok(_) => {
            let archive = Archive::open(&path).unwrap_or_else(|e| {
                panic!("the save succeeded but the archive does not open: {e}")
            });
            assert_eq!(archive.get("other").unwrap(), Value::Number(1.0));
            assert_eq!(archive.get(name).unwrap(), v);
            let mut back = Environment::new();
            restore_environment(&mut back, &path, &RestoreOptions::default()).unwrap();
            assert_eq!(back, env);
        }
    }
}

#[test]
fn a_tensor_with_64_dimensions_round_trips() {
    let shape = vec![1; 64];
    saved_or_refused(
        "t64",
        Value::Tensor(Tensor::new(shape, vec![3.0]).unwrap()),
        true,
    );
}

#[test]
fn a_tensor_with_65_dimensions_is_refused_at_save_or_round_trips() {
    let shape = vec![1; 65];
    saved_or_refused(
        "t65",
        Value::Tensor(Tensor::new(shape, vec![3.0]).unwrap()),
        false,
    );
}

#[test]
fn a_nested_tensor_with_65_dimensions_is_refused_at_save_or_round_trips() {
    let t = Tensor::new(vec![1; 65], vec![3.0]).unwrap();
    saved_or_refused("v", Value::Vector(vec![Value::Tensor(t)]), false);
}

#[test]
fn an_empty_tensor_with_a_large_dimension_after_the_zero_round_trips() {
    saved_or_refused(
        "t",
        Value::Tensor(Tensor::new(vec![0, usize::MAX], vec![]).unwrap()),
        true,
    );
}

#[test]
fn an_empty_tensor_with_a_large_dimension_before_the_zero_round_trips() {
    saved_or_refused(
        "t",
        Value::Tensor(Tensor::new(vec![1 << 62, 0], vec![]).unwrap()),
        true,
    );
}

#[test]
fn a_nested_empty_tensor_with_large_dimensions_round_trips() {
    let t = ComplexTensor::new(vec![1 << 62, 0, 7], vec![]).unwrap();
    saved_or_refused("v", Value::Vector(vec![Value::ComplexTensor(t)]), true);
}

/// Every input of a checked-in fuzz corpus (`fuzz/corpus/<target>`).
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect()
}

#[test]
fn the_fuzz_corpora_replay_without_panics() {
    // The inputs the fuzzers kept (one per behaviour they reached), run
    // through what the fuzz targets do, in every CI run.
    let inputs = corpus("archive");
    let mut opened = 0;
    for bytes in &inputs {
        let Ok(archive) = Archive::from_bytes(bytes.clone()) else {
            continue;
        };
        opened += 1;
        let info = archive.info();
        assert_eq!(
            info.entries.len() as u64,
            info.num_bindings + info.num_constants
        );
        for e in info.entries.iter() {
            for verify_checksum in [true, false] {
                let _ = archive.get_with(
                    e.section,
                    &e.name,
                    LoadOptions {
                        verify_checksum,
                        ..LoadOptions::default()
                    },
                );
            }
        }
        let _ = archive.verify_report();
    }
    assert!(
        inputs.len() > 100 && opened > 0,
        "{opened} of {}",
        inputs.len()
    );

    // Resealed first, as that target does, so they pass the table checksum
    // and reach the table's own rules (layout.md 8.1, rules 11 to 32).
    let resealed = corpus("archive_resealed");
    let opened = resealed
        .iter()
        .filter(|bytes| {
            let mut bytes = bytes.to_vec();
            let _ = achronyme_env::fuzzing::reseal(&mut bytes);
            achronyme_env::fuzzing::exercise_archive(bytes)
        })
        .count();
    assert!(
        resealed.len() > 100 && opened > 0,
        "{opened} of {}",
        resealed.len()
    );

    let values = corpus("value");
    let decoded = values
        .iter()
        .filter(|b| achronyme_env::fuzzing::decode_value(b))
        .count();
    assert!(
        values.len() > 100 && decoded > 0,
        "{decoded} of {}",
        values.len()
    );
}

// ---------------------------------------------------------------------------
// Names and metadata in the file
// ---------------------------------------------------------------------------

/// Two bindings, "aa" and "ab" (names 2 bytes each, in that order in the
/// name pool), and its map.
fn two_names() -> (Vec<u8>, Map) {
    let mut env = Environment::new();
    env.set("aa", Value::Number(1.0));
    env.set("ab", Value::Number(2.0));
    let bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    (bytes, map)
}

/// File offset of the name pool.
fn name_pool(bytes: &[u8], map: &Map) -> usize {
    let toc = map.toc_offset;
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let (entries, dims) = (u64_at(toc + 8), u64_at(toc + 16));
    let size = u32::from_le_bytes(bytes[toc + 4..toc + 8].try_into().unwrap()) as usize;
    // The value pool (format 1.4) lies between the dimensions and names.
    toc + 64 + size * entries + 8 * dims + u64_at(56)
}

fn refused_at_open(mut bytes: Vec<u8>, map: &Map, reason: &str) {
    map.reseal(&mut bytes);
    let err = open_checked(bytes).unwrap_err();
    assert_matches!(err, Error::InvalidToc { reason: r, .. } if r == reason);
}

#[test]
fn names_that_break_the_rules_are_refused_when_the_file_is_opened() {
    let (bytes, map) = two_names();
    let pool = name_pool(&bytes, &map);
    assert_eq!(&bytes[pool..pool + 4], b"aaab");
    // Empty, and 4097 and 65,535 bytes long (what the 40-byte entry's
    // length field holds at most): the length field of the first entry.
    for len in [0, 4097, u64::from(u16::MAX)] {
        let mut b = bytes.clone();
        map.put_field(&mut b, 0, field::NAME_LEN, len);
        refused_at_open(b, &map, "name is empty or longer than 4096 bytes");
    }
    // A NUL inside a name.
    let mut b = bytes.clone();
    b[pool + 1] = 0;
    refused_at_open(b, &map, "a name contains NUL");
    // Invalid UTF-8: a lone continuation byte, and a truncated sequence.
    for bad in [0x80u8, 0xC3] {
        let mut b = bytes.clone();
        b[pool + 1] = bad;
        refused_at_open(b, &map, "name pool is not UTF-8");
    }
    // A duplicate: "ab" renamed "aa".
    let mut b = bytes.clone();
    b[pool + 3] = b'a';
    refused_at_open(
        b,
        &map,
        "entries are not sorted by (section, name), or repeat a name",
    );
}

#[test]
fn a_million_tags_in_the_file_are_refused_without_reading_them() {
    let env = testdata::every_type();
    let mut bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    let meta_len = u64::from_le_bytes(
        bytes[map.toc_offset + 32..map.toc_offset + 40]
            .try_into()
            .unwrap(),
    ) as usize;
    let meta = map.metadata_at(meta_len);
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    // created_by, platform, description marker (0: every_type saves none),
    // then the tag count.
    let mut at = meta;
    for _ in 0..2 {
        at += 4 + u32_at(&bytes, at) as usize;
    }
    assert_eq!(bytes[at], 0, "no description");
    at += 1;
    assert_eq!(u32_at(&bytes, at), 0, "no tags");
    bytes[at..at + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
    map.reseal(&mut bytes);
    assert_matches!(
        Archive::from_bytes(bytes),
        Err(Error::InvalidMetadata {
            reason: "too many tags"
        })
    );
}

#[test]
fn oversized_metadata_is_refused_when_saving_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = testdata::every_type();
    let path = path_in(&dir, "meta.ach");
    let too_long = "d".repeat((1 << 20) + 1);
    for (option, options) in [
        (
            "tags",
            SaveOptions {
                tags: vec!["t".to_string(); 1_000_000],
                ..fast()
            },
        ),
        (
            "description",
            SaveOptions {
                description: Some(too_long.clone()),
                ..fast()
            },
        ),
        (
            "custom",
            SaveOptions {
                custom: vec![("k".to_string(), too_long.clone())],
                ..fast()
            },
        ),
    ] {
        let err = save_environment(&env, &path, &options).unwrap_err();
        assert_matches!(err, Error::InvalidOption { option: o, .. } if o == option);
        assert!(!path.exists());
    }
    assert!(dir_entries(dir.path()).is_empty(), "no temporary file left");
    // At the limits, it saves and reads back.
    let at_limit = SaveOptions {
        tags: vec!["t".to_string(); 65_536],
        description: Some("d".repeat(1 << 20)),
        ..fast()
    };
    save_environment(&env, &path, &at_limit).unwrap();
    let info = env_info(&path).unwrap();
    assert_eq!(info.tags.len(), 65_536);
    assert_eq!(info.description.map(|d| d.len()), Some(1 << 20));
}
