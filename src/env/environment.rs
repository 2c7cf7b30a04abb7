//! The environment: named bindings plus the constants section (spec 2.1),
//! and the environment functions of spec 3.3 ([`env_bindings`],
//! [`env_get`], [`env_set`], [`env_remove`], [`env_clear`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::layout::MAX_NAME_LEN;
use crate::suggest::closest;
use crate::value::Value;

/// The runtime version an environment stands for until its host says
/// otherwise ([`Environment::set_runtime`]); saves record the environment's
/// and restores compare against it.
pub const RUNTIME_VERSION: &str = "v0.1.0";

/// A runtime environment: user bindings and constants, each a sorted map
/// from name to value.
///
/// ```
/// use achronyme_env::{Environment, Value};
/// let mut env = Environment::new();
/// env.set("x", Value::Number(1.0));
/// env.set_constant("PI", Value::Number(std::f64::consts::PI));
/// assert_eq!(env.names(), ["x"]);
/// assert_eq!(env.remove("x"), Some(Value::Number(1.0)));
/// assert!(env.is_empty());
/// ```
///
/// The host may tell the environment which builtin functions it provides
/// ([`Environment::set_host_builtins`]); restores then check every builtin
/// reference they bring in against that list (spec 4.1), and saves can leave
/// out the host's own builtins (`include_builtins`). The list is not part of
/// the environment's contents: equality compares bindings and constants
/// only.
///
/// The host also says which runtime it is ([`Environment::set_runtime`]),
/// which saves record and restores compare, and where the warnings of the
/// language builtins go ([`Environment::set_warning_sink`]): standard error
/// unless the host collects them.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    bindings: BTreeMap<String, Value>,
    constants: BTreeMap<String, Value>,
    host_builtins: Option<Arc<BTreeSet<String>>>,
    runtime: Option<Arc<(String, String)>>,
    sink: WarningSink,
    warnings: Vec<Warning>,
}

/// Where the language builtins' warnings go (a lambda not saved, names kept
/// by a merge, a large value, another runtime version).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WarningSink {
    /// One line each on standard error, as `save_env: warning: ...`.
    #[default]
    Stderr,
    /// Kept on the environment until the host drains them with
    /// [`Environment::take_warnings`].
    Collect,
}

/// A warning of a language builtin: which function, and what it says.
/// Displays as the line standard error would show.
///
/// ```
/// use achronyme_env::*;
/// let mut env = Environment::new();
/// env.set_warning_sink(WarningSink::Collect);
/// env.warn("save_env", "something to know");
/// let w = env.take_warnings();
/// assert_eq!(w[0].to_string(), "save_env: warning: something to know");
/// assert!(env.take_warnings().is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The builtin that warned (`"restore_env"`, ...).
    pub function: &'static str,
    /// What it says.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.function, self.message)
    }
}

/// The runtime a host that never called [`Environment::set_runtime`] stands
/// for: this crate's default, `"Achronyme REPL"`.
pub const DEFAULT_RUNTIME_NAME: &str = "Achronyme REPL";

impl PartialEq for Environment {
    fn eq(&self, other: &Self) -> bool {
        self.bindings == other.bindings && self.constants == other.constants
    }
}

impl Environment {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The binding `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.bindings.get(name)
    }

    /// Mutable access to the binding `name`.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.bindings.get_mut(name)
    }

    /// Binds `name` to `value`, returning the previous value.
    pub fn set(&mut self, name: impl Into<String>, value: Value) -> Option<Value> {
        self.bindings.insert(name.into(), value)
    }

    /// Binds every `(name, value)` of `items`, as [`Environment::set`] on
    /// each in turn would. Into an environment with no bindings (a restore
    /// into a fresh one) the map is built in one pass, which for names in
    /// sorted order (an archive's) is linear instead of a search per name.
    pub(crate) fn set_all(&mut self, items: Vec<(String, Value)>) {
        if self.bindings.is_empty() {
            // Keeps the last value of a repeated name, as `set` would.
            self.bindings = items.into_iter().collect();
        } else {
            self.bindings.extend(items);
        }
    }

    /// Removes the binding `name`.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.bindings.remove(name)
    }

    /// True when `name` is bound.
    pub fn contains(&self, name: &str) -> bool {
        self.bindings.contains_key(name)
    }

    /// The bound names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.bindings.keys().cloned().collect()
    }

    /// The bindings, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.bindings.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of bindings (constants not counted).
    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    /// True when there are no bindings (constants not counted).
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// Removes every binding; constants stay.
    pub fn clear(&mut self) {
        self.bindings.clear();
    }

    /// The constant `name`.
    pub fn constant(&self, name: &str) -> Option<&Value> {
        self.constants.get(name)
    }

    /// Defines the constant `name`.
    pub fn set_constant(&mut self, name: impl Into<String>, value: Value) -> Option<Value> {
        self.constants.insert(name.into(), value)
    }

    /// Removes the constant `name`.
    pub fn remove_constant(&mut self, name: &str) -> Option<Value> {
        self.constants.remove(name)
    }

    /// The constants, sorted by name.
    pub fn constants(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.constants.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Declares the builtin functions the host runtime provides (`sin`,
    /// `map`, ...). Restores resolve builtin references against this list;
    /// without it every builtin name is accepted.
    ///
    /// ```
    /// use achronyme_env::Environment;
    /// let mut env = Environment::new();
    /// env.set_host_builtins(["sin", "cos"]);
    /// assert!(env.is_host_builtin("sin"));
    /// assert!(!env.is_host_builtin("tan"));
    /// ```
    pub fn set_host_builtins<I, S>(&mut self, names: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.host_builtins = Some(Arc::new(names.into_iter().map(Into::into).collect()));
    }

    /// The host's builtin names, if the host declared them.
    pub fn host_builtins(&self) -> Option<&BTreeSet<String>> {
        self.host_builtins.as_deref()
    }

    /// Says which runtime hosts this environment: its name
    /// (`"Achronyme REPL"`) and its full version, of any length. Saves
    /// record them (`created_by` is `"{name} {version}"`), restores compare
    /// the version with the archive's. Without it, this crate's
    /// [`DEFAULT_RUNTIME_NAME`] and [`RUNTIME_VERSION`](crate::RUNTIME_VERSION).
    ///
    /// ```
    /// use achronyme_env::Environment;
    /// let mut env = Environment::new();
    /// assert_eq!(env.runtime_name(), "Achronyme REPL");
    /// env.set_runtime("Achronyme Notebook", "v2.3.0-beta.1+build.20250113");
    /// assert_eq!(env.runtime_version(), "v2.3.0-beta.1+build.20250113");
    /// ```
    pub fn set_runtime(&mut self, name: impl Into<String>, version: impl Into<String>) {
        self.runtime = Some(Arc::new((name.into(), version.into())));
    }

    /// The host runtime's name ([`Environment::set_runtime`]).
    pub fn runtime_name(&self) -> &str {
        self.runtime
            .as_ref()
            .map_or(DEFAULT_RUNTIME_NAME, |r| r.0.as_str())
    }

    /// The host runtime's version ([`Environment::set_runtime`]).
    pub fn runtime_version(&self) -> &str {
        self.runtime
            .as_ref()
            .map_or(RUNTIME_VERSION, |r| r.1.as_str())
    }

    /// Chooses where the builtins' warnings go (default
    /// [`WarningSink::Stderr`]).
    pub fn set_warning_sink(&mut self, sink: WarningSink) {
        self.sink = sink;
    }

    /// Where the builtins' warnings go.
    pub fn warning_sink(&self) -> WarningSink {
        self.sink
    }

    /// Emits a warning of `function` to the sink: standard error, or the
    /// list [`Environment::take_warnings`] drains.
    pub fn warn(&mut self, function: &'static str, message: impl Into<String>) {
        let w = Warning {
            function,
            message: message.into(),
        };
        match self.sink {
            WarningSink::Stderr => eprintln!("{w}"),
            WarningSink::Collect => self.warnings.push(w),
        }
    }

    /// The warnings collected since the last call, oldest first (always
    /// empty with [`WarningSink::Stderr`]).
    pub fn take_warnings(&mut self) -> Vec<Warning> {
        std::mem::take(&mut self.warnings)
    }

    /// True when the host declared its builtins and `name` is one of them.
    pub fn is_host_builtin(&self, name: &str) -> bool {
        self.host_builtins
            .as_ref()
            .is_some_and(|b| b.contains(name))
    }
}

/// The bound names, sorted (spec 3.3 `env_bindings`).
pub fn env_bindings(env: &Environment) -> Vec<String> {
    env.names()
}

/// The value of `name` (spec 3.3 `env_get`), resolved as the language
/// resolves a name: the binding, else the constant (`PI`). A name that is
/// neither is an error that suggests the closest one.
///
/// ```
/// use achronyme_env::*;
/// let mut env = Environment::new();
/// env.set("results", Value::Number(1.0));
/// assert_eq!(env_get(&env, "results").unwrap(), Value::Number(1.0));
/// let err = env_get(&env, "result").unwrap_err();
/// assert!(err.to_string().contains("did you mean \"results\""), "{err}");
/// env.set_constant("PI", Value::Number(std::f64::consts::PI));
/// assert_eq!(env_get(&env, "PI").unwrap(), Value::Number(std::f64::consts::PI));
/// ```
pub fn env_get(env: &Environment, name: &str) -> Result<Value> {
    env.get(name)
        .or_else(|| env.constant(name))
        .cloned()
        .ok_or_else(|| Error::Unbound {
            name: name.to_string(),
            suggestion: closest(name, env.iter().chain(env.constants()).map(|(n, _)| n)),
        })
}

/// Binds `name` to `value` (spec 3.3 `env_set`). The name must be one an
/// archive can store: not empty, no NUL, at most 4096 bytes.
pub fn env_set(env: &mut Environment, name: &str, value: Value) -> Result<()> {
    if let Some(reason) = check_name(name) {
        return Err(Error::InvalidName {
            name: name.chars().take(64).collect(),
            reason,
        });
    }
    env.set(name, value);
    Ok(())
}

/// Removes the binding `name` (spec 3.3 `env_remove`); true when it existed.
pub fn env_remove(env: &mut Environment, name: &str) -> bool {
    env.remove(name).is_some()
}

/// Removes every binding (spec 3.3 `env_clear`), only when `confirm` is
/// true; otherwise [`Error::ClearNotConfirmed`] and nothing changes.
/// Constants stay.
///
/// ```
/// use achronyme_env::*;
/// let mut env = Environment::new();
/// env.set("x", Value::Number(1.0));
/// assert!(matches!(env_clear(&mut env, false), Err(Error::ClearNotConfirmed)));
/// assert_eq!(env.len(), 1);
/// env_clear(&mut env, true).unwrap();
/// assert!(env.is_empty());
/// ```
pub fn env_clear(env: &mut Environment, confirm: bool) -> Result<()> {
    if !confirm {
        return Err(Error::ClearNotConfirmed);
    }
    env.clear();
    Ok(())
}

/// Why a name cannot be stored, if it cannot.
pub(crate) fn check_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("names must not be empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("names must be at most 4096 bytes")
    } else if name.contains('\0') {
        Some("names must not contain NUL")
    } else {
        None
    }
}
