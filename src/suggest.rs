//! "Did you mean ...?" for names that do not exist: the closest name by
//! edit distance (strsim's Levenshtein), within bounds on the work.

/// The candidate closest to `wanted`, if one is close enough to be a likely
/// typo (at most a third of the wanted name's length, and at least 1).
///
/// The work is bounded whatever the candidates (names come from untrusted
/// archives): no suggestion for names over [`SUGGEST_MAX_LEN`] characters,
/// and a candidate whose length alone puts it out of reach is skipped before
/// any distance is computed.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let len = wanted.chars().count();
    if len > SUGGEST_MAX_LEN {
        return None;
    }
    let limit = (len / 3).max(1);
    candidates
        .into_iter()
        // Byte length bounds char length from above and, over 4, from below.
        .filter(|c| c.len() <= (len + limit) * 4 && c.len() + limit >= len)
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        .map(|c| (strsim::levenshtein(wanted, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

/// Longest name (in characters) for which a suggestion is looked for.
pub const SUGGEST_MAX_LEN: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_only_close_names() {
        let names = ["compress", "compression_level", "description"];
        assert_eq!(closest("compresion", names), Some("compress".into()));
        assert_eq!(closest("zzz", names), None);
        let long = "x".repeat(SUGGEST_MAX_LEN + 1);
        assert_eq!(closest(&long, [long.as_str()]), None);
    }
}
