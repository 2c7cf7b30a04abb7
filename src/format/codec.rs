//! Compressed payloads (layout.md section 3.4): the codecs (zstd, LZ4), the
//! filters that make float data compressible (byte shuffle, delta coding of
//! the 64-bit patterns), the chunk table, and the rule that keeps a
//! compression only when it pays.
//!
//! A compressed payload is a table of `n` 16-byte chunk records followed by
//! the chunks' stored bytes. Chunk `k` holds raw bytes `k*C .. min((k+1)*C,
//! raw_len)`, stored raw (codec 0) or compressed with the blob's codec after
//! one filter. Each chunk has its own digest, so it is checked, and
//! decompressed, on its own.

use std::io;

use zerocopy::FromBytes;
use zerocopy::little_endian::U64;

use crate::format::hash;
use crate::format::layout::{Codec, RawChunk};

/// Raw bytes per chunk, as log2, that the writer uses (4 MiB).
pub(crate) const CODEC_CHUNK_LOG2: u8 = 22;
/// Chunk sizes a reader accepts, as log2 (64 KiB to 4 MiB). The upper
/// bound caps what one table record can make a load allocate (layout.md
/// 3.4): a chunk larger than the writer's own is refused.
pub(crate) const CODEC_CHUNK_LOG2_RANGE: std::ops::RangeInclusive<u8> = 16..=22;
/// Payloads shorter than this are never compressed: the table and the
/// codec's framing would eat the gain, and small bindings load fastest raw.
pub(crate) const MIN_COMPRESS_LEN: usize = 1024;
/// Bytes of a chunk tried with each filter to pick one.
const SAMPLE_LEN: usize = 64 << 10;
/// The zstd level samples are tried at when the save asks for more: the
/// filter that wins at level 3 wins at higher levels too, and a higher
/// level only compresses better, so the decision to compress is
/// conservative.
const SAMPLE_LEVEL: i32 = 3;
/// Chunks sampled to decide whether a whole tensor is worth compressing.
const PLAN_SAMPLES: usize = 16;

/// A filter applied to a tensor chunk before the codec. Every filter is
/// exactly reversible, bit for bit (NaN payloads and -0.0 included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Filter {
    /// Bytes as they are.
    None = 0,
    /// Byte shuffle with element size 8: all first bytes of the 64-bit
    /// words, then all second bytes, and so on.
    Shuffle = 1,
    /// First-order delta of the 64-bit patterns (wrapping), then shuffle.
    Delta1 = 2,
    /// Second-order delta, then shuffle.
    Delta2 = 3,
    /// Third-order delta, then shuffle.
    Delta3 = 4,
}

impl Filter {
    const ALL: [Filter; 5] = [
        Filter::None,
        Filter::Shuffle,
        Filter::Delta1,
        Filter::Delta2,
        Filter::Delta3,
    ];

    pub(crate) fn from_u8(b: u8) -> Option<Filter> {
        Filter::ALL.get(b as usize).copied()
    }

    /// Order of the delta coding (0 for none).
    fn order(self) -> usize {
        match self {
            Filter::None | Filter::Shuffle => 0,
            Filter::Delta1 => 1,
            Filter::Delta2 => 2,
            Filter::Delta3 => 3,
        }
    }
}

/// Delta coding state: for each of the `lag` interleaved streams, the last
/// word seen at each delta level.
struct Delta {
    order: usize,
    lag: usize,
    state: [[u64; 3]; 2],
    i: usize,
}

impl Delta {
    fn new(filter: Filter, lag: usize) -> Delta {
        debug_assert!(lag == 1 || lag == 2, "a word lag is 1 or 2");
        Delta {
            order: filter.order(),
            lag,
            state: [[0; 3]; 2],
            i: 0,
        }
    }

    /// The next word's delta (`order` times differenced, wrapping).
    fn forward(&mut self, mut v: u64) -> u64 {
        let s = &mut self.state[self.i & (self.lag - 1)];
        self.i += 1;
        for slot in s.iter_mut().take(self.order) {
            let d = v.wrapping_sub(*slot);
            *slot = v;
            v = d;
        }
        v
    }

    /// Undoes [`Delta::forward`] for the next word.
    fn inverse(&mut self, mut v: u64) -> u64 {
        let s = &mut self.state[self.i & (self.lag - 1)];
        self.i += 1;
        for slot in s.iter_mut().take(self.order) {
            *slot = slot.wrapping_add(v);
            v = *slot;
        }
        v
    }
}

/// Applies `filter` to `src` (a whole number of 64-bit words) into `dst`.
/// `lag` is the distance between the words a delta subtracts: 1 for real
/// tensors, 2 for complex ones (real parts from real parts).
fn filter_forward(filter: Filter, lag: usize, src: &[u8], dst: &mut Vec<u8>) {
    dst.clear();
    if filter == Filter::None {
        dst.extend_from_slice(src);
        return;
    }
    let n = src.len() / 8;
    dst.resize(n * 8, 0);
    let mut delta = Delta::new(filter, lag);
    let word = |i: usize| u64::from_le_bytes(src[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    // Eight words at a time: a little 8x8 byte transpose, then one 8-byte
    // store into each of the 8 byte planes.
    let blocks = n / 8;
    for b in 0..blocks {
        let mut planes = [[0u8; 8]; 8];
        for t in 0..8 {
            let bytes = delta.forward(word(8 * b + t)).to_le_bytes();
            for (j, plane) in planes.iter_mut().enumerate() {
                plane[t] = bytes[j];
            }
        }
        for (j, plane) in planes.iter().enumerate() {
            dst[j * n + 8 * b..j * n + 8 * b + 8].copy_from_slice(plane);
        }
    }
    for i in 8 * blocks..n {
        for (j, byte) in delta.forward(word(i)).to_le_bytes().into_iter().enumerate() {
            dst[j * n + i] = byte;
        }
    }
}

/// Undoes [`filter_forward`]: `src` holds the filtered bytes, `dst` (same
/// length) receives the original ones.
fn filter_inverse(filter: Filter, lag: usize, src: &[u8], dst: &mut [u8]) {
    if filter == Filter::None {
        dst.copy_from_slice(src);
        return;
    }
    let n = src.len() / 8;
    let mut delta = Delta::new(filter, lag);
    let blocks = n / 8;
    for (b, out) in dst.chunks_exact_mut(64).enumerate() {
        let mut planes = [[0u8; 8]; 8];
        for (j, plane) in planes.iter_mut().enumerate() {
            plane.copy_from_slice(&src[j * n + 8 * b..j * n + 8 * b + 8]);
        }
        for (t, word) in out.chunks_exact_mut(8).enumerate() {
            let bytes = std::array::from_fn(|j| planes[j][t]);
            word.copy_from_slice(&delta.inverse(u64::from_le_bytes(bytes)).to_le_bytes());
        }
    }
    for i in 8 * blocks..n {
        let bytes = std::array::from_fn(|j| src[j * n + i]);
        let v = delta.inverse(u64::from_le_bytes(bytes));
        dst[8 * i..8 * i + 8].copy_from_slice(&v.to_le_bytes());
    }
}

/// True when storing `stored` bytes instead of `raw` saves at least an
/// eighth (12.5%). Below that a payload is stored raw: a raw tensor is
/// mapped and borrowed, which is worth more than a small saving on disk.
pub(crate) fn pays(raw: usize, stored: usize) -> bool {
    (stored as u64).saturating_mul(8) <= (raw as u64).saturating_mul(7)
}

/// What a save asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub codec: Codec,
    pub level: i32,
    pub filters: bool,
}

/// How many chunks a save compresses at once on `cores` cores: one per
/// core, as long as the workers' memory stays within
/// [`COMPRESSION_BUDGET`]; always at least one.
pub(crate) fn workers(settings: Settings, cores: usize) -> usize {
    (COMPRESSION_BUDGET / worker_bytes(settings)).clamp(1, cores.max(1))
}

/// What the compression workers of one save may hold at once, at most.
pub(crate) const COMPRESSION_BUDGET: usize = 256 << 20;

/// Memory of one compression worker, at most: its zstd contexts, the chunk
/// it filters and the buffer it compresses into, and the two compressed
/// chunks per worker that may wait to be written (`parallel::ordered`).
pub(crate) fn worker_bytes(settings: Settings) -> usize {
    const CHUNK: usize = 1 << CODEC_CHUNK_LOG2;
    let contexts = match settings.codec {
        Codec::Zstd if settings.level > SAMPLE_LEVEL => {
            zstd_context_bytes(settings.level) + zstd_context_bytes(SAMPLE_LEVEL)
        }
        Codec::Zstd => zstd_context_bytes(settings.level),
        _ => 0,
    };
    // Filtered chunk, compression buffer, two waiting chunks (each under
    // 7/8 of a chunk, or it would be stored raw, from the caller's data).
    contexts + 4 * CHUNK
}

/// Bytes a zstd compression context at `level` reaches on a 4 MiB chunk,
/// rounded up: zstd sizes its tables to the input, so these are far below
/// its figures for unbounded inputs (hundreds of MiB at level 22).
/// Measured with zstd 1.5.7 by `examples/zstd_context_memory.rs`, and
/// checked by a test.
fn zstd_context_bytes(level: i32) -> usize {
    let mib = match level {
        ..=3 => 2,
        4..=6 => 3,
        7..=8 => 6,
        9 => 11,
        10..=11 => 21,
        _ => 66,
    };
    mib << 20
}

/// One thread's compression state (a reusable zstd context and buffers).
pub(crate) struct Packer {
    settings: Settings,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    /// For samples when the level is above [`SAMPLE_LEVEL`]: picking a
    /// filter at level 19 would cost seconds per tensor.
    sampler: Option<zstd::bulk::Compressor<'static>>,
    filtered: Vec<u8>,
    trial: Vec<u8>,
}

/// One chunk as it will be stored.
pub(crate) enum ChunkOut {
    /// Stored raw: the caller writes its own slice.
    Raw,
    /// Compressed with the blob's codec after `filter`.
    Packed { filter: Filter, bytes: Vec<u8> },
}

impl Packer {
    pub(crate) fn new(settings: Settings) -> io::Result<Packer> {
        let zstd = match settings.codec {
            Codec::Zstd => Some(zstd::bulk::Compressor::new(settings.level)?),
            _ => None,
        };
        let sampler = match settings.codec {
            Codec::Zstd if settings.level > SAMPLE_LEVEL => {
                Some(zstd::bulk::Compressor::new(SAMPLE_LEVEL)?)
            }
            _ => None,
        };
        Ok(Packer {
            settings,
            zstd,
            sampler,
            filtered: Vec::new(),
            trial: Vec::new(),
        })
    }

    /// The codec this packer writes.
    pub(crate) fn codec(&self) -> Codec {
        self.settings.codec
    }

    /// Compresses `src` with the codec into `out` (cleared first).
    fn encode(&mut self, src: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.encode_with(false, src, out)
    }

    /// [`Packer::encode`], with the sampling level when `sample` is set.
    fn encode_with(&mut self, sample: bool, src: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        let zstd = match &mut self.sampler {
            Some(s) if sample => Some(s),
            _ => self.zstd.as_mut(),
        };
        match (self.settings.codec, zstd) {
            (Codec::Zstd, Some(z)) => {
                out.reserve(zstd::zstd_safe::compress_bound(src.len()));
                z.compress_to_buffer(src, out)?;
            }
            (Codec::Lz4, _) => {
                out.resize(lz4_flex::block::get_maximum_output_size(src.len()), 0);
                let n = lz4_flex::block::compress_into(src, out).map_err(io::Error::other)?;
                out.truncate(n);
            }
            _ => out.extend_from_slice(src),
        }
        Ok(())
    }

    /// Compressed size of `sample` after `filter`.
    fn trial_size(&mut self, filter: Filter, lag: usize, sample: &[u8]) -> io::Result<usize> {
        let mut filtered = std::mem::take(&mut self.filtered);
        let mut trial = std::mem::take(&mut self.trial);
        filter_forward(filter, lag, sample, &mut filtered);
        let r = self
            .encode_with(true, &filtered, &mut trial)
            .map(|()| trial.len());
        self.filtered = filtered;
        self.trial = trial;
        r
    }

    /// The filter that compresses `sample` best, and the size it reaches.
    fn best_filter(&mut self, lag: Option<usize>, sample: &[u8]) -> io::Result<(Filter, usize)> {
        let Some(lag) = lag.filter(|_| self.settings.filters) else {
            return Ok((Filter::None, self.trial_size(Filter::None, 1, sample)?));
        };
        let mut best = (Filter::None, usize::MAX);
        for f in Filter::ALL {
            let size = self.trial_size(f, lag, sample)?;
            if size < best.1 {
                best = (f, size);
            }
        }
        Ok(best)
    }

    /// The plan for a chunk from a sample of it: the best filter, or
    /// [`ChunkPlan::StoreRaw`] when even the best one does not pay on the
    /// sample.
    fn choose(&mut self, lag: Option<usize>, src: &[u8]) -> io::Result<ChunkPlan> {
        let sample = sample_of(src, lag.map_or(1, |l| l * 8));
        let (filter, size) = self.best_filter(lag, sample)?;
        Ok(ChunkPlan::from_sample(sample.len(), filter, size))
    }

    /// Compresses one chunk: picks a filter on a sample (tensors only,
    /// `lag` = Some) unless `plan` already did, compresses, and keeps the
    /// result only if it pays. The bytes kept hold no spare capacity, since
    /// several chunks may wait in memory for their turn to be written.
    pub(crate) fn chunk(
        &mut self,
        lag: Option<usize>,
        src: &[u8],
        plan: ChunkPlan,
    ) -> io::Result<ChunkOut> {
        let plan = match plan {
            ChunkPlan::NotSampled => self.choose(lag, src)?,
            planned => planned,
        };
        let ChunkPlan::Compress(filter) = plan else {
            return Ok(ChunkOut::Raw);
        };
        let mut filtered = std::mem::take(&mut self.filtered);
        filter_forward(filter, lag.unwrap_or(1), src, &mut filtered);
        let mut bytes = Vec::new();
        let r = self.encode(&filtered, &mut bytes);
        self.filtered = filtered;
        r?;
        Ok(if pays(src.len(), bytes.len()) {
            bytes.shrink_to_fit();
            ChunkOut::Packed { filter, bytes }
        } else {
            ChunkOut::Raw
        })
    }

    /// Predicts from samples whether compressing `payload` (chunked by
    /// `chunk`) pays as a whole, so that a tensor of noise is stored raw
    /// without compressing all of it first. Samples up to 16 evenly spaced
    /// chunks; returns None when compression does not pay, else each
    /// chunk's plan ([`ChunkPlan::NotSampled`] for chunks between the
    /// samples; for up to 16 chunks, none), so [`Packer::chunk`] need not
    /// sample again.
    pub(crate) fn plan(
        &mut self,
        lag: Option<usize>,
        payload: &[u8],
        chunk: usize,
    ) -> io::Result<Option<Vec<ChunkPlan>>> {
        let chunks = payload.len().div_ceil(chunk);
        let step = chunks.div_ceil(PLAN_SAMPLES).max(1);
        let mut planned = vec![ChunkPlan::NotSampled; chunks];
        let (mut raw, mut stored) = (0usize, 0usize);
        for k in (0..chunks).step_by(step) {
            let c = &payload[k * chunk..payload.len().min((k + 1) * chunk)];
            let sample = sample_of(c, lag.map_or(1, |l| l * 8));
            let (filter, size) = self.best_filter(lag, sample)?;
            planned[k] = ChunkPlan::from_sample(sample.len(), filter, size);
            raw += sample.len();
            stored += match planned[k] {
                ChunkPlan::Compress(_) => size,
                _ => sample.len(),
            };
        }
        Ok(pays(raw, stored).then_some(planned))
    }
}

/// What the samples decided for one chunk of a blob to compress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChunkPlan {
    /// No sample of this chunk was taken yet: [`Packer::chunk`] takes one.
    NotSampled,
    /// Its sample did not save an eighth with any filter: store it raw.
    StoreRaw,
    /// Compress it after this filter, the best on its sample.
    Compress(Filter),
}

impl ChunkPlan {
    /// The plan for a chunk whose `sample_len`-byte sample compressed to
    /// `size` bytes at best, after `filter`.
    fn from_sample(sample_len: usize, filter: Filter, size: usize) -> ChunkPlan {
        if pays(sample_len, size) {
            ChunkPlan::Compress(filter)
        } else {
            ChunkPlan::StoreRaw
        }
    }
}

/// Up to [`SAMPLE_LEN`] bytes from the middle of `src`, starting on a
/// multiple of `unit` so a filter sees whole elements.
fn sample_of(src: &[u8], unit: usize) -> &[u8] {
    if src.len() <= SAMPLE_LEN {
        return src;
    }
    let start = (src.len() - SAMPLE_LEN) / 2 / unit * unit;
    &src[start..start + SAMPLE_LEN]
}

/// A chunk of a compressed payload, located and checked against the table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkRef {
    /// Offset of the stored bytes within the payload.
    pub stored_at: usize,
    /// Stored length.
    pub stored_len: usize,
    /// Codec of this chunk (the blob's codec, or none).
    pub codec: Codec,
    pub filter: Filter,
}

/// Reads and checks the chunk table at the start of `payload`. `raw_len`
/// and `chunk` come from the validated table of contents; `tensor` says
/// whether filters are allowed.
pub(crate) fn parse_table(
    payload: &[u8],
    blob_codec: Codec,
    raw_len: u64,
    chunk: u64,
    tensor: bool,
) -> Result<Vec<ChunkRef>, &'static str> {
    let n = hash::chunk_count(raw_len, chunk);
    let table_len = n as usize * size_of::<RawChunk>();
    let table = payload
        .get(..table_len)
        .and_then(|t| <[RawChunk]>::ref_from_bytes(t).ok())
        .ok_or("chunk table runs past the payload")?;
    let mut at = table_len;
    let mut out = Vec::with_capacity(table.len());
    for (k, c) in table.iter().enumerate() {
        let raw = chunk_raw_len(raw_len, chunk, k as u64);
        if c.reserved != [0; 6] {
            return Err("chunk reserved bytes are not zero");
        }
        let codec = Codec::from_u8(c.codec).ok_or("chunk names an unknown codec")?;
        if codec != Codec::None && codec != blob_codec {
            return Err("chunk codec is neither none nor the blob's codec");
        }
        let filter = Filter::from_u8(c.filter).ok_or("chunk names an unknown filter")?;
        if filter != Filter::None && (!tensor || codec == Codec::None) {
            return Err("filter on a chunk that cannot have one");
        }
        let len = c.stored_len.get();
        if codec == Codec::None && len != raw {
            return Err("raw chunk length differs from its raw size");
        }
        if len == 0 {
            return Err("chunk is empty");
        }
        let len = usize::try_from(len).map_err(|_| "chunk length overflows")?;
        let end = at.checked_add(len).ok_or("chunk length overflows")?;
        out.push(ChunkRef {
            stored_at: at,
            stored_len: len,
            codec,
            filter,
        });
        at = end;
    }
    if at != payload.len() {
        return Err("chunk lengths do not add up to the payload");
    }
    Ok(out)
}

/// The distance, in 64-bit words, between the words a delta filter
/// subtracts: 1 for a tensor, 2 for a complex tensor (real parts from real
/// parts); None for values that take no filter.
pub(crate) fn word_lag(tag: crate::format::layout::Tag) -> Option<usize> {
    tag.element_size().map(|size| size as usize / 8)
}

/// Raw length of chunk `k`.
pub(crate) fn chunk_raw_len(raw_len: u64, chunk: u64, k: u64) -> u64 {
    raw_len.saturating_sub(k * chunk).min(chunk)
}

/// Builds the 16-byte table record of a stored chunk.
pub(crate) fn table_record(stored_len: u64, codec: Codec, filter: Filter) -> RawChunk {
    RawChunk {
        stored_len: U64::new(stored_len),
        codec: codec as u8,
        filter: filter as u8,
        reserved: [0; 6],
    }
}

thread_local! {
    /// Each thread's decompression state, kept between loads: a zstd
    /// context costs an allocation of about 100 KiB to create.
    static UNPACKER: std::cell::RefCell<Unpacker> = std::cell::RefCell::new(Unpacker::new());
}

/// Runs `f` with this thread's [`Unpacker`].
pub(crate) fn with_unpacker<R>(f: impl FnOnce(&mut Unpacker) -> R) -> R {
    UNPACKER.with(|u| match u.try_borrow_mut() {
        Ok(mut u) => f(&mut u),
        // Not reentrant in practice; a fresh one keeps it correct anyway.
        Err(_) => f(&mut Unpacker::new()),
    })
}

/// One thread's decompression state.
pub(crate) struct Unpacker {
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    scratch: Vec<u8>,
    /// Where chunks that are only checked (a verify) are decompressed.
    checked: Vec<u8>,
}

impl Unpacker {
    pub(crate) fn new() -> Unpacker {
        Unpacker {
            zstd: None,
            scratch: Vec::new(),
            checked: Vec::new(),
        }
    }

    /// [`Unpacker::chunk`] into this thread's own buffer, to check the chunk
    /// and throw its bytes away. The buffer is kept between calls, so a
    /// verify does not allocate and zero a fresh 4 MiB for every chunk.
    pub(crate) fn check_chunk(
        &mut self,
        c: &ChunkRef,
        lag: usize,
        stored: &[u8],
        len: usize,
    ) -> Result<(), String> {
        let mut out = std::mem::take(&mut self.checked);
        out.resize(len, 0);
        let checked = self.chunk(c, lag, stored, &mut out);
        self.checked = out;
        checked
    }

    /// Decompresses one chunk's `stored` bytes into exactly `out`; more or
    /// fewer bytes is an error. `lag` as in [`filter_forward`].
    pub(crate) fn chunk(
        &mut self,
        c: &ChunkRef,
        lag: usize,
        stored: &[u8],
        out: &mut [u8],
    ) -> Result<(), String> {
        if c.codec == Codec::None {
            out.copy_from_slice(stored);
            return Ok(());
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let target: &mut [u8] = if c.filter == Filter::None {
            out
        } else {
            scratch.resize(out.len(), 0);
            &mut scratch[..]
        };
        let r = self.decode(c.codec, stored, target);
        if r.is_ok() && c.filter != Filter::None {
            filter_inverse(c.filter, lag, &scratch, out);
        }
        self.scratch = scratch;
        r
    }

    fn decode(&mut self, codec: Codec, stored: &[u8], out: &mut [u8]) -> Result<(), String> {
        let written = match codec {
            Codec::Zstd => {
                let z = match &mut self.zstd {
                    Some(z) => z,
                    empty => empty.insert(
                        zstd::bulk::Decompressor::new()
                            .map_err(|e| format!("cannot start zstd: {e}"))?,
                    ),
                };
                // Single-pass into the exact output: zstd allocates no
                // window buffer and cannot write past `out`.
                z.decompress_to_buffer(stored, out)
                    .map_err(|e| format!("zstd: {e}"))?
            }
            Codec::Lz4 => {
                lz4_flex::block::decompress_into(stored, out).map_err(|e| format!("lz4: {e}"))?
            }
            Codec::None => unreachable!("handled by the caller"),
        };
        if written != out.len() {
            return Err(format!(
                "chunk inflates to {written} bytes, not the {} its table declares",
                out.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .flat_map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                x.to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn every_filter_inverts_on_arbitrary_bit_patterns() {
        for n in [0, 1, 2, 3, 7, 100] {
            let src = words(n as u64, n);
            for f in Filter::ALL {
                for lag in [1, 2] {
                    let mut fwd = Vec::new();
                    filter_forward(f, lag, &src, &mut fwd);
                    assert_eq!(fwd.len(), src.len());
                    let mut back = vec![0u8; src.len()];
                    filter_inverse(f, lag, &fwd, &mut back);
                    assert_eq!(back, src, "{f:?} lag {lag} n {n}");
                }
            }
        }
    }

    #[test]
    fn every_codec_and_filter_round_trips_through_a_chunk() {
        // Special bit patterns among arbitrary ones and a smooth run; the
        // encode/decode path directly, whether or not compression pays.
        let mut src = words(9, 3001);
        let specials = [
            f64::NAN.to_bits(),
            0x7FF0_0000_DEAD_BEEF,
            (-0.0f64).to_bits(),
            f64::INFINITY.to_bits(),
            1,
        ];
        for (k, bits) in specials.iter().enumerate() {
            src[8 * k * 97..8 * k * 97 + 8].copy_from_slice(&bits.to_le_bytes());
        }
        for (i, w) in src[8 * 1000..8 * 3000].chunks_exact_mut(8).enumerate() {
            w.copy_from_slice(&(i as f64 * 0.001).sin().to_le_bytes());
        }
        for codec in [Codec::Zstd, Codec::Lz4] {
            let settings = Settings {
                codec,
                level: 3,
                filters: true,
            };
            let mut packer = Packer::new(settings).unwrap();
            let mut unpacker = Unpacker::new();
            for filter in Filter::ALL {
                for lag in [1, 2] {
                    let mut filtered = Vec::new();
                    filter_forward(filter, lag, &src, &mut filtered);
                    let mut stored = Vec::new();
                    packer.encode(&filtered, &mut stored).unwrap();
                    let c = ChunkRef {
                        stored_at: 0,
                        stored_len: stored.len(),
                        codec,
                        filter,
                    };
                    let mut out = vec![0u8; src.len()];
                    unpacker.chunk(&c, lag, &stored, &mut out).unwrap();
                    assert_eq!(out, src, "{codec:?} {filter:?} lag {lag}");
                    // One byte short of the chunk's length is an error.
                    let mut short = vec![0u8; src.len() - 8];
                    assert!(unpacker.chunk(&c, lag, &stored, &mut short).is_err());
                }
            }
        }
    }

    #[test]
    fn delta_of_an_arithmetic_sequence_is_constant() {
        let src: Vec<u8> = (0..16u64)
            .flat_map(|i| (100 + 3 * i).to_le_bytes())
            .collect();
        let mut fwd = Vec::new();
        filter_forward(Filter::Delta1, 1, &src, &mut fwd);
        // Unshuffle the low bytes: the first word is 100, then all 3s.
        let low: Vec<u8> = fwd[..16].to_vec();
        assert_eq!(low[0], 100);
        assert!(low[1..].iter().all(|&b| b == 3));
        filter_forward(Filter::Delta2, 1, &src, &mut fwd);
        assert_eq!(&fwd[..3], &[100, 159, 0]); // 100, 3 - 100 = -97 (wrapping), 0...
    }

    #[test]
    fn zstd_contexts_stay_within_their_stated_size() {
        // The tables' size depends on the level and the input's size, not
        // its bytes: zeros compress fast even at level 22.
        let chunk = vec![0u8; 1 << CODEC_CHUNK_LOG2];
        for level in [3, 9, 11, 19, 22] {
            let mut z = zstd::bulk::Compressor::new(level).unwrap();
            z.compress(&chunk).unwrap();
            let used = z.context_mut().sizeof();
            assert!(
                used <= zstd_context_bytes(level),
                "level {level}: {used} bytes"
            );
        }
    }

    #[test]
    fn high_levels_cap_the_workers_within_the_budget() {
        let zstd = |level| Settings {
            codec: Codec::Zstd,
            level,
            filters: true,
        };
        for settings in [zstd(1), zstd(3), zstd(9), zstd(19), zstd(22)] {
            let w = workers(settings, 256);
            assert!(w >= 1 && w * worker_bytes(settings) <= COMPRESSION_BUDGET);
        }
        assert_eq!(workers(zstd(22), 256), 3);
        assert_eq!(workers(zstd(22), 2), 2);
        assert_eq!(workers(zstd(3), 1), 1);
        let lz4 = Settings {
            codec: Codec::Lz4,
            ..zstd(1)
        };
        assert_eq!(workers(lz4, 8), 8);
    }

    #[test]
    fn the_rule_keeps_only_savings_of_an_eighth() {
        assert!(pays(800, 700));
        assert!(!pays(800, 701));
        assert!(pays(0, 0));
    }

    #[test]
    fn table_rejects_lengths_that_do_not_add_up() {
        let rec = table_record(5, Codec::Zstd, Filter::None);
        let mut payload = zerocopy::IntoBytes::as_bytes(&rec).to_vec();
        payload.extend_from_slice(&[0; 4]);
        let err = parse_table(&payload, Codec::Zstd, 100, 1 << 16, true).unwrap_err();
        assert_eq!(err, "chunk lengths do not add up to the payload");
        payload.push(0);
        assert!(parse_table(&payload, Codec::Zstd, 100, 1 << 16, true).is_ok());
        assert!(parse_table(&payload, Codec::Lz4, 100, 1 << 16, true).is_err());
    }
}
