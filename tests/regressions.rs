//! Regression tests, each named after the bug it pins.

use achronyme_env::*;

fn save_and_open(env: &Environment) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.ach");
    save_environment(env, &path, &SaveOptions::default()).unwrap();
    (dir, path)
}

/// The open-time size check multiplied the element size by each dimension
/// in turn, so `[2^62, 0]` overflowed before reaching the zero and the
/// writer produced an archive its reader rejected.
#[test]
fn empty_tensor_with_huge_leading_dimension_round_trips() {
    let mut env = Environment::new();
    let t = Tensor::new(vec![1 << 62, 0], vec![]).unwrap();
    env.set("t", Value::Tensor(t.clone()));
    let c = ComplexTensor::new(vec![0, 1 << 62], vec![]).unwrap();
    env.set("c", Value::ComplexTensor(c.clone()));
    let (_dir, path) = save_and_open(&env);
    let archive = Archive::open(&path).unwrap();
    assert_eq!(archive.get("t").unwrap(), Value::Tensor(t));
    assert_eq!(archive.get("c").unwrap(), Value::ComplexTensor(c));
}

/// A tensor of more than 64 dimensions saved fine and then made the whole
/// archive unreadable; it must be refused when saving.
#[test]
fn tensor_over_64_dimensions_is_refused_at_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.ach");
    let t = Tensor::new(vec![1; 65], vec![1.0]).unwrap();
    for value in [
        Value::Tensor(t.clone()),
        Value::Vector(vec![Value::Tensor(t)]),
    ] {
        let mut env = Environment::new();
        env.set("deep", value);
        let err = save_environment(&env, &path, &SaveOptions::default()).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidName { name, .. } if name == "deep"),
            "{err}"
        );
        assert!(!path.exists());
    }
    let mut env = Environment::new();
    env.set(
        "ok",
        Value::Tensor(Tensor::new(vec![1; 64], vec![2.0]).unwrap()),
    );
    let (_dir, path) = save_and_open(&env);
    assert_eq!(env_load_var(&path, "ok").unwrap(), *env.get("ok").unwrap());
}

/// Decoding a record checked each field name against every earlier one, so
/// a crafted record of many fields took quadratic time (minutes for 80,000).
/// With the linear check this many fields decode at once.
#[test]
fn record_with_many_fields_decodes_in_linear_time() {
    let fields: Record = (0..200_000)
        .map(|i| (format!("f{i}"), Value::Number(i as f64)))
        .collect();
    let mut env = Environment::new();
    env.set("wide", Value::Record(fields));
    let (_dir, path) = save_and_open(&env);
    let Value::Record(r) = env_load_var(&path, "wide").unwrap() else {
        panic!("not a record")
    };
    assert_eq!(r.len(), 200_000);
    assert_eq!(r.get("f199999"), Some(&Value::Number(199_999.0)));
}
