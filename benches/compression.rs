//! The spec's compression table (section 8.1), reproduced: one 1M-element
//! f64 tensor (8 MB), two kinds of data, every codec with and without the
//! float filters.
//!
//! - data: `smooth` = `sin(linspace(0, 100, 1e6))`, `noise` = standard
//!   normal (`achronyme_env::testdata`);
//! - configs: `none` (`Compression::None`), `zstd3`, `zstd9`, `lz4`, each with
//!   filters (`+f`) and without (`-f`);
//! - `save/{data}/{config}`: `save_environment` of the one-tensor
//!   environment, not durable (no fsync: the spec's figures are about
//!   compression, not the disk), replacing the previous file;
//! - `restore/{data}/{config}`: `Archive::open` + `get` of the tensor (the
//!   checksums checked, decompression on every core) and a sum over every
//!   element, so a mapped raw tensor is read too, not just mapped.
//!
//! The size ratio (raw bytes / stored bytes of the tensor's blob) is printed
//! once per configuration. Run with:
//!
//! ```text
//! cargo bench --bench compression
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use achronyme_env::{
    Archive, Compression, Environment, SaveOptions, Tensor, Value, save_environment, testdata,
};
use criterion::{Criterion, criterion_group, criterion_main};

const N: usize = 1_000_000;

fn configs() -> Vec<(&'static str, SaveOptions)> {
    let base = SaveOptions {
        durable: false,
        allow_overwrite: true,
        large_value_warning: None,
        ..SaveOptions::default()
    };
    let with = |compression, filters| SaveOptions {
        compression,
        filters,
        ..base.clone()
    };
    vec![
        (
            "none",
            SaveOptions {
                compression: Compression::None,
                ..base.clone()
            },
        ),
        ("zstd3+f", with(Compression::Zstd { level: 3 }, true)),
        ("zstd3-f", with(Compression::Zstd { level: 3 }, false)),
        ("zstd9+f", with(Compression::Zstd { level: 9 }, true)),
        ("zstd9-f", with(Compression::Zstd { level: 9 }, false)),
        ("lz4+f", with(Compression::Lz4, true)),
        ("lz4-f", with(Compression::Lz4, false)),
    ]
}

fn load_and_sum(path: &Path) -> f64 {
    let archive = Archive::open(path).unwrap();
    let Value::Tensor(t) = archive.get("x").unwrap() else {
        unreachable!("x is a tensor")
    };
    t.data().iter().sum()
}

fn table(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let datasets = [
        ("smooth", testdata::smooth(N)),
        ("noise", testdata::normal(N, 42)),
    ];
    for (data_name, data) in datasets {
        let mut env = Environment::new();
        env.set("x", Value::Tensor(Tensor::from_vec(data)));
        for (config, options) in configs() {
            let path: PathBuf = dir.path().join(format!("{data_name}-{config}.ach"));
            save_environment(&env, &path, &options).unwrap();
            let info = Archive::open(&path).unwrap().info();
            let e = &info.entries[0];
            eprintln!(
                "ratio {data_name}/{config}: {:.2}x ({} -> {} bytes, codec {})",
                e.raw_bytes as f64 / e.stored_bytes as f64,
                e.raw_bytes,
                e.stored_bytes,
                e.codec.name()
            );
            let mut group = c.benchmark_group(format!("spec_8_1/{data_name}"));
            group
                .sample_size(20)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(3));
            group.bench_function(format!("save/{config}"), |b| {
                b.iter(|| save_environment(black_box(&env), &path, &options).unwrap())
            });
            group.bench_function(format!("restore/{config}"), |b| {
                b.iter(|| black_box(load_and_sum(&path)))
            });
            group.finish();
        }
    }
}

criterion_group!(benches, table);
criterion_main!(benches);
