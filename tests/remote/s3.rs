//! Against a real S3-protocol server on 127.0.0.1 (moto's standalone
//! server, which `.ci/run` starts). The endpoint, dummy credentials and
//! region come from the standard environment variables, as for any S3
//! client; `ACH_S3_BUCKET` names a bucket that exists. With
//! `ACH_REQUIRE_S3=1` (CI) a missing server fails the tests; otherwise they
//! print that they were skipped.

use std::time::Duration;

use achronyme_env::testdata::{normal_tensor, tensor_workspace};
use achronyme_env::*;

/// The bucket's URL prefix, or None (with a note) when no server runs.
fn bucket() -> Option<String> {
    let required = std::env::var("ACH_REQUIRE_S3").is_ok_and(|v| v == "1");
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
    let bucket = std::env::var("ACH_S3_BUCKET").ok();
    let reachable = endpoint.as_deref().is_some_and(|e| {
        let host = e.trim_start_matches("http://").trim_end_matches('/');
        host.parse()
            .ok()
            .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
            .is_some()
    });
    match (reachable, bucket) {
        (true, Some(b)) => Some(format!("s3://{b}")),
        _ if required => panic!(
            "ACH_REQUIRE_S3=1 but no S3 server answers at AWS_ENDPOINT_URL={endpoint:?} \
             with ACH_S3_BUCKET set (.ci/run starts one)"
        ),
        _ => {
            eprintln!(
                "skipped: no S3 server (set AWS_ENDPOINT_URL=http://127.0.0.1:PORT, \
                 ACH_S3_BUCKET, AWS_ALLOW_HTTP=true and dummy AWS credentials; .ci/run does)"
            );
            None
        }
    }
}

/// A key no other test or run uses.
fn key(prefix: &str, name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}/{name}-{}-{nanos}.ach", std::process::id())
}

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
