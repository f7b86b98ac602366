#!/usr/bin/env bash
# Installs what the SDK needs on Debian/Ubuntu when it is missing; does nothing when all is there.
#   ensure-deps.sh build   compilers' system libraries (OpenSSL, libcurl, SQLite, pkg-config)
#   ensure-deps.sh test    the above plus the test peers and tools (openssl CLI, curl, python3)
set -euo pipefail
mode=${1:-build}
packages=(libssl-dev libcurl4-openssl-dev libsqlite3-dev pkg-config openssl)
if [ "$mode" = test ]; then
  packages+=(curl xxd python3 python3-venv python3-dev ca-certificates mosquitto mosquitto-clients coreutils
             libsasl2-dev sasl2-bin libsasl2-modules gcc tinyproxy microsocks squid krb5-kdc krb5-admin-server krb5-user)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ "$mode" = test ]; then
  # The AMQP test peer: qpid-proton's Python binding built from its sdist against cyrus-sasl, so that the server
  # side can check SASL PLAIN (pip's cached or prebuilt wheels lack cyrus). Kept in a venv under .build-peers/.
  venv="$(dirname "$0")/../.build-peers/venv"
  if ! "$venv/bin/python" -c 'import proton, sys; sys.exit(0 if proton.SASL.extended() else 1)' 2>/dev/null; then
    echo "building the qpid-proton test peer (once)"
    python3 -m venv "$venv"
    src=$(mktemp -d)
    "$venv/bin/pip" download -q --no-binary :all: --no-deps python-qpid-proton==0.40.0 -d "$src"
    "$venv/bin/pip" install -q --no-cache-dir --force-reinstall "$src"/python_qpid_proton-0.40.0.tar.gz
    rm -rf "$src"
    "$venv/bin/python" -c 'import proton, sys; sys.exit(0 if proton.SASL.extended() else 1)' \
      || { echo "qpid-proton was built without cyrus SASL" >&2; exit 1; }
  fi
  # Third-party clients for the emulator's fidelity tests: Azure's Python device SDK (with paho-mqtt 1.6.1) and
  # uamqp, the library of the raw-AMQP write-up.
  clients="$(dirname "$0")/../.build-peers/clients"
  # wsproto (sans-I/O RFC 6455) cross-checks the WebSocket codec in both directions.
  # azure-iot-hub (the service SDK) needs six beside it; it shares uamqp 1.6.11 with the device side.
  # azure-eventhub reads telemetry from the Event Hub-compatible endpoint (its own pyamqp, no uamqp);
  # azure-storage-blob uploads files to the emulator's blob endpoint.
  if ! "$clients/bin/python" -c \
    'import azure.iot.device, azure.iot.hub, azure.eventhub, azure.storage.blob, six, uamqp, paho.mqtt.client, wsproto' \
    2>/dev/null; then
    echo "installing the Python client peers (once)"
    python3 -m venv "$clients"
    "$clients/bin/pip" install -q 'azure-iot-device==2.14.0' 'azure-iot-hub==2.7.0' 'azure-eventhub==5.15.0' \
      'azure-storage-blob==12.26.0' 'six==1.17.0' 'uamqp==1.6.11' 'wsproto==1.2.0'
  fi
  # A third-party WebSocket server in front of a real broker: Debian's mosquitto is built without WebSockets, and
  # websockify refuses every sub-protocol but "binary"; amqtt serves MQTT over wss with sub-protocol "mqtt" (the
  # websockets library). Its own venv: it pins websockets and typer.
  amqtt="$(dirname "$0")/../.build-peers/amqtt"
  if ! "$amqtt/bin/python" -c 'import amqtt.broker' 2>/dev/null; then
    echo "installing the amqtt broker peer (once)"
    python3 -m venv "$amqtt"
    "$amqtt/bin/pip" install -q 'amqtt==0.12.1'
  fi
fi
command -v swift >/dev/null || { echo "swift is not on PATH: install a Swift 6.1+ toolchain (swift.org)" >&2; exit 1; }
