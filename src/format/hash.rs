//! SHA-256 over blobs in fixed-size chunks, spread over every core.
//!
//! A blob's chunk `k` is bytes `k*C .. min((k+1)*C, len)` of the blob (frame
//! included); an empty blob still has one chunk, the digest of nothing.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// Below this many bytes, hashing stays on the calling thread.
const PARALLEL_MIN: usize = 4 << 20;
/// Below this many bytes, `chunk_digests_alongside` starts no thread.
const ALONGSIDE_MIN: usize = 1 << 20;

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> Digest32 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Number of chunks of a blob of `len` bytes.
pub fn chunk_count(len: u64, chunk: u64) -> u64 {
    len.div_ceil(chunk).max(1)
}

pub(crate) fn threads() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Digest of chunk `k` of the concatenation `prefix ++ body`.
fn chunk_digest(prefix: &[u8], body: &[u8], chunk: usize, k: usize) -> Digest32 {
    let total = prefix.len() + body.len();
    let start = k * chunk;
    let end = (start + chunk).min(total);
    let mut h = Sha256::new();
    if start < prefix.len() {
        h.update(&prefix[start..end.min(prefix.len())]);
    }
    let body_start = start.saturating_sub(prefix.len());
    let body_end = end.saturating_sub(prefix.len());
    if body_end > body_start {
        h.update(&body[body_start..body_end]);
    }
    h.finalize().into()
}

/// The chunk digests of `prefix ++ body`, computed on every core when the
/// data is large.
pub fn chunk_digests(prefix: &[u8], body: &[u8], chunk: usize) -> Vec<Digest32> {
    let total = prefix.len() + body.len();
    let n = total.div_ceil(chunk).max(1);
    let mut out = vec![[0u8; 32]; n];
    let workers = threads().min(n);
    if total < PARALLEL_MIN || workers <= 1 {
        for (k, d) in out.iter_mut().enumerate() {
            *d = chunk_digest(prefix, body, chunk, k);
        }
        return out;
    }
    let per = n.div_ceil(workers);
    std::thread::scope(|s| {
        for (block, slots) in out.chunks_mut(per).enumerate() {
            s.spawn(move || {
                for (i, d) in slots.iter_mut().enumerate() {
                    *d = chunk_digest(prefix, body, chunk, block * per + i);
                }
            });
        }
    });
    out
}

/// The chunk digests of `body`, computed by helper threads while the
/// calling thread runs `work`; the calling thread then joins the hashing.
/// Opening an archive uses it to validate the table of contents while the
/// table is being hashed.
pub fn chunk_digests_alongside<R>(
    body: &[u8],
    chunk: usize,
    work: impl FnOnce() -> R,
) -> (Vec<Digest32>, R) {
    let n = body.len().div_ceil(chunk).max(1);
    let next = AtomicUsize::new(0);
    let take = || {
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= n {
                return done;
            }
            done.push((k, chunk_digest(&[], body, chunk, k)));
        }
    };
    let (parts, result) = if body.len() < ALONGSIDE_MIN || threads() <= 1 {
        let r = work();
        (vec![take()], r)
    } else {
        std::thread::scope(|s| {
            let helpers: Vec<_> = (1..threads().min(n)).map(|_| s.spawn(take)).collect();
            let r = work();
            let mut parts = vec![take()];
            parts.extend(
                helpers
                    .into_iter()
                    .map(|h| h.join().expect("hashing does not panic")),
            );
            (parts, r)
        })
    };
    let mut out = vec![[0u8; 32]; n];
    for (k, d) in parts.into_iter().flatten() {
        out[k] = d;
    }
    (out, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_prefix_matches_contiguous() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for split in [0, 1, 63, 64, 100, 4096, 10_000] {
            let (p, b) = data.split_at(split);
            assert_eq!(chunk_digests(p, b, 1024), chunk_digests(&[], &data, 1024));
        }
        let direct: Vec<_> = data.chunks(1024).map(|c| sha256(&[c])).collect();
        assert_eq!(chunk_digests(&[], &data, 1024), direct);
    }

    #[test]
    fn parallel_matches_sequential() {
        let data: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 253) as u8).collect();
        let direct: Vec<_> = data.chunks(1 << 20).map(|c| sha256(&[c])).collect();
        assert_eq!(chunk_digests(&data[..64], &data[64..], 1 << 20), direct);
    }

    #[test]
    fn alongside_matches_plain_and_runs_the_work() {
        for len in [0usize, 100, 3 << 20] {
            let data: Vec<u8> = (0..len as u32).map(|i| (i % 249) as u8).collect();
            let (d, r) = chunk_digests_alongside(&data, 1 << 16, || 7);
            assert_eq!(r, 7);
            assert_eq!(d, chunk_digests(&[], &data, 1 << 16));
        }
    }

    #[test]
    fn empty_blob_has_one_chunk() {
        assert_eq!(chunk_digests(&[], &[], 1024), vec![sha256(&[])]);
        assert_eq!(chunk_count(0, 1024), 1);
        assert_eq!(chunk_count(1025, 1024), 2);
    }
}
