//! Helpers shared by the integration tests of `ach`: running the binary,
//! reading its output, and finding a Python with NumPy.
//!
//! Each test file compiles its own copy of this module and uses only part
//! of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `ach` with `args` and waits for it.
pub fn ach(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ach"))
        .args(args)
        .output()
        .expect("ach runs")
}

/// Output bytes as text (invalid UTF-8 replaced).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The exit code (None when killed by a signal).
pub fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// A path as `&str`, for argument lists.
pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Asserts `out` failed with `expected` and one clean error line, no panic;
/// returns its stderr.
pub fn assert_one_line_error(out: &Output, expected: i32, what: &str) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(code(out), Some(expected), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{what}: {stderr}");
    if expected == 1 {
        assert!(stderr.starts_with("ach: error: "), "{what}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{what}: {stderr}");
    }
    stderr
}

/// Bytes as lower-case hex, as Python's `bytes.hex()` prints them.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Python to use for a NumPy test called `test`: `$ACH_PYTHON`, else
/// `python3`, when `import numpy` works in it.
///
/// Without NumPy this panics if `ACH_REQUIRE_NUMPY=1`; otherwise it prints
/// `SKIPPED: <test>: ...` and returns None, and the caller returns early.
/// The line goes straight to the process's stderr, not through `eprintln!`,
/// which the test harness captures and hides for tests that pass: a
/// skipped test must show up in a plain `cargo test`.
pub fn python(test: &str) -> Option<String> {
    let py = std::env::var("ACH_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    if std::env::var("ACH_REQUIRE_NUMPY").is_ok_and(|v| v == "1") {
        panic!(
            "ACH_REQUIRE_NUMPY=1 but `{py} -c \"import numpy\"` fails; set ACH_PYTHON to a Python with NumPy"
        );
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED: {test}: `{py} -c \"import numpy\"` fails; set ACH_PYTHON to a Python with NumPy \
         (ACH_REQUIRE_NUMPY=1 makes this a failure)"
    );
    None
}

/// Runs `script` with `dir` as its only argument; returns its JSON output.
pub fn run_python(py: &str, script: &str, dir: &Path) -> serde_json::Value {
    let out = Command::new(py)
        .args(["-c", script, dir.to_str().unwrap()])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python prints JSON")
}
