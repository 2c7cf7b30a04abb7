"""Open Achronyme ``.ach`` archives from Python.

``open(path)`` reads the header and the table of contents only;
``archive[name]`` loads one binding, and an uncompressed f64 or complex
tensor comes back as a read-only ``numpy.ndarray`` that borrows the mapped
file (no copy) and keeps the mapping alive on its own. ``save(path,
mapping)`` writes a dict of NumPy arrays and Python values, streaming
C-contiguous float64 and complex128 arrays from their own memory.

See the README's "Python" section for the value mapping and a session.
"""

from ._errors import (
    AchronymeError,
    AchronymeWarning,
    ArchiveIOError,
    DamagedError,
    InvalidArgumentError,
    NewerVersionError,
    NotAnArchiveError,
    NotFoundError,
    TooLargeError,
    TruncatedError,
)
from ._native import Archive, TensorMemory, open, save
from ._values import Builtin, Edge, Ref

__all__ = [
    "AchronymeError",
    "AchronymeWarning",
    "Archive",
    "ArchiveIOError",
    "Builtin",
    "DamagedError",
    "Edge",
    "InvalidArgumentError",
    "NewerVersionError",
    "NotAnArchiveError",
    "NotFoundError",
    "Ref",
    "TensorMemory",
    "TooLargeError",
    "TruncatedError",
    "open",
    "save",
]
