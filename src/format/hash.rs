//! Chunk checksums over blobs (XXH3-128 or SHA-256, layout.md 4), spread
//! over every core (through `crate::parallel`), and the SHA-256 that seals
//! the table of contents and the trailer.
//!
//! A blob's chunk `k` is bytes `k*C .. min((k+1)*C, len)` of the blob (frame
//! included); an empty blob still has one chunk, the digest of nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};
use twox_hash::XxHash3_128;
use twox_hash::xxhash3_128::{DEFAULT_SECRET_LENGTH, RawHasher, SecretBuffer};

use crate::parallel;

/// A digest: 32 bytes of SHA-256, or 16 bytes of XXH3-128 followed by 16
/// zero bytes ([`Checksum::len`] says how many count).
pub type Digest32 = [u8; 32];

/// The algorithm of an archive's chunk digests (layout.md 4.3), recorded in
/// its table of contents.
///
/// ```
/// use achronyme_env::hash::Checksum;
/// assert_eq!(Checksum::default(), Checksum::Xxh3);
/// assert_eq!(Checksum::Xxh3.len(), 16);
/// assert_eq!(Checksum::Sha256.digest(b"").len(), 32);
/// assert_eq!(Checksum::from_u8(Checksum::Sha256 as u8), Some(Checksum::Sha256));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Checksum {
    /// SHA-256 of every chunk: content authentication, about 1.4 GB/s per
    /// core. The only algorithm of archives before format 1.2.
    Sha256 = 0,
    /// XXH3-128 of every chunk (the default): catches accidental damage at
    /// memory speed, but is not a cryptographic hash.
    #[default]
    Xxh3 = 1,
}

impl Checksum {
    /// The algorithm named by the byte `b`, or None for an unknown byte.
    pub fn from_u8(b: u8) -> Option<Checksum> {
        match b {
            0 => Some(Checksum::Sha256),
            1 => Some(Checksum::Xxh3),
            _ => None,
        }
    }

    /// Bytes of one digest in the hash pool: 32 or 16.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        match self {
            Checksum::Sha256 => 32,
            Checksum::Xxh3 => 16,
        }
    }

    /// The name `ach` and `env_info` use: `"sha256"` or `"xxh3"`.
    pub fn name(self) -> &'static str {
        match self {
            Checksum::Sha256 => "sha256",
            Checksum::Xxh3 => "xxh3",
        }
    }

    /// The digest of `bytes`, as stored: its first [`Checksum::len`] bytes.
    pub fn digest(self, bytes: &[u8]) -> Vec<u8> {
        self.of(&[bytes])[..self.len()].to_vec()
    }

    /// The digest of the concatenation of `parts`, zero-padded to 32 bytes.
    pub(crate) fn of(self, parts: &[&[u8]]) -> Digest32 {
        if let (Checksum::Xxh3, [one]) = (self, parts) {
            return xxh3(one);
        }
        let mut h = ChunkState::new(self);
        for p in parts {
            h.update(p);
        }
        h.finish()
    }
}

/// XXH3-128's streaming state over the default secret: no allocation of
/// its own, and restarting it is a copy.
type Xxh3State = RawHasher<&'static [u8; DEFAULT_SECRET_LENGTH]>;

/// Up to this many bytes, an XXH3 digest of pieces gathers them and hashes
/// them in one shot: most blobs of a many-bindings save are this small,
/// and the one-shot function takes a fraction of the streaming state's
/// time on them (and the state a copy of some 400 bytes to restart).
const XXH3_GATHER: usize = 1024;

/// XXH3-128 of bytes arriving in pieces: gathered while short, streamed
/// once long.
pub(crate) struct Xxh3Pieces {
    short: Vec<u8>,
    /// Some once more than [`XXH3_GATHER`] bytes arrived.
    long: Option<Box<Xxh3State>>,
}

impl Xxh3Pieces {
    fn new() -> Self {
        Xxh3Pieces {
            short: Vec::new(),
            long: None,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.long {
            h.write(bytes);
        } else if self.short.len() + bytes.len() <= XXH3_GATHER {
            self.short.extend_from_slice(bytes);
        } else {
            let mut h = Box::new(RawHasher::new(SecretBuffer::default()));
            h.write(&self.short);
            h.write(bytes);
            self.short.clear();
            self.long = Some(h);
        }
    }

    fn finish_reset(&mut self) -> Digest32 {
        match self.long.take() {
            Some(h) => xxh3_digest(h.finish_128()),
            None => {
                let d = xxh3(&self.short);
                self.short.clear();
                d
            }
        }
    }
}

/// One digest being computed over bytes that arrive in pieces.
pub(crate) enum ChunkState {
    Sha256(Sha256),
    Xxh3(Xxh3Pieces),
}

impl ChunkState {
    pub(crate) fn new(algo: Checksum) -> ChunkState {
        match algo {
            Checksum::Sha256 => ChunkState::Sha256(Sha256::new()),
            Checksum::Xxh3 => ChunkState::Xxh3(Xxh3Pieces::new()),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            ChunkState::Sha256(h) => h.update(bytes),
            ChunkState::Xxh3(h) => h.update(bytes),
        }
    }

    /// The digest so far, zero-padded to 32 bytes; starts afresh.
    pub(crate) fn finish_reset(&mut self) -> Digest32 {
        match self {
            ChunkState::Sha256(h) => h.finalize_reset().into(),
            ChunkState::Xxh3(h) => h.finish_reset(),
        }
    }

    pub(crate) fn finish(mut self) -> Digest32 {
        self.finish_reset()
    }
}

/// XXH3-128 in its canonical byte order (big-endian, as `XXH128_canonical`
/// and the Python `xxhash` package's `digest()` give it), zero-padded.
fn xxh3_digest(h: u128) -> Digest32 {
    let mut d = [0u8; 32];
    d[..16].copy_from_slice(&h.to_be_bytes());
    d
}

/// XXH3-128 of `bytes`, zero-padded to 32 bytes.
///
/// twox-hash picks its AVX2 code at run time when the CPU has it (the
/// build targets baseline x86-64, where a compile-time choice would be
/// SSE2): about 1.8x the SSE2 speed on a mapped tensor (BENCHMARKS.md,
/// "Issue 15, W1 verified sum"). The digests are the same on every path.
fn xxh3(bytes: &[u8]) -> Digest32 {
    xxh3_digest(XxHash3_128::oneshot(bytes))
}

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
fn chunk_digest(algo: Checksum, prefix: &[u8], body: &[u8], chunk: usize, k: usize) -> Digest32 {
    let total = prefix.len() + body.len();
    let start = k * chunk;
    let end = (start + chunk).min(total);
    let body_start = start.saturating_sub(prefix.len());
    let body_end = end.saturating_sub(prefix.len());
    if start >= prefix.len() && algo == Checksum::Xxh3 {
        // The one-shot function is faster than the streaming state.
        return xxh3(&body[body_start..body_end]);
    }
    let mut h = ChunkState::new(algo);
    if start < prefix.len() {
        h.update(&prefix[start..end.min(prefix.len())]);
    }
    if body_end > body_start {
        h.update(&body[body_start..body_end]);
    }
    h.finish()
}

/// The chunk digests of `prefix ++ body`, computed on every core when the
/// data is large.
pub fn chunk_digests(algo: Checksum, prefix: &[u8], body: &[u8], chunk: usize) -> Vec<Digest32> {
    let total = prefix.len() + body.len();
    let n = total.div_ceil(chunk).max(1);
    let mut out = vec![[0u8; 32]; n];
    if total < PARALLEL_MIN {
        for (k, d) in out.iter_mut().enumerate() {
            *d = chunk_digest(algo, prefix, body, chunk, k);
        }
    } else {
        parallel::fill(&mut out, |k| chunk_digest(algo, prefix, body, chunk, k));
    }
    out
}

/// The chunk digests of `prefix ++ body`, computed on the other cores
/// while the calling thread runs `work`, and on every core once `work` is
/// done. A save hashes a large tensor this way while it writes it; opening
/// an archive validates the table of contents while the table is hashed.
pub fn chunk_digests_alongside<R>(
    algo: Checksum,
    prefix: &[u8],
    body: &[u8],
    chunk: usize,
    work: impl FnOnce() -> R,
) -> (Vec<Digest32>, R) {
    if prefix.len() + body.len() < ALONGSIDE_MIN {
        let r = work();
        return (chunk_digests(algo, prefix, body, chunk), r);
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
            mine.push((k, chunk_digest(algo, prefix, body, chunk, k)));
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

    const BOTH: [Checksum; 2] = [Checksum::Sha256, Checksum::Xxh3];

    #[test]
    fn split_prefix_matches_contiguous() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for algo in BOTH {
            for split in [0, 1, 63, 64, 100, 4096, 10_000] {
                let (p, b) = data.split_at(split);
                assert_eq!(
                    chunk_digests(algo, p, b, 1024),
                    chunk_digests(algo, &[], &data, 1024)
                );
            }
            let direct: Vec<_> = data.chunks(1024).map(|c| algo.of(&[c])).collect();
            assert_eq!(chunk_digests(algo, &[], &data, 1024), direct);
        }
        let sha: Vec<_> = data.chunks(1024).map(|c| sha256(&[c])).collect();
        assert_eq!(chunk_digests(Checksum::Sha256, &[], &data, 1024), sha);
    }

    #[test]
    fn parallel_matches_sequential() {
        let data: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 253) as u8).collect();
        for algo in BOTH {
            let direct: Vec<_> = data.chunks(1 << 20).map(|c| algo.of(&[c])).collect();
            assert_eq!(
                chunk_digests(algo, &data[..64], &data[64..], 1 << 20),
                direct
            );
        }
    }

    #[test]
    fn alongside_matches_plain_and_runs_the_work() {
        for algo in BOTH {
            for len in [0usize, 100, 3 << 20] {
                let data: Vec<u8> = (0..len as u32).map(|i| (i % 249) as u8).collect();
                let (d, r) = chunk_digests_alongside(algo, &[], &data, 1 << 16, || 7);
                assert_eq!(r, 7);
                assert_eq!(d, chunk_digests(algo, &[], &data, 1 << 16));
                // With a prefix (a blob's frame), as one contiguous span.
                if len > 64 {
                    let (d, _) =
                        chunk_digests_alongside(algo, &data[..64], &data[64..], 1 << 16, || ());
                    assert_eq!(d, chunk_digests(algo, &[], &data, 1 << 16));
                }
            }
        }
    }

    #[test]
    fn empty_blob_has_one_chunk() {
        assert_eq!(
            chunk_digests(Checksum::Sha256, &[], &[], 1024),
            vec![sha256(&[])]
        );
        assert_eq!(chunk_count(0, 1024), 1);
        assert_eq!(chunk_count(1025, 1024), 2);
    }

    /// Known answers: the published XXH3-128 of the empty input, in the
    /// canonical (big-endian) order layout.md 4.3 stores; streaming in
    /// pieces gives the one-shot digest; the padding is zero.
    #[test]
    fn xxh3_known_answer_and_streaming() {
        let empty = Checksum::Xxh3.of(&[]);
        assert_eq!(
            empty[..16],
            [
                0x99, 0xaa, 0x06, 0xd3, 0x01, 0x47, 0x98, 0xd8, 0x60, 0x01, 0xc3, 0x24, 0x46, 0x8d,
                0x49, 0x7f
            ]
        );
        assert_eq!(empty[16..], [0u8; 16]);
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 13 % 256) as u8).collect();
        let mut h = ChunkState::new(Checksum::Xxh3);
        for piece in data.chunks(333) {
            h.update(piece);
        }
        assert_eq!(h.finish(), xxh3(&data));
        assert_ne!(xxh3(&data), Checksum::Sha256.of(&[&data]));
    }

    /// Bytes that are not a pattern a hash could accidentally agree on.
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    /// The reference: xxhash-rust's XXH3-128 (the crate the format's
    /// digests were first written with, SSE2 on baseline x86-64).
    fn reference(bytes: &[u8]) -> Digest32 {
        xxh3_digest(xxhash_rust::xxh3::xxh3_128(bytes))
    }

    /// Every length through XXH3's short cases (0, 1-3, 4-8, 9-16, 17-128,
    /// 129-240) and the long one's stripe (64 bytes) and block (1024 bytes)
    /// boundaries, one-shot and streamed, against the reference.
    #[test]
    fn xxh3_equals_the_reference_at_every_short_length() {
        let data = noise(2200);
        for len in 0..=2200 {
            let want = reference(&data[..len]);
            assert_eq!(xxh3(&data[..len]), want, "one-shot, {len} bytes");
            let mut h = ChunkState::new(Checksum::Xxh3);
            let (a, b) = data[..len].split_at(len / 3);
            h.update(a);
            h.update(b);
            assert_eq!(h.finish_reset(), want, "streamed, {len} bytes");
            // The reset state starts afresh, after a short digest and
            // after a long one.
            h.update(&data[..len]);
            assert_eq!(h.finish_reset(), want, "after a reset, {len} bytes");
            h.update(&data[..2000]);
            h.update(&data[2000..]);
            assert_eq!(h.finish_reset(), reference(&data));
            for piece in data[..len].chunks(100) {
                h.update(piece);
            }
            assert_eq!(h.finish(), want, "after a long digest, {len} bytes");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Random lengths up to 3 MiB at random offsets (so every tail
        /// and alignment), hashed in one shot, streamed in random pieces,
        /// and as chunk digests: the same digests as the reference.
        #[test]
        fn xxh3_equals_the_reference_up_to_3_mib(
            len in 0usize..(3 << 20),
            offset in 0usize..64,
            cut1 in 0.0f64..1.0,
            cut2 in 0.0f64..1.0,
            chunk_log2 in 10u32..21,
        ) {
            static DATA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            let data = DATA.get_or_init(|| noise((3 << 20) + 64));
            let bytes = &data[offset..offset + len];
            let want = reference(bytes);
            proptest::prop_assert_eq!(xxh3(bytes), want);
            proptest::prop_assert_eq!(Checksum::Xxh3.of(&[bytes]), want);
            let (i, j) = {
                let (a, b) = ((cut1 * len as f64) as usize, (cut2 * len as f64) as usize);
                (a.min(b), a.max(b))
            };
            proptest::prop_assert_eq!(
                Checksum::Xxh3.of(&[&bytes[..i], &bytes[i..j], &bytes[j..]]),
                want
            );
            let chunk = 1usize << chunk_log2;
            let direct: Vec<_> = bytes.chunks(chunk).map(reference).collect();
            let direct = if direct.is_empty() { vec![reference(&[])] } else { direct };
            // A prefix split off the front as a blob's frame is.
            let (head, body) = bytes.split_at(i.min(64));
            proptest::prop_assert_eq!(chunk_digests(Checksum::Xxh3, head, body, chunk), direct);
        }
    }
}
