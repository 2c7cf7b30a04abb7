//! Writes seed inputs for both targets from the crate's deterministic test
//! data: `cargo run --example seeds -- corpus` (fills corpus/archive and
//! corpus/value).

use std::path::PathBuf;

use achronyme_env::{
    Checksum, Complex, ComplexTensor, Compression, Environment, SaveOptions, Tensor, Value,
    save_environment, testdata,
};

/// Bindings the default save compresses (tensors, a string, a vector),
/// so the seeds reach the chunk table and both codecs: each just over the
/// 4 KiB under which a value lives in the table's value pool (format 1.4),
/// uncompressed.
fn compressible() -> Environment {
    let mut env = Environment::new();
    let smooth = testdata::smooth(520);
    env.set("t", Value::Tensor(Tensor::from_vec(smooth.clone())));
    let z = smooth.iter().map(|&re| Complex { re, im: re }).collect();
    env.set("z", Value::ComplexTensor(ComplexTensor::from_vec(z)));
    env.set("s", Value::String("ab".repeat(2100)));
    env.set("v", Value::Vector(vec![Value::Number(1.0); 460]));
    env
}

/// Format 1.3 (layout.md 3.6): a record and a vector referring to a
/// binding's tensor, a storage entry for a nested complex tensor, and a
/// binding sharing another's blob. The large tensors are constant, so the
/// default save compresses them to a few hundred bytes and the seed stays
/// small.
fn shared() -> Environment {
    let w = Value::Tensor(Tensor::from_vec(vec![0.5; 8200]));
    let z = Value::ComplexTensor(ComplexTensor::from_vec(vec![
        Complex { re: 1.0, im: 2.0 };
        4100
    ]));
    let mut model = achronyme_env::Record::new();
    model.insert("w", w.clone());
    model.insert("z", z);
    let mut env = Environment::new();
    env.set("model", Value::Record(model));
    env.set(
        "history",
        Value::Vector(vec![w.clone(), Value::new_ref(w.clone())]),
    );
    env.set("w", w.clone());
    env.set("w2", w);
    let small = Value::Tensor(Tensor::from_vec(vec![1.0, 2.0, 3.0]));
    env.set("s1", small.clone());
    env.set("s2", small);
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
        ("shared_zstd", shared()),
        ("shared_lz4", shared()),
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
    // A record whose field is a blob reference (tag 0x0C, entry 1): only
    // an archive's table gives it a meaning, so the value decoder alone
    // must refuse it.
    let mut reference = vec![0x08];
    reference.extend_from_slice(&1u64.to_le_bytes());
    reference.extend_from_slice(&1u64.to_le_bytes());
    reference.push(b'w');
    reference.push(0x0C);
    reference.extend_from_slice(&1u64.to_le_bytes());
    std::fs::write(values.join("blob_reference"), reference).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("ach-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
