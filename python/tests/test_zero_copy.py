"""archive[name] of an uncompressed tensor is a read-only NumPy view of the
mapped file that outlives the archive; compressed tensors come back as
arrays the caller owns; saves stream C-contiguous arrays without a copy."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import achronyme_env as ae


@pytest.fixture
def raw(tmp_path):
    p = tmp_path / "raw.ach"
    data = np.random.default_rng(1).standard_normal((512, 256))
    spectrum = data[:, :128] + 1j * data[:, 128:]
    ae.save(p, {"data": data, "spectrum": spectrum, "model": {"w": data[0].copy()}}, compress=False)
    return p, data, spectrum


def test_a_raw_tensor_is_a_read_only_view_of_the_mapping(raw):
    p, data, spectrum = raw
    a = ae.open(p)
    x = a["data"]
    assert x.dtype == np.float64 and x.shape == (512, 256)
    assert np.array_equal(x, data)
    assert not x.flags.writeable and not x.flags.owndata
    # The base chain ends at the engine's storage, a mapping of the file.
    assert isinstance(x.base, ae.TensorMemory)
    assert x.base.mapped and x.base.nbytes == data.nbytes
    with pytest.raises(ValueError):
        x[0, 0] = 1.0
    with pytest.raises(ValueError):
        x.setflags(write=True)
    c = a["spectrum"]
    assert c.dtype == np.complex128 and np.array_equal(c, spectrum)
    assert isinstance(c.base, ae.TensorMemory) and not c.flags.writeable


def test_two_loads_share_the_same_memory(raw):
    p, _, _ = raw
    a = ae.open(p)
    x, y = a["data"], a.get("data")
    assert x is not y
    assert np.shares_memory(x, y)
    b = ae.open(p)  # another open maps the file again: other addresses
    assert not np.shares_memory(x, b["data"])
    assert np.array_equal(x, b["data"])


def test_the_view_outlives_the_archive(raw):
    p, data, _ = raw
    a = ae.open(p)
    x = a["data"][100:110]  # a view of the view: the chain holds
    a.close()
    del a
    gc.collect()
    assert np.array_equal(x, data[100:110])
    assert isinstance(x.base.base, ae.TensorMemory)


def test_the_view_survives_the_file_being_replaced(raw, tmp_path):
    p, data, _ = raw
    x = ae.open(p)["data"]
    # A save renames a new file over the path: the mapping keeps the old.
    ae.save(p, {"data": np.zeros(3)}, allow_overwrite=True)
    assert np.array_equal(x, data)
    assert ae.open(p)["data"].tolist() == [0.0, 0.0, 0.0]


def test_compressed_tensors_are_arrays_the_caller_owns(tmp_path):
    p = tmp_path / "z.ach"
    wave = np.sin(np.linspace(0, 40, 100_000)).reshape(400, 250)
    ae.save(p, {"wave": wave, "rec": {"wave": wave}})
    a = ae.open(p)
    assert a.entry("wave")["codec"] == "zstd"
    x = a["wave"]
    assert np.array_equal(x, wave)
    assert x.flags.writeable and not isinstance(x.base, ae.TensorMemory)
    x[0, 0] = 42.0  # the caller's own copy
    assert a["wave"][0, 0] == wave[0, 0]
    nested = a["rec"]["wave"]
    assert np.array_equal(nested, wave) and nested.flags.writeable


def test_get_with_verify_checks_the_view_and_indexing_does_not(raw, tmp_path):
    p, data, _ = raw
    blob = bytearray(p.read_bytes())
    # Flip one bit inside the elements of "data" (well past its frame).
    at = blob.find(data[300].tobytes())
    assert at > 0
    blob[at] ^= 0x01
    bad = tmp_path / "bad.ach"
    bad.write_bytes(bytes(blob))
    a = ae.open(bad)
    x = a["data"]  # not read, so not checked: a view, as np.load's
    assert x[300, 0] != data[300, 0]
    with pytest.raises(ae.DamagedError, match="data"):
        a.get("data")
    with pytest.raises(ae.DamagedError) as e:
        a.verify()
    assert [d["name"] for d in e.value.report["damaged"]] == ["data"]
    # Everything archive[name] decodes is checked.
    assert a["model"]["w"].tolist() == data[0].tolist()


def test_archive_indexing_checks_values_it_decodes(tmp_path):
    p = tmp_path / "s.ach"
    # Over 4 KiB: a blob of its own (a small value lives in the table,
    # whose damage fails the whole open).
    s = "a string long enough to find" + "." * 4096
    ae.save(p, {"s": s, "t": np.arange(8.0)}, compress=False)
    blob = bytearray(p.read_bytes())
    at = blob.find(b"long enough")
    blob[at] ^= 0x20
    p.write_bytes(bytes(blob))
    with pytest.raises(ae.DamagedError, match='"s"'):
        ae.open(p)["s"]
    assert ae.open(p)["t"].tolist() == list(np.arange(8.0))


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_view_takes_no_memory_and_the_save_no_copy(tmp_path):
    # In a fresh process, so that the high-water mark of its resident
    # memory measures this alone: a save of a 256 MiB array and a load of
    # it as a view each add far less than the array's size.
    out = run_python(f"""
        import resource, numpy as np, achronyme_env as ae
        def peak_mib():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        x = np.ones((8192, 4096))
        base = peak_mib()
        ae.save({str(tmp_path / "big.ach")!r}, {{"data": x}}, compress=False, durable=False)
        saved = peak_mib()
        del x
        a = ae.open({str(tmp_path / "big.ach")!r})
        before = peak_mib()
        v = a["data"]
        print(saved - base, peak_mib() - before, v.nbytes)
    """)
    save_extra, view_extra, nbytes = map(float, out.split())
    assert nbytes == 256 * 2**20
    assert save_extra < 48, f"the save used {save_extra} MiB more than the array"
    assert view_extra < 1, f"the view used {view_extra} MiB"


def test_save_borrows_c_contiguous_arrays_and_copies_the_rest_once(tmp_path):
    x = np.arange(12.0).reshape(3, 4)
    r = ae.save(tmp_path / "a.ach", {"c": x, "z": x * 1j})
    assert (r["arrays_borrowed"], r["arrays_copied"]) == (2, 0)
    r = ae.save(tmp_path / "b.ach", {"f": np.asfortranarray(x), "s": x[:, ::2],
                                     "i": np.arange(3), "be": x.astype(">f8")})
    assert (r["arrays_borrowed"], r["arrays_copied"]) == (0, 4)
    with ae.open(tmp_path / "b.ach") as a:
        assert np.array_equal(a["f"], x) and np.array_equal(a["s"], x[:, ::2])
        assert a["i"].dtype == np.float64 and a["be"].dtype == np.dtype("<f8")
