//! `ach diff A B`: bindings added, removed and changed, and metadata
//! differences, from the tables of contents and the chunk digests each
//! archive stores (checked against its closing SHA-256; no value is
//! decoded, and no blob is read but, in a format 1.3 archive, those of
//! values that may refer to tensor blobs, to list the blobs they name).

use achronyme_env::Location;

use achronyme_env::{Archive, BindingInfo, EnvInfo};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{CliResult, failed, printable, section_name, shape_of, shape_text};

/// A binding as `ach diff --json` describes it.
#[derive(Serialize, Clone)]
struct Item {
    name: String,
    section: &'static str,
    #[serde(rename = "type")]
    type_name: &'static str,
    shape: Vec<u64>,
    raw_bytes: u64,
    codec: &'static str,
}

impl From<&BindingInfo> for Item {
    fn from(e: &BindingInfo) -> Self {
        Item {
            name: e.name.clone(),
            section: section_name(e.section),
            type_name: e.type_name,
            shape: e.shape.clone(),
            raw_bytes: e.raw_bytes,
            codec: e.codec.name(),
        }
    }
}

#[derive(Serialize)]
struct Changed {
    name: String,
    section: &'static str,
    /// What differs: "type", "shape", "size", "codec", "content".
    differs: Vec<&'static str>,
    a: Item,
    b: Item,
}

#[derive(Serialize)]
struct MetaDiff {
    field: &'static str,
    a: serde_json::Value,
    b: serde_json::Value,
}

#[derive(Serialize)]
struct Report {
    identical: bool,
    added: Vec<Item>,
    removed: Vec<Item>,
    changed: Vec<Changed>,
    metadata: Vec<MetaDiff>,
}

/// Whether `name`'s blob is stored with the same bytes in `a` and `b`:
/// from the digests each archive stores (checked against its closing
/// SHA-256), without reading the blobs; only archives hashed in chunks of
/// different sizes (another writer's) or with different checksum
/// algorithms have their blobs read and hashed.
fn same_content(a: &Archive, b: &Archive, x: &BindingInfo) -> achronyme_env::Result<bool> {
    if a.digest_chunk_size() == b.digest_chunk_size() && a.checksum() == b.checksum() {
        return Ok(a.stored_digests(x.section, &x.name)? == b.stored_digests(x.section, &x.name)?);
    }
    let digest = |archive: &Archive| -> achronyme_env::Result<[u8; 32]> {
        Ok(Sha256::digest(archive.stored_blob(x.section, &x.name)?.as_slice()).into())
    };
    Ok(digest(a)? == digest(b)?)
}

fn metadata_diffs(a: &EnvInfo, b: &EnvInfo) -> Vec<MetaDiff> {
    let mut out = Vec::new();
    let mut cmp = |field, x: serde_json::Value, y: serde_json::Value| {
        if x != y {
            out.push(MetaDiff { field, a: x, b: y });
        }
    };
    use serde_json::json;
    cmp("created_by", json!(a.created_by), json!(b.created_by));
    cmp("platform", json!(a.platform), json!(b.platform));
    cmp(
        "achronyme_version",
        json!(a.achronyme_version),
        json!(b.achronyme_version),
    );
    cmp("description", json!(a.description), json!(b.description));
    cmp("tags", json!(a.tags), json!(b.tags));
    cmp("custom", json!(a.custom), json!(b.custom));
    out
}

/// `ach diff A B [--json]`; returns whether the archives are identical.
pub fn diff(a_path: &Location, b_path: &Location, json: bool) -> CliResult<bool> {
    let (a, b) = (super::open_checked(a_path)?, super::open_checked(b_path)?);
    let report = compare(&a, &b)?;
    if json {
        println!("{}", super::json_text(&report));
    } else {
        print_text(&report);
    }
    Ok(report.identical)
}

/// What differs between `a` and `b`: both tables are sorted by (section,
/// name), so one merge pass pairs their bindings.
fn compare(a: &Archive, b: &Archive) -> CliResult<Report> {
    let (ai, bi) = (a.info(), b.info());
    let key = |e: &BindingInfo| (e.section, e.name.clone());
    let (ae, be) = (&*ai.entries, &*bi.entries);
    let mut report = Report {
        identical: false,
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        metadata: metadata_diffs(&ai, &bi),
    };
    let (mut i, mut j) = (0, 0);
    while i < ae.len() || j < be.len() {
        let order = match (ae.get(i), be.get(j)) {
            (Some(x), Some(y)) => key(x).cmp(&key(y)),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                report.removed.push((&ae[i]).into());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                report.added.push((&be[j]).into());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                report.changed.extend(changed(a, b, &ae[i], &be[j])?);
                i += 1;
                j += 1;
            }
        }
    }
    report.identical = report.added.is_empty()
        && report.removed.is_empty()
        && report.changed.is_empty()
        && report.metadata.is_empty();
    Ok(report)
}

/// How a binding present in both archives differs, if it does: by what the
/// tables say, then by the stored digests.
fn changed(
    a: &Archive,
    b: &Archive,
    x: &BindingInfo,
    y: &BindingInfo,
) -> CliResult<Option<Changed>> {
    let mut differs = Vec::new();
    if x.type_name != y.type_name {
        differs.push("type");
    }
    if x.shape != y.shape {
        differs.push("shape");
    }
    if x.raw_bytes != y.raw_bytes {
        differs.push("size");
    }
    if x.codec != y.codec {
        differs.push("codec");
    }
    if differs.is_empty() {
        let same = same_content(a, b, x)
            .map_err(|e| failed(format!("comparing {}: {e}", printable(&x.name))))?;
        if !same {
            differs.push("content");
        }
    }
    Ok((!differs.is_empty()).then(|| Changed {
        name: x.name.clone(),
        section: section_name(x.section),
        differs,
        a: x.into(),
        b: y.into(),
    }))
}

/// The report as people read it: one row per binding, then metadata, then
/// a count.
fn print_text(report: &Report) {
    let describe = |it: &Item| {
        let mut d = it.type_name.to_string();
        if !it.shape.is_empty() || it.type_name.ends_with("Tensor") {
            d = format!("{d} {}", shape_of(it.type_name, &it.shape));
        }
        if it.section != "bindings" {
            d = format!("{d} ({})", it.section);
        }
        d
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for it in &report.added {
        rows.push(vec!["+".into(), printable(&it.name), describe(it)]);
    }
    for it in &report.removed {
        rows.push(vec!["-".into(), printable(&it.name), describe(it)]);
    }
    for c in &report.changed {
        let what: Vec<String> = c
            .differs
            .iter()
            .map(|d| match *d {
                "type" => format!("type {} -> {}", c.a.type_name, c.b.type_name),
                "shape" => format!(
                    "shape {} -> {}",
                    shape_text(&c.a.shape),
                    shape_text(&c.b.shape)
                ),
                "size" => format!("size {} -> {} bytes", c.a.raw_bytes, c.b.raw_bytes),
                "codec" => format!("codec {} -> {}", c.a.codec, c.b.codec),
                _ => "content differs (the stored chunk digests)".to_string(),
            })
            .collect();
        rows.push(vec!["~".into(), printable(&c.name), what.join(", ")]);
    }
    for r in &rows {
        println!("{}  {:<w$}  {}", r[0], r[1], r[2], w = name_width(&rows));
    }
    for m in &report.metadata {
        println!(
            "metadata {}: {} -> {}",
            m.field,
            printable(&m.a.to_string()),
            printable(&m.b.to_string())
        );
    }
    if report.identical {
        println!("identical");
    } else {
        println!(
            "{} added, {} removed, {} changed, {} metadata fields differ",
            report.added.len(),
            report.removed.len(),
            report.changed.len(),
            report.metadata.len()
        );
    }
}

fn name_width(rows: &[Vec<String>]) -> usize {
    rows.iter().map(|r| r[1].chars().count()).max().unwrap_or(0)
}
