//! The pages of a paged table of contents (format 1.3, layout.md 6.8): each
//! page is checked against its digest in the page index the first time
//! any of its bytes is used, so that opening an archive and looking up one
//! name cost a few pages, whatever the table holds.

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

/// The page digests of one table and what each page's check found.
pub(crate) struct Pages {
    layout: PageLayout,
    algo: Checksum,
    /// Offset within the table of the first page digest.
    digests_at: usize,
    /// One state per page: [`UNKNOWN`], [`GOOD`] or [`BAD`]. Several
    /// threads may check the same page at once; they reach the same answer.
    state: Box<[AtomicU8]>,
}

impl Pages {
    /// The pages of a table laid out as `layout`, whose page index the
    /// caller has checked against the trailer.
    pub(crate) fn new(layout: PageLayout, algo: Checksum) -> Self {
        Pages {
            layout,
            algo,
            digests_at: layout.index().start + crate::format::layout::PAGE_INDEX_HEAD_LEN as usize,
            state: (0..layout.pages).map(|_| AtomicU8::new(UNKNOWN)).collect(),
        }
    }

    fn page_len(&self) -> usize {
        1 << self.layout.log2
    }

    /// Checks every page holding a byte of `toc[start..end]` (an empty
    /// range checks nothing). `toc` is the whole table.
    pub(crate) fn ensure(&self, toc: &[u8], start: usize, end: usize) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        // Callers pass ranges of the table before its page index; clamped
        // so that a mistake there cannot index past the states.
        let first = start / self.page_len();
        let last = ((end - 1) / self.page_len()).min(self.state.len().saturating_sub(1));
        (first..=last).try_for_each(|k| self.check(toc, k))
    }

    /// Checks every page, on every core, and fails on the first bad one.
    pub(crate) fn ensure_all(&self, toc: &[u8]) -> Result<()> {
        let body = &toc[..self.layout.body_len as usize];
        let found = hash::chunk_digests(self.algo, &[], body, self.page_len());
        for (k, d) in found.iter().enumerate() {
            if self.state[k].load(Ordering::Acquire) == UNKNOWN {
                let good = d[..self.algo.len()] == *self.stored(toc, k);
                self.state[k].store(if good { GOOD } else { BAD }, Ordering::Release);
            }
        }
        match self.state.iter().any(|s| s.load(Ordering::Acquire) == BAD) {
            true => Err(Error::TocChecksum),
            false => Ok(()),
        }
    }

    /// Page `k`'s stored digest.
    fn stored<'t>(&self, toc: &'t [u8], k: usize) -> &'t [u8] {
        let dlen = self.algo.len();
        let at = self.digests_at + k * dlen;
        &toc[at..at + dlen]
    }

    /// Checks page `k` once; a page that failed fails again.
    fn check(&self, toc: &[u8], k: usize) -> Result<()> {
        let state = &self.state[k];
        let known = match state.load(Ordering::Acquire) {
            UNKNOWN => {
                let start = k * self.page_len();
                let end = (start + self.page_len()).min(self.layout.body_len as usize);
                let good =
                    self.algo.of(&[&toc[start..end]])[..self.algo.len()] == *self.stored(toc, k);
                let now = if good { GOOD } else { BAD };
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
