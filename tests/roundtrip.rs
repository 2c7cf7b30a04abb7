//! Round trips: every value type, nested, with exact (bitwise) equality,
//! through a real file: `save_environment` -> `Archive::open`/`get` and
//! `restore_environment`.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::fs;

use achronyme_env::*;
use common::*;
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Any f64 bit pattern, with the special ones (NaN payloads, signalling NaN,
/// -0.0, infinities, subnormals) drawn often.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<u64>(),
        1 => prop::sample::select(vec![
            0x7FF8_0000_DEAD_BEEF_u64, // quiet NaN with a payload
            0x7FF0_0000_0000_0001,     // signalling NaN
            0xFFF8_0000_0000_0000,     // negative NaN
            (-0.0f64).to_bits(),
            0,
            f64::INFINITY.to_bits(),
            f64::NEG_INFINITY.to_bits(),
            1, // smallest subnormal
            f64::MAX.to_bits(),
        ]),
    ]
    .prop_map(f64::from_bits)
}

/// Any UTF-8 text, NUL and the empty string included.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..10).prop_map(String::from_iter)
}

/// A binding name: non-empty UTF-8 without NUL.
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 1..10)
        .prop_map(String::from_iter)
}

/// Shapes of 0 to 4 dimensions, sizes 0 to 3: scalars (`[]`), empty
/// tensors and zero-size dimensions in any position included.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..=3, 0..=4)
}

fn tensor() -> impl Strategy<Value = Tensor> {
    shape()
        .prop_flat_map(|s| {
            let n = s.iter().product::<usize>();
            (Just(s), prop::collection::vec(float(), n))
        })
        .prop_map(|(s, d)| Tensor::new(s, d).unwrap())
}

fn complex() -> impl Strategy<Value = Complex> {
    (float(), float()).prop_map(|(re, im)| Complex::new(re, im))
}

fn complex_tensor() -> impl Strategy<Value = ComplexTensor> {
    shape()
        .prop_flat_map(|s| {
            let n = s.iter().product::<usize>();
            (Just(s), prop::collection::vec(complex(), n))
        })
        .prop_map(|(s, d)| ComplexTensor::new(s, d).unwrap())
}

/// A record whose fields come in generation order (not sorted), so a round
/// trip that sorted them would fail.
fn record(inner: impl Strategy<Value = Value>) -> impl Strategy<Value = Record> {
    prop::collection::vec((text(), inner), 0..4).prop_map(|fields| fields.into_iter().collect())
}

fn edge(inner: impl Strategy<Value = Value>) -> impl Strategy<Value = Edge> {
    (text(), text(), any::<bool>(), record(inner)).prop_map(|(from, to, directed, properties)| {
        Edge {
            from,
            to,
            directed,
            properties,
        }
    })
}

/// Every saveable value, nested up to a few levels.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        float().prop_map(Value::Number),
        any::<bool>().prop_map(Value::Boolean),
        text().prop_map(Value::String),
        complex().prop_map(Value::Complex),
        tensor().prop_map(Value::Tensor),
        complex_tensor().prop_map(Value::ComplexTensor),
        text().prop_map(|s| Value::Function(Function::Builtin(s))),
    ];
    leaf.prop_recursive(4, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Vector),
            record(inner.clone()).prop_map(Value::Record),
            edge(inner.clone()).prop_map(Value::Edge),
            inner.prop_map(Value::new_ref),
        ]
    })
}

type Parts = (BTreeMap<String, Value>, BTreeMap<String, Value>);

fn env_parts() -> impl Strategy<Value = Parts> {
    (
        prop::collection::btree_map(name(), value(), 1..6),
        prop::collection::btree_map(name(), value(), 0..3),
    )
}

fn env_of((bindings, constants): &Parts) -> Environment {
    let mut env = Environment::new();
    for (k, v) in bindings {
        env.set(k.clone(), v.clone());
    }
    for (k, v) in constants {
        env.set_constant(k.clone(), v.clone());
    }
    env
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Save, then load every binding and constant one by one (mapped, copied
    /// and in-memory readers), verify, and restore into a fresh environment:
    /// everything equals the original bit for bit.
    #[test]
    fn every_value_round_trips(parts in env_parts()) {
        let (bindings, constants) = &parts;
        let env = env_of(&parts);
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(&dir, "prop.ach");

        let report = save(&env, &path);
        prop_assert_eq!(&report.written, &bindings.keys().cloned().collect::<Vec<_>>());
        prop_assert_eq!(
            &report.constants_written,
            &constants.keys().cloned().collect::<Vec<_>>()
        );
        prop_assert!(report.skipped.is_empty());
        prop_assert!(report.warnings.is_empty());
        prop_assert_eq!(report.bytes, fs::metadata(&path).unwrap().len());

        let archive = Archive::open(&path).unwrap();
        let info = archive.info();
        prop_assert_eq!(&info.bindings, &bindings.keys().cloned().collect::<Vec<_>>());
        prop_assert_eq!(info.num_constants, constants.len() as u64);
        for (name, v) in bindings {
            let loaded = archive.get(name).unwrap();
            prop_assert_eq!(&loaded, v, "binding {:?}", name);
            // Tensors with blobs of their own are views of the file;
            // smaller ones live in the table's value pool (format 1.4).
            if let Value::Tensor(t) = &loaded && has_blob(t.len() * 8) {
                prop_assert!(t.is_mapped(), "top-level tensor {:?} was copied", name);
            }
            if let Value::ComplexTensor(t) = &loaded && has_blob(t.len() * 16) {
                prop_assert!(t.is_mapped(), "top-level complex tensor {:?} was copied", name);
            }
        }
        for (name, v) in constants {
            let loaded = archive
                .get_with(Section::Constants, name, LoadOptions::default())
                .unwrap();
            prop_assert_eq!(&loaded, v, "constant {:?}", name);
        }
        let verified = archive.verify().unwrap();
        prop_assert_eq!(verified.bindings_checked, (bindings.len() + constants.len()) as u64);

        // The copying readers see the same values.
        let copied = Archive::open_copied(&path).unwrap();
        let in_memory = Archive::from_bytes(fs::read(&path).unwrap()).unwrap();
        for (name, v) in bindings {
            prop_assert_eq!(&copied.get(name).unwrap(), v);
            prop_assert_eq!(&in_memory.get(name).unwrap(), v);
        }

        let mut restored = Environment::new();
        let r = restore_environment(&mut restored, &path, &RestoreOptions::default()).unwrap();
        prop_assert_eq!(r.restored.len(), bindings.len());
        prop_assert_eq!(r.constants_restored.len(), constants.len());
        prop_assert!(r.conflicts.is_empty());
        prop_assert_eq!(restored, env);
    }

    /// A single value under an arbitrary name comes back from `env_load_var`.
    #[test]
    fn any_name_round_trips(name in name(), v in value()) {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(&dir, "one.ach");
        let mut env = Environment::new();
        env.set(name.clone(), v.clone());
        save(&env, &path);
        prop_assert_eq!(env_info(&path).unwrap().bindings, vec![name.clone()]);
        prop_assert_eq!(env_load_var(&path, &name).unwrap(), v);
    }
}

// ---------------------------------------------------------------------------
// Deterministic cases
// ---------------------------------------------------------------------------

#[test]
fn every_type_environment_round_trips_bit_for_bit() {
    let env = testdata::every_type();
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "all.ach");
    save(&env, &path);

    let mut restored = Environment::new();
    restore_environment(&mut restored, &path, &RestoreOptions::default()).unwrap();
    assert_eq!(restored, env);

    // Spot checks that do not rely on Value's PartialEq.
    let Some(Value::Number(nan)) = restored.get("nan") else {
        panic!("nan missing")
    };
    assert_eq!(nan.to_bits(), 0x7FF8_0000_DEAD_BEEF);
    let Some(Value::Number(z)) = restored.get("neg_zero") else {
        panic!("neg_zero missing")
    };
    assert_eq!(z.to_bits(), (-0.0f64).to_bits());
    let Some(Value::Tensor(empty)) = restored.get("empty") else {
        panic!("empty missing")
    };
    assert_eq!(empty.shape(), &[0, 4]);
    assert!(empty.is_empty());
    let Some(Value::MutableRef(r)) = restored.get("counter") else {
        panic!("counter missing")
    };
    assert_eq!(*r.read().unwrap(), Value::Number(7.0));
    assert_eq!(
        restored.constant("PI"),
        Some(&Value::Number(std::f64::consts::PI))
    );
}

#[test]
fn value_equality_is_bitwise_so_round_trips_are_exact() {
    // Guards the premise of the property tests: if PartialEq compared floats
    // numerically, NaN round trips would fail and -0.0 == 0.0 would hide a
    // lost sign.
    let nan = f64::from_bits(0x7FF8_0000_0000_0001);
    assert_eq!(Value::Number(nan), Value::Number(nan));
    assert_ne!(Value::Number(-0.0), Value::Number(0.0));
    assert_ne!(
        Value::Number(nan),
        Value::Number(f64::from_bits(0x7FF8_0000_0000_0002))
    );
    assert_ne!(
        Value::Tensor(Tensor::from_vec(vec![-0.0])),
        Value::Tensor(Tensor::from_vec(vec![0.0]))
    );
    assert_ne!(
        Value::Tensor(Tensor::new(vec![2, 1], vec![1.0, 2.0]).unwrap()),
        Value::Tensor(Tensor::new(vec![1, 2], vec![1.0, 2.0]).unwrap())
    );
}

#[test]
fn record_field_order_is_kept_not_sorted() {
    let mut inner = Record::new();
    inner.insert("zeta", Value::Number(1.0));
    inner.insert("alpha", Value::Number(2.0));
    let mut rec = Record::new();
    rec.insert("z", Value::from("last letter, first field"));
    rec.insert("a", Value::Record(inner));
    rec.insert("m", Value::Null);
    let mut env = Environment::new();
    env.set("rec", Value::Record(rec));
    env.set(
        "edge",
        Value::Edge(Edge {
            from: "n1".into(),
            to: "n2".into(),
            directed: false,
            properties: [
                ("w".to_string(), Value::Number(3.0)),
                ("c".to_string(), Value::from("red")),
            ]
            .into_iter()
            .collect(),
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "rec.ach");
    save(&env, &path);

    let Value::Record(back) = env_load_var(&path, "rec").unwrap() else {
        panic!("not a record")
    };
    let order: Vec<&str> = back.fields().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(order, ["z", "a", "m"]);
    let Some(Value::Record(inner)) = back.get("a") else {
        panic!("inner record missing")
    };
    let order: Vec<&str> = inner.fields().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(order, ["zeta", "alpha"]);
    let Value::Edge(e) = env_load_var(&path, "edge").unwrap() else {
        panic!("not an edge")
    };
    let order: Vec<&str> = e
        .properties
        .fields()
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(order, ["w", "c"]);
    assert!(!e.directed);
}

#[test]
fn constants_section_round_trips_and_can_be_left_out() {
    let mut env = Environment::new();
    env.set("x", Value::Number(1.0));
    env.set_constant("PI", Value::Number(std::f64::consts::PI));
    env.set_constant("E", Value::Number(std::f64::consts::E));
    env.set_constant("i", Value::Complex(Complex::new(0.0, 1.0)));
    // A constant may share its name with a binding: the sections are separate.
    env.set_constant("x", Value::from("the constant x"));
    let dir = tempfile::tempdir().unwrap();

    let with = path_in(&dir, "with.ach");
    let report = save(&env, &with);
    assert_eq!(report.constants_written, ["E", "PI", "i", "x"]);
    let archive = Archive::open(&with).unwrap();
    assert_eq!(archive.info().num_constants, 4);
    assert_eq!(archive.info().bindings, ["x"]);
    assert_eq!(
        archive.names(Section::Constants).collect::<Vec<_>>(),
        ["E", "PI", "i", "x"]
    );
    assert_eq!(archive.get("x").unwrap(), Value::Number(1.0));
    assert_eq!(
        archive
            .get_with(Section::Constants, "x", LoadOptions::default())
            .unwrap(),
        Value::from("the constant x")
    );
    let mut back = Environment::new();
    restore_environment(&mut back, &with, &RestoreOptions::default()).unwrap();
    assert_eq!(back, env);

    // include_constants: false at restore leaves the constants out.
    let mut no_consts = Environment::new();
    let r = restore_environment(
        &mut no_consts,
        &with,
        &RestoreOptions {
            include_constants: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.constants_restored.is_empty());
    assert_eq!(no_consts.constants().count(), 0);
    assert_eq!(no_consts.get("x"), Some(&Value::Number(1.0)));

    // include_constants: false at save writes none.
    let without = path_in(&dir, "without.ach");
    let report = save_environment(
        &env,
        &without,
        &SaveOptions {
            include_constants: false,
            ..fast()
        },
    )
    .unwrap();
    assert!(report.constants_written.is_empty());
    let info = env_info(&without).unwrap();
    assert_eq!(info.num_constants, 0);
    assert_eq!(info.entries.len(), 1);
}

#[test]
fn empty_environment_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "empty.ach");
    let report = save(&Environment::new(), &path);
    assert!(report.written.is_empty());
    let archive = Archive::open(&path).unwrap();
    assert!(archive.is_empty());
    assert_eq!(archive.info().num_bindings, 0);
    archive.verify().unwrap();
    let mut env = Environment::new();
    env.set("kept", Value::Null);
    let before = env.clone();
    restore_environment(&mut env, &path, &RestoreOptions::default()).unwrap();
    assert_eq!(env, before);
}

#[test]
fn unusual_tensor_shapes_round_trip_as_views() {
    let shapes: &[&[usize]] = &[
        &[],
        &[0],
        &[1],
        &[0, 4],
        &[4, 0],
        &[2, 0, 3],
        &[1, 1, 1, 1, 1, 7],
    ];
    let mut env = Environment::new();
    for (i, s) in shapes.iter().enumerate() {
        env.set(format!("t{i}"), Value::Tensor(iota(s)));
        env.set(format!("c{i}"), Value::ComplexTensor(complex_iota(s)));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "shapes.ach");
    save(&env, &path);
    let archive = Archive::open(&path).unwrap();
    for (name, v) in env.iter() {
        let loaded = archive.get(name).unwrap();
        assert_eq!(&loaded, v, "{name}");
        match &loaded {
            Value::Tensor(t) => assert_eq!(t.shape(), v_shape(v), "{name}"),
            Value::ComplexTensor(t) => assert_eq!(t.shape(), v_shape(v), "{name}"),
            other => panic!("{name} came back as {other:?}"),
        }
    }
    archive.verify().unwrap();
}

fn v_shape(v: &Value) -> &[usize] {
    match v {
        Value::Tensor(t) => t.shape(),
        Value::ComplexTensor(t) => t.shape(),
        _ => &[],
    }
}

#[test]
fn name_limits_are_enforced_at_save_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();

    // 4096 bytes is the longest name; multi-byte characters count in bytes.
    let longest = "é".repeat(2048);
    assert_eq!(longest.len(), 4096);
    let mut env = Environment::new();
    env.set(longest.clone(), Value::Number(1.0));
    let ok = path_in(&dir, "ok.ach");
    save(&env, &ok);
    assert_eq!(env_load_var(&ok, &longest).unwrap(), Value::Number(1.0));

    for bad in ["x".repeat(4097), String::new(), "a\0b".to_string()] {
        let mut env = Environment::new();
        env.set("fine", Value::Null);
        env.set(bad.clone(), Value::Number(2.0));
        let path = path_in(&dir, "bad.ach");
        assert_matches!(
            save_environment(&env, &path, &fast()),
            Err(Error::InvalidName { .. })
        );
        assert!(!path.exists(), "a refused save left {path:?}");
    }
    assert_eq!(dir_entries(dir.path()), ["ok.ach"]);
}

#[test]
fn a_restored_environment_can_be_saved_again_identically() {
    // Mapped views in the environment are written from their borrowed bytes.
    let env = testdata::every_type();
    let dir = tempfile::tempdir().unwrap();
    let first = path_in(&dir, "first.ach");
    let second = path_in(&dir, "second.ach");
    save(&env, &first);
    let mut restored = Environment::new();
    restore_environment(&mut restored, &first, &RestoreOptions::default()).unwrap();
    save(&restored, &second);

    let a = fs::read(&first).unwrap();
    let b = fs::read(&second).unwrap();
    assert_eq!(a.len(), b.len());
    // Only the header's timestamp (bytes 16..24) and the trailer's checksums
    // (which cover the header) may differ.
    let trailer = a.len() - 64;
    assert_eq!(a[..16], b[..16]);
    assert_eq!(a[24..trailer], b[24..trailer]);
    let mut again = Environment::new();
    restore_environment(&mut again, &second, &RestoreOptions::default()).unwrap();
    assert_eq!(again, env);
}
