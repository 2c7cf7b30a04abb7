//! Where an archive lives: a path on this machine, or the URL of an object
//! in a store (`s3://`, `gs://`, `az://`, `https://`, `file://`,
//! `memory://`).
//!
//! Every function that opens or saves an archive by name takes
//! `impl Into<Location>`, so paths keep working as before (`&Path`,
//! `PathBuf`, `&str`) and a string that starts with a scheme and `://`
//! names an object. A local file whose name really is `s3://...` is reached
//! through a [`Path`], never a string.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::archive::reader::Archive;
#[cfg(not(feature = "remote"))]
use crate::error::Error;
use crate::error::Result;

/// A local path or a URL, as the functions that open and save archives
/// take them.
///
/// ```
/// use std::path::Path;
/// use achronyme_env::Location;
/// assert_eq!(Location::from("work.ach"), Location::Path("work.ach".into()));
/// assert_eq!(Location::from("s3://bucket/work.ach"), Location::Url("s3://bucket/work.ach".into()));
/// assert!(Location::from(Path::new("s3://not-a-url")).as_path().is_some());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// A file on this machine.
    Path(PathBuf),
    /// An object in a store, by URL.
    Url(String),
}

impl Location {
    /// Parses `s`: a URL when it starts with a scheme of two or more
    /// letters, digits, `+`, `-` or `.` (starting with a letter) followed by
    /// `://`, a path otherwise (`C:\work.ach` stays a path).
    pub fn parse(s: &str) -> Location {
        match looks_like_url(s) {
            true => Location::Url(s.to_string()),
            false => Location::Path(PathBuf::from(s)),
        }
    }

    /// The path, when this is a local file.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Location::Path(p) => Some(p),
            Location::Url(_) => None,
        }
    }

    /// True for a URL.
    pub fn is_url(&self) -> bool {
        matches!(self, Location::Url(_))
    }
}

fn looks_like_url(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    scheme.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Path(p) => write!(f, "{}", p.display()),
            Location::Url(u) => f.write_str(u),
        }
    }
}

impl From<&str> for Location {
    fn from(s: &str) -> Self {
        Location::parse(s)
    }
}

impl From<String> for Location {
    fn from(s: String) -> Self {
        match looks_like_url(&s) {
            true => Location::Url(s),
            false => Location::Path(PathBuf::from(s)),
        }
    }
}

impl From<&String> for Location {
    fn from(s: &String) -> Self {
        Location::parse(s)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location::Path(p.to_path_buf())
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::Path(p)
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Self {
        Location::Path(p.clone())
    }
}

impl From<&Location> for Location {
    fn from(l: &Location) -> Self {
        l.clone()
    }
}

impl Archive {
    /// Opens the archive at `location`: a local file as [`Archive::open`]
    /// does (mapped), a URL as `Archive::open_url` does (ranged reads,
    /// default `RemoteOptions`: credentials and endpoint from the
    /// environment; both come with the `remote` feature). Without the
    /// feature a URL is [`Error::RemoteUnsupported`](crate::Error::RemoteUnsupported).
    ///
    /// ```
    /// use achronyme_env::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("w.ach");
    /// save_environment(&Environment::new(), &path, &SaveOptions::default()).unwrap();
    /// assert!(Archive::open_location(&path).unwrap().is_empty());
    /// ```
    pub fn open_location(location: impl Into<Location>) -> Result<Archive> {
        match location.into() {
            Location::Path(p) => Archive::open(p),
            Location::Url(url) => open_url(&url),
        }
    }
}

#[cfg(feature = "remote")]
fn open_url(url: &str) -> Result<Archive> {
    Archive::open_url(url)
}

#[cfg(not(feature = "remote"))]
fn open_url(url: &str) -> Result<Archive> {
    Err(unsupported(url))
}

/// The error for a URL in a build without the `remote` feature.
#[cfg(not(feature = "remote"))]
pub(crate) fn unsupported(url: &str) -> Error {
    Error::RemoteUnsupported {
        url: url.to_string(),
        reason: "this build has no object store support; build achronyme-env with \
                 the `remote` feature, or download the object and give its path"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        for url in [
            "s3://b/k.ach",
            "gs://b/k",
            "az://c/k",
            "https://h/k",
            "memory:///k",
            "file:///tmp/k",
            "s3a://b/k",
        ] {
            assert_eq!(Location::from(url), Location::Url(url.into()), "{url}");
        }
        for path in [
            "k.ach",
            "/tmp/k.ach",
            "C:\\\\k.ach",
            "c://k",
            "dir/s3:/k",
            "://k",
            "1s://k",
            "a b://k",
        ] {
            assert_eq!(Location::from(path), Location::Path(path.into()), "{path}");
        }
        assert_eq!(
            Location::from(String::from("s3://b/k")).to_string(),
            "s3://b/k"
        );
    }
}
