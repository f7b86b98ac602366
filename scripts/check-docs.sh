#!/usr/bin/env bash
# Builds the DocC documentation of every library module with swift-docc-plugin (warnings are errors, so a broken
# symbol link or article reference fails) and checks that every public declaration has a doc comment.
#   check-docs.sh [MODULE…]
set -euo pipefail
cd "$(dirname "$0")/.."
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(AzureIoTCore MQTTCodec AMQPCodec WebSocketCodec AzureIoTProxy DPSClient HubMQTT HubAMQP AzureIoTDevice HubFileUpload AzureIoTEdge AzureIoTTesting AzureIoTEmulator)
status=0
scripts/check-doc-comments.py | tail -20 || status=1
for module in "${modules[@]}"; do
  log=$(mktemp)
  if swift package --disable-sandbox generate-documentation --target "$module" --warnings-as-errors >"$log" 2>&1; then
    echo "$module: documentation built"
  else
    echo "DocC failed for $module:"; grep -E "warning|error" "$log" | head -40
    status=1
  fi
  rm -f "$log"
done
exit $status
