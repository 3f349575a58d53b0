#!/usr/bin/env bash
# Every agentos_* metric name the dashboard and the alert rules use must be one the engine
# exports, so they cannot drift from the code (CTest: ops_metric_names). A name counts as
# exported when the sources register it:
#   * literally, as a string ("agentos_http_requests_total" in gateway/metrics.cc, ...),
#     also with a histogram's _bucket/_sum/_count suffix;
#   * or, for agentos_processor_<g>, as a gauge a processor reports about its state
#     (Processor::report_gauges: out.set("<g>", ...) / out.set_labeled("<g>", ...) in
#     processors/, exported with the prefix by processors/metrics.cc).
# Usage: bash ops/check-metrics.sh [FILE...]   (default: the dashboard, the rules and their tests)
#        bash ops/check-metrics.sh --self-test (shows that an unknown name is caught)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--self-test" ]; then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  printf 'expr: rate(agentos_no_such_metric_total[5m]) > 0 and agentos_http_connections > 0\n' >"$tmp"
  if out=$(bash "$0" "$tmp" 2>&1); then
    echo "check-metrics self-test: a file naming agentos_no_such_metric_total passed"; exit 1
  fi
  if [[ $out != *"agentos_no_such_metric_total"* || $out == *"agentos_http_connections:"* ]]; then
    echo "check-metrics self-test: wrong verdicts:"; echo "$out"; exit 1
  fi
  echo "check-metrics self-test: the unknown name is caught, the real one passes"
  exit 0
fi
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=("$root/ops/grafana/agentos.json" "$root/ops/prometheus/alerts.yml" "$root/ops/prometheus/alerts_test.yml")
fi
src=("$root/events" "$root/gateway" "$root/processors" "$root/projections" "$root/replay")
names=$(grep -ohE 'agentos_[a-z0-9_]*[a-z0-9]' "${files[@]}" | sort -u)
[ -n "$names" ] || { echo "check-metrics: no agentos_* metric names in ${files[*]}"; exit 1; }
fail=0 count=0
for n in $names; do
  count=$((count + 1))
  found=0
  for cand in "$n" "${n%_bucket}" "${n%_sum}" "${n%_count}"; do
    if grep -rqF --include='*.cc' --include='*.h' "\"$cand\"" "${src[@]}"; then found=1; break; fi
  done
  if [ $found -eq 0 ] && [[ $n == agentos_processor_* ]]; then
    g=${n#agentos_processor_}
    if grep -rqE --include='*.cc' "out\.set(_labeled)?\(\"$g\"" "$root/processors"; then found=1; fi
  fi
  if [ $found -eq 0 ]; then
    echo "check-metrics: $n: not exported by the engine (no \"$n\" in events/, gateway/, processors/, projections/, replay/)"
    fail=1
  fi
done
[ $fail -eq 0 ] || exit 1
echo "check-metrics: all $count metric names are the engine's"
