#!/usr/bin/env bash
# QoS 1 telemetry (256-byte bodies, 20 in flight) to the emulator (release build): this SDK over MQTT in a WebSocket
# vs paho-mqtt over WebSockets (transport="websockets"), and the cost of the WebSocket layer: each client's plain MQTT
# against the same emulator. Interleaved rounds, medians, client CPU per message; one run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh test
count=${MQTT_WS_BENCH_COUNT:-20000}
rounds=${MQTT_WS_BENCH_ROUNDS:-3}
python=.build-peers/clients/bin/python
work=$(mktemp -d)
emulator=
trap 'kill $emulator 2>/dev/null || true; rm -rf "$work"' EXIT
echo "== building the benchmark and the emulator (release)"
rm -rf Benchmarks/.build
swift build -c release --package-path Benchmarks --product MQTTBenchmark >/dev/null
bin=$(swift build -c release --package-path Benchmarks --show-bin-path)/MQTTBenchmark
swift build -c release --product azure-iot >/dev/null
cli="$(swift build -c release --show-bin-path)/azure-iot"
key=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
cat > "$work/emulator.json" <<JSON
{"hubName": "bench-hub", "provisioning": {"idScope": "0ne00BENCH"},
 "devices": [{"deviceId": "bench", "primaryKey": "$key"}, {"deviceId": "paho", "primaryKey": "$key"}]}
JSON
"$cli" emulator --config "$work/emulator.json" > "$work/endpoints.json" 2> "$work/emulator.log" &
emulator=$!
until [ -s "$work/endpoints.json" ]; do sleep 0.05; done
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$work/endpoints.json" "$1"; }
mqtt_port=$(field 'd["mqtt"]["port"]')
ws_port=$(field 'd["webSockets"]["port"]')
ca=$(field 'd["caCertificatePath"]')
token=$("$cli" sas --resource bench-hub.azure-devices.net/devices/paho --key "$key" --ttl 86400)
cpu() { /usr/bin/time -f "  client CPU: %U s user + %S s system" "$@"; }
echo "== QoS 1, 256-byte messages, 20 in flight, to the emulator (MQTT :$mqtt_port, WebSockets :$ws_port)"
"$bin" client "$mqtt_port" "$ca" 2000 20 > /dev/null
"$bin" client "$ws_port" "$ca" 2000 20 ws > /dev/null
for round in $(seq 1 "$rounds"); do
    echo "-- round $round"
    sleep 1; cpu "$bin" client "$ws_port" "$ca" "$count" 20 ws 2>&1 | tee -a "$work/results"
    sleep 1; cpu "$bin" client "$mqtt_port" "$ca" "$count" 20 2>&1 | tee -a "$work/results"
    sleep 1; cpu "$python" Benchmarks/peers/paho_bench.py "$ws_port" "$ca" "$count" ws paho "$token" 2>&1 | tee -a "$work/results"
    sleep 1; cpu "$python" Benchmarks/peers/paho_bench.py "$mqtt_port" "$ca" "$count" tcp paho "$token" 2>&1 | tee -a "$work/results"
done
echo "-- medians over $rounds rounds"
python3 - "$work/results" "$count" <<'PY'
import re, statistics, sys
count = int(sys.argv[2])
rates, cpus, name = {}, {}, None
for line in open(sys.argv[1]):
    if "msg/s" in line:
        name = ("swift MQTT-WS" if "over WebSockets" in line else "swift MQTT" if line.startswith("swift")
                else "paho MQTT-WS" if line.startswith("paho-mqtt-ws") else "paho MQTT")
        rates.setdefault(name, []).append(float(re.search(r"= (\d+) msg/s", line).group(1)))
    elif "client CPU" in line and name:
        user, system = map(float, re.findall(r"([\d.]+) s", line))
        cpus.setdefault(name, []).append((user + system) / count * 1e6)
median = {n: statistics.median(r) for n, r in rates.items()}
for n in ["swift MQTT-WS", "paho MQTT-WS", "swift MQTT", "paho MQTT"]:
    print(f"{n:14} {median[n]:8.0f} msg/s   {statistics.median(cpus[n]):6.1f} µs CPU/msg   runs: "
          + ", ".join(f"{r:.0f}" for r in rates[n]))
print(f"swift MQTT-WS / paho MQTT-WS = {median['swift MQTT-WS'] / median['paho MQTT-WS']:.2f}x")
print(f"WebSocket layer: swift MQTT-WS / swift MQTT = {median['swift MQTT-WS'] / median['swift MQTT']:.2f}x throughput, "
      f"{statistics.median(cpus['swift MQTT-WS']) / statistics.median(cpus['swift MQTT']):.2f}x CPU per message")
PY
echo "  emulator CPU over the whole comparison: $(ps -o times= -p $emulator | tr -d ' ') s"
