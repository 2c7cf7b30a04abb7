"""Archives written by Rust read in Python, and archives written by Python
read by Rust, bit for bit: NaN payloads, -0.0, infinities, complex numbers,
every value type, every save option."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

import achronyme_env as ae
from conftest import run_interop
from interop_dump import dump_archive, dump_value, expected_dump


def f64(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


NAN_PAYLOAD = f64(0x7FF8_0000_DEAD_BEEF)
NEG_NAN = f64(0xFFF8_0000_0000_0001)
SIGNALING_NAN = f64(0x7FF4_0000_0000_0001)


def every_value() -> dict:
    """One binding of each kind of Python value save accepts."""
    return {
        "null": None,
        "yes": True,
        "no": False,
        "int": 42,
        "big_int": 2**53,
        "float": 1.5,
        "neg_zero": -0.0,
        "inf": math.inf,
        "ninf": -math.inf,
        "nan_payload": NAN_PAYLOAD,
        "neg_nan": NEG_NAN,
        "snan": SIGNALING_NAN,
        "tiny": 5e-324,
        "text": "héllo, wörld ✓",
        "empty_text": "",
        "z": complex(1, -2),
        "z_special": complex(NAN_PAYLOAD, -0.0),
        "vector": [1, "two", [False, None], np.array([[1.0, 2.0], [3.0, 4.0]])],
        "tuple": (1.0, (2.0,)),
        "empty_vector": [],
        "matrix": np.arange(6.0).reshape(2, 3),
        "specials": np.array([NAN_PAYLOAD, NEG_NAN, SIGNALING_NAN, -0.0, math.inf, -math.inf]),
        "empty": np.zeros((0, 4)),
        "scalar": np.array(3.25),
        "cube": np.arange(24.0).reshape(2, 3, 4),
        "spectrum": np.array([1 + 0j, -1j, complex(NAN_PAYLOAD, -0.0)]),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided": np.arange(10.0)[::3],
        "transposed": np.arange(6.0).reshape(2, 3).T,
        "f32": np.array([1.5, -2.25, np.nan], dtype=np.float32),
        "f16": np.array([0.5], dtype=np.float16),
        "i64": np.array([1, -2, 2**53]),
        "u8": np.array([0, 255], dtype=np.uint8),
        "bools": np.array([True, False]),
        "c64": np.array([1 + 2j, -0.0 - 1j], dtype=np.complex64),
        "big_endian": np.array([1.0, -0.0, NAN_PAYLOAD], dtype=">f8"),
        "big_endian_c": np.array([1 - 1j], dtype=">c16"),
        "np_scalars": [np.float32(0.5), np.int16(-3), np.bool_(True), np.complex64(1 - 1j), np.float64(2.5)],
        "record": {"name": "model A", "coef": np.array([1.0, -0.0, math.inf]), "inner": {"weight": 2.5}},
        "empty_record": {},
        "road": ae.Edge("A", "B", True, {"weight": 2.5, "label": "road"}),
        "undirected": ae.Edge("x", "y", False),
        "sin_ref": ae.Builtin("sin"),
        "counter": ae.Ref(7.0),
        "nested_ref": ae.Ref([ae.Ref(1.0), {"k": ae.Ref("s")}]),
        "ünïcode name": 1.0,
        "deep": [[[[[[[[1.0]]]]]]]],
    }


CONSTANTS = {"PI": math.pi, "E": math.e}


@pytest.mark.parametrize(
    "name",
    ["every_type.ach", "every_type_raw.ach", "large_zstd.ach", "large_lz4.ach", "large_nofilters.ach"],
)
def test_rust_archives_read_in_python_bit_for_bit(interop, rust_archives, name):
    path = rust_archives / name
    rust = run_interop(interop, "dump", path)
    assert dump_archive(path) == rust
    assert dump_archive(path, indexed=True) == rust


def test_the_rust_archives_cover_every_type_and_codec(interop, rust_archives):
    # What the test above compares must include every type and codec, or
    # it proves less than it says.
    rust = run_interop(interop, "dump", rust_archives / "every_type.ach")
    for kind in ("null", "num:", "bool:", "str:", "complex:", "vec[", "tensor(", "ctensor(",
                 "rec{", "builtin:", "edge(", "ref(", "7ff80000deadbeef", "num:8000000000000000"):
        assert kind in rust, kind
    for name, codec in (("large_zstd.ach", " zstd "), ("large_lz4.ach", " lz4 ")):
        assert codec in run_interop(interop, "dump", rust_archives / name)


def test_python_archives_read_by_rust_bit_for_bit(interop, tmp_path):
    values = every_value()
    path = tmp_path / "py.ach"
    report = ae.save(path, values, constants=CONSTANTS, compress=False)
    assert report["written"] == sorted(values, key=lambda n: n.encode())
    assert report["constants_written"] == sorted(CONSTANTS)
    rust = run_interop(interop, "dump", path)
    assert rust == expected_dump(values, CONSTANTS)
    # And Python reads back what Rust reads.
    assert dump_archive(path) == rust


def test_special_floats_survive_both_ways_exactly(tmp_path):
    values = {"nan": NAN_PAYLOAD, "snan": SIGNALING_NAN, "neg_zero": -0.0,
              "arr": np.array([NAN_PAYLOAD, SIGNALING_NAN, -0.0])}
    ae.save(tmp_path / "s.ach", values)
    with ae.open(tmp_path / "s.ach") as a:
        for k in ("nan", "snan", "neg_zero"):
            assert struct.pack("<d", a[k]) == struct.pack("<d", values[k])
        assert a["arr"].tobytes() == values["arr"].tobytes()


COMPRESSIBLE = np.sin(np.linspace(0, 40, 200_000)).reshape(400, 500)


@pytest.mark.parametrize(
    "options, asked, stored",
    [
        ({}, "zstd", "zstd"),
        ({"compress": True, "compression_level": 19}, "zstd", "zstd"),
        ({"codec": "lz4"}, "lz4", "lz4"),
        ({"codec": "none"}, "none", "none"),
        ({"compress": False}, "none", "none"),
        ({"compress": False, "codec": "lz4"}, "none", "none"),
        # Without the float filters zstd cannot shrink a sine wave by an
        # eighth, so it is stored raw.
        ({"filters": False}, "zstd", "none"),
    ],
)
def test_codec_options_reach_the_file_and_rust_reads_it(interop, tmp_path, options, asked, stored):
    values = {"wave": COMPRESSIBLE, "label": "x"}
    path = tmp_path / "c.ach"
    ae.save(path, values, **options)
    codecs = lambda section, name: stored if name == "wave" else "none"  # noqa: E731
    rust = run_interop(interop, "dump", path)
    assert rust == expected_dump(values, codecs=codecs)
    assert ae.open(path).info()["codec"] == asked


def test_compression_level_and_filters_change_the_bytes(tmp_path):
    sizes = {}
    for key, opts in {"1": {"compression_level": 1}, "19": {"compression_level": 19},
                      "nofilters": {"filters": False}}.items():
        ae.save(tmp_path / f"{key}.ach", {"wave": COMPRESSIBLE}, **opts)
        sizes[key] = (tmp_path / f"{key}.ach").stat().st_size
    assert sizes["19"] < sizes["1"]
    assert sizes["1"] < sizes["nofilters"]


def test_metadata_options_reach_rust(interop, tmp_path):
    path = tmp_path / "m.ach"
    values = {"x": 1.0}
    custom = {"owner": "lab-a", "ünï": "cödé"}
    ae.save(path, values, description="Final results from experiment A",
            tags=["experiment_a", "production"], custom=custom)
    rust = run_interop(interop, "dump", path)
    assert rust == expected_dump(values, description="Final results from experiment A",
                                 tags=["experiment_a", "production"], custom=custom)
    info = ae.open(path).info()
    assert info["description"] == "Final results from experiment A"
    assert info["tags"] == ["experiment_a", "production"]
    assert info["custom"] == custom


def test_selection_options_reach_rust(interop, tmp_path):
    values = {"data": 1.0, "results": 2.0, "temp_a": 3.0, "temp_b": 4.0, "debug_1": 5.0}
    path = tmp_path / "sel.ach"
    with pytest.warns(ae.AchronymeWarning, match="missing"):
        report = ae.save(path, values, constants=CONSTANTS, include_only=["data", "temp_*", "missing"],
                         exclude=["temp_b"], include_constants=False)
    assert report["written"] == ["data", "temp_a"]
    assert report["not_found"] == ["missing"]
    assert sorted(report["filtered_out"]) == ["debug_1", "results", "temp_b"]
    kept = {k: values[k] for k in ("data", "temp_a")}
    assert run_interop(interop, "dump", path) == expected_dump(kept)


def test_builtin_options_keep_builtins(interop, tmp_path):
    # There is no host runtime here whose own builtins could be left out:
    # a Builtin is data and is saved whatever include_builtins says.
    for flag in (True, False):
        path = tmp_path / f"b{flag}.ach"
        values = {"sin": ae.Builtin("sin"), "f": ae.Builtin("map")}
        ae.save(path, values, include_builtins=flag, include_functions=flag)
        assert run_interop(interop, "dump", path) == expected_dump(values)


def test_dump_value_distinguishes_what_it_must():
    # The comparison above is only as strong as the dump.
    assert dump_value(0.0) != dump_value(-0.0)
    assert dump_value(NAN_PAYLOAD) != dump_value(math.nan)
    assert dump_value(np.array([1.0, 2.0])) != dump_value(np.array([[1.0, 2.0]]))
    assert dump_value(np.array([1.0])) != dump_value(np.array([1 + 0j]))
    assert dump_value(True) != dump_value(1.0)
