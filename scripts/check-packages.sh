#!/usr/bin/env bash
# The Benchmarks and Fuzz packages refer to the SDK as package "AzureIoT", not by its checkout's folder name: this
# copies the tracked files into a folder with another name and builds there the fuzzers (sanitized, as
# Fuzz/README.md says) and the benchmark that needs only AzureIoTCore. The full benchmarks (`make bench-*`) are
# release builds of every module and stay out of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
copy="$work/azure-iot-swift-$$"
mkdir -p "$copy"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$copy"
echo "check-packages: building from $(basename "$copy")"
swift build --package-path "$copy/Fuzz" -c debug -Xswiftc -sanitize=fuzzer,address \
  -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld --product MQTTFuzzer >"$work/fuzz-mqtt.log" 2>&1 \
  || { tail -20 "$work/fuzz-mqtt.log"; exit 1; }
swift build --package-path "$copy/Fuzz" -c debug -Xswiftc -sanitize=fuzzer,address \
  -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld --product AMQPFuzzer >"$work/fuzz-amqp.log" 2>&1 \
  || { tail -20 "$work/fuzz-amqp.log"; exit 1; }
# A short run proves the binaries work: each fuzzer executes a few thousand inputs.
"$copy/Fuzz/.build/debug/MQTTFuzzer" -runs=2000 -max_len=512 >"$work/run-mqtt.log" 2>&1 || { tail -20 "$work/run-mqtt.log"; exit 1; }
"$copy/Fuzz/.build/debug/AMQPFuzzer" -runs=2000 -max_len=512 >"$work/run-amqp.log" 2>&1 || { tail -20 "$work/run-amqp.log"; exit 1; }
swift build --package-path "$copy/Fuzz" -c debug -Xswiftc -sanitize=fuzzer,address \
  -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld --product WebSocketFuzzer >"$work/fuzz-ws.log" 2>&1 \
  || { tail -20 "$work/fuzz-ws.log"; exit 1; }
"$copy/Fuzz/.build/debug/WebSocketFuzzer" -runs=2000 -max_len=512 >"$work/run-ws.log" 2>&1 || { tail -20 "$work/run-ws.log"; exit 1; }
echo "check-packages: Fuzz builds and runs (MQTTFuzzer, AMQPFuzzer, WebSocketFuzzer: 2000 inputs each)"
swift package --package-path "$copy/Benchmarks" describe >/dev/null
swift build --package-path "$copy/Benchmarks" --product SASBenchmark >"$work/bench.log" 2>&1 || { tail -20 "$work/bench.log"; exit 1; }
"$copy/Benchmarks/.build/debug/SASBenchmark" 1000 | head -1
# The codec's masking in an optimised build (a release-only fault once passed every debug test).
swift build -c release --package-path "$copy/Benchmarks" --product WebSocketMaskCheck >"$work/mask.log" 2>&1 \
  || { tail -20 "$work/mask.log"; exit 1; }
"$copy/Benchmarks/.build/release/WebSocketMaskCheck"
echo "check-packages: Benchmarks resolve and build"
