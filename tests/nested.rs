//! Format 1.3: tensors nested in other values get blobs of their own, and
//! storage shared between places is written once (layout.md 3.6). Round
//! trips keep values and their sharing, nested tensors load as mapped
//! views, and every reader rule of the new structures refuses bytes that
//! break it.

#[macro_use]
mod common;

use achronyme_env::layout::{
    FORMAT_VERSION_MINOR_COMPACT, SECTION_STORAGE, STORAGE_NAME_LEN, TAG_BLOB_REF,
};
use achronyme_env::*;
use common::*;
use proptest::prelude::*;

/// Elements of a tensor just over the 64 KiB threshold.
const BIG: usize = 8200;

fn tensor(n: usize, seed: u64) -> Value {
    let data = (0..n)
        .map(|i| (i as f64 + seed as f64 * 0.5).sin())
        .collect();
    Value::Tensor(Tensor::from_vec(data))
}

fn complex(n: usize, seed: u64) -> Value {
    let data = (0..n)
        .map(|i| Complex::new(i as f64 + seed as f64, -(i as f64)))
        .collect();
    Value::ComplexTensor(ComplexTensor::from_vec(data))
}

fn bytes_of(v: &Value) -> usize {
    match v {
        Value::Tensor(t) => t.len() * 8,
        Value::ComplexTensor(t) => t.len() * 16,
        _ => 0,
    }
}

/// True when `a` and `b` are tensors sharing one storage.
fn shared(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Tensor(x), Value::Tensor(y)) => x.buffer().shares_storage_with(y.buffer()),
        (Value::ComplexTensor(x), Value::ComplexTensor(y)) => {
            x.buffer().shares_storage_with(y.buffer())
        }
        _ => false,
    }
}

fn is_mapped(v: &Value) -> bool {
    match v {
        Value::Tensor(t) => t.is_mapped(),
        Value::ComplexTensor(t) => t.is_mapped(),
        _ => false,
    }
}

/// Every tensor in `v`, in a fixed walk order, with its depth (0: `v`).
fn tensors(v: &Value, depth: usize, out: &mut Vec<(usize, Value)>) {
    match v {
        Value::Tensor(_) | Value::ComplexTensor(_) => out.push((depth, v.clone())),
        Value::Vector(items) => items.iter().for_each(|x| tensors(x, depth + 1, out)),
        Value::Record(r) => r
            .fields()
            .iter()
            .for_each(|(_, x)| tensors(x, depth + 1, out)),
        Value::Edge(e) => e
            .properties
            .fields()
            .iter()
            .for_each(|(_, x)| tensors(x, depth + 1, out)),
        Value::MutableRef(r) => tensors(&r.read().unwrap(), depth + 1, out),
        _ => {}
    }
}

/// Every tensor of the environment's bindings, in name order.
fn all_tensors(env: &Environment) -> Vec<(usize, Value)> {
    let mut out = Vec::new();
    for (_, v) in env.iter() {
        tensors(v, 0, &mut out);
    }
    out
}

/// A value tree over a pool of tensors: the proptest shape.
#[derive(Clone, Debug)]
enum Node {
    Pool(usize),
    Num(f64),
    Rec(Vec<Node>),
    Vec(Vec<Node>),
    Edge(Vec<Node>),
    Ref(Box<Node>),
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        (0..4usize).prop_map(Node::Pool),
        any::<f64>().prop_map(Node::Num)
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(Node::Rec),
            prop::collection::vec(inner.clone(), 1..3).prop_map(Node::Vec),
            prop::collection::vec(inner.clone(), 1..3).prop_map(Node::Edge),
            inner.prop_map(|n| Node::Ref(Box::new(n))),
        ]
    })
}

fn build(n: &Node, pool: &[Value]) -> Value {
    let fields = |items: &[Node]| -> Record {
        items
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("f{i}"), build(x, pool)))
            .collect()
    };
    match n {
        Node::Pool(i) => pool[*i].clone(),
        Node::Num(x) => Value::Number(*x),
        Node::Rec(items) => Value::Record(fields(items)),
        Node::Vec(items) => Value::Vector(items.iter().map(|x| build(x, pool)).collect()),
        Node::Edge(items) => Value::Edge(Edge {
            from: "a".into(),
            to: "b".into(),
            directed: true,
            properties: fields(items),
        }),
        Node::Ref(x) => Value::new_ref(build(x, pool)),
    }
}

/// The pool: big and small, real and complex tensors.
fn pool(sizes: &[(bool, bool)]) -> Vec<Value> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &(big, real))| {
            let n = if big { BIG + i } else { 10 + i };
            match real {
                true => tensor(n, i as u64),
                false => complex(n / 2 + 1, i as u64),
            }
        })
        .collect()
}

/// Checks that `restored` equals `env` and keeps its sharing: every two
/// places sharing a storage in `env` share one after the restore when
/// both are top-level bindings or large enough for blobs of their own
/// (smaller nested ones are inline copies).
fn check_restored(env: &Environment, restored: &Environment, mapped: bool) {
    assert_eq!(
        restored.iter().collect::<Vec<_>>(),
        env.iter().collect::<Vec<_>>()
    );
    let before = all_tensors(env);
    let after = all_tensors(restored);
    assert_eq!(before.len(), after.len());
    let own_blob = |(depth, v): &(usize, Value)| *depth == 0 || bytes_of(v) >= 64 << 10;
    // A top-level tensor under 4 KiB with a frame is kept in the table's
    // value pool (format 1.4), which a small archive reads into memory.
    let viewed = |(depth, v): &(usize, Value)| {
        (*depth == 0 && bytes_of(v) + 64 >= 4096) || bytes_of(v) >= 64 << 10
    };
    for i in 0..before.len() {
        if mapped && viewed(&before[i]) && bytes_of(&before[i].1) > 0 {
            assert!(is_mapped(&after[i].1), "tensor {i} is not a mapped view");
        }
        for j in i + 1..before.len() {
            if shared(&before[i].1, &before[j].1) && own_blob(&before[i]) && own_blob(&before[j]) {
                assert!(
                    shared(&after[i].1, &after[j].1),
                    "tensors {i} and {j} shared storage before the round trip, not after"
                );
            }
        }
    }
}

fn round_trip(env: &Environment, options: &SaveOptions, copy: bool) -> (Environment, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "nested.ach");
    save_environment(env, &path, options).unwrap();
    let mut restored = Environment::new();
    let opts = RestoreOptions {
        copy,
        ..RestoreOptions::default()
    };
    restore_environment(&mut restored, &path, &opts).unwrap();
    (restored, std::fs::read(&path).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any values over a pool of shared tensors come back equal, sharing
    /// what they shared, large nested tensors as views of the file; the
    /// archive holds each large storage once.
    #[test]
    fn nested_and_shared_tensors_round_trip(
        sizes in prop::collection::vec((any::<bool>(), any::<bool>()), 4),
        nodes in prop::collection::vec(node(), 1..5),
        packed_save in any::<bool>(),
        copy in any::<bool>(),
    ) {
        let pool = pool(&sizes);
        let mut env = Environment::new();
        for (i, n) in nodes.iter().enumerate() {
            env.set(format!("v{i}"), build(n, &pool));
        }
        let options = if packed_save { packed() } else { fast() };
        let (restored, bytes) = round_trip(&env, &options, copy);
        check_restored(&env, &restored, !copy && !packed_save);
        // Each large tensor's elements are in the file at most once.
        let big_bytes: usize = pool.iter().map(bytes_of).filter(|&b| b >= 64 << 10).sum();
        if !packed_save {
            prop_assert!(bytes.len() < big_bytes + (64 << 10), "{} bytes", bytes.len());
        }
        Archive::from_bytes(bytes).unwrap().verify().unwrap();
    }
}

/// The environment of most tests below: a record and a vector sharing a
/// large tensor, a binding sharing another, and a small scalar.
fn model_env() -> Environment {
    let w = tensor(BIG, 1);
    let z = complex(BIG, 2);
    let mut env = Environment::new();
    env.set(
        "model",
        rec(&[("w", w.clone()), ("z", z), ("lr", Value::Number(0.1))]),
    );
    env.set(
        "history",
        Value::Vector(vec![w.clone(), Value::Number(1.0)]),
    );
    env.set("w", w);
    env
}

#[test]
fn a_record_field_and_a_vector_element_share_a_bindings_blob() {
    let env = model_env();
    let bytes = archive_bytes(&env);
    let archive = Archive::from_bytes(bytes.clone()).unwrap();
    assert_eq!(archive.format_version(), (1, FORMAT_VERSION_MINOR_COMPACT));
    // Bindings only: the storage entry of `z` is not one.
    assert_eq!(archive.info().bindings, ["history", "model", "w"]);
    assert_eq!(archive.info().entries.len(), 3);
    assert_eq!(archive.info().num_bindings, 3);
    let map = Map::of(&bytes);
    assert_eq!(map.entries.len(), 4);
    let storage = &map.entries[3];
    assert_eq!(storage.section, SECTION_STORAGE);
    assert_eq!(storage.name_len.get() as usize, STORAGE_NAME_LEN);
    // Blobs: model, history (both small), w, and z in the storage section.
    assert!(
        bytes.len() < 2 * BIG * 8 + BIG * 16 + 4096,
        "{} bytes",
        bytes.len()
    );
    archive.verify().unwrap();
    let (restored, _) = round_trip(&env, &fast(), false);
    check_restored(&env, &restored, true);
    let Some(Value::Record(model)) = restored.get("model") else {
        panic!()
    };
    assert!(shared(model.get("w").unwrap(), restored.get("w").unwrap()));
}

#[test]
fn two_bindings_sharing_storage_share_one_blob() {
    let t = tensor(100, 3);
    let mut env = Environment::new();
    env.set("a", t.clone());
    env.set("b", t);
    let (bytes, map) = two_sharing();
    let (a, b) = (&map.entries[0], &map.entries[1]);
    assert_eq!(a.blob_offset.get(), b.blob_offset.get());
    assert_eq!(a.hash_index.get(), b.hash_index.get());
    let archive = Archive::from_bytes(bytes).unwrap();
    assert_eq!(archive.format_version(), (1, FORMAT_VERSION_MINOR_COMPACT));
    archive.verify().unwrap();
    for copy in [false, true] {
        let (restored, _) = round_trip(&env, &fast(), copy);
        assert!(shared(
            restored.get("a").unwrap(),
            restored.get("b").unwrap()
        ));
        assert_eq!(restored.get("a"), env.get("a"));
    }
}

/// Small nested tensors stay inline: an archive that shares nothing has no
/// storage entry and no shared blob, whatever its checksum.
#[test]
fn without_sharing_nothing_is_stored_apart() {
    let mut env = testdata::every_type();
    env.set("small", rec(&[("t", tensor(100, 1))]));
    let sha = SaveOptions {
        checksum: Checksum::Sha256,
        ..fast()
    };
    for opts in [fast(), sha] {
        let archive = Archive::from_bytes(archive_bytes_with(&env, &opts)).unwrap();
        assert_eq!(archive.format_version(), (1, FORMAT_VERSION_MINOR_COMPACT));
        let info = archive.info();
        assert_eq!(
            (info.storage_blobs, info.storage_bytes, info.shared_entries),
            (0, 0, 0)
        );
        assert_eq!(
            info.entries.len(),
            env.iter().count() + env.constants().count()
        );
    }
}

/// `let checkpoint = snapshot_env()` then a save: the snapshot's tensors
/// share the bindings' storage, so the archive barely grows.
#[test]
fn a_snapshot_in_a_variable_adds_at_most_one_percent() {
    let mut env = Environment::new();
    for i in 0..4 {
        env.set(format!("t{i}"), tensor(1 << 17, i));
    }
    env.set("x", Value::Number(3.0));
    let without = archive_bytes(&env).len();
    let snap = snapshot_env(&env, &SnapshotOptions::default()).unwrap();
    env.set("checkpoint", snap.to_value());
    let with = archive_bytes(&env).len();
    eprintln!("archive without the snapshot {without} bytes, with it {with} bytes");
    assert!(with as f64 <= 1.01 * without as f64, "{with} vs {without}");
    // And the restored snapshot shares the restored bindings' storage.
    let (restored, _) = round_trip(&env, &fast(), false);
    let back = Snapshot::from_value(restored.get("checkpoint").unwrap()).unwrap();
    assert!(shared(back.get("t0").unwrap(), restored.get("t0").unwrap()));
}

/// The bytes of `env` and the offset of the first blob reference in the
/// payload of binding `name` (the byte after its 0x0C tag).
fn reference_in(env: &Environment, name: &str) -> (Vec<u8>, Map, usize, usize) {
    let bytes = archive_bytes(env);
    let map = Map::of(&bytes);
    let i = map.index_of(&bytes, name);
    let payload = map.payload(i);
    let at = bytes[payload.clone()]
        .windows(9)
        .position(|w| w[0] == TAG_BLOB_REF && u64::from_le_bytes(w[1..].try_into().unwrap()) < 16)
        .expect("a blob reference");
    (bytes.clone(), map, i, payload.start + at + 1)
}

fn invalid_value(bytes: Vec<u8>, name: &str) -> String {
    let archive = Archive::from_bytes(bytes).unwrap();
    let err = archive.get(name).unwrap_err();
    assert!(!archive.verify_report().is_ok());
    match err {
        Error::InvalidValue { reason, .. } => reason,
        other => panic!("expected InvalidValue, got {other:?}"),
    }
}

#[test]
fn a_reference_past_the_last_entry_is_refused() {
    let (mut bytes, map, i, at) = reference_in(&model_env(), "model");
    bytes[at..at + 8].copy_from_slice(&4u64.to_le_bytes());
    map.fix_digest(&mut bytes, i);
    assert_eq!(
        invalid_value(bytes.clone(), "model"),
        "blob reference names no entry"
    );
    bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    map.fix_digest(&mut bytes, i);
    assert_eq!(
        invalid_value(bytes, "model"),
        "blob reference names no entry"
    );
}

#[test]
fn a_reference_to_an_entry_that_is_not_a_tensor_is_refused() {
    let (mut bytes, map, i, at) = reference_in(&model_env(), "model");
    // Entry 0 is `history`, a vector.
    bytes[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
    map.fix_digest(&mut bytes, i);
    assert_eq!(
        invalid_value(bytes, "model"),
        "blob reference names an entry that is not a tensor"
    );
}

/// A reference takes its kind and shape from the entry it names: pointed
/// at the other tensor entry, `model.w` becomes that tensor.
#[test]
fn a_reference_decodes_as_its_targets_kind_and_shape() {
    let env = model_env();
    let (mut bytes, map, i, at) = reference_in(&env, "model");
    // `model.w` refers to `w` (entry 2); the storage entry 3 is `model.z`.
    assert_eq!(u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()), 2);
    bytes[at..at + 8].copy_from_slice(&3u64.to_le_bytes());
    map.fix_digest(&mut bytes, i);
    let archive = Archive::from_bytes(bytes).unwrap();
    let Value::Record(model) = archive.get("model").unwrap() else {
        panic!()
    };
    let Some(Value::Record(original)) = env.get("model") else {
        panic!()
    };
    assert_eq!(model.get("w"), original.get("z"));
    assert_eq!(model.get("z"), original.get("z"));
    assert!(shared(model.get("w").unwrap(), model.get("z").unwrap()));
}

/// The bytes and map of an archive of `bindings` (in name order).
fn archive_of(bindings: &[(&str, Value)]) -> (Vec<u8>, Map) {
    let mut env = Environment::new();
    for (name, v) in bindings {
        env.set(*name, v.clone());
    }
    let bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    (bytes, map)
}

/// Two bindings sharing one tensor's storage, so one blob.
fn two_sharing() -> (Vec<u8>, Map) {
    let t = tensor(100, 3);
    archive_of(&[("a", t.clone()), ("b", t)])
}

fn rule(i: u64, reason: &str) -> (Part, String) {
    (Part::Entry(i), reason.to_string())
}

#[test]
fn a_storage_entry_that_is_not_a_tensor_is_refused() {
    let (bytes, map) = archive_of(&[("a", Value::Number(1.0))]);
    let refused = refused_by_rule(&bytes, &map, |b| {
        b[map.entry_field(0, field::SECTION)] = SECTION_STORAGE
    });
    assert_eq!(refused, rule(0, "storage entry is not a tensor"));
}

#[test]
fn a_shared_blob_must_be_described_as_its_owner_describes_it() {
    let (bytes, map) = two_sharing();
    assert_eq!(map.entries[0].blob_offset, map.entries[1].blob_offset);
    // stored_len, raw_len, hash_index, hash_count, codec: each refused,
    // by this rule or one it meets first.
    use field::{CODEC, HASH_COUNT, HASH_INDEX, RAW_LEN, STORED_LEN};
    for f in [STORED_LEN, RAW_LEN, HASH_INDEX, HASH_COUNT, CODEC] {
        // The field's most significant byte.
        let at = map.entry_field(1, f) + map.field_width(f) - 1;
        let (part, reason) = refused_by_rule(&bytes, &map, |b| b[at] ^= 0x10);
        assert_eq!(part, Part::Entry(1), "field {f}: {reason}");
    }
    // Digests alone, every other rule still met: the alias rule.
    let other = map.entries[0].hash_index.get() + 1;
    let refused = refused_by_rule(&bytes, &map, |b| {
        map.put_field(b, 1, HASH_INDEX, other.into())
    });
    assert_eq!(
        refused,
        rule(1, "shared blob differs from the entry that owns it")
    );
    // A shape with as many elements but other dimensions: [2, 50] -> [50, 2].
    let t = Value::Tensor(Tensor::new(vec![2, 50], (0..100).map(f64::from).collect()).unwrap());
    let (bytes, map) = archive_of(&[("a", t.clone()), ("b", t)]);
    let dims = map.dims_at();
    let refused = refused_by_rule(&bytes, &map, |b| {
        b[dims + 16..dims + 24].copy_from_slice(&50u64.to_le_bytes());
        b[dims + 24..dims + 32].copy_from_slice(&2u64.to_le_bytes());
    });
    assert_eq!(
        refused,
        rule(1, "shared blob differs from the entry that owns it")
    );
}

#[test]
fn a_blob_offset_that_is_no_earlier_entrys_blob_is_refused() {
    let (bytes, map) = two_sharing();
    let refused = refused_by_rule(&bytes, &map, |b| {
        map.put_field(b, 1, field::BLOB_OFFSET, 64 + 128)
    });
    assert_eq!(refused, rule(1, "blob is not where the previous one ended"));
}

/// A non-tensor at an earlier entry's blob is simply misplaced: only
/// tensors share blobs. (Strings large enough for blobs of their own.)
#[test]
fn only_tensors_share_a_blob() {
    let same = Value::from("same".repeat(1100));
    let (bytes, map) = archive_of(&[("a", same.clone()), ("b", same)]);
    let a = map.entries[0];
    let mut b = map.entries[1];
    b.blob_offset = a.blob_offset;
    b.hash_index = a.hash_index;
    let refused = refused_by_rule(&bytes, &map, |bytes| map.put_entry(bytes, 1, &b));
    assert_eq!(refused, rule(1, "blob is not where the previous one ended"));
}

#[test]
fn an_entry_cannot_be_a_blob_reference() {
    let (bytes, map) = archive_of(&[("a", Value::Number(1.0))]);
    let refused = refused_by_rule(&bytes, &map, |b| {
        b[map.entry_field(0, field::TAG)] = TAG_BLOB_REF
    });
    assert_eq!(refused, rule(0, "unknown type tag"));
}

/// A damaged tensor that a value refers to fails that value's load with
/// the tensor blob's own checksum error.
#[test]
fn a_damaged_referenced_blob_fails_the_load_with_its_checksum_error() {
    let env = model_env();
    let mut bytes = archive_bytes(&env);
    let map = Map::of(&bytes);
    // The storage entry: `z`.
    let z = &map.entries[3];
    bytes[z.blob_offset.get() as usize + 64 + 100] ^= 1;
    let archive = Archive::from_bytes(bytes).unwrap();
    // Named by the binding loaded and the tensor's entry.
    assert_matches!(
        archive.get("model"),
        Err(Error::ChecksumMismatch { ref name, .. })
            if name == "model, at its nested tensor 0000000000000000"
    );
    let unchecked = LoadOptions {
        verify_checksum: false,
        ..LoadOptions::default()
    };
    assert!(
        archive
            .get_with(Section::Bindings, "model", unchecked)
            .is_ok()
    );
    assert_eq!(archive.verify_report().damaged.len(), 1);
}

/// A value with references loads within the memory budget: a compressed
/// target costs its raw bytes, a mapped one nothing.
#[test]
fn referenced_tensors_count_against_the_budget() {
    let mut env = Environment::new();
    let zeros = Value::Tensor(Tensor::from_vec(vec![0.0; BIG]));
    env.set("r", rec(&[("z", zeros)]));
    let small = LoadOptions {
        max_decoded_bytes: 4096,
        ..LoadOptions::default()
    };
    let mapped = Archive::from_bytes(archive_bytes(&env)).unwrap();
    // Held in memory, the view costs its bytes.
    assert_matches!(
        mapped.get_with(Section::Bindings, "r", small),
        Err(Error::TooLarge { .. })
    );
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "r.ach");
    save_environment(&env, &path, &fast()).unwrap();
    let archive = Archive::open(&path).unwrap();
    let Value::Record(r) = archive.get_with(Section::Bindings, "r", small).unwrap() else {
        panic!()
    };
    assert!(is_mapped(r.get("z").unwrap()));
    let path = path_in(&dir, "p.ach");
    save_environment(&env, &path, &packed()).unwrap();
    let archive = Archive::open(&path).unwrap();
    assert_matches!(
        archive.get_with(Section::Bindings, "r", small),
        Err(Error::TooLarge { .. })
    );
    assert_eq!(archive.get("r").unwrap(), *env.get("r").unwrap());
}

/// `stored_digests` (what `ach diff` compares) covers the tensors a value
/// refers to: a changed nested tensor changes its record's digests.
#[test]
fn stored_digests_cover_the_blobs_a_value_refers_to() {
    let digests = |t: Value| {
        let mut env = Environment::new();
        env.set("r", rec(&[("t", t)]));
        let archive = Archive::from_bytes(archive_bytes(&env)).unwrap();
        archive.stored_digests(Section::Bindings, "r").unwrap()
    };
    let same = digests(tensor(BIG, 1));
    assert_eq!(same, digests(tensor(BIG, 1)));
    // The record's own blob, then the tensor's (one 1 MiB chunk).
    assert_eq!(same.len(), 2);
    let Value::Tensor(mut t) = tensor(BIG, 1) else {
        panic!()
    };
    t.data_mut()[BIG - 1] += 1.0;
    assert_ne!(same, digests(Value::Tensor(t)));
}

/// A restore that copies counts a shared tensor once: two bindings and a
/// record field sharing 64 KiB restore within a budget of one copy (plus
/// the record), not three; and `env_load_var` copies a nested tensor.
#[test]
fn a_copying_restore_counts_a_shared_tensor_once() {
    let t = tensor(BIG, 5);
    let mut env = Environment::new();
    env.set("a", t.clone());
    env.set("b", t.clone());
    env.set("r", rec(&[("t", t)]));
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "shared.ach");
    save_environment(&env, &path, &fast()).unwrap();
    let one_copy = (BIG * 8) as u64;
    let restore = |budget: u64| {
        let mut restored = Environment::new();
        let opts = RestoreOptions {
            max_decoded_bytes: budget,
            ..RestoreOptions::default()
        };
        restore_environment(&mut restored, &path, &opts).map(|_| restored)
    };
    let restored = restore(one_copy + 4096).unwrap();
    let (a, b) = (restored.get("a").unwrap(), restored.get("b").unwrap());
    assert!(!is_mapped(a) && shared(a, b));
    let Some(Value::Record(r)) = restored.get("r") else {
        panic!()
    };
    assert!(shared(a, r.get("t").unwrap()));
    assert_matches!(restore(one_copy - 1), Err(Error::CopyTooLarge { .. }));
    let Value::Record(r) = env_load_var(&path, "r").unwrap() else {
        panic!()
    };
    assert!(!is_mapped(r.get("t").unwrap()));
    assert_eq!(r.get("t"), env.get("a"));
}
