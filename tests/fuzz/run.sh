#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) in a tree of their
# own and runs each for a bounded time over a fresh copy of its committed corpus
# (tests/fuzz/corpus/<target>/) plus its regressions (tests/fuzz/regressions/<target>/, each
# also replayed once on its own first). Exits non-zero when any target crashes, trips a
# sanitizer, leaks, times out on one input or runs out of memory; the input is then under
# <build>/fuzz-run/<target>/artifacts/ and the log says how to keep it as a regression.
# CI runs this from ops/test.sh. See tests/fuzz/README.md.
#
#   usage: tests/fuzz/run.sh [seconds] [target...]
#     seconds   fuzzing time per target (default 60); 0: replay corpus and regressions only
#     target    codec, stored, domain, http (default: all)
#   env: AGENTOS_FUZZ_BUILD_DIR  the build tree (default <repo>/build-fuzz)
#        AGENTOS_FUZZ_JOBS       build jobs, and targets run side by side (default: nproc)
#        AGENTOS_FUZZ_FLAGS      more libFuzzer flags for every run (e.g. "-seed=1")
#        AGENTOS_FUZZ_STRICT=1   targets skip no known bug (tests/fuzz/known_bugs.h)
set -euo pipefail
SECONDS_PER_TARGET="${1:-60}"
shift || true
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${AGENTOS_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
JOBS="${AGENTOS_FUZZ_JOBS:-$(nproc)}"
ALL_TARGETS=(codec stored domain http)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL_TARGETS[@]}")
read -r -a FLAGS <<<"${AGENTOS_FUZZ_FLAGS:-}"
case "$SECONDS_PER_TARGET" in '' | *[!0-9]*) echo "fuzz: seconds must be a number, got '$SECONDS_PER_TARGET'" >&2; exit 2 ;; esac

start=$(date +%s)
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ >/dev/null
BINARIES=()
for t in "${TARGETS[@]}"; do BINARIES+=("agentos_${t}_fuzz"); done
cmake --build "$BUILD" -j"$JOBS" --target "${BINARIES[@]}"
built=$(date +%s)

# One target: replay its regressions, then fuzz (or replay the corpus) over a fresh copy.
run_target() {
  local t="$1"
  local bin="$BUILD/tests/fuzz/agentos_${t}_fuzz" work="$BUILD/fuzz-run/$t"
  local regressions=()
  rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts"
  [ -x "$bin" ] || { echo "fuzz: $t: no such target ($bin)"; return 1; }
  cp "$ROOT/tests/fuzz/corpus/$t/"* "$work/corpus/"
  if [ -d "$ROOT/tests/fuzz/regressions/$t" ]; then
    # Only the folder's own files: open/ holds known, unfixed bugs (tests/fuzz/README.md).
    while IFS= read -r -d '' f; do regressions+=("$f"); done \
      < <(find "$ROOT/tests/fuzz/regressions/$t" -maxdepth 1 -type f ! -name '*.md' -print0 | sort -z)
  fi
  if [ ${#regressions[@]} -gt 0 ]; then
    "$bin" -artifact_prefix="$work/artifacts/" "${regressions[@]}" >"$work/regressions.log" 2>&1 || {
      echo "fuzz: $t: a regression input fails again (log: $work/regressions.log)"
      return 1
    }
    cp "${regressions[@]}" "$work/corpus/"
  fi
  local limit=(-max_total_time="$SECONDS_PER_TARGET")
  [ "$SECONDS_PER_TARGET" -eq 0 ] && limit=(-runs=0)
  "$bin" "${limit[@]}" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "${FLAGS[@]}" "$work/corpus" >"$work/fuzz.log" 2>&1 || {
    echo "fuzz: $t: FAILED (log: $work/fuzz.log)"
    return 1
  }
  echo "fuzz: $t: ok, $(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/fuzz.log" | grep -o '[0-9]*$') inputs run," \
       "${#regressions[@]} regressions replayed"
}

# Up to JOBS targets side by side; each writes its summary line and exit status to files.
mkdir -p "$BUILD/fuzz-run"
for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  ( rc=0; run_target "$t" >"$BUILD/fuzz-run/$t.summary" 2>&1 || rc=$?; echo "$rc" >"$BUILD/fuzz-run/$t.rc" ) &
done
wait
failed=()
for t in "${TARGETS[@]}"; do
  cat "$BUILD/fuzz-run/$t.summary"
  [ "$(cat "$BUILD/fuzz-run/$t.rc")" = 0 ] || failed+=("$t")
done
for t in "${failed[@]}"; do
  log="$BUILD/fuzz-run/$t/fuzz.log"
  [ -f "$BUILD/fuzz-run/$t/regressions.log" ] && ! [ -f "$log" ] && log="$BUILD/fuzz-run/$t/regressions.log"
  echo "---- $t: the end of $log"
  grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse)' "$log" | tail -n 60
  for a in "$BUILD/fuzz-run/$t/artifacts/"*; do
    [ -e "$a" ] || continue
    echo "---- $t: input saved as $a; to replay it on every CI run once the bug is fixed:"
    echo "     cp '$a' '$ROOT/tests/fuzz/regressions/$t/<what-it-found>'"
  done
done
echo "fuzz: build $((built - start))s, runs $(( $(date +%s) - built ))s (${SECONDS_PER_TARGET}s per target, $JOBS side by side)"
[ ${#failed[@]} -eq 0 ]
