//! Choosing names by pattern, shared by save, restore and snapshots:
//! `include_only` and `exclude`, as glob patterns (`temp_*`, `debug_?`).
//! (In this crate "filter" names only the byte shuffle and delta filters of
//! compression, in `format/codec.rs`.)

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// Which names pass: those matching `include_only` (all when absent) and no
/// pattern of `exclude`.
pub(crate) struct NameSelection {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

fn build(patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let g = Glob::new(p).map_err(|e| Error::InvalidPattern {
            pattern: p.clone(),
            reason: e.kind().to_string(),
        })?;
        b.add(g);
    }
    b.build().map_err(|e| Error::InvalidPattern {
        pattern: patterns.join(", "),
        reason: e.to_string(),
    })
}

impl NameSelection {
    pub(crate) fn new(include_only: Option<&[String]>, exclude: &[String]) -> Result<Self> {
        Ok(NameSelection {
            include: include_only.map(build).transpose()?,
            exclude: build(exclude)?,
        })
    }

    pub(crate) fn accepts(&self, name: &str) -> bool {
        // An empty set matches nothing; asking it still costs a candidate
        // per name, which a save or restore of many bindings feels.
        self.include.as_ref().is_none_or(|g| g.is_match(name))
            && (self.exclude.is_empty() || !self.exclude.is_match(name))
    }
}

/// The patterns of `patterns` that match none of `names`, in their order.
pub(crate) fn unmatched<'a>(
    patterns: &[String],
    names: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>> {
    let set = build(patterns)?;
    let mut hit = vec![false; patterns.len()];
    let mut left = patterns.len();
    for name in names {
        if left == 0 {
            break;
        }
        for i in set.matches(name) {
            if let Some(h) = hit.get_mut(i)
                && !*h
            {
                *h = true;
                left -= 1;
            }
        }
    }
    Ok(patterns
        .iter()
        .zip(hit)
        .filter(|(_, h)| !h)
        .map(|(p, _)| p.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_select_names() {
        let f = NameSelection::new(None, &["temp_*".into(), "debug_?".into()]).unwrap();
        assert!(f.accepts("data"));
        assert!(!f.accepts("temp_1"));
        assert!(!f.accepts("debug_x"));
        assert!(f.accepts("debug_xy"));
        let f = NameSelection::new(Some(&["data".into(), "model*".into()]), &[]).unwrap();
        assert!(f.accepts("data") && f.accepts("model_2"));
        assert!(!f.accepts("results"));
        assert!(NameSelection::new(None, &["[".into()]).is_err());
    }
}
