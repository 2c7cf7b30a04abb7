//! The object-storage figures of BENCHMARKS.md ("Object storage"), in one
//! process so that every row comes from the same run.
//!
//! ```text
//! # with a local S3-protocol server (moto), as .ci/run starts one:
//! export AWS_ENDPOINT_URL=http://127.0.0.1:5077 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \
//!        AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true ACH_S3_BUCKET=ach-test
//! cargo run --release -p achronyme-env --features remote --example remote_figures -- 1024
//! ```
//!
//! The argument is the size of W1's tensor in MiB (default 1024). Steps:
//! save W1 to a local file and, when a server is configured, to it (time,
//! requests, bytes, and peak memory above the environment, `VmHWM` after
//! `echo 5 > /proc/self/clear_refs`); `env_info` and the load of one small
//! binding from the local file, from object_store's in-memory store and
//! from the server (requests and bytes counted by the tests' counting
//! layer, time as the median of 5); the tensor read whole with concurrent
//! ranged reads and with one sequential GET, through `ThrottledStore` over
//! the in-memory store (30 ms before each request's first byte, 10 ns per
//! byte: 100 MB/s per request) and from the server, with peak memory above
//! the start of the read. Linux only (`/proc/self/status`).

#[path = "support/rss.rs"]
mod rss;
#[allow(dead_code)]
#[path = "../tests/remote/stores.rs"]
mod stores;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use achronyme_env::object_store::memory::InMemory;
use achronyme_env::object_store::throttle::{ThrottleConfig, ThrottledStore};
use achronyme_env::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use achronyme_env::testdata::{normal_tensor, tensor_workspace};
use achronyme_env::*;
use rss::status_mib;
use stores::Counting;

/// Runs `f`, returning its result, seconds, and the peak resident memory
/// above the resident set before it, in MiB.
fn peak<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    let before = status_mib("VmRSS");
    let t = Instant::now();
    let out = f();
    let secs = t.elapsed().as_secs_f64();
    (out, secs, status_mib("VmHWM") - before)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of 5 runs of `f`.
fn time5(mut f: impl FnMut()) -> f64 {
    median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn row(op: &str, place: &str, requests: &str, bytes: &str, secs: f64, extra: &str) {
    let time = match secs {
        s if s < 1e-3 => format!("{:.1} µs", s * 1e6),
        s if s < 1.0 => format!("{:.1} ms", s * 1e3),
        s => format!("{s:.2} s"),
    };
    println!("| {op} | {place} | {requests} | {bytes} | {time} | {extra} |");
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("size in MiB"))
        .unwrap_or(1024);
    let dir = PathBuf::from("target/remote_figures");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w1.ach");
    let raw = SaveOptions {
        compression: Compression::None,
        durable: false,
        allow_overwrite: true,
        ..Default::default()
    };
    let server = match (
        std::env::var("AWS_ENDPOINT_URL"),
        std::env::var("ACH_S3_BUCKET"),
    ) {
        (Ok(_), Ok(bucket)) => {
            let s3 = achronyme_env::object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(&bucket)
                .build()
                .expect("an S3 store from the environment");
            Some((bucket, Counting::new(Arc::new(s3))))
        }
        _ => None,
    };
    let key = format!("w1-{}.ach", std::process::id());

    println!("| operation | where | requests | bytes | time | notes |");
    println!("|---|---|---|---|---|---|");
    {
        let env = tensor_workspace(normal_tensor(mib * 128, 1024, 1));
        let (report, secs, up) = peak(|| save_environment(&env, &path, &raw).unwrap());
        let gib = report.bytes as f64 / (1u64 << 30) as f64;
        row(
            "save W1",
            "local file",
            "-",
            &format!("{:.2} GiB", gib),
            secs,
            &format!("peak +{up:.0} MiB"),
        );
        if let Some((bucket, counting)) = &server {
            let opts = SaveOptions {
                remote: RemoteOptions::default().with_store(counting.clone()),
                ..raw.clone()
            };
            let url = format!("s3://{bucket}/{key}");
            let before = counting.counts();
            let (_, secs, up) = peak(|| save_environment(&env, url.as_str(), &opts).unwrap());
            let c = counting.since(before);
            row(
                "save W1",
                "local S3 server",
                &format!(
                    "{} HEAD + {} PUT + 1 upload of {} parts",
                    c.heads, c.puts, c.parts
                ),
                &format!("{} sent", c.put_bytes),
                secs,
                &format!("peak +{up:.0} MiB above the environment"),
            );
        }
    }

    // The archive in object_store's in-memory store.
    let bytes = std::fs::read(&path).unwrap();
    let len = bytes.len() as u64;
    let mem = Arc::new(InMemory::new());
    rt().block_on(mem.put(&key.as_str().into(), PutPayload::from(bytes)))
        .unwrap();
    let counted_mem = Counting::new(mem.clone());
    let mut places: Vec<(&str, Arc<Counting>, String)> =
        vec![("in-memory store", counted_mem, format!("memory:///{key}"))];
    if let Some((bucket, counting)) = &server {
        places.push((
            "local S3 server",
            counting.clone(),
            format!("s3://{bucket}/{key}"),
        ));
    }

    // env_info.
    let local = time5(|| drop(env_info(&path).unwrap()));
    row(
        "env_info",
        "local file",
        "-",
        "-",
        local,
        &format!("archive {len} bytes"),
    );
    for (place, counting, url) in &places {
        let opts = RemoteOptions::default().with_store(counting.clone());
        let before = counting.counts();
        let archive = Archive::open_url_with(url, &opts).unwrap();
        let c = counting.since(before);
        let toc = archive.toc_len();
        let secs = time5(|| drop(Archive::open_url_with(url, &opts).unwrap().info()));
        row(
            "env_info",
            place,
            &format!("{} GET (1 round trip)", c.gets),
            &format!(
                "{} (header 64 + tail {}; table {toc})",
                c.get_bytes,
                c.get_bytes - 64
            ),
            secs,
            &format!("{:.1}x local", secs / local),
        );
    }

    // One small binding, counting the open.
    let local = time5(|| drop(Archive::open(&path).unwrap().get("config").unwrap()));
    row(
        "open + load one small binding",
        "local file",
        "-",
        "-",
        local,
        "",
    );
    for (place, counting, url) in &places {
        let opts = RemoteOptions::default().with_store(counting.clone());
        let before = counting.counts();
        Archive::open_url_with(url, &opts)
            .unwrap()
            .get("config")
            .unwrap();
        let c = counting.since(before);
        let secs = time5(|| {
            drop(
                Archive::open_url_with(url, &opts)
                    .unwrap()
                    .get("config")
                    .unwrap(),
            )
        });
        row(
            "open + load one small binding",
            place,
            &format!("{} GET", c.gets),
            &c.get_bytes.to_string(),
            secs,
            &format!("{:.1}x local", secs / local),
        );
    }

    // The tensor, whole, with its digests checked (the default) or not.
    let load_with = |archive: &Archive, verify_checksum: bool| {
        let opts = LoadOptions {
            verify_checksum,
            ..LoadOptions::default()
        };
        match archive.get_with(Section::Bindings, "data", opts).unwrap() {
            Value::Tensor(t) => t.len(),
            _ => unreachable!(),
        }
    };
    let load = |archive: &Archive| load_with(archive, true);
    let ((), local, up) = peak(|| {
        let a = Archive::open(&path).unwrap();
        load(&a);
    });
    row(
        "load the tensor (checked)",
        "local file (mapped view)",
        "-",
        "-",
        local,
        &format!("peak +{up:.0} MiB (file pages)"),
    );
    let throttled: Arc<dyn ObjectStore> = Arc::new(ThrottledStore::new(
        mem.clone() as Arc<dyn ObjectStore>,
        ThrottleConfig {
            wait_get_per_call: Duration::from_millis(30),
            wait_get_per_byte: Duration::from_nanos(10),
            ..ThrottleConfig::default()
        },
    ));
    let mut sources: Vec<(String, Arc<dyn ObjectStore>, String)> = vec![(
        "ThrottledStore (30 ms + 100 MB/s per request)".into(),
        throttled,
        format!("memory:///{key}"),
    )];
    if let Some((bucket, counting)) = &server {
        sources.push((
            "local S3 server".into(),
            counting.clone(),
            format!("s3://{bucket}/{key}"),
        ));
    }
    for (place, store, url) in &sources {
        let counting = Counting::new(store.clone());
        let concurrent = RemoteOptions::default().with_store(counting.clone());
        let sequential = RemoteOptions::default()
            .with_store(counting.clone())
            .with_part_size(u64::MAX);
        for checked in [true, false] {
            let what = match checked {
                true => "checked",
                false => "unchecked",
            };
            let mut secs = Vec::new();
            for (how, opts) in [
                ("concurrent ranged reads", &concurrent),
                ("one sequential GET", &sequential),
            ] {
                let archive = Archive::open_url_with(url, opts).unwrap();
                let before = counting.counts();
                let (n, s, up) = peak(|| load_with(&archive, checked));
                let c = counting.since(before);
                assert_eq!(n, mib * 128 * 1024);
                secs.push(s);
                row(
                    &format!("load the tensor ({what}), {how}"),
                    place,
                    &format!("{} GET", c.gets),
                    &c.get_bytes.to_string(),
                    s,
                    &format!("peak +{up:.0} MiB (tensor {} MiB)", mib),
                );
            }
            println!(
                "|  | {place}, {what}: sequential / concurrent | | | {:.1}x | |",
                secs[1] / secs[0]
            );
        }
    }
}
