//! The table's value pool (format 1.4, layout.md 6.9): which values live
//! there, that they come back bit for bit from every kind of source, what
//! they cost on disk, and that every rule of the pool refuses a hostile
//! table without panicking.

#[macro_use]
mod common;

use achronyme_env::layout::RawEntry;
use achronyme_env::*;
use common::*;
use proptest::prelude::*;

/// Bytes of elements from which a top-level tensor gets a blob of its own.
const TENSOR_BLOB_MIN: usize = 4096 - 64;

fn tensor(n: usize) -> Value {
    Value::Tensor(Tensor::from_vec((0..n).map(|i| i as f64 * 0.5).collect()))
}

/// The archive's bytes, the map, and the index of each name.
fn saved(env: &Environment) -> (Vec<u8>, Map) {
    let bytes = archive_bytes(env);
    let map = Map::of(&bytes);
    (bytes, map)
}

fn entry<'m>(bytes: &[u8], map: &'m Map, name: &str) -> &'m RawEntry {
    &map.entries[map.index_of(bytes, name)]
}

#[test]
fn values_under_4_kib_with_their_frame_live_in_the_table() {
    let mut env = Environment::new();
    let just_inline = TENSOR_BLOB_MIN / 8 - 1;
    env.set("num", Value::Number(1.5));
    env.set("text", Value::from("x".repeat(4096 - 16 - 10)));
    env.set("text_big", Value::from("x".repeat(4096 - 16 - 9)));
    env.set("t_small", tensor(just_inline));
    env.set("t_big", tensor(just_inline + 1));
    env.set(
        "c",
        Value::ComplexTensor(ComplexTensor::from_vec(vec![Complex::new(1.0, -1.0); 3])),
    );
    let (bytes, map) = saved(&env);
    // A string's encoding is 9 bytes plus its text; a blob adds 16.
    for (name, inline) in [
        ("num", true),
        ("text", true),
        ("text_big", false),
        ("t_small", true),
        ("t_big", false),
        ("c", true),
    ] {
        let e = entry(&bytes, &map, name);
        assert_eq!(e.is_inline(), inline, "{name}");
        if inline && (e.tag == 6 || e.tag == 7) {
            // Tensors start on a multiple of 8 of the pool, itself on a
            // multiple of 8 of the file.
            assert_eq!(e.blob_offset.get() % 8, 0, "{name}");
            assert_eq!(map.values_at % 8, 0);
        }
    }
    let archive = open_checked(bytes.clone()).unwrap();
    archive.verify().unwrap();
    for (name, v) in env.iter() {
        assert_eq!(&archive.get(name).unwrap(), v, "{name}");
    }
    // The pool is exactly the inline payloads and the padding before
    // tensors: the header says how long.
    let values_len = u64::from_le_bytes(bytes[56..64].try_into().unwrap());
    let inline_end = map
        .entries
        .iter()
        .filter(|e| e.is_inline())
        .map(|e| e.blob_offset.get() + e.stored_len.get())
        .max()
        .unwrap();
    assert_eq!(values_len, inline_end);
    assert_eq!(archive.format_version(), (1, 5));
}

/// A number costs its entry, name and 9 bytes, no longer about 160.
#[test]
fn a_small_value_costs_what_it_holds() {
    let n = 5000;
    let mut env = Environment::new();
    for i in 0..n {
        env.set(format!("v{i:06}"), Value::Number(i as f64));
    }
    let bytes = archive_bytes(&env);
    // Entry 40 (format 1.5) + name 7 + value 9, plus the page digests (16
    // bytes per 4 KiB page) and a fixed part (header, table header,
    // metadata, page index head, trailer) well under 1 KiB.
    let per_value: usize = 40 + 7 + 9;
    let body = n * per_value;
    let limit = body + body.div_ceil(4096) * 16 + 1024;
    assert!(bytes.len() <= limit, "{} bytes > {limit}", bytes.len());
    assert!(bytes.len() >= body);
}

/// A table larger than the reads served by copying is mapped: its small
/// tensors load as views of it, which a restore with `copy` detaches.
#[test]
fn small_tensors_of_a_mapped_table_are_views_and_copies_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "many.ach");
    let env = testdata::many_small(20_000);
    save(&env, &path);
    let archive = Archive::open(&path).unwrap();
    assert!(archive.toc_len() > 1 << 20, "the table is mapped, not read");
    let Value::Tensor(t) = archive.get("v000002").unwrap() else {
        panic!()
    };
    assert!(t.is_mapped());
    assert_eq!(Some(&Value::Tensor(t)), env.get("v000002"));
    for copy in [false, true] {
        let mut back = Environment::new();
        let opts = RestoreOptions {
            copy,
            ..RestoreOptions::default()
        };
        restore_environment(&mut back, &path, &opts).unwrap();
        let Some(Value::Tensor(t)) = back.get("v000002") else {
            panic!()
        };
        assert_eq!(t.is_mapped(), !copy, "copy: {copy}");
        assert_eq!(back, env);
    }
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn every_rule_of_the_value_pool_refuses_a_hostile_table() {
    let mut env = Environment::new();
    env.set("a", Value::Number(1.0)); // 9 bytes at 0
    env.set("b", tensor(3)); // 24 bytes at 16 (after 7 bytes of padding)
    env.set("c", Value::from("hello there")); // 20 bytes at 40
    let (bytes, map) = saved(&env);
    let [a, b, c] = [0, 1, 2].map(|i| map.entries[i]);
    assert!(a.is_inline() && b.is_inline() && c.is_inline());
    assert_eq!(
        [
            a.blob_offset.get(),
            b.blob_offset.get(),
            c.blob_offset.get()
        ],
        [0, 16, 40]
    );
    let put = |b: &mut Vec<u8>, i, f, v| map.put_field(b, i, f, v);
    let entry = |i| Part::Entry(i);

    type Edit<'a> = Box<dyn FnOnce(&mut Vec<u8>) + 'a>;
    let cases: Vec<(Part, &str, Edit)> = vec![
        (
            entry(1),
            "inline value is not where the previous one ended",
            Box::new(|b| put(b, 1, field::BLOB_OFFSET, 9)),
        ),
        (
            entry(2),
            "inline value is not where the previous one ended",
            Box::new(|b| put(b, 2, field::BLOB_OFFSET, 41)),
        ),
        (
            entry(1),
            "padding in the value pool is not zero",
            Box::new(|b| b[map.values_at + 12] = 1),
        ),
        (
            // Long enough for one compressed chunk's table record.
            entry(2),
            "inline value is compressed",
            Box::new(|b| {
                put(b, 2, field::CODEC, 1);
                put(b, 2, field::RAW_LEN, 1);
                b[map.toc_offset + 60] = 22;
            }),
        ),
        (
            // Past the pool: the pool's length is the header's, so the
            // last value's length decides.
            Part::Toc,
            "value pool's length differs from its values'",
            Box::new(|b| {
                put(b, 2, field::STORED_LEN, 19);
                put(b, 2, field::RAW_LEN, 19);
            }),
        ),
    ];
    for (part, reason, edit) in cases {
        let (got_part, got) = refused_by_rule(&bytes, &map, edit);
        assert_eq!((got_part, got.as_str()), (part, reason), "{reason}");
    }
    // A lookup, which checks the entry it lands on alone, refuses a value
    // that would end past the pool (here 256 TiB long, the most a 40-byte
    // entry holds).
    let mut b = bytes.clone();
    let most = achronyme_env::layout::COMPACT_MAX;
    put(&mut b, 2, field::STORED_LEN, most);
    put(&mut b, 2, field::RAW_LEN, most);
    map.reseal(&mut b);
    assert_matches!(
        Archive::from_bytes(b).unwrap().get("c"),
        Err(Error::InvalidToc {
            part: Part::Entry(2),
            reason: "inline value lies past the value pool"
        })
    );
    // A header whose pool length does not match the table's size is a
    // table that does not add up.
    let mut b = bytes.clone();
    put_u64(&mut b, 56, 61);
    map.reseal(&mut b);
    assert_matches!(
        Archive::from_bytes(b),
        Err(Error::InvalidToc {
            part: Part::TocHeader,
            reason: "section sizes do not add up to its length"
        })
    );
}

/// Damage in the pool fails the loads of the values it holds, naming
/// them, and never returns different data; a reader before 1.4 would
/// refuse the header (its reserved bytes).
#[test]
fn a_damaged_value_in_a_later_page_fails_its_load_by_name() {
    let env = testdata::many_small(3000);
    let (bytes, map) = saved(&env);
    let i = 2999;
    let e = map.entries[i];
    assert!(e.is_inline());
    let at = map.payload(i).start + 1;
    let mut b = bytes.clone();
    b[at] ^= 0x10;
    let archive = Archive::from_bytes(b).unwrap();
    assert_matches!(
        archive.get("v002999"),
        Err(Error::ChecksumMismatch { ref name, .. }) if name == "v002999"
    );
    assert!(!archive.verify_report().is_ok());
}

/// Records whose encodings end on either side of the pool's bound (the
/// last field crossing it) live where the rule says: in the pool, packed
/// back to back with the small values between them, or in a blob; and
/// every value reads back.
#[test]
fn records_around_the_bound_live_in_the_pool_or_a_blob_as_the_rule_says() {
    let mut env = Environment::new();
    for n in 4010..4050 {
        let mut r = Record::new();
        r.insert("a", Value::from("x".repeat(n)));
        r.insert("b", Value::Number(n as f64));
        env.set(format!("r{n}"), Value::Record(r));
        env.set(format!("s{n}"), Value::Number(n as f64));
    }
    let (bytes, map) = saved(&env);
    let (mut pooled, mut blobs) = (0, 0);
    let mut pool_end = 0;
    for e in &map.entries {
        assert_eq!(e.is_inline(), 16 + e.stored_len.get() < 4096);
        match e.is_inline() {
            true => {
                // Back to back, nothing between them.
                assert_eq!(e.blob_offset.get(), pool_end);
                pool_end += e.stored_len.get();
                pooled += 1;
            }
            false => blobs += 1,
        }
    }
    assert!(blobs > 0 && pooled > env.len() / 2, "{pooled} {blobs}");
    let archive = Archive::from_bytes(bytes).unwrap();
    archive.verify().unwrap();
    for (name, v) in env.iter() {
        assert_eq!(&archive.get(name).unwrap(), v);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Any mix of sizes around the threshold round-trips bit for bit,
    /// through a mapped file, a copied file and bytes in memory.
    #[test]
    fn values_around_the_threshold_round_trip(
        sizes in proptest::collection::vec(0usize..700, 1..12),
        texts in proptest::collection::vec(4050usize..4100, 0..4),
    ) {
        let mut env = Environment::new();
        for (k, &n) in sizes.iter().enumerate() {
            env.set(format!("t{k:02}"), tensor(n));
            env.set(format!("z{k:02}"), Value::ComplexTensor(ComplexTensor::from_vec(
                (0..n / 2).map(|i| Complex::new(i as f64, -0.0)).collect(),
            )));
        }
        for (k, &n) in texts.iter().enumerate() {
            env.set(format!("s{k}"), Value::from("é".repeat(n / 2)));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(&dir, "p.ach");
        save(&env, &path);
        let bytes = std::fs::read(&path).unwrap();
        let map = Map::of(&bytes);
        for e in &map.entries {
            let start = if e.tag == 6 || e.tag == 7 { 64 } else { 16 };
            prop_assert_eq!(e.is_inline(), start + e.stored_len.get() < 4096);
        }
        for archive in [
            Archive::open(&path).unwrap(),
            Archive::open_copied(&path).unwrap(),
            Archive::from_bytes(bytes).unwrap(),
        ] {
            archive.verify().unwrap();
            for (name, v) in env.iter() {
                prop_assert_eq!(&archive.get(name).unwrap(), v);
            }
        }
        let mut back = Environment::new();
        restore_environment(&mut back, &path, &RestoreOptions::default()).unwrap();
        prop_assert_eq!(back, env);
    }
}

/// A tensor two bindings share keeps its blob (the later binding names
/// it); a small value between them lives in the pool. The table's check
/// looked the shared blob up among every earlier entry, inline ones (whose
/// offsets are the pool's) included, and refused the writer's own archive.
#[test]
fn a_shared_tensor_with_small_values_between_its_bindings_is_read_back() {
    let t = Value::Tensor(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0]));
    let mut env = Environment::new();
    env.set("a", t.clone());
    env.set("b", Value::Number(1.0));
    env.set("b2", Value::from("between"));
    env.set("c", t);
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "shared.ach");
    save(&env, &path);
    let bytes = std::fs::read(&path).unwrap();
    let map = Map::of(&bytes);
    let (a, c) = (map.entries[0], map.entries[3]);
    assert!(!a.is_inline() && a.blob_offset.get() == c.blob_offset.get());
    assert!(map.entries[1].is_inline() && map.entries[2].is_inline());
    open_checked(bytes).unwrap().verify().unwrap();
    let mut back = Environment::new();
    restore_environment(&mut back, &path, &RestoreOptions::default()).unwrap();
    assert_eq!(back, env);
    let (Some(Value::Tensor(a)), Some(Value::Tensor(c))) = (back.get("a"), back.get("c")) else {
        panic!()
    };
    assert!(a.buffer().shares_storage_with(c.buffer()));
}

/// A copy of a small tensor counts against the memory budget like a
/// blob's, and a copy restore never keeps the table alive through a view
/// of it (a table read into memory rather than mapped).
#[test]
fn copies_of_small_tensors_count_against_the_budget_and_hold_only_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "many.ach");
    let mut env = testdata::many_small(20_000);
    env.set("zz_small", tensor(400)); // 3,200 bytes: in the pool
    env.set("zz_big", tensor(600)); // 4,800 bytes: a blob
    save(&env, &path);
    assert!(
        Archive::open(&path).unwrap().toc_len() > 1 << 20,
        "a mapped table"
    );
    for name in ["zz_small", "zz_big"] {
        let opts = LoadVarOptions {
            copy: true,
            load: LoadOptions {
                max_decoded_bytes: 1000,
                ..LoadOptions::default()
            },
            ..Default::default()
        };
        let got = env_load_var_with(&path, name, &opts);
        assert!(
            matches!(got, Err(Error::CopyTooLarge { bytes, limit: 1000, .. }) if bytes > 3000),
            "{name}: {got:?}"
        );
    }
    // A small archive: its table is read into memory at open.
    let small = path_in(&dir, "small.ach");
    let mut env = Environment::new();
    env.set("t", tensor(100));
    save(&env, &small);
    let mut back = Environment::new();
    let copy = RestoreOptions {
        copy: true,
        ..RestoreOptions::default()
    };
    restore_environment(&mut back, &small, &copy).unwrap();
    let Some(Value::Tensor(t)) = back.get("t").cloned() else {
        panic!()
    };
    assert!(!t.is_mapped());
    // Its own elements, not a view of the table's bytes.
    let shown = format!("{:?}", t.buffer());
    assert!(shown.starts_with("owned"), "{shown}");
}
