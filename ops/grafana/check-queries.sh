#!/usr/bin/env bash
# The dashboard must be valid JSON (node, which ops/install-deps.sh installs for the API
# linters) and every query of it valid PromQL (CTest: ops_grafana_queries): the
# panels' "expr" strings, with Grafana's variables given values ($__rate_interval: 5m,
# $instance: .*), become recording rules that `promtool check rules` parses.
# Usage: bash ops/grafana/check-queries.sh [DASHBOARD.json]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dash=${1:-$here/agentos.json}
node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$dash" ||
  { echo "check-queries: $dash is not valid JSON"; exit 1; }
rules=$(mktemp --suffix=.yml)
trap 'rm -f "$rules"' EXIT
# One "expr" per line (the file is indented JSON); undo JSON's \" and \\ escapes, then quote
# for YAML (single quotes, ' doubled).
exprs=$(grep -E '^\s*"expr": "' "$dash" | sed -E 's/^\s*"expr": "(.*)",?$/\1/; s/\\"/"/g; s/\\\\/\\/g')
[ -n "$exprs" ] || { echo "check-queries: no \"expr\" in $dash"; exit 1; }
{
  echo "groups:"
  echo "  - name: dashboard-queries"
  echo "    rules:"
  i=0
  while IFS= read -r e; do
    i=$((i + 1))
    e=${e//\$__rate_interval/5m}
    e=${e//\$instance/.*}
    echo "      - record: dashboard:query_$i"
    echo "        expr: '${e//\'/\'\'}'"
  done <<<"$exprs"
} >"$rules"
promtool check rules "$rules" >/dev/null || { promtool check rules "$rules"; exit 1; }
echo "check-queries: $(grep -c 'record:' "$rules") dashboard queries are valid PromQL"
