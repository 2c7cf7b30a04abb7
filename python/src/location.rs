//! Where an archive is: the one place a Python argument (a path, later a
//! URL) becomes an open [`Archive`] or the destination of a save. Every
//! `open` and `save` of the package goes through [`open_location`] and
//! [`save_location`], so object storage is wired here and nowhere else.

use std::path::PathBuf;

use achronyme_env::{Archive, Environment, Error, SaveOptions, SaveReport};
use pyo3::prelude::*;
use pyo3::types::PyString;

/// An archive's location as the caller gave it.
#[derive(Clone, Debug)]
pub enum Location {
    /// A local file.
    Path(PathBuf),
    /// A URL (`s3://bucket/key`, `https://...`).
    Url(String),
}

impl Location {
    /// A `str` with a scheme (`s3://...`) is a URL; any other `str` or
    /// `os.PathLike` is a local path.
    pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Location> {
        if let Ok(s) = obj.cast::<PyString>() {
            let s = s.to_str()?;
            if is_url(s) {
                return Ok(Location::Url(s.to_string()));
            }
            return Ok(Location::Path(PathBuf::from(s)));
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

    /// The location as the user wrote it, for messages and `repr`.
    pub fn display(&self) -> String {
        match self {
            Location::Path(p) => p.display().to_string(),
            Location::Url(u) => u.clone(),
        }
    }
}

/// `scheme://...`, with a scheme of letters, digits, `+`, `-`, `.` (RFC
/// 3986) at least two long, so a Windows drive (`C:/`) stays a path.
fn is_url(s: &str) -> bool {
    match s.split_once("://") {
        Some((scheme, _)) => {
            scheme.len() >= 2
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

fn url_unsupported(url: &str) -> Error {
    Error::InvalidOption {
        option: "path_or_url",
        reason: format!(
            "{url:?} is a URL, and this build of achronyme_env opens local files only; \
             download the archive and open its path"
        ),
    }
}

/// Opens the archive at `location`: a local file is mapped lazily
/// ([`Archive::open`]).
pub fn open_location(location: &Location) -> Result<Archive, Error> {
    match location {
        Location::Path(p) => Archive::open(p),
        Location::Url(u) => Err(url_unsupported(u)),
    }
}

/// Saves `env` to `location` with `options` (a local file: a temporary
/// beside it, renamed over it).
pub fn save_location(
    location: &Location,
    env: &Environment,
    options: &SaveOptions,
) -> Result<SaveReport, Error> {
    match location {
        Location::Path(p) => achronyme_env::save_environment(env, p, options),
        Location::Url(u) => Err(url_unsupported(u)),
    }
}
