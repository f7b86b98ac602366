#!/usr/bin/env bash
# DPS registrations per second and client CPU per registration against the local HTTPS DPS peer
# (Tests/Peers/dps_server.py), with 1, 100 and 1000 concurrent devices: this SDK vs curl (the write-ups' way, one
# curl process per request), in one run against the same server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh test
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
Tests/Peers/make-test-pki.sh "$work/pki" >/dev/null
group_key=$(head -c 32 /dev/urandom | base64)
cat > "$work/config.json" <<JSON
{"idScope": "0ne00BENCH1", "hub": "bench-hub.azure-devices.net", "groups": [{"groupId": "bench", "key": "$group_key"}],
 "behaviors": {}, "defaultBehavior": {"retryAfter": 0}, "serverCert": "$work/pki/server.pem", "serverKey": "$work/pki/server.key",
 "clientCA": "$work/pki/ca.pem"}
JSON
python3 Tests/Peers/dps_server.py "$work/config.json" /dev/null > "$work/server.out" 2>&1 &
server=$!
until grep -q READY "$work/server.out"; do sleep 0.05; done
port=$(awk '/READY/ {print $2}' "$work/server.out")
echo "== building the benchmark (release)"
# A path dependency's new source files are not always noticed by an existing build folder: start clean.
rm -rf Benchmarks/.build
swift build -c release --package-path Benchmarks --product DPSBenchmark >/dev/null
bin=$(swift build -c release --package-path Benchmarks --show-bin-path)/DPSBenchmark
echo "== DPS registrations (PUT register + GET operation, TLS, SAS group key) against dps_server.py on 127.0.0.1:$port"
for spec in "1 50" "100 500" "1000 1000"; do
  set -- $spec
  "$bin" "localhost:$port" 0ne00BENCH1 "$group_key" "$work/pki/ca.pem" "$1" "$2" "swift-$1"
  python3 Benchmarks/peers/dps_curl.py "localhost:$port" 0ne00BENCH1 "$group_key" "$work/pki/ca.pem" "$1" "$2" "curl-$1"
done
