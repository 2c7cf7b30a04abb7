//! The environment: named bindings plus the constants section (spec 2.1),
//! and the environment functions of spec 3.3 ([`env_bindings`],
//! [`env_get`], [`env_set`], [`env_remove`], [`env_clear`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::layout::MAX_NAME_LEN;
use crate::suggest::closest;
use crate::value::Value;

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
#[derive(Clone, Debug, Default)]
pub struct Environment {
    bindings: BTreeMap<String, Value>,
    constants: BTreeMap<String, Value>,
    host_builtins: Option<Arc<BTreeSet<String>>>,
}

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

/// The value bound to `name` (spec 3.3 `env_get`); an unbound name is an
/// error that suggests the closest bound name.
///
/// ```
/// use achronyme_env::*;
/// let mut env = Environment::new();
/// env.set("results", Value::Number(1.0));
/// assert_eq!(env_get(&env, "results").unwrap(), Value::Number(1.0));
/// let err = env_get(&env, "result").unwrap_err();
/// assert!(err.to_string().contains("did you mean \"results\""), "{err}");
/// ```
pub fn env_get(env: &Environment, name: &str) -> Result<Value> {
    env.get(name).cloned().ok_or_else(|| Error::Unbound {
        name: name.to_string(),
        suggestion: closest(name, env.iter().map(|(n, _)| n)),
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
