"""The Python package's figures (issue 17), all measured in one run:

W1 (one f64 tensor of --size-mib, 1 GiB by default):
  - open + archive["data"] against np.load(mmap_mode="r") on a .npy of the
    same data and safetensors' safe_open(...).get_tensor (which copies);
  - the resident memory the view adds;
  - save from the NumPy array against np.save of it (neither synced).
W2 (100,000 small bindings):
  - names() against the engine listing the same names in Rust, and the
    cost of making those names Python strings.

Medians of --rounds rounds (fewer for slower operations; a round of the
fastest ones is a batch of 20 calls), the systems alternating round by
round so that a noisy machine slows them alike. Run with the package built in release mode:

    pip install ./python safetensors
    python python/bench/bench.py            # prints Markdown tables
"""

from __future__ import annotations

import argparse
import gc
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

import achronyme_env as ae


def median_ms(times):
    return statistics.median(times) * 1e3


def fmt(ms: float) -> str:
    if ms < 1:
        return f"{ms * 1e3:.1f} µs"
    if ms < 1000:
        return f"{ms:.1f} ms"
    return f"{ms / 1e3:.2f} s"


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def alternate(cases: dict, rounds: int, batch: int = 1) -> dict:
    """Runs each case `batch` times in a row per round, the cases in turn;
    returns the median over rounds of the time per call, in ms. A batch of
    fast calls keeps one preemption of this shared machine from being a
    sample of its own."""
    times = {name: [] for name in cases}
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, run in cases.items():
                t = time.perf_counter()
                for _ in range(batch):
                    run()
                times[name].append((time.perf_counter() - t) / batch)
    finally:
        gc.enable()
    return {name: median_ms(ts) for name, ts in times.items()}


def table(title: str, rows: dict, base: str, notes: dict = None) -> None:
    print(f"\n### {title}\n")
    print("| what | median | ratio |")
    print("|---|---|---|")
    for name, ms in sorted(rows.items(), key=lambda kv: kv[1]):
        label = f"**{name}**" if name == base else name
        note = (notes or {}).get(name, "")
        print(f"| {label}{note} | {fmt(ms)} | {ms / rows[base]:.2f}x |")


def w1(dirpath: pathlib.Path, size_mib: int, rounds: int) -> None:
    from safetensors import safe_open
    from safetensors.numpy import save_file

    cols = 8192
    rows = size_mib * 2**20 // 8 // cols
    data = np.random.default_rng(42).standard_normal((rows, cols))
    ach, npy, st = dirpath / "w1.ach", dirpath / "w1.npy", dirpath / "w1.safetensors"
    ae.save(ach, {"data": data}, compress=False, durable=False, warn_large_values=False)
    np.save(npy, data)
    save_file({"data": data}, str(st))
    print(f"\n## W1: one f64 tensor {list(data.shape)} ({size_mib} MiB)")

    def ach_open_get():
        x = ae.open(ach)["data"]
        assert x.shape == data.shape

    def npy_mmap():
        x = np.load(npy, mmap_mode="r")
        assert x.shape == data.shape

    def st_get():
        with safe_open(str(st), framework="np") as f:
            x = f.get_tensor("data")
        assert x.shape == data.shape

    fast = alternate({"ach: open + archive[\"data\"]": ach_open_get,
                      "np.load(mmap_mode=\"r\")": npy_mmap}, rounds, batch=20)
    slow = alternate({"safetensors safe_open + get_tensor": st_get}, max(3, rounds // 50))
    table("Open and get the tensor", {**fast, **slow}, "ach: open + archive[\"data\"]",
          {"safetensors safe_open + get_tensor": " (copies)"})

    # The view's memory: resident size before and after making one from a
    # fresh open (a view costs its bookkeeping, not its pages).
    extra = []
    for _ in range(20):
        gc.collect()
        before = rss_kib()
        a = ae.open(ach)
        x = a["data"]
        extra.append(rss_kib() - before)
        del x, a
    print(f"\nResident memory added by open + archive[\"data\"] (median of 20): "
          f"{statistics.median(extra)} KiB")

    def unlink(p):
        if p.exists():
            p.unlink()

    out_ach, out_npy = dirpath / "out.ach", dirpath / "out.npy"

    engine_write = []

    def ach_save():
        unlink(out_ach)
        r = ae.save(out_ach, {"data": data}, durable=False, compress=False,
                    warn_large_values=False)
        assert r["arrays_borrowed"] == 1 and r["arrays_copied"] == 0
        engine_write.append(r["write_seconds"])

    def ach_save_default():
        unlink(out_ach)
        ae.save(out_ach, {"data": data}, durable=False, warn_large_values=False)

    def np_save():
        unlink(out_npy)
        np.save(out_npy, data)

    saves = alternate({"ach: save(compress=False)": ach_save,
                       "ach: save() (tries zstd, stores raw)": ach_save_default,
                       "np.save": np_save}, max(3, rounds // 20))
    table("Save from the NumPy array (not synced, new file each time)", saves, "np.save")
    print(f"\nOf `save(compress=False)`, the engine's writing and hashing (its report's "
          f"write_seconds): {fmt(median_ms(engine_write))} (median).")


def w2(dirpath: pathlib.Path, rounds: int) -> None:
    n = 100_000
    values = {}
    for i in range(n):
        k = i % 4
        if k == 0:
            v = float(i)
        elif k == 1:
            v = f"item {i}"
        elif k == 2:
            v = np.arange(i, i + 16, dtype=np.float64)
        else:
            v = {"id": float(i), "ok": i % 3 == 0}
        values[f"v{i:06}"] = v
    path = dirpath / "w2.ach"
    ae.save(path, values, compress=False, durable=False)
    print(f"\n## W2: {n:,} small bindings")
    a = ae.open(path)
    assert len(a.names()) == n
    # The three figures alternate round by round, so that the load of this
    # shared machine weighs on them alike.
    samples = {"names": [], "engine": [], "strings": []}
    for _ in range(rounds // 4):
        gc.collect()
        t = time.perf_counter()
        names = a.names()
        samples["names"].append(time.perf_counter() - t)
        # Freed after the clock stops (the caller's business, later), as
        # the strings of the "strings" figure are.
        del names
        for what in ("engine", "strings"):
            samples[what].append(ae._native._bench_names(a, 1, what) / 1e9)
    times = {"names()": median_ms(samples["names"])}
    engine, strings = median_ms(samples["engine"]), median_ms(samples["strings"])
    rows = {
        "names() (a list of Python str)": times["names()"],
        "engine alone: the names as &str (Rust)": engine,
        "making a Python str of each name": strings,
    }
    table("List the names", rows, "names() (a list of Python str)")
    bound = 2 * engine + strings
    print(f"\nTarget: names() <= 2 x Rust + strings = {fmt(bound)}; "
          f"measured {fmt(times['names()'])} ({times['names()'] / bound:.2f} of the bound)")
    info = alternate({"open + info()": lambda: ae.open(path).info(),
                      "open + archive[\"v050002\"]": lambda: ae.open(path)["v050002"]}, rounds // 10)
    table("Open and read", info, "open + archive[\"v050002\"]")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=1024, help="W1 tensor size (default 1024)")
    p.add_argument("--rounds", type=int, default=200, help="rounds of the fast cases (default 200)")
    p.add_argument("--dir", type=pathlib.Path, default=None,
                   help="where to write the files (default: a temporary folder)")
    args = p.parse_args()
    print(f"Python {sys.version.split()[0]}, NumPy {np.__version__}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        w1(pathlib.Path(d), args.size_mib, args.rounds)
        w2(pathlib.Path(d), args.rounds)


if __name__ == "__main__":
    main()
