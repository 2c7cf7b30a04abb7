//! Peak memory of a durable save of a 1 GiB environment.
//!
//! Builds the environment (one f64 tensor [16384, 8192] of
//! `testdata::normal` plus three small bindings) first, then measures the
//! resident set around `save_environment(.., durable: true)`. Linux only:
//! reads `VmRSS` / `VmHWM` from `/proc/self/status`, and resets the high-water
//! mark with `echo 5 > /proc/self/clear_refs` (Linux 4.0+) when allowed.
//! Written file pages live in the page cache and are not part of the
//! process's resident set, so what is left is the save's own working memory.
//!
//! ```text
//! cargo run --release --example save_peak_memory
//! ```
//!
//! Target: peak above the environment < 64 MiB.

use std::time::Instant;

use achronyme_env::{SaveOptions, save_environment, testdata};

const ROWS: usize = 16384;
const COLS: usize = 8192;
const TARGET_MIB: f64 = 64.0;

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let started = Instant::now();
    let env = testdata::tensor_workspace(testdata::normal_tensor(ROWS, COLS, 42));
    println!(
        "built the environment ({} MiB of tensor data) in {:.2?}",
        (ROWS * COLS * 8) >> 20,
        started.elapsed()
    );

    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("peak.ach");

    let hwm_build = status_kib("VmHWM").expect("VmHWM in /proc/self/status");
    // Reset the high-water mark to the current resident set, so that the
    // peak measured below is the save's alone.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = status_kib("VmRSS").expect("VmRSS in /proc/self/status");
    let hwm_before = status_kib("VmHWM").expect("VmHWM");

    let opts = SaveOptions {
        durable: true,
        ..SaveOptions::default()
    };
    let report = save_environment(&env, &path, &opts).expect("save");

    let hwm_after = status_kib("VmHWM").expect("VmHWM");
    let rss_after = status_kib("VmRSS").expect("VmRSS");
    println!(
        "saved {} bytes (durable): write {:.2?}, sync {:.2?}",
        report.bytes, report.write_time, report.sync_time
    );
    println!("VmHWM after building:           {:9.1} MiB", mib(hwm_build));
    println!(
        "VmHWM reset before saving:      {}",
        if reset {
            "yes (clear_refs 5)"
        } else {
            "no (not permitted): peak may include the build"
        }
    );
    println!(
        "VmRSS before save (baseline):   {:9.1} MiB",
        mib(rss_before)
    );
    println!(
        "VmHWM before save:              {:9.1} MiB",
        mib(hwm_before)
    );
    println!("VmHWM after save:               {:9.1} MiB", mib(hwm_after));
    println!("VmRSS after save:               {:9.1} MiB", mib(rss_after));
    let peak = mib(hwm_after.saturating_sub(rss_before));
    println!(
        "peak above the environment:     {peak:9.1} MiB (target < {TARGET_MIB} MiB: {})",
        if peak < TARGET_MIB { "met" } else { "MISSED" }
    );
    drop(env);
}
