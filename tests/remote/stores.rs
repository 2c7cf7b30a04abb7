//! Wrapper stores for the remote tests, in the manner of object_store's
//! own `LimitStore` and `ThrottledStore`: a counting layer (requests and
//! bytes per kind) and a fault-injecting layer (fail, cut short or change
//! the n-th GET, or replace the object before it).

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use achronyme_env::object_store::path::Path;
use achronyme_env::object_store::{
    self, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
    UploadPart,
};
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;

/// Implements `ObjectStore` for a wrapper: its own methods, then the ones
/// both wrappers hand unchanged to the store they wrap (`inner`).
macro_rules! wrapper_store {
    ($name:ident { $($own:tt)* }) => {
        #[async_trait]
        impl ObjectStore for $name {
            $($own)*

            fn delete_stream(
                &self,
                locations: BoxStream<'static, Result<Path>>,
            ) -> BoxStream<'static, Result<Path>> {
                self.inner.delete_stream(locations)
            }

            fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
                self.inner.list(prefix)
            }

            async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
                self.inner.list_with_delimiter(prefix).await
            }

            async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
                self.inner.copy_opts(from, to, options).await
            }
        }
    };
}

/// Requests and bytes seen by a [`Counting`] store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// GET requests (ranged or not), HEAD excluded.
    pub gets: u64,
    /// Bytes the GETs answered with.
    pub get_bytes: u64,
    /// HEAD requests.
    pub heads: u64,
    /// Single PUTs.
    pub puts: u64,
    /// Multipart uploads started.
    pub uploads: u64,
    /// Parts sent.
    pub parts: u64,
    /// Bytes sent in PUTs and parts.
    pub put_bytes: u64,
    /// Uploads completed.
    pub completed: u64,
    /// Uploads aborted.
    pub aborted: u64,
}

#[derive(Default, Debug)]
struct Counters {
    gets: AtomicU64,
    get_bytes: AtomicU64,
    heads: AtomicU64,
    puts: AtomicU64,
    uploads: AtomicU64,
    parts: AtomicU64,
    put_bytes: AtomicU64,
    completed: AtomicU64,
    aborted: AtomicU64,
}

/// Counts every request passed to the store it wraps.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn ObjectStore>,
    c: Arc<Counters>,
}

impl Counting {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(Counting {
            inner,
            c: Arc::default(),
        })
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Counts {
            gets: l(&self.c.gets),
            get_bytes: l(&self.c.get_bytes),
            heads: l(&self.c.heads),
            puts: l(&self.c.puts),
            uploads: l(&self.c.uploads),
            parts: l(&self.c.parts),
            put_bytes: l(&self.c.put_bytes),
            completed: l(&self.c.completed),
            aborted: l(&self.c.aborted),
        }
    }

    /// The counts since `before`.
    pub fn since(&self, before: Counts) -> Counts {
        let now = self.counts();
        Counts {
            gets: now.gets - before.gets,
            get_bytes: now.get_bytes - before.get_bytes,
            heads: now.heads - before.heads,
            puts: now.puts - before.puts,
            uploads: now.uploads - before.uploads,
            parts: now.parts - before.parts,
            put_bytes: now.put_bytes - before.put_bytes,
            completed: now.completed - before.completed,
            aborted: now.aborted - before.aborted,
        }
    }
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

/// Counts the bytes of a GET's stream as the reader consumes them.
fn counted(r: GetResult, bytes: Arc<Counters>) -> GetResult {
    let stream = match r.payload {
        GetResultPayload::Stream(s) => s,
        #[allow(unreachable_patterns)]
        other => {
            return GetResult {
                payload: other,
                ..r
            };
        }
    };
    let stream = stream
        .map(move |piece| {
            if let Ok(b) = &piece {
                bytes.get_bytes.fetch_add(b.len() as u64, Ordering::SeqCst);
            }
            piece
        })
        .boxed();
    GetResult {
        payload: GetResultPayload::Stream(stream),
        ..r
    }
}

wrapper_store!(Counting {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.c.puts.fetch_add(1, Ordering::SeqCst);
        self.c
            .put_bytes
            .fetch_add(payload.content_length() as u64, Ordering::SeqCst);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.c.uploads.fetch_add(1, Ordering::SeqCst);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(CountingUpload {
            inner,
            c: self.c.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            self.c.heads.fetch_add(1, Ordering::SeqCst);
            return self.inner.get_opts(location, options).await;
        }
        self.c.gets.fetch_add(1, Ordering::SeqCst);
        let r = self.inner.get_opts(location, options).await?;
        Ok(counted(r, self.c.clone()))
    }

});

#[derive(Debug)]
struct CountingUpload {
    inner: Box<dyn MultipartUpload>,
    c: Arc<Counters>,
}

#[async_trait]
impl MultipartUpload for CountingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.c.parts.fetch_add(1, Ordering::SeqCst);
        self.c
            .put_bytes
            .fetch_add(data.content_length() as u64, Ordering::SeqCst);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.c.completed.fetch_add(1, Ordering::SeqCst);
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.c.aborted.fetch_add(1, Ordering::SeqCst);
        self.inner.abort().await
    }
}

/// What a [`Faulty`] store does to one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The GET fails as a dropped connection would.
    Fail,
    /// The GET serves only the first half of its bytes.
    Short,
    /// The GET serves its bytes with one bit flipped.
    Flip,
    /// Before the GET, the object is replaced by these bytes.
    Replace(Vec<u8>),
    /// The upload part fails.
    FailPart,
    /// Completing the upload fails (the number is ignored).
    FailComplete,
}

/// Injects faults into chosen requests: `faults` maps the 1-based number
/// of a GET (or of an upload part, for `FailPart`) to what happens to it.
#[derive(Debug)]
pub struct Faulty {
    inner: Arc<dyn ObjectStore>,
    gets: AtomicU64,
    parts: Arc<AtomicU64>,
    faults: Arc<Mutex<Vec<(u64, Fault)>>>,
}

impl Faulty {
    pub fn new(inner: Arc<dyn ObjectStore>, faults: Vec<(u64, Fault)>) -> Arc<Self> {
        Arc::new(Faulty {
            inner,
            gets: AtomicU64::new(0),
            parts: Arc::default(),
            faults: Arc::new(Mutex::new(faults)),
        })
    }

    fn take(&self, n: u64, part: bool) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap();
        let i = faults
            .iter()
            .position(|(k, f)| *k == n && matches!(f, Fault::FailPart) == part)?;
        Some(faults.remove(i).1)
    }
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

fn dropped() -> object_store::Error {
    object_store::Error::Generic {
        store: "Faulty",
        source: "connection reset by peer".into(),
    }
}

wrapper_store!(Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload {
            inner,
            parts: self.parts.clone(),
            faults: self.faults.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            return self.inner.get_opts(location, options).await;
        }
        let n = self.gets.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = self.take(n, false);
        if let Some(Fault::Replace(bytes)) = &fault {
            self.inner
                .put_opts(location, bytes.clone().into(), PutOptions::default())
                .await?;
        }
        if let Some(Fault::Fail) = fault {
            return Err(dropped());
        }
        let r = self.inner.get_opts(location, options).await?;
        let change: fn(&mut Vec<u8>) = match fault {
            Some(Fault::Short) => |b| b.truncate(b.len() / 2),
            Some(Fault::Flip) => |b| {
                let mid = b.len() / 2;
                b[mid] ^= 0x10;
            },
            _ => return Ok(r),
        };
        let (meta, range, attributes, extensions) = (
            r.meta.clone(),
            r.range.clone(),
            r.attributes.clone(),
            r.extensions.clone(),
        );
        let mut bytes = r.bytes().await?.to_vec();
        change(&mut bytes);
        let stream = futures::stream::once(async move { Ok(bytes::Bytes::from(bytes)) }).boxed();
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream),
            meta,
            range,
            attributes,
            extensions,
        })
    }

});

#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    parts: Arc<AtomicU64>,
    faults: Arc<Mutex<Vec<(u64, Fault)>>>,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let n = self.parts.fetch_add(1, Ordering::SeqCst) + 1;
        let mut faults = self.faults.lock().unwrap();
        if let Some(i) = faults
            .iter()
            .position(|(k, f)| *k == n && matches!(f, Fault::FailPart))
        {
            faults.remove(i);
            return Box::pin(async { Err(dropped()) });
        }
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let fail = {
            let mut faults = self.faults.lock().unwrap();
            let at = faults
                .iter()
                .position(|(_, f)| matches!(f, Fault::FailComplete));
            at.map(|i| faults.remove(i)).is_some()
        };
        if fail {
            return Err(dropped());
        }
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}
