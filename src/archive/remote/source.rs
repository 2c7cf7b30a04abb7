//! [`RemoteSource`]: an object read with ranged GET requests.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, GetResult, ObjectStore};
use tokio::runtime::Handle;

use super::{RemoteOptions, Target, block_on, failure, failure_error, failure_io};
use crate::archive::source::{Bytes, Checked, Checks, ReadError, Source};
use crate::error::{Error, RemoteErrorKind, RemoteFailure, Result};
use crate::format::layout::HEADER_LEN;

/// Extra attempts at one ranged read whose connection dropped or that came
/// short, on top of the client's own retries of failed requests.
const PART_RETRIES: usize = 2;

/// An archive's bytes in an object store, read with ranged requests.
///
/// Opening fetches the header and the object's last
/// [`RemoteOptions::open_tail`] bytes concurrently (one round trip) and
/// keeps them: when the table of contents, the trailer and the hash pool
/// lie in that tail, [`Archive::from_source`](crate::Archive::from_source)
/// makes no other request. A read of up to
/// [`RemoteOptions::part_size`] bytes is one ranged GET; a larger one is
/// split into parts of that size, [`RemoteOptions::concurrency`] of them in
/// flight, each streamed straight into its place in the result: memory is
/// the result plus the network buffers of the parts in flight.
///
/// Every read after the open names the object's ETag (and version, where
/// the store keeps versions): an object replaced since the open fails with
/// [`RemoteErrorKind::Changed`] instead of mixing two archives' bytes.
pub struct RemoteSource {
    target: Target,
    handle: Handle,
    len: u64,
    e_tag: Option<String>,
    version: Option<String>,
    part_size: u64,
    concurrency: usize,
    /// What the open fetched: the header, then the tail.
    cached: Vec<(u64, Bytes)>,
}

impl std::fmt::Debug for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSource")
            .field("url", &self.target.url)
            .field("len", &self.len)
            .field("e_tag", &self.e_tag)
            .finish()
    }
}

/// Object store bytes as this crate's, without a copy.
fn shared(b: bytes::Bytes) -> Bytes {
    Bytes::from_owner(Arc::new(b))
}

impl RemoteSource {
    /// Opens the object `key` of `store`: one round trip of two concurrent
    /// ranged GETs (header and tail). `url` names the object in messages.
    pub fn open(
        store: Arc<dyn ObjectStore>,
        key: &str,
        url: &str,
        opts: &RemoteOptions,
    ) -> Result<RemoteSource> {
        let target = super::Target {
            store,
            key: key.into(),
            url: url.to_string(),
        };
        Self::open_target(target, opts)
    }

    pub(crate) fn open_target(target: Target, opts: &RemoteOptions) -> Result<RemoteSource> {
        let handle = opts.handle()?;
        let url = target.url.clone();
        let io_err = |e: io::Error| Error::io("opening", url.clone(), e);
        // Two tries: the object may be replaced between the two requests.
        let mut tries = 0;
        let empty = RemoteSource {
            target: target.clone(),
            handle: handle.clone(),
            len: 0,
            e_tag: None,
            version: None,
            part_size: opts.part_size.max(1),
            concurrency: opts.concurrency.max(1),
            cached: Vec::new(),
        };
        let (header, tail) = loop {
            let fetched = block_on(
                &handle,
                open_requests(&target, opts.open_tail.max(HEADER_LEN)),
            )
            .map_err(io_err)?;
            match fetched {
                Err(e) if e.kind == RemoteErrorKind::Changed && tries == 0 => tries += 1,
                Err(e) => return Err(Error::Remote(Box::new(e))),
                // The reader reports an empty object as too short.
                Ok(None) => return Ok(empty),
                Ok(Some(both)) => break both,
            }
        };
        let meta = tail.meta.clone();
        let header_range = header.range.clone();
        let tail_range = tail.range.clone();
        let (header_bytes, tail_bytes) = block_on(&handle, async {
            futures::try_join!(header.bytes(), tail.bytes())
        })
        .map_err(io_err)?
        .map_err(|e| failure_error(&url, &e))?;
        let mut cached = Vec::new();
        for (range, bytes) in [(header_range, header_bytes), (tail_range, tail_bytes)] {
            if bytes.len() as u64 == range.end - range.start {
                cached.push((range.start, shared(bytes)));
            }
        }
        Ok(RemoteSource {
            target,
            handle,
            len: meta.size,
            e_tag: meta.e_tag,
            version: meta.version,
            part_size: opts.part_size.max(1),
            concurrency: opts.concurrency.max(1),
            cached,
        })
    }

    /// The object's URL.
    pub fn url(&self) -> &str {
        &self.target.url
    }

    /// The ETag the object had when it was opened, if the store gives one.
    pub fn e_tag(&self) -> Option<&str> {
        self.e_tag.as_deref()
    }

    fn options(&self, range: Range<u64>) -> GetOptions {
        GetOptions {
            if_match: self.e_tag.clone(),
            version: self.version.clone(),
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        }
    }

    fn fail(&self, kind: RemoteErrorKind, detail: impl Into<String>) -> RemoteFailure {
        RemoteFailure {
            kind,
            url: self.target.url.clone(),
            detail: detail.into(),
        }
    }

    /// Starts a ranged GET of `range` and checks that it answers for the
    /// object that was opened.
    async fn get(&self, range: Range<u64>) -> std::result::Result<GetResult, RemoteFailure> {
        let got = self
            .target
            .store
            .get_opts(&self.target.key, self.options(range.clone()))
            .await
            .map_err(|e| failure(&self.target.url, &e))?;
        // A store that ignores If-Match still reports the ETag it served.
        if self.e_tag.is_some() && got.meta.e_tag != self.e_tag || got.meta.size != self.len {
            return Err(self.fail(
                RemoteErrorKind::Changed,
                format!(
                    "opened with ETag {:?} and {} bytes, now ETag {:?} and {} bytes",
                    self.e_tag, self.len, got.meta.e_tag, got.meta.size
                ),
            ));
        }
        if got.range != range {
            return Err(self.fail(
                RemoteErrorKind::Connection,
                format!(
                    "asked for bytes {range:?}, the store answered {:?}",
                    got.range
                ),
            ));
        }
        Ok(got)
    }

    /// Streams `range` into `out` (exactly its length), retrying a read
    /// that dropped or came short.
    async fn fill(
        &self,
        range: Range<u64>,
        out: &mut [u8],
    ) -> std::result::Result<(), RemoteFailure> {
        let mut attempt = 0;
        loop {
            match self.fill_once(range.clone(), out).await {
                Err(e) if e.kind == RemoteErrorKind::Connection && attempt < PART_RETRIES => {
                    attempt += 1
                }
                other => return other,
            }
        }
    }

    async fn fill_once(
        &self,
        range: Range<u64>,
        out: &mut [u8],
    ) -> std::result::Result<(), RemoteFailure> {
        let mut stream = self.get(range.clone()).await?.into_stream();
        let mut at = 0usize;
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| {
                let mut f = failure(&self.target.url, &e);
                if f.kind == RemoteErrorKind::Other {
                    f.kind = RemoteErrorKind::Connection;
                }
                f
            })?;
            let end = at
                .checked_add(piece.len())
                .filter(|&end| end <= out.len())
                .ok_or_else(|| {
                    self.fail(
                        RemoteErrorKind::Connection,
                        format!(
                            "the store served more than the {} bytes of {range:?}",
                            out.len()
                        ),
                    )
                })?;
            out[at..end].copy_from_slice(&piece);
            at = end;
        }
        if at != out.len() {
            return Err(self.fail(
                RemoteErrorKind::Connection,
                format!(
                    "the store served {at} of the {} bytes of {range:?} (the connection dropped?)",
                    out.len()
                ),
            ));
        }
        Ok(())
    }

    /// One ranged GET of a small range, kept as the store's own buffer.
    async fn fetch_small(&self, range: Range<u64>) -> std::result::Result<Bytes, RemoteFailure> {
        let mut attempt = 0;
        loop {
            let got = self.get(range.clone()).await;
            let bytes = match got {
                Ok(g) => g.bytes().await.map_err(|e| {
                    let mut f = failure(&self.target.url, &e);
                    if f.kind == RemoteErrorKind::Other {
                        f.kind = RemoteErrorKind::Connection;
                    }
                    f
                }),
                Err(e) => Err(e),
            };
            let outcome = bytes.and_then(|b| match b.len() as u64 == range.end - range.start {
                true => Ok(shared(b)),
                false => Err(self.fail(
                    RemoteErrorKind::Connection,
                    format!(
                        "the store served {} of the {} bytes of {range:?} (the connection dropped?)",
                        b.len(),
                        range.end - range.start
                    ),
                )),
            });
            match outcome {
                Err(e) if e.kind == RemoteErrorKind::Connection && attempt < PART_RETRIES => {
                    attempt += 1
                }
                other => return other,
            }
        }
    }

    /// A large range as parts of `part` bytes fetched concurrently into one
    /// buffer; each part, once whole, goes to `done` with its offset in the
    /// range.
    async fn fetch_parts<'b>(
        &self,
        range: Range<u64>,
        buf: &'b mut [u8],
        part: usize,
        done: impl Fn(usize, &'b [u8]),
    ) -> std::result::Result<(), RemoteFailure> {
        let jobs = buf.chunks_mut(part).enumerate().map(|(k, out)| {
            let start = range.start + (k * part) as u64;
            let end = start + out.len() as u64;
            async move {
                self.fill(start..end, out).await?;
                Ok::<_, RemoteFailure>((k * part, &*out))
            }
        });
        futures::stream::iter(jobs)
            .buffer_unordered(self.concurrency)
            .try_for_each(|(at, piece)| {
                done(at, piece);
                futures::future::ready(Ok(()))
            })
            .await
    }

    fn part_len(&self) -> usize {
        usize::try_from(self.part_size).unwrap_or(usize::MAX)
    }

    fn fetch(&self, offset: u64, len: u64) -> std::result::Result<Bytes, ReadError> {
        let range = offset..offset + len;
        if len <= self.part_size {
            return run(block_on(&self.handle, self.fetch_small(range)));
        }
        let mut buf = zeroed(len)?;
        let part = self.part_len();
        run(block_on(
            &self.handle,
            self.fetch_parts(range, &mut buf, part, |_, _| ()),
        ))?;
        Ok(Bytes::from_vec(buf))
    }

    /// [`RemoteSource::fetch`] of a large range with its pieces checked as
    /// the parts arrive, on a thread of their own while this one keeps
    /// fetching: parts are whole multiples of the pieces, and the checks
    /// overlap the transfer.
    fn fetch_checked(
        &self,
        offset: u64,
        len: u64,
        checks: &Checks<'_>,
    ) -> std::result::Result<(Bytes, Checked), ReadError> {
        let chunk = usize::try_from(checks.chunk.max(1)).unwrap_or(usize::MAX);
        let part = (self.part_len() / chunk).max(1).saturating_mul(chunk);
        let mut buf = zeroed(len)?;
        let range = offset..offset + len;
        let (tx, rx) = std::sync::mpsc::channel::<(usize, &[u8])>();
        let rx = std::sync::Mutex::new(rx);
        let (fetched, checked) = std::thread::scope(|s| {
            // One checker per core: hashing, not the network, is what a
            // fast store leaves to wait for.
            let check_parts = || {
                let mut first_bad: Option<u64> = None;
                loop {
                    let next = rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((at, part))) = next else { break };
                    for (j, piece) in part.chunks(chunk).enumerate() {
                        let k = ((at / chunk) + j) as u64;
                        if first_bad.is_none_or(|b| k < b) && !(checks.check)(k, piece) {
                            first_bad = Some(k);
                        }
                    }
                }
                first_bad
            };
            let checkers: Vec<_> = (0..crate::parallel::cores().max(1))
                .map(|_| s.spawn(check_parts))
                .collect();
            let fetched = block_on(
                &self.handle,
                self.fetch_parts(range, &mut buf, part, |at, piece| {
                    // The checkers only stop early if one panicked.
                    let _ = tx.send((at, piece));
                }),
            );
            drop(tx);
            let mut first_bad: Option<u64> = None;
            for c in checkers {
                match c.join() {
                    Ok(bad) => {
                        first_bad = match (first_bad, bad) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        }
                    }
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            (fetched, first_bad)
        });
        drop(rx);
        run(fetched)?;
        let checked = match checked {
            None => Checked::Passed,
            Some(k) => Checked::Failed(k),
        };
        Ok((Bytes::from_vec(buf), checked))
    }
}

/// A blocking run's outcome as a [`Source`] returns it.
fn run<T>(
    r: io::Result<std::result::Result<T, RemoteFailure>>,
) -> std::result::Result<T, ReadError> {
    match r {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(f)) => Err(ReadError::Io(failure_io(f))),
        Err(e) => Err(ReadError::Io(e)),
    }
}

/// A zeroed buffer, or an out-of-memory error instead of an abort.
fn zeroed(len: u64) -> io::Result<Vec<u8>> {
    let oom = || {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("cannot allocate {len} bytes to read a range of the object"),
        )
    };
    let n = usize::try_from(len).map_err(|_| oom())?;
    // Zeroed by the allocator (fresh pages from the system are zero
    // already): no pass over a gigabyte before the parts arrive.
    bytemuck::try_zeroed_vec(n).map_err(|()| oom())
}

/// The open's two requests, concurrently: the header and the tail. Both
/// must answer for the same object (same ETag and size).
async fn open_requests(
    target: &Target,
    tail: u64,
) -> std::result::Result<Option<(GetResult, GetResult)>, RemoteFailure> {
    let get = |range| {
        target.store.get_opts(
            &target.key,
            GetOptions {
                range: Some(range),
                ..GetOptions::default()
            },
        )
    };
    let (header, tail) = futures::join!(
        get(GetRange::Bounded(0..HEADER_LEN)),
        get(GetRange::Suffix(tail))
    );
    let (header, tail) = match (header, tail) {
        (Ok(h), Ok(t)) => (h, t),
        (Err(e), _) | (_, Err(e)) => {
            // An empty object has no range to serve (HTTP 416).
            let failure = failure(&target.url, &e);
            if !matches!(
                failure.kind,
                RemoteErrorKind::NotFound | RemoteErrorKind::AccessDenied
            ) && is_empty(target).await
            {
                return Ok(None);
            }
            return Err(failure);
        }
    };
    if header.meta.e_tag != tail.meta.e_tag || header.meta.size != tail.meta.size {
        return Err(RemoteFailure {
            kind: RemoteErrorKind::Changed,
            url: target.url.clone(),
            detail: "the object was replaced between the two requests of the open".into(),
        });
    }
    Ok(Some((header, tail)))
}

async fn is_empty(target: &Target) -> bool {
    use object_store::ObjectStoreExt;
    matches!(target.store.head(&target.key).await, Ok(m) if m.size == 0)
}

impl Source for RemoteSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn view_checked(
        &self,
        offset: u64,
        len: u64,
        checks: &Checks<'_>,
    ) -> std::result::Result<(Bytes, Checked), ReadError> {
        let end = offset.checked_add(len).ok_or(ReadError::OutOfRange)?;
        if end > self.len {
            return Err(ReadError::OutOfRange);
        }
        let cached = self
            .cached
            .iter()
            .any(|(at, b)| offset >= *at && end <= at + b.len() as u64);
        if len <= self.part_size || cached {
            return Ok((self.read(offset, len)?, Checked::NotRun));
        }
        self.fetch_checked(offset, len, checks)
    }

    fn allocates_reads(&self) -> bool {
        true
    }

    fn read(&self, offset: u64, len: u64) -> std::result::Result<Bytes, ReadError> {
        let end = offset.checked_add(len).ok_or(ReadError::OutOfRange)?;
        if end > self.len {
            return Err(ReadError::OutOfRange);
        }
        for (at, bytes) in &self.cached {
            if offset >= *at && end <= at + bytes.len() as u64 {
                return bytes.slice(offset - at, len).ok_or(ReadError::OutOfRange);
            }
        }
        if len == 0 {
            return Ok(Bytes::from_vec(Vec::new()));
        }
        self.fetch(offset, len)
    }
}
