//! Where an archive is: the one place a Python argument (a path or a URL)
//! becomes an open [`Archive`] or the destination of a save. Every `open`
//! and `save` of the package goes through [`open_location`] and
//! [`save_location`]; the engine's [`Location`] decides what is a URL, so
//! Python and Rust agree on it.

use std::path::PathBuf;

use achronyme_env::{Archive, Environment, Error, SaveOptions, SaveReport};
use pyo3::prelude::*;
use pyo3::types::PyString;

pub use achronyme_env::Location;

/// A `str` with a scheme (`s3://...`) is a URL; any other `str` or
/// `os.PathLike` is a local path (so a file really named `s3://x` is
/// reached through `pathlib.Path`).
pub fn location_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Location> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Location::parse(s.to_str()?));
    }
    let path: PathBuf = obj.extract().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "expected a path (str or os.PathLike) or a URL, got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "an object".into())
        ))
    })?;
    Ok(Location::Path(path))
}

/// Opens the archive at `location`: a local file is mapped lazily, an
/// object in a store is read with ranged requests (credentials and
/// endpoint from the store's usual environment variables).
pub fn open_location(location: &Location) -> Result<Archive, Error> {
    Archive::open_location(location.clone())
}

/// Saves `env` to `location` with `options`: a local file through a
/// temporary beside it renamed over it, an object through an upload that
/// appears whole or not at all.
pub fn save_location(
    location: &Location,
    env: &Environment,
    options: &SaveOptions,
) -> Result<SaveReport, Error> {
    achronyme_env::save_environment(env, location.clone(), options)
}
