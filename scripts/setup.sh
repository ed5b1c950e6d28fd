#!/usr/bin/env bash
# Installs the Debian packages deblur builds with, skipping what is already there; with --tests,
# also those only the tests need (headless Chromium for the serve page test).
# The CUDA toolkit is optional and comes with the machine (nvcc on PATH enables the backend).
set -euo pipefail
packages=(cmake g++ make pkg-config catch2 libstb-dev libbenchmark-dev nlohmann-json3-dev
          libcpp-httplib-dev)
case "${1:-}" in
  --tests) packages+=(chromium chromium-driver python3-selenium) ;;
  "") ;;
  *) echo "usage: setup.sh [--tests]" >&2; exit 2 ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
