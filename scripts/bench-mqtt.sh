#!/usr/bin/env bash
# QoS 1 telemetry (256-byte bodies) over TLS to a local mosquitto: this SDK vs mosquitto_pub (libmosquitto, C) vs
# paho-mqtt (Python), same count, one run; plus the codec's PUBLISH encode+decode rate and heap use per PUBLISH.
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
echo "== QoS 1, 256-byte messages over TLS to mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}') on 127.0.0.1:$port, $count messages each"
"$bin" client "$port" "$work/pki/ca.pem" "$count" 20
"$bin" client "$port" "$work/pki/ca.pem" "$count" 64
python3 -c "import sys; sys.stdout.write(('x'*256+'\n')*$count)" > "$work/lines"
start=$(date +%s.%N)
mosquitto_pub -h localhost -p "$port" --cafile "$work/pki/ca.pem" -q 1 -i pub-bench -u u -P p -t devices/pub/messages/events/ -l < "$work/lines"
end=$(date +%s.%N)
python3 -c "print('mosquitto_pub -l: $count QoS1 msgs x 256 B in %.3f s = %.0f msg/s (max-inflight 20, includes connect+TLS)' % ($end-$start, $count/($end-$start)))"
python3 Benchmarks/peers/paho_bench.py "$port" "$work/pki/ca.pem" "$count"
echo "== codec"
LD_PRELOAD="$work/malloc_counter.so" "$bin" codec 2000000
