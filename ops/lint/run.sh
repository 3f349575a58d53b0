#!/usr/bin/env bash
# Runs one of the pinned API linters (lint.js over ops/lint/node_modules; ops/install-deps.sh
# installs them: npm ci --prefix ops/lint, exact versions in package-lock.json). CTest runs
# both (tests/CMakeLists.txt: api_openapi_lint, api_asyncapi_validate).
#   bash ops/lint/run.sh openapi    Redocly's lint engine (what `redocly lint` runs) over
#                                   gateway/openapi.yaml, rules in ops/lint/redocly.yaml,
#                                   exceptions in ops/lint/.redocly.lint-ignore.yaml
#   bash ops/lint/run.sh asyncapi   the AsyncAPI parser's validation (what `asyncapi validate`
#                                   runs) of gateway/asyncapi.yaml; a warning fails too
# Neither library sends telemetry or checks for updates (the CLIs around them did).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ ! -d "$here/node_modules/@redocly/openapi-core" ] || [ ! -d "$here/node_modules/@asyncapi/parser" ]; then
  echo "ops/lint: the linters are not installed; run: bash ops/install-deps.sh (it runs npm ci --prefix ops/lint)" >&2
  exit 1
fi
case "${1:-}" in
  openapi) exec node "$here/lint.js" openapi "$root/gateway/openapi.yaml" "$here/redocly.yaml" ;;
  asyncapi) exec node "$here/lint.js" asyncapi "$root/gateway/asyncapi.yaml" ;;
  *) echo "usage: bash ops/lint/run.sh openapi|asyncapi" >&2; exit 2 ;;
esac
