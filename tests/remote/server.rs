//! The S3-protocol server the remote tests run against, when one runs:
//! the endpoint, dummy credentials and region come from the standard
//! environment variables, as for any S3 client, and `ACH_S3_BUCKET` names
//! a bucket that exists. With `ACH_REQUIRE_S3=1` (CI) a missing server
//! fails the tests; otherwise they print that they were skipped. Shared by
//! the library's and the command's tests.

use std::time::Duration;

/// The bucket's URL prefix, or None (with a note) when no server runs.
pub fn bucket() -> Option<String> {
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
pub fn key(prefix: &str, name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}/{name}-{}-{nanos}.ach", std::process::id())
}
