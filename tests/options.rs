//! The save and restore options of spec 3.1 and 7.3 beyond the basics:
//! include_only reports, filters, builtins and user functions, compression
//! options, large-value warnings, custom metadata, constants under the
//! restore modes, builtin resolution, and all-or-nothing restores through
//! the language-level builtins.

#[macro_use]
mod common;

use achronyme_env::builtins::call;
use achronyme_env::*;
use common::*;

fn builtin(name: &str) -> Value {
    Value::Function(Function::Builtin(name.into()))
}

#[test]
fn include_only_names_that_match_nothing_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set("data", Value::Number(1.0));
    env.set("model_1", Value::Number(2.0));
    env.set("other", Value::Number(3.0));
    let report = save_environment(
        &env,
        path_in(&dir, "a.ach"),
        &SaveOptions {
            include_only: Some(vec![
                "data".into(),
                "modle".into(),
                "model_*".into(),
                "x*".into(),
            ]),
            ..fast()
        },
    )
    .unwrap();
    assert_eq!(report.written, ["data", "model_1"]);
    assert_eq!(report.not_found, ["modle", "x*"]);
    assert_eq!(report.filtered_out, ["other"]);
    assert!(report.warnings.iter().any(|w| w.contains("\"modle\"")));
    assert!(report.skipped.is_empty());
}

#[test]
fn exclude_patterns_leave_names_out_and_say_which() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    for name in ["data", "temp_1", "temp_long", "debug_a", "debug_ab"] {
        env.set(name, Value::Null);
    }
    let report = save_environment(
        &env,
        path_in(&dir, "a.ach"),
        &SaveOptions {
            exclude: vec!["temp_*".into(), "debug_?".into()],
            ..fast()
        },
    )
    .unwrap();
    assert_eq!(report.written, ["data", "debug_ab"]);
    assert_eq!(report.filtered_out, ["debug_a", "temp_1", "temp_long"]);
    assert!(report.not_found.is_empty());
}

#[test]
fn the_hosts_own_builtins_are_left_out_unless_include_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set_host_builtins(["sin", "cos"]);
    env.set("sin", builtin("sin"));
    env.set("cos", builtin("cos"));
    env.set("f", builtin("sin")); // a user's alias: always data
    env.set("mine", builtin("mine")); // not the host's
    let report = save_environment(&env, path_in(&dir, "a.ach"), &fast()).unwrap();
    assert_eq!(report.written, ["f", "mine"]);
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(skipped, ["cos", "sin"]);
    assert!(report.skipped[0].reason.contains("include_builtins"));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    let report = save_environment(
        &env,
        path_in(&dir, "b.ach"),
        &SaveOptions {
            include_builtins: true,
            ..fast()
        },
    )
    .unwrap();
    assert_eq!(report.written, ["cos", "f", "mine", "sin"]);

    // Without a host list nothing is known to be the runtime's.
    let mut plain = Environment::new();
    plain.set("sin", builtin("sin"));
    let report = save_environment(&plain, path_in(&dir, "c.ach"), &fast()).unwrap();
    assert_eq!(report.written, ["sin"]);
}

#[test]
fn include_functions_cannot_save_lambdas_in_v1_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set(
        "g",
        Value::Function(Function::Lambda {
            params: vec!["x".into()],
            source: "x => x * 2".into(),
        }),
    );
    let plain = save_environment(&env, path_in(&dir, "a.ach"), &fast()).unwrap();
    assert!(!plain.skipped[0].reason.contains("include_functions"));
    let asked = save_environment(
        &env,
        path_in(&dir, "b.ach"),
        &SaveOptions {
            include_functions: true,
            ..fast()
        },
    )
    .unwrap();
    assert!(asked.written.is_empty());
    assert_eq!(asked.skipped[0].name, "g");
    assert!(
        asked.skipped[0].reason.contains("include_functions is set"),
        "{}",
        asked.skipped[0].reason
    );
}

#[test]
fn compression_options_are_recorded_and_small_tensors_stay_raw() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    // 512 bytes: under the 1 KiB below which nothing is compressed, and
    // stored in the table's value pool (format 1.4).
    env.set("t", Value::Tensor(iota(&[64])));
    let asked = save_environment(
        &env,
        path_in(&dir, "a.ach"),
        &SaveOptions {
            compression: Compression::Zstd { level: 19 },
            ..packed()
        },
    )
    .unwrap();
    assert_eq!(asked.compression, Compression::Zstd { level: 19 });
    let off = save_environment(
        &env,
        path_in(&dir, "b.ach"),
        &SaveOptions {
            compression: Compression::None,
            ..fast()
        },
    )
    .unwrap();
    assert_eq!(off.compression, Compression::None);
    let info = env_info(path_in(&dir, "a.ach")).unwrap();
    assert!(!info.compressed);
    assert!(info.entries.iter().all(|e| e.codec == Codec::None));
    // Uncompressed, and in the table, not in a blob.
    let archive = Archive::open(path_in(&dir, "a.ach")).unwrap();
    let Value::Tensor(t) = archive.get("t").unwrap() else {
        panic!()
    };
    assert_eq!(t, iota(&[64]));
    let (at, len) = archive.blob_range(Section::Bindings, "t").unwrap();
    let file_len = std::fs::metadata(path_in(&dir, "a.ach")).unwrap().len();
    assert!(at >= file_len - 64 - archive.toc_len(), "{at}");
    assert_eq!(len, 512);
    for bad in [0, 23, -3] {
        let err = save_environment(
            &env,
            path_in(&dir, "c.ach"),
            &SaveOptions {
                compression: Compression::Zstd { level: bad },
                ..fast()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("between 1 and 22"), "{err}");
    }
}

#[test]
fn large_values_get_one_warning_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set("big", Value::Tensor(iota(&[200])));
    env.set(
        "big_too",
        Value::Vector(vec![Value::from("x".repeat(2000))]),
    );
    env.set("small", Value::Tensor(iota(&[4])));
    let opts = SaveOptions {
        large_value_warning: Some(1000),
        ..fast()
    };
    let report = save_environment(&env, path_in(&dir, "a.ach"), &opts).unwrap();
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("\"big\"") && report.warnings[0].contains("1600 bytes"));
    assert!(report.warnings[1].contains("\"big_too\""));
    let quiet = save_environment(
        &env,
        path_in(&dir, "b.ach"),
        &SaveOptions {
            large_value_warning: None,
            ..opts
        },
    )
    .unwrap();
    assert!(quiet.warnings.is_empty());
    // The default threshold is the spec's 100 MB.
    assert_eq!(
        SaveOptions::default().large_value_warning,
        Some(100 * 1024 * 1024)
    );
}

#[test]
fn custom_metadata_comes_back_in_env_info() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set("x", Value::Null);
    let opts = Value::Record(
        [(
            "custom".to_string(),
            Value::Record(
                [
                    ("owner".to_string(), Value::from("lab A")),
                    ("run".to_string(), Value::from("7")),
                ]
                .into_iter()
                .collect(),
            ),
        )]
        .into_iter()
        .collect(),
    );
    let p = Value::from(path_in(&dir, "a.ach").to_string_lossy().into_owned());
    call("save_env", &[p.clone(), opts], &mut env).unwrap();
    let info = env_info(path_in(&dir, "a.ach")).unwrap();
    assert_eq!(
        info.custom,
        [("owner".into(), "lab A".into()), ("run".into(), "7".into())]
    );
    let Value::Record(r) = call("env_info", &[p], &mut env).unwrap() else {
        panic!()
    };
    let Some(Value::Record(custom)) = r.get("custom") else {
        panic!()
    };
    assert_eq!(custom.get("owner"), Some(&Value::from("lab A")));
}

#[test]
fn constants_follow_merge_and_overwrite_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "k.ach");
    let mut saved = Environment::new();
    saved.set_constant("G", Value::Number(9.81));
    saved.set_constant("C", Value::Number(3e8));
    save(&saved, &path);
    let mine = || {
        let mut env = Environment::new();
        env.set_constant("G", Value::Number(10.0));
        env
    };

    let mut env = mine();
    let r = restore_environment(&mut env, &path, &RestoreOptions::default()).unwrap();
    assert_eq!(r.constant_conflicts, ["G"]);
    assert_eq!(r.constants_restored, ["C"]);
    assert_eq!(env.constant("G"), Some(&Value::Number(10.0)));

    for opts in [
        RestoreOptions {
            overwrite: true,
            ..Default::default()
        },
        RestoreOptions {
            mode: RestoreMode::Replace,
            ..Default::default()
        },
    ] {
        let mut env = mine();
        let r = restore_environment(&mut env, &path, &opts).unwrap();
        assert!(r.constant_conflicts.is_empty());
        assert_eq!(r.constants_restored, ["C", "G"]);
        assert_eq!(env.constant("G"), Some(&Value::Number(9.81)));
    }
}

/// An archive holding a known builtin, an unknown one, and an unknown one
/// nested in a record (as the last binding).
fn builtins_fixture(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = path_in(dir, "b.ach");
    let mut saved = Environment::new();
    saved.set("a_data", Value::Number(1.0));
    saved.set("f", builtin("sin"));
    saved.set("h", builtin("plugin_fn"));
    let mut ops = Record::new();
    ops.insert("n", Value::Number(2.0));
    ops.insert("op", Value::new_ref(builtin("plugin_op")));
    saved.set("z_ops", Value::Record(ops));
    save(&saved, &path);
    path
}

#[test]
fn unknown_builtins_are_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = builtins_fixture(&dir);
    let mut env = Environment::new();
    env.set_host_builtins(["sin", "cos"]);
    let r = restore_environment(&mut env, &path, &RestoreOptions::default()).unwrap();
    assert_eq!(r.restored, ["a_data", "f"]);
    let skipped: Vec<&str> = r.skipped.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(skipped, ["h", "z_ops"]);
    assert!(r.skipped[0].reason.contains("\"plugin_fn\""));
    assert!(
        r.skipped[1].reason.contains("\"plugin_op\""),
        "{:?}",
        r.skipped
    );
    assert_eq!(r.warnings.len(), 2);
    assert_eq!(env.names(), ["a_data", "f"]);

    // include_only names that match nothing are reported on restore too.
    let mut env = Environment::new();
    let r = restore_environment(
        &mut env,
        &path,
        &RestoreOptions {
            include_only: Some(vec!["f".into(), "missing".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.restored, ["f"]);
    assert_eq!(r.not_found, ["missing"]);
    assert!(r.warnings.iter().any(|w| w.contains("\"missing\"")));

    // No host list: every builtin name is accepted.
    let mut open = Environment::new();
    let r = restore_environment(&mut open, &path, &RestoreOptions::default()).unwrap();
    assert_eq!(r.restored, ["a_data", "f", "h", "z_ops"]);
}

#[test]
fn strict_builtins_refuses_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = builtins_fixture(&dir);
    let mut env = Environment::new();
    env.set_host_builtins(["sin", "plugin_fn"]);
    env.set("a_data", Value::from("mine"));
    let before = env.clone();
    let opts = RestoreOptions {
        strict_builtins: true,
        overwrite: true,
        ..Default::default()
    };
    assert_matches!(
        restore_environment(&mut env, &path, &opts),
        Err(Error::UnknownBuiltin { ref name, ref builtin }) if name == "z_ops" && builtin == "plugin_op"
    );
    assert_eq!(env, before);
    // Through the language, the option is strict_builtins.
    let p = Value::from(path.to_string_lossy().into_owned());
    let strict = Value::Record(
        [("strict_builtins".to_string(), Value::Boolean(true))]
            .into_iter()
            .collect(),
    );
    let err = call("restore_env", &[p, strict], &mut env).unwrap_err();
    assert!(err.to_string().contains("plugin_op"), "{err}");
    assert_eq!(env, before);
}

#[test]
fn a_restore_failing_on_its_last_blob_leaves_the_environment_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "t.ach");
    let mut saved = Environment::new();
    saved.set("a", Value::Number(1.0));
    saved.set("m", Value::from("archive"));
    saved.set("zz", Value::Tensor(iota(&[512])));
    save(&saved, &path);
    let (off, len) = Archive::open(&path)
        .unwrap()
        .blob_range(Section::Bindings, "zz")
        .unwrap();
    flip(&path, off + len - 1);

    let mut env = Environment::new();
    env.set("m", Value::from("mine"));
    env.set("own", Value::Boolean(true));
    let before = env.clone();
    let p = Value::from(path.to_string_lossy().into_owned());
    for mode in ["merge", "replace"] {
        let opts = Value::Record(
            [
                ("mode".to_string(), Value::from(mode)),
                ("overwrite".to_string(), Value::Boolean(true)),
            ]
            .into_iter()
            .collect(),
        );
        let err = call("restore_env", &[p.clone(), opts], &mut env).unwrap_err();
        assert!(err.to_string().contains("\"zz\""), "{err}");
        assert!(matches!(err.cause, Some(Error::ChecksumMismatch { .. })));
        assert_eq!(env, before, "{mode}");
    }
    // Without verification the damaged bytes would load: the check is what
    // protects the environment.
    let lax = Value::Record(
        [("verify_checksum".to_string(), Value::Boolean(false))]
            .into_iter()
            .collect(),
    );
    call("restore_env", &[p, lax], &mut env).unwrap();
    assert!(env.contains("zz"));
}

#[test]
fn restore_env_takes_a_memory_budget_and_refuses_values_over_it() {
    // 10,000 Nulls: about 10 KB saved, 800 KB once restored.
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "nulls.ach");
    let mut saved = Environment::new();
    saved.set("v", Value::Vector(vec![Value::Null; 10_000]));
    save(&saved, &path);
    let p = Value::from(path.to_string_lossy().into_owned());
    let budget = |bytes: f64| {
        Value::Record(
            [("max_decoded_bytes".to_string(), Value::Number(bytes))]
                .into_iter()
                .collect(),
        )
    };
    let mut env = Environment::new();
    let err = call("restore_env", &[p.clone(), budget(100_000.0)], &mut env).unwrap_err();
    assert_matches!(err.cause, Some(Error::TooLarge { limit: 100_000, .. }));
    assert!(env.is_empty());
    call("restore_env", &[p, budget(1e6)], &mut env).unwrap();
    assert_eq!(env.get("v"), saved.get("v"));
}
