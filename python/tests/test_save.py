"""save(): what each Python value becomes, the options, and the errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import achronyme_env as ae


def roundtrip(tmp_path, value, **opts):
    p = tmp_path / "r.ach"
    ae.save(p, {"v": value}, allow_overwrite=True, **opts)
    with ae.open(p) as a:
        return a["v"], a.entry("v")["type"]


@pytest.mark.parametrize(
    "value, expected, type_name",
    [
        (None, None, "Null"),
        (True, True, "Boolean"),
        (3, 3.0, "Number"),
        (-(2**53), -(2.0**53), "Number"),
        (2.5, 2.5, "Number"),
        (np.float32(0.5), 0.5, "Number"),
        (np.int64(7), 7.0, "Number"),
        (np.bool_(False), False, "Boolean"),
        (1 - 2j, 1 - 2j, "Complex"),
        (np.complex64(1j), 1j, "Complex"),
        ("text", "text", "String"),
        ([1, "a"], [1.0, "a"], "Vector"),
        ((1, 2), [1.0, 2.0], "Vector"),
        ({"b": 1, "a": 2}, {"b": 1.0, "a": 2.0}, "Record"),
        (ae.Builtin("cos"), ae.Builtin("cos"), "Function"),
        (ae.Edge("a", "b", False, {"w": 1}), ae.Edge("a", "b", False, {"w": 1.0}), "Edge"),
        (ae.Ref([1.0]), ae.Ref([1.0]), "MutableRef"),
    ],
)
def test_value_mapping(tmp_path, value, expected, type_name):
    got, t = roundtrip(tmp_path, value)
    assert t == type_name
    assert got == expected and type(got) is type(expected)


def test_record_field_order_is_kept(tmp_path):
    got, _ = roundtrip(tmp_path, {"z": 1.0, "a": 2.0, "m": 3.0})
    assert list(got) == ["z", "a", "m"]


@pytest.mark.parametrize(
    "dtype, kind",
    [("f8", "Tensor"), ("f4", "Tensor"), ("f2", "Tensor"), ("i1", "Tensor"), ("u8", "Tensor"),
     ("?", "Tensor"), ("c16", "ComplexTensor"), ("c8", "ComplexTensor"), (">f8", "Tensor")],
)
def test_array_dtypes(tmp_path, dtype, kind):
    a = np.arange(6).reshape(2, 3).astype(dtype)
    got, t = roundtrip(tmp_path, a)
    assert t == kind
    assert got.dtype == (np.complex128 if kind == "ComplexTensor" else np.float64)
    assert np.array_equal(got, a.astype(got.dtype))


@pytest.mark.parametrize("value", [np.array(["a"]), np.array([object()]), np.array([1], dtype="M8[s]"),
                                   np.zeros(2, dtype=[("a", "f8")])])
def test_unsupported_dtypes_are_refused(tmp_path, value):
    with pytest.raises(TypeError, match='binding "v".*dtype'):
        ae.save(tmp_path / "x.ach", {"v": value})
    assert not (tmp_path / "x.ach").exists()


@pytest.mark.parametrize("value", [b"bytes", {1, 2}, object(), print, {1: "non-str key"}])
def test_unsupported_values_are_refused(tmp_path, value):
    with pytest.raises(TypeError, match='binding "v"'):
        ae.save(tmp_path / "x.ach", {"v": value})


def test_integers_beyond_2_53_are_refused_not_rounded(tmp_path):
    with pytest.raises(ValueError, match="9007199254740993"):
        ae.save(tmp_path / "x.ach", {"v": 2**53 + 1})
    with pytest.raises(ValueError, match="cannot be stored exactly"):
        ae.save(tmp_path / "x.ach", {"v": 10**400})
    got, _ = roundtrip(tmp_path, 2**60)  # exactly representable
    assert got == 2.0**60


def test_nesting_is_bounded_and_self_containing_lists_are_refused(tmp_path):
    loop = []
    loop.append(loop)
    with pytest.raises(ae.InvalidArgumentError, match="nests deeper than 128"):
        ae.save(tmp_path / "x.ach", {"v": loop})
    deep = 1.0
    for _ in range(127):
        deep = [deep]
    got, _ = roundtrip(tmp_path, deep)
    for _ in range(127):
        got = got[0]
    assert got == 1.0


def test_shared_refs_stay_shared_and_cycles_are_reported(tmp_path):
    shared = ae.Ref(1.0)
    got, _ = roundtrip(tmp_path, [shared, shared])
    assert got == [ae.Ref(1.0), ae.Ref(1.0)]
    cycle = ae.Ref(None)
    cycle.value = [cycle]
    with pytest.warns(ae.AchronymeWarning, match="refers back to itself"):
        report = ae.save(tmp_path / "c.ach", {"loop": cycle, "x": 1.0})
    assert report["written"] == ["x"] and report["skipped"][0]["name"] == "loop"
    with pytest.raises(ae.InvalidArgumentError, match="refers back to itself"):
        ae.save(tmp_path / "d.ach", {"loop": cycle, "x": 1.0}, strict=True)
    assert not (tmp_path / "d.ach").exists()


def test_allow_overwrite(tmp_path):
    p = tmp_path / "o.ach"
    ae.save(p, {"v": 1.0})
    with pytest.raises(ae.ArchiveIOError, match="allow_overwrite") as e:
        ae.save(p, {"v": 2.0})
    assert isinstance(e.value, OSError)
    assert ae.open(p)["v"] == 1.0
    ae.save(p, {"v": 2.0}, allow_overwrite=True)
    assert ae.open(p)["v"] == 2.0


def test_max_file_size_aborts_and_keeps_the_old_file(tmp_path):
    p = tmp_path / "m.ach"
    ae.save(p, {"v": 1.0})
    with pytest.raises(ae.TooLargeError, match="max_file_size"):
        ae.save(p, {"v": np.zeros(100_000)}, allow_overwrite=True, max_file_size=10_000,
                compress=False)
    assert ae.open(p)["v"] == 1.0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.ach"]


def test_warn_large_values(tmp_path):
    big = np.zeros(100 * 2**20 // 8 + 1)  # just over 100 MiB
    with pytest.warns(ae.AchronymeWarning, match="large"):
        r = ae.save(tmp_path / "w.ach", {"big": big})
    assert len(r["warnings"]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = ae.save(tmp_path / "w.ach", {"big": big}, warn_large_values=False, allow_overwrite=True)
    assert r["warnings"] == []


def test_durable_false_still_publishes(tmp_path):
    ae.save(tmp_path / "d.ach", {"v": math.pi}, durable=False)
    assert ae.open(tmp_path / "d.ach")["v"] == math.pi


@pytest.mark.parametrize(
    "opts, error, match",
    [
        ({"compression_level": 0}, ae.InvalidArgumentError, "between 1 and 22"),
        ({"compression_level": 23}, ae.InvalidArgumentError, "between 1 and 22"),
        ({"codec": "gzip"}, ae.InvalidArgumentError, "zstd"),
        ({"codec": "lz4", "compression_level": 3}, ae.InvalidArgumentError, "no levels"),
        ({"exclude": ["[unclosed"]}, ae.InvalidArgumentError, "pattern"),
        ({"exclude": "temp_*"}, TypeError, "exclude"),
        ({"compress": "yes"}, TypeError, "compress"),
        ({"tags": "one"}, TypeError, "tags"),
        ({"custom": {"k": 1}}, TypeError, "custom must be a dict of str to str"),
        ({"compresion": True}, TypeError, "compresion"),
        ({"checksum": "crc32"}, ae.InvalidArgumentError, "xxh3"),
    ],
)
def test_bad_options_are_refused_and_write_nothing(tmp_path, opts, error, match):
    with pytest.raises(error, match=match):
        ae.save(tmp_path / "x.ach", {"v": 1.0}, **opts)
    assert not (tmp_path / "x.ach").exists()


@pytest.mark.parametrize("name, match", [("", "empty"), ("a\0b", "NUL"), ("x" * 5000, "4096")])
def test_bad_names_are_refused(tmp_path, name, match):
    with pytest.raises(ae.InvalidArgumentError, match=match):
        ae.save(tmp_path / "x.ach", {name: 1.0})


def test_mapping_must_be_a_mapping_with_str_names(tmp_path):
    with pytest.raises(TypeError, match="mapping"):
        ae.save(tmp_path / "x.ach", [1.0])
    with pytest.raises(TypeError, match="names must be str"):
        ae.save(tmp_path / "x.ach", {1: 1.0})


def test_save_to_a_directory_is_an_io_error(tmp_path):
    with pytest.raises(ae.ArchiveIOError):
        ae.save(tmp_path, {"v": 1.0})


def test_an_array_reallocated_during_the_save_is_refused(tmp_path):
    # Converting the mapping runs Python code (here its items()), which
    # could reallocate an array the save already borrows: the save notices
    # before the engine reads it, instead of reading freed memory.
    arr = np.arange(1000.0)

    class Resizing(dict):
        def items(self):
            yield "a", arr
            arr.resize(10**6, refcheck=False)
            yield "b", 1.0

    with pytest.raises(RuntimeError, match="resized while the save"):
        ae.save(tmp_path / "x.ach", Resizing())
    assert not (tmp_path / "x.ach").exists()
    # Unchanged arrays save as usual through the same path.
    class Plain(dict):
        def items(self):
            yield "a", arr
            yield "b", 1.0

    ae.save(tmp_path / "y.ach", Plain())
    assert np.array_equal(ae.open(tmp_path / "y.ach")["a"], arr)


@pytest.mark.parametrize("checksum", ["xxh3", "sha256"])
def test_checksum_option_is_recorded_and_checked(tmp_path, checksum):
    p = tmp_path / "c.ach"
    data = np.arange(300_000, dtype=np.float64)
    ae.save(p, {"d": data}, checksum=checksum, compress=False)
    with ae.open(p) as a:
        assert a.info()["checksum"] == checksum
        assert a.get("d").tobytes() == data.tobytes()
    # A flipped element byte is caught by either algorithm.
    raw = bytearray(p.read_bytes())
    at = raw.find(data[1000:1001].tobytes())
    raw[at] ^= 0x01
    p.write_bytes(bytes(raw))
    with ae.open(p) as a:
        with pytest.raises(ae.DamagedError):
            a.get("d")


def test_refs_made_on_the_fly_are_not_mistaken_for_one_another(tmp_path):
    # A lazy mapping hands out a fresh Ref per item, freed once converted;
    # the next Ref often reuses its address. Each binding must keep its own
    # value rather than become a shared reference to an earlier cell.
    import collections.abc

    class Lazy(collections.abc.Mapping):
        def __getitem__(self, k):
            return ae.Ref(float(int(k[1:])))

        def __iter__(self):
            return iter(f"k{i}" for i in range(32))

        def __len__(self):
            return 32

    ae.save(tmp_path / "r.ach", Lazy())
    with ae.open(tmp_path / "r.ach") as a:
        assert [a[f"k{i}"] for i in range(32)] == [ae.Ref(float(i)) for i in range(32)]
        assert all(a.entry(f"k{i}")["type"] == "MutableRef" for i in range(32))


def test_a_view_whose_base_is_reallocated_during_the_save_is_refused(tmp_path):
    # The view's own address and length do not change when its base is
    # resized: the save checks the base too, before the engine reads.
    import collections.abc

    class Lazy(collections.abc.Mapping):
        def __init__(self, base, resize):
            self.base, self.resize = base, resize

        def __getitem__(self, k):
            if k == "v":
                return self.base[1:]
            if self.resize:
                self.base.resize(10**6, refcheck=False)
            return 1.0

        def __iter__(self):
            return iter(["v", "later"])

        def __len__(self):
            return 2

    with pytest.raises(RuntimeError, match="resized while the save"):
        ae.save(tmp_path / "x.ach", Lazy(np.arange(1000.0), resize=True))
    assert not (tmp_path / "x.ach").exists()
    # A view of a base left alone is still streamed without a copy.
    base = np.arange(1000.0)
    r = ae.save(tmp_path / "y.ach", Lazy(base, resize=False))
    assert (r["arrays_borrowed"], r["arrays_copied"]) == (1, 0)
    with ae.open(tmp_path / "y.ach") as a:
        assert np.array_equal(a["v"], np.arange(1.0, 1000.0))


def test_memory_owned_by_a_buffer_is_pinned_for_the_save(tmp_path):
    # An array over a bytearray (whose base is the bytearray itself, which
    # NumPy does not pin): the save holds its own export of the buffer, so
    # Python code run during the save cannot reallocate it.
    import collections.abc

    ba = bytearray(np.arange(100.0).tobytes())
    arr = np.ndarray((100,), dtype=np.float64, buffer=ba)
    assert arr.base is ba

    class Lazy(collections.abc.Mapping):
        def __getitem__(self, k):
            if k == "later":
                ba.extend(b"x" * 10**6)
            return arr[10:]

        def __iter__(self):
            return iter(["v", "later"])

        def __len__(self):
            return 2

    with pytest.raises(BufferError):
        ae.save(tmp_path / "x.ach", Lazy())
    assert not (tmp_path / "x.ach").exists()
    r = ae.save(tmp_path / "y.ach", {"v": arr[10:]})
    assert (r["arrays_borrowed"], r["arrays_copied"]) == (1, 0)
    ba.extend(b"x" * 8)  # the save released its export
    # An archive's own views are borrowed too when saved again (8 KiB: a
    # blob of its own; smaller arrays live in the table and load as copies).
    ae.save(tmp_path / "z.ach", {"d": np.arange(1024.0)}, compress=False)
    with ae.open(tmp_path / "z.ach") as a:
        r = ae.save(tmp_path / "w.ach", {"d": a["d"][8:]})
    assert (r["arrays_borrowed"], r["arrays_copied"]) == (1, 0)
    assert np.array_equal(ae.open(tmp_path / "w.ach")["d"], np.arange(8.0, 1024.0))


def test_the_report_counts_bytes_encoded_hashed_and_copied(tmp_path):
    # Arrays from Python carry no provenance: everything is encoded and
    # hashed, nothing copied.
    r = ae.save(tmp_path / "w.ach", {"t": np.arange(1000.0), "s": "x"}, compress=False)
    assert r["bytes_copied"] == 0
    assert r["bytes_encoded"] == 8000 + 1 + 8 + 1
    # The tensor's blob span (its 64-byte head and elements); the string
    # lives in the table's value pool (format 1.4), hashed with its pages.
    assert r["bytes_hashed"] == 64 + 8000
