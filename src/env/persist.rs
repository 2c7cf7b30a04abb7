//! The operations of spec 3: save, restore, info, load one variable.
//!
//! A save writes a temporary file beside the target, syncs it, renames it
//! over the target and syncs the directory: the path always holds the old
//! archive or the new one. A restore loads everything it will change before
//! changing anything: on error the environment is as it was.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::archive::info::EnvInfo;
use crate::archive::reader::{Archive, LoadOptions};
use crate::archive::writer::{self, HeaderFields, Planned};
use crate::env::environment::Environment;
use crate::env::environment::check_name;
use crate::env::select::NameFilter;
use crate::error::{Error, Result};
use crate::format::codec::Settings;
use crate::format::layout::{Codec, Section};
use crate::format::metadata::Metadata;
use crate::value::{Edge, Function, MAX_DEPTH, Record, Value, read_ref};

/// Version of the Achronyme runtime this build stands for; saves record it
/// and restores compare against it.
pub const RUNTIME_VERSION: &str = "v0.1.0";

/// Values larger than this (raw bytes) get a warning when
/// [`SaveOptions::warn_large_values`] is on: the spec's 100 MB, as MiB.
pub const LARGE_VALUE_BYTES: u64 = 100 * 1024 * 1024;

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
    /// Compress blobs where it pays (default true, as in the spec).
    pub compress: bool,
    /// Zstandard level, 1 to 22 (default 3; 9 packs tighter and saves
    /// slower); out of range is [`Error::InvalidOption`] even when
    /// `compress` is false. LZ4 has no levels and ignores it.
    ///
    /// Higher levels take more memory per core: a save compresses one 4 MiB
    /// chunk per core, and its workers together stay within 256 MiB (about
    /// 1.2 MiB of zstd context each at level 3, up to 65 MiB at levels 12
    /// to 22, plus 16 MiB of chunks), so from level 12 on at most three
    /// chunks are compressed at once. README "Compression" has the figures.
    pub compression_level: i32,
    /// Codec used when `compress` is on (default [`Codec::Zstd`]; LZ4
    /// trades ratio for speed; [`Codec::None`] is `compress: false`).
    pub codec: Codec,
    /// Try the float filters (byte shuffle, delta coding) on tensors before
    /// the codec (default true). Off, tensors are compressed as plain bytes.
    pub filters: bool,
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
    /// Warn about each binding larger than `large_value_bytes` (default
    /// true).
    pub warn_large_values: bool,
    /// The size above which `warn_large_values` warns (default
    /// [`LARGE_VALUE_BYTES`]).
    pub large_value_bytes: u64,
    /// Sync the file and its directory before returning (default true).
    /// Turning it off is only for benchmarks and scratch files: a crash soon
    /// after the save could then lose the new archive (never the old one
    /// half-overwritten, since the rename is still atomic).
    pub durable: bool,
    /// `created_by` metadata.
    pub created_by: String,
    /// Runtime version recorded in the header.
    pub achronyme_version: String,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            include_constants: true,
            include_functions: false,
            include_builtins: false,
            include_only: None,
            exclude: Vec::new(),
            compress: true,
            compression_level: 3,
            codec: Codec::Zstd,
            filters: true,
            description: None,
            tags: Vec::new(),
            custom: Vec::new(),
            allow_overwrite: false,
            max_file_size: None,
            warn_large_values: true,
            large_value_bytes: LARGE_VALUE_BYTES,
            durable: true,
            created_by: format!("Achronyme REPL {RUNTIME_VERSION}"),
            achronyme_version: RUNTIME_VERSION.to_string(),
        }
    }
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
    /// The archive written.
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
    /// The compression level asked for (`Some` when `compress` was on with
    /// a codec other than [`Codec::None`]).
    /// Blobs where compression does not pay are stored raw whatever is
    /// asked; [`Archive::info`](crate::Archive::info) tells which.
    pub compression_requested: Option<i32>,
    /// Time spent writing and hashing.
    pub write_time: Duration,
    /// Time spent syncing file and directory to disk.
    pub sync_time: Duration,
}

/// How a restore combines the archive with the environment (spec 3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreMode {
    /// Add the archive's bindings; existing names are kept unless
    /// `overwrite`.
    Merge,
    /// The environment's bindings become exactly the archive's (constants
    /// of the same name are replaced, others stay: they belong to the
    /// runtime).
    Replace,
    /// All bindings go into one record bound to this name.
    Namespace(String),
}

/// Options of `restore_env` (spec 3.1, 7.2).
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// How to combine.
    pub mode: RestoreMode,
    /// In merge mode, replace existing bindings; in namespace mode, allow
    /// replacing an existing binding of the namespace's name. Constants: in
    /// merge and namespace modes an existing constant is kept (and listed in
    /// [`RestoreReport::constant_conflicts`]) unless `overwrite`; replace
    /// mode replaces constants of the same name and keeps the others.
    pub overwrite: bool,
    /// Only names matching one of these glob patterns (None = all).
    pub include_only: Option<Vec<String>>,
    /// Skip names matching any of these glob patterns.
    pub exclude: Vec<String>,
    /// Check each loaded blob's SHA-256 (default true).
    pub verify_checksum: bool,
    /// Refuse an archive written by another runtime version (default false:
    /// a warning).
    pub strict_version: bool,
    /// Restore the constants section too (default true).
    pub include_constants: bool,
    /// Refuse a binding that refers to a builtin the host does not provide
    /// (default false: skip it with a warning). Only applies when the host
    /// declared its builtins ([`Environment::set_host_builtins`]).
    pub strict_builtins: bool,
    /// The running runtime's version, compared with the archive's.
    pub runtime_version: String,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            mode: RestoreMode::Merge,
            overwrite: false,
            include_only: None,
            exclude: Vec::new(),
            verify_checksum: true,
            strict_version: false,
            include_constants: true,
            strict_builtins: false,
            runtime_version: RUNTIME_VERSION.to_string(),
        }
    }
}

/// What a restore did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreReport {
    /// Names bound (or, in namespace mode, fields of the namespace record).
    pub restored: Vec<String>,
    /// Constants defined.
    pub constants_restored: Vec<String>,
    /// Names that already existed and were kept (merge without overwrite).
    pub conflicts: Vec<String>,
    /// Constants that already existed and were kept (merge or namespace
    /// mode without overwrite).
    pub constant_conflicts: Vec<String>,
    /// Bindings not restored, with reasons (unknown builtins).
    pub skipped: Vec<Skipped>,
    /// `include_only` entries that matched nothing in the archive.
    pub not_found: Vec<String>,
    /// Warnings (version differences, skipped bindings).
    pub warnings: Vec<String>,
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

/// Saves `env` to `path` (spec 3.1 `save_env`).
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
    path: impl AsRef<Path>,
    options: &SaveOptions,
) -> Result<SaveReport> {
    let path = path.as_ref();
    let save_started = SystemTime::now();
    if path.file_name().is_none() {
        // "" or "dir/..": nothing to rename onto; refuse before creating a
        // temporary file anywhere.
        return Err(Error::io(
            "saving to",
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path does not name a file; give a path such as \"work.ach\"",
            ),
        ));
    }
    if !(1..=22).contains(&options.compression_level) {
        return Err(Error::InvalidOption {
            option: "compression_level",
            reason: format!(
                "must be between 1 and 22 (3 balances speed and size), got {}",
                options.compression_level
            ),
        });
    }
    let filter = NameFilter::new(options.include_only.as_deref(), &options.exclude)?;
    let meta = Metadata {
        created_by: options.created_by.clone(),
        platform: Metadata::current_platform(),
        description: options.description.clone(),
        tags: options.tags.clone(),
        custom: options.custom.clone(),
    };
    meta.check().map_err(|reason| Error::InvalidName {
        name: "(metadata)".into(),
        reason,
    })?;

    let mut skipped = Vec::new();
    let mut filtered_out = Vec::new();
    let mut warnings = Vec::new();
    let not_found = match &options.include_only {
        Some(patterns) => crate::env::select::unmatched(patterns, env.iter().map(|(n, _)| n))?,
        None => Vec::new(),
    };
    for name in &not_found {
        warnings.push(format!(
            "include_only names {name:?}, which matches no variable; nothing saved for it"
        ));
    }
    let mut owned: Vec<(Section, String, Cow<'_, Value>)> = Vec::new();
    let sections = [Section::Bindings, Section::Constants];
    for section in sections {
        let items: Box<dyn Iterator<Item = (&str, &Value)>> = match section {
            Section::Bindings => Box::new(env.iter()),
            _ if options.include_constants => Box::new(env.constants()),
            _ => Box::new(std::iter::empty()),
        };
        for (name, value) in items {
            if section == Section::Bindings && !filter.accepts(name) {
                filtered_out.push(name.to_string());
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
                skipped.push(Skipped {
                    name: name.to_string(),
                    reason: "builtin of the runtime, which provides it again; pass include_builtins: true to save it".into(),
                });
                continue;
            }
            if has_reference_cycle(value, &mut Vec::new(), &mut HashSet::new(), 0) {
                return Err(Error::CyclicReference {
                    name: name.to_string(),
                });
            }
            match saveable(value, name, &mut warnings, 0) {
                Some(v) => {
                    if options.warn_large_values {
                        let bytes = value_bytes(&v);
                        if bytes > options.large_value_bytes {
                            warnings.push(format!(
                                "variable {name:?} is large ({bytes} bytes, over {} bytes); the save may be slow and the archive big",
                                options.large_value_bytes
                            ));
                        }
                    }
                    owned.push((section, name.to_string(), v));
                }
                None => {
                    let reason = if options.include_functions {
                        "user-defined function (lambda or closure): include_functions is set, but format v1 cannot store user functions (spec 4.1); re-define it after restoring".to_string()
                    } else {
                        "user-defined function (lambda or closure): archives keep only builtins; re-define it after restoring".to_string()
                    };
                    warnings.push(format!(
                        "variable {name:?} ({}) not saved: {reason}",
                        value.type_name()
                    ));
                    skipped.push(Skipped {
                        name: name.to_string(),
                        reason,
                    });
                }
            }
        }
    }
    // BTreeMap iteration gives names sorted by bytes within each section.
    let planned: Vec<Planned<'_>> = owned
        .iter()
        .map(|(section, name, value)| Planned {
            section: *section,
            name,
            value,
        })
        .collect();

    if !options.allow_overwrite && path.exists() {
        return Err(Error::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    let prefix = format!(".{file_name}.");
    let stale = remove_stale_temporaries(dir, &prefix, save_started);
    if stale > 0 {
        warnings.push(format!(
            "removed {stale} temporary file(s) left beside {file_name:?} by an interrupted save"
        ));
    }
    let mut tmp = temp_builder(&prefix)
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temporary file in", dir, e))?;

    let header = HeaderFields {
        timestamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        achronyme_version: version_bytes(&options.achronyme_version),
    };
    let compression = (options.compress && options.codec != Codec::None).then_some(Settings {
        codec: options.codec,
        level: options.compression_level,
        filters: options.filters,
    });
    let started = Instant::now();
    // On any error `tmp` is dropped here, which deletes the temporary file.
    #[cfg(test)]
    if let Some(ok_bytes) = tests::FAIL_WRITES_AFTER.get() {
        let mut failing = tests::FailAfter {
            inner: tmp.as_file_mut(),
            left: ok_bytes,
        };
        writer::write_archive(
            &mut failing,
            path,
            &planned,
            &meta,
            &header,
            options.max_file_size,
            compression,
        )?;
        unreachable!("the injected failure happens before the end");
    }
    let bytes = writer::write_archive(
        tmp.as_file_mut(),
        path,
        &planned,
        &meta,
        &header,
        options.max_file_size,
        compression,
    )?;
    let write_time = started.elapsed();

    let started = Instant::now();
    // Replacing a file keeps its permissions; set through the open handle,
    // before the sync, so the mode is as durable as the bytes.
    if let Ok(old) = std::fs::metadata(path) {
        let _ = tmp.as_file().set_permissions(old.permissions());
    }
    if options.durable {
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io("syncing", tmp.path(), e))?;
    }
    let persisted = if options.allow_overwrite {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    persisted.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            Error::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            Error::io("renaming the new archive onto", path, e.error)
        }
    })?;
    // The new archive is in place now: a failure to sync the directory must
    // not be reported as a failed save (the caller would believe the old
    // file intact). It is a warning that the rename may not survive a crash.
    if options.durable
        && let Err(e) = sync_dir(dir)
    {
        warnings.push(format!(
            "the archive was saved, but syncing its directory failed ({e}); \
             after a crash the previous version might reappear"
        ));
    }
    let sync_time = started.elapsed();

    let names = |s: Section| -> Vec<String> {
        owned
            .iter()
            .filter(|(sec, _, _)| *sec == s)
            .map(|(_, n, _)| n.clone())
            .collect()
    };
    Ok(SaveReport {
        path: path.to_path_buf(),
        bytes,
        written: names(Section::Bindings),
        constants_written: names(Section::Constants),
        skipped,
        filtered_out,
        not_found,
        warnings,
        compression_requested: compression.map(|c| c.level),
        write_time,
        sync_time,
    })
}

/// The temporary file beside the target. On Unix it is created with mode
/// 0666, which the process's umask narrows exactly as for any new file
/// (tempfile's default, 0600, would make every archive private).
fn temp_builder(prefix: &str) -> tempfile::Builder<'_, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix)
        .rand_bytes(TEMP_RAND_LEN)
        .suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b
}

/// Temporary files are `.NAME.XXXXXX.ach-tmp` beside the target `NAME`,
/// `XXXXXX` being six random ASCII letters and digits (layout.md §11).
const TEMP_SUFFIX: &str = ".ach-tmp";
const TEMP_RAND_LEN: usize = 6;

/// Whether `file_name` is one of our temporary files for the target whose
/// temporaries start with `prefix` (`.NAME.`).
fn is_temporary_of(file_name: &str, prefix: &str) -> bool {
    file_name
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
        .is_some_and(|mid| {
            mid.len() == TEMP_RAND_LEN && mid.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Removes the temporary files of this target left by saves that were
/// killed (a crash, SIGKILL, power loss): those last modified before this
/// save started. A save still running elsewhere keeps writing to its file,
/// so its modification time is recent and it is left alone. Best effort:
/// a file that cannot be listed or removed is skipped. Returns how many
/// were removed.
fn remove_stale_temporaries(dir: &Path, prefix: &str, save_started: SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_temporary_of(name, prefix) {
            continue;
        }
        // symlink_metadata: never follow a link someone planted there.
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let stale = meta.is_file() && meta.modified().is_ok_and(|m| m < save_started);
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("syncing directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn valid_namespace(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// Restores `path` into `env` (spec 3.1 `restore_env`). All or nothing: if
/// any selected binding fails to load, `env` is unchanged.
///
/// ```
/// use achronyme_env::*;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("work.ach");
/// let mut env = Environment::new();
/// env.set("data", Value::Number(1.0));
/// save_environment(&env, &path, &SaveOptions::default()).unwrap();
///
/// let mut other = Environment::new();
/// let opts = RestoreOptions { mode: RestoreMode::Namespace("old".into()), ..Default::default() };
/// restore_environment(&mut other, &path, &opts).unwrap();
/// let Some(Value::Record(old)) = other.get("old") else { panic!() };
/// assert_eq!(old.get("data"), Some(&Value::Number(1.0)));
/// ```
pub fn restore_environment(
    env: &mut Environment,
    path: impl AsRef<Path>,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    let archive = Archive::open(path)?;
    restore_from_archive(env, &archive, options)
}

/// [`restore_environment`] from an already open archive.
pub fn restore_from_archive(
    env: &mut Environment,
    archive: &Archive,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    let mut report = RestoreReport::default();
    let file_version = archive.achronyme_version();
    if file_version != options.runtime_version {
        if options.strict_version {
            return Err(Error::VersionMismatch {
                file: file_version,
                current: options.runtime_version.clone(),
            });
        }
        report.warnings.push(format!(
            "archive was written by Achronyme {file_version}, this is {}; some values may behave differently",
            options.runtime_version
        ));
    }
    check_mode(env, options)?;
    let filter = NameFilter::new(options.include_only.as_deref(), &options.exclude)?;
    report_not_found(&mut report, options, archive.names(Section::Bindings))?;
    let load = LoadOptions {
        verify_checksum: options.verify_checksum,
    };
    // Phase 1: load everything; nothing in `env` changes yet.
    let mut values = Vec::new();
    for name in archive
        .names(Section::Bindings)
        .filter(|n| filter.accepts(n))
    {
        values.push((
            name.to_string(),
            archive.get_with(Section::Bindings, name, load)?,
        ));
    }
    let mut constants = Vec::new();
    if options.include_constants {
        for name in archive.names(Section::Constants) {
            constants.push((
                name.to_string(),
                archive.get_with(Section::Constants, name, load)?,
            ));
        }
    }
    // Phase 2: apply; nothing here fails.
    apply(env, values, constants, options, report)
}

/// Lists (and warns about) `include_only` entries that match none of
/// `names`.
pub(crate) fn report_not_found<'a>(
    report: &mut RestoreReport,
    options: &RestoreOptions,
    names: impl Iterator<Item = &'a str>,
) -> Result<()> {
    if let Some(patterns) = &options.include_only {
        report.not_found = crate::env::select::unmatched(patterns, names)?;
        for name in &report.not_found {
            report.warnings.push(format!(
                "include_only names {name:?}, which matches nothing to restore"
            ));
        }
    }
    Ok(())
}

/// Refuses a namespace that is not an identifier, or that is bound already
/// without `overwrite`.
pub(crate) fn check_mode(env: &Environment, options: &RestoreOptions) -> Result<()> {
    if let RestoreMode::Namespace(ns) = &options.mode {
        if !valid_namespace(ns) {
            return Err(Error::InvalidNamespace { name: ns.clone() });
        }
        if env.contains(ns) && !options.overwrite {
            return Err(Error::NamespaceTaken { name: ns.clone() });
        }
    }
    Ok(())
}

/// The first builtin `v` refers to that `known` lacks, if any.
fn unknown_builtin(v: &Value, known: &BTreeSet<String>) -> Option<String> {
    let in_record = |r: &Record| {
        r.fields()
            .iter()
            .find_map(|(_, x)| unknown_builtin(x, known))
    };
    match v {
        Value::Function(Function::Builtin(b)) => (!known.contains(b)).then(|| b.clone()),
        Value::Vector(items) => items.iter().find_map(|x| unknown_builtin(x, known)),
        Value::Record(r) => in_record(r),
        Value::Edge(e) => in_record(&e.properties),
        Value::MutableRef(r) => unknown_builtin(&read_ref(r), known),
        _ => None,
    }
}

/// Combines loaded `values` and `constants` with `env` as `options` say:
/// first checks builtin references (the only step that can fail), then
/// changes `env`. Shared by archive and snapshot restores.
pub(crate) fn apply(
    env: &mut Environment,
    values: Vec<(String, Value)>,
    constants: Vec<(String, Value)>,
    options: &RestoreOptions,
    mut report: RestoreReport,
) -> Result<RestoreReport> {
    let keep = |items: Vec<(String, Value)>, report: &mut RestoreReport| {
        let Some(known) = env.host_builtins() else {
            return Ok(items);
        };
        let mut out = Vec::with_capacity(items.len());
        for (name, v) in items {
            let Some(builtin) = unknown_builtin(&v, known) else {
                out.push((name, v));
                continue;
            };
            if options.strict_builtins {
                return Err(Error::UnknownBuiltin { name, builtin });
            }
            let reason =
                format!("refers to builtin {builtin:?}, which this runtime does not provide");
            report
                .warnings
                .push(format!("variable {name:?} not restored: {reason}"));
            report.skipped.push(Skipped { name, reason });
        }
        Ok(out)
    };
    let values = keep(values, &mut report)?;
    let constants = keep(constants, &mut report)?;

    for (name, v) in constants {
        let exists = env.constant(&name).is_some();
        if exists && options.mode != RestoreMode::Replace && !options.overwrite {
            report.constant_conflicts.push(name);
        } else {
            report.constants_restored.push(name.clone());
            env.set_constant(name, v);
        }
    }
    match &options.mode {
        RestoreMode::Merge => {
            for (name, v) in values {
                if env.contains(&name) && !options.overwrite {
                    report.conflicts.push(name);
                } else {
                    report.restored.push(name.clone());
                    env.set(name, v);
                }
            }
        }
        RestoreMode::Replace => {
            env.clear();
            for (name, v) in values {
                report.restored.push(name.clone());
                env.set(name, v);
            }
        }
        RestoreMode::Namespace(ns) => {
            report.restored = values.iter().map(|(n, _)| n.clone()).collect();
            env.set(ns.clone(), Value::Record(values.into_iter().collect()));
        }
    }
    Ok(report)
}

/// Describes the archive at `path` from its header and table of contents
/// (spec 3.1 `env_info`); its cost does not grow with the data.
pub fn env_info(path: impl AsRef<Path>) -> Result<EnvInfo> {
    Ok(Archive::open(path)?.info())
}

/// Loads one binding from the archive at `path` without reading the others
/// (spec 8.3 `env_load_var`).
pub fn env_load_var(path: impl AsRef<Path>, name: &str) -> Result<Value> {
    Archive::open(path)?.get(name)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::fs::File;
    use std::io::{self, Seek, SeekFrom, Write};

    use super::*;
    use crate::testdata;

    thread_local! {
        /// When set, the next saves on this thread write through a writer
        /// that fails with "no space left on device" after this many bytes.
        pub(super) static FAIL_WRITES_AFTER: Cell<Option<u64>> = const { Cell::new(None) };
    }

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

    fn temporaries(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(TEMP_SUFFIX))
            .collect()
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
        for ok_bytes in [0, 1, 100, 4096, full / 2, full - 100, full - 1] {
            FAIL_WRITES_AFTER.set(Some(ok_bytes));
            let result = save_environment(&new, &path, &overwrite);
            FAIL_WRITES_AFTER.set(None);
            match result {
                Err(Error::Io { source, .. }) => {
                    assert_eq!(source.raw_os_error(), Some(28), "after {ok_bytes} bytes")
                }
                other => panic!("failing after {ok_bytes} bytes gave {other:?}"),
            }
            assert_eq!(std::fs::read(&path).unwrap(), old_bytes, "after {ok_bytes}");
            assert_eq!(temporaries(dir.path()), Vec::<String>::new());
        }
        let mut restored = Environment::new();
        restore_environment(&mut restored, &path, &RestoreOptions::default()).unwrap();
        assert_eq!(restored, old);
    }

    #[test]
    fn temporaries_are_recognised_by_their_exact_pattern() {
        let p = ".work.ach.";
        assert!(is_temporary_of(".work.ach.a1B2c3.ach-tmp", p));
        assert!(!is_temporary_of(".work.ach.a1B2c.ach-tmp", p), "5 random");
        assert!(!is_temporary_of(".work.ach.a1B2c3d.ach-tmp", p), "7 random");
        assert!(!is_temporary_of(".work.ach.a1-2c3.ach-tmp", p), "not alnum");
        assert!(
            !is_temporary_of(".other.ach.a1B2c3.ach-tmp", p),
            "other target"
        );
        assert!(!is_temporary_of(".work.ach.a1B2c3.ach", p), "other suffix");
        assert!(!is_temporary_of("work.ach", p));
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

    #[test]
    fn a_temporary_written_after_the_save_started_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let busy = dir.path().join(".work.ach.Busy01.ach-tmp");
        std::fs::write(&busy, b"another save, still writing").unwrap();
        let modified = std::fs::metadata(&busy).unwrap().modified().unwrap();
        // As if this save had started just before that file was last written.
        let started = modified - Duration::from_secs(1);
        assert_eq!(
            remove_stale_temporaries(dir.path(), ".work.ach.", started),
            0
        );
        assert!(busy.exists());
        let later = modified + Duration::from_secs(1);
        assert_eq!(remove_stale_temporaries(dir.path(), ".work.ach.", later), 1);
        assert!(!busy.exists());
    }
}
