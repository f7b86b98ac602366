#!/usr/bin/env bash
# QoS 1 telemetry (256-byte bodies) over TLS to a local mosquitto: this SDK (windows 20 and 64) vs mosquitto_pub
# (libmosquitto, C) vs paho-mqtt (Python), same count, interleaved over several rounds with medians; plus the
# codec's PUBLISH encode+decode rate and heap use per PUBLISH.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh test
python3 -c 'import paho.mqtt' 2>/dev/null || python3 -m pip install -q 'paho-mqtt<2'
count=${MQTT_BENCH_COUNT:-50000}
work=$(mktemp -d)
trap 'kill $broker 2>/dev/null || true; rm -rf "$work"' EXIT
Tests/Peers/make-test-pki.sh "$work/pki" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/mosquitto.conf" <<CONF
persistence false
user root
log_dest stderr
log_type error
max_queued_messages 1000000
listener $port 127.0.0.1
cafile $work/pki/ca.pem
certfile $work/pki/server.pem
keyfile $work/pki/server.key
allow_anonymous true
CONF
mosquitto -c "$work/mosquitto.conf" > "$work/broker.log" 2>&1 &
broker=$!
sleep 0.5
gcc -O2 -shared -fPIC -o "$work/malloc_counter.so" Benchmarks/peers/malloc_counter.c
echo "== building the benchmark (release)"
# A path dependency's new source files are not always noticed by an existing build folder: start clean.
rm -rf Benchmarks/.build
swift build -c release --package-path Benchmarks --product MQTTBenchmark >/dev/null
bin=$(swift build -c release --package-path Benchmarks --show-bin-path)/MQTTBenchmark
rounds=${MQTT_BENCH_ROUNDS:-5}
python3 -c "import sys; sys.stdout.write(('x'*256+'\n')*$count)" > "$work/lines"
mosquitto_pub_run() {
    local start end
    start=$(date +%s.%N)
    mosquitto_pub -h localhost -p "$port" --cafile "$work/pki/ca.pem" -q 1 -i pub-bench -u u -P p -t devices/pub/messages/events/ -l < "$1"
    end=$(date +%s.%N)
    python3 -c "print('mosquitto_pub -l: $2 QoS1 msgs x 256 B in %.3f s = %.0f msg/s (max-inflight 20, includes connect+TLS)' % ($end-$start, $2/($end-$start)))"
}
echo "== QoS 1, 256-byte messages over TLS to mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}') on 127.0.0.1:$port"
# A short unreported warm-up of every client: the first connection to a fresh broker right after a build is slow
# for whichever client comes first.
head -n 5000 "$work/lines" > "$work/warmup"
"$bin" client "$port" "$work/pki/ca.pem" 5000 20 > /dev/null
mosquitto_pub_run "$work/warmup" 5000 > /dev/null
echo "$rounds rounds, $count messages per run, the contenders interleaved in each round:"
# Every run starts after a one-second pause, so that no run inherits the tail of the previous one's load.
for round in $(seq 1 "$rounds"); do
    echo "-- round $round"
    sleep 1; "$bin" client "$port" "$work/pki/ca.pem" "$count" 20 | tee -a "$work/results"
    sleep 1; "$bin" client "$port" "$work/pki/ca.pem" "$count" 64 | tee -a "$work/results"
    sleep 1; mosquitto_pub_run "$work/lines" "$count" | tee -a "$work/results"
    sleep 1; python3 Benchmarks/peers/paho_bench.py "$port" "$work/pki/ca.pem" "$count" | tee -a "$work/results"
done
echo "-- medians over $rounds rounds (msg/s)"
python3 - "$work/results" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    rate = float(re.search(r"= (\d+) msg/s", line).group(1))
    name = "swift window 20" if "window 20" in line else "swift window 64" if "window 64" in line else line.split(":")[0].split(" ")[0]
    runs.setdefault(name, []).append(rate)
medians = {name: statistics.median(rates) for name, rates in runs.items()}
for name, median in medians.items():
    print(f"{name:16} {median:8.0f}   runs: {', '.join(f'{r:.0f}' for r in runs[name])}")
swift, pub, paho = medians["swift window 20"], medians["mosquitto_pub"], medians["paho-mqtt"]
print(f"swift window 20 / mosquitto_pub = {swift / pub:.2f}x, / paho-mqtt = {swift / paho:.2f}x")
PY
echo "== codec"
LD_PRELOAD="$work/malloc_counter.so" "$bin" codec 1000000
echo "== heap per QoS 1 send at steady state (the same malloc counter, LD_PRELOAD, counts every thread)"
heap_count=${MQTT_HEAP_COUNT:-20000}
for senders in 1 4 16; do
    LD_PRELOAD="$work/malloc_counter.so" "$bin" heap "$port" "$work/pki/ca.pem" "$heap_count" "$senders"
done
# mosquitto_pub cannot read the counter itself: two runs (N and 2N messages) print their totals at exit, and the
# difference over N is its steady-state cost per message (connect, TLS set-up and start-up cancel out).
head -n "$heap_count" "$work/lines" > "$work/heap-n" 2>/dev/null || python3 -c "import sys; sys.stdout.write(('x'*256+'\n')*$heap_count)" > "$work/heap-n"
cat "$work/heap-n" "$work/heap-n" > "$work/heap-2n"
for f in heap-n heap-2n; do
    AZI_MALLOC_REPORT=1 LD_PRELOAD="$work/malloc_counter.so" mosquitto_pub -h localhost -p "$port" --cafile "$work/pki/ca.pem" \
        -q 1 -i pub-heap -u u -P p -t devices/pub/messages/events/ -l < "$work/$f" 2> "$work/$f.report"
done
python3 - "$work/heap-n.report" "$work/heap-2n.report" "$heap_count" <<'PY'
import re, sys
def totals(path):
    calls, size = re.search(r"malloc_counter: (\d+) calls, (\d+) bytes", open(path).read()).groups()
    return int(calls), int(size)
(c1, b1), (c2, b2), n = totals(sys.argv[1]), totals(sys.argv[2]), int(sys.argv[3])
print(f"mosquitto_pub -l heap per QoS 1 message (256 B, max-inflight 20, steady state over {n} messages): "
      f"{(b2 - b1) / n:.0f} bytes in {(c2 - c1) / n:.1f} allocations")
print("Azure IoT C SDK: about 15 KB, the figure issue #11 cites from its documentation (not run here)")
PY
