//! `ach` with URLs, against the S3-protocol server `.ci/run` starts (see
//! `tests/remote/server.rs`): the reading subcommands take a URL, `import`
//! and `repack` write to one, and a missing object is one clean error line.

mod common;
#[allow(dead_code)]
#[path = "../../tests/remote/server.rs"]
mod server;

use common::{ach, assert_one_line_error, code, p, text};

#[test]
fn subcommands_read_and_write_urls() {
    let Some(bucket) = server::bucket() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("weights.json");
    std::fs::write(&json, "[[1.5, 2.0], [3.0, 4.5]]").unwrap();
    let url = server::key(&bucket, "cli");
    let out = ach(&[
        "import",
        &url,
        p(&json),
        "--description",
        "from the cli test",
    ]);
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));

    let info = ach(&["info", &url, "--json"]);
    assert_eq!(code(&info), Some(0), "{}", text(&info.stderr));
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["bindings"], serde_json::json!(["weights"]));
    assert_eq!(info["description"], "from the cli test");

    let ls = text(&ach(&["ls", &url]).stdout);
    assert!(ls.contains("weights"), "{ls}");
    let show = text(&ach(&["show", &url, "weights"]).stdout);
    assert!(show.contains("4.5"), "{show}");
    assert_eq!(code(&ach(&["verify", &url])), Some(0));
    let out_json = dir.path().join("w.json");
    assert_eq!(
        code(&ach(&["export", &url, "weights", "-o", p(&out_json)])),
        Some(0)
    );
    let exported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_json).unwrap()).unwrap();
    assert_eq!(exported, serde_json::json!([[1.5, 2.0], [3.0, 4.5]]));

    // repack to another object, then diff the two over the network.
    let lz4 = server::key(&bucket, "cli-lz4");
    assert_eq!(
        code(&ach(&["repack", &url, &lz4, "--compress", "lz4"])),
        Some(0)
    );
    let diff = ach(&["diff", &url, &lz4]);
    assert_eq!(code(&diff), Some(0), "{}", text(&diff.stdout));

    // Writing over an object needs --allow-overwrite, as for a file.
    let again = ach(&["import", &url, p(&json)]);
    let err = assert_one_line_error(&again, 1, "import over an object");
    assert!(err.contains("already exists"), "{err}");

    let missing = server::key(&bucket, "cli-missing");
    let err = assert_one_line_error(&ach(&["info", &missing]), 1, "a missing object");
    assert!(err.contains("no object at"), "{err}");
}
