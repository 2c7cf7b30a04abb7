//! The Achronyme environment and the spec's operations on it: the
//! environment itself ([`environment`]), choosing names by pattern
//! ([`select`]), saving ([`save`]), restoring ([`restore`]), `env_info` and
//! lazy loads ([`load`]), snapshots ([`snapshot`]) and the language builtins
//! ([`builtins`]).

pub mod builtins;
pub mod environment;
pub mod load;
pub mod restore;
pub mod save;
pub mod select;
pub mod snapshot;
pub mod testdata;
