//! Every example call of spec sections 3, 4, 6, 7 and 10, driven through the
//! language-level builtins with `Value` arguments, exactly as an evaluator
//! would call them. The spec's line is in a comment above each call.

#[macro_use]
mod common;

use achronyme_env::builtins::call as builtin;
use achronyme_env::*;
use common::{path, rec};

/// Calls a builtin that must succeed.
fn call(name: &str, args: &[Value], env: &mut Environment) -> Value {
    builtin(name, args, env).unwrap_or_else(|e| panic!("{name} failed: {e}"))
}

/// A record literal.
/// A vector of strings.
fn strs(items: &[&str]) -> Value {
    Value::Vector(items.iter().map(|s| Value::from(*s)).collect())
}

/// A path in `dir`, as the String value the language passes.
fn num(n: f64) -> Value {
    Value::Number(n)
}

fn tensor(data: &[f64]) -> Value {
    Value::Tensor(Tensor::from_vec(data.to_vec()))
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    match v {
        Value::Record(r) => r
            .get(name)
            .unwrap_or_else(|| panic!("no field {name} in {v:?}")),
        other => panic!("not a record: {other:?}"),
    }
}

const TRUE: Value = Value::Boolean(true);

/// A workspace like the spec's: data, results, model, a temporary and a
/// debug variable.
fn workspace() -> Environment {
    let mut env = Environment::new();
    env.set("data", tensor(&[1.0, 2.0, 3.0]));
    env.set("results", rec(&[("mean", num(2.0))]));
    env.set("model", rec(&[("weights", tensor(&[0.5, -0.5]))]));
    env.set("temp_1", num(0.0));
    env.set("debug_x", Value::from("noise"));
    env.set_constant("PI", num(std::f64::consts::PI));
    env
}

// ---------------------------------------------------------------------------
// 3.1 save_env / restore_env / env_info
// ---------------------------------------------------------------------------

#[test]
fn spec_3_1_save_env_examples() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = workspace();

    // save_env("workspace.ach")
    assert_eq!(
        call("save_env", &[path(&dir, "workspace.ach")], &mut env),
        TRUE
    );
    let info = env_info(dir.path().join("workspace.ach")).unwrap();
    assert_eq!(
        info.bindings,
        ["data", "debug_x", "model", "results", "temp_1"]
    );
    assert_eq!(info.num_constants, 1);

    // save_env("checkpoint.ach", {compress: false})
    assert_eq!(
        call(
            "save_env",
            &[
                path(&dir, "checkpoint.ach"),
                rec(&[("compress", Value::Boolean(false))])
            ],
            &mut env
        ),
        TRUE
    );
    assert!(
        !env_info(dir.path().join("checkpoint.ach"))
            .unwrap()
            .compressed
    );

    // save_env("results.ach", {
    //     include_only: ["data", "results", "model"],
    //     description: "Final results from experiment A",
    //     tags: ["experiment_a", "production"]
    // })
    let opts = rec(&[
        ("include_only", strs(&["data", "results", "model"])),
        (
            "description",
            Value::from("Final results from experiment A"),
        ),
        ("tags", strs(&["experiment_a", "production"])),
    ]);
    assert_eq!(
        call("save_env", &[path(&dir, "results.ach"), opts], &mut env),
        TRUE
    );
    let info = env_info(dir.path().join("results.ach")).unwrap();
    assert_eq!(info.bindings, ["data", "model", "results"]);
    assert_eq!(
        info.description.as_deref(),
        Some("Final results from experiment A")
    );
    assert_eq!(info.tags, ["experiment_a", "production"]);

    // The spec's option list, every key at once: exclude patterns too.
    let all = rec(&[
        ("include_constants", TRUE),
        ("include_functions", Value::Boolean(false)),
        ("include_builtins", Value::Boolean(false)),
        ("exclude", strs(&["temp_*", "debug_*"])),
        ("include_only", Value::Null),
        ("compress", TRUE),
        ("compression_level", num(3.0)),
        ("description", Value::from("")),
        ("tags", strs(&[])),
        ("allow_overwrite", Value::Boolean(false)),
    ]);
    assert_eq!(
        call("save_env", &[path(&dir, "all.ach"), all], &mut env),
        TRUE
    );
    let info = env_info(dir.path().join("all.ach")).unwrap();
    assert_eq!(info.bindings, ["data", "model", "results"]);
    assert_eq!(info.num_constants, 1);
}

#[test]
fn spec_3_1_restore_env_examples() {
    let dir = tempfile::tempdir().unwrap();
    let mut saved = workspace();
    call("save_env", &[path(&dir, "workspace.ach")], &mut saved);
    call("save_env", &[path(&dir, "old_session.ach")], &mut saved);
    let mut critical = Environment::new();
    critical.set("critical_data", tensor(&[9.0, 9.0]));
    critical.set("other", num(1.0));
    call("save_env", &[path(&dir, "checkpoint.ach")], &mut critical);

    // restore_env("workspace.ach")  // Merge con entorno actual
    let mut env = Environment::new();
    env.set("mine", num(7.0));
    env.set("data", Value::from("kept: merge does not overwrite"));
    assert_eq!(
        call("restore_env", &[path(&dir, "workspace.ach")], &mut env),
        TRUE
    );
    assert_eq!(
        env.names(),
        ["data", "debug_x", "mine", "model", "results", "temp_1"]
    );
    assert_eq!(
        env.get("data"),
        Some(&Value::from("kept: merge does not overwrite"))
    );
    assert_eq!(env.get("model"), saved.get("model"));

    // restore_env("old_session.ach", {
    //     mode: "namespace",
    //     namespace: "old"
    // })
    // // Ahora: old.data, old.results, etc.
    let mut env = Environment::new();
    env.set("data", num(0.0));
    let opts = rec(&[
        ("mode", Value::from("namespace")),
        ("namespace", Value::from("old")),
    ]);
    assert_eq!(
        call(
            "restore_env",
            &[path(&dir, "old_session.ach"), opts],
            &mut env
        ),
        TRUE
    );
    assert_eq!(env.names(), ["data", "old"]);
    let old = env.get("old").unwrap();
    assert_eq!(field(old, "data"), &tensor(&[1.0, 2.0, 3.0]));
    assert_eq!(field(old, "results"), saved.get("results").unwrap());
    assert_eq!(env.get("data"), Some(&num(0.0)));

    // restore_env("checkpoint.ach", {
    //     include_only: ["critical_data"],
    //     overwrite: true
    // })
    let mut env = Environment::new();
    env.set("critical_data", num(-1.0));
    let opts = rec(&[
        ("include_only", strs(&["critical_data"])),
        ("overwrite", TRUE),
    ]);
    assert_eq!(
        call(
            "restore_env",
            &[path(&dir, "checkpoint.ach"), opts],
            &mut env
        ),
        TRUE
    );
    assert_eq!(env.names(), ["critical_data"]);
    assert_eq!(env.get("critical_data"), Some(&tensor(&[9.0, 9.0])));

    // The spec's full option list, in replace mode.
    let mut env = Environment::new();
    env.set("gone", num(1.0));
    let opts = rec(&[
        ("mode", Value::from("replace")),
        ("overwrite", Value::Boolean(false)),
        ("namespace", Value::Null),
        ("include_only", Value::Null),
        ("exclude", strs(&["temp_*", "debug_?"])),
        ("verify_checksum", TRUE),
        ("strict_version", Value::Boolean(false)),
    ]);
    call(
        "restore_env",
        &[path(&dir, "workspace.ach"), opts],
        &mut env,
    );
    // `debug_?` matches `debug_x` (one character); `gone` went with replace.
    assert_eq!(env.names(), ["data", "model", "results"]);
}

#[test]
fn spec_3_1_env_info_example() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = workspace();
    let opts = rec(&[
        ("description", Value::from("the spec's workspace")),
        ("tags", strs(&["experiment"])),
    ]);
    call("save_env", &[path(&dir, "workspace.ach"), opts], &mut env);

    // let info = env_info("workspace.ach")
    let info = call("env_info", &[path(&dir, "workspace.ach")], &mut env);
    // print("Variables:", info.bindings)
    assert_eq!(
        field(&info, "bindings"),
        &strs(&["data", "debug_x", "model", "results", "temp_1"])
    );
    // print("Created:", info.created_at)
    let Value::String(created_at) = field(&info, "created_at") else {
        panic!("created_at is not a string")
    };
    assert_eq!(created_at.len(), "2025-01-13T10:30:00Z".len());
    assert!(created_at.ends_with('Z'), "{created_at}");

    // The other fields of the spec's record.
    assert_eq!(field(&info, "version"), &Value::from("1.5"));
    assert_eq!(
        field(&info, "created_by"),
        &Value::from(format!("Achronyme REPL {RUNTIME_VERSION}"))
    );
    assert_eq!(field(&info, "num_bindings"), &num(5.0));
    assert_eq!(field(&info, "num_constants"), &num(1.0));
    assert_eq!(field(&info, "compressed"), &Value::Boolean(false));
    let size = std::fs::metadata(dir.path().join("workspace.ach"))
        .unwrap()
        .len();
    assert_eq!(field(&info, "file_size"), &num(size as f64));
    assert_eq!(
        field(&info, "description"),
        &Value::from("the spec's workspace")
    );
    assert_eq!(field(&info, "tags"), &strs(&["experiment"]));
}

// ---------------------------------------------------------------------------
// 3.2 snapshots
// ---------------------------------------------------------------------------

#[test]
fn spec_3_2_snapshot_example() {
    let mut env = workspace();
    env.set("counter", Value::new_ref(num(1.0)));

    // let checkpoint = snapshot_env()
    let checkpoint = call("snapshot_env", &[], &mut env);
    env.set("checkpoint", checkpoint.clone());

    // mut data = transform_destructively(data)
    if let Some(Value::Tensor(t)) = env.get_mut("data") {
        t.data_mut().fill(-1.0);
    }
    if let Some(Value::MutableRef(r)) = env.get("counter") {
        *r.write().unwrap() = num(99.0);
    }
    env.set("scratch", num(5.0));

    // restore_snapshot(checkpoint)
    // // data está de vuelta a su estado anterior
    assert_eq!(call("restore_snapshot", &[checkpoint], &mut env), TRUE);
    assert_eq!(env.get("data"), Some(&tensor(&[1.0, 2.0, 3.0])));
    assert_eq!(env.get("counter"), Some(&Value::new_ref(num(1.0))));
    // Merge keeps names bound since the snapshot; replace drops them.
    assert!(env.contains("scratch"));
    let checkpoint = env.get("checkpoint").unwrap().clone();
    let opts = rec(&[("mode", Value::from("replace"))]);
    call("restore_snapshot", &[checkpoint, opts], &mut env);
    assert_eq!(
        env.names(),
        ["counter", "data", "debug_x", "model", "results", "temp_1"]
    );
}

// ---------------------------------------------------------------------------
// 3.3 environment functions
// ---------------------------------------------------------------------------

#[test]
fn spec_3_3_environment_function_examples() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = workspace();
    env.set("temp_2", num(2.0));

    // let all_vars = env_bindings()
    let all_vars = call("env_bindings", &[], &mut env);
    assert_eq!(
        all_vars,
        strs(&["data", "debug_x", "model", "results", "temp_1", "temp_2"])
    );

    // let temps = filter(name => starts_with(name, "temp_"), all_vars)
    // map(name => env_remove(name), temps)
    let Value::Vector(names) = all_vars else {
        panic!()
    };
    for name in names {
        let Value::String(s) = &name else { panic!() };
        if s.starts_with("temp_") {
            assert_eq!(
                call("env_remove", std::slice::from_ref(&name), &mut env),
                TRUE
            );
        }
    }
    assert_eq!(env.names(), ["data", "debug_x", "model", "results"]);
    // Removing a name that is not bound says so.
    assert_eq!(
        call("env_remove", &[Value::from("temp_1")], &mut env),
        Value::Boolean(false)
    );

    // let important = ["data", "model", "results"]
    // save_env("clean.ach", {include_only: important})
    let important = strs(&["data", "model", "results"]);
    call(
        "save_env",
        &[path(&dir, "clean.ach"), rec(&[("include_only", important)])],
        &mut env,
    );
    assert_eq!(
        env_info(dir.path().join("clean.ach")).unwrap().bindings,
        ["data", "model", "results"]
    );

    // env_get(name: String) -> Value
    assert_eq!(
        call("env_get", &[Value::from("data")], &mut env),
        tensor(&[1.0, 2.0, 3.0])
    );
    // env_set(name: String, value: Value) -> Boolean
    assert_eq!(
        call("env_set", &[Value::from("fresh"), num(4.0)], &mut env),
        TRUE
    );
    assert_eq!(env.get("fresh"), Some(&num(4.0)));
    // env_clear(confirm?: Boolean) -> Boolean
    assert!(builtin("env_clear", &[], &mut env).is_err());
    assert_eq!(env.len(), 5);
    assert_eq!(call("env_clear", &[TRUE], &mut env), TRUE);
    assert!(env.is_empty());
    assert!(env.constant("PI").is_some(), "constants survive env_clear");
}

// ---------------------------------------------------------------------------
// 4 special types
// ---------------------------------------------------------------------------

#[test]
fn spec_4_special_type_examples() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set_host_builtins(["sin", "cos", "map"]);

    // let f = sin  // Builtin function
    env.set("f", Value::Function(Function::Builtin("sin".into())));
    // let g = x => x * 2  // User lambda
    env.set(
        "g",
        Value::Function(Function::Lambda {
            params: vec!["x".into()],
            source: "x => x * 2".into(),
        }),
    );
    // mut x = 42
    // let ref_x = &x  // MutableRef
    let cell = std::sync::Arc::new(std::sync::RwLock::new(num(42.0)));
    env.set("ref_x", Value::MutableRef(cell.clone()));
    // let counter = {
    //     mut value: 0,
    //     increment: () => do { self.value = self.value + 1 }
    // }
    env.set(
        "counter",
        rec(&[
            ("value", Value::new_ref(num(0.0))),
            (
                "increment",
                Value::Function(Function::Lambda {
                    params: vec![],
                    source: "() => do { self.value = self.value + 1 }".into(),
                }),
            ),
        ]),
    );

    // save_env("test.ach")  // OK: guarda referencia a "sin"
    // save_env("test2.ach")  // WARNING: Variable 'g' (function) not serialized
    let report =
        save_environment(&env, dir.path().join("test.ach"), &SaveOptions::default()).unwrap();
    assert_eq!(report.written, ["counter", "f", "ref_x"]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].name, "g");
    assert!(report.warnings.iter().any(|w| w.contains("\"g\"")));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("counter.increment"))
    );

    // restore_env("test.ach")  // f = sin
    // restore_env("test2.ach")  // g no existe
    // restore_env("test.ach")
    // // x = 42 (pero ya no hay ref_x, o es un nuevo ref)
    let mut restored = Environment::new();
    restored.set_host_builtins(["sin", "cos", "map"]);
    call("restore_env", &[path(&dir, "test.ach")], &mut restored);
    assert_eq!(
        restored.get("f"),
        Some(&Value::Function(Function::Builtin("sin".into())))
    );
    assert!(!restored.contains("g"));
    let Some(Value::MutableRef(fresh)) = restored.get("ref_x") else {
        panic!("ref_x is not a reference")
    };
    assert!(!std::sync::Arc::ptr_eq(fresh, &cell), "a new reference");
    assert_eq!(*fresh.read().unwrap(), num(42.0));
    // value: 0 is kept, increment is dropped.
    assert_eq!(
        restored.get("counter"),
        Some(&rec(&[("value", Value::new_ref(num(0.0)))]))
    );
}

// ---------------------------------------------------------------------------
// 6 detailed use cases
// ---------------------------------------------------------------------------

#[test]
fn spec_6_1_data_science_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set("raw_data", tensor(&[3.0, 1.0, 2.0, 2.0]));
    env.set("cleaned", tensor(&[1.0, 2.0, 3.0]));
    env.set("features", tensor(&[0.1, 0.2, 0.3]));
    env.set("labels", tensor(&[0.0, 1.0, 1.0]));

    // save_env("01_processed_data.ach", {
    //     include_only: ["cleaned", "features", "labels"],
    //     description: "Cleaned and processed data"
    // })
    let opts = rec(&[
        ("include_only", strs(&["cleaned", "features", "labels"])),
        ("description", Value::from("Cleaned and processed data")),
    ]);
    assert_eq!(
        call(
            "save_env",
            &[path(&dir, "01_processed_data.ach"), opts],
            &mut env
        ),
        TRUE
    );
    let info = env_info(dir.path().join("01_processed_data.ach")).unwrap();
    assert_eq!(info.bindings, ["cleaned", "features", "labels"]);
    assert_eq!(
        info.description.as_deref(),
        Some("Cleaned and processed data")
    );

    env.set("model_1", rec(&[("kind", Value::from("lr"))]));
    env.set("model_2", rec(&[("kind", Value::from("rf"))]));
    env.set("model_3", rec(&[("kind", Value::from("nn"))]));
    // save_env("02_trained_models.ach", {
    //     description: "All trained models",
    //     tags: ["models", "experiment_v1"]
    // })
    let opts = rec(&[
        ("description", Value::from("All trained models")),
        ("tags", strs(&["models", "experiment_v1"])),
    ]);
    assert_eq!(
        call(
            "save_env",
            &[path(&dir, "02_trained_models.ach"), opts],
            &mut env
        ),
        TRUE
    );

    env.set(
        "results",
        rec(&[("lr", num(0.7)), ("rf", num(0.8)), ("nn", num(0.9))]),
    );
    // save_env("03_final_results.ach")
    assert_eq!(
        call("save_env", &[path(&dir, "03_final_results.ach")], &mut env),
        TRUE
    );
    assert_eq!(
        env_info(dir.path().join("03_final_results.ach"))
            .unwrap()
            .num_bindings,
        8
    );

    // --- En otra sesión ---
    // restore_env("02_trained_models.ach")
    // // model_1, model_2, model_3 disponibles instantáneamente
    let mut other = Environment::new();
    assert_eq!(
        call(
            "restore_env",
            &[path(&dir, "02_trained_models.ach")],
            &mut other
        ),
        TRUE
    );
    for m in ["model_1", "model_2", "model_3"] {
        assert_eq!(other.get(m), env.get(m), "{m}");
    }
    assert!(!other.contains("results"));
}

#[test]
fn spec_6_2_team_collaboration() {
    let dir = tempfile::tempdir().unwrap();
    // Investigador A
    let mut a = Environment::new();
    a.set("experiment_data", tensor(&[20.5, 21.0, 19.8]));
    a.set("initial_analysis", rec(&[("mean", num(20.43))]));
    a.set("scratch", num(0.0));

    // save_env("share_with_team.ach", {
    //     include_only: ["experiment_data", "initial_analysis"],
    //     description: "Experiment results from Lab A",
    //     tags: ["team", "temperature_study"]
    // })
    let opts = rec(&[
        (
            "include_only",
            strs(&["experiment_data", "initial_analysis"]),
        ),
        ("description", Value::from("Experiment results from Lab A")),
        ("tags", strs(&["team", "temperature_study"])),
    ]);
    assert_eq!(
        call(
            "save_env",
            &[path(&dir, "share_with_team.ach"), opts],
            &mut a
        ),
        TRUE
    );

    // --- Investigador B ---
    // restore_env("share_with_team.ach")
    let mut b = Environment::new();
    assert_eq!(
        call("restore_env", &[path(&dir, "share_with_team.ach")], &mut b),
        TRUE
    );
    assert_eq!(b.names(), ["experiment_data", "initial_analysis"]);
    assert_eq!(b.get("experiment_data"), a.get("experiment_data"));

    b.set("extended_analysis", rec(&[("sd", num(0.6))]));
    // save_env("extended_analysis.ach", {
    //     description: "Extended analysis by Lab B"
    // })
    let opts = rec(&[("description", Value::from("Extended analysis by Lab B"))]);
    assert_eq!(
        call(
            "save_env",
            &[path(&dir, "extended_analysis.ach"), opts],
            &mut b
        ),
        TRUE
    );
    let info = env_info(dir.path().join("extended_analysis.ach")).unwrap();
    assert_eq!(
        info.bindings,
        ["experiment_data", "extended_analysis", "initial_analysis"]
    );
    assert_eq!(
        info.description.as_deref(),
        Some("Extended analysis by Lab B")
    );
}

#[test]
fn spec_6_3_iterative_development() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    // ach[1]> let data = load_data()
    env.set("data", tensor(&[1.0, 2.0]));
    // ach[2]> let model = train(data)
    env.set("model", rec(&[("w", tensor(&[0.25, 0.75]))]));
    // ach[3]> save_env("before_changes.ach")
    assert_eq!(
        call("save_env", &[path(&dir, "before_changes.ach")], &mut env),
        TRUE
    );
    // ach[4]> mut model = modify_risky(model)
    env.set("model", Value::from("broken"));
    // ach[6]> restore_env("before_changes.ach", {overwrite: true})
    let opts = rec(&[("overwrite", TRUE)]);
    assert_eq!(
        call(
            "restore_env",
            &[path(&dir, "before_changes.ach"), opts],
            &mut env
        ),
        TRUE
    );
    // ach[7]> test(model)  // Funciona de nuevo
    assert_eq!(
        env.get("model"),
        Some(&rec(&[("w", tensor(&[0.25, 0.75]))]))
    );
}

#[test]
fn spec_6_4_automatic_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set("dataset", tensor(&[0.0; 8]));
    let mut results = Vec::new();
    let mut last_checkpoint = Value::Null;
    for idx in 0..25 {
        results.push(num(f64::from(idx) * 2.0));
        env.set("results", Value::Vector(results.clone()));
        if idx % 10 == 0 {
            // save_env("checkpoint_" + str(idx) + ".ach", {
            //     include_only: ["results"]
            // })
            let p = path(&dir, &format!("checkpoint_{idx}.ach"));
            let opts = rec(&[("include_only", strs(&["results"]))]);
            assert_eq!(call("save_env", &[p.clone(), opts], &mut env), TRUE);
            last_checkpoint = p;
        }
    }
    // let last_checkpoint = find_latest_checkpoint()
    // restore_env(last_checkpoint)
    let mut fresh = Environment::new();
    assert_eq!(call("restore_env", &[last_checkpoint], &mut fresh), TRUE);
    assert_eq!(fresh.names(), ["results"]);
    let Some(Value::Vector(saved)) = fresh.get("results") else {
        panic!()
    };
    assert_eq!(saved.len(), 21, "the checkpoint at chunk 20");
    assert_eq!(saved.last(), Some(&num(40.0)));
}

// ---------------------------------------------------------------------------
// 7 safety
// ---------------------------------------------------------------------------

#[test]
fn spec_7_2_and_7_3_version_and_size_examples() {
    let dir = tempfile::tempdir().unwrap();
    let mut saved = Environment::new();
    saved.set("x", num(1.0));
    save_environment(
        &saved,
        dir.path().join("old.ach"),
        &SaveOptions {
            achronyme_version: "v0.0.1".into(),
            ..Default::default()
        },
    )
    .unwrap();

    // restore_env("old_v0.1.ach")
    // // Warning: File created with Achronyme v0.1.0, current version is v0.2.0
    let mut env = Environment::new();
    assert_eq!(
        call("restore_env", &[path(&dir, "old.ach")], &mut env),
        TRUE
    );
    assert_eq!(env.get("x"), Some(&num(1.0)));

    // restore_env("old.ach", {strict_version: true})
    // // Error: Version mismatch. File: v0.1.0, Current: v0.2.0
    let mut env = Environment::new();
    let err = builtin(
        "restore_env",
        &[path(&dir, "old.ach"), rec(&[("strict_version", TRUE)])],
        &mut env,
    )
    .unwrap_err();
    assert!(err.to_string().contains("v0.0.1"), "{err}");
    assert!(err.to_string().contains(RUNTIME_VERSION), "{err}");
    assert!(env.is_empty());

    // save_env("huge.ach", {
    //     max_file_size: 1_000_000_000  // 1 GB max
    // })
    let mut big = Environment::new();
    // Noise: incompressible, so the default save stores it raw (32 KiB).
    big.set("t", tensor(&achronyme_env::testdata::normal(4096, 7)));
    assert_eq!(
        call(
            "save_env",
            &[
                path(&dir, "huge.ach"),
                rec(&[("max_file_size", num(1_000_000_000.0))])
            ],
            &mut big
        ),
        TRUE
    );
    // and a limit the archive does exceed: error, no file.
    let err = builtin(
        "save_env",
        &[
            path(&dir, "small.ach"),
            rec(&[("max_file_size", num(1000.0))]),
        ],
        &mut big,
    )
    .unwrap_err();
    assert!(err.to_string().contains("max_file_size"), "{err}");
    assert!(!dir.path().join("small.ach").exists());
}

// ---------------------------------------------------------------------------
// 10 quick guide
// ---------------------------------------------------------------------------

#[test]
fn spec_10_quick_guide() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set("final_model", rec(&[("w", tensor(&[1.0, 2.0]))]));
    env.set("test_results", tensor(&[0.9, 0.95]));
    env.set("variable_name", Value::from("hello"));

    // save_env("my_work.ach")
    assert_eq!(
        call("save_env", &[path(&dir, "my_work.ach")], &mut env),
        TRUE
    );

    // restore_env("my_work.ach")
    let mut later = Environment::new();
    assert_eq!(
        call("restore_env", &[path(&dir, "my_work.ach")], &mut later),
        TRUE
    );
    assert_eq!(later, env);

    // let info = env_info("my_work.ach")
    // print(info.bindings)  // Lista de variables
    let info = call("env_info", &[path(&dir, "my_work.ach")], &mut later);
    assert_eq!(
        field(&info, "bindings"),
        &strs(&["final_model", "test_results", "variable_name"])
    );

    // save_env("results.ach", {
    //     include_only: ["final_model", "test_results"]
    // })
    let opts = rec(&[("include_only", strs(&["final_model", "test_results"]))]);
    assert_eq!(
        call("save_env", &[path(&dir, "results.ach"), opts], &mut env),
        TRUE
    );
    assert_eq!(
        env_info(dir.path().join("results.ach")).unwrap().bindings,
        ["final_model", "test_results"]
    );

    // restore_env("old.ach", {
    //     mode: "namespace",
    //     namespace: "old"
    // })
    // // Acceso: old.variable_name
    std::fs::copy(dir.path().join("my_work.ach"), dir.path().join("old.ach")).unwrap();
    let mut session = Environment::new();
    let opts = rec(&[
        ("mode", Value::from("namespace")),
        ("namespace", Value::from("old")),
    ]);
    assert_eq!(
        call("restore_env", &[path(&dir, "old.ach"), opts], &mut session),
        TRUE
    );
    assert_eq!(
        field(session.get("old").unwrap(), "variable_name"),
        &Value::from("hello")
    );
}

// ---------------------------------------------------------------------------
// 8.3 lazy loading
// ---------------------------------------------------------------------------

#[test]
fn spec_8_3_env_load_var() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = workspace();
    call("save_env", &[path(&dir, "huge.ach")], &mut env);
    // let data = env_load_var("huge.ach", "data")
    let mut other = Environment::new();
    let data = call(
        "env_load_var",
        &[path(&dir, "huge.ach"), Value::from("data")],
        &mut other,
    );
    assert_eq!(data, tensor(&[1.0, 2.0, 3.0]));
    assert!(other.is_empty(), "env_load_var returns, it does not bind");
}
