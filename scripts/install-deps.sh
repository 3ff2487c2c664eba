#!/usr/bin/env bash
# Installs the Debian packages Switchyard's build and tests need (idempotent).
# Pingora's zlib-ng needs cmake; the tests start their own redis-server instances.
set -euo pipefail
packages=(cmake perl make gcc g++ pkg-config curl redis-server modsecurity-crs)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
export DEBIAN_FRONTEND=noninteractive
run apt-get update -qq
run apt-get install -y -qq "${missing[@]}"
