#!/usr/bin/env bash
# One command: install what is missing, build, and run the engine on its embedded
# defaults (embedded log under ./var/agentos, HTTP on 127.0.0.1:8080, demo tenant "demo").
# Extra arguments go to `agentos serve` (see `build/gateway/agentos serve --help`).
#
# PostgreSQL: with AGENTOS_PG_URL set, the engine gets `--pg-url "$AGENTOS_PG_URL"`; with
# `--pg-url` among the arguments, that one is used as is. Otherwise a private cluster is
# started (ops/pg-cluster.sh) in <data-dir>/pg, on 127.0.0.1 and a random port, with a
# database `agentos`; it keeps running after the engine exits. Stop it with
#   bash ops/pg-cluster.sh stop ./var/agentos/pg
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/install-deps.sh
bash ops/build.sh --target agentos

# The engine's data dir, as `agentos serve` picks it: --data-dir, else AGENTOS_DATA_DIR,
# else ./var/agentos (gateway/cmd/main.cc).
data_dir=${AGENTOS_DATA_DIR:-./var/agentos}
has_pg_url=0
help=0
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --pg-url | --pg-url=*) has_pg_url=1 ;;
    --data-dir) if ((i + 1 < ${#args[@]})); then data_dir=${args[i + 1]}; fi ;;
    --data-dir=*) data_dir=${args[i]#--data-dir=} ;;
    --help | -h) help=1 ;;
  esac
done

pg=()
if [ "$has_pg_url" -eq 1 ] || [ "$help" -eq 1 ]; then
  :
elif [ -n "${AGENTOS_PG_URL:-}" ]; then
  pg=(--pg-url "$AGENTOS_PG_URL")
else
  bash ops/pg-cluster.sh start "$data_dir/pg" auto >/dev/null
  pg=(--pg-url "$(bash ops/pg-cluster.sh createdb "$data_dir/pg" agentos)")
  echo "run: PostgreSQL ${pg[1]} (private cluster in $data_dir/pg; stop: bash ops/pg-cluster.sh stop $data_dir/pg)" >&2
fi

exec ./build/gateway/agentos serve --demo-tenant "${AGENTOS_DEMO_TENANT:-demo}" "${pg[@]}" "$@"
