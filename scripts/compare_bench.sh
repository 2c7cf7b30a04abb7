#!/usr/bin/env bash
# Runs every measurement of BENCHMARKS.md in one go (about 25 minutes on a
# 2-core machine) and prints its tables:
#   bash scripts/compare_bench.sh
# Outputs: target/compare-bench.log, target/peak_rss.tsv, criterion's
# results under target/criterion/, and the tables on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== machine"
uname -srm
nproc
grep -m1 'model name' /proc/cpuinfo || true
grep MemTotal /proc/meminfo
grep -o -m1 -w sha_ni /proc/cpuinfo || echo "no sha_ni"
rustc --version
date -u

echo "== cargo bench --bench compare"
rm -f target/compare-sizes.tsv
cargo bench --bench compare 2>&1 | tee target/compare-bench.log

echo "== peak RSS, one fresh process per case"
cargo build --release --example peak_rss
rm -f target/peak_rss.tsv target/peak_rss.log
for w in w1 w2; do
  systems="ach-raw ach-zstd safetensors msgpack msgpack-zstd"
  for s in $systems $([ "$w" = w1 ] && echo fs-write); do
    ./target/release/examples/peak_rss "$w-save-$s" | tee -a target/peak_rss.log | grep '^peak_rss' >> target/peak_rss.tsv
  done
  for s in $systems; do
    ./target/release/examples/peak_rss "$w-restore-$s" | tee -a target/peak_rss.log | grep '^peak_rss' >> target/peak_rss.tsv
  done
done
rm -rf target/peak_rss

if [ -f benches/compression.rs ]; then
  echo "== cargo bench --bench compression (W3)"
  cargo bench --bench compression 2>&1 | tee target/compression-bench.log
fi

python3 scripts/compare_report.py
