//! In-memory snapshots (spec 3.2): `snapshot_env` before a risky
//! experiment, `restore_snapshot` to go back.
//!
//! A snapshot costs time and memory in proportion to the number of bindings,
//! not their bytes: tensors share their storage with the environment
//! ([`Buffer`](crate::Buffer) is reference-counted and copies on write), so
//! a 1 GiB tensor is not copied. A `mut` reference is the one value that
//! must not be shared, since writing through it would change the snapshot:
//! it is deep-copied into a fresh reference (its contents share tensor
//! storage in turn). Two bindings holding the same reference still share one
//! reference inside the snapshot. Strings, vectors and records are copied
//! value by value, which costs their length.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::env::environment::{Environment, check_name};
use crate::env::restore::{
    RestoreMode, RestoreOptions, RestoreReport, apply, check_mode, report_not_found,
};
use crate::env::select::NameSelection;
use crate::error::Result;
use crate::value::{Edge, Record, Value, read_ref};

/// Options of `snapshot_env`: which bindings to capture.
#[derive(Clone, Debug)]
pub struct SnapshotOptions {
    /// Only names matching one of these glob patterns (None = all).
    pub include_only: Option<Vec<String>>,
    /// Skip names matching any of these glob patterns.
    pub exclude: Vec<String>,
    /// Capture the constants too (default true).
    pub include_constants: bool,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            include_only: None,
            exclude: Vec::new(),
            include_constants: true,
        }
    }
}

/// Options of `restore_snapshot` (spec 3.2): the modes and filters of a
/// restore, without what only applies to a file (checksums, memory budget,
/// versions, copies).
///
/// `overwrite` defaults to **true**, here and in the language's
/// `restore_snapshot`: going back to a snapshot means getting its values
/// back over the current ones (spec 3.2, "data está de vuelta"). Names
/// bound since the snapshot stay, unless `mode` is
/// [`RestoreMode::Replace`].
#[derive(Clone, Debug)]
pub struct SnapshotRestoreOptions {
    /// How to combine (default [`RestoreMode::Merge`]).
    pub mode: RestoreMode,
    /// Replace current bindings and constants of the same name (default
    /// true); in namespace mode, allow replacing a binding of the
    /// namespace's name.
    pub overwrite: bool,
    /// Only names matching one of these glob patterns (None = all).
    pub include_only: Option<Vec<String>>,
    /// Skip names matching any of these glob patterns.
    pub exclude: Vec<String>,
    /// Restore the snapshot's constants too (default true).
    pub include_constants: bool,
    /// Refuse a binding that refers to a builtin the host does not provide
    /// (default false: skip it with a warning).
    pub strict_builtins: bool,
}

impl Default for SnapshotRestoreOptions {
    fn default() -> Self {
        SnapshotRestoreOptions {
            mode: RestoreMode::Merge,
            overwrite: true,
            include_only: None,
            exclude: Vec::new(),
            include_constants: true,
            strict_builtins: false,
        }
    }
}

impl SnapshotRestoreOptions {
    /// The restore options these stand for.
    fn restore_options(&self) -> RestoreOptions {
        RestoreOptions {
            mode: self.mode.clone(),
            overwrite: self.overwrite,
            include_only: self.include_only.clone(),
            exclude: self.exclude.clone(),
            include_constants: self.include_constants,
            strict_builtins: self.strict_builtins,
            ..RestoreOptions::default()
        }
    }
}

/// An environment captured in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    bindings: Vec<(String, Value)>,
    constants: Vec<(String, Value)>,
    created_timestamp: u64,
}

/// Copies `v`, giving every `mut` reference a fresh one (the same fresh one
/// for the same original, so aliasing is kept) and sharing everything else
/// that is shared already (tensor storage).
fn detach(v: &Value, seen: &mut HashMap<usize, Value>) -> Value {
    match v {
        Value::MutableRef(r) => {
            let key = Arc::as_ptr(r) as usize;
            if let Some(fresh) = seen.get(&key) {
                return fresh.clone();
            }
            // Register the fresh reference before copying its contents, so a
            // reference reachable from itself is copied once.
            let fresh = Arc::new(RwLock::new(Value::Null));
            seen.insert(key, Value::MutableRef(fresh.clone()));
            let inner = {
                let guard = read_ref(r);
                detach(&guard, seen)
            };
            *fresh.write().unwrap_or_else(|e| e.into_inner()) = inner;
            Value::MutableRef(fresh)
        }
        Value::Vector(items) => Value::Vector(items.iter().map(|x| detach(x, seen)).collect()),
        Value::Record(r) => Value::Record(detach_record(r, seen)),
        Value::Edge(e) => Value::Edge(Edge {
            properties: detach_record(&e.properties, seen),
            ..e.clone()
        }),
        _ => v.clone(),
    }
}

fn detach_record(r: &Record, seen: &mut HashMap<usize, Value>) -> Record {
    Record::from_unique(
        r.fields()
            .iter()
            .map(|(k, x)| (k.clone(), detach(x, seen)))
            .collect(),
    )
}

fn detach_all<'a>(
    items: impl Iterator<Item = (&'a str, &'a Value)>,
    seen: &mut HashMap<usize, Value>,
) -> Vec<(String, Value)> {
    items
        .map(|(n, v)| (n.to_string(), detach(v, seen)))
        .collect()
}

/// Captures `env` (spec 3.2 `snapshot_env`).
///
/// ```
/// use achronyme_env::*;
/// let mut env = Environment::new();
/// env.set("data", Value::Tensor(Tensor::from_vec(vec![1.0, 2.0])));
/// let checkpoint = snapshot_env(&env, &SnapshotOptions::default()).unwrap();
///
/// // A destructive experiment...
/// if let Some(Value::Tensor(t)) = env.get_mut("data") { t.data_mut()[0] = -1.0; }
///
/// restore_snapshot(&mut env, &checkpoint, &SnapshotRestoreOptions::default()).unwrap();
/// assert_eq!(env.get("data"), Some(&Value::Tensor(Tensor::from_vec(vec![1.0, 2.0]))));
/// ```
pub fn snapshot_env(env: &Environment, options: &SnapshotOptions) -> Result<Snapshot> {
    let selection = NameSelection::new(options.include_only.as_deref(), &options.exclude)?;
    let mut seen = HashMap::new();
    let bindings = detach_all(env.iter().filter(|(n, _)| selection.accepts(n)), &mut seen);
    let constants = if options.include_constants {
        detach_all(env.constants(), &mut seen)
    } else {
        Vec::new()
    };
    Ok(Snapshot {
        bindings,
        constants,
        created_timestamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

/// Brings a snapshot back into `env` (spec 3.2 `restore_snapshot`) with the
/// modes and filters of a restore; by default its values replace the
/// current ones ([`SnapshotRestoreOptions`]). The snapshot is left as it is
/// and can be restored again: `mut` references are deep-copied once more on
/// the way in.
pub fn restore_snapshot(
    env: &mut Environment,
    snapshot: &Snapshot,
    options: &SnapshotRestoreOptions,
) -> Result<RestoreReport> {
    let options = &options.restore_options();
    check_mode(env, options)?;
    let selection = NameSelection::new(options.include_only.as_deref(), &options.exclude)?;
    let mut seen = HashMap::new();
    let values = detach_all(
        snapshot
            .bindings
            .iter()
            .filter(|(n, _)| selection.accepts(n))
            .map(|(n, v)| (n.as_str(), v)),
        &mut seen,
    );
    let constants = if options.include_constants {
        detach_all(
            snapshot.constants.iter().map(|(n, v)| (n.as_str(), v)),
            &mut seen,
        )
    } else {
        Vec::new()
    };
    let mut report = RestoreReport::default();
    report_not_found(
        &mut report,
        options,
        snapshot.bindings.iter().map(|(n, _)| n.as_str()),
    )?;
    apply(env, values, constants, options, report)
}

impl Snapshot {
    /// The captured bindings, sorted by name.
    pub fn bindings(&self) -> &[(String, Value)] {
        &self.bindings
    }

    /// The captured binding `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.bindings
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .and_then(|i| self.bindings.get(i))
            .map(|(_, v)| v)
    }

    /// The captured constants, sorted by name.
    pub fn constants(&self) -> &[(String, Value)] {
        &self.constants
    }

    /// When it was taken, Unix seconds.
    pub fn created_timestamp(&self) -> u64 {
        self.created_timestamp
    }

    /// The snapshot as a language value: a record
    /// `{type: "Snapshot", created_at, bindings: {...}, constants: {...}}`
    /// sharing this snapshot's storage. [`Snapshot::from_value`] reads it
    /// back.
    pub fn to_value(&self) -> Value {
        let record = |items: &[(String, Value)]| {
            Value::Record(Record::from_unique(
                items.iter().map(|(n, v)| (n.clone(), v.clone())).collect(),
            ))
        };
        Value::Record(Record::from_unique(vec![
            ("type".into(), Value::from("Snapshot")),
            (
                "created_at".into(),
                Value::from(crate::format::metadata::iso8601(self.created_timestamp)),
            ),
            (
                "created_timestamp".into(),
                Value::Number(self.created_timestamp as f64),
            ),
            ("bindings".into(), record(&self.bindings)),
            ("constants".into(), record(&self.constants)),
        ]))
    }

    /// Reads a value made by [`Snapshot::to_value`]; `None` when `v` is not
    /// such a record, or binds a name an archive could not hold. References are kept as they are (a restore copies
    /// them).
    pub fn from_value(v: &Value) -> Option<Snapshot> {
        let Value::Record(r) = v else { return None };
        if r.get("type") != Some(&Value::from("Snapshot")) {
            return None;
        }
        let items = |field: &str| -> Option<Vec<(String, Value)>> {
            let Value::Record(inner) = r.get(field)? else {
                return None;
            };
            // Only names an environment may bind: a hand-made record must
            // not smuggle in an empty or NUL name.
            if inner.fields().iter().any(|(n, _)| check_name(n).is_some()) {
                return None;
            }
            let mut items = inner.fields().to_vec();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            Some(items)
        };
        let created_timestamp = match r.get("created_timestamp") {
            Some(Value::Number(n)) if n.is_finite() && *n >= 0.0 => *n as u64,
            _ => 0,
        };
        Some(Snapshot {
            bindings: items("bindings")?,
            constants: items("constants")?,
            created_timestamp,
        })
    }
}
