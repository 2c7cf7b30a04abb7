//! Restoring (spec 3.1 `restore_env`): the modes, and [`apply`], shared
//! with snapshot restores. Everything is loaded before anything changes, so
//! a failed restore leaves the environment as it was.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::archive::location::Location;
use crate::archive::reader::{Archive, BlobCache, EntryLoader, LoadOptions};
use crate::env::environment::Environment;
use crate::env::load::charge_copy;
use crate::env::save::Skipped;
use crate::env::select::NameSelection;
use crate::error::{Error, Result};
use crate::format::layout::Section;
use crate::value::{Function, Record, Value, read_ref};

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
    /// Check each loaded blob's chunk digests (default true).
    pub verify_checksum: bool,
    /// Most bytes of memory the restored values may hold, all together
    /// (default [`LoadOptions::DEFAULT_MAX_DECODED_BYTES`], 4 GiB), counted
    /// as [`LoadOptions::max_decoded_bytes`] counts one load. Past it the
    /// restore fails with [`Error::TooLarge`] and `env` is unchanged.
    pub max_decoded_bytes: u64,
    /// Refuse an archive written by another runtime version (default false:
    /// a warning). Versions are compared whole, however long.
    pub strict_version: bool,
    /// Restore the constants section too (default true).
    pub include_constants: bool,
    /// Refuse a binding that refers to a builtin the host does not provide
    /// (default false: skip it with a warning). Only applies when the host
    /// declared its builtins ([`Environment::set_host_builtins`]).
    pub strict_builtins: bool,
    /// The running runtime's version, compared with the archive's; empty
    /// (default) means the environment's ([`Environment::runtime_version`]).
    pub runtime_version: String,
    /// Restore raw tensors as owned copies (default true) rather than as
    /// views of the mapped file. A view costs no time or memory up front,
    /// but it *is* the file: if another program rewrites the file in place
    /// (`cp`, an editor, a sync tool; never this crate's saves, which rename
    /// a new file over the path), the restored values change, and if it
    /// truncates the file, touching them kills the process (SIGBUS). A copy
    /// is made of each tensor as it is loaded and holds its bytes in memory:
    /// it counts against `max_decoded_bytes` ([`Error::CopyTooLarge`] past
    /// it, checked before copying) and, once the restore has returned, is
    /// immune to later changes of the file (a file cut short *during* the
    /// restore can still fault it). Applies when the restore opens the file
    /// ([`restore_environment`]); [`restore_from_archive`] restores what
    /// the archive it is given serves.
    pub copy: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            mode: RestoreMode::Merge,
            overwrite: false,
            include_only: None,
            exclude: Vec::new(),
            verify_checksum: true,
            max_decoded_bytes: LoadOptions::DEFAULT_MAX_DECODED_BYTES,
            strict_version: false,
            include_constants: true,
            strict_builtins: false,
            runtime_version: String::new(),
            copy: true,
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

fn valid_namespace(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// Restores `path` into `env` (spec 3.1 `restore_env`). All or nothing: if
/// any selected binding fails to load, `env` is unchanged.
///
/// `path` is a local path or, with the `remote` feature, a URL (see
/// [`Location`]); a remote archive's tensors load into buffers of their own
/// (a remote object cannot be mapped), and [`RestoreOptions::copy`] changes
/// nothing for them. To restore with explicit `RemoteOptions`,
/// open the archive with `Archive::open_url_with` and call
/// [`restore_from_archive`].
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
    path: impl Into<Location>,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    let archive = Archive::open_location(path)?;
    restore_loaded(env, &archive, options, options.copy)
}

/// [`restore_environment`] from an already open archive. Tensors are views
/// or copies as the archive serves them: [`Archive::open`] maps,
/// [`Archive::open_copied`] and an archive over
/// [`FileSource::open_unmapped`](crate::FileSource::open_unmapped) copy;
/// [`RestoreOptions::copy`] does not apply.
pub fn restore_from_archive(
    env: &mut Environment,
    archive: &Archive,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    restore_loaded(env, archive, options, false)
}

/// Restores from `archive`; with `copied`, every tensor that borrows the
/// file is copied into memory of its own as it is loaded (charged to the
/// budget first), so nothing restored depends on the file afterwards.
fn restore_loaded(
    env: &mut Environment,
    archive: &Archive,
    options: &RestoreOptions,
    copied: bool,
) -> Result<RestoreReport> {
    let mut report = RestoreReport::default();
    let file_version = archive.achronyme_version();
    let current = match options.runtime_version.as_str() {
        "" => env.runtime_version(),
        v => v,
    };
    if file_version != current {
        if options.strict_version {
            return Err(Error::VersionMismatch {
                file: file_version,
                current: current.to_string(),
            });
        }
        report.warnings.push(format!(
            "archive was written by Achronyme {file_version}, this is {current}; some values may behave differently"
        ));
    }
    check_mode(env, options)?;
    let selection = NameSelection::new(options.include_only.as_deref(), &options.exclude)?;
    report_not_found(&mut report, options, archive.names(Section::Bindings))?;
    // Phase 1: load everything; nothing in `env` changes yet. All values
    // are held at once, so they share one memory budget.
    let mut left = options.max_decoded_bytes;
    // One tensor per blob, however many bindings share it and values
    // refer to it (format 1.3): shared storage comes back shared, copied
    // once when `copied`.
    let mut blobs = BlobCache::new(copied);
    let mut load = |name: &str, entry: EntryLoader<'_>| {
        let opts = LoadOptions {
            verify_checksum: options.verify_checksum,
            max_decoded_bytes: left,
        };
        let spent = options.max_decoded_bytes - left;
        let (v, cost) = entry.load_in(opts, &mut blobs).map_err(|e| match e {
            // Reported against the whole restore's budget.
            Error::TooLarge { name, bytes, .. } => Error::TooLarge {
                name,
                bytes: bytes.saturating_add(spent),
                limit: options.max_decoded_bytes,
            },
            Error::CopyTooLarge { name, bytes, .. } => Error::CopyTooLarge {
                name,
                bytes: bytes.saturating_add(spent),
                limit: options.max_decoded_bytes,
            },
            e => e,
        })?;
        let cost = charge_copy(name, &v, cost, copied, spent, options.max_decoded_bytes)?;
        let mut v = v;
        if copied {
            v.detach_from_files();
        }
        left = left.saturating_sub(cost);
        Ok::<_, Error>(v)
    };
    let mut values = Vec::new();
    for (name, entry) in archive
        .section_loaders(Section::Bindings)?
        .filter(|(n, _)| selection.accepts(n))
    {
        values.push((name.to_string(), load(name, entry)?));
    }
    let mut constants = Vec::new();
    if options.include_constants {
        for (name, entry) in archive.section_loaders(Section::Constants)? {
            constants.push((name.to_string(), load(name, entry)?));
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

    match &options.mode {
        RestoreMode::Merge if env.is_empty() => {
            // Nothing to conflict with: bound in one pass.
            report.restored = values.iter().map(|(n, _)| n.clone()).collect();
            env.set_all(values);
        }
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
            report.restored = values.iter().map(|(n, _)| n.clone()).collect();
            env.set_all(values);
        }
        RestoreMode::Namespace(ns) => {
            report.restored = values.iter().map(|(n, _)| n.clone()).collect();
            env.set(ns.clone(), Value::Record(values.into_iter().collect()));
        }
    }
    for (name, v) in constants {
        let exists = env.constant(&name).is_some();
        if exists && options.mode != RestoreMode::Replace && !options.overwrite {
            report.constant_conflicts.push(name);
        } else {
            report.constants_restored.push(name.clone());
            env.set_constant(name, v);
        }
    }
    // A merge that keeps names must say so: the user asked for the
    // archive's values and is looking at others.
    let kept = [
        (&report.conflicts, "", "already bound"),
        (&report.constant_conflicts, "constant ", "already defined"),
    ];
    let warnings: Vec<String> = kept
        .into_iter()
        .filter_map(|(names, kind, why)| kept_warning(names, kind, why))
        .collect();
    report.warnings.extend(warnings);
    Ok(report)
}

/// Most names one "kept" warning lists.
const KEPT_LISTED: usize = 10;

/// The warning for names a restore kept, naming them (the first
/// [`KEPT_LISTED`]) and how to replace them; `None` when there are none.
fn kept_warning(names: &[String], kind: &str, why: &str) -> Option<String> {
    match names {
        [] => None,
        [one] => Some(format!(
            "kept the current value of {kind}{one:?}, {why}; pass overwrite: true to replace it with the archive's"
        )),
        many => {
            let mut listed: Vec<String> = many
                .iter()
                .take(KEPT_LISTED)
                .map(|n| format!("{n:?}"))
                .collect();
            if many.len() > KEPT_LISTED {
                listed.push(format!("and {} more", many.len() - KEPT_LISTED));
            }
            let kinds = if kind.is_empty() {
                "names"
            } else {
                "constants"
            };
            Some(format!(
                "kept the current values of {} {kinds} {why}: {}; pass overwrite: true to replace them with the archive's",
                many.len(),
                listed.join(", ")
            ))
        }
    }
}
