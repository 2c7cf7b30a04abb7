//! Saving an archive to an object: written to a local spool file, then
//! sent as one conditional PUT (small archives) or a multipart upload.
//!
//! Why a spool file: the writer ([`crate::archive::writer`]) seeks back.
//! It writes the header last (it points at the table of contents, whose
//! place is known only at the end), patches each compressed blob's frame
//! and chunk table over a placeholder once its chunks are written, and
//! rewinds over a compressed attempt that did not pay to write it raw.
//! Those seeks can reach back a whole blob, gigabytes for a large tensor,
//! and an upload part, once sent, cannot change. A local temporary file
//! takes the seeks; the upload then reads it part by part. Memory stays
//! bounded by the parts in flight
//! ([`RemoteOptions::upload_concurrency`] times [`RemoteOptions::part_size`]),
//! never the archive's size; the cost is local disk space for one archive,
//! freed when the save returns.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use object_store::{MultipartUpload, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::{RemoteOptions, Target, block_on, failure};
use crate::error::{Error, RemoteErrorKind, RemoteFailure, Result};

/// Writes an archive with `write` (into a spool file it may seek in,
/// starting empty) and uploads it to `target`. The object appears only when
/// the upload completes; a failed write or upload leaves whatever object
/// was there before untouched (a started multipart upload is aborted).
///
/// Without `overwrite`, an archive that fits in one part is sent as one
/// PUT that only creates (`PutMode::Create`): atomic on stores with
/// conditional writes. A larger one is checked for an existing object
/// before the write and again before the upload completes; between that
/// check and the completion another writer can still win (object_store's
/// multipart uploads have no conditional completion).
pub(crate) fn upload(
    target: &Target,
    opts: &RemoteOptions,
    overwrite: bool,
    write: impl FnOnce(&mut File) -> Result<u64>,
) -> Result<u64> {
    let handle = opts.handle()?;
    let url = target.url.as_str();
    let io_err = |action, e| Error::io(action, url, e);
    let remote = |f: RemoteFailure| -> Error {
        match f.kind {
            RemoteErrorKind::AlreadyExists => Error::AlreadyExists { path: url.into() },
            _ => Error::Remote(Box::new(f)),
        }
    };
    if !overwrite
        && block_on(&handle, exists(target))
            .map_err(|e| io_err("checking", e))?
            .map_err(remote)?
    {
        return Err(Error::AlreadyExists { path: url.into() });
    }
    let mut spool = tempfile::tempfile().map_err(|e| io_err("creating a spool file for", e))?;
    let len = write(&mut spool)?;
    spool
        .seek(SeekFrom::Start(0))
        .map_err(|e| io_err("reading back the spool file of", e))?;
    let part = upload_part_size(opts.part_size, len);
    let sent = if len <= part {
        let mut all = Vec::new();
        (&mut spool)
            .take(len)
            .read_to_end(&mut all)
            .map_err(|e| io_err("reading back the spool file of", e))?;
        block_on(&handle, put_whole(target, all, overwrite))
    } else {
        let parts = Parts {
            file: &mut spool,
            len,
            part,
            in_flight: opts.upload_concurrency.max(1),
        };
        block_on(&handle, put_parts(target, parts, overwrite))
    };
    sent.map_err(|e| io_err("uploading", e))?.map_err(remote)?;
    Ok(len)
}

/// S3's limits on a multipart upload: parts of at least 5 MiB (but the
/// last), at most 10,000 of them.
const MIN_PART: u64 = 5 << 20;
const MAX_PARTS: u64 = 10_000;

/// The part size for `len` bytes: the asked size, raised to S3's minimum,
/// and raised again (to whole MiB) when `len` would need more than 10,000
/// parts, so that a large save does not fail at its last part.
fn upload_part_size(asked: u64, len: u64) -> u64 {
    let fits = len.div_ceil(MAX_PARTS).next_multiple_of(1 << 20);
    asked.max(MIN_PART).max(fits)
}

async fn exists(target: &Target) -> std::result::Result<bool, RemoteFailure> {
    match target.store.head(&target.key).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(failure(&target.url, &e)),
    }
}

/// One PUT of the whole archive; only creating when not overwriting.
async fn put_whole(
    target: &Target,
    bytes: Vec<u8>,
    overwrite: bool,
) -> std::result::Result<(), RemoteFailure> {
    let mode = match overwrite {
        true => PutMode::Overwrite,
        false => PutMode::Create,
    };
    let payload = PutPayload::from(bytes);
    let put = |mode| {
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        target.store.put_opts(&target.key, payload.clone(), opts)
    };
    match put(mode).await {
        Ok(_) => Ok(()),
        // A store without conditional writes: the check made before the
        // write is all there is.
        Err(
            object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. },
        ) if !overwrite => match exists(target).await? {
            true => Err(RemoteFailure {
                kind: RemoteErrorKind::AlreadyExists,
                url: target.url.clone(),
                detail: "created meanwhile".into(),
            }),
            false => put(PutMode::Overwrite)
                .await
                .map(drop)
                .map_err(|e| failure(&target.url, &e)),
        },
        Err(e) => Err(failure(&target.url, &e)),
    }
}

/// The spool file, read part by part.
struct Parts<'a> {
    file: &'a mut File,
    len: u64,
    part: u64,
    in_flight: usize,
}

/// A multipart upload of the spool file, at most `in_flight` parts held
/// at once; aborted on any failure.
async fn put_parts(
    target: &Target,
    parts: Parts<'_>,
    overwrite: bool,
) -> std::result::Result<(), RemoteFailure> {
    let fail = |e: object_store::Error| failure(&target.url, &e);
    let mut upload = target
        .store
        .put_multipart(&target.key)
        .await
        .map_err(fail)?;
    let outcome = send_parts(&mut *upload, target, parts, overwrite).await;
    let outcome = match outcome {
        Ok(()) => upload.complete().await.map(drop).map_err(fail),
        Err(e) => Err(e),
    };
    if outcome.is_err() {
        // Whether sending a part or completing failed, the parts are
        // abandoned: abort, so the store does not keep (and bill) them.
        // Best effort: a store that keeps the parts of an upload that was
        // neither completed nor aborted removes them after its own expiry.
        let _ = upload.abort().await;
    }
    outcome
}

async fn send_parts(
    upload: &mut dyn MultipartUpload,
    target: &Target,
    parts: Parts<'_>,
    overwrite: bool,
) -> std::result::Result<(), RemoteFailure> {
    let fail = |e: object_store::Error| failure(&target.url, &e);
    let spool_failed = |e: io::Error| RemoteFailure {
        kind: RemoteErrorKind::Other,
        url: target.url.clone(),
        detail: format!("reading back the local spool file: {e}"),
    };
    let mut pending = FuturesUnordered::new();
    let mut sent = 0u64;
    while sent < parts.len {
        let n = parts.part.min(parts.len - sent);
        let mut buf = Vec::new();
        (&mut *parts.file)
            .take(n)
            .read_to_end(&mut buf)
            .map_err(spool_failed)?;
        if buf.len() as u64 != n {
            return Err(spool_failed(io::ErrorKind::UnexpectedEof.into()));
        }
        pending.push(upload.put_part(PutPayload::from(buf)));
        sent += n;
        while pending.len() >= parts.in_flight {
            if let Some(done) = pending.next().await {
                done.map_err(fail)?;
            }
        }
    }
    while let Some(done) = pending.next().await {
        done.map_err(fail)?;
    }
    if !overwrite && exists(target).await? {
        return Err(RemoteFailure {
            kind: RemoteErrorKind::AlreadyExists,
            url: target.url.clone(),
            detail: "created while this save was uploading".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_within_s3_limits_whatever_the_size() {
        const MIB: u64 = 1 << 20;
        assert_eq!(upload_part_size(8 * MIB, 100 * MIB), 8 * MIB);
        assert_eq!(upload_part_size(MIB, 100 * MIB), MIN_PART);
        // 100 GiB at 8 MiB would be 12,800 parts: raised to fit in 10,000.
        for len in [100 << 30, 78 << 30, (1u64 << 40) + 1, 5 << 40] {
            let part = upload_part_size(8 * MIB, len);
            assert!(len.div_ceil(part) <= MAX_PARTS, "{len}: {part}");
            assert!(
                part >= MIN_PART && part.is_multiple_of(MIB),
                "{len}: {part}"
            );
        }
    }
}
