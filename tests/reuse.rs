//! A save reuses what did not change: a tensor loaded from an archive (or
//! written by a save) and never written to since is copied from the blob
//! that stores it, with that blob's digests, when the save's options accept
//! it as stored; the archive is the same, byte for byte, as a full save's.

#[macro_use]
mod common;

use std::path::Path;
use std::time::Duration;

use achronyme_env::*;
use common::*;

fn overwriting(options: &SaveOptions) -> SaveOptions {
    SaveOptions {
        allow_overwrite: true,
        ..options.clone()
    }
}

fn restored(path: &Path) -> Environment {
    let mut env = Environment::new();
    restore_environment(&mut env, path, &RestoreOptions::default()).unwrap();
    env
}

/// The same values, every tensor in storage of its own with no provenance.
fn fresh(env: &Environment) -> Environment {
    let mut out = Environment::new();
    for (name, v) in env.iter() {
        let v = match v {
            Value::Tensor(t) => {
                Value::Tensor(Tensor::new(t.shape().to_vec(), t.data().to_vec()).unwrap())
            }
            Value::ComplexTensor(t) => Value::ComplexTensor(
                ComplexTensor::new(t.shape().to_vec(), t.data().to_vec()).unwrap(),
            ),
            other => other.clone(),
        };
        out.set(name, v);
    }
    out
}

fn has_provenance(v: &Value) -> bool {
    match v {
        Value::Tensor(t) => t.buffer().has_provenance(),
        Value::ComplexTensor(t) => t.buffer().has_provenance(),
        _ => false,
    }
}

/// Bytes of `name`'s blob from its frame to the end of its payload.
fn span(path: &Path, name: &str) -> u64 {
    let info = Archive::open(path)
        .unwrap()
        .binding_info(Section::Bindings, name)
        .unwrap();
    64 + info.stored_bytes
}

/// Saves `env` over `path`, and the same values without provenance to
/// `full_path`, within the same second (the header holds the time in
/// seconds), so that their bytes can be compared. Returns both reports.
fn resave_beside_full(
    env: &Environment,
    path: &Path,
    full_path: &Path,
    options: &SaveOptions,
) -> (SaveReport, SaveReport) {
    let options = overwriting(options);
    let copy = fresh(env);
    for _ in 0..5 {
        let resave = save_environment(env, path, &options).unwrap();
        let full = save_environment(&copy, full_path, &options).unwrap();
        let time = |p: &Path| Archive::open(p).unwrap().info().created_timestamp;
        if time(path) == time(full_path) {
            return (resave, full);
        }
    }
    panic!("five pairs of saves each straddled a second");
}

/// W1 in small: a tensor plus a string, a number and a record.
fn cases() -> Vec<(&'static str, Environment, SaveOptions)> {
    let noise = testdata::normal_tensor(384, 1024, 7); // 3 MiB
    let smooth = Tensor::new(vec![6, 131072], testdata::smooth(6 * 131072)).unwrap(); // 6 MiB
    let mut complex = testdata::tensor_workspace(Tensor::from_vec(vec![0.5; 10]));
    complex.set("data", Value::ComplexTensor(complex_iota(&[300, 500])));
    vec![
        (
            "noise, raw",
            testdata::tensor_workspace(noise.clone()),
            fast(),
        ),
        // zstd finds noise does not pay: a raw blob in a compressed save.
        ("noise, zstd", testdata::tensor_workspace(noise), packed()),
        (
            "smooth, zstd",
            testdata::tensor_workspace(smooth.clone()),
            packed(),
        ),
        (
            "smooth, lz4",
            testdata::tensor_workspace(smooth),
            SaveOptions {
                compression: Compression::Lz4,
                ..packed()
            },
        ),
        ("complex, raw", complex, fast()),
    ]
}

#[test]
fn a_resave_copies_the_unchanged_tensor_and_writes_what_a_full_save_writes() {
    for (case, env, options) in cases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.ach");
        let full_path = dir.path().join("full.ach");
        save_environment(&env, &path, &options).unwrap();
        let blob = span(&path, "data");

        let mut env = restored(&path);
        assert!(has_provenance(env.get("data").unwrap()), "{case}");
        env.set("step", Value::Number(1001.0));
        let (resave, full) = resave_beside_full(&env, &path, &full_path, &options);
        assert_eq!(resave.bytes_copied, blob, "{case}");
        assert_eq!(full.bytes_copied, 0, "{case}");
        assert_eq!(resave.bytes_hashed, full.bytes_hashed - blob, "{case}");
        let elements = Archive::open(&path)
            .unwrap()
            .binding_info(Section::Bindings, "data")
            .unwrap()
            .raw_bytes;
        assert_eq!(
            resave.bytes_encoded,
            full.bytes_encoded - elements,
            "{case}"
        );
        assert!(
            resave.bytes_hashed < 4096,
            "{case}: {}",
            resave.bytes_hashed
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(&full_path).unwrap(),
            "{case}"
        );

        // Again: the tensor still comes from the first file, which the last
        // save renamed another over; its open handle still reads it.
        env.set("step", Value::Number(1002.0));
        let again = save_environment(&env, &path, &overwriting(&options)).unwrap();
        assert_eq!(again.bytes_copied, blob, "{case}");
        Archive::open(&path).unwrap().verify().unwrap();
        assert_eq!(restored(&path), env, "{case}");
    }
}

#[test]
fn a_tensor_saved_to_a_file_carries_it_and_the_next_save_copies_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set("t", Value::Tensor(testdata::normal_tensor(100, 100, 1)));
    env.set("s", Value::from("x"));
    assert!(!has_provenance(env.get("t").unwrap()));
    let first = save_environment(&env, dir.path().join("a.ach"), &fast()).unwrap();
    assert_eq!(first.bytes_copied, 0);
    assert!(has_provenance(env.get("t").unwrap()));
    // Kept open by a handle of its own, not the one the save wrote with,
    // which held the temporary file's lock: nobody is locked out.
    let other = std::fs::File::open(dir.path().join("a.ach")).unwrap();
    assert!(other.try_lock().is_ok());
    drop(other);
    // Saved elsewhere, as a checkpoint loop does: copied from a.ach.
    let second = save_environment(&env, dir.path().join("b.ach"), &fast()).unwrap();
    assert_eq!(second.bytes_copied, 64 + 80_000);
    assert_eq!(second.bytes_encoded, first.bytes_encoded - 80_000);
    assert_eq!(restored(&dir.path().join("b.ach")), env);
}

#[test]
fn a_blob_this_process_wrote_is_copied_only_under_the_settings_it_was_written_with() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set(
        "t",
        Value::Tensor(Tensor::from_vec(testdata::smooth(500_000))),
    );
    let save = |name: &str, level: i32, filters: bool| {
        let options = SaveOptions {
            compression: Compression::Zstd { level },
            filters,
            ..packed()
        };
        save_environment(&env, dir.path().join(name), &options).unwrap()
    };
    assert_eq!(save("a.ach", 3, true).bytes_copied, 0);
    // Its level and filters are known: another level or filter setting
    // compresses afresh, as asked.
    assert_eq!(save("b.ach", 9, true).bytes_copied, 0);
    assert_eq!(save("c.ach", 3, false).bytes_copied, 0);
    assert!(save("d.ach", 3, true).bytes_copied > 0);
    let size = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
    assert!(size("b.ach") <= size("a.ach"));
    assert_eq!(size("a.ach"), size("d.ach"));
}

#[test]
fn clones_share_provenance_and_every_write_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.ach");
    let mut env = Environment::new();
    env.set("t", Value::Tensor(iota(&[40, 50])));
    env.set("c", Value::ComplexTensor(complex_iota(&[30, 20])));
    save(&env, &path);
    let archive = Archive::open(&path).unwrap();
    let Value::Tensor(t) = archive.get("t").unwrap() else {
        panic!()
    };
    let Value::ComplexTensor(c) = archive.get("c").unwrap() else {
        panic!()
    };
    assert!(t.is_mapped() && t.buffer().has_provenance());
    assert!(c.buffer().has_provenance());

    // Clones share it; a write drops it from the clone written to only.
    let mut t2 = t.clone();
    assert!(t2.buffer().has_provenance());
    t2.data_mut()[0] = 5.0;
    assert!(!t2.buffer().has_provenance());
    assert!(t.buffer().has_provenance());
    let mut c2 = c.clone();
    c2.data_mut()[3].im = 1.0;
    assert!(!c2.buffer().has_provenance());
    let mut b = t.buffer().clone();
    b.make_mut();
    assert!(!b.has_provenance());
    // Giving the buffer back unchanged (shared) keeps it.
    let back = t.buffer().clone().try_into_vec().unwrap_err();
    assert!(back.has_provenance());
    // A reshape keeps the bytes, and the blob holds no shape: kept, and
    // the save copies it under the new shape.
    let reshaped = Tensor::from_buffer(vec![50, 40], t.buffer().clone()).unwrap();
    assert!(reshaped.buffer().has_provenance());

    let mut next = Environment::new();
    next.set("reshaped", Value::Tensor(reshaped.clone()));
    next.set("written", Value::Tensor(t2.clone()));
    let report = save_environment(&next, dir.path().join("next.ach"), &fast()).unwrap();
    assert_eq!(report.bytes_copied, 64 + 16_000);
    assert_eq!(report.bytes_encoded, 16_000);
    let back = restored(&dir.path().join("next.ach"));
    assert_eq!(back.get("reshaped").unwrap(), &Value::Tensor(reshaped));
    assert_eq!(back.get("written").unwrap(), &Value::Tensor(t2));

    // A snapshot keeps its own after the environment's tensor is written.
    let mut env = restored(&path);
    let snap = snapshot_env(&env, &SnapshotOptions::default()).unwrap();
    let Some(Value::Tensor(live)) = env.get_mut("t") else {
        panic!()
    };
    live.data_mut()[1] = -1.0;
    assert!(!has_provenance(env.get("t").unwrap()));
    assert!(has_provenance(snap.get("t").unwrap()));
}

#[test]
fn only_tensors_loaded_from_a_local_file_carry_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.ach");
    let mut env = Environment::new();
    env.set("t", Value::Tensor(iota(&[1000])));
    save(&env, &path);
    let bytes = std::fs::read(&path).unwrap();
    let t = |a: &Archive| a.get("t").unwrap();
    assert!(has_provenance(&t(&Archive::open(&path).unwrap())));
    // In memory: no file to copy from.
    assert!(!has_provenance(&t(&Archive::from_bytes(bytes).unwrap())));
    assert!(!has_provenance(&t(&Archive::open_copied(&path).unwrap())));
    // Copied out (the default) or a view: both keep it.
    let copied = env_load_var(&path, "t").unwrap();
    assert!(has_provenance(&copied));
    let mut viewed = Environment::new();
    let view = RestoreOptions {
        copy: false,
        ..RestoreOptions::default()
    };
    restore_environment(&mut viewed, &path, &view).unwrap();
    assert!(has_provenance(viewed.get("t").unwrap()));
}

/// Saves `env` with `first`, restores it, saves it again with `second`:
/// the report and the archive, restored.
fn resave_with(
    env: &Environment,
    first: &SaveOptions,
    second: &SaveOptions,
) -> (SaveReport, Environment, Archive) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.ach");
    save_environment(env, &path, first).unwrap();
    let env = restored(&path);
    let report = save_environment(&env, &path, &overwriting(second)).unwrap();
    let archive = Archive::open_copied(&path).unwrap();
    archive.verify().unwrap();
    (report, restored(&path), archive)
}

#[test]
fn options_that_would_store_the_tensor_otherwise_rewrite_it_and_it_round_trips() {
    let smooth = testdata::tensor_workspace(
        Tensor::new(vec![800, 1000], testdata::smooth(800_000)).unwrap(),
    );
    let noise = testdata::tensor_workspace(testdata::normal_tensor(500, 1000, 3));
    let sha = |o: SaveOptions| SaveOptions {
        checksum: Checksum::Sha256,
        ..o
    };
    let zstd9 = SaveOptions {
        compression: Compression::Zstd { level: 9 },
        ..packed()
    };
    let lz4 = SaveOptions {
        compression: Compression::Lz4,
        ..packed()
    };
    // (case, environment, first save, second save, copied?, codec after)
    let cases = [
        (
            "sha-256 source, xxh3 save",
            &noise,
            sha(fast()),
            fast(),
            false,
            Codec::None,
        ),
        (
            "xxh3 source, sha-256 save",
            &noise,
            fast(),
            sha(fast()),
            false,
            Codec::None,
        ),
        (
            "sha-256 both",
            &noise,
            sha(fast()),
            sha(fast()),
            true,
            Codec::None,
        ),
        (
            "zstd source, raw save",
            &smooth,
            packed(),
            fast(),
            false,
            Codec::None,
        ),
        (
            "zstd source, lz4 save",
            &smooth,
            packed(),
            lz4.clone(),
            false,
            Codec::Lz4,
        ),
        (
            "raw source, zstd save",
            &smooth,
            fast(),
            packed(),
            false,
            Codec::Zstd,
        ),
        (
            "lz4 source, zstd save of noise",
            &noise,
            lz4,
            packed(),
            false,
            Codec::None,
        ),
        // Accepted as stored: another level of the same codec.
        (
            "zstd 3 source, zstd 9 save",
            &smooth,
            packed(),
            zstd9.clone(),
            true,
            Codec::Zstd,
        ),
        (
            "zstd 3 noise, zstd 9 save",
            &noise,
            packed(),
            zstd9.clone(),
            true,
            Codec::None,
        ),
        // With filters off, a blob whose chunks use filters is rewritten.
        (
            "zstd + filters source, zstd save without filters",
            &smooth,
            packed(),
            SaveOptions {
                filters: false,
                ..packed()
            },
            false,
            Codec::None,
        ),
        // Unless told not to: recompressed at the new level.
        (
            "zstd 3 source, zstd 9 save, reuse_stored off",
            &smooth,
            packed(),
            SaveOptions {
                reuse_stored: false,
                ..zstd9
            },
            false,
            Codec::Zstd,
        ),
    ];
    for (case, env, first, second, copies, codec) in cases {
        let (report, back, archive) = resave_with(env, &first, &second);
        assert_eq!(report.bytes_copied > 0, copies, "{case}: {report:?}");
        assert_eq!(report.bytes_encoded > 1 << 20, !copies, "{case}");
        assert_eq!(&back, env, "{case}");
        assert_eq!(
            archive
                .binding_info(Section::Bindings, "data")
                .unwrap()
                .codec,
            codec,
            "{case}"
        );
    }
}

/// Sets the modification time of the file at `path`.
fn set_modified(path: &Path, to: std::time::SystemTime) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(to).unwrap();
}

#[test]
fn a_source_changed_in_place_after_the_load_is_rewritten_or_its_damage_is_detected() {
    // Compressed, so the loaded tensor holds its own decompressed copy and
    // changing the file cannot change it.
    let env = testdata::tensor_workspace(
        Tensor::new(vec![1000, 1000], testdata::smooth(1_000_000)).unwrap(),
    );
    for keep_mtime in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.ach");
        save_environment(&env, &path, &packed()).unwrap();
        let loaded = restored(&path);
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        // Damage a payload byte in place (same file, same length).
        flip(&path, 64 + 64 + 100);
        // The file system's clock may not have moved since the save: move
        // the time on as a later write would, or put it back.
        set_modified(
            &path,
            if keep_mtime {
                modified
            } else {
                modified + Duration::from_secs(1)
            },
        );

        let out = dir.path().join("out.ach");
        let report = save_environment(&loaded, &out, &packed()).unwrap();
        if keep_mtime {
            // Nothing says the file changed: the blob is copied with its
            // digests, and the damage it carries is reported on load.
            assert!(report.bytes_copied > 0);
            let err = Archive::open(&out).unwrap().get("data").unwrap_err();
            assert_matches!(err, Error::ChecksumMismatch { .. });
            assert!(Archive::open(&out).unwrap().verify().is_err());
        } else {
            // Changed since the load: the elements are written from memory.
            assert_eq!(report.bytes_copied, 0);
            Archive::open(&out).unwrap().verify().unwrap();
            assert_eq!(restored(&out), env);
        }
    }
}

/// W1 in small with a `rows x 1000` tensor, saved raw to `w.ach` in a new
/// directory, and restored from it.
fn saved_and_restored(
    rows: usize,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Environment,
    Environment,
) {
    let env = testdata::tensor_workspace(testdata::normal_tensor(rows, 1000, 9));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.ach");
    save_environment(&env, &path, &fast()).unwrap();
    let loaded = restored(&path);
    (dir, path, env, loaded)
}

#[test]
fn a_source_cut_short_after_the_load_is_not_copied_from() {
    let (dir, path, env, loaded) = saved_and_restored(200);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let out = dir.path().join("out.ach");
    let report = save_environment(&loaded, &out, &fast()).unwrap();
    assert_eq!(report.bytes_copied, 0);
    assert_eq!(restored(&out), env);
}

#[test]
fn a_copy_counts_against_max_file_size() {
    let (dir, _, _, loaded) = saved_and_restored(100);
    let small = SaveOptions {
        max_file_size: Some(100_000),
        ..fast()
    };
    let err = save_environment(&loaded, dir.path().join("out.ach"), &small).unwrap_err();
    // Refused before the copy, which would have ended past the limit.
    assert_matches!(err, Error::SizeLimitExceeded { limit: 100_000, ref name } if name == "data");
}

/// Tensors nested in a value and stored apart (format 1.3, layout.md 3.6)
/// reuse their blobs like top-level ones: after a save (the checkpoint
/// loop's `results` vector) and after a restore, the next save copies them,
/// and one that shares a binding's storage finds that binding's blob.
#[test]
fn nested_tensors_stored_apart_are_copied_too() {
    let dir = tempfile::tempdir().unwrap();
    let big = |seed| Value::Tensor(testdata::normal_tensor(100, 100, seed)); // 80,000 bytes
    let shared = big(9);
    let mut env = Environment::new();
    env.set(
        "results",
        Value::Vector(vec![big(1), big(2), shared.clone()]),
    );
    env.set("w", shared);
    let first = save_environment(&env, dir.path().join("a.ach"), &fast()).unwrap();
    assert_eq!(first.bytes_copied, 0);
    let Some(Value::Vector(items)) = env.get("results") else {
        panic!()
    };
    assert!(items.iter().all(has_provenance), "adopted after the save");
    // Saved elsewhere: the three blobs (two stored apart, one the binding
    // w's, which the third element refers to) copied, nothing re-encoded.
    let second = save_environment(&env, dir.path().join("b.ach"), &fast()).unwrap();
    assert_eq!(second.bytes_copied, 3 * (64 + 80_000));
    assert_eq!(second.bytes_encoded, first.bytes_encoded - 3 * 80_000);
    assert_eq!(
        std::fs::read(dir.path().join("a.ach")).unwrap().len(),
        std::fs::read(dir.path().join("b.ach")).unwrap().len()
    );
    // Restored, one more element appended, saved over the file it came
    // from: only the new tensor is encoded.
    let mut back = restored(&dir.path().join("b.ach"));
    assert_eq!(back, env);
    let Some(Value::Vector(mut items)) = back.get("results").cloned() else {
        panic!()
    };
    assert!(
        items.iter().all(has_provenance),
        "loaded through references"
    );
    items.push(big(4));
    back.set("results", Value::Vector(items));
    let third = save_environment(&back, dir.path().join("b.ach"), &overwriting(&fast())).unwrap();
    assert_eq!(third.bytes_copied, 3 * (64 + 80_000));
    assert!(
        third.bytes_encoded < 80_000 + 1_000,
        "{}",
        third.bytes_encoded
    );
    assert_eq!(restored(&dir.path().join("b.ach")), back);
}

/// Blobs under 4 KiB are written again rather than copied, and carry no
/// provenance: copying each would cost a flush and a system call, more than
/// writing its bytes (a re-save of many small tensors was 2.7x slower).
#[test]
fn small_tensors_are_written_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.ach");
    let mut env = Environment::new();
    for i in 0..50 {
        env.set(
            format!("t{i:02}"),
            Value::Tensor(Tensor::from_vec(vec![i as f64; 16])),
        );
    }
    // 3,000 elements: a span of 24,064 bytes, copied.
    env.set("big", Value::Tensor(testdata::normal_tensor(3, 1000, 5)));
    save_environment(&env, &path, &fast()).unwrap();
    assert!(!has_provenance(env.get("t00").unwrap()));
    assert!(has_provenance(env.get("big").unwrap()));
    let back = restored(&path);
    assert!(!has_provenance(back.get("t00").unwrap()));
    let again = save_environment(&back, &path, &overwriting(&fast())).unwrap();
    assert_eq!(again.bytes_copied, 64 + 24_000);
    assert_eq!(restored(&path), env);
}
