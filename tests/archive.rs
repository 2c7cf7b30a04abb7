//! The archive as a file: zero-copy views, corruption isolation, atomic
//! saves, typed errors for bad files, lambdas, all-or-nothing restores,
//! restore modes, `env_info`, the three ways to open, and nesting depth.

#[macro_use]
mod common;

use std::fs;

use achronyme_env::*;
use common::*;

// ---------------------------------------------------------------------------
// Zero-copy views
// ---------------------------------------------------------------------------

#[test]
fn loaded_tensors_are_views_that_outlive_the_archive_and_copy_on_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "views.ach");
    let t = testdata::normal_tensor(16, 32, 7);
    // Both large enough for blobs of their own (4 KiB with the frame).
    let c = complex_iota(&[16, 16]);
    let mut env = Environment::new();
    env.set("t", Value::Tensor(t.clone()));
    env.set("c", Value::ComplexTensor(c.clone()));
    save(&env, &path);
    let on_disk = fs::read(&path).unwrap();

    let archive = Archive::open(&path).unwrap();
    let Value::Tensor(mut lt) = archive.get("t").unwrap() else {
        panic!("t is not a tensor")
    };
    let Value::ComplexTensor(mut lc) = archive.get("c").unwrap() else {
        panic!("c is not a complex tensor")
    };
    assert!(lt.is_mapped());
    assert!(lc.is_mapped());
    // A second load borrows the very same bytes: no copy was made.
    let Value::Tensor(again) = archive.get("t").unwrap() else {
        panic!()
    };
    assert!(again.buffer().shares_storage_with(lt.buffer()));
    assert_eq!(
        lt.data().as_ptr() as usize % 64,
        0,
        "the view is not 64-byte aligned"
    );

    drop(archive);
    assert_eq!(lt, t);
    assert_eq!(lc, c);

    // Writing copies first; clones taken before the write still borrow the
    // file and keep the original elements.
    let snapshot = lt.clone();
    lt.data_mut()[0] = 1234.5;
    assert!(!lt.is_mapped());
    assert!(snapshot.is_mapped());
    assert_eq!(snapshot, t);
    assert_eq!(lt.data()[0], 1234.5);
    assert_eq!(lt.data()[1..], t.data()[1..]);

    lc.data_mut()[3] = Complex::new(9.0, 9.0);
    assert!(!lc.is_mapped());
    assert_eq!(lc.data()[3], Complex::new(9.0, 9.0));
    assert_eq!(lc.data()[4..], c.data()[4..]);

    // The archive never changed.
    assert_eq!(fs::read(&path).unwrap(), on_disk);
    assert_eq!(env_load_var(&path, "t").unwrap(), Value::Tensor(t));
    assert_eq!(env_load_var(&path, "c").unwrap(), Value::ComplexTensor(c));
}

#[test]
fn views_survive_an_overwriting_save_of_the_same_path() {
    // The checkpoint loop: restore, compute, save back over the same file
    // while views of the old file are still in use.
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "ckpt.ach");
    let old = iota(&[32, 16]);
    let mut env = Environment::new();
    env.set("state", Value::Tensor(old.clone()));
    save(&env, &path);

    let mut live = Environment::new();
    let views = RestoreOptions {
        copy: false,
        ..RestoreOptions::default()
    };
    restore_environment(&mut live, &path, &views).unwrap();
    let Some(Value::Tensor(view)) = live.get("state").cloned() else {
        panic!()
    };
    assert!(view.is_mapped());
    let old_archive = Archive::open(&path).unwrap();

    let Some(Value::Tensor(state)) = live.get_mut("state") else {
        panic!()
    };
    for x in state.data_mut() {
        *x *= 2.0;
    }
    live.set("step", Value::Number(1.0));
    save_environment(
        &live,
        &path,
        &SaveOptions {
            allow_overwrite: true,
            ..fast()
        },
    )
    .unwrap();

    assert_eq!(view, old, "the old view changed under an overwriting save");
    assert_eq!(
        old_archive.get("state").unwrap(),
        Value::Tensor(old.clone())
    );
    assert!(!old_archive.contains(Section::Bindings, "step"));
    let new = Archive::open(&path).unwrap();
    let Value::Tensor(doubled) = new.get("state").unwrap() else {
        panic!()
    };
    assert!(
        doubled
            .data()
            .iter()
            .zip(old.data())
            .all(|(d, o)| *d == 2.0 * o)
    );
    assert_eq!(new.get("step").unwrap(), Value::Number(1.0));
    assert_eq!(dir_entries(dir.path()), ["ckpt.ach"]);
}

// ---------------------------------------------------------------------------
// Corruption
// ---------------------------------------------------------------------------

/// `x` (a number) and `victim` (a 4 KiB tensor).
fn victim_env() -> (Environment, Tensor) {
    let victim = Tensor::from_vec((0..512).map(|i| i as f64 * 0.5).collect());
    let mut env = Environment::new();
    env.set("x", Value::Number(1.0));
    env.set("victim", Value::Tensor(victim.clone()));
    (env, victim)
}

#[test]
fn a_damaged_blob_fails_only_its_own_binding() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "damaged.ach");
    let (env, victim) = victim_env();
    save(&env, &path);
    let (off, len) = Archive::open(&path)
        .unwrap()
        .blob_range(Section::Bindings, "victim")
        .unwrap();
    assert_eq!(off % 64, 0);
    assert_eq!(len, 64 + 4096, "frame, padding to 64, then 512 f64s");
    // Byte 1000 of the payload lies in element 125.
    flip(&path, off + 64 + 1000);

    let archive = Archive::open(&path).unwrap();
    let info = archive.info();
    assert_eq!(info.bindings, ["victim", "x"]);
    assert_eq!(archive.get("x").unwrap(), Value::Number(1.0));
    assert_matches!(
        archive.get("victim"),
        Err(Error::ChecksumMismatch { ref name, chunk: 0, offset }) if name == "victim" && offset == off
    );

    match archive.verify() {
        Err(err @ Error::VerificationFailed(_)) => {
            let Error::VerificationFailed(report) = &err else {
                unreachable!()
            };
            let damaged: Vec<&str> = report.damaged.iter().map(|d| d.name.as_str()).collect();
            assert_eq!(damaged, ["victim"]);
            assert_eq!(report.damaged[0].section, Section::Bindings);
            assert_eq!(report.bindings_checked, 2);
            assert!(report.closing_checksum_ok, "the hash pool is intact");
            assert!(report.nonzero_padding.is_empty());
            assert!(err.to_string().contains("victim"), "{err}");
        }
        other => panic!("expected VerificationFailed, got {other:?}"),
    }
    // The report without the error, too.
    assert!(!archive.verify_report().is_ok());

    // Without the checksum the damaged bytes come through as data: same
    // shape, exactly the one element that holds the flipped byte differs.
    let unchecked = archive.get_with(
        Section::Bindings,
        "victim",
        LoadOptions {
            verify_checksum: false,
            ..LoadOptions::default()
        },
    );
    let Ok(Value::Tensor(t)) = unchecked else {
        panic!("expected the unchecked tensor, got {unchecked:?}")
    };
    assert_eq!(t.shape(), victim.shape());
    let differing: Vec<usize> = (0..t.len())
        .filter(|&i| t.data()[i].to_bits() != victim.data()[i].to_bits())
        .collect();
    assert_eq!(differing, [125]);

    // A whole restore refuses the archive; one that excludes the damaged
    // binding succeeds.
    let mut target = Environment::new();
    assert_matches!(
        restore_environment(&mut target, &path, &RestoreOptions::default()),
        Err(Error::ChecksumMismatch { ref name, .. }) if name == "victim"
    );
    assert!(target.is_empty());
    restore_environment(
        &mut target,
        &path,
        &RestoreOptions {
            exclude: vec!["victim".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(target.names(), ["x"]);
}

#[test]
fn a_damaged_frame_is_an_invalid_frame_even_without_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "frame.ach");
    let (env, _) = victim_env();
    save(&env, &path);
    let (off, _) = Archive::open(&path)
        .unwrap()
        .blob_range(Section::Bindings, "victim")
        .unwrap();
    let unchecked = LoadOptions {
        verify_checksum: false,
        ..LoadOptions::default()
    };
    // Frame magic, then a byte of the zero padding between frame and payload.
    for at in [off, off + 40] {
        let bytes = fs::read(&path).unwrap();
        flip(&path, at);
        let archive = Archive::open(&path).unwrap();
        assert_matches!(
            archive.get_with(Section::Bindings, "victim", unchecked),
            Err(Error::InvalidFrame { ref name, offset, .. }) if name == "victim" && offset == off
        );
        assert_matches!(archive.get("victim"), Err(Error::ChecksumMismatch { .. }));
        assert_eq!(archive.get("x").unwrap(), Value::Number(1.0));
        fs::write(&path, bytes).unwrap();
    }
}

#[test]
fn a_damaged_chunk_of_a_large_blob_is_located() {
    // 2.5 MiB of payload: three 1 MiB hash chunks (the frame counts).
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "chunks.ach");
    let big = Tensor::from_vec(testdata::smooth(327_680));
    let mut env = Environment::new();
    env.set("big", Value::Tensor(big.clone()));
    save(&env, &path);
    let archive = Archive::open(&path).unwrap();
    let (off, len) = archive.blob_range(Section::Bindings, "big").unwrap();
    assert_eq!(len, 64 + 327_680 * 8);
    assert_eq!(archive.get("big").unwrap(), Value::Tensor(big));
    drop(archive);

    const MIB: u64 = 1 << 20;
    flip(&path, off + MIB + 12_345);
    assert_matches!(
        env_load_var(&path, "big"),
        Err(Error::ChecksumMismatch { chunk: 1, offset, .. }) if offset == off + MIB
    );
    flip(&path, off + MIB + 12_345);
    flip(&path, off + len - 1);
    assert_matches!(
        env_load_var(&path, "big"),
        Err(Error::ChecksumMismatch { chunk: 2, offset, .. }) if offset == off + 2 * MIB
    );
}

#[test]
fn a_tensor_above_the_parallel_hashing_threshold_round_trips_and_verifies() {
    // Over 4 MiB: hashed on other threads while the writer writes (and
    // verified the same way), five 1 MiB chunks.
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "parallel.ach");
    let big = Tensor::new(vec![1024, 513], testdata::normal(1024 * 513, 3)).unwrap();
    let mut env = Environment::new();
    env.set("big", Value::Tensor(big.clone()));
    env.set("s", Value::from("small"));
    save(&env, &path);
    let archive = Archive::open(&path).unwrap();
    let report = archive.verify().unwrap();
    assert_eq!(report.bindings_checked, 2);
    let Value::Tensor(t) = archive.get("big").unwrap() else {
        panic!()
    };
    assert!(t.is_mapped());
    assert_eq!(t, big);
    let (off, len) = archive.blob_range(Section::Bindings, "big").unwrap();
    drop((t, archive));
    flip(&path, off + len - 8);
    assert_matches!(
        env_load_var(&path, "big"),
        Err(Error::ChecksumMismatch { chunk: 4, .. })
    );
    assert_eq!(env_load_var(&path, "s").unwrap(), Value::from("small"));
}

#[test]
fn a_flipped_byte_in_the_table_of_contents_or_header_is_a_toc_checksum_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "toc.ach");
    let mut env = testdata::every_type();
    env.set("z", Value::Number(1.0));
    save_environment(
        &env,
        &path,
        &SaveOptions {
            description: Some("metadata sits at the end of the table".into()),
            ..fast()
        },
    )
    .unwrap();
    let original = fs::read(&path).unwrap();
    let toc = toc_offset(&path);
    let toc_len = original.len() as u64 - 64 - toc;
    let trailer = original.len() as u64 - 64;
    // Byte 25 is the "0" of the runtime version "v0.1.0": flipping its low
    // bit keeps it valid text ("v1.1.0"), so only the checksum can tell.
    assert_eq!(&original[24..30], b"v0.1.0");
    let spots = [
        (toc, 0xFF),               // table magic
        (toc + 64, 0xFF),          // first entry
        (toc + toc_len / 2, 0xFF), // middle
        (toc + toc_len - 1, 0xFF), // last metadata byte
        (16, 0xFF),                // header timestamp
        (25, 0x01),                // header runtime version
        (trailer, 0xFF),           // the trailer's table checksum
    ];
    for (at, mask) in spots {
        flip_bits(&path, at, mask);
        assert_matches!(Archive::open(&path), Err(Error::TocChecksum));
        assert_matches!(env_info(&path), Err(Error::TocChecksum));
        fs::write(&path, &original).unwrap();
    }
    // The closing checksum covers the hash pool: open succeeds, verify fails.
    flip(&path, trailer + 40);
    let archive = Archive::open(&path).unwrap();
    assert_eq!(archive.get("z").unwrap(), Value::Number(1.0));
    match archive.verify() {
        Err(Error::VerificationFailed(report)) => {
            assert!(!report.closing_checksum_ok);
            assert!(report.damaged.is_empty());
        }
        other => panic!("expected VerificationFailed, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Atomic saves
// ---------------------------------------------------------------------------

#[test]
fn a_failed_save_leaves_the_old_archive_byte_identical_and_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "work.ach");
    let mut old_env = Environment::new();
    old_env.set("a", Value::Number(1.0));
    old_env.set("t", Value::Tensor(iota(&[64])));
    save(&old_env, &path);
    let old_bytes = fs::read(&path).unwrap();

    let mut new_env = old_env.clone();
    new_env.set("big", Value::Tensor(iota(&[1024])));
    new_env.set("a", Value::Number(2.0));

    // Over the size limit while writing "big" (names are written in order).
    let limit = old_bytes.len() as u64;
    let err = save_environment(
        &new_env,
        &path,
        &SaveOptions {
            allow_overwrite: true,
            max_file_size: Some(limit),
            compression: Compression::None,
            ..SaveOptions::default()
        },
    );
    assert_matches!(
        err,
        Err(Error::SizeLimitExceeded { limit: l, ref name }) if l == limit && name == "big"
    );
    assert_eq!(fs::read(&path).unwrap(), old_bytes);
    assert_eq!(dir_entries(dir.path()), ["work.ach"]);

    // Without allow_overwrite.
    assert_matches!(
        save_environment(&new_env, &path, &SaveOptions::default()),
        Err(Error::AlreadyExists { path: ref p }) if *p == path
    );
    assert_eq!(fs::read(&path).unwrap(), old_bytes);
    assert_eq!(dir_entries(dir.path()), ["work.ach"]);
    assert_eq!(env_load_var(&path, "a").unwrap(), Value::Number(1.0));

    // And a save that is allowed replaces it.
    let report = save_environment(
        &new_env,
        &path,
        &SaveOptions {
            allow_overwrite: true,
            ..SaveOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.bytes, fs::metadata(&path).unwrap().len());
    assert_eq!(env_load_var(&path, "a").unwrap(), Value::Number(2.0));
    assert_eq!(dir_entries(dir.path()), ["work.ach"]);
}

#[test]
fn max_file_size_is_inclusive() {
    let dir = tempfile::tempdir().unwrap();
    let env = testdata::many_small(20);
    let exact = save(&env, &path_in(&dir, "free.ach")).bytes;

    let at_limit = path_in(&dir, "at.ach");
    let report = save_environment(
        &env,
        &at_limit,
        &SaveOptions {
            max_file_size: Some(exact),
            ..fast()
        },
    )
    .unwrap();
    assert_eq!(report.bytes, exact);

    let below = path_in(&dir, "below.ach");
    assert_matches!(
        save_environment(
            &env,
            &below,
            &SaveOptions {
                max_file_size: Some(exact - 1),
                ..fast()
            },
        ),
        Err(Error::SizeLimitExceeded { limit, .. }) if limit == exact - 1
    );
    assert!(!below.exists());
    assert_eq!(dir_entries(dir.path()), ["at.ach", "free.ach"]);
}

#[cfg(unix)]
#[test]
fn an_overwriting_save_keeps_the_old_file_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "private.ach");
    let fresh = path_in(&dir, "fresh.ach");
    let env = testdata::many_small(3);
    save(&env, &path);
    save(&env, &fresh);
    assert_eq!(
        fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
        0o644
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    save_environment(
        &env,
        &path,
        &SaveOptions {
            allow_overwrite: true,
            ..fast()
        },
    )
    .unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

// ---------------------------------------------------------------------------
// Typed errors for files that are not (whole) archives
// ---------------------------------------------------------------------------

fn small_archive(dir: &tempfile::TempDir) -> Vec<u8> {
    let path = path_in(dir, "source.ach");
    save(&testdata::many_small(8), &path);
    fs::read(&path).unwrap()
}

#[test]
fn a_truncated_file_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = small_archive(&dir);
    let len = bytes.len();
    let toc_start = len - 64 - Archive::from_bytes(bytes.clone()).unwrap().toc_len() as usize;
    let path = path_in(&dir, "cut.ach");
    for cut in [
        0,
        1,
        2,
        3,
        4,
        10,
        63,
        64,
        100,
        toc_start,
        toc_start + 100,
        len - 64,
        len - 1,
    ] {
        fs::write(&path, &bytes[..cut]).unwrap();
        assert_matches!(
            Archive::open(&path),
            Err(Error::Truncated { found, .. }) if found == cut as u64
        );
        assert_matches!(Archive::open_copied(&path), Err(Error::Truncated { .. }));
        assert_matches!(env_info(&path), Err(Error::Truncated { .. }));
    }
    // Once the header is there, `expected` is the length it promises.
    fs::write(&path, &bytes[..len - 1]).unwrap();
    assert_matches!(
        Archive::open(&path),
        Err(Error::Truncated { expected, .. }) if expected == len as u64
    );
}

#[test]
fn random_bytes_and_a_wrong_magic_are_not_an_archive() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "noise.ach");
    let mut rng = testdata::Rng::new(0x5eed);
    let noise: Vec<u8> = (0..1000).map(|_| rng.next_u64() as u8).collect();
    assert_ne!(noise[..4], *b"ACH\0");
    fs::write(&path, &noise).unwrap();
    let mut start = [0u8; 4];
    start.copy_from_slice(&noise[..4]);
    assert_matches!(
        Archive::open(&path),
        Err(Error::NotAnArchive { found }) if found == start
    );

    let mut bytes = small_archive(&dir);
    bytes[0] = b'X';
    fs::write(&path, &bytes).unwrap();
    assert_matches!(
        Archive::open(&path),
        Err(Error::NotAnArchive { found }) if found == *b"XCH\0"
    );
    // A one-byte file that cannot be the start of an archive.
    fs::write(&path, b"{").unwrap();
    assert_matches!(Archive::open(&path), Err(Error::NotAnArchive { .. }));
}

#[test]
fn a_newer_major_version_is_refused_with_the_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "future.ach");
    let mut bytes = small_archive(&dir);
    bytes[4..6].copy_from_slice(&2u16.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    assert_matches!(
        Archive::open(&path),
        Err(Error::NewerVersion {
            found_major: 2,
            found_minor: 5,
            supported_major: 1
        })
    );
    let err = Archive::open(&path).unwrap_err().to_string();
    assert!(err.contains("upgrade"), "{err}");

    bytes[4..6].copy_from_slice(&0u16.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    assert_matches!(
        Archive::open(&path),
        Err(Error::UnknownVersion { found: 0 })
    );
}

#[test]
fn unknown_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "flags.ach");
    let mut bytes = small_archive(&dir);
    bytes[8..12].copy_from_slice(&(1u32 << 20).to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    assert_matches!(
        Archive::open(&path),
        Err(Error::UnknownFlags { flags }) if flags == 1 << 20
    );
}

#[test]
fn appended_bytes_are_trailing_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "long.ach");
    let original = small_archive(&dir);
    let len = original.len() as u64;
    let mut bytes = original.clone();
    bytes.extend_from_slice(b"appended");
    fs::write(&path, &bytes).unwrap();
    assert_matches!(
        Archive::open(&path),
        Err(Error::TrailingBytes { expected, extra: 8 }) if expected == len
    );
    // A second archive glued on.
    let mut twice = original;
    twice.extend_from_within(..);
    fs::write(&path, &twice).unwrap();
    assert_matches!(
        Archive::open(&path),
        Err(Error::TrailingBytes { extra, .. }) if extra == len
    );
}

#[test]
fn missing_files_are_io_errors_and_directories_not_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = path_in(&dir, "missing.ach");
    match Archive::open(&missing) {
        Err(Error::Io { source, path, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            assert_eq!(path, missing);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert_matches!(env_info(&missing), Err(Error::Io { .. }));
    assert_matches!(
        Archive::open(dir.path()),
        Err(Error::NotAFile {
            kind: "directory",
            ..
        })
    );
    // Saving into a directory that does not exist is an error, not a panic.
    assert_matches!(
        save_environment(
            &testdata::many_small(1),
            dir.path().join("no/such/dir/x.ach"),
            &fast()
        ),
        Err(Error::Io { .. })
    );
}

// ---------------------------------------------------------------------------
// User lambdas
// ---------------------------------------------------------------------------

fn lambda(src: &str) -> Value {
    Value::Function(Function::Lambda {
        params: vec!["x".into()],
        source: src.into(),
    })
}

#[test]
fn a_top_level_lambda_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "fns.ach");
    let mut env = Environment::new();
    env.set("double", lambda("x => x * 2"));
    env.set("sine", Value::Function(Function::Builtin("sin".into())));
    env.set("x", Value::Number(3.0));
    // A vector cannot drop an element without shifting the others: the
    // whole vector is skipped.
    env.set(
        "fs",
        Value::Vector(vec![Value::Number(1.0), lambda("x => x")]),
    );

    let report = save(&env, &path);
    assert_eq!(report.written, ["sine", "x"]);
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(skipped, ["double", "fs"]);
    assert!(report.skipped.iter().all(|s| !s.reason.is_empty()));
    for name in ["double", "fs"] {
        assert!(
            report.warnings.iter().any(|w| w.contains(name)),
            "no warning names {name}: {:?}",
            report.warnings
        );
    }
    let archive = Archive::open(&path).unwrap();
    assert_eq!(archive.info().bindings, ["sine", "x"]);
    assert!(!archive.contains(Section::Bindings, "double"));
    assert_matches!(archive.get("double"), Err(Error::NoSuchBinding { .. }));
    assert_eq!(
        archive.get("sine").unwrap(),
        Value::Function(Function::Builtin("sin".into()))
    );
}

#[test]
fn a_lambda_field_is_dropped_and_the_other_fields_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "counter.ach");
    // Spec 4.4: a record with a mutable field and a method.
    let mut inner = Record::new();
    inner.insert("keep", Value::Boolean(true));
    inner.insert("go", lambda("() => 1"));
    let mut counter = Record::new();
    counter.insert("value", Value::new_ref(Value::Number(0.0)));
    counter.insert("increment", lambda("() => self.value + 1"));
    counter.insert("label", Value::from("c"));
    counter.insert("nested", Value::Record(inner));
    let mut env = Environment::new();
    env.set("counter", Value::Record(counter));
    env.set(
        "road",
        Value::Edge(Edge {
            from: "A".into(),
            to: "B".into(),
            directed: true,
            properties: [
                ("cost".to_string(), lambda("x => x")),
                ("len".to_string(), Value::Number(5.0)),
            ]
            .into_iter()
            .collect(),
        }),
    );

    let report = save(&env, &path);
    assert_eq!(report.written, ["counter", "road"]);
    assert!(report.skipped.is_empty());
    for field in ["counter.increment", "counter.nested.go", "road.cost"] {
        assert!(
            report.warnings.iter().any(|w| w.contains(field)),
            "no warning names {field}: {:?}",
            report.warnings
        );
    }
    assert_eq!(report.warnings.len(), 3);

    let Value::Record(back) = env_load_var(&path, "counter").unwrap() else {
        panic!()
    };
    let names: Vec<&str> = back.fields().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["value", "label", "nested"]);
    assert_eq!(back.get("value"), Some(&Value::new_ref(Value::Number(0.0))));
    assert_eq!(back.get("label"), Some(&Value::from("c")));
    let Some(Value::Record(nested)) = back.get("nested") else {
        panic!()
    };
    assert_eq!(
        nested.fields(),
        [("keep".to_string(), Value::Boolean(true))]
    );
    let Value::Edge(road) = env_load_var(&path, "road").unwrap() else {
        panic!()
    };
    assert_eq!(
        road.properties.fields(),
        [("len".to_string(), Value::Number(5.0))]
    );
    // The environment itself is untouched by the save.
    let Some(Value::Record(original)) = env.get("counter") else {
        panic!()
    };
    assert_eq!(original.len(), 4);
}

// ---------------------------------------------------------------------------
// Restore
// ---------------------------------------------------------------------------

#[test]
fn a_restore_that_fails_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "partial.ach");
    let mut saved = Environment::new();
    saved.set("aaa", Value::Number(1.0));
    saved.set("mmm", Value::from("middle"));
    saved.set("shared", Value::from("from the archive"));
    // Large enough for a blob of its own (4 KiB).
    saved.set("zzz", Value::Tensor(iota(&[512])));
    saved.set_constant("K", Value::Number(42.0));
    save(&saved, &path);
    // The last binding in name order, so every other one loads first.
    let (off, len) = Archive::open(&path)
        .unwrap()
        .blob_range(Section::Bindings, "zzz")
        .unwrap();
    flip(&path, off + len - 1);

    let mut env = Environment::new();
    env.set("shared", Value::from("mine"));
    env.set("own", Value::Tensor(iota(&[3])));
    env.set_constant("K", Value::Number(-1.0));
    let before = env.clone();

    let modes = [
        RestoreMode::Merge,
        RestoreMode::Replace,
        RestoreMode::Namespace("ns".into()),
    ];
    for mode in modes {
        for overwrite in [false, true] {
            let opts = RestoreOptions {
                mode: mode.clone(),
                overwrite,
                ..Default::default()
            };
            assert_matches!(
                restore_environment(&mut env, &path, &opts),
                Err(Error::ChecksumMismatch { ref name, .. }) if name == "zzz"
            );
            assert_eq!(env, before, "{mode:?}, overwrite {overwrite}");
        }
    }
}

#[test]
fn a_damaged_constant_also_leaves_the_environment_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "consts.ach");
    let mut saved = Environment::new();
    saved.set("a", Value::Number(1.0));
    saved.set_constant("PI", Value::Number(3.0));
    // Large enough for a blob of its own (4 KiB).
    saved.set_constant("TAU", Value::Tensor(iota(&[512])));
    save(&saved, &path);
    let (off, len) = Archive::open(&path)
        .unwrap()
        .blob_range(Section::Constants, "TAU")
        .unwrap();
    flip(&path, off + len - 1);

    let mut env = Environment::new();
    env.set("b", Value::Null);
    let before = env.clone();
    assert_matches!(
        restore_environment(&mut env, &path, &RestoreOptions::default()),
        Err(Error::ChecksumMismatch { ref name, .. }) if name == "TAU"
    );
    assert_eq!(env, before);
    // Leaving the constants out avoids the damage.
    restore_environment(
        &mut env,
        &path,
        &RestoreOptions {
            include_constants: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(env.names(), ["a", "b"]);
}

/// An archive with `a`, `b`, `c` and a constant, and an environment holding
/// `a` (different value) and `keep`.
fn modes_fixture(dir: &tempfile::TempDir) -> (std::path::PathBuf, Environment) {
    let path = path_in(dir, "modes.ach");
    let mut saved = Environment::new();
    saved.set("a", Value::from("archive a"));
    saved.set("b", Value::Number(2.0));
    saved.set("c", Value::Tensor(iota(&[2, 2])));
    saved.set_constant("G", Value::Number(9.81));
    save(&saved, &path);
    (path, modes_env())
}

fn modes_env() -> Environment {
    let mut env = Environment::new();
    env.set("a", Value::from("mine"));
    env.set("keep", Value::Boolean(true));
    env
}

#[test]
fn merge_keeps_existing_names_and_reports_them_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut env) = modes_fixture(&dir);
    let r = restore_environment(&mut env, &path, &RestoreOptions::default()).unwrap();
    assert_eq!(r.conflicts, ["a"]);
    assert_eq!(r.restored, ["b", "c"]);
    assert_eq!(r.constants_restored, ["G"]);
    assert_eq!(
        r.warnings,
        [
            "kept the current value of \"a\", already bound; pass overwrite: true to replace it with the archive's"
        ]
    );
    assert_eq!(env.get("a"), Some(&Value::from("mine")));
    assert_eq!(env.names(), ["a", "b", "c", "keep"]);
    assert_eq!(env.constant("G"), Some(&Value::Number(9.81)));

    let mut env = modes_env();
    let r = restore_environment(
        &mut env,
        &path,
        &RestoreOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.conflicts.is_empty());
    assert_eq!(r.restored, ["a", "b", "c"]);
    assert_eq!(env.get("a"), Some(&Value::from("archive a")));
    assert_eq!(env.get("keep"), Some(&Value::Boolean(true)));
}

#[test]
fn replace_makes_the_bindings_exactly_the_archives() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut env) = modes_fixture(&dir);
    env.set_constant("MINE", Value::Number(1.0));
    let r = restore_environment(
        &mut env,
        &path,
        &RestoreOptions {
            mode: RestoreMode::Replace,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.restored, ["a", "b", "c"]);
    assert!(r.conflicts.is_empty());
    assert_eq!(env.names(), ["a", "b", "c"]);
    assert_eq!(env.get("a"), Some(&Value::from("archive a")));
    // Constants are a separate section: the archive's are added, ours stay.
    assert_eq!(env.constant("MINE"), Some(&Value::Number(1.0)));
    assert_eq!(env.constant("G"), Some(&Value::Number(9.81)));
}

#[test]
fn namespace_puts_everything_in_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut env) = modes_fixture(&dir);
    let ns = |name: &str| RestoreOptions {
        mode: RestoreMode::Namespace(name.into()),
        ..Default::default()
    };
    let r = restore_environment(&mut env, &path, &ns("old")).unwrap();
    assert_eq!(r.restored, ["a", "b", "c"]);
    assert_eq!(env.names(), ["a", "keep", "old"]);
    assert_eq!(env.get("a"), Some(&Value::from("mine")));
    let Some(Value::Record(old)) = env.get("old") else {
        panic!("old is not a record")
    };
    let fields: Vec<&str> = old.fields().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(fields, ["a", "b", "c"]);
    assert_eq!(old.get("a"), Some(&Value::from("archive a")));
    assert_eq!(old.get("c"), Some(&Value::Tensor(iota(&[2, 2]))));

    // The name is taken now.
    let before = env.clone();
    assert_matches!(
        restore_environment(&mut env, &path, &ns("old")),
        Err(Error::NamespaceTaken { ref name }) if name == "old"
    );
    assert_matches!(
        restore_environment(&mut env, &path, &ns("keep")),
        Err(Error::NamespaceTaken { .. })
    );
    assert_eq!(env, before);
    restore_environment(
        &mut env,
        &path,
        &RestoreOptions {
            overwrite: true,
            include_only: Some(vec!["b".into()]),
            ..ns("keep")
        },
    )
    .unwrap();
    let Some(Value::Record(keep)) = env.get("keep") else {
        panic!()
    };
    assert_eq!(keep.fields(), [("b".to_string(), Value::Number(2.0))]);

    for bad in ["", "1st", "a-b", "a b", "a.b"] {
        let before = env.clone();
        assert_matches!(
            restore_environment(&mut env, &path, &ns(bad)),
            Err(Error::InvalidNamespace { ref name }) if name == bad
        );
        assert_eq!(env, before);
    }
    restore_environment(&mut env, &path, &ns("_under_score9")).unwrap();
    assert!(env.contains("_under_score9"));
}

#[test]
fn strict_version_refuses_another_runtime_and_lenient_warns() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "other.ach");
    let mut saved = Environment::new();
    saved.set("x", Value::Number(1.0));
    save_environment(
        &saved,
        &path,
        &SaveOptions {
            achronyme_version: "v9.9.9".into(),
            ..fast()
        },
    )
    .unwrap();
    assert_eq!(env_info(&path).unwrap().achronyme_version, "v9.9.9");

    let mut env = Environment::new();
    assert_matches!(
        restore_environment(
            &mut env,
            &path,
            &RestoreOptions {
                strict_version: true,
                ..Default::default()
            },
        ),
        Err(Error::VersionMismatch { ref file, ref current })
            if file == "v9.9.9" && current == RUNTIME_VERSION
    );
    assert!(env.is_empty());

    let r = restore_environment(&mut env, &path, &RestoreOptions::default()).unwrap();
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].contains("v9.9.9"), "{:?}", r.warnings);
    assert_eq!(env.get("x"), Some(&Value::Number(1.0)));

    // The same version passes strict mode without a warning.
    let same = path_in(&dir, "same.ach");
    save(&saved, &same);
    let mut env = Environment::new();
    let r = restore_environment(
        &mut env,
        &same,
        &RestoreOptions {
            strict_version: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.warnings.is_empty());
}

#[test]
fn include_only_and_exclude_are_globs_at_restore_and_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "globs.ach");
    let mut saved = Environment::new();
    for name in [
        "data", "model_a", "model_b", "temp_1", "temp_22", "debug_x", "debug_xy",
    ] {
        saved.set(name, Value::from(name));
    }
    save(&saved, &path);

    let restore = |include_only: Option<Vec<&str>>, exclude: Vec<&str>| {
        let mut env = Environment::new();
        let r = restore_environment(
            &mut env,
            &path,
            &RestoreOptions {
                include_only: include_only.map(|v| v.into_iter().map(String::from).collect()),
                exclude: exclude.into_iter().map(String::from).collect(),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.restored, env.names());
        env.names()
    };
    assert_eq!(
        restore(Some(vec!["model*", "data"]), vec![]),
        ["data", "model_a", "model_b"]
    );
    assert_eq!(
        restore(None, vec!["temp_*", "debug_?"]),
        ["data", "debug_xy", "model_a", "model_b"]
    );
    assert_eq!(restore(Some(vec!["model_?"]), vec!["*_b"]), ["model_a"]);
    assert!(restore(Some(vec![]), vec![]).is_empty());
    assert!(restore(Some(vec!["nothing*"]), vec![]).is_empty());

    let mut env = Environment::new();
    assert_matches!(
        restore_environment(
            &mut env,
            &path,
            &RestoreOptions {
                exclude: vec!["[".into()],
                ..Default::default()
            },
        ),
        Err(Error::InvalidPattern { ref pattern, .. }) if pattern == "["
    );

    // The same filters at save time.
    let filtered = path_in(&dir, "filtered.ach");
    let report = save_environment(
        &saved,
        &filtered,
        &SaveOptions {
            exclude: vec!["temp_*".into(), "debug_*".into()],
            ..fast()
        },
    )
    .unwrap();
    assert_eq!(report.written, ["data", "model_a", "model_b"]);
    assert_eq!(env_info(&filtered).unwrap().bindings, report.written);
    let only = path_in(&dir, "only.ach");
    save_environment(
        &saved,
        &only,
        &SaveOptions {
            include_only: Some(vec!["data".into(), "model_b".into()]),
            ..fast()
        },
    )
    .unwrap();
    assert_eq!(env_info(&only).unwrap().bindings, ["data", "model_b"]);
    assert_matches!(
        save_environment(
            &saved,
            path_in(&dir, "bad.ach"),
            &SaveOptions {
                include_only: Some(vec!["{".into()]),
                ..fast()
            },
        ),
        Err(Error::InvalidPattern { .. })
    );
    assert!(!path_in(&dir, "bad.ach").exists());
}

#[test]
fn restore_from_an_open_archive_with_checksums_off() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut env) = modes_fixture(&dir);
    let archive = Archive::open(&path).unwrap();
    let r = restore_from_archive(
        &mut env,
        &archive,
        &RestoreOptions {
            verify_checksum: false,
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.restored, ["a", "b", "c"]);
    assert_eq!(env.get("b"), Some(&Value::Number(2.0)));
}

// ---------------------------------------------------------------------------
// env_info and env_load_var
// ---------------------------------------------------------------------------

#[test]
fn env_info_describes_the_archive_from_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "info.ach");
    let mut env = Environment::new();
    env.set("temperature", Value::Tensor(iota(&[2, 3])));
    env.set("spectrum", Value::ComplexTensor(complex_iota(&[3])));
    env.set("label", Value::from("hello"));
    env.set("n", Value::Number(1.5));
    env.set("flag", Value::Boolean(false));
    env.set("nothing", Value::Null);
    env.set_constant("PI", Value::Number(std::f64::consts::PI));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let report = save_environment(
        &env,
        &path,
        &SaveOptions {
            description: Some("Final results from experiment A".into()),
            tags: vec!["experiment_a".into(), "production".into()],
            custom: vec![("z".into(), "1".into()), ("a".into(), "2".into())],
            ..fast()
        },
    )
    .unwrap();

    let info = env_info(&path).unwrap();
    assert_eq!(info.version, "1.5");
    assert_eq!(info.num_bindings, 6);
    assert_eq!(info.num_constants, 1);
    assert_eq!(info.num_functions, 0);
    assert_eq!(
        info.bindings,
        ["flag", "label", "n", "nothing", "spectrum", "temperature"]
    );
    assert_eq!(
        info.description.as_deref(),
        Some("Final results from experiment A")
    );
    assert_eq!(info.tags, ["experiment_a", "production"]);
    assert_eq!(
        info.custom,
        [
            ("z".to_string(), "1".to_string()),
            ("a".to_string(), "2".to_string())
        ]
    );
    assert_eq!(info.file_size, fs::metadata(&path).unwrap().len());
    assert_eq!(info.file_size, report.bytes);
    assert!(!info.compressed);
    assert_eq!(info.achronyme_version, RUNTIME_VERSION);
    assert_eq!(info.created_by, format!("Achronyme REPL {RUNTIME_VERSION}"));
    assert!(!info.platform.is_empty());
    let now = started + 120;
    assert!((started.saturating_sub(2)..=now).contains(&info.created_timestamp));
    assert_eq!(info.created_at.len(), "2025-01-13T10:30:00Z".len());
    assert!(info.created_at.ends_with('Z'));

    // Entries: bindings in name order, then constants.
    let rows: Vec<(&str, Section, &str, Vec<u64>, u64)> = info
        .entries
        .iter()
        .map(|e| {
            assert_eq!(e.codec, Codec::None);
            assert_eq!(e.raw_bytes, e.stored_bytes);
            (
                e.name.as_str(),
                e.section,
                e.type_name,
                e.shape.clone(),
                e.stored_bytes,
            )
        })
        .collect();
    let b = Section::Bindings;
    assert_eq!(
        rows,
        [
            ("flag", b, "Boolean", vec![], 2),
            ("label", b, "String", vec![], 1 + 8 + 5),
            ("n", b, "Number", vec![], 9),
            ("nothing", b, "Null", vec![], 1),
            ("spectrum", b, "ComplexTensor", vec![3], 3 * 16),
            ("temperature", b, "Tensor", vec![2, 3], 6 * 8),
            ("PI", Section::Constants, "Number", vec![], 9),
        ]
    );

    // One variable without the others.
    assert_eq!(
        env_load_var(&path, "temperature").unwrap(),
        Value::Tensor(iota(&[2, 3]))
    );
    assert_eq!(env_load_var(&path, "label").unwrap(), Value::from("hello"));
    match env_load_var(&path, "temprature") {
        Err(err @ Error::NoSuchBinding { .. }) => {
            let Error::NoSuchBinding { name, suggestion } = &err else {
                unreachable!()
            };
            assert_eq!(name, "temprature");
            assert_eq!(suggestion.as_deref(), Some("temperature"));
            assert!(err.to_string().contains("temperature"), "{err}");
        }
        other => panic!("expected NoSuchBinding, got {other:?}"),
    }
    assert_matches!(
        env_load_var(&path, "completely_unrelated"),
        Err(Error::NoSuchBinding {
            suggestion: None,
            ..
        })
    );
    // A name that is no binding resolves to the constant, as in the
    // language; asked for the bindings section only, it is not there.
    assert_eq!(
        env_load_var(&path, "PI").unwrap(),
        Value::Number(std::f64::consts::PI)
    );
    let bindings_only = LoadVarOptions {
        section: Some(Section::Bindings),
        ..LoadVarOptions::default()
    };
    assert_matches!(
        env_load_var_with(&path, "PI", &bindings_only),
        Err(Error::NoSuchBinding { .. })
    );
}

#[test]
fn env_info_on_an_archive_without_extended_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "plain.ach");
    save(&testdata::many_small(5), &path);
    let info = env_info(&path).unwrap();
    assert_eq!(info.description, None);
    assert!(info.tags.is_empty());
    assert!(info.custom.is_empty());
    assert_eq!(info.num_constants, 0);
    assert_eq!(
        info.bindings,
        ["v000000", "v000001", "v000002", "v000003", "v000004"]
    );
}

// ---------------------------------------------------------------------------
// The three ways to open
// ---------------------------------------------------------------------------

#[test]
fn open_open_copied_and_from_bytes_agree() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "three.ach");
    let env = testdata::every_type();
    save(&env, &path);
    let mapped = Archive::open(&path).unwrap();
    let copied = Archive::open_copied(&path).unwrap();
    let in_memory = Archive::from_bytes(fs::read(&path).unwrap()).unwrap();
    assert_eq!(copied.info(), mapped.info());
    assert_eq!(in_memory.info(), mapped.info());
    for (name, v) in env.iter() {
        let m = mapped.get(name).unwrap();
        assert_eq!(&m, v, "{name}");
        assert_eq!(copied.get(name).unwrap(), m, "{name}");
        assert_eq!(in_memory.get(name).unwrap(), m, "{name}");
    }
    for (name, v) in env.constants() {
        for a in [&mapped, &copied, &in_memory] {
            assert_eq!(
                &a.get_with(Section::Constants, name, LoadOptions::default())
                    .unwrap(),
                v
            );
        }
    }
    for a in [&mapped, &copied, &in_memory] {
        assert_eq!(a.verify().unwrap(), mapped.verify().unwrap());
        let mut restored = Environment::new();
        restore_from_archive(&mut restored, a, &RestoreOptions::default()).unwrap();
        assert_eq!(restored, env);
    }
}

#[test]
fn a_copied_archive_does_not_see_later_changes_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "copied.ach");
    let (env, victim) = victim_env();
    save(&env, &path);
    let copied = Archive::open_copied(&path).unwrap();
    let (off, _) = copied.blob_range(Section::Bindings, "victim").unwrap();
    // In-place modification (which mapping does not guard against).
    flip(&path, off + 100);
    assert_eq!(copied.get("victim").unwrap(), Value::Tensor(victim));
    assert_matches!(
        env_load_var(&path, "victim"),
        Err(Error::ChecksumMismatch { .. })
    );
}

// ---------------------------------------------------------------------------
// Nesting depth (MAX_DEPTH = 128 levels; the top value is level 1)
// ---------------------------------------------------------------------------

#[test]
fn deep_nesting_saves_up_to_the_limit_and_is_refused_beyond() {
    let dir = tempfile::tempdir().unwrap();
    for levels in [100, 128] {
        let path = path_in(&dir, &format!("deep{levels}.ach"));
        let mut env = Environment::new();
        env.set("deep", nested(levels));
        save(&env, &path);
        let mut back = Environment::new();
        restore_environment(&mut back, &path, &RestoreOptions::default()).unwrap();
        assert_eq!(back, env, "{levels} levels");
        Archive::open(&path).unwrap().verify().unwrap();
    }
    for levels in [129, 200] {
        let path = path_in(&dir, &format!("deep{levels}.ach"));
        let mut env = Environment::new();
        env.set("ok", Value::Number(1.0));
        env.set("too_deep", nested(levels));
        assert_matches!(
            save_environment(&env, &path, &fast()),
            Err(Error::TooDeep { ref name, limit: 128 }) if name == "too_deep"
        );
        assert!(!path.exists());
    }
    // Every kind of container counts: a plain vector chain too.
    let mut v = Value::Null;
    for _ in 0..128 {
        v = Value::Vector(vec![v]);
    }
    let mut env = Environment::new();
    env.set("vectors", v);
    assert_matches!(
        save_environment(&env, path_in(&dir, "vectors.ach"), &fast()),
        Err(Error::TooDeep { .. })
    );
    // Only the two good archives are in the directory: no temp files.
    assert_eq!(dir_entries(dir.path()), ["deep100.ach", "deep128.ach"]);
}
