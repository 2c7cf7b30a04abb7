//! Like `archive`, but first rewrites the trailer (table checksum and
//! closing checksum) to match whatever the mutated header, table and hash
//! pool say, as an attacker could (layout.md section 7). Random bytes almost
//! never pass the table checksum, so without this the table's validation
//! (section 8) is barely reached; loads run with and without blob checksums
//! as in `archive`.
#![no_main]

use achronyme_env::hash::sha256;
use achronyme_env::layout::{RawHeader, RawTocHeader, TOC_CHUNK_LOG2};
use libfuzzer_sys::fuzz_target;
use zerocopy::FromBytes;

/// Recomputes the trailer in place; `None` when the header or table
/// header cannot be located (the input is then opened as it is).
fn reseal(bytes: &mut [u8]) -> Option<()> {
    let (header, _) = RawHeader::read_from_prefix(bytes).ok()?;
    let toc_offset = usize::try_from(header.toc_offset.get()).ok()?;
    let toc_len = usize::try_from(header.toc_len.get()).ok()?;
    let toc_end = toc_offset.checked_add(toc_len)?;
    let toc = bytes.get(toc_offset..toc_end)?;
    let (th, _) = RawTocHeader::read_from_prefix(toc).ok()?;
    let chunks: Vec<[u8; 32]> = toc
        .chunks(1 << TOC_CHUNK_LOG2)
        .map(|c| sha256(&[c]))
        .collect();
    let mut parts: Vec<&[u8]> = vec![bytes.get(..64)?];
    parts.extend(chunks.iter().map(|d| d.as_slice()));
    let toc_sha = sha256(&parts);
    let pool_start = usize::try_from(th.hashes_offset.get()).ok()?;
    let pool_len = usize::try_from(th.hash_count.get()).ok()?.checked_mul(32)?;
    let pool = bytes.get(pool_start..pool_start.checked_add(pool_len)?)?;
    let closing = sha256(&[&toc_sha, pool]);
    let trailer = bytes.get_mut(toc_end..toc_end.checked_add(64)?)?;
    trailer[..32].copy_from_slice(&toc_sha);
    trailer[32..].copy_from_slice(&closing);
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    let _ = reseal(&mut bytes);
    achronyme_env::fuzzing::exercise_archive(bytes);
});
