//! Criterion benchmarks of the engine's performance promises (spec 8,
//! DESIGN.md "Properties that make it real"), each next to a same-run
//! baseline:
//!
//! 1. `env_info/{1MiB,1GiB}`: `Archive::open` + `info()` (what
//!    `env_info(path)` does) on one f64 tensor of 1 MiB vs 1 GiB plus the same
//!    three small bindings. Target: within 1.5x, tens of microseconds.
//! 2. `many_small_100k/*`: 100,000 small bindings: `env_info` (< 5 ms),
//!    `env_info_and_names` (also lists every name), `open_only`,
//!    `info_open_archive`, `get_one_open_archive` and `open_and_get_one`
//!    (`env_load_var`, < 1 ms).
//! 3. `load_1GiB/*`: the 1 GiB tensor from an open archive: `get_unverified`
//!    (a mapped view, < 1 ms), `get_verified` (SHA-256 on every core) and
//!    `sha256_single_thread` over the same mapped bytes as its baseline.
//! 4. `save_1GiB/*`: `save_not_durable` vs `fs_write` of the same bytes
//!    (target: within 2x) and `fs_write_tmp_rename` (what a save does to the
//!    file system, minus framing and hashing); `save_durable`, and
//!    `save_durable_sync_part`, which times only `SaveReport::sync_time`
//!    (fsync of the file, rename, fsync of the directory).
//! 5. `restore_256MiB/*`: `restore_environment` of one raw 256 MiB tensor
//!    as a view of the mapped file (`copy: false`) or as an owned copy
//!    (`copy: true`, the default), each unverified and verified; and
//!    `mapped_then_read`, a view restore followed by one pass over the
//!    elements, the paging a view defers to first use. The file is in the
//!    page cache after the first sample.
//! 6. `checksums_256MiB/*`: the candidate chunk checksums on the same
//!    256 MiB in memory, one thread (`sha256`, `blake3`, `xxh3_128` from
//!    xxhash-rust, SIMD chosen at compile time, and
//!    `xxh3_128_runtime_simd` from twox-hash, the crate's), and
//!    the crate's own chunked digests on every core (`chunked_sha256`,
//!    `chunked_xxh3`, what a verified load computes), next to `sum`, one
//!    pass adding the same bytes as f64; then `mapped_*`, the same
//!    passes over the same bytes in a mapped file, as a verified load of a
//!    tensor reads them (one thread but `mapped_chunked_xxh3`).
//!
//! Archives are written once per group into a temporary directory, outside
//! the timed loops, and only when a benchmark that needs them is selected.
//! Data comes from `achronyme_env::testdata`. The groups set their own
//! sample counts and times (slow benchmarks: flat sampling, 10 samples), so
//! the whole run takes about 5 minutes. Run with:
//!
//! ```text
//! cargo bench --bench engine
//! cargo bench --bench engine -- many_small     # one group
//! ```
//!
//! `examples/save_peak_memory.rs` measures the memory side of a save.

use std::cell::OnceCell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use achronyme_env::hash::{Checksum, chunk_digests};
use achronyme_env::{
    Archive, Compression, Environment, LoadOptions, MemorySource, RestoreOptions, SaveOptions,
    SaveReport, Section, Source, Value, env_info, env_load_var, restore_environment,
    save_environment, testdata,
};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

/// Rows and columns of the 1 GiB tensor: 16384 * 8192 * 8 bytes = 1 GiB.
const BIG_ROWS: usize = 16384;
const BIG_COLS: usize = 8192;
/// Bytes of the 1 GiB tensor.
const BIG_BYTES: u64 = (BIG_ROWS * BIG_COLS * 8) as u64;
/// 128 * 1024 * 8 bytes = 1 MiB.
const SMALL_ROWS: usize = 128;
const SMALL_COLS: usize = 1024;
const SEED: u64 = 42;
const MANY: usize = 100_000;

/// The 1 GiB environment, built once for the whole run (several seconds).
fn big_env() -> &'static Environment {
    static ENV: OnceLock<Environment> = OnceLock::new();
    ENV.get_or_init(|| {
        let started = Instant::now();
        let env = testdata::tensor_workspace(testdata::normal_tensor(BIG_ROWS, BIG_COLS, SEED));
        eprintln!("built the 1 GiB environment in {:.2?}", started.elapsed());
        env
    })
}

fn scratch() -> SaveOptions {
    SaveOptions {
        durable: false,
        allow_overwrite: true,
        ..SaveOptions::default()
    }
}

/// Writes `env` to `dir/name` (outside any timed loop).
fn write_once(env: &Environment, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let report = save_environment(env, &path, &scratch()).expect("save");
    eprintln!(
        "wrote {name}: {} bytes in {:.2?}",
        report.bytes, report.write_time
    );
    path
}

fn tensor_bytes(env: &'static Environment) -> &'static [u8] {
    match env.get("data") {
        Some(Value::Tensor(t)) => bytemuck::cast_slice(t.data()),
        _ => unreachable!("env_with_tensor binds a tensor named data"),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// 1. `env_info` does not grow with the data: 1 MiB vs 1 GiB.
fn bench_env_info(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Written on first use, so a filtered-out benchmark costs nothing.
    let small = OnceCell::new();
    let big = OnceCell::new();
    let small_path = || {
        small.get_or_init(|| {
            let env =
                testdata::tensor_workspace(testdata::normal_tensor(SMALL_ROWS, SMALL_COLS, SEED));
            write_once(&env, dir.path(), "small.ach")
        })
    };
    let big_path = || big.get_or_init(|| write_once(big_env(), dir.path(), "big.ach"));

    let mut g = c.benchmark_group("env_info");
    g.sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("1MiB", |b| {
        let p = small_path();
        b.iter(|| black_box(env_info(p).expect("info")))
    });
    g.bench_function("1GiB", |b| {
        let p = big_path();
        b.iter(|| black_box(env_info(p).expect("info")))
    });
    g.finish();
}

/// 2. 100,000 small bindings: info, one get from an open archive, open+get.
fn bench_many_small(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = OnceCell::new();
    let fixture = || {
        fixture.get_or_init(|| {
            let path = write_once(&testdata::many_small(MANY), dir.path(), "many.ach");
            let archive = Archive::open(&path).expect("open");
            (path, archive)
        })
    };
    // A 16-element tensor in the middle of the table (i % 4 == 2).
    let name = "v050002";

    let mut g = c.benchmark_group("many_small_100k");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("env_info", |b| {
        let (path, _) = fixture();
        b.iter(|| black_box(env_info(path).expect("info")))
    });
    // `info()` reads the name list lazily; this is the cost of also
    // listing every name (what `ach info` prints).
    g.bench_function("env_info_and_names", |b| {
        let (path, _) = fixture();
        b.iter(|| {
            let info = env_info(path).expect("info");
            assert_eq!(info.bindings.len(), MANY);
            black_box(info)
        })
    });
    g.bench_function("open_only", |b| {
        let (path, _) = fixture();
        b.iter(|| black_box(Archive::open(path).expect("open")))
    });
    g.bench_function("info_open_archive", |b| {
        let (_, archive) = fixture();
        b.iter(|| black_box(archive.info()))
    });
    g.bench_function("get_one_open_archive", |b| {
        let (_, archive) = fixture();
        b.iter(|| black_box(archive.get(black_box(name)).expect("get")))
    });
    g.bench_function("open_and_get_one", |b| {
        let (path, _) = fixture();
        b.iter(|| black_box(env_load_var(path, black_box(name)).expect("load")))
    });
    g.finish();
}

/// 3. The 1 GiB tensor from an open archive: mapped view, verified load, and
///    single-threaded SHA-256 of the same bytes as the baseline.
fn bench_load_big(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = OnceCell::new();
    let archive = || {
        fixture.get_or_init(|| {
            let path = write_once(big_env(), dir.path(), "big.ach");
            Archive::open(&path).expect("open")
        })
    };
    let get = |verify_checksum: bool| {
        archive()
            .get_with(
                Section::Bindings,
                "data",
                LoadOptions {
                    verify_checksum,
                    ..LoadOptions::default()
                },
            )
            .expect("get")
    };

    let mut g = c.benchmark_group("load_1GiB");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("get_unverified", |b| {
        let Value::Tensor(t) = get(false) else {
            unreachable!("data is a tensor")
        };
        assert!(
            t.is_mapped(),
            "an uncompressed tensor loads as a mapped view"
        );
        b.iter(|| black_box(get(false)))
    });

    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(BIG_BYTES));
    g.bench_function("get_verified", |b| b.iter(|| black_box(get(true))));
    g.bench_function("sha256_single_thread", |b| {
        // The same mapped bytes the verified load hashes (minus its 64-byte
        // frame), already resident after the verified loads.
        let Value::Tensor(view) = get(false) else {
            unreachable!("data is a tensor")
        };
        let bytes: &[u8] = bytemuck::cast_slice(view.data());
        b.iter(|| black_box(Sha256::digest(black_box(bytes))))
    });
    g.finish();
}

/// 4. Saving 1 GiB vs `std::fs::write` of the same bytes; the sync cost of a
///    durable save on its own.
fn bench_save_big(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let save_path = dir.path().join("save.ach");
    let durable_path = dir.path().join("durable.ach");
    let raw_path = dir.path().join("raw.bin");
    let tmp_path = dir.path().join("raw.bin.tmp");

    let mut g = c.benchmark_group("save_1GiB");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(BIG_BYTES));

    let mut reports: Vec<SaveReport> = Vec::new();
    g.bench_function("save_not_durable", |b| {
        let env = big_env();
        b.iter(|| {
            let r = save_environment(env, &save_path, &scratch()).expect("save");
            reports.push(r);
        })
    });
    print_split("save_not_durable", &reports);
    std::fs::remove_file(&save_path).ok();

    g.bench_function("fs_write", |b| {
        let bytes = tensor_bytes(big_env());
        b.iter(|| std::fs::write(&raw_path, black_box(bytes)).expect("write"))
    });
    // What a save does to the file system without hashing or framing: write
    // a new file, then rename it over the previous one.
    g.bench_function("fs_write_tmp_rename", |b| {
        let bytes = tensor_bytes(big_env());
        b.iter(|| {
            std::fs::write(&tmp_path, black_box(bytes)).expect("write");
            std::fs::rename(&tmp_path, &raw_path).expect("rename");
        })
    });
    std::fs::remove_file(&raw_path).ok();

    // Durable saves: whole wall time, and the sync part alone (file fsync,
    // rename, directory fsync) as the engine reports it.
    let durable = SaveOptions {
        durable: true,
        ..scratch()
    };
    let mut reports: Vec<SaveReport> = Vec::new();
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("save_durable", |b| {
        let env = big_env();
        b.iter(|| {
            let r = save_environment(env, &durable_path, &durable).expect("save");
            reports.push(r);
        })
    });
    print_split("save_durable", &reports);
    g.bench_function("save_durable_sync_part", |b| {
        let env = big_env();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let r = save_environment(env, &durable_path, &durable).expect("save");
                total += r.sync_time;
            }
            total
        })
    });
    g.finish();
}

fn print_split(label: &str, reports: &[SaveReport]) {
    if reports.is_empty() {
        return;
    }
    let write = median(reports.iter().map(|r| r.write_time).collect());
    let sync = median(reports.iter().map(|r| r.sync_time).collect());
    eprintln!(
        "{label}: SaveReport medians over {} saves: write_time {write:.2?}, sync_time {sync:.2?}",
        reports.len()
    );
}

/// 5. Restoring a 256 MiB tensor mapped vs copied: what the REPL's default
///    (`copy: true`) costs over views.
fn bench_restore_copy(c: &mut Criterion) {
    const ROWS: usize = 4096;
    const COLS: usize = 8192; // 4096 * 8192 * 8 bytes = 256 MiB
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = OnceCell::new();
    let path = || {
        fixture.get_or_init(|| {
            let env = testdata::tensor_workspace(testdata::normal_tensor(ROWS, COLS, SEED));
            let path = dir.path().join("256MiB.ach");
            let raw = SaveOptions {
                compression: Compression::None,
                ..scratch()
            };
            save_environment(&env, &path, &raw).expect("save");
            path
        })
    };
    let restore = |copy: bool, verify_checksum: bool| {
        let mut env = Environment::new();
        let opts = RestoreOptions {
            copy,
            verify_checksum,
            ..RestoreOptions::default()
        };
        restore_environment(&mut env, path(), &opts).expect("restore");
        env
    };
    let mut g = c.benchmark_group("restore_256MiB");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes((ROWS * COLS * 8) as u64));
    for (name, copy, verify) in [
        ("mapped", false, false),
        ("copied", true, false),
        ("mapped_verified", false, true),
        ("copied_verified", true, true),
    ] {
        g.bench_function(name, |b| b.iter(|| black_box(restore(copy, verify))));
    }
    g.bench_function("mapped_then_read", |b| {
        b.iter(|| {
            let env = restore(false, false);
            let Some(Value::Tensor(t)) = env.get("data") else {
                unreachable!("data is a tensor")
            };
            black_box(t.data().iter().sum::<f64>())
        })
    });
    g.finish();
}

/// 6. Which chunk checksum is cheap enough to leave on: each candidate on
///    the same bytes as a sum of them.
fn bench_checksums(c: &mut Criterion) {
    const LEN: usize = 256 << 20;
    let data: Vec<f64> = testdata::normal(LEN / 8, SEED);
    let bytes: &[u8] = bytemuck::cast_slice(&data);
    let mut g = c.benchmark_group("checksums_256MiB");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(LEN as u64));
    g.bench_function("sum", |b| {
        b.iter(|| black_box(black_box(&data).iter().sum::<f64>()))
    });
    g.bench_function("sha256", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(bytes))))
    });
    g.bench_function("blake3", |b| {
        b.iter(|| black_box(blake3::hash(black_box(bytes))))
    });
    // xxhash-rust picks its SIMD at compile time: SSE2 on baseline x86-64.
    g.bench_function("xxh3_128", |b| {
        b.iter(|| black_box(xxhash_rust::xxh3::xxh3_128(black_box(bytes))))
    });
    // twox-hash, what the crate uses: AVX2 chosen at run time.
    g.bench_function("xxh3_128_runtime_simd", |b| {
        b.iter(|| black_box(twox_hash::XxHash3_128::oneshot(black_box(bytes))))
    });
    for (name, algo) in [
        ("chunked_sha256", Checksum::Sha256),
        ("chunked_xxh3", Checksum::Xxh3),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(chunk_digests(algo, &[], black_box(bytes), 1 << 20)))
        });
    }
    // The same bytes in a mapped file (in the page cache), as a verified
    // load reads them: on this kernel the mapping's 2 MiB folios are
    // mapped with huge entries, the heap `Vec` above with 4 KiB pages, so
    // the two are bound differently.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("checksums.bin");
    std::fs::write(&path, bytes).expect("write");
    let source = MemorySource::map_file(&path).expect("map");
    let mapped = source.read(0, LEN as u64).expect("read");
    let mapped = mapped.as_slice();
    g.bench_function("mapped_sum", |b| {
        let xs: &[f64] = bytemuck::cast_slice(mapped);
        b.iter(|| black_box(black_box(xs).iter().sum::<f64>()))
    });
    g.bench_function("mapped_xxh3_128", |b| {
        b.iter(|| {
            let chunks = black_box(mapped).chunks(1 << 20);
            black_box(
                chunks
                    .map(xxhash_rust::xxh3::xxh3_128)
                    .fold(0, |a, h| a ^ h),
            )
        })
    });
    g.bench_function("mapped_xxh3_128_runtime_simd", |b| {
        b.iter(|| {
            let chunks = black_box(mapped).chunks(1 << 20);
            let digests = chunks.map(twox_hash::XxHash3_128::oneshot);
            black_box(digests.fold(0, |a, h| a ^ h))
        })
    });
    g.bench_function("mapped_chunked_xxh3", |b| {
        b.iter(|| {
            black_box(chunk_digests(
                Checksum::Xxh3,
                &[],
                black_box(mapped),
                1 << 20,
            ))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_checksums,
    bench_env_info,
    bench_many_small,
    bench_load_big,
    bench_save_big,
    bench_restore_copy
);
criterion_main!(benches);
