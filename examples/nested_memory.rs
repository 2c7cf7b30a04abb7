//! Memory of restoring four 256 MiB tensors as views of the mapped file
//! and adding up every element, in a fresh process: held as the fields of
//! one record (format 1.3, each its own blob) or bound at top level.
//!
//! ```text
//! cargo run --release --example nested_memory -- save
//! cargo run --release --example nested_memory -- record
//! cargo run --release --example nested_memory -- top
//! ```
//!
//! `save` writes both archives to `target/nested_memory/` (run it first).
//! `record` and `top` restore one of them with `copy: false`, sum every
//! element, and print the anonymous memory (`RssAnon`: what the process
//! allocated, excluding the mapped file's pages) and the peak resident set
//! (`VmHWM`, which also counts the mapped pages touched) above what they
//! were before the restore. Linux only. The last line is tab-separated:
//! `nested_memory`, the case, `RssAnon` growth in MiB, `VmHWM` growth in
//! MiB, the seconds taken, the sum.

#[path = "support/rss.rs"]
mod rss;

use std::path::PathBuf;
use std::time::Instant;

use achronyme_env::{
    Compression, Environment, Record, RestoreOptions, SaveOptions, Tensor, Value,
    restore_environment, save_environment,
};
use rss::status_mib;

/// Elements of one 256 MiB tensor.
const QUARTER: usize = 32 << 20;

fn sum(v: &Value) -> f64 {
    match v {
        Value::Tensor(t) => t.data().iter().sum(),
        Value::Record(r) => r.fields().iter().map(|(_, x)| sum(x)).sum(),
        _ => 0.0,
    }
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    let dir = PathBuf::from("target/nested_memory");
    let (record, top) = (dir.join("record.ach"), dir.join("top.ach"));
    let path = match case.as_str() {
        "save" => {
            std::fs::create_dir_all(&dir).expect("target/nested_memory");
            let opts = SaveOptions {
                durable: false,
                compression: Compression::None,
                allow_overwrite: true,
                ..SaveOptions::default()
            };
            let mut top_env = Environment::new();
            let mut model = Record::new();
            for i in 0..4 {
                let data = (0..QUARTER).map(|k| ((k + i) % 1000) as f64).collect();
                let t = Value::Tensor(Tensor::from_vec(data));
                top_env.set(format!("w{i}"), t.clone());
                model.insert(format!("w{i}"), t);
            }
            let mut nested = Environment::new();
            nested.set("model", Value::Record(model));
            save_environment(&nested, &record, &opts).expect("save");
            save_environment(&top_env, &top, &opts).expect("save");
            return;
        }
        "record" => record,
        "top" => top,
        _ => panic!("usage: nested_memory (save|record|top)"),
    };
    let (anon0, hwm0) = (status_mib("RssAnon"), status_mib("VmHWM"));
    let started = Instant::now();
    let mut env = Environment::new();
    let opts = RestoreOptions {
        copy: false,
        ..RestoreOptions::default()
    };
    restore_environment(&mut env, &path, &opts).expect("restore");
    let total: f64 = env.iter().map(|(_, v)| sum(v)).sum();
    let secs = started.elapsed().as_secs_f64();
    let (anon, hwm) = (status_mib("RssAnon") - anon0, status_mib("VmHWM") - hwm0);
    println!("{case}: RssAnon +{anon:.1} MiB, VmHWM +{hwm:.1} MiB, {secs:.3} s, sum {total}");
    println!("nested_memory\t{case}\t{anon:.1}\t{hwm:.1}\t{secs:.3}\t{total}");
}
