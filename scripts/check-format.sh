#!/usr/bin/env bash
# Checks that every Swift file follows .swift-format (120 columns, 4-space indentation, the project's rules) with the
# toolchain's swift-format. `swift format format --in-place --recursive Sources Tests Tools Benchmarks/Sources
# Fuzz/Sources` fixes what it reports.
set -euo pipefail
cd "$(dirname "$0")/.."
if swift format lint --strict --recursive Sources Tests Tools Benchmarks/Sources Fuzz/Sources Package.swift \
  Benchmarks/Package.swift Fuzz/Package.swift; then
  echo "check-format: every Swift file follows .swift-format"
else
  echo "check-format: run: swift format format --in-place --recursive Sources Tests Tools Benchmarks/Sources Fuzz/Sources"
  exit 1
fi
