//! Reading without restoring: `env_info` (spec 3.1) and `env_load_var`
//! (spec 8.3), each from the table of contents and the one blob it needs.

use std::path::Path;

use crate::archive::info::EnvInfo;
use crate::archive::reader::Archive;
use crate::error::Result;
use crate::value::Value;

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
