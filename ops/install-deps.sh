#!/usr/bin/env bash
# Installs every system dependency of the engine from Debian 12 packages, then the pinned
# npm tools (ops/lint, the API linters; ops/browser, the console test's browser driver:
# npm ci, exact versions from each package-lock.json).
# Idempotent: does nothing (no apt-get update, no npm) when everything is already present.
# Must run as root (or with sudo available); CI and the README commands call it first.
set -euo pipefail
cd "$(dirname "$0")/.."

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
  prometheus  # promtool: the alert rules' checks and unit tests (ops/prometheus)
  chromium    # the console's browser test (tests/console), headless
  gdb         # the crash tests show where an engine that does not exit on SIGTERM hangs
)
# Node and npm run the API linters (ops/lint). A machine that has them already (say from
# NodeSource, whose nodejs package bundles npm and conflicts with Debian's npm) keeps them;
# otherwise Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "install-deps: done"
fi

# The pinned npm tools, each folder with its package-lock.json: npm ci when its
# node_modules is missing or was installed from another package-lock.json (a stamp of its
# hash). ops/lint: the API linters; ops/browser: puppeteer-core, which drives Debian's
# chromium in the console's test (it downloads no browser). --ignore-scripts: none of the
# packages needs an install script, and none is let run one.
for dir in ops/lint ops/browser; do
  stamp=$dir/node_modules/.agentos-package-lock.sha256
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "install-deps: npm ci --prefix $dir"
    start=$(date +%s)
    npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
    echo "install-deps: $dir installed ($(( $(date +%s) - start ))s)"
  else
    echo "install-deps: $dir present (node_modules matches package-lock.json)"
  fi
done
