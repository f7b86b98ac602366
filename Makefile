# The two set-up commands of the README, plus benchmarks. Each installs what it needs when it is missing.
.PHONY: demo test api-check docs bench bench-sas bench-dps bench-mqtt bench-mqtt-ws bench-amqp build netfuzz

demo:
	@scripts/ensure-deps.sh build
	swift build --product azure-iot
	swift run --skip-build azure-iot demo

# Warnings in this package's own targets are errors here (and so in CI), not for users of the package.
test: export AZURE_IOT_WARNINGS_AS_ERRORS = 1
test:
	@scripts/ensure-deps.sh test
	swift build --build-tests
	scripts/check-format.sh
	scripts/check-link.sh
	scripts/check-packages.sh
	scripts/check-docs.sh
	swift test --skip-build --skip ManyClientsTests --skip NetworkFuzzerTests
	@# The network fuzzer's client and emulator processes, and 5,000 clients in one process, load both cores on
	@# their own: beside the other suites they starved them for 20 s and more. They run after everything else, alone.
	swift test --skip-build --filter NetworkFuzzerTests
	AZURE_IOT_MANY_CLIENTS=1 swift test --skip-build --filter ManyClientsTests

docs:
	scripts/check-docs.sh

# The public API of the library products against the commit in scripts/api-baseline (updated deliberately).
api-check:
	@scripts/ensure-deps.sh build
	scripts/check-api.sh

build:
	@scripts/ensure-deps.sh build
	swift build

bench: bench-sas bench-dps bench-mqtt bench-mqtt-ws bench-amqp

bench-sas:
	scripts/bench-sas.sh

bench-dps:
	scripts/bench-dps.sh

bench-mqtt:
	scripts/bench-mqtt.sh

bench-mqtt-ws:
	scripts/bench-mqtt-ws.sh

bench-amqp:
	scripts/bench-amqp.sh

# The network fuzzer against a fresh emulator: SECONDS=60 make netfuzz (SEED=n replays a run).
netfuzz:
	@scripts/ensure-deps.sh build
	swift build -c release --product azure-iot
	swift build -c release --product azure-iot-netfuzz
	.build/release/azure-iot-netfuzz --seconds $${SECONDS:-60} $${SEED:+--seed $$SEED}
