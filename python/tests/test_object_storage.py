"""The object-storage path against a real S3-protocol server.

`.ci/run` starts moto's server on 127.0.0.1, makes a bucket, and exports
AWS_ENDPOINT_URL, the dummy credentials, ACH_S3_BUCKET and ACH_REQUIRE_S3=1:
there these tests fail rather than skip when the server is missing.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

import achronyme_env as ae

BUCKET = os.environ.get("ACH_S3_BUCKET")
if not BUCKET or not os.environ.get("AWS_ENDPOINT_URL"):
    if os.environ.get("ACH_REQUIRE_S3") == "1":
        raise RuntimeError("ACH_REQUIRE_S3=1 but ACH_S3_BUCKET/AWS_ENDPOINT_URL are not set")
    pytest.skip("no S3-protocol server (set ACH_S3_BUCKET and AWS_ENDPOINT_URL)", allow_module_level=True)


def url() -> str:
    return f"s3://{BUCKET}/python/{uuid.uuid4().hex}.ach"


def test_save_to_s3_and_read_back_bit_for_bit():
    u = url()
    rng = np.random.default_rng(7)
    data = rng.standard_normal((300, 70))
    data[0, 0] = -0.0
    z = rng.standard_normal(64) + 1j * rng.standard_normal(64)
    ae.save(u, {"data": data, "z": z, "label": "run 7", "n": 3.0})
    with ae.open(u) as a:
        assert sorted(a.names()) == ["data", "label", "n", "z"]
        got = a.get("data")
        assert got.tobytes() == data.tobytes()
        assert a["z"].tobytes() == z.tobytes()
        assert a["label"] == "run 7" and a["n"] == 3.0
        # A remote tensor cannot borrow a mapping: it is memory of its own.
        assert not (isinstance(got.base, ae.TensorMemory) and got.base.mapped)
        assert a.verify()["ok"]


def test_compressed_save_to_s3_reads_back():
    u = url()
    smooth = np.sin(np.linspace(0, 10, 100_000))
    ae.save(u, {"s": smooth}, compress=True)
    with ae.open(u) as a:
        assert a["s"].tobytes() == smooth.tobytes()
        assert a.info()["num_bindings"] == 1 and a.info()["compressed"]


def test_a_missing_object_is_an_io_error_not_damage():
    with pytest.raises(ae.ArchiveIOError) as e:
        ae.open(url())
    assert not isinstance(e.value, ae.DamagedError)


def test_no_overwrite_is_refused_when_the_object_exists():
    u = url()
    ae.save(u, {"x": 1.0})
    with pytest.raises(ae.AchronymeError):
        ae.save(u, {"x": 2.0}, allow_overwrite=False)
    with ae.open(u) as a:
        assert a["x"] == 1.0
