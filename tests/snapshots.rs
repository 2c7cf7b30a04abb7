//! In-memory snapshots (spec 3.2): shared tensor storage, `mut` references
//! copied so that later writes do not leak in, filters and restore modes.

use std::sync::{Arc, RwLock};

use achronyme_env::*;

fn tensor_of(v: Option<&Value>) -> &Tensor {
    match v {
        Some(Value::Tensor(t)) => t,
        other => panic!("not a tensor: {other:?}"),
    }
}

fn ref_of(v: Option<&Value>) -> &Arc<RwLock<Value>> {
    match v {
        Some(Value::MutableRef(r)) => r,
        other => panic!("not a reference: {other:?}"),
    }
}

fn take(env: &Environment) -> Snapshot {
    snapshot_env(env, &SnapshotOptions::default()).unwrap()
}

#[test]
fn a_snapshot_shares_tensor_storage_and_later_writes_do_not_leak_in() {
    let mut env = Environment::new();
    env.set("t", Value::Tensor(Tensor::from_vec(vec![1.0; 4096])));
    let snapshot = take(&env);
    // No copy: the snapshot's tensor is the environment's storage.
    assert!(
        tensor_of(snapshot.get("t"))
            .buffer()
            .shares_storage_with(tensor_of(env.get("t")).buffer())
    );

    let Some(Value::Tensor(t)) = env.get_mut("t") else {
        panic!()
    };
    t.data_mut()[0] = -7.0;
    // The write copied the environment's tensor; the snapshot kept its own.
    assert!(
        !tensor_of(snapshot.get("t"))
            .buffer()
            .shares_storage_with(tensor_of(env.get("t")).buffer())
    );
    assert_eq!(tensor_of(snapshot.get("t")).data()[0], 1.0);
    assert_eq!(tensor_of(env.get("t")).data()[0], -7.0);

    // Restoring shares again, and a write after the restore does not reach
    // the snapshot either.
    let opts = SnapshotRestoreOptions {
        overwrite: true,
        ..Default::default()
    };
    restore_snapshot(&mut env, &snapshot, &opts).unwrap();
    assert!(
        tensor_of(snapshot.get("t"))
            .buffer()
            .shares_storage_with(tensor_of(env.get("t")).buffer())
    );
    let Some(Value::Tensor(t)) = env.get_mut("t") else {
        panic!()
    };
    t.data_mut()[1] = 3.0;
    assert_eq!(tensor_of(snapshot.get("t")).data()[..2], [1.0, 1.0]);
}

#[test]
fn tensors_loaded_from_an_archive_stay_mapped_in_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.ach");
    let mut saved = Environment::new();
    saved.set("t", Value::Tensor(Tensor::from_vec(vec![2.0; 1024])));
    let raw = SaveOptions {
        compression: Compression::None,
        ..SaveOptions::default()
    };
    save_environment(&saved, &path, &raw).unwrap();
    let mut env = Environment::new();
    let mapped = RestoreOptions {
        copy: false,
        ..RestoreOptions::default()
    };
    restore_environment(&mut env, &path, &mapped).unwrap();
    assert!(tensor_of(env.get("t")).is_mapped());
    let snapshot = take(&env);
    let kept = tensor_of(snapshot.get("t"));
    assert!(kept.is_mapped());
    assert!(
        kept.buffer()
            .shares_storage_with(tensor_of(env.get("t")).buffer())
    );
}

#[test]
fn a_mut_reference_is_copied_so_writes_through_the_old_one_do_not_leak() {
    let mut env = Environment::new();
    let cell = Arc::new(RwLock::new(Value::Number(1.0)));
    env.set("x", Value::MutableRef(cell.clone()));
    // The same reference twice, and once inside a record.
    env.set("alias", Value::MutableRef(cell.clone()));
    let mut r = Record::new();
    r.insert("value", Value::MutableRef(cell.clone()));
    env.set("counter", Value::Record(r));

    let snapshot = take(&env);
    let copied = ref_of(snapshot.get("x"));
    assert!(
        !Arc::ptr_eq(copied, &cell),
        "the snapshot holds a fresh reference"
    );
    assert!(
        Arc::ptr_eq(copied, ref_of(snapshot.get("alias"))),
        "aliases of one reference stay aliases"
    );

    *cell.write().unwrap() = Value::Number(2.0);
    assert_eq!(*copied.read().unwrap(), Value::Number(1.0));
    let Some(Value::Record(counter)) = snapshot.get("counter") else {
        panic!()
    };
    assert_eq!(
        counter.get("value"),
        Some(&Value::new_ref(Value::Number(1.0)))
    );

    // Restored references are fresh too: writing to them leaves the snapshot
    // as it was, so it can be restored again.
    let opts = SnapshotRestoreOptions {
        overwrite: true,
        ..Default::default()
    };
    restore_snapshot(&mut env, &snapshot, &opts).unwrap();
    let restored = ref_of(env.get("x")).clone();
    assert!(!Arc::ptr_eq(&restored, copied));
    assert!(!Arc::ptr_eq(&restored, &cell));
    assert!(Arc::ptr_eq(&restored, ref_of(env.get("alias"))));
    assert_eq!(*restored.read().unwrap(), Value::Number(1.0));
    *restored.write().unwrap() = Value::Number(3.0);
    assert_eq!(*copied.read().unwrap(), Value::Number(1.0));
    restore_snapshot(&mut env, &snapshot, &opts).unwrap();
    assert_eq!(*ref_of(env.get("x")).read().unwrap(), Value::Number(1.0));
}

#[test]
fn snapshot_filters_and_restore_modes() {
    let mut env = Environment::new();
    env.set("data", Value::Number(1.0));
    env.set("temp_1", Value::Number(2.0));
    env.set("model", Value::from("m"));
    env.set_constant("K", Value::Number(3.0));

    let s = snapshot_env(
        &env,
        &SnapshotOptions {
            exclude: vec!["temp_*".into()],
            include_constants: false,
            ..Default::default()
        },
    )
    .unwrap();
    let names: Vec<&str> = s.bindings().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["data", "model"]);
    assert!(s.constants().is_empty());
    let s = snapshot_env(
        &env,
        &SnapshotOptions {
            include_only: Some(vec!["d*".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.bindings().len(), 1);
    assert_eq!(s.constants().len(), 1);

    let full = take(&env);
    // Merge without overwrite (the default overwrites): existing names are
    // conflicts.
    let mut other = Environment::new();
    other.set("data", Value::Null);
    other.set_constant("K", Value::Number(0.0));
    let r = restore_snapshot(
        &mut other,
        &full,
        &SnapshotRestoreOptions {
            overwrite: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.conflicts, ["data"]);
    assert_eq!(r.constant_conflicts, ["K"]);
    assert_eq!(r.restored, ["model", "temp_1"]);
    assert_eq!(other.get("data"), Some(&Value::Null));
    assert_eq!(other.constant("K"), Some(&Value::Number(0.0)));
    // Namespace.
    let ns = SnapshotRestoreOptions {
        mode: RestoreMode::Namespace("before".into()),
        include_only: Some(vec!["data".into()]),
        ..Default::default()
    };
    restore_snapshot(&mut other, &full, &ns).unwrap();
    let Some(Value::Record(before)) = other.get("before") else {
        panic!()
    };
    assert_eq!(before.get("data"), Some(&Value::Number(1.0)));
    assert_eq!(before.len(), 1);
    // Replace: exactly the snapshot's bindings.
    other.set("later", Value::Null);
    let replace = SnapshotRestoreOptions {
        mode: RestoreMode::Replace,
        ..Default::default()
    };
    restore_snapshot(&mut other, &full, &replace).unwrap();
    assert_eq!(other.names(), ["data", "model", "temp_1"]);
    assert_eq!(other.constant("K"), Some(&Value::Number(3.0)));
    // A taken namespace is refused without overwrite, and nothing changes.
    let before = other.clone();
    let taken = SnapshotRestoreOptions {
        mode: RestoreMode::Namespace("data".into()),
        overwrite: false,
        ..Default::default()
    };
    assert!(matches!(
        restore_snapshot(&mut other, &full, &taken),
        Err(Error::NamespaceTaken { .. })
    ));
    assert_eq!(other, before);
}

#[test]
fn a_snapshot_round_trips_through_its_language_value() {
    let mut env = Environment::new();
    env.set("b", Value::Number(2.0));
    env.set("a", Value::new_ref(Value::from("x")));
    env.set_constant("K", Value::Number(1.0));
    let s = take(&env);
    let back = Snapshot::from_value(&s.to_value()).unwrap();
    assert_eq!(back, s);
    assert_eq!(Snapshot::from_value(&Value::Number(1.0)), None);
}
