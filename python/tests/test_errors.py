"""Errors are exceptions of a class per kind carrying the engine's message,
and hostile files never crash the interpreter: they load or raise an
AchronymeError."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

import achronyme_env as ae


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A small archive of several kinds of value, raw and compressed."""
    p = tmp_path_factory.mktemp("good") / "good.ach"
    ae.save(
        p,
        {
            # 4 KiB of noise: a raw blob of its own, loaded as a view
            # (smaller values live in the table, format 1.4).
            "t": np.random.default_rng(0).standard_normal((32, 16)),
            "wave": np.sin(np.linspace(0, 9, 4096)),
            "s": "some text",
            "rec": {"a": [1.0, None, True], "z": 1j, "e": ae.Edge("a", "b")},
            "r": ae.Ref(ae.Builtin("sin")),
        },
        constants={"PI": 3.141592653589793},
    )
    return p


def write(tmp_path, data: bytes, name="x.ach"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_the_classes(tmp_path):
    assert issubclass(ae.TruncatedError, ae.DamagedError)
    assert issubclass(ae.NotFoundError, KeyError)
    assert issubclass(ae.ArchiveIOError, OSError)
    assert issubclass(ae.InvalidArgumentError, ValueError)
    for cls in (ae.NotAnArchiveError, ae.DamagedError, ae.NewerVersionError, ae.NotFoundError,
                ae.TooLargeError, ae.ArchiveIOError, ae.InvalidArgumentError):
        assert issubclass(cls, ae.AchronymeError)
    assert ae.DamagedError.__module__ == "achronyme_env"


def test_not_an_archive(tmp_path):
    p = write(tmp_path, b"PK\x03\x04" + bytes(400))
    with pytest.raises(ae.NotAnArchiveError, match="not an .ach archive.*check the path"):
        ae.open(p)
    with pytest.raises(ae.NotAnArchiveError, match="directory"):
        ae.open(tmp_path)


def test_missing_file_is_an_io_error(tmp_path):
    with pytest.raises(ae.ArchiveIOError, match="No such file") as e:
        ae.open(tmp_path / "missing.ach")
    assert isinstance(e.value, OSError)


def test_newer_version(good, tmp_path):
    data = bytearray(good.read_bytes())
    data[4:6] = struct.pack("<H", 2)  # format major version
    with pytest.raises(ae.NewerVersionError, match="newer than this reader.*upgrade"):
        ae.open(write(tmp_path, bytes(data)))


def test_damaged_table_of_contents(good, tmp_path):
    data = bytearray(good.read_bytes())
    data[-100] ^= 0x40  # inside the table of contents or the trailer
    with pytest.raises(ae.DamagedError, match="damaged"):
        ae.open(write(tmp_path, bytes(data)))


def test_a_damaged_page_fails_what_reads_it_and_every_listing(tmp_path):
    # Opening reads only the table's header, metadata and page index
    # (layout.md 6.8); a lookup checks the pages it reads; a listing checks
    # the whole table, so a damaged page is an error, never a short list.
    p = tmp_path / "many.ach"
    ae.save(p, {f"v{i:06}": float(i) for i in range(2000)}, durable=False)
    data = bytearray(p.read_bytes())
    toc = struct.unpack_from("<Q", data, 40)[0]
    entry_size = struct.unpack_from("<I", data, toc + 4)[0]  # 40 since format 1.5
    data[toc + 64 + entry_size * 1500] ^= 1  # entry 1500's name offset
    p.write_bytes(bytes(data))
    with ae.open(p) as a:
        assert len(a) == 2000  # the page index's counts
        # The search for it reads entries 1000, 500, 250, ... only.
        assert a["v000007"] == 7.0
        with pytest.raises(ae.DamagedError, match="checksum"):
            a["v001500"]
        for listing in (a.names, a.info, a.entries, a.keys):
            with pytest.raises(ae.DamagedError, match="checksum"):
                listing()
        with pytest.raises(ae.DamagedError, match="checksum"):
            a.verify()


def test_not_found_suggests_a_name(good):
    with ae.open(good) as a:
        with pytest.raises(ae.NotFoundError) as e:
            a["wav"]
        assert str(e.value) == 'no binding named "wav" in the archive; did you mean "wave"?'
        with pytest.raises(KeyError):
            a.get("nothing")


def test_too_large(good):
    with ae.open(good) as a:
        with pytest.raises(ae.TooLargeError, match="over the limit of 16 bytes.*raise the limit"):
            a.get("rec", max_decoded_bytes=16)
        with pytest.raises(ae.TooLargeError):
            a.get("wave", max_decoded_bytes=1000)  # decompressed: 32 KiB
        assert a.get("t", max_decoded_bytes=0).shape == (32, 16)  # a view costs nothing


def test_a_shape_numpy_cannot_hold_is_an_error_not_a_crash(rust_archives):
    # Regression: a fuzzed archive with such a shape raised RuntimeError
    # from ndarray instead of an AchronymeError.
    with ae.open(rust_archives / "empty_shapes.ach") as a:
        assert a["fits"].shape == (0, 2**40)
        with pytest.raises(ae.TooLargeError, match=r'binding "too_big": a tensor of shape \[2305843009213693952, 0, 4\] cannot be a NumPy array'):
            a["too_big"]


def test_every_truncation_is_truncated(good, tmp_path):
    p = write(tmp_path, good.read_bytes(), "cut.ach")
    # Cut shorter and shorter in place (rewriting a file per cut is slow).
    for cut in reversed(range(p.stat().st_size)):
        os.truncate(p, cut)
        with pytest.raises(ae.TruncatedError, match=f"should be .* bytes but is {cut};"):
            ae.open(p)


def load_everything(path):
    """What a user might do with an archive; returns the dump of what loaded
    with checksums, or raises an AchronymeError."""
    from interop_dump import dump_value

    out = {}
    with ae.open(path) as a:
        a.info()
        for section in ("bindings", "constants", "functions"):
            for name in a.names(section):
                try:
                    out[(section, name)] = dump_value(a.get(name, section=section))
                except ae.AchronymeError:
                    pass
                for load in (lambda: a.get(name, False, section=section),
                             lambda: a[name] if section == "bindings" else None):
                    try:
                        load()
                    except ae.AchronymeError:
                        pass
        try:
            a.verify()
        except ae.DamagedError:
            pass
    return out


def test_every_byte_flip_is_refused_or_loads_the_same_values(good, tmp_path):
    # Never silently different data: a load that checks its bytes either
    # fails or gives exactly the original value.
    from interop_dump import dump_value

    data = good.read_bytes()
    original = {}
    with ae.open(good) as a:
        for section in ("bindings", "constants"):
            for name in a.names(section):
                original[(section, name)] = dump_value(a.get(name, section=section))
    p = write(tmp_path, data, "flip.ach")
    step = max(1, len(data) // 1500)
    refused = 0
    fd = os.open(p, os.O_WRONLY)
    try:
        for at in range(0, len(data), step):
            # One byte changed in place, then put back.
            os.pwrite(fd, bytes([data[at] ^ (1 << (at % 8))]), at)
            try:
                loaded = load_everything(p)
            except ae.AchronymeError:
                refused += 1
                loaded = {}
            for key, dump in loaded.items():
                assert dump == original[key], (at, key)
            os.pwrite(fd, data[at : at + 1], at)
    finally:
        os.close(fd)
    assert refused > 0


def test_the_fuzz_corpora_never_crash(fuzz_corpus, tmp_path):
    # Every hostile input the fuzzers kept, through the whole Python API:
    # a value or an AchronymeError, never another exception or a crash.
    p = tmp_path / "fuzz.ach"
    opened = 0
    for f in fuzz_corpus:
        p.write_bytes(f.read_bytes())
        try:
            load_everything(p)
            opened += 1
        except ae.AchronymeError:
            pass
    assert opened > 0
