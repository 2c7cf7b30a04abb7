//! Compressed blobs: round trips for every codec, filter choice and chunk
//! split, the keep-only-if-it-pays rule, the spec's ratios (section 8.1),
//! and damage inside compressed chunks.

#[macro_use]
mod common;

use std::fs;

use achronyme_env::testdata;
use achronyme_env::*;
use common::*;
use proptest::prelude::*;

/// Raw bytes per compressed chunk (layout.md 3.4), in f64 elements.
const CHUNK_F64S: usize = (4 << 20) / 8;

fn compression(codec: Codec, level: i32) -> Compression {
    match codec {
        Codec::None => Compression::None,
        Codec::Zstd => Compression::Zstd { level },
        Codec::Lz4 => Compression::Lz4,
    }
}

fn options(codec: Codec, level: i32, filters: bool) -> SaveOptions {
    SaveOptions {
        compression: compression(codec, level),
        filters,
        ..packed()
    }
}

/// Every codec and level the tests sweep, with and without filters.
fn settings() -> Vec<SaveOptions> {
    let mut out = Vec::new();
    for (codec, level) in [
        (Codec::Zstd, 1),
        (Codec::Zstd, 3),
        (Codec::Zstd, 9),
        (Codec::Lz4, 3),
    ] {
        for filters in [true, false] {
            out.push(options(codec, level, filters));
        }
    }
    out
}

fn save_with(env: &Environment, opts: &SaveOptions) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "c.ach");
    save_environment(env, &path, opts).unwrap();
    (dir, path)
}

fn codec_of(archive: &Archive, name: &str) -> Codec {
    let info = archive.info();
    info.entries.iter().find(|e| e.name == name).unwrap().codec
}

fn tensor(data: Vec<f64>) -> Value {
    Value::Tensor(Tensor::from_vec(data))
}

/// Smooth data (compressible) with special values at the given places.
fn smooth_with_specials(n: usize, specials: &[(usize, u64)]) -> Vec<f64> {
    let mut v = testdata::smooth(n);
    for &(at, bits) in specials {
        if n > 0 {
            v[at % n] = f64::from_bits(bits);
        }
    }
    v
}

fn special_bits() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(f64::NAN.to_bits()),
        Just(0x7FF0_0000_DEAD_BEEF), // NaN with a payload
        Just(0xFFF8_0000_0000_0001), // negative NaN with a payload
        Just((-0.0f64).to_bits()),
        Just(f64::INFINITY.to_bits()),
        Just(f64::NEG_INFINITY.to_bits()),
        Just(1u64), // smallest subnormal
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Tensors within one chunk: every codec x filter, any length (empty
    /// and tiny ones stay raw), special floats bit for bit.
    #[test]
    fn tensors_round_trip_bit_for_bit_under_every_codec_and_filter(
        n in prop_oneof![0usize..200, 200usize..20_000],
        specials in proptest::collection::vec((any::<usize>(), special_bits()), 0..20),
        im_shift in 0.0f64..3.0,
    ) {
        let data = smooth_with_specials(n, &specials);
        let complex: Vec<Complex> = data
            .iter()
            .map(|&re| Complex { re, im: (re + im_shift).cos() })
            .collect();
        let mut env = Environment::new();
        env.set("t", tensor(data.clone()));
        env.set("z", Value::ComplexTensor(ComplexTensor::from_vec(complex)));
        for opts in settings() {
            let (_dir, path) = save_with(&env, &opts);
            let archive = Archive::open(&path).unwrap();
            prop_assert_eq!(archive.get("t").unwrap(), env.get("t").unwrap().clone());
            prop_assert_eq!(archive.get("z").unwrap(), env.get("z").unwrap().clone());
            archive.verify().unwrap();
            if opts.filters && n >= 2000 && specials.len() < 5 {
                // Smooth data of 16 KiB or more compresses once filtered
                // (unfiltered, it may not pay and is stored raw).
                prop_assert_ne!(codec_of(&archive, "t"), Codec::None);
                prop_assert_ne!(codec_of(&archive, "z"), Codec::None);
            }
            if n * 8 < 1024 {
                prop_assert_eq!(codec_of(&archive, "t"), Codec::None);
            }
        }
    }

    /// Arbitrary bit patterns (mostly incompressible): whatever the writer
    /// decides, the values come back identical.
    #[test]
    fn random_bit_patterns_round_trip(words in proptest::collection::vec(any::<u64>(), 0..3000)) {
        let data: Vec<f64> = words.iter().map(|&w| f64::from_bits(w)).collect();
        let mut env = Environment::new();
        env.set("t", tensor(data));
        let (_dir, path) = save_with(&env, &packed());
        let archive = Archive::open(&path).unwrap();
        prop_assert_eq!(archive.get("t").unwrap(), env.get("t").unwrap().clone());
    }

    /// Encoded values (strings, vectors, records) compress too, without
    /// filters.
    #[test]
    fn encoded_values_round_trip_compressed(
        word in "[a-z]{1,12}",
        repeat in 100usize..2000,
        numbers in proptest::collection::vec(-1000i32..1000, 0..500),
    ) {
        let text = word.repeat(repeat);
        let vector = Value::Vector(numbers.iter().map(|&x| Value::Number(x as f64)).collect());
        let mut fields = Record::new();
        fields.insert("text", Value::String(text.clone()));
        fields.insert("numbers", vector.clone());
        let record = Value::Record(fields);
        let mut env = Environment::new();
        env.set("s", Value::String(text.clone()));
        env.set("v", vector);
        env.set("r", record);
        for opts in settings() {
            let (_dir, path) = save_with(&env, &opts);
            let archive = Archive::open(&path).unwrap();
            for name in ["s", "v", "r"] {
                prop_assert_eq!(archive.get(name).unwrap(), env.get(name).unwrap().clone());
            }
            archive.verify().unwrap();
            // Under 4 KiB with its frame, a value lives in the table's
            // value pool (format 1.4), uncompressed.
            if text.len() >= 4096 {
                prop_assert_ne!(codec_of(&archive, "s"), Codec::None);
            }
        }
    }
}

#[test]
fn lengths_around_the_chunk_size_round_trip() {
    // 4 MiB chunks: one element short of a chunk, exactly one, one over,
    // and two and a bit (a short last chunk).
    for n in [
        CHUNK_F64S - 1,
        CHUNK_F64S,
        CHUNK_F64S + 1,
        2 * CHUNK_F64S + 3,
    ] {
        let mut env = Environment::new();
        env.set(
            "t",
            tensor(smooth_with_specials(n, &[(n / 2, 0x7FF0_0000_0000_0F0F)])),
        );
        for opts in [options(Codec::Zstd, 3, true), options(Codec::Lz4, 1, true)] {
            let (_dir, path) = save_with(&env, &opts);
            let archive = Archive::open(&path).unwrap();
            assert_ne!(codec_of(&archive, "t"), Codec::None, "n = {n}");
            assert_eq!(&archive.get("t").unwrap(), env.get("t").unwrap(), "n = {n}");
            archive.verify().unwrap();
        }
    }
}

/// Ratio of raw to stored bytes of binding `name`.
fn ratio(archive: &Archive, name: &str) -> f64 {
    let info = archive.info();
    let e = info.entries.iter().find(|e| e.name == name).unwrap();
    e.raw_bytes as f64 / e.stored_bytes as f64
}

#[test]
fn the_spec_table_ratios_are_reached_on_smooth_data() {
    // Spec 8.1: 1M-element tensor, zstd-3 2.5x and zstd-9 3.5x.
    let mut env = Environment::new();
    env.set("smooth", tensor(testdata::smooth(1_000_000)));
    let mut got = Vec::new();
    for (level, floor) in [(3, 2.5f64), (9, 3.5f64)] {
        let (_dir, path) = save_with(&env, &options(Codec::Zstd, level, true));
        let archive = Archive::open(&path).unwrap();
        let r = ratio(&archive, "smooth");
        assert!(r >= floor.max(4.0), "zstd-{level}: {r:.2}x");
        got.push(r);
        let (_dir, path) = save_with(&env, &options(Codec::Zstd, level, false));
        let plain = ratio(&Archive::open(&path).unwrap(), "smooth");
        assert!(r > 2.0 * plain, "filters help: {r:.2}x against {plain:.2}x");
    }
    eprintln!("smooth 1M: zstd-3 {:.2}x, zstd-9 {:.2}x", got[0], got[1]);
}

#[test]
fn noise_is_stored_raw_and_still_loads_as_a_view() {
    let mut env = Environment::new();
    env.set("noise", tensor(testdata::normal(1_000_000, 42)));
    for opts in [
        options(Codec::Zstd, 3, true),
        options(Codec::Zstd, 9, true),
        options(Codec::Lz4, 1, true),
    ] {
        let (_dir, path) = save_with(&env, &opts);
        let archive = Archive::open(&path).unwrap();
        assert_eq!(codec_of(&archive, "noise"), Codec::None);
        let Value::Tensor(t) = archive.get("noise").unwrap() else {
            panic!("not a tensor")
        };
        assert!(t.is_mapped(), "raw noise loads as a view of the file");
        assert_eq!(Value::Tensor(t), *env.get("noise").unwrap());
    }
}

#[test]
fn a_tensor_half_noise_half_smooth_compresses_only_where_it_pays() {
    // Two chunks of smooth data then two of noise: the blob is compressed,
    // its noisy chunks are stored raw inside it.
    let mut data = testdata::smooth(2 * CHUNK_F64S);
    data.extend(testdata::normal(2 * CHUNK_F64S, 3));
    let mut env = Environment::new();
    env.set("t", tensor(data));
    let (_dir, path) = save_with(&env, &packed());
    let archive = Archive::open(&path).unwrap();
    assert_eq!(codec_of(&archive, "t"), Codec::Zstd);
    let r = ratio(&archive, "t");
    // Noise alone is 2 of the 4 chunks: the ratio stays under 2.
    assert!(r > 1.3 && r < 2.0, "ratio {r:.2}");
    assert_eq!(&archive.get("t").unwrap(), env.get("t").unwrap());
}

#[test]
fn archive_flags_and_version_say_compressed() {
    let mut env = Environment::new();
    env.set("smooth", tensor(testdata::smooth(10_000)));
    let (_dir, path) = save_with(&env, &packed());
    let archive = Archive::open(&path).unwrap();
    assert!(archive.info().compressed);
    // The compact entries need a 1.5 reader.
    assert_eq!(archive.format_version(), (1, 5));
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes[12], Codec::Zstd as u8, "default codec byte");
    assert_eq!(bytes[8] & 0x08, 0x08, "FLAG_COMPRESSED");
    // Every archive is 1.5 now: its table ends with a page index, holds
    // the small values and stores compact entries.
    let sha = |o: SaveOptions| SaveOptions {
        checksum: Checksum::Sha256,
        ..o
    };
    let (_dir, path) = save_with(&env, &sha(packed()));
    assert_eq!(Archive::open(&path).unwrap().format_version(), (1, 5));
    let (_dir, raw) = save_with(&env, &sha(fast()));
    assert_eq!(Archive::open(&raw).unwrap().format_version(), (1, 5));
}

// ---------------------------------------------------------------------------
// Damage
// ---------------------------------------------------------------------------

/// An archive whose one tensor is compressed in two chunks; returns its
/// bytes and the file offset of the second chunk's stored bytes.
fn two_chunk_archive() -> (Environment, Vec<u8>) {
    let mut env = Environment::new();
    env.set("t", tensor(testdata::smooth(CHUNK_F64S + 1000)));
    env.set("x", Value::Number(1.0));
    let (_dir, path) = save_with(&env, &packed());
    (env, fs::read(&path).unwrap())
}

#[test]
fn a_damaged_compressed_chunk_is_a_checksum_error_naming_the_binding() {
    let (env, bytes) = two_chunk_archive();
    let map = Map::of(&bytes);
    let i = map.index_of(&bytes, "t");
    let e = &map.entries[i];
    let blob = e.blob_offset.get() as usize;
    let stored = e.stored_len.get() as usize;
    // Damage the last byte of the payload (inside the second chunk), and a
    // byte of the chunk table.
    for (at, chunk) in [(blob + 64 + stored - 1, 2), (blob + 64 + 3, 0)] {
        let mut b = bytes.clone();
        b[at] ^= 0x40;
        let archive = Archive::from_bytes(b).unwrap();
        let err = archive.get("t").unwrap_err();
        assert_matches!(
            err,
            Error::ChecksumMismatch { ref name, chunk: c, .. } if name == "t" && c == chunk
        );
        assert!(err.to_string().contains("\"t\""), "{err}");
        // The other binding still loads; verify names the damaged one.
        assert_eq!(&archive.get("x").unwrap(), env.get("x").unwrap());
        let report = archive.verify_report();
        assert_eq!(report.damaged.len(), 1);
        assert_eq!(report.damaged[0].name, "t");
    }
}

#[test]
fn unchecked_loads_of_damaged_chunks_fail_or_return_without_panicking() {
    let (_env, bytes) = two_chunk_archive();
    let map = Map::of(&bytes);
    let e = &map.entries[map.index_of(&bytes, "t")];
    let blob = e.blob_offset.get() as usize;
    let end = blob + 64 + e.stored_len.get() as usize;
    let unchecked = LoadOptions {
        verify_checksum: false,
        ..LoadOptions::default()
    };
    let mut errors = 0;
    for at in (blob..end).step_by((end - blob) / 40) {
        let mut b = bytes.clone();
        b[at] ^= 0xFF;
        let archive = Archive::from_bytes(b).unwrap();
        assert_matches!(
            archive.get("t"),
            Err(Error::ChecksumMismatch { .. } | Error::InvalidFrame { .. })
        );
        if archive.get_with(Section::Bindings, "t", unchecked).is_err() {
            errors += 1;
        }
    }
    assert!(
        errors > 0,
        "some damage is caught by the decompressor itself"
    );
}

#[test]
fn a_chunk_that_inflates_past_its_declared_length_is_refused() {
    // Declare half the tensor's real length (shape and raw length in the
    // table of contents), reseal: the single chunk now inflates past what
    // its table says, and the load must stop at the declared size.
    let mut env = Environment::new();
    env.set("t", tensor(testdata::smooth(4096)));
    let (_dir, path) = save_with(&env, &packed());
    let mut bytes = fs::read(&path).unwrap();
    let map = Map::of(&bytes);
    let e = &map.entries[0];
    assert_eq!(e.codec, Codec::Zstd as u8);
    let dims = map.dims_at();
    map.put_field(&mut bytes, 0, field::RAW_LEN, 2048 * 8);
    bytes[dims..dims + 8].copy_from_slice(&2048u64.to_le_bytes()); // shape [2048]
    map.reseal(&mut bytes);
    let archive = Archive::from_bytes(bytes).unwrap();
    for opts in [
        LoadOptions::default(),
        LoadOptions {
            verify_checksum: false,
            ..LoadOptions::default()
        },
    ] {
        let err = archive.get_with(Section::Bindings, "t", opts).unwrap_err();
        assert_matches!(err, Error::CorruptChunk { ref name, chunk: 0, .. } if name == "t");
    }
}

#[test]
fn chunk_sizes_outside_the_readers_range_are_refused_at_open() {
    let mut env = Environment::new();
    env.set("t", tensor(testdata::smooth(4096)));
    let (_dir, path) = save_with(&env, &packed());
    let bytes = fs::read(&path).unwrap();
    let map = Map::of(&bytes);
    assert_eq!(bytes[map.toc_offset + 60], 22, "the writer's 4 MiB");
    for (log2, reason) in [
        (15, "compressed chunk size is outside 64 KiB..4 MiB"),
        (23, "compressed chunk size is outside 64 KiB..4 MiB"),
        (0, "compressed blob in an archive without a chunk size"),
    ] {
        let mut b = bytes.clone();
        b[map.toc_offset + 60] = log2;
        map.reseal(&mut b);
        assert_matches!(
            open_checked(b),
            Err(Error::InvalidToc { reason: r, .. }) if r == reason
        );
    }
}

#[test]
fn a_blob_whose_samples_mislead_is_rewritten_raw_and_stays_a_view() {
    // Random bits, except zeros exactly where the writer samples (the
    // middle 64 KiB of each 4 MiB chunk): the samples promise a lot, the
    // chunks give nothing, and the blob must end up raw, not "compressed"
    // and larger. A small binding after it checks the rewind left no
    // stray bytes.
    for chunks in [1, 2] {
        let n = chunks * CHUNK_F64S;
        let mut data = testdata::normal(n, 9);
        for k in 0..chunks {
            let mid = k * CHUNK_F64S + CHUNK_F64S / 2;
            data[mid - 4096..mid + 4096].fill(0.0);
        }
        let mut env = Environment::new();
        env.set("a", tensor(data));
        env.set("b", Value::from("after"));
        let (_dir, path) = save_with(&env, &packed());
        let archive = Archive::open(&path).unwrap();
        archive.verify().unwrap();
        assert_eq!(codec_of(&archive, "a"), Codec::None, "{chunks} chunk(s)");
        let Value::Tensor(t) = archive.get("a").unwrap() else {
            panic!("not a tensor")
        };
        assert!(t.is_mapped());
        assert_eq!(Value::Tensor(t), *env.get("a").unwrap());
        assert_eq!(&archive.get("b").unwrap(), env.get("b").unwrap());
    }
}
