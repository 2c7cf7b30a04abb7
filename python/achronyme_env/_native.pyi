"""Type stubs of the compiled part of achronyme_env (see __init__.py)."""

from __future__ import annotations

import os
from typing import (
    Any, Dict, Iterator, List, Literal, Mapping, Optional, Sequence, Tuple, TypedDict, Union, final,
)

import numpy as np

from ._values import Builtin, Edge, Ref

Section = Literal["bindings", "constants", "functions"]
PathOrUrl = Union[str, os.PathLike[str]]

#: What a binding loads as: None, bool, float, complex, str, list, dict,
#: numpy.ndarray (float64 or complex128), Builtin, Edge or Ref.
Value = Any

class Info(TypedDict):
    """The spec's env_info record."""

    version: str
    created_at: str
    created_timestamp: int
    created_by: str
    platform: str
    achronyme_version: str
    num_bindings: int
    num_constants: int
    num_functions: int
    compressed: bool
    codec: Literal["none", "zstd", "lz4"]
    checksum: Literal["xxh3", "sha256"]
    compressed_blobs: int
    storage_blobs: int
    storage_bytes: int
    shared_entries: int
    file_size: int
    description: Optional[str]
    tags: List[str]
    custom: Dict[str, str]
    bindings: List[str]

class Entry(TypedDict):
    """One binding as the table of contents describes it."""

    name: str
    section: Section
    type: str
    shape: Tuple[int, ...]
    stored_bytes: int
    raw_bytes: int
    codec: Literal["none", "zstd", "lz4"]

class Damage(TypedDict):
    name: str
    section: Section
    error: str

class VerifyReport(TypedDict):
    ok: bool
    bindings_checked: int
    bytes_hashed: int
    damaged: List[Damage]
    nonzero_padding: List[int]
    closing_checksum_ok: bool
    read_errors: List[str]
    table: Optional[str]

class Skipped(TypedDict):
    name: str
    reason: str

class SaveReport(TypedDict):
    path: str
    bytes: int
    written: List[str]
    constants_written: List[str]
    skipped: List[Skipped]
    filtered_out: List[str]
    not_found: List[str]
    warnings: List[str]
    arrays_borrowed: int
    arrays_copied: int
    bytes_encoded: int
    bytes_hashed: int
    bytes_copied: int
    write_seconds: float
    sync_seconds: float

@final
class TensorMemory:
    """The base of a read-only array that borrows an archive's mapping:
    holds the engine's storage, and with it the mapping, while the array
    lives."""

    @property
    def nbytes(self) -> int: ...
    @property
    def mapped(self) -> bool:
        """True when the elements are pages of the file mapping."""

@final
class Archive:
    """An open .ach archive, a read-only mapping from binding names to
    values, read lazily.

    ``archive[name]`` checks every byte it decodes, but not the elements of
    an uncompressed tensor, which it returns unread as a read-only view of
    the mapped file; ``get(name)`` (``verify=True``) checks those too, and
    ``verify()`` the whole file.
    """

    @property
    def location(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def __getitem__(self, name: str, /) -> Value:
        """The binding ``name``; a raw tensor as an unchecked read-only view.
        Raises NotFoundError (a KeyError) when absent."""
    def get(
        self,
        name: str,
        verify: bool = True,
        *,
        section: Section = "bindings",
        max_decoded_bytes: int = 4 << 30,
    ) -> Value:
        """The binding ``name`` of ``section``, its bytes checked first
        (``verify``); at most ``max_decoded_bytes`` of memory (TooLargeError)."""
    def names(self, section: Section = "bindings") -> List[str]:
        """The names of a section, sorted by their UTF-8 bytes."""
    def keys(self) -> List[str]: ...
    def __len__(self) -> int: ...
    def __contains__(self, name: object, /) -> bool: ...
    def __iter__(self) -> Iterator[str]: ...
    def info(self) -> Info:
        """The spec's env_info record, from the table of contents alone."""
    def entries(self) -> List[Entry]:
        """Every binding as the table of contents describes it."""
    def entry(self, name: str, section: Section = "bindings") -> Entry:
        """One binding as the table of contents describes it."""
    def verify(self, *, max_decoded_bytes: int = 4 << 30) -> VerifyReport:
        """Checks every byte; raises DamagedError (with ``.report``) when damaged."""
    def close(self) -> None:
        """Releases the archive; arrays already loaded stay valid."""
    def __enter__(self) -> Archive: ...
    def __exit__(self, *args: object) -> bool: ...

def open(path_or_url: PathOrUrl, /) -> Archive:
    """Opens an archive, reading its header and table of contents only."""

def save(
    path_or_url: PathOrUrl,
    mapping: Mapping[str, Value],
    /,
    *,
    constants: Optional[Mapping[str, Value]] = None,
    include_constants: bool = True,
    include_functions: bool = False,
    include_builtins: bool = False,
    exclude: Optional[Sequence[str]] = None,
    include_only: Optional[Sequence[str]] = None,
    compress: bool = True,
    compression_level: Optional[int] = None,
    codec: Literal["zstd", "lz4", "none"] = "zstd",
    filters: bool = True,
    description: Optional[str] = None,
    tags: Optional[Sequence[str]] = None,
    custom: Optional[Dict[str, str]] = None,
    allow_overwrite: bool = False,
    max_file_size: Optional[int] = None,
    warn_large_values: bool = True,
    strict: bool = False,
    durable: bool = True,
    checksum: Literal["xxh3", "sha256"] = "xxh3",
) -> SaveReport:
    """Writes ``mapping`` (and ``constants``) as a new archive, atomically.
    C-contiguous float64/complex128 arrays are streamed without a copy;
    other arrays are converted once."""

def _bench_names(archive: Archive, rounds: int, what: Literal["engine", "strings"]) -> int: ...

__all__ = ["Archive", "TensorMemory", "_bench_names", "open", "save"]
