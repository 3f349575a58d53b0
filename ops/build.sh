#!/usr/bin/env bash
# Configures and builds the engine (Release) into ./build. Used by run.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${AGENTOS_BUILD_DIR:-build}
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE="${AGENTOS_BUILD_TYPE:-Release}" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" "$@"
