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
    let opts = SnapshotRestoreOptions {
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

// ---------------------------------------------------------------------------
// Hostile sizes: hand-made files that declare huge things. Each must give
// its own typed error, and opening plus loading everything must allocate
// less than the file's size (for the compressed bomb: less than the raw
// length its table declares, see layout.md 3.4).
// ---------------------------------------------------------------------------

/// Opens `bytes` and loads every binding, returning the first error and the
/// peak of heap bytes allocated meanwhile.
fn open_and_load_all(bytes: Vec<u8>) -> (Result<()>, usize) {
    peak_during(move || {
        let archive = Archive::from_bytes(bytes)?;
        archive.check_table()?;
        let names: Vec<String> = archive.names(Section::Bindings).map(String::from).collect();
        for name in names {
            archive.get(&name)?;
        }
        Ok(())
    })
}

fn reason_of(r: &Result<()>) -> &'static str {
    match r {
        Err(Error::InvalidToc { reason, .. }) => reason,
        Err(Error::InvalidValue { .. }) => "invalid value",
        Err(Error::TooDeep { .. }) => "too deep",
        Err(Error::CorruptChunk { .. }) => "corrupt chunk",
        Err(Error::TrailingBytes { .. }) => "trailing bytes",
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// A raw archive: "a" a 3-d tensor [8, 8, 8], "b" a string, both large
/// enough for blobs of their own (smaller values live in the table's value
/// pool, format 1.4).
fn two_blobs() -> (Vec<u8>, Map) {
    let mut env = Environment::new();
    env.set("a", Value::Tensor(iota(&[8, 8, 8])));
    env.set("b", Value::from("hello ".repeat(700)));
    let bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    (bytes, map)
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn hand_made_huge_declarations_are_refused_without_allocating_them() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (bytes, map) = two_blobs();
    let file = bytes.len();
    // The entries' fields (layout.md 6.2) and the dimension pool.
    use field::{BLOB_OFFSET, CODEC, RAW_LEN, STORED_LEN};
    let put = |b: &mut Vec<u8>, i, f, v| map.put_field(b, i, f, v);
    let dims = map.dims_at();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();

    // A 2^44-element tensor: shape [2^44, 1, 1], raw and stored lengths to
    // match (2^47 bytes, 128 TiB: a 40-byte entry holds lengths up to
    // 2^48 - 1): its blob would need 2^27 digests.
    let mut b = bytes.clone();
    put_u64(&mut b, dims, 1 << 44);
    put_u64(&mut b, dims + 8, 1);
    put_u64(&mut b, dims + 16, 1);
    put(&mut b, 0, RAW_LEN, 1 << 47);
    put(&mut b, 0, STORED_LEN, 1 << 47);
    cases.push((
        "2^44 elements",
        b,
        "chunk digests do not match the blob's length",
    ));
    // 2^60 elements in a blob of 512: shape [2^58, 2, 2].
    let mut b = bytes.clone();
    put_u64(&mut b, dims, 1 << 58);
    put_u64(&mut b, dims + 8, 2);
    put_u64(&mut b, dims + 16, 2);
    cases.push((
        "2^60 elements, short",
        b,
        "tensor shape does not match its length",
    ));
    // The same, claimed compressed (zstd, 4 MiB chunks): 2^25 chunks cannot
    // fit in 4096 stored bytes.
    let mut b = bytes.clone();
    put_u64(&mut b, dims, 1 << 44);
    put_u64(&mut b, dims + 8, 1);
    put_u64(&mut b, dims + 16, 1);
    put(&mut b, 0, RAW_LEN, 1 << 47);
    put(&mut b, 0, CODEC, Codec::Zstd as u64);
    b[map.toc_offset + 60] = 22;
    cases.push((
        "2^44 elements, compressed",
        b,
        "compressed blob is too short for its chunk table",
    ));
    // A shape whose product overflows u64.
    let mut b = bytes.clone();
    for k in 0..3 {
        put_u64(&mut b, dims + 8 * k, 1 << 32);
    }
    cases.push(("overflowing shape", b, "tensor shape overflows"));
    // Overlapping blobs: "b" claims to start where "a" starts.
    let mut b = bytes.clone();
    put(&mut b, 1, BLOB_OFFSET, 64);
    cases.push(("overlapping", b, "blob is not where the previous one ended"));
    // Out of order: the two blob offsets swapped.
    let mut b = bytes.clone();
    let (a_at, b_at) = (
        map.entries[0].blob_offset.get(),
        map.entries[1].blob_offset.get(),
    );
    put(&mut b, 0, BLOB_OFFSET, b_at);
    put(&mut b, 1, BLOB_OFFSET, a_at);
    cases.push((
        "out of order",
        b,
        "blob is not where the previous one ended",
    ));
    // The table of contents pointing into itself: the hash pool claimed to
    // start at the table.
    let mut b = bytes.clone();
    put_u64(&mut b, map.toc_offset + 40, map.toc_offset as u64);
    cases.push((
        "pool inside the table",
        b,
        // Rule 32, which a paged table checks at open, before the
        // entries (layout.md 6.8).
        "table of contents is not right after the hash pool",
    ));
    // The second blob claimed to lie inside the table of contents.
    let mut b = bytes.clone();
    put(&mut b, 1, BLOB_OFFSET, map.toc_offset as u64);
    cases.push((
        "blob inside the table",
        b,
        "blob is not where the previous one ended",
    ));
    // The header pointing the table at the first blob.
    let mut b = bytes.clone();
    put_u64(&mut b, 40, 64);
    cases.push(("table at the first blob", b, "trailing bytes"));

    for (what, mut b, expected) in cases {
        map.reseal(&mut b);
        let (result, peak) = open_and_load_all(b);
        assert_eq!(reason_of(&result), expected, "{what}: {result:?}");
        assert!(
            peak < file,
            "{what}: allocated {peak} bytes for a {file}-byte file"
        );
    }
}

#[test]
fn a_2_pow_40_byte_string_is_refused_without_allocating_it() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (mut bytes, map) = two_blobs();
    let payload = map.payload(1);
    assert_eq!(bytes[payload.start], 0x03);
    put_u64(&mut bytes, payload.start + 1, 1 << 40);
    map.fix_digest(&mut bytes, 1);
    let file = bytes.len();
    let (result, peak) = open_and_load_all(bytes);
    assert_matches!(
        result,
        Err(Error::InvalidValue { ref name, ref reason }) if name == "b"
            && reason == "value runs past the end of its blob"
    );
    assert!(peak < file, "allocated {peak} bytes for a {file}-byte file");
}

#[test]
fn a_million_nested_vectors_are_too_deep_and_cost_little() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // A string whose payload (9 + len bytes) becomes 1,000,000 vectors of
    // one element each (9 bytes apiece) around a Null.
    let levels = 1_000_000;
    let mut env = Environment::new();
    env.set("v", Value::String("x".repeat(9 * levels + 1 - 9)));
    let mut bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    let payload = map.payload(0);
    let mut crafted = Vec::with_capacity(payload.len());
    for _ in 0..levels {
        crafted.push(0x05);
        crafted.extend_from_slice(&1u64.to_le_bytes());
    }
    crafted.push(0x00);
    assert_eq!(crafted.len(), payload.len());
    bytes[payload].copy_from_slice(&crafted);
    map.retag(&mut bytes, 0, 0x05);
    let file = bytes.len();
    let (result, peak) = open_and_load_all(bytes);
    assert_matches!(result, Err(Error::TooDeep { ref name, limit: 128 }) if name == "v");
    assert!(
        peak < 64 * KIB,
        "allocated {peak} bytes for a {file}-byte file"
    );
}

#[test]
fn a_compressed_chunk_that_inflates_past_its_length_stops_at_the_declared_size() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // A 512 KiB smooth tensor compresses to one zstd chunk of tens of KiB.
    // Its stored bytes are replaced by a zstd frame of 256 MiB of zeros
    // (a few KiB), padded with a skippable frame to the same length, and
    // the chunk's digest is recomputed: every check before decompression
    // passes.
    let declared = 512 * KIB;
    let mut env = Environment::new();
    env.set(
        "t",
        Value::Tensor(Tensor::from_vec(testdata::smooth(declared / 8))),
    );
    let mut bytes = archive_bytes_with(&env, &packed());
    let map = Map::of(&bytes);
    let e = &map.entries[0];
    assert_eq!(e.codec, Codec::Zstd as u8);
    let chunk_start = e.blob_offset.get() as usize + 64 + 16;
    let stored = e.stored_len.get() as usize - 16;
    let bomb = zstd::bulk::compress(&vec![0u8; 256 * MIB], 3).unwrap();
    assert!(
        bomb.len() + 8 <= stored,
        "bomb {} vs chunk {stored}",
        bomb.len()
    );
    let mut chunk = bomb;
    let pad = stored - chunk.len() - 8;
    chunk.extend_from_slice(&0x184D_2A50u32.to_le_bytes()); // skippable frame
    chunk.extend_from_slice(&(pad as u32).to_le_bytes());
    chunk.resize(stored, 0);
    bytes[chunk_start..chunk_start + stored].copy_from_slice(&chunk);
    let digest = map.checksum.digest(&chunk);
    let at = map.digest_at(e.hash_index.get() as usize + 1);
    bytes[at..at + digest.len()].copy_from_slice(&digest);
    map.reseal(&mut bytes);

    let (result, peak) = open_and_load_all(bytes);
    assert_matches!(result, Err(Error::CorruptChunk { ref name, chunk: 0, .. }) if name == "t");
    // The declared 512 KiB, plus zstd's context; never the 256 MiB.
    assert!(peak < declared + MIB, "allocated {peak} bytes");
}

#[test]
fn a_compressed_blob_declaring_a_tebibyte_is_an_error_not_an_abort() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Built by hand: one tensor of 2^37 f64s (1 TiB) in 2^18 zstd chunks of
    // one stored byte each: the smallest file (13 MB) the format's bound
    // (raw_len <= 4 MiB x stored_len / 17) allows to declare that much.
    let n: u64 = 1 << 18;
    let raw_len: u64 = n << 22;
    let stored_len = 17 * n;
    let mut file = vec![0u8; 64];
    let blob_offset = file.len() as u64;
    let mut frame = vec![0u8; 64];
    frame[..3].copy_from_slice(&[b'B', b'L', 0x06]);
    frame[3] = Codec::Zstd as u8;
    frame[8..16].copy_from_slice(&stored_len.to_le_bytes());
    file.extend_from_slice(&frame);
    for _ in 0..n {
        let mut record = [0u8; 16];
        record[..8].copy_from_slice(&1u64.to_le_bytes());
        record[8] = Codec::Zstd as u8;
        file.extend_from_slice(&record);
    }
    file.resize(file.len() + n as usize, 0x28);
    file.resize(file.len().next_multiple_of(64), 0);
    let hashes_offset = file.len() as u64;
    let hash_count = n + 1;
    file.resize(file.len() + 32 * hash_count as usize, 0);
    file.resize(file.len().next_multiple_of(64), 0);
    let toc_offset = file.len() as u64;
    let meta = {
        let mut m = Vec::new();
        m.extend_from_slice(&0u32.to_le_bytes()); // created_by
        m.extend_from_slice(&0u32.to_le_bytes()); // platform
        m.push(0); // no description
        m.extend_from_slice(&0u32.to_le_bytes()); // tags
        m.extend_from_slice(&0u32.to_le_bytes()); // custom
        m
    };
    let mut toc = Vec::new();
    toc.extend_from_slice(b"TOC\0");
    toc.extend_from_slice(&56u32.to_le_bytes());
    for v in [1u64, 1, 1, meta.len() as u64, hashes_offset, hash_count] {
        toc.extend_from_slice(&v.to_le_bytes());
    }
    toc.extend_from_slice(&20u32.to_le_bytes());
    toc.extend_from_slice(&[22, 0, 0, 0]);
    let mut entry = Vec::new();
    entry.extend_from_slice(&0u32.to_le_bytes()); // name_offset
    entry.extend_from_slice(&1u32.to_le_bytes()); // name_len
    for v in [blob_offset, stored_len, raw_len] {
        entry.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0u32, 1, 0, hash_count as u32] {
        entry.extend_from_slice(&v.to_le_bytes()); // dims_index, ndim, hash_index, hash_count
    }
    entry.extend_from_slice(&[0x06, 0, Codec::Zstd as u8, 0, 0, 0, 0, 0]);
    toc.extend_from_slice(&entry);
    toc.extend_from_slice(&(raw_len / 8).to_le_bytes()); // shape
    toc.push(b't');
    toc.extend_from_slice(&meta);
    close_hand_made(&mut file, &toc, toc_offset);

    let archive = Archive::from_bytes(file).unwrap();
    assert_eq!(archive.info().entries[0].raw_bytes, 1 << 40);
    let unchecked = LoadOptions {
        verify_checksum: false,
        ..LoadOptions::default()
    };
    // Refused against the load's budget (4 GiB by default) before any
    // allocation, whatever the kernel would have granted.
    let (result, peak) = peak_during(|| archive.get_with(Section::Bindings, "t", unchecked));
    assert_matches!(
        result,
        Err(Error::TooLarge { ref name, bytes: 0x100_0000_0000, limit })
            if name == "t" && limit == LoadOptions::DEFAULT_MAX_DECODED_BYTES
    );
    assert!(peak < 64 * MIB, "allocated {peak} bytes");
    // With checksums on, the (zero) digests fail first.
    assert_matches!(
        archive.get("t"),
        Err(Error::ChecksumMismatch { chunk: 0, .. })
    );
}

// ---------------------------------------------------------------------------
// The decode budget (layout.md 8.2 and 9): what a load may hold in memory.
// ---------------------------------------------------------------------------

/// A hand-made archive of one zstd-compressed binding named "v" with type
/// `tag` and `raw_len` raw bytes. `fill(k, chunk)` writes raw chunk `k`
/// (4 MiB, the last one shorter) into a zeroed buffer. Chunks are
/// compressed one at a time, so a gigabyte of zeros costs a few MiB to make,
/// and every digest is right: the load's checks all pass.
fn one_compressed_binding(tag: u8, raw_len: u64, fill: impl Fn(u64, &mut [u8])) -> Vec<u8> {
    const C_Z: u64 = 1 << 22;
    let n = raw_len.div_ceil(C_Z);
    let mut stored = Vec::new();
    for k in 0..n {
        let mut raw = vec![0u8; (raw_len - k * C_Z).min(C_Z) as usize];
        fill(k, &mut raw);
        stored.push(zstd::bulk::compress(&raw, 1).unwrap());
    }
    let table_len = 16 * n;
    let stored_len = table_len + stored.iter().map(|c| c.len() as u64).sum::<u64>();
    let mut head = Vec::new();
    head.extend_from_slice(&[b'B', b'L', tag, Codec::Zstd as u8, 0, 0, 0, 0]);
    head.extend_from_slice(&stored_len.to_le_bytes());
    for c in &stored {
        head.extend_from_slice(&(c.len() as u64).to_le_bytes());
        head.extend_from_slice(&[Codec::Zstd as u8, 0, 0, 0, 0, 0, 0, 0]);
    }
    let mut digests = vec![achronyme_env::hash::sha256(&[&head])];
    digests.extend(stored.iter().map(|c| achronyme_env::hash::sha256(&[c])));

    let mut file = vec![0u8; 64];
    let blob_offset = file.len() as u64;
    file.extend_from_slice(&head);
    for c in &stored {
        file.extend_from_slice(c);
    }
    file.resize(file.len().next_multiple_of(64), 0);
    let hashes_offset = file.len() as u64;
    let hash_count = digests.len() as u64;
    for d in &digests {
        file.extend_from_slice(d);
    }
    file.resize(file.len().next_multiple_of(64), 0);
    let toc_offset = file.len() as u64;
    // Metadata: no creator, platform, description, tags or custom entries.
    let meta = [0u8; 17];
    let mut toc = Vec::new();
    toc.extend_from_slice(b"TOC\0");
    toc.extend_from_slice(&56u32.to_le_bytes());
    for v in [1u64, 0, 1, meta.len() as u64, hashes_offset, hash_count] {
        toc.extend_from_slice(&v.to_le_bytes()); // entries, dims, names_len, ...
    }
    toc.extend_from_slice(&20u32.to_le_bytes()); // hash_chunk_log2
    toc.extend_from_slice(&[22, 0, 0, 0]); // codec_chunk_log2
    toc.extend_from_slice(&0u32.to_le_bytes()); // name_offset
    toc.extend_from_slice(&1u32.to_le_bytes()); // name_len
    for v in [blob_offset, stored_len, raw_len] {
        toc.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0u32, 0, 0, hash_count as u32] {
        toc.extend_from_slice(&v.to_le_bytes()); // dims_index, ndim, hash_index, hash_count
    }
    toc.extend_from_slice(&[tag, 0, Codec::Zstd as u8, 0, 0, 0, 0, 0]);
    toc.push(b'v');
    toc.extend_from_slice(&meta);
    close_hand_made(&mut file, &toc, toc_offset);
    file
}

const GIB: u64 = 1 << 30;

/// A compressed `Vector` of `2^30 - 9` Nulls: 1 GiB of raw bytes, nearly all
/// zero, in a file of tens of KiB. Decoded, it would be 80 GiB of `Value`s.
fn a_billion_nulls() -> Vec<u8> {
    one_compressed_binding(0x05, GIB, |k, raw| {
        if k == 0 {
            raw[0] = 0x05;
            raw[1..9].copy_from_slice(&(GIB - 9).to_le_bytes());
        }
    })
}

#[test]
/// Regression: nothing bounded what decoding a value allocated but the bytes
/// it decoded, and a Null is 1 byte on disk and 80 in memory. This 47 KB
/// file made every load, verify and restore abort with "memory allocation of
/// 5368709120 bytes failed".
fn a_compressed_billion_nulls_is_too_large_for_load_verify_and_restore() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = a_billion_nulls();
    assert!(bytes.len() < 64 * KIB, "{} bytes", bytes.len());
    let archive = Archive::from_bytes(bytes).unwrap();
    assert_eq!(archive.info().entries[0].raw_bytes, GIB);
    // The default budget (4 GiB) affords the 1 GiB of raw bytes, but not the
    // values: they are counted before any is built.
    let bound = GIB as usize + 64 * MIB;

    let (result, peak) = peak_during(|| archive.get("v"));
    assert_matches!(result, Err(Error::TooLarge { ref name, .. }) if name == "v");
    assert!(peak < bound, "get allocated {peak} bytes");

    let (report, peak) = peak_during(|| archive.verify_report());
    assert_eq!(report.damaged.len(), 1, "{report}");
    assert_eq!(report.damaged[0].name, "v");
    assert!(
        report.damaged[0].error.contains("max_decoded_bytes"),
        "{report}"
    );
    assert!(peak < bound, "verify allocated {peak} bytes");

    let mut env = Environment::new();
    let (result, peak) =
        peak_during(|| restore_from_archive(&mut env, &archive, &RestoreOptions::default()));
    assert_matches!(result, Err(Error::TooLarge { ref name, .. }) if name == "v");
    assert!(peak < bound, "restore allocated {peak} bytes");
    assert!(env.is_empty());
}

#[test]
fn a_lower_budget_refuses_the_raw_buffer_before_allocating_it() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let archive = Archive::from_bytes(a_billion_nulls()).unwrap();
    let limit = 64 * MIB as u64;
    let opts = LoadOptions {
        max_decoded_bytes: limit,
        ..LoadOptions::default()
    };
    // The 1 GiB raw buffer alone is over: refused before decompressing.
    let (result, peak) = peak_during(|| archive.get_with(Section::Bindings, "v", opts));
    assert_matches!(
        result,
        Err(Error::TooLarge { ref name, bytes: GIB, limit: l }) if name == "v" && l == limit
    );
    assert!(peak < MIB, "get allocated {peak} bytes");

    let (report, peak) = peak_during(|| archive.verify_report_within(limit));
    assert_eq!(report.damaged.len(), 1, "{report}");
    assert!(peak < MIB, "verify allocated {peak} bytes");

    let opts = RestoreOptions {
        max_decoded_bytes: limit,
        ..RestoreOptions::default()
    };
    let mut env = Environment::new();
    let (result, peak) = peak_during(|| restore_from_archive(&mut env, &archive, &opts));
    assert_matches!(result, Err(Error::TooLarge { bytes: GIB, .. }));
    assert!(peak < MIB, "restore allocated {peak} bytes");
}

/// A vector of a million Nulls: under 1 MB raw, tens of KB saved
/// compressed, 80 MB decoded.
fn a_million_nulls() -> Value {
    Value::Vector(vec![Value::Null; 1_000_000])
}

#[test]
fn raising_the_budget_loads_a_value_a_lower_one_refuses() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let decoded = 1_000_000 * size_of::<Value>() as u64;
    let mut env = Environment::new();
    env.set("v", a_million_nulls());
    let archive = Archive::from_bytes(archive_bytes_with(&env, &packed())).unwrap();
    assert_eq!(archive.info().entries[0].codec, Codec::Zstd);
    let within = |max_decoded_bytes| LoadOptions {
        max_decoded_bytes,
        ..LoadOptions::default()
    };

    let low = 64 * MIB as u64;
    assert!(low < decoded);
    assert_matches!(
        archive.get_with(Section::Bindings, "v", within(low)),
        Err(Error::TooLarge { bytes, limit, .. }) if bytes > low && limit == low
    );
    assert_eq!(archive.verify_report_within(low).damaged.len(), 1);

    // The budget bounds what the load really holds: the value and, while
    // it is built, the raw bytes it is built from.
    let high = 96 * MIB as u64;
    let (loaded, peak) = peak_during(|| archive.get_with(Section::Bindings, "v", within(high)));
    assert_eq!(loaded.unwrap(), a_million_nulls());
    assert!(peak as u64 <= high, "a load within {high} allocated {peak}");
    assert!(peak as u64 >= decoded, "allocated only {peak}");
    assert!(archive.verify_report_within(high).is_ok());
}

#[test]
fn a_restore_holds_all_its_values_within_one_budget() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Two values of 80 MB each: either fits in 128 MiB, both do not.
    let mut saved = Environment::new();
    saved.set("a", a_million_nulls());
    saved.set("b", a_million_nulls());
    let archive = Archive::from_bytes(archive_bytes_with(&saved, &packed())).unwrap();
    let within = |max_decoded_bytes| RestoreOptions {
        max_decoded_bytes,
        ..RestoreOptions::default()
    };
    let one_only = 128 * MIB as u64;
    for name in ["a", "b"] {
        let opts = LoadOptions {
            max_decoded_bytes: one_only,
            ..LoadOptions::default()
        };
        assert!(archive.get_with(Section::Bindings, name, opts).is_ok());
    }

    let mut env = Environment::new();
    env.set("kept", Value::Number(1.0));
    assert_matches!(
        restore_from_archive(&mut env, &archive, &within(one_only)),
        Err(Error::TooLarge { ref name, bytes, limit })
            if name == "b" && bytes > one_only && limit == one_only
    );
    assert_eq!(env.names(), ["kept"]);

    let report = restore_from_archive(&mut env, &archive, &within(2 * one_only)).unwrap();
    assert_eq!(report.restored, ["a", "b"]);
    assert_eq!(env.get("b"), Some(&a_million_nulls()));
}

#[test]
fn the_default_budget_loads_a_64_mib_tensor_mapped_or_decompressed() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = 64 * MIB;
    let t = Tensor::from_vec(testdata::smooth(bytes / 8));
    let mut env = Environment::new();
    env.set("t", Value::Tensor(t.clone()));
    let dir = tempfile::tempdir().unwrap();
    let raw = path_in(&dir, "raw.ach");
    save_environment(&env, &raw, &fast()).unwrap();
    let packed_path = path_in(&dir, "packed.ach");
    save_environment(&env, &packed_path, &packed()).unwrap();
    let raw = Archive::open(&raw).unwrap();
    let packed = Archive::open(&packed_path).unwrap();
    assert_eq!(packed.info().entries[0].codec, Codec::Zstd);

    for archive in [&raw, &packed] {
        let Value::Tensor(loaded) = archive.get("t").unwrap() else {
            panic!()
        };
        assert_eq!(loaded, t);
        assert_eq!(
            loaded.is_mapped(),
            archive.info().entries[0].codec == Codec::None
        );
        assert!(archive.verify().is_ok());
    }

    // Below its size, the decompressed copy is refused; the view of the
    // mapped file costs nothing, so it still loads.
    let half = LoadOptions {
        max_decoded_bytes: bytes as u64 / 2,
        ..LoadOptions::default()
    };
    assert_matches!(
        packed.get_with(Section::Bindings, "t", half),
        Err(Error::TooLarge { bytes: b, .. }) if b == bytes as u64
    );
    assert!(raw.get_with(Section::Bindings, "t", half).is_ok());
    assert!(!packed.verify_report_within(bytes as u64 / 2).is_ok());
    assert!(raw.verify_report_within(bytes as u64 / 2).is_ok());
}

/// A tensor viewed in bytes a source read into memory (here an archive
/// held in memory; likewise the copy made when a file cannot be mapped)
/// was charged nothing, like a view of a mapping, so no budget bounded it.
#[test]
fn a_view_of_bytes_in_memory_is_charged_like_a_copy() {
    // Its megabyte of allocations must not land inside another test's
    // measured peak: the counting allocator is the process's.
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut env = Environment::new();
    env.set("t", Value::Tensor(Tensor::from_vec(vec![1.5; 1 << 16])));
    let bytes = common::archive_bytes(&env);
    let archive = Archive::from_bytes(bytes).unwrap();
    let within = |limit| LoadOptions {
        max_decoded_bytes: limit,
        ..LoadOptions::default()
    };
    let err = archive
        .get_with(Section::Bindings, "t", within(64 << 10))
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { bytes, .. } if bytes == 8 << 16),
        "{err:?}"
    );
    let Value::Tensor(t) = archive
        .get_with(Section::Bindings, "t", within(1 << 20))
        .unwrap()
    else {
        panic!("a tensor")
    };
    assert!(!t.is_mapped());
    assert_eq!(t.len(), 1 << 16);
}

/// Ends a hand-made compressed (format 1.1) archive: appends its table of
/// contents `toc` (which starts at `toc_offset`) and a trailer, writes the
/// header, and seals the checksums.
fn close_hand_made(file: &mut Vec<u8>, toc: &[u8], toc_offset: u64) {
    let toc_len = toc.len() as u64;
    file.extend_from_slice(toc);
    file.resize(file.len() + 64, 0); // trailer, sealed below
    file[..4].copy_from_slice(b"ACH\0");
    file[4..6].copy_from_slice(&1u16.to_le_bytes());
    file[6..8].copy_from_slice(&1u16.to_le_bytes());
    file[8..12].copy_from_slice(&8u32.to_le_bytes()); // FLAG_COMPRESSED
    file[12] = Codec::Zstd as u8;
    file[40..48].copy_from_slice(&toc_offset.to_le_bytes());
    file[48..56].copy_from_slice(&toc_len.to_le_bytes());
    Map::of(file).reseal(file);
}
