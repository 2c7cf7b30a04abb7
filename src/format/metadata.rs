//! The metadata block of the table of contents (spec 2.3): who wrote the
//! archive, on what, and the user's description, tags and custom fields.
//! Counts and offsets of spec 2.3 are derived from the entries instead of
//! being stored twice.

use serde::Serialize;

/// Archive-level metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metadata {
    /// Program that wrote the archive, e.g. `"Achronyme REPL v0.1.0"`.
    pub created_by: String,
    /// Platform, e.g. `"Linux x86_64"`.
    pub platform: String,
    /// Free-text description.
    pub description: Option<String>,
    /// Tags for categorising.
    pub tags: Vec<String>,
    /// Custom key-value metadata, in insertion order (without the
    /// reserved `achronyme.runtime_version` entry, which is
    /// `runtime_version`).
    pub custom: Vec<(String, String)>,
    /// The writer's full runtime version, when the header's 16-byte field
    /// holds only its beginning (`layout.md` 2.1 and 6.1).
    pub runtime_version: Option<String>,
}

/// The custom entry that holds the full runtime version when it does not
/// fit in the header: reserved, a save refuses it as a user's key.
pub const RUNTIME_VERSION_KEY: &str = "achronyme.runtime_version";

/// Most bytes any one metadata string may have.
pub const MAX_META_STRING: usize = 1 << 20;
/// Most tags or custom entries.
pub const MAX_META_ITEMS: usize = 65_536;

impl Metadata {
    /// The platform this program runs on, as stored by a save.
    pub fn current_platform() -> String {
        format!("{} {}", std::env::consts::OS, std::env::consts::ARCH)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        fn s(out: &mut Vec<u8>, v: &str) {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::new();
        s(&mut out, &self.created_by);
        s(&mut out, &self.platform);
        match &self.description {
            Some(d) => {
                out.push(1);
                s(&mut out, d);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&(self.tags.len() as u32).to_le_bytes());
        for t in &self.tags {
            s(&mut out, t);
        }
        let version = self
            .runtime_version
            .as_deref()
            .map(|v| (RUNTIME_VERSION_KEY, v));
        let custom = self.custom.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let entries: Vec<(&str, &str)> = custom.chain(version).collect();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (k, v) in entries {
            s(&mut out, k);
            s(&mut out, v);
        }
        out
    }

    /// Checks the limits a save enforces, so every archive it writes can be
    /// read back. The error names the save option at fault and the rule.
    pub(crate) fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let too_long = |s: &String| s.len() > MAX_META_STRING;
        let fields: [(&'static str, bool); 5] = [
            ("created_by", too_long(&self.created_by)),
            ("platform", too_long(&self.platform)),
            ("description", self.description.iter().any(too_long)),
            ("tags", self.tags.iter().any(too_long)),
            (
                "custom",
                self.custom.iter().any(|(k, v)| too_long(k) || too_long(v)),
            ),
        ];
        if let Some((option, _)) = fields.iter().find(|(_, bad)| *bad) {
            return Err((option, "a metadata string is longer than 1 MiB"));
        }
        if self.tags.len() > MAX_META_ITEMS {
            return Err(("tags", "more than 65536 tags"));
        }
        if self.custom.len() + usize::from(self.runtime_version.is_some()) > MAX_META_ITEMS {
            return Err(("custom", "more than 65536 custom entries"));
        }
        if self.custom.iter().any(|(k, _)| k == RUNTIME_VERSION_KEY) {
            return Err((
                "custom",
                "the key achronyme.runtime_version is reserved for the runtime's version",
            ));
        }
        if self
            .runtime_version
            .as_ref()
            .is_some_and(|v| v.len() > MAX_META_STRING)
        {
            return Err(("runtime version", "a metadata string is longer than 1 MiB"));
        }
        Ok(())
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Metadata, &'static str> {
        let mut pos = 0usize;
        let u32_at = |pos: &mut usize| -> Result<u32, &'static str> {
            let s = b.get(*pos..*pos + 4).ok_or("metadata is truncated")?;
            *pos += 4;
            Ok(u32::from_le_bytes(s.try_into().expect("4 bytes")))
        };
        fn string(b: &[u8], pos: &mut usize, n: u32) -> Result<String, &'static str> {
            let n = n as usize;
            if n > MAX_META_STRING {
                return Err("metadata string is too long");
            }
            let s = b.get(*pos..*pos + n).ok_or("metadata is truncated")?;
            *pos += n;
            String::from_utf8(s.to_vec()).map_err(|_| "metadata string is not UTF-8")
        }
        let n = u32_at(&mut pos)?;
        let created_by = string(b, &mut pos, n)?;
        let n = u32_at(&mut pos)?;
        let platform = string(b, &mut pos, n)?;
        let has_desc = *b.get(pos).ok_or("metadata is truncated")?;
        pos += 1;
        let description = match has_desc {
            0 => None,
            1 => {
                let n = u32_at(&mut pos)?;
                Some(string(b, &mut pos, n)?)
            }
            _ => return Err("description marker is neither 0 nor 1"),
        };
        let count = u32_at(&mut pos)? as usize;
        if count > MAX_META_ITEMS {
            return Err("too many tags");
        }
        let mut tags = Vec::with_capacity(count.min(b.len() / 4));
        for _ in 0..count {
            let n = u32_at(&mut pos)?;
            tags.push(string(b, &mut pos, n)?);
        }
        let count = u32_at(&mut pos)? as usize;
        if count > MAX_META_ITEMS {
            return Err("too many custom entries");
        }
        let mut custom = Vec::with_capacity(count.min(b.len() / 8));
        let mut runtime_version = None;
        for _ in 0..count {
            let n = u32_at(&mut pos)?;
            let k = string(b, &mut pos, n)?;
            let n = u32_at(&mut pos)?;
            let v = string(b, &mut pos, n)?;
            if k == RUNTIME_VERSION_KEY {
                runtime_version = Some(v);
            } else {
                custom.push((k, v));
            }
        }
        if pos != b.len() {
            return Err("bytes left over after the metadata");
        }
        Ok(Metadata {
            created_by,
            platform,
            description,
            tags,
            custom,
            runtime_version,
        })
    }
}

/// Formats Unix seconds as ISO 8601 UTC (`2025-01-13T10:30:00Z`).
pub fn iso8601(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_736_764_200), "2025-01-13T10:30:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn metadata_round_trip() {
        let m = Metadata {
            created_by: "x".into(),
            platform: "linux".into(),
            description: Some("d".into()),
            tags: vec!["a".into(), "b".into()],
            custom: vec![("k".into(), "v".into())],
            runtime_version: Some("v2.3.0-beta.1+build.20250113".into()),
        };
        assert_eq!(Metadata::decode(&m.encode()).unwrap(), m);
        let enc = m.encode();
        for cut in 0..enc.len() {
            assert!(Metadata::decode(&enc[..cut]).is_err());
        }
    }
}
