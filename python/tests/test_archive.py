"""The Archive object: names, len, in, iteration, info, get, sections,
the context manager and close."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

import achronyme_env as ae


@pytest.fixture
def path(tmp_path) -> pathlib.Path:
    p = tmp_path / "w.ach"
    ae.save(
        p,
        {"b": 2.0, "a": "one", "ä": [1.0], "t": np.arange(4.0)},
        constants={"PI": math.pi},
        description="a test",
        tags=["t1"],
        custom={"k": "v"},
    )
    return p


def test_mapping_protocol(path):
    with ae.open(path) as a:
        # Sorted by UTF-8 bytes, bindings section only.
        assert a.names() == ["a", "b", "t", "ä"]
        assert list(a) == a.names() == a.keys()
        assert len(a) == 4
        assert "b" in a and "PI" not in a and "zz" not in a and 3 not in a
        assert a.names("constants") == ["PI"]
        assert a.names("functions") == []
        assert dict(a)["a"] == "one"


def test_get_by_section(path):
    with ae.open(path) as a:
        assert a.get("PI", section="constants") == math.pi
        with pytest.raises(ae.NotFoundError, match="PI"):
            a["PI"]
        with pytest.raises(ValueError, match="section"):
            a.get("PI", section="nope")
        assert a.get("b", verify=False) == a.get("b") == a["b"] == 2.0


def test_info_is_the_env_info_record(path):
    with ae.open(path) as a:
        info = a.info()
    assert info["version"] == "1.0" or info["version"].startswith("1.")
    for key in ("created_at", "created_by", "num_bindings", "num_constants", "compressed",
                "file_size", "description", "tags", "bindings"):
        assert key in info, key  # the spec's env_info fields
    assert info["num_bindings"] == 4 and info["num_constants"] == 1
    assert info["bindings"] == ["a", "b", "t", "ä"]
    assert info["description"] == "a test" and info["tags"] == ["t1"]
    assert info["custom"] == {"k": "v"}
    assert info["file_size"] == path.stat().st_size
    assert info["created_by"].startswith("achronyme_env (Python)")
    assert "entries" not in info  # entries() has them: a dict per binding


def test_entries_describe_bindings_without_loading_them(path):
    with ae.open(path) as a:
        entries = a.entries()
        t = {"name": "t", "section": "bindings", "type": "Tensor", "shape": (4,),
             "stored_bytes": 32, "raw_bytes": 32, "codec": "none"}
        assert [e["name"] for e in entries] == ["a", "b", "t", "ä", "PI"]
        assert entries[2] == t == a.entry("t")
        assert a.entry("PI", "constants")["type"] == "Number"
        assert a.entry("a")["shape"] == () and a.entry("a")["type"] == "String"
        with pytest.raises(ae.NotFoundError, match='did you mean "t"'):
            a.entry("tt")
        with pytest.raises(ae.NotFoundError):
            a.entry("t", "constants")


def test_close_and_context_manager(path):
    a = ae.open(path)
    assert not a.closed and a.location == str(path)
    assert "4 bindings" in repr(a)
    t = a["t"]
    with a as same:
        assert same is a
    assert a.closed and "closed" in repr(a)
    for use in (lambda: a["t"], lambda: a.names(), lambda: len(a), lambda: a.info(),
                lambda: a.verify(), lambda: "t" in a):
        with pytest.raises(ValueError, match="closed"):
            use()
    a.close()  # twice is fine
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_open_takes_str_and_pathlike(path):
    assert ae.open(str(path)).names() == ae.open(path).names()
    with pytest.raises(TypeError, match="path"):
        ae.open(42)


def test_file_urls_open_the_same_archive(path):
    # A URL goes to the engine's object-storage client; file:// is the one
    # scheme that needs no server, and must read the very same archive.
    url = path.resolve().as_uri()
    with ae.open(url) as a, ae.open(path) as b:
        assert a.names() == b.names()
        assert a.location == url


def test_a_url_the_engine_cannot_reach_is_an_argument_error():
    with pytest.raises(ae.InvalidArgumentError):
        ae.open("nosuchscheme://bucket/w.ach")


def test_verify_returns_the_report(path):
    with ae.open(path) as a:
        report = a.verify()
    assert report["ok"] and report["closing_checksum_ok"]
    assert report["bindings_checked"] == 5 and report["damaged"] == []
