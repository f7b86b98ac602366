#!/usr/bin/env bash
# Settled AMQP sends (256-byte bodies) over TLS + SASL PLAIN: this SDK vs qpid-proton's Python client and uamqp (the
# write-up's library), same count, interleaved rounds with medians, against two peers: the local qpid-proton peer
# (Python: it is the bottleneck) and this package's emulator (release build: it is not, so the ratios measure the
# clients). Plus heap per settled send, the transfer-frame codec rate and its heap use.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh test
python=.build-peers/venv/bin/python
count=${AMQP_BENCH_COUNT:-10000}
work=$(mktemp -d)
peer=
emulator=
trap 'kill $peer $emulator 2>/dev/null || true; rm -rf "$work"' EXIT
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
# Interleaved rounds against the peer on port $1 trusting CA file $2 ($3 names the peer), then the medians.
compare() {
    local port=$1 ca=$2 results=$work/results-$3
    echo "$rounds rounds, the contenders interleaved in each round (the peers below send as fast as the peer's link"
    echo "credit allows: the SDK's 1000 in flight is the same or more):"
    for round in $(seq 1 "$rounds"); do
        echo "-- round $round"
        cpu "$bin" client "$port" "$ca" "$count" 64 "$token" 2>&1 | tee -a "$results"
        cpu "$bin" client "$port" "$ca" "$count" 1000 "$token" 2>&1 | tee -a "$results"
        cpu timeout 300 "$python" Benchmarks/peers/amqp_proton_client.py "$port" "$ca" "$count" proton@sas.benchhub "$ptoken" 2>&1 | tee -a "$results"
        cpu timeout 300 .build-peers/clients/bin/python Benchmarks/peers/amqp_uamqp_client.py "$port" "$ca" "$count" uamqp@sas.benchhub "$utoken" uamqp 2>&1 | tee -a "$results"
    done
    echo "-- medians over $rounds rounds against $3 (msg/s, and client CPU per message)"
    python3 - "$results" <<'PY'
import re, statistics, sys
runs, cpus, name = {}, {}, None
for line in open(sys.argv[1]):
    found = re.search(r"^(.*?): (?:\d+/)?(\d+) settled sends.*= (\d+) msg/s", line)
    if found:
        name = found.group(1).split(" (")[0]
        if "in flight" in line:
            name = "swift %s in flight" % re.search(r"(\d+) in flight", line).group(1)
        count = int(found.group(2))
        runs.setdefault(name, []).append(float(found.group(3)))
        continue
    found = re.search(r"client CPU: ([\d.]+) s user \+ ([\d.]+) s system", line)
    if found and name:
        cpus.setdefault(name, []).append((float(found.group(1)) + float(found.group(2))) / count * 1e6)
        name = None
medians = {name: statistics.median(rates) for name, rates in runs.items()}
for name, median in medians.items():
    cpu = statistics.median(cpus.get(name, [0]))
    print(f"{name:24} {median:7.0f} msg/s  {cpu:6.0f} us CPU/msg   runs: {', '.join(f'{r:.0f}' for r in runs[name])}")
peers = max(median for name, median in medians.items() if not name.startswith("swift"))
print(f"swift 1000 in flight / the faster peer = {medians['swift 1000 in flight'] / peers:.2f}x, 64 in flight: {medians['swift 64 in flight'] / peers:.2f}x")
PY
}
compare "$port" "$work/pki/ca.pem" "the qpid-proton peer"

echo "== the same against the emulator (azure-iot emulator, release build), a peer that is not the bottleneck"
swift build -c release --product azure-iot >/dev/null
key=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
cat > "$work/emulator.json" <<JSON
{"hubName": "benchhub", "provisioning": {"idScope": "0ne00BENCH"},
 "devices": [{"deviceId": "bench", "primaryKey": "$key"}, {"deviceId": "proton", "primaryKey": "$key"},
             {"deviceId": "uamqp", "primaryKey": "$key"}]}
JSON
"$(swift build -c release --show-bin-path)/azure-iot" emulator --config "$work/emulator.json" > "$work/endpoints.json" 2> "$work/emulator.log" &
emulator=$!
until [ -s "$work/endpoints.json" ]; do sleep 0.05; done
eport=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["amqp"]["port"])' "$work/endpoints.json")
eca=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["caCertificatePath"])' "$work/endpoints.json")
# Heap per settled send at steady state with 1, 4, 16 and 64 sends in flight: at 1, every send is a TLS record each
# way; with more, transfers and dispositions share records.
for window in 1 4 16 64; do
    LD_PRELOAD="$work/malloc_counter.so" cpu "$bin" client "$eport" "$eca" "$count" "$window" "$token"
done
compare "$eport" "$eca" "the emulator"
echo "  emulator CPU over the whole comparison: $(ps -o times= -p $emulator | tr -d ' ') s"
echo "== codec"
LD_PRELOAD="$work/malloc_counter.so" "$bin" codec 1000000
