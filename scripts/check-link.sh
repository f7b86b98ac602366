#!/usr/bin/env bash
# Checks the product boundary that firmware teams rely on: an executable that imports AzureIoTCore, HubMQTT and
# HubAMQP (Tools/LinkCheck) needs OpenSSL but not libcurl, directly or through another library. The CLI, which also
# links DPSClient, must need libcurl; that proves the check sees it when it is there. The same for libsqlite3, which
# only the emulator (in the CLI) uses.
#   check-link.sh [BUILD_DIR]   (default .build/debug; builds the two executables when they are missing)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.build/debug}
[ -x "$dir/LinkCheck" ] || swift build --product LinkCheck
[ -x "$dir/azure-iot" ] || swift build --product azure-iot
needs() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
status=0
if needs "$dir/azure-iot" | grep -q '^libcurl'; then
  echo "check-link: azure-iot needs libcurl (DPSClient), as expected"
else
  echo "check-link: azure-iot does not list libcurl; the check cannot see it"; status=1
fi
if needs "$dir/LinkCheck" | grep -q '^libcurl' || ldd "$dir/LinkCheck" | grep -q 'libcurl'; then
  echo "check-link: AzureIoTCore/HubMQTT/HubAMQP pull in libcurl:"; ldd "$dir/LinkCheck" | grep curl; status=1
else
  echo "check-link: AzureIoTCore, HubMQTT, HubAMQP and AzureIoTDevice link without libcurl ($(needs "$dir/LinkCheck" | grep -E '^lib(ssl|crypto)' | tr '\n' ' '))"
fi
# SQLite is the emulator's (--data-dir): the CLI links it, a device never does.
if needs "$dir/azure-iot" | grep -q '^libsqlite3'; then
  echo "check-link: azure-iot needs libsqlite3 (the emulator's durable state), as expected"
else
  echo "check-link: azure-iot does not list libsqlite3; the check cannot see it"; status=1
fi
if ldd "$dir/LinkCheck" | grep -q 'libsqlite3'; then
  echo "check-link: AzureIoTCore/HubMQTT/HubAMQP pull in libsqlite3"; status=1
else
  echo "check-link: the device modules link without libsqlite3"
fi
needs "$dir/LinkCheck" | grep -q '^libssl' || { echo "check-link: LinkCheck does not need libssl: nothing was linked?"; status=1; }
exit $status
