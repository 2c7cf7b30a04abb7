//! Writes seed inputs for both targets from the crate's deterministic test
//! data: `cargo run --example seeds -- corpus` (fills corpus/archive and
//! corpus/value).

use std::path::PathBuf;

use achronyme_env::{
    Checksum, Complex, ComplexTensor, Compression, Environment, SaveOptions, Tensor, Value,
    save_environment, testdata,
};

/// Small bindings the default save compresses (tensors, a string, a
/// vector), so the seeds reach the chunk table and both codecs.
fn compressible() -> Environment {
    let mut env = Environment::new();
    let smooth = testdata::smooth(160);
    env.set("t", Value::Tensor(Tensor::from_vec(smooth.clone())));
    let z = smooth.iter().map(|&re| Complex { re, im: re }).collect();
    env.set("z", Value::ComplexTensor(ComplexTensor::from_vec(z)));
    env.set("s", Value::String("ab".repeat(600)));
    env.set("v", Value::Vector(vec![Value::Number(1.0); 150]));
    env
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let archives = out.join("archive");
    let values = out.join("value");
    std::fs::create_dir_all(&archives).unwrap();
    std::fs::create_dir_all(&values).unwrap();
    let dir = tempfile_dir();
    let envs: Vec<(&str, Environment)> = vec![
        ("every_type", testdata::every_type()),
        ("many_small", testdata::many_small(8)),
        (
            "tensor",
            testdata::tensor_workspace(testdata::normal_tensor(3, 4, 1)),
        ),
        ("empty", Environment::new()),
        ("compressed_zstd", compressible()),
        ("compressed_lz4", compressible()),
        ("every_type_sha256", testdata::every_type()),
        ("compressed_zstd_sha256", compressible()),
    ];
    for (name, env) in &envs {
        let path = dir.join(format!("{name}.ach"));
        // XXH3-128 chunk digests (the default), and SHA-256 (format 1.0
        // and 1.1 bytes) for the `_sha256` seeds.
        let options = SaveOptions {
            compression: if name.contains("lz4") {
                Compression::Lz4
            } else {
                Compression::default()
            },
            checksum: if name.ends_with("sha256") {
                Checksum::Sha256
            } else {
                Checksum::Xxh3
            },
            ..SaveOptions::default()
        };
        save_environment(env, &path, &options).unwrap();
        std::fs::copy(&path, archives.join(name)).unwrap();
        for (binding, v) in env.iter() {
            if !matches!(v, Value::Tensor(_) | Value::ComplexTensor(_)) {
                let bytes = achronyme_env::fuzzing::encode_value(v);
                std::fs::write(values.join(format!("{name}_{binding}")), bytes).unwrap();
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("ach-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
