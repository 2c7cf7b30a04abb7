//! Engine errors as Python exceptions: one class per kind, defined in
//! `achronyme_env/_errors.py`, each carrying the engine's message.

use achronyme_env::{Error, RemoteErrorKind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The exception classes of `achronyme_env._errors`, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `NotAnArchiveError`.
    NotAnArchive,
    /// `DamagedError`.
    Damaged,
    /// `TruncatedError` (a `DamagedError`).
    Truncated,
    /// `NewerVersionError`.
    NewerVersion,
    /// `NotFoundError` (a `KeyError`).
    NotFound,
    /// `TooLargeError`.
    TooLarge,
    /// `ArchiveIOError` (an `OSError`).
    Io,
    /// `InvalidArgumentError` (a `ValueError`).
    InvalidArgument,
    /// `AchronymeError`, the base class.
    Other,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::NotAnArchive => "NotAnArchiveError",
            Kind::Damaged => "DamagedError",
            Kind::Truncated => "TruncatedError",
            Kind::NewerVersion => "NewerVersionError",
            Kind::NotFound => "NotFoundError",
            Kind::TooLarge => "TooLargeError",
            Kind::Io => "ArchiveIOError",
            Kind::InvalidArgument => "InvalidArgumentError",
            Kind::Other => "AchronymeError",
        }
    }

    /// The class, imported once per process.
    pub fn class<'py>(self, py: Python<'py>) -> PyResult<&'py Bound<'py, PyType>> {
        static CLASSES: [PyOnceLock<Py<PyType>>; 9] = [const { PyOnceLock::new() }; 9];
        CLASSES[self as usize].import(py, "achronyme_env._errors", self.class_name())
    }

    /// An exception of this kind with `message`.
    pub fn err(self, message: String) -> PyErr {
        Python::attach(|py| match self.class(py) {
            Ok(class) => PyErr::from_type(class.clone(), (message,)),
            Err(e) => e,
        })
    }
}

/// Which kind of exception an engine error is.
pub fn kind_of(e: &Error) -> Kind {
    match e {
        Error::NotAnArchive { .. } | Error::NotAFile { .. } => Kind::NotAnArchive,
        Error::Truncated { .. } => Kind::Truncated,
        Error::TrailingBytes { .. }
        | Error::UnknownVersion { .. }
        | Error::ReservedNotZero { .. }
        | Error::TocChecksum
        | Error::InvalidToc { .. }
        | Error::InvalidMetadata { .. }
        | Error::InvalidFrame { .. }
        | Error::ChecksumMismatch { .. }
        | Error::UnsealedDigests
        | Error::InvalidValue { .. }
        | Error::CorruptChunk { .. }
        | Error::VerificationFailed(_) => Kind::Damaged,
        Error::NewerVersion { .. } | Error::UnknownFlags { .. } => Kind::NewerVersion,
        Error::NoSuchBinding { .. } => Kind::NotFound,
        Error::TooLarge { .. } | Error::CopyTooLarge { .. } | Error::SizeLimitExceeded { .. } => {
            Kind::TooLarge
        }
        Error::Io { .. }
        | Error::SourceRead { .. }
        | Error::AlreadyExists { .. }
        | Error::InvalidSavePath { .. } => Kind::Io,
        // A store's failure is I/O (nothing is known about the archive),
        // but for a URL or option the store cannot take.
        Error::Remote(f) if f.kind == RemoteErrorKind::Config => Kind::InvalidArgument,
        Error::Remote(_) => Kind::Io,
        Error::RemoteUnsupported { .. } => Kind::InvalidArgument,
        // Nesting past the limit is a property of the value: refused when
        // saved, damage when read (an archive never holds one).
        Error::TooDeep { .. }
        | Error::InvalidName { .. }
        | Error::Unsaveable { .. }
        | Error::CyclicReference { .. }
        | Error::ValueChanged { .. }
        | Error::ShapeMismatch { .. }
        | Error::InvalidPattern { .. }
        | Error::InvalidOption { .. } => Kind::InvalidArgument,
        _ => Kind::Other,
    }
}

/// The Python exception for an engine error: its kind's class, the
/// engine's message.
pub fn to_py(e: Error) -> PyErr {
    kind_of(&e).err(e.to_string())
}

/// [`to_py`] for an error met while loading: there a value nested too
/// deep can only come from a damaged or hostile file.
pub fn load_to_py(e: Error) -> PyErr {
    match e {
        Error::TooDeep { .. } => Kind::Damaged.err(e.to_string()),
        e => to_py(e),
    }
}

/// `achronyme_env.AchronymeWarning`, imported once.
pub fn warning_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static WARNING: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    WARNING.import(py, "achronyme_env._errors", "AchronymeWarning")
}

/// `err` of the same class, its message prefixed with `context` (which
/// binding it is about). An exception whose class cannot be called with one
/// message is returned as it is.
pub fn with_context(py: Python<'_>, err: PyErr, context: &str) -> PyErr {
    let msg = format!("{context}: {}", err.value(py));
    match err.get_type(py).call1((msg,)) {
        Ok(exc) => PyErr::from_value(exc),
        Err(_) => err,
    }
}
