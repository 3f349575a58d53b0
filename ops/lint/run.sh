#!/usr/bin/env bash
# Runs one of the pinned API linters from ops/lint/node_modules (ops/install-deps.sh
# installs them: npm ci --prefix ops/lint, exact versions in package-lock.json). CTest
# runs both (tests/CMakeLists.txt: api_openapi_lint, api_asyncapi_validate).
#   bash ops/lint/run.sh openapi    redocly lint gateway/openapi.yaml (rules: ops/lint/redocly.yaml)
#   bash ops/lint/run.sh asyncapi   asyncapi validate gateway/asyncapi.yaml (a warning fails too)
# Both tools' telemetry and update checks are off (the environment below, and the analytics
# file the AsyncAPI CLI would otherwise create in $HOME).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$here/node_modules/.bin
if [ ! -x "$bin/redocly" ] || [ ! -x "$bin/asyncapi" ]; then
  echo "ops/lint: the linters are not installed; run: bash ops/install-deps.sh (it runs npm ci --prefix ops/lint)" >&2
  exit 1
fi
export CI=true REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true ASYNCAPI_SKIP_NEW_VERSION_CHECK=true
export ASYNCAPI_METRICS_CONFIG_PATH="$here/asyncapi-analytics.json"
case "${1:-}" in
  openapi) exec "$bin/redocly" lint --config "$here/redocly.yaml" "$root/gateway/openapi.yaml" ;;
  asyncapi) exec "$bin/asyncapi" validate --fail-severity warn "$root/gateway/asyncapi.yaml" ;;
  *) echo "usage: bash ops/lint/run.sh openapi|asyncapi" >&2; exit 2 ;;
esac
