//! The `ach` binary, run as a user would.

use std::path::Path;
use std::process::{Command, Output};

use achronyme_env::*;

fn ach(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ach"))
        .args(args)
        .output()
        .expect("ach runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn archive(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("w.ach");
    let mut env = testdata::every_type();
    env.set(
        "victim",
        Value::Tensor(Tensor::from_vec(testdata::normal(512, 1))),
    );
    let opts = SaveOptions {
        description: Some("cli test".into()),
        tags: vec!["t1".into()],
        durable: false,
        ..Default::default()
    };
    save_environment(&env, &path, &opts).unwrap();
    path
}

#[test]
fn info_lists_every_binding_and_json_parses() {
    let dir = tempfile::tempdir().unwrap();
    let path = archive(dir.path());
    let p = path.to_str().unwrap();
    let out = ach(&["info", p]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    for name in ["matrix", "spectrum", "victim", "PI"] {
        assert!(stdout.contains(name), "{name} missing from:\n{stdout}");
    }
    assert!(stdout.contains("[2, 3]") && stdout.contains("cli test"));

    let out = ach(&["info", p, "--json"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let info = env_info(&path).unwrap();
    assert_eq!(json["num_bindings"], info.num_bindings);
    assert_eq!(json["file_size"], std::fs::metadata(&path).unwrap().len());
    assert_eq!(
        json["bindings"].as_array().unwrap().len(),
        info.bindings.len()
    );
    assert_eq!(json["entries"][0]["type"], info.entries[0].type_name);
}

#[test]
fn verify_exits_0_when_intact_and_1_naming_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = archive(dir.path());
    let p = path.to_str().unwrap();
    let out = ach(&["verify", p]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("intact"));

    let (offset, len) = Archive::open(&path)
        .unwrap()
        .blob_range(Section::Bindings, "victim")
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(offset + len / 2) as usize] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let out = ach(&["verify", p]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("victim"), "{stderr}");
    assert!(!stderr.contains("matrix"), "{stderr}");

    let out = ach(&["verify", p, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["damaged"][0]["name"], "victim");
}

#[test]
fn bad_input_is_one_clear_line_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.ach");
    std::fs::write(&junk, b"this is not an archive at all").unwrap();
    for args in [
        vec!["info", junk.to_str().unwrap()],
        vec!["verify", junk.to_str().unwrap()],
        vec!["info", "/nonexistent/dir/w.ach"],
    ] {
        let out = ach(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("ach: error: "), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // Usage errors exit 2.
    assert_eq!(ach(&["info"]).status.code(), Some(2));
    assert_eq!(ach(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn demo_runs_end_to_end_on_a_small_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let out = ach(&[
        "demo",
        "--size-mib",
        "2",
        "--keep",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("mapped view: true"), "{stdout}");
    assert!(
        stdout.contains("not saved"),
        "the lambda must be reported:\n{stdout}"
    );
    assert!(stdout.contains("identical to the originals: true"));
    let kept = dir.path().join("demo.ach");
    Archive::open(&kept).unwrap().verify().unwrap();
    assert_eq!(env_info(&kept).unwrap().entries.len(), 10);
}

/// Names and metadata come from untrusted files: control characters in them
/// must not reach the terminal (they could retitle it or erase lines).
#[test]
fn control_characters_in_names_and_metadata_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("esc.ach");
    let mut env = Environment::new();
    env.set(
        "x\u{1b}]0;pwned\u{7}\u{1b}[2K\rinnocent",
        Value::Number(1.0),
    );
    let opts = SaveOptions {
        description: Some("line\u{1b}[31mred".into()),
        ..Default::default()
    };
    save_environment(&env, &path, &opts).unwrap();
    let out = ach(&["info", path.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(!out.stdout.contains(&0x1b), "{}", text(&out.stdout));
    assert!(!out.stdout.contains(&b'\r'));
    assert!(text(&out.stdout).contains("\\u{1b}[31mred"));
}
