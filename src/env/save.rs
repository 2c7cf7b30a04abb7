//! Saving an environment (spec 3.1 `save_env`): choosing what to write,
//! checking it can be written, and handing it to the writer through the
//! one module that publishes files.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::archive::location::Location;
use crate::archive::publish::{PublishOptions, Published, atomic_write};
use crate::archive::shared::{SharedPlan, storage_key_of};
use crate::archive::writer::{self, HeaderFields, NestedBlobs, Planned};
use crate::env::environment::{Environment, check_name};
use crate::env::select::NameSelection;
use crate::error::{Error, Result};
use crate::format::codec::Settings;
use crate::format::layout::{Codec, Section};
use crate::format::metadata::Metadata;
use crate::value::provenance::{Provenance, SourceFile, StoredBlob};
use crate::value::{Edge, Function, MAX_DEPTH, Record, Value, read_ref};

pub use crate::env::environment::RUNTIME_VERSION;

/// The default of [`SaveOptions::large_value_warning`]: values larger than
/// this (raw bytes) get a warning, the spec's 100 MB, as MiB.
pub const LARGE_VALUE_BYTES: u64 = 100 * 1024 * 1024;

/// How a save compresses blobs (spec 3.1 `compress`, `compression_level`).
///
/// Compression is per blob and only where it pays: a blob or 4 MiB chunk
/// that compression shrinks by less than an eighth is stored raw, so it
/// stays mappable (`layout.md` 3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Every blob stored raw.
    None,
    /// Zstandard at `level`, 1 to 22 (3 balances speed and size; 9 packs
    /// tighter and saves slower). Out of range is [`Error::InvalidOption`].
    ///
    /// Higher levels take more memory per core: a save compresses 4 MiB
    /// chunks on every core, and its workers together stay within 256 MiB
    /// (about 1.2 MiB of zstd context each at level 3, up to 65 MiB at
    /// levels 12 to 22, plus 16 MiB of chunks), so from level 12 on at most
    /// three chunks are compressed at once. README "Compression" has the
    /// figures.
    Zstd {
        /// The level, 1 to 22.
        level: i32,
    },
    /// LZ4 (block format): faster than zstd, packs less; no levels.
    Lz4,
}

impl Default for Compression {
    /// zstd level 3, the spec's default.
    fn default() -> Self {
        Compression::Zstd { level: 3 }
    }
}

impl Compression {
    /// The codec this compression writes ([`Codec::None`] when off).
    pub fn codec(self) -> Codec {
        match self {
            Compression::None => Codec::None,
            Compression::Zstd { .. } => Codec::Zstd,
            Compression::Lz4 => Codec::Lz4,
        }
    }

    /// The writer's settings, after checking the level.
    fn settings(self, filters: bool) -> Result<Option<Settings>> {
        let level = match self {
            Compression::None => return Ok(None),
            Compression::Zstd { level } if !(1..=22).contains(&level) => {
                return Err(Error::InvalidOption {
                    option: "compression_level",
                    reason: format!(
                        "must be between 1 and 22 (3 balances speed and size), got {level}"
                    ),
                });
            }
            Compression::Zstd { level } => level,
            // LZ4 has no levels; the writer ignores this one.
            Compression::Lz4 => 1,
        };
        Ok(Some(Settings {
            codec: self.codec(),
            level,
            filters,
        }))
    }
}

/// Options of `save_env` (spec 3.1, 7.3).
///
/// Compression is on by default (zstd level 3, as in the spec), per blob:
/// float tensors go through a shuffle or delta filter chosen on a sample, large
/// payloads are compressed in 4 MiB chunks on every core, and a blob or chunk
/// whose compression saves less than an eighth is stored raw, so a tensor
/// of noise stays mappable and loads as a view. See `layout.md` 3.4.
#[derive(Clone, Debug)]
pub struct SaveOptions {
    /// Save the constants section (default true).
    pub include_constants: bool,
    /// Save user-defined functions (default false). Format v1 has no
    /// encoding for them (spec 4.1, option 1), so they are skipped either
    /// way; when this is true the warning says so explicitly.
    pub include_functions: bool,
    /// Save the host runtime's own builtins bound under their own names
    /// (`sin` bound to the builtin `sin`; default false: the runtime provides
    /// them again). Needs [`Environment::set_host_builtins`]; a builtin bound
    /// to another name (`f = sin`) is user data and is always saved.
    pub include_builtins: bool,
    /// Only names matching one of these glob patterns (None = all). A
    /// pattern that matches no binding is listed in
    /// [`SaveReport::not_found`].
    pub include_only: Option<Vec<String>>,
    /// Skip names matching any of these glob patterns.
    pub exclude: Vec<String>,
    /// How blobs are compressed where it pays (default zstd level 3, as in
    /// the spec).
    pub compression: Compression,
    /// Algorithm of every blob chunk's digest (default
    /// [`Checksum::Xxh3`](crate::hash::Checksum::Xxh3), fast enough to
    /// check on every load). [`Checksum::Sha256`](crate::hash::Checksum::Sha256)
    /// makes the archive's closing SHA-256 authenticate every byte of it
    /// (layout.md 7), at about a fifth of the speed, and gives an archive
    /// format 1.0 and 1.1 readers can open.
    pub checksum: crate::hash::Checksum,
    /// Try the float filters (byte shuffle, delta coding) on tensors before
    /// the codec (default true). Off, tensors are compressed as plain bytes.
    pub filters: bool,
    /// Copy a tensor's stored blob from the archive that holds it unchanged
    /// when these options accept it as stored (default true; README
    /// "Saving what did not change"). False writes every tensor from its
    /// elements: to recompress blobs stored at another level, or to hash
    /// every byte afresh.
    pub reuse_stored: bool,
    /// Description stored in the metadata.
    pub description: Option<String>,
    /// Tags stored in the metadata.
    pub tags: Vec<String>,
    /// Custom key-value metadata.
    pub custom: Vec<(String, String)>,
    /// Replace an existing file at the path (default false).
    pub allow_overwrite: bool,
    /// Abort (leaving any old file untouched) if the archive would exceed
    /// this many bytes.
    pub max_file_size: Option<u64>,
    /// Warn about each binding whose raw size is over this many bytes
    /// (default `Some(`[`LARGE_VALUE_BYTES`]`)`; `None` never warns).
    pub large_value_warning: Option<u64>,
    /// Sync the file and its directory before returning (default true).
    /// Turning it off is only for benchmarks and scratch files: a crash soon
    /// after the save could then lose the new archive (never the old one
    /// half-overwritten, since the rename is still atomic).
    pub durable: bool,
    /// Refuse to save when any selected binding cannot be saved for a
    /// reason other than being a user function: a `mut` reference that
    /// refers back to itself ([`Error::CyclicReference`]). Default false:
    /// that binding is skipped with a warning, as lambdas are, and the rest
    /// is saved.
    pub strict: bool,
    /// `created_by` metadata; empty (default) means `"{name} {version}"` of
    /// the environment's runtime ([`Environment::set_runtime`]).
    pub created_by: String,
    /// Runtime version recorded; empty (default) means the environment's
    /// ([`Environment::runtime_version`]). Kept whole: the header holds its
    /// first 16 bytes, and the metadata the full string when it is longer
    /// (`layout.md` 6.1).
    pub achronyme_version: String,
    /// How to reach the store when saving to a URL (the `remote` feature):
    /// endpoint, credentials, part size, parts in flight.
    #[cfg(feature = "remote")]
    pub remote: crate::archive::remote::RemoteOptions,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            include_constants: true,
            include_functions: false,
            include_builtins: false,
            include_only: None,
            exclude: Vec::new(),
            compression: Compression::default(),
            checksum: crate::hash::Checksum::default(),
            filters: true,
            reuse_stored: true,
            description: None,
            tags: Vec::new(),
            custom: Vec::new(),
            allow_overwrite: false,
            max_file_size: None,
            large_value_warning: Some(LARGE_VALUE_BYTES),
            durable: true,
            strict: false,
            created_by: String::new(),
            achronyme_version: String::new(),
            #[cfg(feature = "remote")]
            remote: crate::archive::remote::RemoteOptions::default(),
        }
    }
}

/// Writes an archive with `write` and uploads it to `url`.
#[cfg(feature = "remote")]
fn save_url(
    url: &str,
    options: &SaveOptions,
    write: impl FnOnce(&mut std::fs::File) -> Result<u64>,
) -> Result<u64> {
    use crate::archive::remote::{self, Resolved};
    match remote::resolve(url, &options.remote)? {
        Resolved::Object(target) => {
            remote::upload(&target, &options.remote, options.allow_overwrite, write)
        }
        Resolved::Local(path) => {
            let publish = PublishOptions {
                overwrite: options.allow_overwrite,
                durable: options.durable,
            };
            Ok(atomic_write(&path, &publish, write)?.value)
        }
    }
}

#[cfg(not(feature = "remote"))]
fn save_url(
    url: &str,
    _: &SaveOptions,
    _: impl FnOnce(&mut std::fs::File) -> Result<u64>,
) -> Result<u64> {
    Err(crate::archive::location::unsupported(url))
}

/// A binding a save did not write, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Skipped {
    /// Binding name.
    pub name: String,
    /// Why it was skipped.
    pub reason: String,
}

/// What a save did.
#[derive(Clone, Debug, Serialize)]
pub struct SaveReport {
    /// The archive written: its path, or for a save to a URL the URL as
    /// given.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Names written (bindings section), sorted.
    pub written: Vec<String>,
    /// Constants written, sorted.
    pub constants_written: Vec<String>,
    /// Bindings not written, with reasons (user functions, the host's own
    /// builtins).
    pub skipped: Vec<Skipped>,
    /// Bindings left out by `include_only` or `exclude`, sorted.
    pub filtered_out: Vec<String>,
    /// `include_only` entries that matched no binding.
    pub not_found: Vec<String>,
    /// Warnings for the user (lambdas skipped, record fields dropped, large
    /// values, `include_only` names not found).
    pub warnings: Vec<String>,
    /// The compression asked for.
    /// Blobs where compression does not pay are stored raw whatever is
    /// asked; [`Archive::info`](crate::Archive::info) tells which.
    pub compression: Compression,
    /// Raw payload bytes written from values in memory: tensor elements and
    /// value encodings, before any compression. A tensor copied from the
    /// archive that stores it adds nothing.
    pub bytes_encoded: u64,
    /// Bytes of blobs run through the chunk checksum (each blob's span:
    /// frame and payload, as stored). A copied blob adds nothing: its
    /// digests come from its archive's hash pool. The table of contents
    /// and trailer digests are not counted.
    pub bytes_hashed: u64,
    /// Bytes of blobs copied from the archive files that stored them
    /// unchanged (each blob's span), by the kernel where it can
    /// (`copy_file_range` on Linux). See [`Buffer::has_provenance`](crate::Buffer::has_provenance)
    /// for which tensors qualify, and README "Saving what did not change"
    /// for which save options accept a stored blob.
    pub bytes_copied: u64,
    /// Time spent writing and hashing.
    pub write_time: Duration,
    /// Time spent syncing file and directory to disk.
    pub sync_time: Duration,
}

/// True when a `mut` reference inside `v` can reach itself. `path` holds the
/// references being explored, `done` those known to reach no cycle, so each
/// reference is explored once: linear in the value's distinct parts, where
/// naive recursion over a cycle that branches is exponential. Stops at
/// `MAX_DEPTH` (deeper values are refused by the writer as too deep).
fn has_reference_cycle(
    v: &Value,
    path: &mut Vec<usize>,
    done: &mut HashSet<usize>,
    depth: usize,
) -> bool {
    if depth >= MAX_DEPTH {
        return false;
    }
    let mut any = |x: &Value| has_reference_cycle(x, path, done, depth + 1);
    match v {
        Value::Vector(items) => items.iter().any(any),
        Value::Record(r) => r.fields().iter().any(|(_, x)| any(x)),
        Value::Edge(e) => e.properties.fields().iter().any(|(_, x)| any(x)),
        Value::MutableRef(r) => {
            let key = Arc::as_ptr(r) as usize;
            if path.contains(&key) {
                return true;
            }
            if done.contains(&key) {
                return false;
            }
            path.push(key);
            let cyclic = has_reference_cycle(&read_ref(r), path, done, depth + 1);
            path.pop();
            done.insert(key);
            cyclic
        }
        _ => false,
    }
}

/// `v` as it can be saved: borrowed when it holds no user lambda; otherwise a
/// copy with lambda fields of records dropped (noted in `notes`), or `None`
/// when the value itself is a lambda or a vector holds one as an element
/// (positions would shift, so the whole value is skipped). Copies share
/// tensor storage. Stops at `MAX_DEPTH` (a reference cycle ends there and
/// the writer refuses it as too deep).
fn saveable<'v>(
    v: &'v Value,
    path: &str,
    notes: &mut Vec<String>,
    depth: usize,
) -> Option<Cow<'v, Value>> {
    if depth >= MAX_DEPTH || v.is_saveable() {
        return Some(Cow::Borrowed(v));
    }
    let owned = match v {
        Value::Function(Function::Lambda { .. }) => return None,
        Value::Vector(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                out.push(saveable(item, &p, notes, depth + 1)?.into_owned());
            }
            Value::Vector(out)
        }
        Value::Record(r) => Value::Record(saveable_record(r, path, notes, depth)?),
        Value::Edge(e) => Value::Edge(Edge {
            properties: saveable_record(&e.properties, path, notes, depth)?,
            ..e.clone()
        }),
        Value::MutableRef(r) => {
            Value::new_ref(saveable(&read_ref(r), path, notes, depth + 1)?.into_owned())
        }
        _ => v.clone(),
    };
    Some(Cow::Owned(owned))
}

fn saveable_record(
    r: &Record,
    path: &str,
    notes: &mut Vec<String>,
    depth: usize,
) -> Option<Record> {
    // The fields are already distinct: collect them without re-checking
    // names (which would be quadratic in the field count).
    let mut out = Vec::with_capacity(r.len());
    for (k, v) in r.fields() {
        let p = format!("{path}.{k}");
        match v {
            Value::Function(Function::Lambda { .. }) => {
                notes.push(format!(
                    "{p}: user function field dropped (archives keep only data and builtins)"
                ));
            }
            _ => out.push((k.clone(), saveable(v, &p, notes, depth + 1)?.into_owned())),
        }
    }
    Some(Record::from_unique(out))
}

/// The raw size of a value: element bytes of tensors, string bytes, and
/// 16 bytes per other scalar (for the large-value warning).
fn value_bytes(v: &Value) -> u64 {
    value_bytes_below(v, 0)
}

fn value_bytes_below(v: &Value, depth: usize) -> u64 {
    if depth >= MAX_DEPTH {
        return 0;
    }
    let value_bytes = |x: &Value| value_bytes_below(x, depth + 1);
    let record_bytes = |r: &Record| {
        r.fields().iter().fold(0u64, |acc, (k, x)| {
            acc.saturating_add(k.len() as u64)
                .saturating_add(value_bytes(x))
        })
    };
    match v {
        Value::String(s) => s.len() as u64,
        Value::Tensor(t) => (t.len() as u64).saturating_mul(8),
        Value::ComplexTensor(t) => (t.len() as u64).saturating_mul(16),
        Value::Vector(items) => items
            .iter()
            .fold(0u64, |acc, x| acc.saturating_add(value_bytes(x))),
        Value::Record(r) => record_bytes(r),
        Value::Edge(e) => record_bytes(&e.properties),
        Value::MutableRef(r) => value_bytes(&read_ref(r)),
        _ => 16,
    }
}

fn version_bytes(v: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut n = v.len().min(16);
    while !v.is_char_boundary(n) {
        n -= 1;
    }
    out[..n].copy_from_slice(&v.as_bytes()[..n]);
    out
}

/// Saves `env` to `path` (spec 3.1 `save_env`): a local path, or with the
/// `remote` feature the URL of an object (see [`Location`]).
///
/// A local save writes a temporary file beside the target and renames it
/// over the path. A save to a URL writes the archive to a local spool file
/// and uploads it (one PUT when it fits in one part, else a multipart
/// upload, [`SaveOptions::remote`](SaveOptions) parts in flight): the object
/// appears only once the upload completes, and a failure aborts the upload
/// and leaves the previous object untouched. Without `allow_overwrite`, a
/// one-part save only creates (atomically where the store has conditional
/// writes); a multipart one checks before writing and before completing,
/// which another writer can race.
///
/// ```
/// use achronyme_env::*;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("work.ach");
/// let mut env = Environment::new();
/// env.set("x", Value::Number(42.0));
/// env.set("f", Value::Function(Function::Lambda { params: vec!["x".into()], source: "x => x * 2".into() }));
/// let report = save_environment(&env, &path, &SaveOptions::default()).unwrap();
/// assert_eq!(report.written, ["x"]);
/// assert_eq!(report.skipped[0].name, "f"); // user lambdas are reported, never dropped silently
/// // A second save to the same path needs allow_overwrite.
/// assert!(matches!(save_environment(&env, &path, &SaveOptions::default()), Err(Error::AlreadyExists { .. })));
/// ```
pub fn save_environment(
    env: &Environment,
    path: impl Into<Location>,
    options: &SaveOptions,
) -> Result<SaveReport> {
    let location = path.into();
    let compression = options.compression.settings(options.filters)?;
    let version = match options.achronyme_version.as_str() {
        "" => env.runtime_version(),
        v => v,
    };
    let created_by = match options.created_by.as_str() {
        "" => format!("{} {}", env.runtime_name(), env.runtime_version()),
        c => c.to_string(),
    };
    let meta = metadata_of(options, created_by, version)?;
    let chosen = choose(env, options)?;
    // Names come sorted by bytes within each section (the environment is
    // a BTreeMap), as the table of contents wants them. A value saved as a
    // copy (lambda fields dropped) is planned from its copy.
    let mut planned = chosen.planned;
    for (i, copy) in &chosen.copies {
        planned[*i].value = copy;
    }
    let header = HeaderFields {
        timestamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        achronyme_version: version_bytes(version),
    };
    let mut write_time = Duration::ZERO;
    let mut outcome = None;
    let write = |file: &mut std::fs::File,
                 path: &Path,
                 write_time: &mut Duration,
                 outcome: &mut Option<Outcome>| {
        let started = Instant::now();
        // Only `file`'s identity is kept: a second handle on it would also
        // hold the temporary file's lock (publish.rs) for as long as it
        // lived.
        let identity = file.metadata().ok();
        // Tests make the disk fill up after a chosen number of bytes.
        #[cfg(test)]
        let mut failing;
        #[cfg(test)]
        let file: &mut dyn tests::WriteSeek = match tests::FAIL_WRITES_AFTER.get() {
            Some(left) => {
                failing = tests::FailAfter { inner: file, left };
                &mut failing
            }
            None => file,
        };
        let written = writer::write_archive(
            file,
            path,
            (&planned, &chosen.plan),
            &meta,
            &header,
            options.max_file_size,
            writer::Storage {
                compression,
                checksum: options.checksum,
                reuse: options.reuse_stored,
            },
        )?;
        *write_time = started.elapsed();
        *outcome = Some(Outcome {
            counts: written.counts,
            blobs: written.blobs,
            nested: written.nested,
            written: identity,
        });
        Ok(written.len)
    };
    let published = match &location {
        Location::Path(path) => {
            let publish = PublishOptions {
                overwrite: options.allow_overwrite,
                durable: options.durable,
            };
            atomic_write(path, &publish, |file| {
                write(file, path, &mut write_time, &mut outcome)
            })?
        }
        Location::Url(url) => {
            let bytes = save_url(url, options, |file| {
                write(file, Path::new(url), &mut write_time, &mut outcome)
            })?;
            Published {
                value: bytes,
                target: PathBuf::from(url),
                warnings: Vec::new(),
                sync_time: Duration::ZERO,
            }
        }
    };

    let outcome = outcome.expect("set by a successful write");
    // The published file, reopened, for the tensors just written to carry
    // as their provenance (a local save's file stays; a URL's spool does not).
    let kept = match (&location, &outcome.written) {
        (Location::Path(_), Some(written)) => SourceFile::reopen(&published.target, written),
        _ => None,
    };
    adopt(&planned, (outcome.blobs, outcome.nested), kept);
    let mut warnings = chosen.warnings;
    warnings.extend(published.warnings);
    Ok(SaveReport {
        path: match location {
            Location::Path(p) => p,
            Location::Url(u) => PathBuf::from(u),
        },
        bytes: published.value,
        written: chosen.written,
        constants_written: chosen.constants_written,
        skipped: chosen.skipped,
        filtered_out: chosen.filtered_out,
        not_found: chosen.not_found,
        warnings,
        compression: options.compression,
        bytes_encoded: outcome.counts.encoded,
        bytes_hashed: outcome.counts.hashed,
        bytes_copied: outcome.counts.copied,
        write_time,
        sync_time: published.sync_time,
    })
}

/// What the writer did, kept for after the file is published.
struct Outcome {
    counts: writer::Counts,
    blobs: Vec<(usize, StoredBlob)>,
    /// The storage section's blobs, by the storage key of their tensor.
    nested: NestedBlobs,
    /// The written file's metadata, to recognise it once published.
    written: Option<std::fs::Metadata>,
}

/// Gives each tensor just saved to `file` its blob there as provenance
/// (unless it already knows one): its next save copies that blob instead of
/// writing the elements again. Sound because the save held the environment
/// shared throughout: nothing wrote to the elements since they were
/// written.
fn adopt(
    planned: &[Planned<'_>],
    (blobs, nested): (Vec<(usize, StoredBlob)>, NestedBlobs),
    file: Option<SourceFile>,
) {
    let Some(file) = file else { return };
    let file = Arc::new(file);
    let origin = |blob| {
        Arc::new(Provenance {
            file: file.clone(),
            blob,
        })
    };
    // Every blob the save wrote for a tensor, by the tensor's storage key:
    // the bindings' own, and (format 1.3) those of nested tensors stored
    // apart. A nested tensor that shares a binding's storage finds that
    // binding's blob.
    let mut stored: HashMap<(usize, usize), Arc<Provenance>> = HashMap::new();
    for (i, blob) in blobs {
        if let Some(key) = storage_key_of(planned[i].value) {
            stored.entry(key).or_insert_with(|| origin(blob));
        }
    }
    for (key, blob) in nested {
        stored.entry(key).or_insert_with(|| origin(blob));
    }
    // Nothing to hand out: every tensor was small (in the table) or copied.
    if stored.is_empty() {
        return;
    }
    for item in planned {
        adopt_nested(item.value, &stored, 0);
    }
}

/// Gives `v`, when it is a tensor that knows no blob yet, `origin`.
fn give_provenance(v: &Value, origin: &Arc<Provenance>) {
    match v {
        Value::Tensor(t) if !t.buffer().has_provenance() => {
            t.buffer().set_provenance(origin.clone())
        }
        Value::ComplexTensor(t) if !t.buffer().has_provenance() => {
            t.buffer().set_provenance(origin.clone())
        }
        _ => {}
    }
}

/// Gives `v` and the tensors nested in it (in vectors, records and edges;
/// not behind a `mut` reference, which a save reads as a copy) the blob
/// the save stored each in, by storage key.
fn adopt_nested(v: &Value, stored: &HashMap<(usize, usize), Arc<Provenance>>, depth: usize) {
    if depth >= MAX_DEPTH {
        return;
    }
    if let Some(origin) = storage_key_of(v).and_then(|k| stored.get(&k)) {
        give_provenance(v, origin);
    }
    let fields = |r: &Record| {
        for (_, x) in r.fields() {
            adopt_nested(x, stored, depth + 1);
        }
    };
    match v {
        Value::Vector(items) => items
            .iter()
            .for_each(|x| adopt_nested(x, stored, depth + 1)),
        Value::Record(r) => fields(r),
        Value::Edge(e) => fields(&e.properties),
        _ => {}
    }
}

/// The metadata block a save writes, within the limits a reader accepts.
/// It holds the runtime `version` whole when the header cannot.
fn metadata_of(options: &SaveOptions, created_by: String, version: &str) -> Result<Metadata> {
    let fits_header = version.len() <= 16 && !version.contains('\0');
    let meta = Metadata {
        created_by,
        platform: Metadata::current_platform(),
        description: options.description.clone(),
        tags: options.tags.clone(),
        custom: options.custom.clone(),
        runtime_version: (!fits_header).then(|| version.to_string()),
    };
    meta.check()
        .map_err(|(option, reason)| Error::InvalidOption {
            option,
            reason: reason.to_string(),
        })?;
    Ok(meta)
}

/// What a save writes and what it leaves out, and why.
struct Chosen<'e> {
    /// Section, name and value of each binding to save, in table order:
    /// 32 bytes each, where a `Cow` of the value took 104 (10 MB touched
    /// for 100,000 bindings).
    planned: Vec<Planned<'e>>,
    /// The values of `planned` that cannot be saved as they are, by index
    /// in `planned`: copies without their lambda fields.
    copies: Vec<(usize, Value)>,
    /// What of `planned` is stored once for several places, planned as
    /// each binding is chosen.
    plan: SharedPlan,
    /// The names of `planned`'s bindings and constants, for the report:
    /// copied while `choose` reads each name anyway, since copying them
    /// after the write meant reading 100,000 names gone cold again.
    written: Vec<String>,
    constants_written: Vec<String>,
    skipped: Vec<Skipped>,
    filtered_out: Vec<String>,
    not_found: Vec<String>,
    warnings: Vec<String>,
}

impl Chosen<'_> {
    /// Leaves `name` out of the save, saying why in a warning and in the
    /// report's skipped list.
    fn skip_with_warning(&mut self, name: &str, value: &Value, reason: String) {
        self.warnings.push(format!(
            "variable {name:?} ({}) not saved: {reason}",
            value.type_name()
        ));
        self.skipped.push(Skipped {
            name: name.to_string(),
            reason,
        });
    }
}

/// Chooses the bindings and constants to save as `options` say, refusing
/// a name or value no archive can hold.
fn choose<'e>(env: &'e Environment, options: &SaveOptions) -> Result<Chosen<'e>> {
    let selection = NameSelection::new(options.include_only.as_deref(), &options.exclude)?;
    let mut chosen = Chosen {
        planned: Vec::with_capacity(env.len()),
        copies: Vec::new(),
        plan: SharedPlan::default(),
        written: Vec::with_capacity(env.len()),
        constants_written: Vec::new(),
        skipped: Vec::new(),
        filtered_out: Vec::new(),
        not_found: match &options.include_only {
            Some(patterns) => crate::env::select::unmatched(patterns, env.iter().map(|(n, _)| n))?,
            None => Vec::new(),
        },
        warnings: Vec::new(),
    };
    for name in &chosen.not_found {
        chosen.warnings.push(format!(
            "include_only names {name:?}, which matches no variable; nothing saved for it"
        ));
    }
    let constants: Box<dyn Iterator<Item = (&str, &Value)>> = if options.include_constants {
        Box::new(env.constants())
    } else {
        Box::new(std::iter::empty())
    };
    let items = env
        .iter()
        .map(|item| (Section::Bindings, item))
        .chain(constants.map(|item| (Section::Constants, item)));
    for (section, (name, value)) in items {
        if section == Section::Bindings && !selection.accepts(name) {
            chosen.filtered_out.push(name.to_string());
            continue;
        }
        if let Some(reason) = check_name(name) {
            return Err(Error::InvalidName {
                name: name.chars().take(64).collect(),
                reason,
            });
        }
        if !options.include_builtins
            && matches!(value, Value::Function(Function::Builtin(b)) if b == name && env.is_host_builtin(b))
        {
            chosen.skipped.push(Skipped {
                name: name.to_string(),
                reason: "builtin of the runtime, which provides it again; pass include_builtins: true to save it".into(),
            });
            continue;
        }
        if has_reference_cycle(value, &mut Vec::new(), &mut HashSet::new(), 0) {
            if options.strict {
                return Err(Error::CyclicReference {
                    name: name.to_string(),
                });
            }
            let reason = "it holds a mut reference that refers back to itself, and archives store values, not reference graphs; break the cycle to save it, or pass strict: true to make this an error".to_string();
            chosen.skip_with_warning(name, value, reason);
            continue;
        }
        match saveable(value, name, &mut chosen.warnings, 0) {
            Some(v) => {
                if let Some(limit) = options.large_value_warning {
                    let bytes = value_bytes(&v);
                    if bytes > limit {
                        chosen.warnings.push(format!(
                            "variable {name:?} is large ({bytes} bytes, over {limit} bytes); the save may be slow and the archive big"
                        ));
                    }
                }
                match section {
                    Section::Bindings => chosen.written.push(name.to_string()),
                    _ => chosen.constants_written.push(name.to_string()),
                }
                chosen.plan.add(&v);
                if let Cow::Owned(copy) = v {
                    chosen.copies.push((chosen.planned.len(), copy));
                }
                chosen.planned.push(Planned {
                    section,
                    name,
                    value,
                });
            }
            None => {
                let reason = if options.include_functions {
                    "user-defined function (lambda or closure): include_functions is set, but format v1 cannot store user functions (spec 4.1); re-define it after restoring".to_string()
                } else {
                    "user-defined function (lambda or closure): archives keep only builtins; re-define it after restoring".to_string()
                };
                chosen.skip_with_warning(name, value, reason);
            }
        }
    }
    chosen.plan.finish();
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::fs::File;
    use std::io::{self, Seek, SeekFrom, Write};

    use super::*;
    use crate::env::restore::{RestoreOptions, restore_environment};
    use crate::testdata;

    thread_local! {
        /// When set, the next saves on this thread write through a writer
        /// that fails with "no space left on device" after this many bytes.
        pub(super) static FAIL_WRITES_AFTER: Cell<Option<u64>> = const { Cell::new(None) };
    }

    /// What the writer writes to: a file, or one that fills up.
    pub(super) trait WriteSeek: crate::archive::copy::ArchiveFile {}
    impl<T: crate::archive::copy::ArchiveFile> WriteSeek for T {}

    /// A file that fills up: accepts `left` bytes, then fails like a full disk.
    pub(super) struct FailAfter<'f> {
        pub(super) inner: &'f mut File,
        pub(super) left: u64,
    }

    impl Write for FailAfter<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            let n = buf.len().min(self.left as usize);
            let n = self.inner.write(&buf[..n])?;
            self.left -= n as u64;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }

    impl Seek for FailAfter<'_> {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    // Copies go through `write`, so they fill up the disk too.
    impl crate::archive::copy::ArchiveFile for FailAfter<'_> {}

    fn temporaries(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(crate::archive::publish::TEMP_SUFFIX))
            .collect()
    }

    /// Saves `env` over `path` once per point of `points`, the disk filling
    /// up after that many bytes: each fails with ENOSPC and leaves the old
    /// bytes, and no temporary file.
    fn fail_after_each(
        env: &Environment,
        path: &Path,
        options: &SaveOptions,
        points: &[u64],
        old_bytes: &[u8],
    ) {
        for &ok_bytes in points {
            FAIL_WRITES_AFTER.set(Some(ok_bytes));
            let result = save_environment(env, path, options);
            FAIL_WRITES_AFTER.set(None);
            match result {
                Err(Error::Io { source, .. }) => {
                    assert_eq!(source.raw_os_error(), Some(28), "after {ok_bytes} bytes")
                }
                other => panic!("failing after {ok_bytes} bytes gave {other:?}"),
            }
            assert_eq!(std::fs::read(path).unwrap(), old_bytes, "after {ok_bytes}");
            assert_eq!(temporaries(path.parent().unwrap()), Vec::<String>::new());
        }
    }

    #[test]
    fn a_write_error_mid_save_returns_the_error_and_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.ach");
        let old = testdata::every_type();
        save_environment(&old, &path, &SaveOptions::default()).unwrap();
        let old_bytes = std::fs::read(&path).unwrap();

        let new = testdata::many_small(200);
        let overwrite = SaveOptions {
            allow_overwrite: true,
            ..SaveOptions::default()
        };
        // The new archive's size, written elsewhere, bounds where to fail.
        let full = save_environment(&new, dir.path().join("probe.ach"), &overwrite)
            .unwrap()
            .bytes;
        // Fail before the first byte, inside the header, inside blobs, in the
        // table of contents and in the last bytes of the trailer.
        let points = [0, 1, 100, 4096, full / 2, full - 100, full - 1];
        fail_after_each(&new, &path, &overwrite, &points, &old_bytes);
        let mut restored = Environment::new();
        restore_environment(&mut restored, &path, &RestoreOptions::default()).unwrap();
        assert_eq!(restored, old);
    }

    #[test]
    fn a_write_error_while_copying_from_the_archive_being_replaced_leaves_it_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.ach");
        let fast = SaveOptions {
            durable: false,
            compression: Compression::None,
            ..SaveOptions::default()
        };
        save_environment(
            &testdata::tensor_workspace(testdata::normal_tensor(512, 1024, 2)),
            &path,
            &fast,
        )
        .unwrap();
        let old_bytes = std::fs::read(&path).unwrap();
        let mut env = Environment::new();
        restore_environment(&mut env, &path, &RestoreOptions::default()).unwrap();
        env.set("step", Value::Number(-1.0));
        let overwrite = SaveOptions {
            allow_overwrite: true,
            ..fast
        };
        let full = old_bytes.len() as u64;
        // Inside the header, the copied tensor (4 MiB, first in table
        // order) and the rest.
        fail_after_each(
            &env,
            &path,
            &overwrite,
            &[10, 64 + 1000, full / 2, full - 100],
            &old_bytes,
        );
        let report = save_environment(&env, &path, &overwrite).unwrap();
        assert_eq!(report.bytes_copied, 64 + (4 << 20));
        let mut back = Environment::new();
        restore_environment(&mut back, &path, &RestoreOptions::default()).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn the_next_save_removes_stale_temporaries_of_its_target_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.ach");
        let stale = [".work.ach.AbC123.ach-tmp", ".work.ach.zzzzzz.ach-tmp"];
        let kept = [
            ".other.ach.AbC123.ach-tmp", // another target's
            ".work.ach.AbC123.ach-tmp.keep",
            ".work.ach.toolong7.ach-tmp",
            "work.ach.AbC123.ach-tmp",
        ];
        for name in stale.iter().chain(&kept) {
            std::fs::write(dir.path().join(name), b"half an archive").unwrap();
        }
        // A directory with a matching name is not a file we left: kept.
        std::fs::create_dir(dir.path().join(".work.ach.dir123.ach-tmp")).unwrap();
        let env = testdata::every_type();
        let report = save_environment(&env, &path, &SaveOptions::default()).unwrap();
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("removed 2 temporary")),
            "{:?}",
            report.warnings
        );
        for name in stale {
            assert!(!dir.path().join(name).exists(), "{name} was not removed");
        }
        for name in kept {
            assert!(dir.path().join(name).exists(), "{name} was removed");
        }
        assert!(dir.path().join(".work.ach.dir123.ach-tmp").is_dir());
        // Nothing stale the second time: no warning.
        let again = SaveOptions {
            allow_overwrite: true,
            ..SaveOptions::default()
        };
        let report = save_environment(&env, &path, &again).unwrap();
        assert!(!report.warnings.iter().any(|w| w.contains("temporary")));
    }
}
