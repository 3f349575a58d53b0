#!/usr/bin/env bash
# One command: install what is missing, build, and run the engine on its embedded
# defaults (embedded log under ./var/agentos, HTTP on 127.0.0.1:8080, demo tenant "demo").
# Extra arguments go to `agentos serve` (see `build/gateway/agentos serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/install-deps.sh
bash ops/build.sh --target agentos
exec ./build/gateway/agentos serve --demo-tenant "${AGENTOS_DEMO_TENANT:-demo}" "$@"
