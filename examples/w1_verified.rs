//! W1's verified load, phase by phase, for a profiler and for quick
//! before/after timings while changing the hashing path:
//!
//! ```text
//! cargo run --release --example w1_verified -- /tmp/w1.ach 1024 10
//! perf record -e cpu-clock -g target/release/examples/w1_verified /tmp/w1.ach 1024 10
//! ```
//!
//! Saves a W1-shaped archive (one f64 tensor of the given MiB, default
//! settings) at the path when none is there, then times, for each of the
//! given rounds: open + verified `get` (digests checked), the sum of the
//! returned view, open + unverified `get` + sum, and a sum of the same
//! data in RAM. Prints the medians.

use std::path::Path;
use std::time::Instant;

use achronyme_env::{
    Archive, LoadOptions, SaveOptions, Section, Value, save_environment, testdata,
};

fn sum(xs: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f64>() + tail
}

fn get(path: &Path, verify_checksum: bool) -> Value {
    let opts = LoadOptions {
        verify_checksum,
        ..LoadOptions::default()
    };
    let archive = Archive::open(path).expect("open");
    archive
        .get_with(Section::Bindings, "data", opts)
        .expect("load")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/tmp/w1.ach".into());
    let mib: usize = args.next().map_or(1024, |s| s.parse().expect("MiB"));
    let rounds: usize = args.next().map_or(10, |s| s.parse().expect("rounds"));
    let path = Path::new(&path);
    let env = testdata::tensor_workspace(testdata::normal_tensor(mib * 128, 1024, 42));
    if !path.exists() {
        let opts = SaveOptions {
            durable: false,
            ..SaveOptions::default()
        };
        save_environment(&env, path, &opts).expect("save");
    }
    let Some(Value::Tensor(in_ram)) = env.get("data") else {
        panic!("tensor")
    };
    let (mut get_v, mut sum_v, mut total_v, mut total_u, mut ram) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let t = Instant::now();
        let Value::Tensor(v) = get(path, true) else {
            panic!("tensor")
        };
        let got = t.elapsed().as_secs_f64();
        let s = sum(v.data());
        let all = t.elapsed().as_secs_f64();
        get_v.push(got * 1e3);
        sum_v.push((all - got) * 1e3);
        total_v.push(all * 1e3);
        drop(v);

        let t = Instant::now();
        let Value::Tensor(u) = get(path, false) else {
            panic!("tensor")
        };
        let s2 = sum(u.data());
        total_u.push(t.elapsed().as_secs_f64() * 1e3);
        drop(u);

        let t = Instant::now();
        let s3 = sum(std::hint::black_box(in_ram.data()));
        ram.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(s == s2 && s2 == s3, "the three sums agree");
    }
    let ram = median(ram);
    let v = median(total_v);
    println!(
        "verified get {:.1} ms + sum {:.1} ms = {:.1} ms ({:.2}x RAM); unverified get + sum {:.1} ms; sum in RAM {:.1} ms",
        median(get_v),
        median(sum_v),
        v,
        v / ram,
        median(total_u),
        ram
    );
}
