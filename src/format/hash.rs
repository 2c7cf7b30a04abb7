//! SHA-256 over blobs in fixed-size chunks, spread over every core
//! (through `crate::parallel`).
//!
//! A blob's chunk `k` is bytes `k*C .. min((k+1)*C, len)` of the blob (frame
//! included); an empty blob still has one chunk, the digest of nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use crate::parallel;

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// Below this many bytes, hashing stays on the calling thread.
const PARALLEL_MIN: usize = 4 << 20;
/// Below this many bytes, `chunk_digests_alongside` hashes on the calling
/// thread, after the work.
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
    if total < PARALLEL_MIN {
        for (k, d) in out.iter_mut().enumerate() {
            *d = chunk_digest(prefix, body, chunk, k);
        }
    } else {
        parallel::fill(&mut out, |k| chunk_digest(prefix, body, chunk, k));
    }
    out
}

/// The chunk digests of `prefix ++ body`, computed on the other cores
/// while the calling thread runs `work`, and on every core once `work` is
/// done. A save hashes a large tensor this way while it writes it; opening
/// an archive validates the table of contents while the table is hashed.
pub fn chunk_digests_alongside<R>(
    prefix: &[u8],
    body: &[u8],
    chunk: usize,
    work: impl FnOnce() -> R,
) -> (Vec<Digest32>, R) {
    if prefix.len() + body.len() < ALONGSIDE_MIN {
        let r = work();
        return (chunk_digests(prefix, body, chunk), r);
    }
    let n = (prefix.len() + body.len()).div_ceil(chunk).max(1);
    let next = AtomicUsize::new(0);
    let done = Mutex::new(vec![[0u8; 32]; n]);
    // Each helper takes the next chunk until none is left.
    let take = || {
        let mut mine = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= n {
                break;
            }
            mine.push((k, chunk_digest(prefix, body, chunk, k)));
        }
        let mut out = done.lock().expect("hashing does not panic");
        for (k, d) in mine {
            out[k] = d;
        }
    };
    let r = parallel::help_while(take, work);
    (done.into_inner().expect("hashing does not panic"), r)
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
            let (d, r) = chunk_digests_alongside(&[], &data, 1 << 16, || 7);
            assert_eq!(r, 7);
            assert_eq!(d, chunk_digests(&[], &data, 1 << 16));
            // With a prefix (a blob's frame), as one contiguous span.
            if len > 64 {
                let (d, _) = chunk_digests_alongside(&data[..64], &data[64..], 1 << 16, || ());
                assert_eq!(d, chunk_digests(&[], &data, 1 << 16));
            }
        }
    }

    #[test]
    fn empty_blob_has_one_chunk() {
        assert_eq!(chunk_digests(&[], &[], 1024), vec![sha256(&[])]);
        assert_eq!(chunk_count(0, 1024), 1);
        assert_eq!(chunk_count(1025, 1024), 2);
    }
}
