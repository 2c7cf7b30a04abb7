//! Peak memory of one save or restore by one system, in a fresh process.
//!
//! ```text
//! cargo run --release --example peak_rss -- w1-save-ach-raw
//! cargo run --release --example peak_rss -- w1-restore-ach-raw
//! ```
//!
//! The argument is `WORKLOAD-OP-SYSTEM`: workload `w1` (one 1 GiB tensor
//! plus three small bindings) or `w2` (100,000 small bindings); op `save` or
//! `restore`; system `ach-raw`, `ach-zstd`, `safetensors`, `msgpack`,
//! `msgpack-zstd`, or for saves `fs-write` (`std::fs::write` of the tensor's
//! bytes, W1 only). A restore reads the file the matching save left in
//! `target/peak_rss/`, so run the save first. The systems are those of
//! `benches/compare.rs` (the same functions, included from there).
//!
//! A save builds the environment and the system's own view of it (the
//! safetensors tensor list, the MessagePack mirror; tensor data borrowed)
//! first, then resets the high-water mark (`echo 5 > /proc/self/clear_refs`)
//! and measures `VmHWM` above the resident set before the save. A restore
//! measures `VmHWM` above the process's resident set at start. `VmHWM`
//! counts file pages mapped and touched (a mapped view of the archive) as
//! well as anonymous memory, so the anonymous and file-backed parts of the
//! resident set are printed too, taken right after the operation while its
//! result is alive. Linux only. The last line is tab-separated for scripts:
//! `peak_rss`, the case, the data's MiB, the peak above the start in MiB, the
//! peak above the data in MiB, `RssAnon` and `RssFile` after the operation
//! in MiB, and the operation's seconds.

#[allow(dead_code, unreachable_pub)]
#[path = "../benches/compare.rs"]
mod compare;
#[path = "support/rss.rs"]
mod rss;

use std::path::PathBuf;
use std::time::Instant;

use compare::systems::*;
use rss::status_mib;

fn usage() -> ! {
    eprintln!(
        "usage: peak_rss (w1|w2)-(save|restore)-(ach-raw|ach-zstd|safetensors|msgpack|msgpack-zstd|fs-write)"
    );
    std::process::exit(2)
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_else(|| usage());
    let mut parts = case.splitn(3, '-');
    let (Some(workload), Some(op), Some(system)) = (parts.next(), parts.next(), parts.next())
    else {
        usage()
    };
    let dir = PathBuf::from("target/peak_rss");
    std::fs::create_dir_all(&dir).expect("target/peak_rss");
    let file = dir.join(format!("{workload}-{system}"));

    let build = || match workload {
        "w1" => w1_env(),
        "w2" => w2_env(),
        _ => usage(),
    };
    // The data's own size: W1's tensor, or W2's raw archive.
    let data_mib = match workload {
        "w1" => (w1_mib() as f64).max(0.0),
        _ => 0.0,
    };

    match op {
        "save" => {
            let env = build();
            let subset = st_subset(&env);
            let d = doc(&env);
            let bytes = tensor_bytes_or_empty(&env);
            let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
            if !reset {
                eprintln!("could not reset VmHWM: the peak includes building the data");
            }
            let start = status_mib("VmRSS");
            let t = Instant::now();
            let size = match system {
                "ach-raw" => ach_save(&env, &file, false),
                "ach-zstd" => ach_save(&env, &file, true),
                "safetensors" => st_save(&subset, &file),
                "msgpack" => mp_save(&d, &file, None),
                "msgpack-zstd" => mp_save(&d, &file, Some(3)),
                "fs-write" => {
                    std::fs::write(&file, bytes).expect("write");
                    bytes.len() as u64
                }
                _ => usage(),
            };
            let secs = t.elapsed().as_secs_f64();
            eprintln!("{case}: wrote {size} bytes to {}", file.display());
            report(&case, start, data_mib, secs, true);
            // Kept alive until here, so no free lowers the resident set.
            drop((subset, d));
            drop(env);
        }
        "restore" => {
            if !file.exists() {
                eprintln!(
                    "{} does not exist: run {workload}-save-{system} first",
                    file.display()
                );
                std::process::exit(1);
            }
            std::fs::write("/proc/self/clear_refs", "5").ok();
            let start = status_mib("VmRSS");
            let t = Instant::now();
            let env = match system {
                "ach-raw" | "ach-zstd" => ach_restore_all(&file, true),
                "safetensors" => st_restore_all(&file),
                "msgpack" => mp_restore_all(&file, false),
                "msgpack-zstd" => mp_restore_all(&file, true),
                _ => usage(),
            };
            let secs = t.elapsed().as_secs_f64();
            eprintln!("{case}: restored {} bindings", env.len());
            // Measured while the restored values are alive.
            report(&case, start, data_mib, secs, false);
            drop(env);
        }
        _ => usage(),
    }
}

fn tensor_bytes_or_empty(env: &achronyme_env::Environment) -> &[u8] {
    if env.contains("data") {
        tensor_bytes(env)
    } else {
        &[]
    }
}

/// Prints the measurements; a save's data is already resident at `start`,
/// a restore's is part of what it adds.
fn report(case: &str, start: f64, data_mib: f64, seconds: f64, save: bool) {
    let hwm = status_mib("VmHWM");
    let anon = status_mib("RssAnon");
    let filed = status_mib("RssFile");
    let above_start = hwm - start;
    let above_data = if save {
        above_start
    } else {
        above_start - data_mib
    };
    println!("resident at start:        {start:9.1} MiB");
    println!("VmHWM after:              {hwm:9.1} MiB");
    println!("peak above start:         {above_start:9.1} MiB");
    println!("data (tensor) size:       {data_mib:9.1} MiB");
    println!("extra peak over the data: {above_data:9.1} MiB");
    println!("RssAnon / RssFile after:  {anon:9.1} / {filed:.1} MiB");
    println!("time:                     {seconds:9.2} s");
    println!(
        "peak_rss\t{case}\t{data_mib:.1}\t{above_start:.1}\t{above_data:.1}\t{anon:.1}\t{filed:.1}\t{seconds:.2}"
    );
}
