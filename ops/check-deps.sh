#!/usr/bin/env bash
# The layering rules a build cannot see, checked on the sources (ops/test.sh runs it
# before building; exit 1 names every breach):
#   * projections/ folds the facts in the log: it never includes processors/ headers;
#   * gateway/ depends on narrow interfaces: no RocksDB, libpq or librdkafka header, and
#     outside its composition root (gateway/cmd/) no processors/, projections/ or replay/ header;
#   * replay/ is the top: processors/ and projections/ never include it;
#   * events/ is the bottom layer: it includes nothing of processors/, projections/,
#     gateway/ or replay/.
# Usage: bash ops/check-deps.sh [ROOT]   (default: the repository this script is in)
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
fail=0
breach() {  # <rule> <grep -E pattern> [grep options] <folder>
  local rule=$1 pattern=$2 hits
  shift 2
  hits=$(grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($pattern)" --include='*.h' --include='*.cc' "$@" || true)
  if [ -n "$hits" ]; then
    echo "check-deps: $rule:"
    echo "$hits" | sed 's/^/  /'
    fail=1
  fi
}
breach "projections/ includes a processors/ header (it folds facts, it never runs a processor)" \
  'processors/' projections
breach "gateway/ includes a storage or broker header (it depends on narrow interfaces)" \
  'rocksdb/|libpq-fe|libpq/|librdkafka/|pqxx' gateway
breach "gateway/ includes a processors/, projections/ or replay/ header outside its composition root (gateway/cmd/)" \
  'processors/|projections/|replay/' --exclude-dir=cmd gateway
breach "processors/ or projections/ includes a replay/ header (replay/ is the top layer)" \
  'replay/' processors projections
breach "events/ includes a header of a layer above it" \
  'processors/|projections/|gateway/|replay/' events
if [ "$fail" -ne 0 ]; then exit 1; fi
echo "check-deps: layering rules hold"
