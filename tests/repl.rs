//! What a REPL user trips over, driven through the language builtins: the
//! warnings the host collects, names kept by a merge, restored tensors that
//! must not change when the file does, the host's runtime version, cyclic
//! references, what `env_info` says about compression, LZ4 from the
//! language and constants read back one by one.

use std::fs::OpenOptions;
use std::io::Write;

#[macro_use]
mod common;

use achronyme_env::builtins::call;
use achronyme_env::*;
use common::{path, rec};

const TRUE: Value = Value::Boolean(true);

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    let Value::Record(r) = v else {
        panic!("not a record: {v:?}")
    };
    r.get(name)
        .unwrap_or_else(|| panic!("no field {name:?} in {v:?}"))
}

/// An environment whose warnings the test reads instead of stderr.
fn collecting() -> Environment {
    let mut env = Environment::new();
    env.set_warning_sink(WarningSink::Collect);
    env
}

/// The warnings collected since the last call, as the user reads them.
fn warnings(env: &mut Environment) -> Vec<String> {
    env.take_warnings().iter().map(|w| w.to_string()).collect()
}

fn lambda() -> Value {
    Value::Function(Function::Lambda {
        params: vec!["x".into()],
        source: "x => x * 2".into(),
    })
}

#[test]
fn save_warnings_reach_the_host_instead_of_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = collecting();
    env.set("g", lambda());
    env.set("x", Value::Number(1.0));
    assert_eq!(
        call("save_env", &[path(&dir, "w.ach")], &mut env).unwrap(),
        TRUE
    );
    assert_eq!(
        warnings(&mut env),
        [
            "save_env: warning: variable \"g\" (Function) not saved: user-defined function \
          (lambda or closure): archives keep only builtins; re-define it after restoring"
        ]
    );
    // Drained: nothing twice.
    assert!(env.take_warnings().is_empty());
}

#[test]
fn a_merge_restore_says_which_names_it_kept_and_how_to_replace_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = collecting();
    env.set("model", Value::Number(1.0));
    env.set("data", Value::Number(2.0));
    env.set_constant("K", Value::Number(3.0));
    call("save_env", &[path(&dir, "checkpoint.ach")], &mut env).unwrap();

    env.set("model", Value::Number(10.0));
    env.remove("data");
    assert_eq!(
        call("restore_env", &[path(&dir, "checkpoint.ach")], &mut env).unwrap(),
        TRUE
    );
    assert_eq!(env.get("model"), Some(&Value::Number(10.0)));
    assert_eq!(env.get("data"), Some(&Value::Number(2.0)));
    assert_eq!(
        warnings(&mut env),
        [
            "restore_env: warning: kept the current value of \"model\", already bound; \
             pass overwrite: true to replace it with the archive's",
            "restore_env: warning: kept the current value of constant \"K\", already defined; \
             pass overwrite: true to replace it with the archive's",
        ]
    );
}

#[test]
fn restore_snapshot_overwrites_by_default_from_rust_as_from_the_language() {
    let mut env = Environment::new();
    env.set("data", Value::Number(1.0));
    let checkpoint = snapshot_env(&env, &SnapshotOptions::default()).unwrap();
    env.set("data", Value::Number(-1.0));
    restore_snapshot(&mut env, &checkpoint, &SnapshotRestoreOptions::default()).unwrap();
    assert_eq!(env.get("data"), Some(&Value::Number(1.0)));

    env.set("data", Value::Number(-1.0));
    call("restore_snapshot", &[checkpoint.to_value()], &mut env).unwrap();
    assert_eq!(env.get("data"), Some(&Value::Number(1.0)));
}

fn big_tensor() -> Value {
    Value::Tensor(Tensor::from_vec((0..100_000).map(f64::from).collect()))
}

/// An environment holding [`big_tensor`] as `t`, saved raw (mappable) to
/// `w.ach` in `dir` through `save_env`.
fn saved_big_tensor(dir: &tempfile::TempDir) -> Environment {
    let mut env = Environment::new();
    env.set("t", big_tensor());
    call(
        "save_env",
        &[
            path(dir, "w.ach"),
            rec(&[("compress", Value::Boolean(false))]),
        ],
        &mut env,
    )
    .unwrap();
    env
}

/// Rewrites the file at `p` in place (same inode): truncated first, then
/// filled with other bytes, as `cp other.ach p` or a careless tool would.
fn rewrite_in_place(p: &std::path::Path) {
    let len = std::fs::metadata(p).unwrap().len();
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(p)
        .unwrap();
    f.write_all(&vec![0xAB; len as usize / 2]).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn restored_tensors_are_owned_by_default_and_survive_the_file_changing_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let env = saved_big_tensor(&dir);

    let mut restored = Environment::new();
    call("restore_env", &[path(&dir, "w.ach")], &mut restored).unwrap();
    let loaded = call(
        "env_load_var",
        &[path(&dir, "w.ach"), Value::from("t")],
        &mut restored,
    )
    .unwrap();
    rewrite_in_place(&dir.path().join("w.ach"));

    let Some(Value::Tensor(t)) = restored.get("t") else {
        panic!()
    };
    assert!(!t.is_mapped());
    assert_eq!(Some(&Value::Tensor(t.clone())), env.get("t"));
    let Value::Tensor(l) = &loaded else { panic!() };
    assert!(!l.is_mapped());
    assert_eq!(Some(&loaded), env.get("t"));
}

#[test]
fn copy_false_restores_views_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    saved_big_tensor(&dir);
    let mut restored = Environment::new();
    let mapped = rec(&[("copy", Value::Boolean(false))]);
    call(
        "restore_env",
        &[path(&dir, "w.ach"), mapped.clone()],
        &mut restored,
    )
    .unwrap();
    let Some(Value::Tensor(t)) = restored.get("t") else {
        panic!()
    };
    assert!(t.is_mapped());
    let loaded = call(
        "env_load_var",
        &[path(&dir, "w.ach"), Value::from("t"), mapped],
        &mut restored,
    )
    .unwrap();
    let Value::Tensor(l) = loaded else { panic!() };
    assert!(l.is_mapped());
}

#[test]
fn copied_tensors_count_against_the_restore_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set("t", big_tensor()); // 800,000 bytes
    call(
        "save_env",
        &[
            path(&dir, "w.ach"),
            rec(&[("compress", Value::Boolean(false))]),
        ],
        &mut env,
    )
    .unwrap();
    let mut restored = Environment::new();
    let small = rec(&[("max_decoded_bytes", Value::Number(100_000.0))]);
    let err = call("restore_env", &[path(&dir, "w.ach"), small], &mut restored).unwrap_err();
    assert!(err.to_string().contains("800000 bytes"), "{err}");
    assert!(restored.is_empty());
    // Views of the file cost nothing against it.
    let mapped = rec(&[
        ("max_decoded_bytes", Value::Number(100_000.0)),
        ("copy", Value::Boolean(false)),
    ]);
    call("restore_env", &[path(&dir, "w.ach"), mapped], &mut restored).unwrap();
}

#[test]
fn the_host_names_its_runtime_and_long_versions_round_trip_whole() {
    let dir = tempfile::tempdir().unwrap();
    let version = "v2.3.0-beta.1+build.20250113"; // 28 bytes: longer than the header field
    let mut env = collecting();
    env.set_runtime("Achronyme Notebook", version);
    env.set("x", Value::Number(1.0));
    call("save_env", &[path(&dir, "w.ach")], &mut env).unwrap();

    let info = call("env_info", &[path(&dir, "w.ach")], &mut env).unwrap();
    assert_eq!(
        field(&info, "created_by"),
        &Value::from(format!("Achronyme Notebook {version}"))
    );
    assert_eq!(field(&info, "achronyme_version"), &Value::from(version));
    // The full version is metadata of its own, not a user's custom entry.
    assert_eq!(field(&info, "custom"), &rec(&[]));

    // The same runtime restores its own archives without a word, strictly too.
    let strict = rec(&[("strict_version", TRUE), ("overwrite", TRUE)]);
    call(
        "restore_env",
        &[path(&dir, "w.ach"), strict.clone()],
        &mut env,
    )
    .unwrap();
    assert_eq!(warnings(&mut env), Vec::<String>::new());

    // Another version warns, and strict_version refuses, naming both.
    let mut other = collecting();
    other.set_runtime("Achronyme Notebook", "v2.3.0-beta.2+build.20250201");
    call("restore_env", &[path(&dir, "w.ach")], &mut other).unwrap();
    assert_eq!(
        warnings(&mut other),
        [format!(
            "restore_env: warning: archive was written by Achronyme {version}, this is \
             v2.3.0-beta.2+build.20250201; some values may behave differently"
        )]
    );
    let err = call("restore_env", &[path(&dir, "w.ach"), strict], &mut other).unwrap_err();
    assert!(err.to_string().contains(version), "{err}");
}

#[test]
fn a_cyclic_reference_skips_its_binding_with_a_warning_unless_strict() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Value::new_ref(Value::Null);
    let Value::MutableRef(inner) = &cell else {
        panic!()
    };
    *inner.write().unwrap() = Value::Vector(vec![cell.clone()]);
    let mut env = collecting();
    env.set("cyclic", cell.clone());
    env.set("data", Value::Number(1.0));

    assert_eq!(
        call("save_env", &[path(&dir, "w.ach")], &mut env).unwrap(),
        TRUE
    );
    assert_eq!(
        warnings(&mut env),
        [
            "save_env: warning: variable \"cyclic\" (MutableRef) not saved: it holds a mut \
          reference that refers back to itself, and archives store values, not reference \
          graphs; break the cycle to save it, or pass strict: true to make this an error"
        ]
    );
    let info = call("env_info", &[path(&dir, "w.ach")], &mut env).unwrap();
    assert_eq!(
        field(&info, "bindings"),
        &Value::Vector(vec![Value::from("data")])
    );

    let strict = rec(&[("strict", TRUE)]);
    let err = call("save_env", &[path(&dir, "s.ach"), strict], &mut env).unwrap_err();
    assert!(err.to_string().contains("refers back to itself"), "{err}");
    assert!(!dir.path().join("s.ach").exists());
    *inner.write().unwrap() = Value::Null; // no leak
}

#[test]
fn env_info_reports_the_codec_asked_and_how_many_blobs_it_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set("x", Value::Number(1.0)); // too small to compress
    call("save_env", &[path(&dir, "small.ach")], &mut env).unwrap();
    let info = call("env_info", &[path(&dir, "small.ach")], &mut env).unwrap();
    assert_eq!(field(&info, "codec"), &Value::from("zstd"));
    assert_eq!(field(&info, "compressed_blobs"), &Value::Number(0.0));
    assert_eq!(field(&info, "compressed"), &Value::Boolean(false));

    env.set("zeros", Value::Tensor(Tensor::from_vec(vec![0.0; 100_000])));
    call("save_env", &[path(&dir, "big.ach")], &mut env).unwrap();
    let info = call("env_info", &[path(&dir, "big.ach")], &mut env).unwrap();
    assert_eq!(field(&info, "compressed_blobs"), &Value::Number(1.0));
    assert_eq!(field(&info, "compressed"), &Value::Boolean(true));

    let off = rec(&[("compress", Value::Boolean(false))]);
    call("save_env", &[path(&dir, "raw.ach"), off], &mut env).unwrap();
    let info = call("env_info", &[path(&dir, "raw.ach")], &mut env).unwrap();
    assert_eq!(field(&info, "codec"), &Value::from("none"));
}

#[test]
fn env_info_returns_null_for_a_missing_description_and_keeps_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set("x", Value::Number(1.0));
    call("save_env", &[path(&dir, "none.ach")], &mut env).unwrap();
    let info = call("env_info", &[path(&dir, "none.ach")], &mut env).unwrap();
    assert_eq!(field(&info, "description"), &Value::Null);

    let empty = rec(&[("description", Value::from(""))]);
    call("save_env", &[path(&dir, "empty.ach"), empty], &mut env).unwrap();
    let info = call("env_info", &[path(&dir, "empty.ach")], &mut env).unwrap();
    assert_eq!(field(&info, "description"), &Value::from(""));
}

#[test]
fn lz4_can_be_chosen_from_the_language() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set("zeros", Value::Tensor(Tensor::from_vec(vec![0.0; 100_000])));
    let lz4 = rec(&[("codec", Value::from("lz4"))]);
    call("save_env", &[path(&dir, "w.ach"), lz4], &mut env).unwrap();
    let info = env_info(dir.path().join("w.ach")).unwrap();
    assert_eq!(info.entries[0].codec, Codec::Lz4);
    let lang = call("env_info", &[path(&dir, "w.ach")], &mut env).unwrap();
    assert_eq!(field(&lang, "codec"), &Value::from("lz4"));

    let mut back = Environment::new();
    call("restore_env", &[path(&dir, "w.ach")], &mut back).unwrap();
    assert_eq!(back, env);

    // Misspelt key and value get the suggestions the other options give.
    let typo = rec(&[("codex", Value::from("lz4"))]);
    let err = call("save_env", &[path(&dir, "t.ach"), typo], &mut env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "save_env: unknown option \"codex\"; did you mean \"codec\"?"
    );
    let typo = rec(&[("codec", Value::from("lz5"))]);
    let err = call("save_env", &[path(&dir, "t.ach"), typo], &mut env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "save_env: option codec must be \"zstd\", \"lz4\" or \"none\", got \"lz5\"; did you mean \"lz4\"?"
    );
    // LZ4 has no levels.
    let both = rec(&[
        ("codec", Value::from("lz4")),
        ("compression_level", Value::Number(9.0)),
    ]);
    let err = call("save_env", &[path(&dir, "t.ach"), both], &mut env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "save_env: option compression_level applies to codec \"zstd\" only; lz4 has no levels"
    );
}

#[test]
fn constants_can_be_read_back_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Environment::new();
    env.set_constant("PI", Value::Number(std::f64::consts::PI));
    env.set("x", Value::Number(1.0));
    // env_get resolves a name as the language does: a binding, else a constant.
    assert_eq!(
        call("env_get", &[Value::from("PI")], &mut env).unwrap(),
        Value::Number(std::f64::consts::PI)
    );
    call("save_env", &[path(&dir, "w.ach")], &mut env).unwrap();
    assert_eq!(
        call(
            "env_load_var",
            &[path(&dir, "w.ach"), Value::from("PI")],
            &mut env
        )
        .unwrap(),
        Value::Number(std::f64::consts::PI)
    );
    // A binding of the same name shadows the constant; section picks one.
    env.set("PI", Value::Number(3.0));
    env.remove_constant("PI");
    env.set_constant("PI", Value::Number(std::f64::consts::PI));
    call(
        "save_env",
        &[path(&dir, "both.ach"), rec(&[("allow_overwrite", TRUE)])],
        &mut env,
    )
    .unwrap();
    let both = path(&dir, "both.ach");
    assert_eq!(
        call("env_load_var", &[both.clone(), Value::from("PI")], &mut env).unwrap(),
        Value::Number(3.0)
    );
    let constants = rec(&[("section", Value::from("constants"))]);
    assert_eq!(
        call(
            "env_load_var",
            &[both.clone(), Value::from("PI"), constants],
            &mut env
        )
        .unwrap(),
        Value::Number(std::f64::consts::PI)
    );
    let bindings = rec(&[("section", Value::from("bindings"))]);
    env.remove("PI");
    let err = call(
        "env_load_var",
        &[path(&dir, "w.ach"), Value::from("PI"), bindings],
        &mut env,
    )
    .unwrap_err();
    assert!(err.to_string().contains("PI"), "{err}");
}
