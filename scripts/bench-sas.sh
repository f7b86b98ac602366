#!/usr/bin/env bash
# SAS token minting, one core, side by side in one run: this SDK (release build), Python's stdlib doing the same
# work, and `openssl speed -hmac sha256` on 64-byte messages (the raw HMAC ceiling; a token signs ~60 bytes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh build
count=${SAS_BENCH_COUNT:-2000000}
echo "== building the benchmark (release)"
# A path dependency's new source files are not always noticed by an existing build folder: start clean.
rm -rf Benchmarks/.build
swift build -c release --package-path Benchmarks --product SASBenchmark >/dev/null
bin=$(swift build -c release --package-path Benchmarks --show-bin-path)/SASBenchmark
echo "== SAS tokens per second, one thread each ($(nproc) cores, $(uname -m))"
taskset -c 0 "$bin" "$count"
taskset -c 0 python3 Benchmarks/peers/sas_python.py $((count / 10))
echo "== ceiling: raw HMAC-SHA256 over 64-byte messages"
taskset -c 0 openssl speed -seconds 3 -bytes 64 -hmac sha256 2>/dev/null | awk '/^hmac\(sha256\)/ {
  rate = $2; sub(/k$/, "", rate); printf "openssl speed hmac(sha256) 64-byte: %d HMACs/s\n", rate * 1000 / 64 }'
