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
            matches!(&err, Error::Unsaveable { name, .. } if name == "deep"),
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

/// A `mut` reference whose value holds that same reference crashed the save
/// (and `==`, and `{:?}`) with a stack overflow; with a depth limit alone a
/// branching cycle took exponential time. It is found, and its binding is
/// skipped with a warning, or the save refused with `strict`.
#[test]
fn reference_cycle_is_refused_not_a_stack_overflow() {
    let cell = Value::new_ref(Value::Null);
    let Value::MutableRef(inner) = &cell else {
        unreachable!()
    };
    let mut rec = Record::new();
    rec.insert("me", cell.clone());
    rec.insert(
        "f",
        Value::Function(Function::Lambda {
            params: vec![],
            source: "() => 1".into(),
        }),
    );
    *inner.write().unwrap() = Value::Vector(vec![cell.clone(), Value::Record(rec)]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cycle.ach");
    let mut env = Environment::new();
    env.set("cyclic", cell.clone());
    let strict = SaveOptions {
        strict: true,
        ..SaveOptions::default()
    };
    let err = save_environment(&env, &path, &strict).unwrap_err();
    assert!(
        matches!(err, Error::CyclicReference { ref name } if name == "cyclic"),
        "{err}"
    );
    assert!(!path.exists());
    let report = save_environment(&env, &path, &SaveOptions::default()).unwrap();
    assert_eq!(report.skipped[0].name, "cyclic");
    assert!(report.written.is_empty());
    assert_eq!(cell, cell.clone());
    assert!(format!("{cell:?}").contains("<cycle>"));
    // Break the cycle so the test does not leak it.
    *inner.write().unwrap() = Value::Null;
}

/// A record with a lambda field was rebuilt field by field with a linear
/// name search per field: quadratic (40 s for 100,000 fields).
#[test]
fn large_record_with_a_lambda_field_saves_without_the_lambda() {
    let mut fields: Vec<(String, Value)> = (0..100_000)
        .map(|i| (format!("f{i}"), Value::Number(i as f64)))
        .collect();
    fields.push((
        "g".into(),
        Value::Function(Function::Lambda {
            params: vec![],
            source: "() => 0".into(),
        }),
    ));
    let mut env = Environment::new();
    env.set("wide", Value::Record(fields.into_iter().collect()));
    let (_dir, path) = save_and_open(&env);
    let Value::Record(r) = env_load_var(&path, "wide").unwrap() else {
        panic!()
    };
    assert_eq!(r.len(), 100_000);
    assert!(r.get("g").is_none());
}

/// A vector of records skipped the whole binding when one record held a
/// lambda field; the field is dropped instead, as at top level.
#[test]
fn lambda_field_inside_a_vector_of_records_is_dropped_not_the_binding() {
    let mut rec = Record::new();
    rec.insert("x", Value::Number(1.0));
    rec.insert(
        "f",
        Value::Function(Function::Lambda {
            params: vec![],
            source: "() => 0".into(),
        }),
    );
    let mut env = Environment::new();
    env.set(
        "rows",
        Value::Vector(vec![Value::Record(rec), Value::Number(2.0)]),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.ach");
    let report = save_environment(&env, &path, &SaveOptions::default()).unwrap();
    assert_eq!(report.written, ["rows"]);
    assert!(
        report.warnings.iter().any(|w| w.contains("rows[0].f")),
        "{:?}",
        report.warnings
    );
    let Value::Vector(rows) = env_load_var(&path, "rows").unwrap() else {
        panic!()
    };
    let Value::Record(first) = &rows[0] else {
        panic!()
    };
    assert_eq!(first.fields().len(), 1);
    assert_eq!(rows[1], Value::Number(2.0));
    // A lambda that is itself an element still skips the binding.
    env.set(
        "fns",
        Value::Vector(vec![Value::Function(Function::Lambda {
            params: vec![],
            source: "() => 0".into(),
        })]),
    );
    let path2 = dir.path().join("r2.ach");
    let report = save_environment(&env, &path2, &SaveOptions::default()).unwrap();
    assert_eq!(report.skipped[0].name, "fns");
}

/// New archives were always 0644 whatever the umask; they now get the mode
/// any new file in that directory gets.
#[cfg(unix)]
#[test]
fn new_archives_follow_the_umask_like_any_new_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::File::create(&plain).unwrap();
    let path = dir.path().join("a.ach");
    save_environment(&testdata::many_small(2), &path, &SaveOptions::default()).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), mode(&plain));
    // Replacing a file keeps that file's permissions.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let opts = SaveOptions {
        allow_overwrite: true,
        ..Default::default()
    };
    save_environment(&testdata::many_small(3), &path, &opts).unwrap();
    assert_eq!(mode(&path), 0o600);
}

/// A source returning fewer bytes than asked (a short ranged read) made
/// `get` panic; it is an error.
#[test]
fn a_short_read_from_a_source_is_an_error_not_a_panic() {
    use std::sync::Arc;
    struct Short(MemorySource);
    impl Source for Short {
        fn len(&self) -> u64 {
            self.0.len()
        }
        fn read(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
            // Whole reads for the table of contents; blobs come back short.
            let full = self.0.read(offset, len)?;
            if len > 1000 {
                Ok(full.slice(0, len / 2).unwrap())
            } else {
                Ok(full)
            }
        }
    }
    let mut env = Environment::new();
    env.set(
        "t",
        Value::Tensor(Tensor::from_vec(testdata::normal(4096, 2))),
    );
    let (_dir, path) = save_and_open(&env);
    let bytes = std::fs::read(&path).unwrap();
    let archive = Archive::from_source(Arc::new(Short(MemorySource::from_vec(bytes)))).unwrap();
    assert!(archive.get("t").is_err());
    assert!(!archive.verify_report().is_ok());
}
