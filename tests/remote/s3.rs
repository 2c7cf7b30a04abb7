//! Against a real S3-protocol server on 127.0.0.1 (moto's standalone
//! server, which `.ci/run` starts); see `server.rs`.

use std::time::Duration;

use achronyme_env::testdata::{normal_tensor, tensor_workspace};
use achronyme_env::*;

use super::server::{bucket, key};

fn fast() -> SaveOptions {
    SaveOptions {
        compression: Compression::None,
        durable: false,
        ..Default::default()
    }
}

#[test]
fn s3_save_info_load_restore_verify() {
    let Some(b) = bucket() else { return };
    for (name, env) in [
        ("small", tensor_workspace(normal_tensor(16, 16, 1))),
        // Over one 8 MiB part: a multipart upload, and ranged parts.
        ("large", tensor_workspace(normal_tensor(2048, 1024, 2))),
    ] {
        let url = key(&b, name);
        let report = save_environment(&env, url.as_str(), &fast()).unwrap();
        let info = env_info(url.as_str()).unwrap();
        assert_eq!(info.file_size, report.bytes, "{name}");
        assert_eq!(info.bindings, env.names());
        assert_eq!(
            &env_load_var(url.as_str(), "data").unwrap(),
            env.get("data").unwrap()
        );
        let mut back = Environment::new();
        restore_environment(&mut back, url.as_str(), &RestoreOptions::default()).unwrap();
        assert_eq!(back, env, "{name}");
        Archive::open_url(&url).unwrap().verify().unwrap();
        let err = save_environment(&env, url.as_str(), &fast()).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{name}: {err}");
    }
}

#[test]
fn s3_errors_are_typed() {
    let Some(b) = bucket() else { return };
    let missing = Archive::open_url(&key(&b, "missing")).unwrap_err();
    assert_eq!(
        missing.remote_failure().map(|f| f.kind),
        Some(RemoteErrorKind::NotFound),
        "{missing}"
    );

    // Replaced between the open and a read.
    let url = key(&b, "changed");
    let env = tensor_workspace(normal_tensor(512, 512, 3));
    save_environment(&env, url.as_str(), &fast()).unwrap();
    let archive = Archive::open_url(&url).unwrap();
    let newer = tensor_workspace(normal_tensor(512, 512, 4));
    save_environment(
        &newer,
        url.as_str(),
        &SaveOptions {
            allow_overwrite: true,
            ..fast()
        },
    )
    .unwrap();
    let err = archive.get("data").unwrap_err();
    assert_eq!(
        err.remote_failure().map(|f| f.kind),
        Some(RemoteErrorKind::Changed),
        "{err}"
    );

    // Nothing listens there: a connection failure, after no retries.
    let dead = RemoteOptions::default()
        .with_endpoint("http://127.0.0.1:9")
        .with_retry(0, Duration::from_secs(1));
    let err = Archive::open_url_with(&url, &dead).unwrap_err();
    assert_eq!(
        err.remote_failure().map(|f| f.kind),
        Some(RemoteErrorKind::Connection),
        "{err}"
    );
}
