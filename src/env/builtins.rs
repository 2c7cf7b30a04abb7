//! The language-level functions of spec 3 (and `env_load_var` of 8.3), in
//! the evaluator's calling convention: `fn(&[Value], &mut Environment) ->
//! Result<Value, BuiltinError>`, options as a Record value. An Achronyme
//! evaluator registers [`BUILTINS`] as is.
//!
//! Each function returns what the spec says: `true` on success for
//! `save_env`, `restore_env`, `restore_snapshot`, `env_set` and `env_clear`;
//! a Record for `env_info`; a Vector of Strings for `env_bindings`; the value
//! for `env_get` and `env_load_var`; whether the name existed for
//! `env_remove`; a Snapshot record for `snapshot_env` (see
//! [`Snapshot::to_value`]). Warnings of a save or restore (a lambda not
//! saved, names a merge kept, a large value, another runtime version) go to
//! the environment's warning sink: standard error, one line each, unless
//! the host collects them ([`Environment::set_warning_sink`]).
//!
//! Saves record the runtime the host declared
//! ([`Environment::set_runtime`]) and restores compare against it.
//!
//! Bad input is a [`BuiltinError`] naming the function, the argument and
//! what was expected; an unknown option key suggests the closest known one.
//!
//! ```
//! use achronyme_env::builtins::call;
//! use achronyme_env::*;
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("work.ach").to_string_lossy().into_owned();
//! let mut env = Environment::new();
//! env.set("x", Value::Number(42.0));
//! assert_eq!(call("save_env", &[Value::from(path.as_str())], &mut env).unwrap(), Value::Boolean(true));
//!
//! let opts: Record = [("compresion".to_string(), Value::Boolean(false))].into_iter().collect();
//! let err = call("save_env", &[Value::from(path.as_str()), Value::Record(opts)], &mut env).unwrap_err();
//! assert!(err.to_string().contains("did you mean \"compress\""), "{err}");
//! ```

use std::fmt;

use crate::env::environment::{self, Environment};
use crate::env::load::{LoadVarOptions, env_load_var_with as load_var};
use crate::env::restore::{RestoreMode, RestoreOptions, restore_environment};
use crate::env::save::{Compression, SaveOptions, save_environment};
use crate::env::snapshot::{
    Snapshot, SnapshotOptions, SnapshotRestoreOptions, restore_snapshot as restore_snap,
    snapshot_env as snap,
};
use crate::error::Error;
use crate::format::layout::Section;
use crate::suggest::closest;
use crate::value::{Record, Value};

/// The calling convention of an evaluator's builtin functions.
pub type BuiltinFn = fn(&[Value], &mut Environment) -> Result<Value, BuiltinError>;

/// A builtin to register: its name, how many arguments it takes and the
/// function.
#[derive(Clone, Copy)]
pub struct BuiltinSpec {
    /// The name the language calls it by.
    pub name: &'static str,
    /// Fewest arguments.
    pub min_args: usize,
    /// Most arguments.
    pub max_args: usize,
    /// The function.
    pub func: BuiltinFn,
}

impl fmt::Debug for BuiltinSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltinSpec")
            .field("name", &self.name)
            .field("min_args", &self.min_args)
            .field("max_args", &self.max_args)
            .finish_non_exhaustive()
    }
}

/// Every function of this module, for an evaluator to register.
pub const BUILTINS: &[BuiltinSpec] = &[
    spec("save_env", 1, 2, save_env),
    spec("restore_env", 1, 2, restore_env),
    spec("env_info", 1, 1, env_info),
    spec("snapshot_env", 0, 1, snapshot_env),
    spec("restore_snapshot", 1, 2, restore_snapshot),
    spec("env_bindings", 0, 0, env_bindings),
    spec("env_get", 1, 1, env_get),
    spec("env_set", 2, 2, env_set),
    spec("env_remove", 1, 1, env_remove),
    spec("env_clear", 0, 1, env_clear),
    spec("env_load_var", 2, 3, env_load_var),
];

const fn spec(
    name: &'static str,
    min_args: usize,
    max_args: usize,
    func: BuiltinFn,
) -> BuiltinSpec {
    BuiltinSpec {
        name,
        min_args,
        max_args,
        func,
    }
}

/// Calls the builtin `name` of [`BUILTINS`] (a convenience for hosts and
/// tests; an evaluator usually registers the table instead).
pub fn call(name: &str, args: &[Value], env: &mut Environment) -> Result<Value, BuiltinError> {
    match BUILTINS.iter().find(|b| b.name == name) {
        Some(b) => (b.func)(args, env),
        None => Err(BuiltinError {
            function: "call",
            message: format!(
                "no builtin named {name:?}{}",
                match closest(name, BUILTINS.iter().map(|b| b.name)) {
                    Some(s) => format!("; did you mean {s:?}?"),
                    None => String::new(),
                }
            ),
            cause: None,
        }),
    }
}

/// Why a builtin call failed: names the function, and the argument or
/// option and what was expected, or carries the engine's [`Error`].
///
/// Its message already holds the engine error's whole text (which holds
/// its own cause's), so it reports no [`source`](std::error::Error::source):
/// a report that prints the chain says each thing once. The engine error
/// itself, for matching, is [`cause`](Self::cause).
#[derive(Debug)]
pub struct BuiltinError {
    /// The function called (`"save_env"`, ...).
    pub function: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// The engine error behind it, if any.
    pub cause: Option<Error>,
}

impl std::fmt::Display for BuiltinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.function, self.message)
    }
}

impl std::error::Error for BuiltinError {}

impl BuiltinError {
    fn new(function: &'static str, message: impl Into<String>) -> Self {
        BuiltinError {
            function,
            message: message.into(),
            cause: None,
        }
    }

    fn engine(function: &'static str, e: Error) -> Self {
        BuiltinError {
            function,
            message: e.to_string(),
            cause: Some(e),
        }
    }
}

type R<T> = Result<T, BuiltinError>;

/// `article + type name`, for messages.
fn a_type(v: &Value) -> String {
    let t = v.type_name();
    let article = if t.starts_with(['A', 'E', 'I', 'O', 'U']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// Checks the argument count against the table.
fn arity(function: &'static str, args: &[Value]) -> R<()> {
    let Some(b) = BUILTINS.iter().find(|b| b.name == function) else {
        return Ok(());
    };
    if (b.min_args..=b.max_args).contains(&args.len()) {
        return Ok(());
    }
    let expected = match (b.min_args, b.max_args) {
        (a, b) if a == b => format!("{a}"),
        (a, b) => format!("{a} to {b}"),
    };
    Err(BuiltinError::new(
        function,
        format!(
            "expected {expected} argument{}, got {}",
            if b.max_args == 1 { "" } else { "s" },
            args.len()
        ),
    ))
}

fn string_arg<'a>(function: &'static str, args: &'a [Value], i: usize, what: &str) -> R<&'a str> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(BuiltinError::new(
            function,
            format!(
                "argument {} ({what}) must be a String, got {}",
                i + 1,
                a_type(other)
            ),
        )),
        None => Err(BuiltinError::new(
            function,
            format!("argument {} ({what}) is missing", i + 1),
        )),
    }
}

/// The options record at `args[i]`, if given; `null` counts as absent.
fn options_arg<'a>(function: &'static str, args: &'a [Value], i: usize) -> R<Option<&'a Record>> {
    match args.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Record(r)) => Ok(Some(r)),
        Some(other) => Err(BuiltinError::new(
            function,
            format!(
                "argument {} (options) must be a Record such as {{overwrite: true}}, got {}",
                i + 1,
                a_type(other)
            ),
        )),
    }
}

/// Walks an options record, refusing keys not in `known` (suggesting the
/// closest) and handing each known key and value to `set`.
fn each_option(
    function: &'static str,
    options: Option<&Record>,
    known: &[&str],
    mut set: impl FnMut(&str, &Value) -> R<()>,
) -> R<()> {
    for (key, value) in options.map(Record::fields).unwrap_or_default() {
        if !known.contains(&key.as_str()) {
            let hint = match closest(key, known.iter().copied()) {
                Some(s) => format!("did you mean {s:?}?"),
                None => format!("known options: {}", known.join(", ")),
            };
            return Err(BuiltinError::new(
                function,
                format!("unknown option {key:?}; {hint}"),
            ));
        }
        set(key, value)?;
    }
    Ok(())
}

fn wrong_type(function: &'static str, key: &str, expected: &str, got: &Value) -> BuiltinError {
    BuiltinError::new(
        function,
        format!("option {key} must be {expected}, got {}", a_type(got)),
    )
}

fn opt_bool(function: &'static str, key: &str, v: &Value) -> R<bool> {
    match v {
        Value::Boolean(b) => Ok(*b),
        other => Err(wrong_type(
            function,
            key,
            "a Boolean (true or false)",
            other,
        )),
    }
}

fn opt_string(function: &'static str, key: &str, v: &Value) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(wrong_type(function, key, "a String", other)),
    }
}

fn opt_strings(function: &'static str, key: &str, v: &Value) -> R<Vec<String>> {
    let expected = "a Vector of Strings such as [\"data\", \"temp_*\"]";
    match v {
        Value::Vector(items) => items
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                _ => Err(wrong_type(function, key, expected, v)),
            })
            .collect(),
        other => Err(wrong_type(function, key, expected, other)),
    }
}

/// `null` (all) or a Vector of Strings.
fn opt_names(function: &'static str, key: &str, v: &Value) -> R<Option<Vec<String>>> {
    match v {
        Value::Null => Ok(None),
        _ => opt_strings(function, key, v)
            .map(Some)
            .map_err(|_| wrong_type(function, key, "null or a Vector of Strings", v)),
    }
}

/// A whole, non-negative number within `max`.
fn opt_count(function: &'static str, key: &str, v: &Value, max: f64) -> R<u64> {
    match v {
        Value::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n <= max => Ok(*n as u64),
        Value::Number(n) => Err(BuiltinError::new(
            function,
            format!("option {key} must be a whole number from 0 to {max}, got {n}"),
        )),
        other => Err(wrong_type(function, key, "a Number", other)),
    }
}

/// Hands `warnings` to the environment's sink, one by one.
fn warn(env: &mut Environment, function: &'static str, warnings: Vec<String>) {
    for w in warnings {
        env.warn(function, w);
    }
}

/// One of `choices`, or an error listing them and suggesting the closest.
fn opt_choice<'c>(function: &'static str, key: &str, v: &Value, choices: &[&'c str]) -> R<&'c str> {
    let given = opt_string(function, key, v)?;
    if let Some(c) = choices.iter().find(|c| **c == given) {
        return Ok(c);
    }
    let quoted: Vec<String> = choices.iter().map(|c| format!("{c:?}")).collect();
    let listed = match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    };
    let hint = match closest(&given, choices.iter().copied()) {
        Some(c) => format!("; did you mean {c:?}?"),
        None => String::new(),
    };
    Err(BuiltinError::new(
        function,
        format!("option {key} must be {listed}, got {given:?}{hint}"),
    ))
}

const SAVE_KEYS: &[&str] = &[
    "include_constants",
    "include_functions",
    "include_builtins",
    "exclude",
    "include_only",
    "compress",
    "compression_level",
    "codec",
    "description",
    "tags",
    "custom",
    "allow_overwrite",
    "max_file_size",
    "warn_large_values",
    "strict",
];

/// The [`SaveOptions`] an options record asks for.
fn save_options(function: &'static str, options: Option<&Record>) -> R<SaveOptions> {
    let mut o = SaveOptions::default();
    let mut compress = true;
    let mut level = None;
    let mut codec = "zstd";
    each_option(function, options, SAVE_KEYS, |key, v| {
        match key {
            "include_constants" => o.include_constants = opt_bool(function, key, v)?,
            "include_functions" => o.include_functions = opt_bool(function, key, v)?,
            "include_builtins" => o.include_builtins = opt_bool(function, key, v)?,
            "exclude" => o.exclude = opt_strings(function, key, v)?,
            "include_only" => o.include_only = opt_names(function, key, v)?,
            "compress" => compress = opt_bool(function, key, v)?,
            "compression_level" => {
                level = Some(match v {
                    Value::Number(n) if n.fract() == 0.0 && (1.0..=22.0).contains(n) => *n as i32,
                    Value::Number(n) => {
                        return Err(BuiltinError::new(
                            function,
                            format!(
                                "option compression_level must be a whole number from 1 to 22 \
                                 (3 balances speed and size), got {n}"
                            ),
                        ));
                    }
                    other => return Err(wrong_type(function, key, "a Number from 1 to 22", other)),
                });
            }
            "codec" => codec = opt_choice(function, key, v, &["zstd", "lz4", "none"])?,
            "description" => o.description = Some(opt_string(function, key, v)?),
            "tags" => o.tags = opt_strings(function, key, v)?,
            "custom" => {
                let Value::Record(r) = v else {
                    return Err(wrong_type(function, key, "a Record of Strings", v));
                };
                o.custom = r
                    .fields()
                    .iter()
                    .map(|(k, x)| match x {
                        Value::String(s) => Ok((k.clone(), s.clone())),
                        _ => Err(wrong_type(function, key, "a Record of Strings", v)),
                    })
                    .collect::<R<_>>()?;
            }
            "allow_overwrite" => o.allow_overwrite = opt_bool(function, key, v)?,
            "max_file_size" => {
                o.max_file_size = match v {
                    Value::Null => None,
                    // 2^53: every whole number a Number holds exactly.
                    _ => Some(opt_count(function, key, v, 9_007_199_254_740_992.0)?),
                }
            }
            "warn_large_values" => {
                o.large_value_warning =
                    opt_bool(function, key, v)?.then_some(crate::env::save::LARGE_VALUE_BYTES)
            }
            "strict" => o.strict = opt_bool(function, key, v)?,
            _ => {}
        }
        Ok(())
    })?;
    if level.is_some() && codec != "zstd" {
        return Err(BuiltinError::new(
            function,
            format!(
                "option compression_level applies to codec \"zstd\" only; {codec} has no levels"
            ),
        ));
    }
    o.compression = match codec {
        _ if !compress => Compression::None,
        "lz4" => Compression::Lz4,
        "none" => Compression::None,
        _ => Compression::Zstd {
            level: level.unwrap_or(3),
        },
    };
    Ok(o)
}

const RESTORE_KEYS: &[&str] = &[
    "mode",
    "overwrite",
    "namespace",
    "include_only",
    "exclude",
    "verify_checksum",
    "max_decoded_bytes",
    "strict_version",
    "include_constants",
    "strict_builtins",
    "copy",
];

const SNAPSHOT_RESTORE_KEYS: &[&str] = &[
    "mode",
    "overwrite",
    "namespace",
    "include_only",
    "exclude",
    "include_constants",
    "strict_builtins",
];

/// The [`RestoreOptions`] an options record asks for.
fn restore_options(
    function: &'static str,
    options: Option<&Record>,
    known: &[&str],
) -> R<RestoreOptions> {
    let mut o = RestoreOptions::default();
    let mut mode: Option<String> = None;
    let mut namespace: Option<String> = None;
    each_option(function, options, known, |key, v| {
        match key {
            "mode" => mode = Some(opt_string(function, key, v)?),
            "namespace" => {
                namespace = match v {
                    Value::Null => None,
                    _ => Some(opt_string(function, key, v)?),
                }
            }
            "overwrite" => o.overwrite = opt_bool(function, key, v)?,
            "include_only" => o.include_only = opt_names(function, key, v)?,
            "exclude" => o.exclude = opt_strings(function, key, v)?,
            "verify_checksum" => o.verify_checksum = opt_bool(function, key, v)?,
            "max_decoded_bytes" => {
                o.max_decoded_bytes = opt_count(function, key, v, 9_007_199_254_740_992.0)?
            }
            "strict_version" => o.strict_version = opt_bool(function, key, v)?,
            "include_constants" => o.include_constants = opt_bool(function, key, v)?,
            "strict_builtins" => o.strict_builtins = opt_bool(function, key, v)?,
            "copy" => o.copy = opt_bool(function, key, v)?,
            _ => {}
        }
        Ok(())
    })?;
    o.mode = match (mode.as_deref(), namespace) {
        (None | Some("merge"), None) => RestoreMode::Merge,
        (Some("replace"), None) => RestoreMode::Replace,
        (None | Some("namespace"), Some(ns)) => RestoreMode::Namespace(ns),
        (Some("namespace"), None) => {
            return Err(BuiltinError::new(
                function,
                "option mode \"namespace\" needs option namespace, a name such as \"old\"",
            ));
        }
        (Some(m @ ("merge" | "replace")), Some(_)) => {
            return Err(BuiltinError::new(
                function,
                format!("option namespace only applies with mode \"namespace\", but mode is {m:?}"),
            ));
        }
        (Some(other), _) => {
            let modes = ["merge", "replace", "namespace"];
            let hint = match closest(other, modes) {
                Some(s) => format!("; did you mean {s:?}?"),
                None => String::new(),
            };
            return Err(BuiltinError::new(
                function,
                format!(
                    "option mode must be \"merge\", \"replace\" or \"namespace\", got {other:?}{hint}"
                ),
            ));
        }
    };
    Ok(o)
}

/// `save_env(path, options?) -> Boolean` (spec 3.1).
pub fn save_env(args: &[Value], env: &mut Environment) -> Result<Value, BuiltinError> {
    const F: &str = "save_env";
    arity(F, args)?;
    let path = string_arg(F, args, 0, "path")?;
    let options = save_options(F, options_arg(F, args, 1)?)?;
    let report = save_environment(env, path, &options).map_err(|e| BuiltinError::engine(F, e))?;
    warn(env, F, report.warnings);
    Ok(Value::Boolean(true))
}

/// `restore_env(path, options?) -> Boolean` (spec 3.1).
pub fn restore_env(args: &[Value], env: &mut Environment) -> Result<Value, BuiltinError> {
    const F: &str = "restore_env";
    arity(F, args)?;
    let path = string_arg(F, args, 0, "path")?;
    let options = restore_options(F, options_arg(F, args, 1)?, RESTORE_KEYS)?;
    let report =
        restore_environment(env, path, &options).map_err(|e| BuiltinError::engine(F, e))?;
    warn(env, F, report.warnings);
    Ok(Value::Boolean(true))
}

/// `env_info(path) -> Record` (spec 3.1): `version`, `created_at`,
/// `created_by`, `num_bindings`, `num_constants`, `compressed` (true when
/// any blob is stored compressed), `file_size`, `description` (`null` when
/// the save gave none), `tags`, `bindings`, plus `platform`,
/// `achronyme_version`, `num_functions`, `custom`, `codec` (what the save
/// asked for: `"zstd"`, `"lz4"` or `"none"`) and `compressed_blobs` (how
/// many blobs compression shrank enough to keep compressed).
pub fn env_info(args: &[Value], _env: &mut Environment) -> Result<Value, BuiltinError> {
    const F: &str = "env_info";
    arity(F, args)?;
    let path = string_arg(F, args, 0, "path")?;
    // It lists the names, so the whole table is checked (layout.md 6.8):
    // a damaged one is an error here, not an empty list.
    let info = crate::Archive::open_location(path)
        .and_then(|a| a.check_table().map(|()| a.info()))
        .map_err(|e| BuiltinError::engine(F, e))?;
    let strings =
        |items: &[String]| Value::Vector(items.iter().map(|s| Value::from(s.as_str())).collect());
    let fields: Vec<(String, Value)> = vec![
        ("version".into(), Value::from(info.version.as_str())),
        ("created_at".into(), Value::from(info.created_at.as_str())),
        ("created_by".into(), Value::from(info.created_by.as_str())),
        (
            "num_bindings".into(),
            Value::Number(info.num_bindings as f64),
        ),
        (
            "num_constants".into(),
            Value::Number(info.num_constants as f64),
        ),
        ("compressed".into(), Value::Boolean(info.compressed)),
        ("codec".into(), Value::from(info.codec.name())),
        (
            "compressed_blobs".into(),
            Value::Number(info.compressed_blobs as f64),
        ),
        ("file_size".into(), Value::Number(info.file_size as f64)),
        (
            "description".into(),
            info.description.as_deref().map_or(Value::Null, Value::from),
        ),
        ("tags".into(), strings(&info.tags)),
        ("bindings".into(), strings(&info.bindings)),
        ("platform".into(), Value::from(info.platform.as_str())),
        (
            "achronyme_version".into(),
            Value::from(info.achronyme_version.as_str()),
        ),
        (
            "num_functions".into(),
            Value::Number(info.num_functions as f64),
        ),
        (
            "custom".into(),
            Value::Record(
                info.custom
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect(),
            ),
        ),
    ];
    Ok(Value::Record(fields.into_iter().collect()))
}

/// `snapshot_env(options?) -> Snapshot` (spec 3.2); options
/// `include_only`, `exclude`, `include_constants`.
pub fn snapshot_env(args: &[Value], env: &mut Environment) -> Result<Value, BuiltinError> {
    const F: &str = "snapshot_env";
    arity(F, args)?;
    let mut o = SnapshotOptions::default();
    each_option(
        F,
        options_arg(F, args, 0)?,
        &["include_only", "exclude", "include_constants"],
        |key, v| {
            match key {
                "include_only" => o.include_only = opt_names(F, key, v)?,
                "exclude" => o.exclude = opt_strings(F, key, v)?,
                "include_constants" => o.include_constants = opt_bool(F, key, v)?,
                _ => {}
            }
            Ok(())
        },
    )?;
    let s = snap(env, &o).map_err(|e| BuiltinError::engine(F, e))?;
    Ok(s.to_value())
}

/// `restore_snapshot(snapshot, options?) -> Boolean` (spec 3.2), with the
/// modes and filters of `restore_env`, except that `overwrite` defaults to
/// true: the snapshot's values come back over the current ones (names bound
/// since the snapshot stay, unless `mode: "replace"`).
pub fn restore_snapshot(args: &[Value], env: &mut Environment) -> Result<Value, BuiltinError> {
    const F: &str = "restore_snapshot";
    arity(F, args)?;
    let snapshot = args.first().and_then(Snapshot::from_value).ok_or_else(|| {
        BuiltinError::new(
            F,
            format!(
                "argument 1 (snapshot) must be a Snapshot, the value snapshot_env() returns, got {}",
                args.first().map_or_else(|| "nothing".into(), a_type)
            ),
        )
    })?;
    let given = options_arg(F, args, 1)?;
    let parsed = restore_options(F, given, SNAPSHOT_RESTORE_KEYS)?;
    // overwrite defaults to true, as in SnapshotRestoreOptions.
    let defaults = SnapshotRestoreOptions::default();
    let options = SnapshotRestoreOptions {
        overwrite: match given.and_then(|r| r.get("overwrite")) {
            Some(_) => parsed.overwrite,
            None => defaults.overwrite,
        },
        mode: parsed.mode,
        include_only: parsed.include_only,
        exclude: parsed.exclude,
        include_constants: parsed.include_constants,
        strict_builtins: parsed.strict_builtins,
    };
    let report = restore_snap(env, &snapshot, &options).map_err(|e| BuiltinError::engine(F, e))?;
    warn(env, F, report.warnings);
    Ok(Value::Boolean(true))
}

/// `env_bindings() -> Vector<String>` (spec 3.3).
pub fn env_bindings(args: &[Value], env: &mut Environment) -> Result<Value, BuiltinError> {
    arity("env_bindings", args)?;
    Ok(Value::Vector(
        environment::env_bindings(env)
            .into_iter()
            .map(Value::String)
            .collect(),
    ))
}

/// `env_get(name) -> Value` (spec 3.3): the binding, else the constant of
/// that name (`env_get("PI")`), as the language resolves a name.
pub fn env_get(args: &[Value], env: &mut Environment) -> Result<Value, BuiltinError> {
    const F: &str = "env_get";
    arity(F, args)?;
    let name = string_arg(F, args, 0, "name")?;
    environment::env_get(env, name).map_err(|e| BuiltinError::engine(F, e))
}

/// `env_set(name, value) -> Boolean` (spec 3.3).
pub fn env_set(args: &[Value], env: &mut Environment) -> Result<Value, BuiltinError> {
    const F: &str = "env_set";
    arity(F, args)?;
    let name = string_arg(F, args, 0, "name")?;
    let value = args.get(1).cloned().unwrap_or(Value::Null);
    environment::env_set(env, name, value).map_err(|e| BuiltinError::engine(F, e))?;
    Ok(Value::Boolean(true))
}

/// `env_remove(name) -> Boolean` (spec 3.3): true when the name was bound.
pub fn env_remove(args: &[Value], env: &mut Environment) -> Result<Value, BuiltinError> {
    const F: &str = "env_remove";
    arity(F, args)?;
    let name = string_arg(F, args, 0, "name")?;
    Ok(Value::Boolean(environment::env_remove(env, name)))
}

/// `env_clear(confirm?) -> Boolean` (spec 3.3): clears only when `confirm`
/// is `true`; otherwise an error and nothing changes.
pub fn env_clear(args: &[Value], env: &mut Environment) -> Result<Value, BuiltinError> {
    const F: &str = "env_clear";
    arity(F, args)?;
    let confirm = match args.first() {
        None => false,
        Some(Value::Boolean(b)) => *b,
        Some(other) => {
            return Err(BuiltinError::new(
                F,
                format!(
                    "argument 1 (confirm) must be a Boolean, got {}",
                    a_type(other)
                ),
            ));
        }
    };
    environment::env_clear(env, confirm).map_err(|e| BuiltinError::engine(F, e))?;
    Ok(Value::Boolean(true))
}

/// `env_load_var(path, name, options?) -> Value` (spec 8.3): one binding,
/// without reading the others. The name is resolved as the language does, a
/// binding, else a constant (`PI`). Options: `section` (`"bindings"` or
/// `"constants"`: look there only), `copy` (default true: an owned copy,
/// not a view of the file, see `restore_env`), `verify_checksum` (default
/// true), `max_decoded_bytes`.
pub fn env_load_var(args: &[Value], _env: &mut Environment) -> Result<Value, BuiltinError> {
    const F: &str = "env_load_var";
    arity(F, args)?;
    let path = string_arg(F, args, 0, "path")?;
    let name = string_arg(F, args, 1, "name")?;
    let mut o = LoadVarOptions::default();
    each_option(
        F,
        options_arg(F, args, 2)?,
        &["section", "copy", "verify_checksum", "max_decoded_bytes"],
        |key, v| {
            match key {
                "section" => {
                    o.section = Some(match opt_choice(F, key, v, &["bindings", "constants"])? {
                        "constants" => Section::Constants,
                        _ => Section::Bindings,
                    })
                }
                "copy" => o.copy = opt_bool(F, key, v)?,
                "verify_checksum" => o.load.verify_checksum = opt_bool(F, key, v)?,
                "max_decoded_bytes" => {
                    o.load.max_decoded_bytes = opt_count(F, key, v, 9_007_199_254_740_992.0)?
                }
                _ => {}
            }
            Ok(())
        },
    )?;
    load_var(path, name, &o).map_err(|e| BuiltinError::engine(F, e))
}
