//! Bad input to the language-level builtins: each error names the function,
//! the argument or option, and what was expected, and changes nothing.

#[macro_use]
mod common;

use achronyme_env::builtins::{BUILTINS, BuiltinError, call};
use achronyme_env::*;
use common::{path, rec};

/// Calls `name`, expects an error, checks that `env` did not change, and
/// returns the message.
fn fails(name: &str, args: &[Value], env: &mut Environment) -> String {
    let before = env.clone();
    let err: BuiltinError = call(name, args, env).expect_err("the call should fail");
    assert_eq!(*env, before, "{name} changed the environment on error");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{name}: ")), "{msg}");
    msg
}

fn env_with_x() -> Environment {
    let mut env = Environment::new();
    env.set("x", Value::Number(1.0));
    env
}

#[test]
fn wrong_arity_names_the_function_and_the_counts() {
    let mut env = env_with_x();
    let msg = fails("save_env", &[], &mut env);
    assert_eq!(msg, "save_env: expected 1 to 2 arguments, got 0");
    let three = [Value::from("a"), Value::Null, Value::Null];
    let msg = fails("restore_env", &three, &mut env);
    assert_eq!(msg, "restore_env: expected 1 to 2 arguments, got 3");
    let msg = fails("env_bindings", &[Value::Null], &mut env);
    assert_eq!(msg, "env_bindings: expected 0 arguments, got 1");
    let msg = fails("env_info", &[], &mut env);
    assert_eq!(msg, "env_info: expected 1 argument, got 0");
    // Every registered function checks its own arity, with or without the
    // table: one argument too many always fails.
    for b in BUILTINS {
        let args = vec![Value::Null; b.max_args + 1];
        let msg = fails(b.name, &args, &mut env);
        assert!(msg.contains("argument"), "{msg}");
    }
}

#[test]
fn a_path_that_is_not_a_string_is_refused() {
    let mut env = env_with_x();
    let msg = fails("save_env", &[Value::Number(3.0)], &mut env);
    assert_eq!(
        msg,
        "save_env: argument 1 (path) must be a String, got a Number"
    );
    let msg = fails("restore_env", &[Value::Null], &mut env);
    assert_eq!(
        msg,
        "restore_env: argument 1 (path) must be a String, got a Null"
    );
    let msg = fails(
        "env_load_var",
        &[Value::from("a.ach"), Value::Boolean(true)],
        &mut env,
    );
    assert_eq!(
        msg,
        "env_load_var: argument 2 (name) must be a String, got a Boolean"
    );
}

#[test]
fn options_that_are_not_a_record_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_with_x();
    let msg = fails(
        "save_env",
        &[path(&dir, "a.ach"), Value::from("compress")],
        &mut env,
    );
    assert!(
        msg.contains("argument 2 (options) must be a Record"),
        "{msg}"
    );
    assert!(!dir.path().join("a.ach").exists());
}

#[test]
fn an_unknown_option_key_suggests_the_closest() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_with_x();
    let msg = fails(
        "save_env",
        &[
            path(&dir, "a.ach"),
            rec(&[("compresion", Value::Boolean(false))]),
        ],
        &mut env,
    );
    assert_eq!(
        msg,
        "save_env: unknown option \"compresion\"; did you mean \"compress\"?"
    );
    assert!(!dir.path().join("a.ach").exists(), "nothing was saved");

    let msg = fails(
        "restore_env",
        &[
            path(&dir, "a.ach"),
            rec(&[("overwite", Value::Boolean(true))]),
        ],
        &mut env,
    );
    assert_eq!(
        msg,
        "restore_env: unknown option \"overwite\"; did you mean \"overwrite\"?"
    );
    // Nothing close: the known keys are listed.
    let msg = fails("snapshot_env", &[rec(&[("zzzzzz", Value::Null)])], &mut env);
    assert_eq!(
        msg,
        "snapshot_env: unknown option \"zzzzzz\"; known options: include_only, exclude, include_constants"
    );
    // A save option is not a restore option.
    let msg = fails(
        "restore_env",
        &[
            path(&dir, "a.ach"),
            rec(&[("compress", Value::Boolean(true))]),
        ],
        &mut env,
    );
    assert!(msg.contains("unknown option \"compress\""), "{msg}");
}

#[test]
fn an_option_of_the_wrong_type_names_the_expected_type() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_with_x();
    let cases: [(&str, Value, &str); 6] = [
        (
            "compress",
            Value::from("yes"),
            "option compress must be a Boolean (true or false), got a String",
        ),
        (
            "tags",
            Value::from("a"),
            "option tags must be a Vector of Strings such as [\"data\", \"temp_*\"], got a String",
        ),
        (
            "exclude",
            Value::Vector(vec![Value::Number(1.0)]),
            "option exclude must be a Vector of Strings such as [\"data\", \"temp_*\"], got a Vector",
        ),
        (
            "include_only",
            Value::Number(1.0),
            "option include_only must be null or a Vector of Strings, got a Number",
        ),
        (
            "description",
            Value::Boolean(true),
            "option description must be a String, got a Boolean",
        ),
        (
            "max_file_size",
            Value::Number(-1.0),
            "option max_file_size must be a whole number from 0 to 9007199254740992, got -1",
        ),
    ];
    for (key, value, expected) in cases {
        let msg = fails(
            "save_env",
            &[path(&dir, "a.ach"), rec(&[(key, value)])],
            &mut env,
        );
        assert_eq!(msg, format!("save_env: {expected}"));
    }
    let msg = fails(
        "restore_env",
        &[
            path(&dir, "a.ach"),
            rec(&[("overwrite", Value::Number(1.0))]),
        ],
        &mut env,
    );
    assert_eq!(
        msg,
        "restore_env: option overwrite must be a Boolean (true or false), got a Number"
    );
    assert!(!dir.path().join("a.ach").exists());
}

#[test]
fn compression_level_out_of_range_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_with_x();
    for bad in [0.0, 23.0, 2.5] {
        let msg = fails(
            "save_env",
            &[
                path(&dir, "a.ach"),
                rec(&[("compression_level", Value::Number(bad))]),
            ],
            &mut env,
        );
        assert!(
            msg.contains("compression_level must be a whole number from 1 to 22"),
            "{msg}"
        );
    }
    for good in [1.0, 22.0] {
        let p = path(&dir, &format!("ok{good}.ach"));
        call(
            "save_env",
            &[p, rec(&[("compression_level", Value::Number(good))])],
            &mut env,
        )
        .unwrap();
    }
    // The Rust API checks too.
    let err = save_environment(
        &env,
        dir.path().join("b.ach"),
        &SaveOptions {
            compression: Compression::Zstd { level: 23 },
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidOption {
            option: "compression_level",
            ..
        }
    ));
    assert!(!dir.path().join("b.ach").exists());
}

#[test]
fn an_unknown_mode_is_refused_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_with_x();
    call("save_env", &[path(&dir, "a.ach")], &mut env).unwrap();
    let msg = fails(
        "restore_env",
        &[path(&dir, "a.ach"), rec(&[("mode", Value::from("replce"))])],
        &mut env,
    );
    assert_eq!(
        msg,
        "restore_env: option mode must be \"merge\", \"replace\" or \"namespace\", got \"replce\"; did you mean \"replace\"?"
    );
    let msg = fails(
        "restore_env",
        &[
            path(&dir, "a.ach"),
            rec(&[("mode", Value::from("namespace"))]),
        ],
        &mut env,
    );
    assert!(msg.contains("needs option namespace"), "{msg}");
    let msg = fails(
        "restore_env",
        &[
            path(&dir, "a.ach"),
            rec(&[
                ("mode", Value::from("merge")),
                ("namespace", Value::from("old")),
            ]),
        ],
        &mut env,
    );
    assert!(
        msg.contains("only applies with mode \"namespace\""),
        "{msg}"
    );
    let msg = fails(
        "restore_env",
        &[path(&dir, "a.ach"), rec(&[("mode", Value::Number(1.0))])],
        &mut env,
    );
    assert_eq!(
        msg,
        "restore_env: option mode must be a String, got a Number"
    );
}

#[test]
fn engine_errors_come_through_with_the_function_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_with_x();
    // Missing file.
    let msg = fails("restore_env", &[path(&dir, "missing.ach")], &mut env);
    assert!(msg.contains("missing.ach"), "{msg}");
    // Existing file without allow_overwrite.
    call("save_env", &[path(&dir, "a.ach")], &mut env).unwrap();
    let msg = fails("save_env", &[path(&dir, "a.ach")], &mut env);
    assert!(msg.contains("allow_overwrite"), "{msg}");
    call(
        "save_env",
        &[
            path(&dir, "a.ach"),
            rec(&[("allow_overwrite", Value::Boolean(true))]),
        ],
        &mut env,
    )
    .unwrap();
    // Unknown name in an archive, with a suggestion.
    let msg = fails(
        "env_load_var",
        &[path(&dir, "a.ach"), Value::from("y")],
        &mut env,
    );
    assert!(msg.contains("did you mean \"x\""), "{msg}");
    // Unbound name.
    let msg = fails("env_get", &[Value::from("xx")], &mut env);
    assert_eq!(
        msg,
        "env_get: no variable named \"xx\" in the environment; did you mean \"x\"?"
    );
    // A namespace that is taken.
    let msg = fails(
        "restore_env",
        &[path(&dir, "a.ach"), rec(&[("namespace", Value::from("x"))])],
        &mut env,
    );
    assert!(msg.contains("already bound"), "{msg}");
    // A path that names no file.
    let msg = fails("save_env", &[Value::from("")], &mut env);
    assert!(msg.contains("does not name a file"), "{msg}");
    // A name an archive could not hold.
    let msg = fails("env_set", &[Value::from(""), Value::Null], &mut env);
    assert!(msg.contains("must not be empty"), "{msg}");
}

#[test]
fn env_clear_refuses_without_confirm() {
    let mut env = env_with_x();
    let msg = fails("env_clear", &[], &mut env);
    assert!(msg.contains("env_clear(true)"), "{msg}");
    fails("env_clear", &[Value::Boolean(false)], &mut env);
    let msg = fails("env_clear", &[Value::from("yes")], &mut env);
    assert_eq!(
        msg,
        "env_clear: argument 1 (confirm) must be a Boolean, got a String"
    );
    assert_eq!(env.len(), 1);
}

#[test]
fn restore_snapshot_wants_a_snapshot() {
    let mut env = env_with_x();
    let msg = fails("restore_snapshot", &[Value::Number(1.0)], &mut env);
    assert_eq!(
        msg,
        "restore_snapshot: argument 1 (snapshot) must be a Snapshot, the value snapshot_env() returns, got a Number"
    );
    let msg = fails(
        "restore_snapshot",
        &[rec(&[("type", Value::from("Other"))])],
        &mut env,
    );
    assert!(msg.contains("must be a Snapshot"), "{msg}");
    // A real snapshot with a save option is refused by key.
    let snap = call("snapshot_env", &[], &mut env).unwrap();
    let msg = fails(
        "restore_snapshot",
        &[snap, rec(&[("verify_checksum", Value::Boolean(true))])],
        &mut env,
    );
    assert!(msg.contains("unknown option \"verify_checksum\""), "{msg}");
}

#[test]
fn an_unknown_builtin_name_suggests_one() {
    let mut env = env_with_x();
    let err = call("save_envv", &[], &mut env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "call: no builtin named \"save_envv\"; did you mean \"save_env\"?"
    );
}

#[test]
fn any_arguments_give_a_value_or_an_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = env_with_x();
    call("save_env", &[path(&dir, "seed.ach")], &mut seed).unwrap();
    let snapshot = call("snapshot_env", &[], &mut seed).unwrap();
    let odd_snapshot = rec(&[
        ("type", Value::from("Snapshot")),
        ("created_timestamp", Value::Number(f64::NAN)),
        ("bindings", rec(&[("", Value::Null)])),
        ("constants", rec(&[])),
    ]);
    let samples = [
        Value::Null,
        Value::Number(f64::NAN),
        Value::Number(-1e300),
        Value::Boolean(true),
        path(&dir, "seed.ach"),
        path(&dir, "fresh.ach"),
        Value::from(""),
        Value::Vector(vec![Value::Null, Value::from("x")]),
        Value::Tensor(Tensor::from_vec(vec![1.0])),
        rec(&[("compress", Value::Null)]),
        rec(&[
            ("mode", Value::from("namespace")),
            ("namespace", Value::from("")),
        ]),
        rec(&[("compression_level", Value::Number(f64::INFINITY))]),
        rec(&[("include_only", Value::Vector(vec![Value::from("[")]))]),
        rec(&[("max_file_size", Value::Number(1e300))]),
        snapshot,
        odd_snapshot.clone(),
    ];
    let mut calls = 0;
    for b in BUILTINS {
        for a in &samples {
            for c in &samples {
                for args in [vec![], vec![a.clone()], vec![a.clone(), c.clone()]] {
                    let mut env = env_with_x();
                    // Ok or Err, both fine; a panic fails the test.
                    let _ = call(b.name, &args, &mut env);
                    calls += 1;
                }
            }
        }
    }
    assert_eq!(calls, BUILTINS.len() * samples.len() * samples.len() * 3);
    // A hand-made snapshot binding an empty name is not a snapshot.
    let mut env = env_with_x();
    let msg = fails("restore_snapshot", &[odd_snapshot], &mut env);
    assert!(msg.contains("must be a Snapshot"), "{msg}");
}

#[test]
fn a_printed_error_chain_says_the_engine_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set("x", Value::Number(1.0));
    // Saving into a directory that does not exist: an I/O error with a cause.
    let missing = dir.path().join("no/such/dir/w.ach");
    let err = call(
        "save_env",
        &[Value::from(missing.to_str().unwrap())],
        &mut env,
    )
    .unwrap_err();
    assert!(err.cause.is_some(), "the engine error is kept for matching");
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(" / ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    let engine = err.cause.as_ref().unwrap().to_string();
    assert_eq!(chain.matches(&engine).count(), 1, "{chain}");
    let os = "No such file or directory";
    assert_eq!(chain.matches(os).count(), 1, "{chain}");
}
