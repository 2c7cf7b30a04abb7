//! Archives on object storage (the `remote` feature): opening an archive at
//! a URL through [`object_store`], reading it with ranged requests, and
//! saving one with a multipart upload.
//!
//! Everything asynchronous stays in this module: the crate's [`Source`]
//! seam is synchronous, so [`RemoteSource`] blocks on a small tokio runtime
//! of its own (two worker threads, made on first use) or on one the caller
//! names in [`RemoteOptions::runtime`].
//!
//! A remote archive cannot be mapped: a tensor loaded from it lives in a
//! buffer of its own ([`Tensor::is_mapped`](crate::Tensor::is_mapped) is
//! false), counted against the load's memory budget.
//!
//! [`Source`]: crate::Source

mod source;
mod upload;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreScheme, RetryConfig};
use tokio::runtime::{Handle, Runtime};

use crate::archive::reader::Archive;
use crate::error::{Error, RemoteErrorKind, RemoteFailure, Result};

pub use source::RemoteSource;
pub(crate) use upload::upload;

impl Archive {
    /// Opens the archive at `url` (`s3://bucket/key.ach`, `gs://`, `az://`,
    /// `https://`, `file://`, `memory://`) with the default
    /// [`RemoteOptions`]: credentials, region and endpoint from the
    /// environment, as the store's own tools read them.
    ///
    /// Opening takes one round trip (the header and the object's last MiB,
    /// concurrently) when the table of contents lies in that last MiB, and
    /// one more request otherwise. A `file://` URL opens the local file as
    /// [`Archive::open`] does (mapped).
    ///
    /// ```
    /// use achronyme_env::*;
    /// let mut env = Environment::new();
    /// env.set("x", Value::Number(1.5));
    /// save_environment(&env, "memory:///docs/open_url.ach", &SaveOptions::default()).unwrap();
    /// let archive = Archive::open_url("memory:///docs/open_url.ach").unwrap();
    /// assert_eq!(archive.get("x").unwrap(), Value::Number(1.5));
    /// ```
    pub fn open_url(url: &str) -> Result<Archive> {
        Self::open_url_with(url, &RemoteOptions::default())
    }

    /// [`Archive::open_url`] with explicit options: endpoint, region,
    /// credentials, part size, concurrency, retries.
    pub fn open_url_with(url: &str, opts: &RemoteOptions) -> Result<Archive> {
        match resolve(url, opts)? {
            Resolved::Local(path) => Archive::open(path),
            Resolved::Object(target) => {
                Archive::from_source(Arc::new(RemoteSource::open_target(target, opts)?))
            }
        }
    }

    /// Opens the object `key` of a store the caller built (wrapped in
    /// limits, throttles or counters as it likes).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use achronyme_env::*;
    /// use achronyme_env::object_store::{memory::InMemory, ObjectStore, ObjectStoreExt, PutPayload};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("w.ach");
    /// let mut env = Environment::new();
    /// env.set("t", Value::Tensor(Tensor::from_vec(vec![1.0, 2.0])));
    /// save_environment(&env, &path, &SaveOptions::default()).unwrap();
    ///
    /// let store = Arc::new(InMemory::new());
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let bytes = std::fs::read(&path).unwrap();
    /// rt.block_on(store.put(&"w.ach".into(), PutPayload::from(bytes))).unwrap();
    /// let archive = Archive::open_store(store, "w.ach", &RemoteOptions::default()).unwrap();
    /// let Value::Tensor(t) = archive.get("t").unwrap() else { panic!() };
    /// assert!(!t.is_mapped()); // a remote tensor is always an owned buffer
    /// assert_eq!(t.data(), &[1.0, 2.0]);
    /// ```
    pub fn open_store(
        store: Arc<dyn ObjectStore>,
        key: &str,
        opts: &RemoteOptions,
    ) -> Result<Archive> {
        let url = format!("{store}/{key}");
        Archive::from_source(Arc::new(RemoteSource::open(store, key, &url, opts)?))
    }
}

/// How to reach a store and how to read from it: the options of
/// [`Archive::open_url_with`](crate::Archive::open_url_with),
/// [`Archive::open_store`](crate::Archive::open_store) and
/// [`SaveOptions::remote`](crate::SaveOptions::remote).
///
/// Credentials, region and endpoint come first from the environment, the
/// way each store's own tools read them (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
/// `AWS_ALLOW_HTTP`; `GOOGLE_SERVICE_ACCOUNT`; `AZURE_STORAGE_ACCOUNT_NAME`,
/// `AZURE_STORAGE_ACCOUNT_KEY`...); [`RemoteOptions::config`] overrides
/// them with the same keys, in lower case, with or without the store's
/// prefix (`endpoint`, `aws_region`), HTTP client keys included
/// (`allow_http`, `timeout`, `connect_timeout`, `proxy_url`).
///
/// ```
/// use achronyme_env::RemoteOptions;
/// let opts = RemoteOptions::default()
///     .with_endpoint("http://127.0.0.1:9000")
///     .with_region("us-east-1")
///     .with_credentials("key-id", "secret")
///     .with_allow_http(true)
///     .with_part_size(16 << 20)
///     .with_concurrency(32);
/// assert_eq!(opts.concurrency, 32);
/// ```
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// Store configuration as key/value pairs, applied after the
    /// environment (see the type's documentation).
    pub config: Vec<(String, String)>,
    /// How requests are retried with backoff (object_store's default: up
    /// to 10 retries within 3 minutes).
    pub retry: RetryConfig,
    /// Bytes per ranged read of a large blob, and per part of an upload
    /// (default 8 MiB; uploads use at least 5 MiB, the smallest part S3
    /// takes). Reads of a checked blob round it down to whole digest
    /// chunks (1 MiB).
    pub part_size: u64,
    /// Ranged reads in flight at once for one large blob (default 32: at
    /// about 100 MB/s per S3 connection, a client needs dozens to fill a
    /// fast link; parts stream into the result, so this costs no memory).
    pub concurrency: usize,
    /// Upload parts in flight at once (default 6: with 8 MiB parts, at
    /// most 48 MiB of a save in memory).
    pub upload_concurrency: usize,
    /// Bytes of the object's end fetched at open together with its header
    /// (default 1 MiB): when the table of contents and the trailer lie in
    /// them, the open takes one round trip.
    pub open_tail: u64,
    /// A tokio runtime to run requests on, instead of this crate's own.
    /// Blocking calls must not be made from one of its tasks.
    pub runtime: Option<Handle>,
    /// A store to use instead of the one the URL names (wrapped in
    /// limits, throttles or counters as the caller likes): the URL then
    /// only gives the key, its path.
    pub store: Option<Arc<dyn ObjectStore>>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            config: Vec::new(),
            retry: RetryConfig::default(),
            part_size: 8 << 20,
            concurrency: 32,
            upload_concurrency: 6,
            open_tail: 1 << 20,
            runtime: None,
            store: None,
        }
    }
}

impl RemoteOptions {
    /// Sets one store configuration key (see the type's documentation).
    pub fn with_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// The store's endpoint (an S3-compatible server, `AWS_ENDPOINT_URL`).
    pub fn with_endpoint(self, endpoint: impl Into<String>) -> Self {
        self.with_option("endpoint", endpoint)
    }

    /// The region (`AWS_REGION`).
    pub fn with_region(self, region: impl Into<String>) -> Self {
        self.with_option("region", region)
    }

    /// Static S3 credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    pub fn with_credentials(self, key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.with_option("access_key_id", key_id)
            .with_option("secret_access_key", secret)
    }

    /// Allows plain `http://` endpoints (a local test server;
    /// `AWS_ALLOW_HTTP=true` in the environment does the same).
    pub fn with_allow_http(self, allow: bool) -> Self {
        self.with_option("allow_http", allow.to_string())
    }

    /// Bytes per ranged read and per upload part.
    pub fn with_part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes.max(1);
        self
    }

    /// Ranged reads in flight at once.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Uses `store` instead of the store a URL names; the URL's path is the
    /// key.
    pub fn with_store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Retries of a failed request, and how long to keep trying.
    pub fn with_retry(mut self, max_retries: usize, timeout: Duration) -> Self {
        self.retry.max_retries = max_retries;
        self.retry.retry_timeout = timeout;
        self
    }

    /// The runtime to block on.
    pub(crate) fn handle(&self) -> Result<Handle> {
        if let Some(h) = &self.runtime {
            return Ok(h.clone());
        }
        static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
        let rt = RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ach-remote")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        });
        match rt {
            Ok(rt) => Ok(rt.handle().clone()),
            Err(e) => Err(Error::io(
                "starting the object store runtime for",
                "(remote archive)",
                io::Error::other(e.clone()),
            )),
        }
    }
}

/// Runs `f` to completion on `handle`, from a thread that is not one of a
/// runtime's tasks (blocking there would stall or panic).
pub(crate) fn block_on<F: Future>(handle: &Handle, f: F) -> io::Result<F::Output> {
    if Handle::try_current().is_ok() {
        return Err(io::Error::other(
            "a remote archive was read from inside an async task; call it through \
             tokio::task::spawn_blocking",
        ));
    }
    Ok(handle.block_on(f))
}

/// A URL resolved: a local file (`file://`), or a store and a key in it.
pub(crate) enum Resolved {
    Local(PathBuf),
    Object(Target),
}

/// An object: its store, its key, and its URL for messages.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub store: Arc<dyn ObjectStore>,
    pub key: ObjectPath,
    pub url: String,
}

/// The store of `memory://` URLs: one per process, so that what a save put
/// there an open finds.
fn memory_store() -> Arc<dyn ObjectStore> {
    static MEMORY: OnceLock<Arc<InMemory>> = OnceLock::new();
    MEMORY.get_or_init(|| Arc::new(InMemory::new())).clone()
}

fn config_error(url: &str, detail: impl Into<String>) -> Error {
    Error::Remote(Box::new(RemoteFailure {
        kind: RemoteErrorKind::Config,
        url: url.to_string(),
        detail: detail.into(),
    }))
}

/// Builds the store a URL names, with `opts` applied over the environment.
pub(crate) fn resolve(url_text: &str, opts: &RemoteOptions) -> Result<Resolved> {
    let url = url::Url::parse(url_text).map_err(|e| config_error(url_text, e.to_string()))?;
    if let Some(store) = &opts.store {
        let key = ObjectPath::from_url_path(url.path())
            .map_err(|e| config_error(url_text, e.to_string()))?;
        return Ok(Resolved::Object(Target {
            store: store.clone(),
            key,
            url: url_text.to_string(),
        }));
    }
    let (scheme, key) =
        ObjectStoreScheme::parse(&url).map_err(|e| config_error(url_text, e.to_string()))?;
    let bad_key = |e: object_store::Error| config_error(url_text, e.to_string());
    macro_rules! build {
        ($builder:expr, $key:ty) => {{
            let mut b = $builder.with_url(url_text).with_retry(opts.retry.clone());
            for (k, v) in &opts.config {
                let key: $key = k.to_ascii_lowercase().parse().map_err(bad_key)?;
                b = b.with_config(key, v);
            }
            Arc::new(b.build().map_err(|e| failure_error(url_text, &e))?) as Arc<dyn ObjectStore>
        }};
    }
    let store = match scheme {
        ObjectStoreScheme::Local => {
            let path = url
                .to_file_path()
                .map_err(|()| config_error(url_text, "not a local file path"))?;
            return Ok(Resolved::Local(path));
        }
        ObjectStoreScheme::Memory => memory_store(),
        ObjectStoreScheme::AmazonS3 => build!(
            object_store::aws::AmazonS3Builder::from_env(),
            object_store::aws::AmazonS3ConfigKey
        ),
        ObjectStoreScheme::GoogleCloudStorage => build!(
            object_store::gcp::GoogleCloudStorageBuilder::from_env(),
            object_store::gcp::GoogleConfigKey
        ),
        ObjectStoreScheme::MicrosoftAzure => build!(
            object_store::azure::MicrosoftAzureBuilder::from_env(),
            object_store::azure::AzureConfigKey
        ),
        ObjectStoreScheme::Http => {
            let mut client = ClientOptions::new();
            for (k, v) in &opts.config {
                let key: object_store::ClientConfigKey =
                    k.to_ascii_lowercase().parse().map_err(bad_key)?;
                client = client.with_config(key, v);
            }
            let b = object_store::http::HttpBuilder::new()
                .with_url(url_text)
                .with_client_options(client)
                .with_retry(opts.retry.clone());
            // The HTTP store's URL is the server; the key is the path.
            Arc::new(b.build().map_err(|e| failure_error(url_text, &e))?) as Arc<dyn ObjectStore>
        }
        other => {
            return Err(Error::RemoteUnsupported {
                url: url_text.to_string(),
                reason: format!("this build does not know the store {other:?}"),
            });
        }
    };
    let key = match scheme {
        // The HTTP store is rooted at the URL itself.
        ObjectStoreScheme::Http => ObjectPath::default(),
        _ => key,
    };
    Ok(Resolved::Object(Target {
        store,
        key,
        url: url_text.to_string(),
    }))
}

/// What kind of failure an object_store error is. Status codes are not
/// public in object_store's errors, so throttling, wrong endpoints and
/// dropped connections are recognised by the text the client reports.
pub(crate) fn classify(e: &object_store::Error) -> RemoteErrorKind {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => RemoteErrorKind::NotFound,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => RemoteErrorKind::AccessDenied,
        E::Precondition { .. } | E::NotModified { .. } => RemoteErrorKind::Changed,
        E::AlreadyExists { .. } => RemoteErrorKind::AlreadyExists,
        E::NotSupported { .. } | E::NotImplemented { .. } => RemoteErrorKind::Unsupported,
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => RemoteErrorKind::Config,
        other => {
            // The request's URL is in the text, and a key or bucket may hold
            // anything ("run-4290.ach" is not throttling): words that
            // contain "://" are left out before looking.
            let text = chain_text(other)
                .split_whitespace()
                .filter(|w| !w.contains("://"))
                .collect::<Vec<_>>()
                .join(" ");
            let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
            if has(&[
                "429",
                "503 Service",
                "SlowDown",
                "Throttl",
                "TooManyRequests",
            ]) {
                RemoteErrorKind::Throttled
            } else if has(&[
                "redirect",
                "301",
                "PermanentRedirect",
                "AuthorizationHeaderMalformed",
                "IllegalLocationConstraint",
                "region",
            ]) {
                RemoteErrorKind::WrongEndpoint
            } else if has(&[
                "403",
                "AccessDenied",
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
            ]) {
                RemoteErrorKind::AccessDenied
            } else if has(&[
                "connect",
                "Connection",
                "timed out",
                "timeout",
                "dns error",
                "sending request",
                "error decoding response body",
                "reset",
                "closed",
                "EOF",
                "end of file",
            ]) {
                RemoteErrorKind::Connection
            } else {
                RemoteErrorKind::Other
            }
        }
    }
}

/// The error and every source under it, as one line.
fn chain_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

/// The failure an object_store error is, for `url`.
pub(crate) fn failure(url: &str, e: &object_store::Error) -> RemoteFailure {
    // object_store's messages already quote their sources.
    RemoteFailure {
        kind: classify(e),
        url: url.to_string(),
        detail: e.to_string(),
    }
}

/// [`failure`] as this crate's error.
pub(crate) fn failure_error(url: &str, e: &object_store::Error) -> Error {
    Error::Remote(Box::new(failure(url, e)))
}

/// A failure as the I/O error a [`Source`](crate::Source) returns: the
/// reader wraps it in [`Error::SourceRead`], and
/// [`Error::remote_failure`] finds it again.
pub(crate) fn failure_io(f: RemoteFailure) -> io::Error {
    let kind = match f.kind {
        RemoteErrorKind::NotFound => io::ErrorKind::NotFound,
        RemoteErrorKind::AccessDenied => io::ErrorKind::PermissionDenied,
        RemoteErrorKind::Connection => io::ErrorKind::ConnectionAborted,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(message: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: message.into(),
        }
    }

    #[test]
    fn a_status_code_inside_the_url_is_not_the_status() {
        // The key's digits hold "429" and "301"; the failure is a refused
        // connection. (Found in CI: a timestamped key read as throttling.)
        let e = generic(
            "Error performing GET http://127.0.0.1:9/ach-ci/changed-9418-1795977804298942859.ach \
             in 1.9ms - HTTP error: error sending request",
        );
        assert_eq!(classify(&e), RemoteErrorKind::Connection);
        let e =
            generic("Error performing GET https://b.s3.amazonaws.com/runs/403/301.ach - timed out");
        assert_eq!(classify(&e), RemoteErrorKind::Connection);
    }

    #[test]
    fn status_codes_and_service_words_still_classify() {
        let cases = [
            (
                "Client error with status 429 Too Many Requests: ",
                RemoteErrorKind::Throttled,
            ),
            (
                "Received 503 Service Unavailable: SlowDown",
                RemoteErrorKind::Throttled,
            ),
            (
                "status 301 Moved Permanently: PermanentRedirect",
                RemoteErrorKind::WrongEndpoint,
            ),
            (
                "Client error with status 403 Forbidden: ",
                RemoteErrorKind::AccessDenied,
            ),
            ("something odd happened", RemoteErrorKind::Other),
        ];
        for (text, kind) in cases {
            let msg = format!("Error performing GET http://127.0.0.1:5/b/k.ach - {text}");
            assert_eq!(classify(&generic(&msg)), kind, "{text}");
        }
    }
}
