"""Python classes for the Achronyme values that have no built-in Python type.

Numbers, booleans, strings, complex numbers, vectors, records and tensors map
to ``float``, ``bool``, ``str``, ``complex``, ``list``, ``dict`` and
``numpy.ndarray``; the three classes here stand for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict


@dataclass(frozen=True)
class Builtin:
    """A reference to a builtin function of the Achronyme runtime (``sin``,
    ``map``), stored by name. Archives cannot hold user lambdas."""

    name: str


@dataclass
class Edge:
    """A graph edge: Achronyme's ``from``, ``to``, ``directed`` and
    ``properties`` (``from`` is a Python keyword, so the two ends are
    ``source`` and ``target``)."""

    source: str
    target: str
    directed: bool = True
    properties: Dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class Ref:
    """A ``mut`` reference: a mutable cell holding ``value``.

    Archives store the value a reference holds (spec 4.2). A save keeps
    references shared where the same ``Ref`` object appears twice; one that
    contains itself is skipped with a warning (or, with ``strict=True``,
    refused), as in the engine.
    """

    value: Any


for _cls in (Builtin, Edge, Ref):
    _cls.__module__ = "achronyme_env"
del _cls
