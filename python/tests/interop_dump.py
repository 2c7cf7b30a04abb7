"""The canonical dump of values and archives, as python/examples/interop.rs
writes it from Rust: two dumps are equal only when the values are equal bit
for bit (every float as its 64 bits, every string as its UTF-8 bytes)."""

from __future__ import annotations

import struct

import numpy as np

import achronyme_env as ae


def hx(s: str) -> str:
    return s.encode("utf-8").hex()


def bits(x: float) -> str:
    return struct.pack(">d", x).hex()


def shape(a: np.ndarray) -> str:
    return "x".join(str(d) for d in a.shape)


def element_bits(a: np.ndarray, dtype: str) -> str:
    flat = np.ascontiguousarray(a, dtype=dtype).reshape(-1)
    return "".join(f"{u:016x}" for u in flat.view("<u8").tolist())


def record(d: dict) -> str:
    return "rec{" + ",".join(f"{hx(k)}={dump_value(v)}" for k, v in d.items()) + "}"


def dump_value(v) -> str:
    """The dump of a Python value as it is saved (ints and float32 as
    float64, tuples as vectors, other arrays converted as save converts
    them) or as it was loaded."""
    if v is None:
        return "null"
    if isinstance(v, (bool, np.bool_)):
        return "bool:true" if v else "bool:false"
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "c":
            return f"ctensor({shape(v)}):" + element_bits(v, "<c16")
        return f"tensor({shape(v)}):" + element_bits(v, "<f8")
    if isinstance(v, (int, float, np.integer, np.floating)):
        return "num:" + bits(float(v))
    if isinstance(v, (complex, np.complexfloating)):
        c = complex(v)
        return f"complex:{bits(c.real)},{bits(c.imag)}"
    if isinstance(v, str):
        return "str:" + hx(v)
    if isinstance(v, (list, tuple)):
        return "vec[" + ",".join(dump_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return record(v)
    if isinstance(v, ae.Builtin):
        return "builtin:" + hx(v.name)
    if isinstance(v, ae.Edge):
        d = "true" if v.directed else "false"
        return f"edge({hx(v.source)},{hx(v.target)},{d},{record(v.properties)})"
    if isinstance(v, ae.Ref):
        return f"ref({dump_value(v.value)})"
    raise TypeError(f"no dump for {type(v)}")


def dump_archive(path, *, indexed: bool = False) -> str:
    """The dump of every binding and constant of the archive at `path`,
    loaded with get() (or, with `indexed`, bindings with archive[name])."""
    with ae.open(path) as archive:
        info = archive.info()
        codecs = {(e["section"], e["name"]): e["codec"] for e in archive.entries()}
        desc = info["description"]
        lines = [
            "description " + ("-" if desc is None else hx(desc)),
            "tags " + ",".join(hx(t) for t in info["tags"]),
            "custom " + ",".join(f"{hx(k)}={hx(v)}" for k, v in info["custom"].items()),
        ]
        for section in ("bindings", "constants"):
            for name in archive.names(section):
                if indexed and section == "bindings":
                    value = archive[name]
                else:
                    value = archive.get(name, section=section)
                codec = codecs[(section, name)]
                lines.append(f"{section} {hx(name)} {codec} {dump_value(value)}")
    return "\n".join(lines) + "\n"


def expected_dump(
    bindings: dict,
    constants: dict | None = None,
    *,
    codecs=None,
    description=None,
    tags=(),
    custom=None,
) -> str:
    """The dump an archive saved from `bindings` and `constants` must give
    (names sorted by their UTF-8 bytes, as the table of contents sorts
    them). `codecs(section, name)` gives each entry's codec."""
    lines = [
        "description " + ("-" if description is None else hx(description)),
        "tags " + ",".join(hx(t) for t in tags),
        "custom " + ",".join(f"{hx(k)}={hx(v)}" for k, v in (custom or {}).items()),
    ]
    for section, values in (("bindings", bindings), ("constants", constants or {})):
        for name in sorted(values, key=lambda n: n.encode("utf-8")):
            codec = codecs(section, name) if codecs else "none"
            lines.append(f"{section} {hx(name)} {codec} {dump_value(values[name])}")
    return "\n".join(lines) + "\n"
