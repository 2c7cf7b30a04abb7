//! Criterion benchmarks of format 1.3 (layout.md 3.6), each next to a
//! same-run baseline:
//!
//! 1. `restore_sum_1GiB/*` (**1 GiB**, 10 samples): restore four 256 MiB
//!    tensors as views of the mapped file (`copy: false`) and add up every
//!    element. `record` has them as the four fields of one record
//!    (`model = {w0, w1, w2, w3}`, each its own blob, format 1.3);
//!    `top_level`, the baseline, binds them as four top-level tensors.
//!    Target: `record` within 1.1x of `top_level`. The file is in the page
//!    cache after the first sample. The memory side (under 16 MiB more than
//!    the baseline) is `examples/nested_memory.rs`.
//! 2. `snapshot_save/*`: `let checkpoint = snapshot_env()` then a save of
//!    four 16 MiB tensors and a scalar (`with_snapshot`), against the same
//!    save without the snapshot (`without_snapshot`); the sizes of both
//!    archives are printed (the target, at most 1.01x, is a size, asserted
//!    by `tests/nested.rs`).
//!
//! ```text
//! cargo bench --bench nested
//! cargo bench --bench nested -- snapshot_save     # one group
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use achronyme_env::{
    Compression, Environment, Record, RestoreOptions, SaveOptions, SnapshotOptions, Tensor, Value,
    restore_environment, save_environment, snapshot_env,
};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

/// Elements of one 256 MiB tensor.
const QUARTER: usize = 32 << 20;

fn raw() -> SaveOptions {
    SaveOptions {
        durable: false,
        compression: Compression::None,
        allow_overwrite: true,
        ..SaveOptions::default()
    }
}

fn tensor(n: usize, seed: usize) -> Tensor {
    Tensor::from_vec((0..n).map(|i| ((i + seed) % 1000) as f64).collect())
}

struct Files {
    _dir: tempfile::TempDir,
    record: PathBuf,
    top_level: PathBuf,
}

/// The two 1 GiB archives, written once.
fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir_in("target").expect("a directory under target/");
        let tensors: Vec<Tensor> = (0..4).map(|i| tensor(QUARTER, i)).collect();
        let mut top = Environment::new();
        let mut model = Record::new();
        for (i, t) in tensors.iter().enumerate() {
            top.set(format!("w{i}"), Value::Tensor(t.clone()));
            model.insert(format!("w{i}"), Value::Tensor(t.clone()));
        }
        let mut nested = Environment::new();
        nested.set("model", Value::Record(model));
        let record = dir.path().join("record.ach");
        let top_level = dir.path().join("top.ach");
        save_environment(&nested, &record, &raw()).expect("save");
        save_environment(&top, &top_level, &raw()).expect("save");
        Files {
            _dir: dir,
            record,
            top_level,
        }
    })
}

/// Every element of every tensor in `v`, added up.
fn sum(v: &Value) -> f64 {
    match v {
        Value::Tensor(t) => t.data().iter().sum(),
        Value::Record(r) => r.fields().iter().map(|(_, x)| sum(x)).sum(),
        _ => 0.0,
    }
}

fn restore_and_sum(path: &Path) -> f64 {
    let mut env = Environment::new();
    let opts = RestoreOptions {
        copy: false,
        ..RestoreOptions::default()
    };
    restore_environment(&mut env, path, &opts).expect("restore");
    env.iter().map(|(_, v)| sum(v)).sum()
}

fn restore_sum(c: &mut Criterion) {
    let files = files();
    assert_eq!(
        restore_and_sum(&files.record),
        restore_and_sum(&files.top_level)
    );
    let mut g = c.benchmark_group("restore_sum_1GiB");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    g.bench_function("record", |b| {
        b.iter(|| black_box(restore_and_sum(&files.record)))
    });
    g.bench_function("top_level", |b| {
        b.iter(|| black_box(restore_and_sum(&files.top_level)))
    });
    g.finish();
}

fn snapshot_save(c: &mut Criterion) {
    let dir = tempfile::tempdir_in("target").expect("a directory under target/");
    let mut env = Environment::new();
    for i in 0..4 {
        env.set(format!("t{i}"), Value::Tensor(tensor(2 << 20, i)));
    }
    env.set("x", Value::Number(1.0));
    let mut with = env.clone();
    let snap = snapshot_env(&with, &SnapshotOptions::default()).expect("snapshot");
    with.set("checkpoint", snap.to_value());
    let (a, b) = (dir.path().join("a.ach"), dir.path().join("b.ach"));
    let mut g = c.benchmark_group("snapshot_save");
    g.sample_size(20);
    g.bench_function("without_snapshot", |bench| {
        bench.iter(|| save_environment(&env, &a, &raw()).expect("save"))
    });
    g.bench_function("with_snapshot", |bench| {
        bench.iter(|| save_environment(&with, &b, &raw()).expect("save"))
    });
    g.finish();
    let (la, lb) = (
        std::fs::metadata(&a).expect("a").len(),
        std::fs::metadata(&b).expect("b").len(),
    );
    println!(
        "snapshot_save sizes: without {la} bytes, with {lb} bytes, ratio {:.5}",
        lb as f64 / la as f64
    );
}

criterion_group!(benches, restore_sum, snapshot_save);
criterion_main!(benches);
