#!/usr/bin/env bash
# Installs what the SDK needs on Debian/Ubuntu when it is missing; does nothing when all is there.
#   ensure-deps.sh build   compilers' system libraries (OpenSSL, libcurl, pkg-config)
#   ensure-deps.sh test    the above plus the test peers and tools (openssl CLI, curl, python3)
set -euo pipefail
mode=${1:-build}
packages=(libssl-dev libcurl4-openssl-dev pkg-config openssl)
if [ "$mode" = test ]; then
  packages+=(curl python3 ca-certificates mosquitto mosquitto-clients coreutils)
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
command -v swift >/dev/null || { echo "swift is not on PATH: install a Swift 6.1+ toolchain (swift.org)" >&2; exit 1; }
