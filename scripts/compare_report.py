#!/usr/bin/env python3
"""Turns the results of `cargo bench --bench compare` (criterion's
estimates under target/criterion/), target/compare-sizes.tsv and
target/peak_rss.tsv into the Markdown tables of BENCHMARKS.md.

Every ratio is the figure divided by this crate's figure in the same table
(the row marked "1.00x"): above 1 means slower (or larger) than this crate.
"""
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CRIT = os.path.join(ROOT, "target", "criterion")

# group -> (reference row, [(row, label)])
GROUPS = {
    "w1_save": ("ach_raw", None),
    "w1_info": ("ach_raw", None),
    "w1_handle": ("ach_raw_view", None),
    "w1_load_small": ("ach_raw", None),
    "w1_sum": ("ach_raw_verified", None),
    "w2_save": ("ach_raw", None),
    "w2_info": ("ach_raw", None),
    "w2_load_one": ("ach_raw", None),
    "w2_restore_all": ("ach_raw", None),
}


def fmt_time(ns):
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.1f} ms"
    return f"{ns / 1e9:.2f} s"


def median(group, bench):
    p = os.path.join(CRIT, group, bench, "new", "estimates.json")
    with open(p) as f:
        e = json.load(f)
    return e["median"]["point_estimate"], e["median"]["confidence_interval"]


def table(group):
    ref, _ = GROUPS[group]
    d = os.path.join(CRIT, group)
    if not os.path.isdir(d):
        return f"(no results for {group})\n"
    benches = sorted(b for b in os.listdir(d) if os.path.isdir(os.path.join(d, b, "new")))
    ref_ns, _ = median(group, ref)
    out = [f"`{group}` (ratio: figure / `{ref}`)", "", "| system | median | 95% CI of the median | ratio |", "|---|---|---|---|"]
    for b in sorted(benches, key=lambda b: median(group, b)[0]):
        ns, ci = median(group, b)
        ci_s = f"{fmt_time(ci['lower_bound'])} – {fmt_time(ci['upper_bound'])}"
        out.append(f"| {b} | {fmt_time(ns)} | {ci_s} | {ns / ref_ns:.2f}x |")
    return "\n".join(out) + "\n"


def sizes():
    p = os.path.join(ROOT, "target", "compare-sizes.tsv")
    if not os.path.exists(p):
        return "(no sizes)\n"
    rows = [l.split("\t") for l in open(p).read().splitlines() if l]
    out = []
    for w in sorted({r[0] for r in rows}):
        ws = [(s, int(b)) for (wk, s, b) in rows if wk == w]
        ref = dict(ws).get("ach_raw")
        out += [f"`{w}` file sizes", "", "| system | bytes | MiB | ratio to ach_raw |", "|---|---|---|---|"]
        for s, b in sorted(ws, key=lambda x: x[1]):
            r = f"{b / ref:.3f}x" if ref else ""
            out.append(f"| {s} | {b:,} | {b / 2**20:.1f} | {r} |")
        out.append("")
    return "\n".join(out)


def peaks():
    p = os.path.join(ROOT, "target", "peak_rss.tsv")
    if not os.path.exists(p):
        return "(no peak_rss results)\n"
    out = ["| case | data MiB | peak above start MiB | extra peak over the data MiB | RssAnon after MiB | RssFile after MiB | seconds |", "|---|---|---|---|---|---|---|"]
    for l in open(p).read().splitlines():
        f = l.split("\t")
        if len(f) == 8 and f[0] == "peak_rss":
            out.append("| " + " | ".join(f[1:]) + " |")
    return "\n".join(out) + "\n"


def w3():
    """The spec's table from `cargo bench --bench compression`: criterion's
    results plus the ratio lines its log printed."""
    log = os.path.join(ROOT, "target", "compression-bench.log")
    ratios = {}
    if os.path.exists(log):
        for l in open(log).read().splitlines():
            if l.startswith("ratio "):
                key, rest = l[len("ratio "):].split(": ", 1)
                ratios[key] = rest
    times = {}
    if os.path.isdir(CRIT):
        for g in os.listdir(CRIT):
            gd = os.path.join(CRIT, g)
            for b in os.listdir(gd) if os.path.isdir(gd) else []:
                bj = os.path.join(gd, b, "new", "benchmark.json")
                if not os.path.exists(bj):
                    continue
                meta = json.load(open(bj))
                if not meta.get("group_id", "").startswith("spec_8_1/"):
                    continue
                data = meta["group_id"].split("/", 1)[1]
                op, config = meta["function_id"].split("/", 1)
                est = json.load(open(os.path.join(gd, b, "new", "estimates.json")))
                times[(data, config, op)] = est["median"]["point_estimate"]
    if not times:
        return "(no results of cargo bench --bench compression)\n"
    out = ["| data | config | size ratio (raw / stored) | save median | restore (load + sum) median | save vs `none` | restore vs `none` |", "|---|---|---|---|---|---|---|"]
    for data in ["smooth", "noise"]:
        configs = sorted({c for (d, c, _) in times if d == data}, key=lambda c: (c != "none", c))
        for c in configs:
            sv, rs = times.get((data, c, "save")), times.get((data, c, "restore"))
            sv0, rs0 = times.get((data, "none", "save")), times.get((data, "none", "restore"))
            out.append(
                f"| {data} | {c} | {ratios.get(data + '/' + c, '?')} | {fmt_time(sv)} | {fmt_time(rs)} | {sv / sv0:.2f}x | {rs / rs0:.2f}x |"
            )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    which = sys.argv[1:] or list(GROUPS) + ["sizes", "peaks", "w3"]
    for g in which:
        if g == "sizes":
            print(sizes())
        elif g == "peaks":
            print(peaks())
        elif g == "w3":
            print(w3())
        else:
            print(table(g))
