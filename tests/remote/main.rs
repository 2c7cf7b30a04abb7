//! Archives on object storage: the in-memory store wrapped in a counting
//! layer (requests and bytes per operation) and a fault-injecting one, and
//! (in `s3.rs`) a real S3-protocol server on 127.0.0.1.

mod s3;
mod server;
mod stores;

use std::sync::{Arc, OnceLock};

use achronyme_env::object_store::memory::InMemory;
use achronyme_env::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use achronyme_env::testdata::{many_small, normal_tensor, tensor_workspace};
use achronyme_env::*;

use stores::{Counting, Fault, Faulty};

/// A runtime for the tests' own requests (putting objects in place).
fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
}

fn put(store: &dyn ObjectStore, key: &str, bytes: Vec<u8>) {
    rt().block_on(store.put(&key.into(), PutPayload::from(bytes)))
        .unwrap();
}

fn get(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
    rt().block_on(async { store.get(&key.into()).await.unwrap().bytes().await.unwrap() })
        .to_vec()
}

fn raw() -> SaveOptions {
    SaveOptions {
        compression: Compression::None,
        durable: false,
        ..Default::default()
    }
}

/// The bytes of `env` saved with `opts` to a local file.
fn bytes_of(env: &Environment, opts: &SaveOptions) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.ach");
    save_environment(env, &path, opts).unwrap();
    std::fs::read(path).unwrap()
}

fn with(store: Arc<dyn ObjectStore>) -> RemoteOptions {
    RemoteOptions::default().with_store(store)
}

/// An 8 MiB tensor and three small bindings, raw, in memory at `w.ach`.
fn workspace() -> (Environment, Vec<u8>, Arc<InMemory>) {
    let env = tensor_workspace(normal_tensor(1024, 1024, 7));
    let bytes = bytes_of(&env, &raw());
    let mem = Arc::new(InMemory::new());
    put(&*mem, "w.ach", bytes.clone());
    (env, bytes, mem)
}

#[test]
fn open_is_two_requests_in_one_round_trip_and_a_binding_one_more() {
    let (env, bytes, mem) = workspace();
    let counting = Counting::new(mem);
    let opts = with(counting.clone()).with_part_size(1 << 20);
    let archive = Archive::open_url_with("memory:///w.ach", &opts).unwrap();
    let open = counting.counts();
    assert_eq!(open.gets, 2, "header and tail, concurrently");
    assert_eq!(open.heads, 0);
    assert_eq!(
        open.get_bytes,
        64 + (1 << 20),
        "the header and the speculative tail"
    );
    let info = archive.info();
    assert_eq!(info.bindings, env.names());
    assert_eq!(info.file_size, bytes.len() as u64);
    assert_eq!(counting.counts(), open, "info reads nothing more");

    // One small binding: it lives in the table's value pool (format 1.4),
    // which the open fetched with the table: no request at all.
    let before = counting.counts();
    assert_eq!(&archive.get("config").unwrap(), env.get("config").unwrap());
    let one = counting.since(before);
    assert_eq!((one.gets, one.get_bytes), (0, 0));

    // The 8 MiB tensor: parts of 1 MiB, its exact span in all.
    let before = counting.counts();
    let Value::Tensor(t) = archive.get("data").unwrap() else {
        panic!()
    };
    let big = counting.since(before);
    let (_, span) = archive.blob_range(Section::Bindings, "data").unwrap();
    assert_eq!(big.gets, span.div_ceil(1 << 20));
    assert_eq!(big.get_bytes, span);
    assert!(!t.is_mapped(), "a remote tensor is an owned buffer");
    assert_eq!(&Value::Tensor(t), env.get("data").unwrap());
}

#[test]
fn env_info_of_a_small_archive_is_one_round_trip_of_the_whole_object() {
    let env = tensor_workspace(Tensor::from_vec(vec![1.0; 100]));
    let bytes = bytes_of(&env, &raw());
    let counting = Counting::new(Arc::new(InMemory::new()));
    put(&*counting, "small.ach", bytes.clone());
    let before = counting.counts();
    let archive = Archive::open_url_with("memory:///small.ach", &with(counting.clone())).unwrap();
    let c = counting.since(before);
    assert_eq!(c.gets, 2);
    assert_eq!(
        c.get_bytes,
        64 + bytes.len() as u64,
        "the tail is the whole object"
    );
    // Everything is then served from what the open fetched.
    restore_from_archive(
        &mut Environment::new(),
        &archive,
        &RestoreOptions::default(),
    )
    .unwrap();
    archive.verify().unwrap();
    assert_eq!(counting.since(before).gets, 2);
}

#[test]
fn a_table_larger_than_the_tail_costs_one_more_request() {
    let env = many_small(3000);
    let bytes = bytes_of(&env, &raw());
    let local = Archive::from_bytes(bytes.clone()).unwrap();
    let counting = Counting::new(Arc::new(InMemory::new()));
    put(&*counting, "many.ach", bytes);
    let tail = 16 << 10;
    assert!(local.toc_len() > tail);
    let opts = RemoteOptions {
        open_tail: tail,
        ..with(counting.clone())
    };
    let before = counting.counts();
    let archive = Archive::open_url_with("memory:///many.ach", &opts).unwrap();
    let c = counting.since(before);
    assert_eq!(c.gets, 3);
    assert_eq!(c.get_bytes, 64 + tail + local.toc_len());
    assert_eq!(archive.info().bindings, local.info().bindings);
}

#[test]
fn every_reading_entry_point_takes_a_url() {
    let (env, _, _) = workspace();
    let url = "memory:///entry/points.ach";
    let report = save_environment(&env, url, &raw()).unwrap();
    assert_eq!(report.path.to_str(), Some(url));
    assert_eq!(env_info(url).unwrap().bindings, env.names());
    assert_eq!(
        &env_load_var(url, "step").unwrap(),
        env.get("step").unwrap()
    );
    for mode in [
        RestoreMode::Merge,
        RestoreMode::Replace,
        RestoreMode::Namespace("ns".into()),
    ] {
        let mut into = Environment::new();
        let opts = RestoreOptions {
            mode: mode.clone(),
            ..Default::default()
        };
        restore_environment(&mut into, url, &opts).unwrap();
        match mode {
            RestoreMode::Namespace(_) => assert!(into.get("ns").is_some()),
            _ => assert_eq!(into, env),
        }
    }
    Archive::open_location(url).unwrap().verify().unwrap();
    let missing = Archive::open_url("memory:///entry/none.ach").unwrap_err();
    assert_eq!(
        missing.remote_failure().map(|f| f.kind),
        Some(RemoteErrorKind::NotFound),
        "{missing}"
    );
}

#[test]
fn a_small_save_is_one_conditional_put_and_a_large_one_a_multipart_upload() {
    let counting = Counting::new(Arc::new(InMemory::new()));
    let opts = SaveOptions {
        remote: with(counting.clone()).with_part_size(5 << 20),
        ..raw()
    };
    let small = tensor_workspace(Tensor::from_vec(vec![2.0; 1000]));
    let url = "memory:///saves/small.ach";
    let before = counting.counts();
    save_environment(&small, url, &opts).unwrap();
    let c = counting.since(before);
    assert_eq!(
        (c.puts, c.uploads, c.heads),
        (1, 0, 1),
        "a check, then one PUT"
    );
    let err = save_environment(&small, url, &opts).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");

    let large = tensor_workspace(normal_tensor(1536, 1024, 3)); // 12 MiB
    let url = "memory:///saves/large.ach";
    let before = counting.counts();
    let report = save_environment(&large, url, &opts).unwrap();
    let c = counting.since(before);
    assert_eq!((c.puts, c.uploads, c.completed, c.aborted), (0, 1, 1, 0));
    assert_eq!(c.parts, report.bytes.div_ceil(5 << 20));
    assert_eq!(c.put_bytes, report.bytes);
    let archive = Archive::open_url_with(url, &opts.remote).unwrap();
    let mut back = Environment::new();
    restore_from_archive(&mut back, &archive, &RestoreOptions::default()).unwrap();
    assert_eq!(back, large);
    // The same bytes a local save writes, but for the timestamp.
    assert_eq!(report.bytes, bytes_of(&large, &raw()).len() as u64);

    // No overwrite: refused before anything is written.
    let before = counting.counts();
    let err = save_environment(&large, url, &opts).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(counting.since(before).parts, 0);
    let again = SaveOptions {
        allow_overwrite: true,
        ..opts.clone()
    };
    save_environment(&small, url, &again).unwrap();
    assert_eq!(env_info_with(url, &opts.remote).bindings, small.names());
}

fn env_info_with(url: &str, opts: &RemoteOptions) -> EnvInfo {
    Archive::open_url_with(url, opts).unwrap().info()
}

#[test]
fn a_failed_upload_is_aborted_and_leaves_the_old_object() {
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let old = tensor_workspace(Tensor::from_vec(vec![1.0; 10]));
    let url = "memory:///fail/w.ach";
    let opts = SaveOptions {
        remote: with(mem.clone()),
        ..raw()
    };
    save_environment(&old, url, &opts).unwrap();
    let old_bytes = get(&*mem, "fail/w.ach");

    // A part that fails, or a completion that fails (once left with its
    // parts stored and never aborted): either way the upload is aborted.
    for (fault, completed) in [((2, Fault::FailPart), 0), ((0, Fault::FailComplete), 1)] {
        let faulty = Faulty::new(mem.clone(), vec![fault.clone()]);
        let counting = Counting::new(faulty);
        let opts = SaveOptions {
            remote: with(counting.clone()).with_part_size(5 << 20),
            allow_overwrite: true,
            ..raw()
        };
        let new = tensor_workspace(normal_tensor(1536, 1024, 4));
        let err = save_environment(&new, url, &opts).unwrap_err();
        let f = err.remote_failure().expect("a remote failure");
        assert_eq!(f.kind, RemoteErrorKind::Connection, "{fault:?}: {err}");
        let c = counting.counts();
        assert_eq!(
            (c.uploads, c.completed, c.aborted),
            (1, completed, 1),
            "{fault:?}"
        );
        assert_eq!(
            get(&*mem, "fail/w.ach"),
            old_bytes,
            "{fault:?}: the old object is untouched"
        );
    }
}

/// An archive over `faults`, opened, and the result of loading `data`.
fn load_with(faults: Vec<(u64, Fault)>) -> (Result<Value>, Environment, Arc<Counting>) {
    let (env, _, mem) = workspace();
    let counting = Counting::new(Faulty::new(mem, faults));
    let opts = with(counting.clone()).with_part_size(1 << 20);
    let archive = Archive::open_url_with("memory:///w.ach", &opts).unwrap();
    (archive.get("data"), env, counting)
}

#[test]
fn parts_are_checked_with_the_archive_s_own_checksum() {
    // Every part is checked as it arrives, with the algorithm the archive
    // records: an XXH3 archive once failed here, every part "damaged",
    // because the part check hashed with SHA-256.
    for checksum in [Checksum::Xxh3, Checksum::Sha256] {
        let env = tensor_workspace(normal_tensor(1024, 1024, 7));
        let opts = SaveOptions { checksum, ..raw() };
        let mut bytes = bytes_of(&env, &opts);
        let mem = Arc::new(InMemory::new());
        put(&*mem, "w.ach", bytes.clone());
        let remote = with(mem.clone()).with_part_size(1 << 20);
        let archive = Archive::open_url_with("memory:///w.ach", &remote).unwrap();
        assert_eq!(archive.checksum(), checksum);
        assert_eq!(
            &archive.get("data").unwrap(),
            env.get("data").unwrap(),
            "{checksum:?}"
        );

        // One flipped byte in the tensor's fourth MiB: that chunk is named.
        // (The elements start a few bytes into the blob, whose chunks
        // are counted from its frame.)
        let Some(Value::Tensor(t)) = env.get("data") else {
            panic!("the workspace's data is a tensor")
        };
        let first: &[u8] = bytemuck::cast_slice(&t.data()[..8]);
        let elements = bytes.windows(64).position(|w| w == first).unwrap();
        bytes[elements + 3 * (1 << 20) + 100] ^= 0x10;
        put(&*mem, "w.ach", bytes);
        let archive = Archive::open_url_with("memory:///w.ach", &remote).unwrap();
        let err = archive.get("data").unwrap_err();
        assert!(
            matches!(err, Error::ChecksumMismatch { chunk: 3, .. }),
            "{checksum:?}: {err}"
        );
    }
}

#[test]
fn a_binding_over_the_memory_budget_is_refused_before_it_is_fetched() {
    // Once, a 10 GB remote binding with a 1 MiB budget was downloaded
    // whole, then refused.
    let (_, _, mem) = workspace();
    let counting = Counting::new(mem);
    let archive = Archive::open_url_with("memory:///w.ach", &with(counting.clone())).unwrap();
    let opened = counting.counts();
    let small = LoadOptions {
        max_decoded_bytes: 1 << 20,
        ..LoadOptions::default()
    };
    let err = archive
        .get_with(Section::Bindings, "data", small)
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit: 1048576, .. }),
        "{err}"
    );
    let after = counting.counts();
    assert_eq!(after.gets, opened.gets, "no request for the refused tensor");
    assert_eq!(after.get_bytes, opened.get_bytes);
    // Within the budget it loads.
    assert!(archive.get("data").is_ok());
}

#[test]
fn a_dropped_or_short_read_is_retried() {
    // GETs 1 and 2 are the open; 3 is the first part of the tensor.
    for fault in [Fault::Fail, Fault::Short] {
        let (got, env, counting) = load_with(vec![(3, fault.clone())]);
        assert_eq!(&got.unwrap(), env.get("data").unwrap(), "{fault:?}");
        // The open's 2, the tensor's 9 parts (8 MiB and its frame), 1 again.
        assert_eq!(
            counting.counts().gets,
            2 + 9 + 1,
            "{fault:?}: one part fetched twice"
        );
    }
}

#[test]
fn a_read_that_keeps_failing_is_a_network_error_not_damage() {
    let faults = (3..=5).map(|n| (n, Fault::Fail)).collect();
    let (got, _, _) = load_with(faults);
    let err = got.unwrap_err();
    assert!(matches!(err, Error::SourceRead { .. }), "{err}");
    assert_eq!(
        err.remote_failure().unwrap().kind,
        RemoteErrorKind::Connection
    );
}

#[test]
fn different_bytes_fail_the_checksum_never_load() {
    // GET 5 is the third 1 MiB part: the flip lands in chunk 2, and the
    // check made as the part arrived names it.
    let (got, _, _) = load_with(vec![(5, Fault::Flip)]);
    let err = got.unwrap_err();
    assert!(
        matches!(err, Error::ChecksumMismatch { chunk: 2, .. }),
        "{err}"
    );
}

#[test]
fn an_object_replaced_after_the_open_is_reported_as_changed() {
    let other = bytes_of(&tensor_workspace(normal_tensor(1024, 1024, 8)), &raw());
    let (got, _, _) = load_with(vec![(3, Fault::Replace(other))]);
    let err = got.unwrap_err();
    assert_eq!(
        err.remote_failure().map(|f| f.kind),
        Some(RemoteErrorKind::Changed),
        "{err}"
    );
}

#[test]
fn an_object_replaced_during_the_open_is_opened_again() {
    let (_, _, mem) = workspace();
    let newer = many_small(3);
    let faulty = Faulty::new(mem, vec![(2, Fault::Replace(bytes_of(&newer, &raw())))]);
    let counting = Counting::new(faulty);
    let archive = Archive::open_url_with("memory:///w.ach", &with(counting.clone())).unwrap();
    assert_eq!(archive.info().bindings, newer.names());
    assert_eq!(counting.counts().gets, 4, "the open's two requests, twice");
}

/// The remote path gives the same verdict as the local one on damaged
/// archives: a sample of bit flips (every header byte, every 97th byte,
/// the last 160) and truncations, read with small requests.
#[test]
fn damaged_archives_get_the_same_verdict_remotely() {
    let mut env = achronyme_env::testdata::every_type();
    env.set("t", Value::Tensor(normal_tensor(64, 64, 1)));
    let good = bytes_of(
        &env,
        &SaveOptions {
            durable: false,
            ..Default::default()
        },
    );
    let n = good.len();
    let mem = Arc::new(InMemory::new());
    // A tiny tail and tiny parts: the table, the blobs and the digests are
    // read with requests of their own, large blobs in several parts.
    let opts = RemoteOptions {
        open_tail: 64,
        ..with(mem.clone()).with_part_size(4096)
    };
    // What a reader sees: the verify report and every binding's load.
    let seen = |opened: Result<Archive>| match opened {
        Ok(a) => {
            let loads: Vec<String> = a
                .names(Section::Bindings)
                .map(|n| match a.get(n) {
                    Ok(v) => format!("{v:?}"),
                    Err(e) => e.to_string(),
                })
                .collect();
            format!("{:?} {loads:?}", a.verify_report())
        }
        Err(e) => e.to_string(),
    };
    let verdict = |bytes: Vec<u8>| -> (String, String) {
        let local = seen(Archive::from_bytes(bytes.clone()));
        put(&*mem, "d.ach", bytes);
        (
            local,
            seen(Archive::open_url_with("memory:///d.ach", &opts)),
        )
    };
    let offsets = (0..64)
        .chain((64..n).step_by(23))
        .chain(n.saturating_sub(160)..n);
    let mut checked = 0;
    for at in offsets {
        let mut bad = good.clone();
        bad[at] ^= 0x04;
        let (local, remote) = verdict(bad);
        assert_eq!(local, remote, "bit flip at {at}");
        checked += 1;
    }
    for len in (0..n)
        .step_by(97)
        .chain([1, 63, 64, 65, n - 65, n - 64, n - 1])
    {
        let (local, remote) = verdict(good[..len].to_vec());
        assert_eq!(local, remote, "truncated to {len}");
        assert!(
            !remote.starts_with("VerifyReport"),
            "a cut archive never opens"
        );
        checked += 1;
    }
    assert!(checked > 100);
}
