//! The environment: named bindings plus the constants section (spec 2.1).

use std::collections::BTreeMap;

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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Environment {
    bindings: BTreeMap<String, Value>,
    constants: BTreeMap<String, Value>,
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
}
