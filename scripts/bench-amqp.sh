#!/usr/bin/env bash
# Settled AMQP sends (256-byte bodies) over TLS + SASL PLAIN to the local qpid-proton peer: this SDK vs qpid-proton's
# Python client and uamqp (the write-up's library), same count, interleaved rounds with medians; plus transfer-frame
# codec rate and heap use.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh test
python=.build-peers/venv/bin/python
count=${AMQP_BENCH_COUNT:-10000}
work=$(mktemp -d)
trap 'kill $peer 2>/dev/null || true; rm -rf "$work"' EXIT
Tests/Peers/make-test-pki.sh "$work/pki" >/dev/null
token=$(swift run -q azure-iot sas --resource benchhub.azure-devices.net/devices/bench --key MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY= --ttl 3600)
ptoken=$(swift run -q azure-iot sas --resource benchhub.azure-devices.net/devices/proton --key MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY= --ttl 3600)
mkdir -p "$work/sasl"
printf 'pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: %s\nmech_list: PLAIN\n' "$work/sasl/sasldb2" > "$work/sasl/proton-server.conf"
printf '%s' "$token" | saslpasswd2 -c -p -f "$work/sasl/sasldb2" -u sas.benchhub bench
printf '%s' "$ptoken" | saslpasswd2 -c -p -f "$work/sasl/sasldb2" -u sas.benchhub proton
utoken=$(swift run -q azure-iot sas --resource benchhub.azure-devices.net/devices/uamqp --key MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY= --ttl 3600)
printf '%s' "$utoken" | saslpasswd2 -c -p -f "$work/sasl/sasldb2" -u sas.benchhub uamqp
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo '[]' > "$work/c2d.json"
PN_SASL_CONFIG_PATH="$work/sasl" "$python" Tests/Peers/amqp_server.py "$port" "$work/pki/server.pem" "$work/pki/server.key" \
  "$work/sasl" /dev/null "$work/c2d.json" > "$work/peer.log" 2>&1 &
peer=$!
until grep -q READY "$work/peer.log"; do sleep 0.05; done
gcc -O2 -shared -fPIC -o "$work/malloc_counter.so" Benchmarks/peers/malloc_counter.c
echo "== building the benchmark (release)"
# A path dependency's new source files are not always noticed by an existing build folder: start clean.
rm -rf Benchmarks/.build
swift build -c release --package-path Benchmarks --product AMQPBenchmark >/dev/null
bin=$(swift build -c release --package-path Benchmarks --show-bin-path)/AMQPBenchmark
echo "== settled sends, 256-byte messages, TLS + SASL PLAIN to qpid-proton 0.40 (Python peer) on 127.0.0.1:$port, $count each"
# Each client's own CPU time is printed after its line: the Python peer shares the 2 cores, so a client that needs
# less CPU leaves the peer more, and the rates of the three clients sit within the peer's noise.
cpu() { /usr/bin/time -f "  client CPU: %U s user + %S s system" "$@"; }
LD_PRELOAD="$work/malloc_counter.so" cpu "$bin" client "$port" "$work/pki/ca.pem" "$count" 1 "$token"
rounds=${AMQP_BENCH_ROUNDS:-3}
echo "$rounds rounds, the contenders interleaved in each round (the peers below send as fast as the peer's link"
echo "credit, 1000, allows: the same in-flight limit as the last SDK line):"
for round in $(seq 1 "$rounds"); do
    echo "-- round $round"
    cpu "$bin" client "$port" "$work/pki/ca.pem" "$count" 64 "$token" 2>&1 | tee -a "$work/results"
    cpu "$bin" client "$port" "$work/pki/ca.pem" "$count" 1000 "$token" 2>&1 | tee -a "$work/results"
    cpu timeout 300 "$python" Benchmarks/peers/amqp_proton_client.py "$port" "$work/pki/ca.pem" "$count" proton@sas.benchhub "$ptoken" 2>&1 | tee -a "$work/results"
    cpu timeout 300 .build-peers/clients/bin/python Benchmarks/peers/amqp_uamqp_client.py "$port" "$work/pki/ca.pem" "$count" uamqp@sas.benchhub "$utoken" uamqp 2>&1 | tee -a "$work/results"
done
echo "-- medians over $rounds rounds (msg/s)"
python3 - "$work/results" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    found = re.search(r"= (\d+) msg/s", line)
    if not found:
        continue
    rate = float(found.group(1))
    name = "swift 64 in flight" if "64 in flight" in line else "swift 1000 in flight" if "1000 in flight" in line else line.split(":")[0].split(" (")[0]
    runs.setdefault(name, []).append(rate)
medians = {name: statistics.median(rates) for name, rates in runs.items()}
for name, median in medians.items():
    print(f"{name:22} {median:7.0f}   runs: {', '.join(f'{r:.0f}' for r in runs[name])}")
peers = max(median for name, median in medians.items() if not name.startswith("swift"))
print(f"swift 1000 in flight / the faster peer = {medians['swift 1000 in flight'] / peers:.2f}x, 64 in flight: {medians['swift 64 in flight'] / peers:.2f}x")
PY
echo "== codec"
LD_PRELOAD="$work/malloc_counter.so" "$bin" codec 1000000
