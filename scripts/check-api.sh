#!/usr/bin/env bash
# Compares the public API of the library products with the recorded baseline commit (scripts/api-baseline) and
# fails on any breaking change. A deliberate break updates the baseline in the same commit:
#   git rev-parse HEAD > scripts/api-baseline   (after committing the new API), or list the accepted breakages in
#   scripts/api-breakage-allowlist.txt, one message per line as the tool prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=$(tr -d '[:space:]' < scripts/api-baseline)
git cat-file -e "$baseline^{commit}" 2>/dev/null || { echo "check-api: baseline $baseline is not in this clone (a shallow clone?)"; exit 1; }
swift package diagnose-api-breaking-changes "$baseline" \
  --products AzureIoTCore MQTTCodec AMQPCodec WebSocketCodec AzureIoTProxy DPSClient HubMQTT HubAMQP HubFileUpload AzureIoTEdge AzureIoTTesting AzureIoTEmulator \
  --breakage-allowlist-path scripts/api-breakage-allowlist.txt
