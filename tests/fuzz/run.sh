#!/usr/bin/env bash
# Builds the codec fuzzer with clang + libFuzzer + ASan/UBSan in its own build tree and runs
# it for N seconds (default 60), seeded with the golden samples (both the .aose bytes and
# their CloudEvent JSON). New corpus entries go to build-fuzz/corpus (not the source tree);
# crashes to build-fuzz/artifacts.
#   usage: tests/fuzz/run.sh [seconds] [extra libFuzzer flags...]
set -euo pipefail
SECONDS_TO_RUN="${1:-60}"
shift || true
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"

EXTRA=()
# Until tests/CMakeLists.txt has `add_subdirectory(fuzz)`, pull the fuzz folder in from here.
if ! grep -q 'add_subdirectory(fuzz)' "$ROOT/tests/CMakeLists.txt"; then
  EXTRA+=("-DCMAKE_PROJECT_INCLUDE=$ROOT/tests/fuzz/standalone.cmake")
fi
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ "${EXTRA[@]}" >/dev/null
cmake --build "$BUILD" -j2 --target agentos_codec_fuzz

mkdir -p "$BUILD/corpus" "$BUILD/artifacts"
cp -n "$ROOT"/tests/golden/v*/*.aose "$ROOT"/tests/golden/v*/*.json "$BUILD/corpus/" 2>/dev/null || true
FUZZER="$(find "$BUILD" -name agentos_codec_fuzz -type f -perm -u+x | head -1)"
exec "$FUZZER" -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$BUILD/artifacts/" -print_final_stats=1 "$@" "$BUILD/corpus"
