#!/usr/bin/env bash
# One command: install what is missing, build everything, run every test (CTest), fuzz.
# CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/install-deps.sh
bash ops/check-deps.sh   # layering rules a build cannot see (exit 1 names each breach)
start=$(date +%s)
bash ops/build.sh
echo "build: $(( $(date +%s) - start ))s"
(cd "${AGENTOS_BUILD_DIR:-build}" && ctest --output-on-failure --timeout 900 -j2 "$@")
# Fuzzing (tests/fuzz/README.md): each libFuzzer target, built with clang and ASan/UBSan in
# a tree of its own, runs AGENTOS_FUZZ_SECONDS (default 8, two targets side by side: about
# 90 s with the build on 2 cores; 0 replays corpus and regressions only; 600 for a long
# run) over its committed corpus and regressions; a crash or sanitizer report fails the run.
# After ctest, so that the fuzzers do not take CPU from timing-sensitive tests.
AGENTOS_FUZZ_BUILD_DIR="${AGENTOS_FUZZ_BUILD_DIR:-${AGENTOS_BUILD_DIR:-build}-fuzz}" \
  bash tests/fuzz/run.sh "${AGENTOS_FUZZ_SECONDS:-8}"
