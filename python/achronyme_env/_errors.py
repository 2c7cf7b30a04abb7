"""The exceptions of achronyme_env: one base class and one class per kind of
failure. Every one carries the engine's message, which says what went wrong
and what to do next."""

from __future__ import annotations


class AchronymeError(Exception):
    """Base class of every error this package raises about an archive."""


class NotAnArchiveError(AchronymeError):
    """The file is not an ``.ach`` archive (wrong magic bytes), or the path
    names something that is not a regular file (a directory, a pipe)."""


class DamagedError(AchronymeError):
    """The archive is damaged: a checksum does not match, or a structure
    breaks a rule of the format. Other bindings may still load."""


class TruncatedError(DamagedError):
    """The file is shorter than its header says: it was cut short (an
    interrupted copy or download)."""


class NewerVersionError(AchronymeError):
    """The archive was written by a newer format version (or uses features)
    this build does not read: upgrade achronyme_env."""


class NotFoundError(AchronymeError, KeyError):
    """No binding of that name in the archive. Also a ``KeyError``, so
    ``archive[name]`` behaves as a mapping does."""

    def __str__(self) -> str:  # KeyError would show the message's repr
        return str(self.args[0]) if self.args else ""


class TooLargeError(AchronymeError):
    """Loading the value would take more memory than its budget
    (``max_decoded_bytes``), or a save would exceed ``max_file_size``."""


class ArchiveIOError(AchronymeError, OSError):
    """The operating system or the storage failed (a missing file, a
    permission, a failed read), or the file to save to already exists. Also
    an ``OSError``."""


class InvalidArgumentError(AchronymeError, ValueError):
    """The engine refused an argument: an option out of range, an invalid
    name or pattern, a value an archive cannot hold. Also a ``ValueError``."""


class AchronymeWarning(UserWarning):
    """A warning of a save: a binding skipped, a large value, a name
    pattern that matched nothing."""


# Shown as achronyme_env.DamagedError in tracebacks, where users import them.
for _cls in (
    AchronymeError,
    NotAnArchiveError,
    DamagedError,
    TruncatedError,
    NewerVersionError,
    NotFoundError,
    TooLargeError,
    ArchiveIOError,
    InvalidArgumentError,
    AchronymeWarning,
):
    _cls.__module__ = "achronyme_env"
del _cls
