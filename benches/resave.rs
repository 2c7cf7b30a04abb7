//! A save that reuses what did not change (issue 14, README "Saving what
//! did not change"), against a full save in the same run.
//!
//! - `resave_w1`: W1 (a 1 GiB standard-normal tensor and three small
//!   bindings, as in `benches/compare.rs`) restored from its archive, one
//!   scalar changed, saved over the same path (`resave_one_scalar`): the
//!   tensor's blob is copied from the file being replaced by the kernel.
//!   Against `full_save`, the same environment saved with
//!   `reuse_stored: false` (every byte written and hashed), and two
//!   reference limits on the same bytes: `ref_kernel_copy` (the archive
//!   copied whole into a new file by `std::io::copy`, which uses
//!   `copy_file_range` on Linux) and `ref_write` (`std::fs::write` of the
//!   tensor's bytes).
//! - `checkpoint_loop`: spec 6.4's loop: 100 chunks processed, each
//!   appended to the vector `results` (`results = [...results,
//!   processed]`), a checkpoint saved every 10 chunks to its own file
//!   (`checkpoint_0.ach`, `checkpoint_10.ach`, ...) with `include_only:
//!   ["results"]`. Each result is a tensor nested in the vector, stored in
//!   a blob of its own (format 1.3), which the next checkpoint copies. The
//!   results are computed before timing; the loop appends them and saves.
//!   `reuse` against `full` (`reuse_stored: false`).
//!
//! All saves use the default options (zstd level 3, which finds normal
//! noise does not pay and stores it raw), not synced (`durable: false`):
//! the page cache, as the issue asks. Bytes encoded, hashed and copied go
//! to stderr.
//!
//! ```text
//! cargo bench --bench resave
//! ACH_BENCH_W1_MIB=64 cargo bench --bench resave      # a quick check
//! ```

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use achronyme_env::{
    Environment, RestoreOptions, SaveOptions, SaveReport, Tensor, Value, restore_environment,
    save_environment, testdata,
};
use criterion::{Criterion, SamplingMode, Throughput};

/// Size of W1's tensor in MiB: 1024 unless `ACH_BENCH_W1_MIB` says
/// otherwise (quick checks only).
fn w1_mib() -> usize {
    std::env::var("ACH_BENCH_W1_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024)
}

/// W1 as `benches/compare.rs` builds it: `[rows, 8192]` normal, seed 42.
fn w1_env() -> Environment {
    let cols = 8192;
    let rows = w1_mib() * 1024 * 1024 / 8 / cols;
    testdata::tensor_workspace(testdata::normal_tensor(rows, cols, 42))
}

fn options(reuse: bool) -> SaveOptions {
    SaveOptions {
        allow_overwrite: true,
        durable: false,
        reuse_stored: reuse,
        ..SaveOptions::default()
    }
}

fn counts(what: &str, r: &SaveReport) {
    eprintln!(
        "{what}: archive {} bytes; encoded {}, hashed {}, copied {}",
        r.bytes, r.bytes_encoded, r.bytes_hashed, r.bytes_copied
    );
}

fn scratch_dir() -> tempfile::TempDir {
    std::fs::create_dir_all("target").ok();
    tempfile::Builder::new()
        .prefix("resave-bench")
        .tempdir_in("target")
        .expect("tempdir")
}

fn bench_resave_w1(c: &mut Criterion) {
    let dir = scratch_dir();
    let work = dir.path().join("work.ach");
    let full = dir.path().join("full.ach");
    let env = w1_env();
    let bytes = (w1_mib() as u64) << 20;
    counts(
        "W1 first save",
        &save_environment(&env, &work, &options(true)).unwrap(),
    );
    let mut restored = Environment::new();
    restore_environment(&mut restored, &work, &RestoreOptions::default()).unwrap();

    let mut g = c.benchmark_group(format!("resave_w1_{}MiB", w1_mib()));
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(bytes));
    g.bench_function("full_save", |b| {
        b.iter(|| save_environment(&env, &full, &options(false)).unwrap())
    });
    let mut step = 1000.0;
    g.bench_function("resave_one_scalar", |b| {
        b.iter(|| {
            step += 1.0;
            restored.set("step", Value::Number(step));
            save_environment(&restored, &work, &options(true)).unwrap()
        })
    });
    let copy_to = dir.path().join("copy.bin");
    g.bench_function("ref_kernel_copy", |b| {
        b.iter(|| {
            let mut from = std::fs::File::open(&full).unwrap();
            let mut to = std::fs::File::create(&copy_to).unwrap();
            std::io::copy(&mut from, &mut to).unwrap()
        })
    });
    let elements = match env.get("data") {
        Some(Value::Tensor(t)) => bytemuck::cast_slice::<f64, u8>(t.data()),
        _ => unreachable!("W1 binds a tensor named data"),
    };
    let written = dir.path().join("write.bin");
    g.bench_function("ref_write", |b| {
        b.iter(|| std::fs::write(&written, black_box(elements)).unwrap())
    });
    g.finish();
    counts(
        "W1 full save",
        &save_environment(&env, &full, &options(false)).unwrap(),
    );
    restored.set("step", Value::Number(-1.0));
    counts(
        "W1 re-save, one scalar changed",
        &save_environment(&restored, &work, &options(true)).unwrap(),
    );
}

/// Chunk results of the checkpoint loop: `ACH_BENCH_CHUNK_KIB` KiB each
/// (default 4096), normal noise.
fn chunk_results() -> Vec<Tensor> {
    let kib: usize = std::env::var("ACH_BENCH_CHUNK_KIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    (0..100)
        .map(|i| testdata::normal_tensor(kib * 1024 / 8 / 128, 128, 1000 + i))
        .collect()
}

/// Spec 6.4's loop over pre-computed `results`: append each to the vector
/// `results`, and every 10 chunks save a checkpoint of it to its own file.
/// Returns the reports of the saves.
fn checkpoint_loop(dir: &Path, results: &[Tensor], reuse: bool) -> Vec<SaveReport> {
    let mut env = Environment::new();
    env.set("results", Value::Vector(Vec::new()));
    env.set("chunk_size", Value::Number(results.len() as f64));
    let opts = SaveOptions {
        include_only: Some(vec!["results".into()]),
        ..options(reuse)
    };
    let mut reports = Vec::new();
    for (idx, r) in results.iter().enumerate() {
        // results = [...results, processed]
        let Some(Value::Vector(so_far)) = env.get("results") else {
            unreachable!("bound above")
        };
        let mut next = so_far.clone();
        next.push(Value::Tensor(r.clone()));
        env.set("results", Value::Vector(next));
        if idx % 10 == 0 {
            let path = dir.join(format!("checkpoint_{idx}.ach"));
            reports.push(save_environment(&env, &path, &opts).unwrap());
        }
    }
    reports
}

fn bench_checkpoint_loop(c: &mut Criterion) {
    let dir = scratch_dir();
    let results = chunk_results();
    let mut g = c.benchmark_group("checkpoint_loop");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(8));
    for (name, reuse) in [("full", false), ("reuse", true)] {
        g.bench_function(name, |b| {
            b.iter(|| checkpoint_loop(dir.path(), &results, reuse))
        });
        let reports = checkpoint_loop(dir.path(), &results, reuse);
        let sum = |f: fn(&SaveReport) -> u64| reports.iter().map(f).sum::<u64>();
        eprintln!(
            "checkpoint loop {name}: {} saves, archives {} bytes in all; encoded {}, hashed {}, copied {}",
            reports.len(),
            sum(|r| r.bytes),
            sum(|r| r.bytes_encoded),
            sum(|r| r.bytes_hashed),
            sum(|r| r.bytes_copied)
        );
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_checkpoint_loop(&mut c);
    bench_resave_w1(&mut c);
    c.final_summary();
}
