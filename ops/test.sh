#!/usr/bin/env bash
# One command: install what is missing, build everything, run every test (CTest).
# CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/install-deps.sh
bash ops/check-deps.sh   # layering rules a build cannot see (exit 1 names each breach)
start=$(date +%s)
bash ops/build.sh
echo "build: $(( $(date +%s) - start ))s"
cd "${AGENTOS_BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 -j2 "$@"
