//! The pages of a paged table of contents (format 1.3, layout.md 6.8): each
//! page is checked against its digest in the page index the first time
//! any of its bytes is used, so that opening an archive and looking up one
//! name cost a few pages, whatever the table holds.
//!
//! Three levels: the trailer's `toc_sha256` covers the top digests (checked
//! at open), each top digest covers one page-sized piece of the page
//! digests (checked when a page digest in it is first needed), and each
//! page digest covers one page.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};
use crate::format::hash::{self, Checksum};
use crate::format::toc::PageLayout;

/// Not checked yet.
const UNKNOWN: u8 = 0;
/// Matched its digest.
const GOOD: u8 = 1;
/// Did not match its digest.
const BAD: u8 = 2;

/// One level of pieces, each checked once against its digest.
struct Level {
    /// Offset within the table of the pieces' bytes, and their length.
    start: usize,
    len: usize,
    /// Offset within the table of the pieces' digests.
    digests_at: usize,
    /// One state per piece: [`UNKNOWN`], [`GOOD`] or [`BAD`]. Several
    /// threads may check the same piece at once; they reach the same
    /// answer.
    state: Box<[AtomicU8]>,
}

/// The page digests of one table and what each check found.
pub(crate) struct Pages {
    algo: Checksum,
    page: usize,
    /// The pages (the table before its index).
    pages: Level,
    /// The page digests, in page-sized pieces, under the top digests.
    digests: Level,
}

impl Level {
    fn new(start: usize, len: usize, digests_at: usize, page: usize) -> Self {
        Level {
            start,
            len,
            digests_at,
            state: (0..len.div_ceil(page))
                .map(|_| AtomicU8::new(UNKNOWN))
                .collect(),
        }
    }
}

impl Pages {
    /// The pages of a table laid out as `layout`, whose index head and top
    /// digests the caller has checked against the trailer.
    pub(crate) fn new(layout: PageLayout, algo: Checksum) -> Self {
        let page = 1usize << layout.log2;
        let digests_len = (layout.pages * layout.digest_len) as usize;
        Pages {
            algo,
            page,
            pages: Level::new(0, layout.body_len as usize, layout.digests_at(), page),
            digests: Level::new(layout.digests_at(), digests_len, layout.tops_at(), page),
        }
    }

    /// Checks every page holding a byte of `toc[start..end]` (an empty
    /// range checks nothing). `toc` is the whole table.
    pub(crate) fn ensure(&self, toc: &[u8], start: usize, end: usize) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        // Callers pass ranges of the table before its page index; clamped
        // so that a mistake there cannot index past the states.
        let last_page = self.pages.state.len().saturating_sub(1);
        let first = start / self.page;
        let last = ((end - 1) / self.page).min(last_page);
        (first..=last).try_for_each(|k| {
            // The piece of page digests that holds page k's digest first.
            self.check(toc, &self.digests, k * self.algo.len() / self.page)?;
            self.check(toc, &self.pages, k)
        })
    }

    /// Checks every piece of both levels, hashing each level on every
    /// core, and fails on the first bad one.
    pub(crate) fn ensure_all(&self, toc: &[u8]) -> Result<()> {
        for level in [&self.digests, &self.pages] {
            let bytes = &toc[level.start..level.start + level.len];
            let found = hash::chunk_digests(self.algo, &[], bytes, self.page);
            for (k, d) in found.iter().enumerate().take(level.state.len()) {
                if level.state[k].load(Ordering::Acquire) == UNKNOWN {
                    let good = d[..self.algo.len()] == *self.stored(toc, level, k);
                    level.state[k].store(if good { GOOD } else { BAD }, Ordering::Release);
                }
            }
            if level.state.iter().any(|s| s.load(Ordering::Acquire) == BAD) {
                return Err(Error::TocChecksum);
            }
        }
        Ok(())
    }

    /// Piece `k`'s stored digest.
    fn stored<'t>(&self, toc: &'t [u8], level: &Level, k: usize) -> &'t [u8] {
        let dlen = self.algo.len();
        let at = level.digests_at + k * dlen;
        &toc[at..at + dlen]
    }

    /// Checks piece `k` of `level` once; a piece that failed fails again.
    fn check(&self, toc: &[u8], level: &Level, k: usize) -> Result<()> {
        let state = &level.state[k];
        let known = match state.load(Ordering::Acquire) {
            UNKNOWN => {
                let start = level.start + k * self.page;
                let end = (start + self.page).min(level.start + level.len);
                let found = self.algo.of(&[&toc[start..end]]);
                let now = match found[..self.algo.len()] == *self.stored(toc, level, k) {
                    true => GOOD,
                    false => BAD,
                };
                state.store(now, Ordering::Release);
                now
            }
            s => s,
        };
        match known {
            GOOD => Ok(()),
            _ => Err(Error::TocChecksum),
        }
    }
}
