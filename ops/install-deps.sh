#!/usr/bin/env bash
# Installs every system dependency of the engine from Debian 12 packages.
# Idempotent: does nothing (no apt-get update) when everything is already present.
# Must run as root (or with sudo available); CI and the README commands call it first.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config ninja-build
  librocksdb-dev
  libflatbuffers-dev flatbuffers-compiler flatbuffers-compiler-dev
  librdkafka-dev kcat
  libpqxx-dev libpq-dev postgresql
  redis-server libhiredis-dev
  libboost-dev
  prometheus-cpp-dev
  libsimdjson-dev nlohmann-json3-dev
  libssl-dev
  libcctz-dev tzdata
  libjemalloc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  curl
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
