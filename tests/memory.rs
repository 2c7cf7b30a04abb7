//! Memory: loading an uncompressed tensor copies nothing, opening maps
//! instead of reading, a save streams (its extra memory is bounded by the
//! write buffer, not by the data), and a hostile blob cannot make the
//! decoder reserve memory out of proportion to its size.
//!
//! A counting global allocator (this test binary only) measures the peak of
//! live heap bytes while a closure runs; the tests take a lock so that they
//! measure one at a time.

#[macro_use]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use achronyme_env::*;
use common::*;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, SeqCst) + by;
    PEAK.fetch_max(now, SeqCst);
}

// SAFETY: every method forwards to the system allocator with the caller's
// arguments unchanged; the counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from `System`) with
        // `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), SeqCst);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `f` and returns its result with the peak of live heap bytes above
/// the level when it started.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(SeqCst);
    PEAK.store(base, SeqCst);
    let out = f();
    (out, PEAK.load(SeqCst).saturating_sub(base))
}

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

#[test]
fn loading_a_tensor_and_opening_an_archive_copy_nothing() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "big.ach");
    let t = Tensor::from_vec(testdata::smooth(2 * MIB / 8));
    let mut env = Environment::new();
    env.set("t", Value::Tensor(t.clone()));
    save(&env, &path);

    let (archive, opened) = peak_during(|| Archive::open(&path).unwrap());
    assert!(opened < 64 * KIB, "Archive::open allocated {opened} bytes");
    let (loaded, loading) = peak_during(|| archive.get("t").unwrap());
    assert!(
        loading < 64 * KIB,
        "get of a 2 MiB tensor allocated {loading} bytes"
    );
    let Value::Tensor(view) = &loaded else {
        panic!()
    };
    assert!(view.is_mapped());
    assert_eq!(view, &t);
    let (info, described) = peak_during(|| env_info(&path).unwrap());
    assert!(described < 64 * KIB, "env_info allocated {described} bytes");
    assert_eq!(info.bindings, ["t"]);

    // The measure works: the copying reader does hold the whole file.
    let (_copied, copying) = peak_during(|| Archive::open_copied(&path).unwrap());
    assert!(
        copying >= 2 * MIB,
        "open_copied allocated only {copying} bytes"
    );
    // And so does writing to the view.
    let mut owned = view.clone();
    let (_, writing) = peak_during(|| owned.data_mut()[0] = 1.0);
    assert!(writing >= 2 * MIB);
}

#[test]
fn a_save_streams_instead_of_building_the_archive_in_memory() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // 3 MiB (hashed while streaming) and 5 MiB (hashed on other threads).
    for (name, bytes) in [("seq.ach", 3 * MIB), ("par.ach", 5 * MIB)] {
        let mut env = Environment::new();
        env.set(
            "t",
            Value::Tensor(Tensor::from_vec(testdata::smooth(bytes / 8))),
        );
        env.set("c", Value::ComplexTensor(complex_iota(&[256, 64])));
        let path = path_in(&dir, name);
        let (report, saving) = peak_during(|| save(&env, &path));
        assert!(report.bytes as usize > bytes);
        // The write buffer is 1 MiB; the data is not copied.
        assert!(
            saving < bytes / 2,
            "saving {bytes} bytes of tensors took {saving} bytes of heap"
        );
    }
}

#[test]
/// Regression: the decoder reserved capacity for each vector's or record's
/// claimed count at every nesting level, so a 256 KiB blob reserved gigabytes.
fn a_hostile_blob_cannot_reserve_memory_out_of_proportion() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // 127 nested vectors (then records), each claiming as many elements as
    // the bytes left could hold, then bytes that are no value at all: the
    // claims are false, the blob is only 256 KiB.
    let size = 256 * KIB;
    let vector_level = |remaining: usize| {
        let mut b = vec![0x05];
        b.extend_from_slice(&(remaining as u64).to_le_bytes());
        b
    };
    // A record field is at least 9 bytes; its name here is empty.
    let record_level = |remaining: usize| {
        let mut b = vec![0x08];
        b.extend_from_slice(&(remaining as u64 / 9).to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b
    };
    let mut reserved = Vec::new();
    for (kind, tag, level) in [
        ("vector", 0x05, &vector_level as &dyn Fn(usize) -> Vec<u8>),
        ("record", 0x08, &record_level),
    ] {
        let mut env = Environment::new();
        env.set("v", Value::String("x".repeat(size)));
        let mut bytes = archive_bytes(&env);
        let map = Map::of(&bytes);
        let payload = map.payload(0);
        let len = payload.len();
        let mut crafted = Vec::with_capacity(len);
        for _ in 0..127 {
            let remaining = len - crafted.len() - level(0).len();
            crafted.extend_from_slice(&level(remaining));
        }
        crafted.resize(len, 0xFF);
        bytes[payload].copy_from_slice(&crafted);
        map.retag(&mut bytes, 0, tag);
        let archive = Archive::from_bytes(bytes).unwrap();

        let (result, decoding) = peak_during(|| archive.get("v"));
        assert_matches!(result, Err(Error::InvalidValue { .. }));
        reserved.push((kind, decoding));
    }
    // Nothing in the blob decodes past the 127 headers; even a real vector
    // of N nulls (80 N bytes as Values) would stay below this.
    assert!(
        reserved.iter().all(|&(_, peak)| peak < 100 * size),
        "decoding {size}-byte blobs reserved {reserved:?} bytes"
    );
}

#[test]
fn a_snapshot_costs_bindings_not_bytes() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut env = Environment::new();
    env.set(
        "big",
        Value::Tensor(Tensor::from_vec(vec![0.5; 32 * MIB / 8])),
    );
    env.set(
        "cell",
        Value::new_ref(Value::Tensor(Tensor::from_vec(vec![1.0; 8 * MIB / 8]))),
    );
    env.set("label", Value::from("run 7"));

    let (snapshot, taking) =
        peak_during(|| snapshot_env(&env, &SnapshotOptions::default()).unwrap());
    assert!(
        taking < 64 * KIB,
        "a snapshot of 40 MiB of tensors allocated {taking} bytes"
    );
    let opts = RestoreOptions {
        mode: RestoreMode::Replace,
        ..Default::default()
    };
    let (report, restoring) = peak_during(|| restore_snapshot(&mut env, &snapshot, &opts).unwrap());
    assert!(
        restoring < 64 * KIB,
        "restoring allocated {restoring} bytes"
    );
    assert_eq!(report.restored, ["big", "cell", "label"]);

    // The measure works: writing to the shared tensor copies all of it, and
    // the snapshot keeps the old elements.
    let Some(Value::Tensor(big)) = env.get_mut("big") else {
        panic!()
    };
    let (_, writing) = peak_during(|| big.data_mut()[0] = 9.0);
    assert!(
        writing >= 32 * MIB,
        "copy on write allocated {writing} bytes"
    );
    let Some(Value::Tensor(kept)) = snapshot.get("big") else {
        panic!()
    };
    assert_eq!(kept.data()[0], 0.5);
}
