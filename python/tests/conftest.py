"""Fixtures shared by the test modules: the Rust interop program, the
archives it writes, and the repository's fuzz corpora."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # interop_dump
REPO = HERE.parent.parent


def _target_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


@pytest.fixture(scope="session")
def interop() -> pathlib.Path:
    """python/examples/interop.rs, built once (debug). Required: without
    cargo the interoperability tests fail rather than skip."""
    subprocess.run(
        ["cargo", "build", "--quiet", "-p", "achronyme-env-python", "--example", "interop"],
        cwd=REPO,
        check=True,
    )
    exe = _target_dir() / "debug" / "examples" / "interop"
    assert exe.exists(), exe
    return exe


def run_interop(exe: pathlib.Path, *args) -> str:
    done = subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def rust_archives(interop, tmp_path_factory) -> pathlib.Path:
    """A folder of archives written by the engine from Rust values."""
    d = tmp_path_factory.mktemp("rust_archives")
    run_interop(interop, "write", d)
    return d


@pytest.fixture(scope="session")
def fuzz_corpus() -> list:
    """The inputs the repository's fuzzers kept (fuzz/corpus/archive and
    archive_resealed): hostile archives, one per behaviour they reached."""
    files = []
    for target in ("archive", "archive_resealed"):
        files += sorted((REPO / "fuzz" / "corpus" / target).iterdir())
    assert len(files) > 100
    return files
