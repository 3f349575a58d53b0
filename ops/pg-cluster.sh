#!/usr/bin/env bash
# pg-cluster.sh — a private PostgreSQL cluster on loopback, for `ops/run.sh` and the tests.
# It is the only implementation: run.sh, the CTest fixture (tests/CMakeLists.txt) and the
# C++ harness (tests/support/pg_cluster.cc) all call this script.
#
#   pg-cluster.sh start    <datadir> [port|auto]  initdb if needed, start, print the URL
#   pg-cluster.sh stop     <datadir> [fast|immediate]  shut down (fast: the default;
#                                                 immediate: as if the server crashed,
#                                                 WAL recovery at the next start); fine if
#                                                 not running
#   pg-cluster.sh url      <datadir>              print the URL; exit 1 if not running
#   pg-cluster.sh createdb <datadir> <dbname>     create the database if missing, print its URL
#
# The cluster:
#  * listens on 127.0.0.1 only (no Unix socket), trust auth, superuser `postgres`;
#    the URL is postgresql://postgres@127.0.0.1:<port>/postgres, also written to
#    <datadir>/agentos-url. The server log is <datadir>/server.log.
#  * `auto` (the default) picks a random free port in 20000-60000 (retrying when the
#    port is taken); a restarted cluster tries its previous port first.
#  * durable by default (fsync on). AGENTOS_PG_NOSYNC=1 (the tests set it) runs initdb
#    --no-sync and starts with fsync, synchronous_commit and full_page_writes off.
#  * as root, initdb and pg_ctl run as the `postgres` OS user (PostgreSQL refuses root)
#    and the data directory belongs to it. That user must be able to reach the data
#    directory: directories this script creates are made traversable (o+x), and so is the
#    data directory's parent when it is a private (0700) directory of ours under the
#    temp dir (a test's mkdtemp). Any other unreachable ancestor is an error naming it.
#
# Environment: AGENTOS_PG_BIN (directory with initdb/pg_ctl; default: the newest
# /usr/lib/postgresql/*/bin), AGENTOS_PG_NOSYNC=1 (see above), TMPDIR.
# Exit status 0 on success; errors go to stderr (a failed start includes the log's tail).
set -euo pipefail

die() { echo "pg-cluster: $*" >&2; exit 1; }
usage() {
  cat >&2 <<'EOF'
usage: pg-cluster.sh start    <datadir> [port|auto]
       pg-cluster.sh stop     <datadir> [fast|immediate]
       pg-cluster.sh url      <datadir>
       pg-cluster.sh createdb <datadir> <dbname>
EOF
  exit 2
}

PG_USER=postgres

find_bin() {
  if [ -n "${AGENTOS_PG_BIN:-}" ]; then
    [ -x "$AGENTOS_PG_BIN/pg_ctl" ] || die "AGENTOS_PG_BIN=$AGENTOS_PG_BIN has no pg_ctl"
    echo "$AGENTOS_PG_BIN"; return
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return; fi
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return; fi
  die "no PostgreSQL server binaries (initdb, pg_ctl) found; install the 'postgresql' package (ops/install-deps.sh) or set AGENTOS_PG_BIN"
}

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

# Runs a server command as the cluster's owner: the postgres user when we are root. From
# "/" so that postgres never needs access to the caller's working directory. Fd 9 (the
# start lock, see cmd_start) is closed for the child: a postmaster inheriting it would
# hold the lock for its whole life.
as_owner() {
  if [ "$IS_ROOT" -eq 1 ]; then
    (cd / && runuser -u "$PG_USER" -- "$@") 9<&-
  else
    "$@" 9<&-
  fi
}

# 0 when a postmaster is running on the data directory.
is_running() {
  [ -f "$DATA/PG_VERSION" ] || return 1
  as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# The port of the running postmaster (line 4 of postmaster.pid).
running_port() {
  sed -n 4p "$DATA/postmaster.pid" 2>/dev/null
}

url_for() { echo "postgresql://$PG_USER@127.0.0.1:$1/${2:-postgres}"; }

# As root: makes sure the postgres user can traverse every ancestor of the data directory.
# $1: the directories mkdir -p created (made o+x unconditionally: they are ours).
ensure_reachable() {
  [ "$IS_ROOT" -eq 1 ] || return 0
  local d
  for d in "$@"; do chmod o+x "$d"; done
  local parent
  parent=$(dirname "$DATA")
  runuser -u "$PG_USER" -- test -x "$parent" 2>/dev/null && return 0
  # Find the first ancestor (from /) that postgres cannot traverse.
  local path="" part blocked=""
  IFS=/ read -r -a parts <<<"${parent#/}"
  for part in "${parts[@]}"; do
    path="$path/$part"
    if ! runuser -u "$PG_USER" -- test -x "$path" 2>/dev/null; then blocked=$path; break; fi
  done
  [ -n "$blocked" ] || blocked=$parent
  local tmp
  tmp=$(realpath -m "${TMPDIR:-/tmp}")
  # The mkdtemp case: the data directory's own parent, a private 0700 directory owned by
  # us directly under the temp dir. Opening it to traversal (0711) exposes no listing.
  if [ "$blocked" = "$parent" ] && [ "$(dirname "$parent")" = "$tmp" ] &&
     [ "$(stat -c %u "$parent")" = "$(id -u)" ]; then
    chmod go+x "$parent"
    runuser -u "$PG_USER" -- test -x "$parent" 2>/dev/null && return 0
  fi
  die "the '$PG_USER' user cannot traverse $blocked, so PostgreSQL cannot reach $DATA; run 'chmod o+x $blocked' or use a data directory elsewhere"
}

# Creates the data directory (and its missing ancestors) and makes it reachable.
make_datadir() {
  local created=() d=$DATA
  # The directories mkdir -p is about to create (so only those get chmod'ed).
  while [ ! -e "$d" ]; do created=("$d" "${created[@]+"${created[@]}"}"); d=$(dirname "$d"); done
  mkdir -p "$DATA"
  ensure_reachable "${created[@]+"${created[@]}"}"
}

init_cluster() {
  if [ -n "$(ls -A "$DATA")" ]; then
    die "$DATA is not empty but holds no cluster (no PG_VERSION); remove it or pick another directory"
  fi
  [ "$IS_ROOT" -eq 1 ] && chown "$PG_USER": "$DATA"
  local opts=(--auth=trust -U "$PG_USER" -E UTF8 --locale=C -D "$DATA")
  [ "${AGENTOS_PG_NOSYNC:-0}" = 1 ] && opts+=(--no-sync)
  local out
  if ! out=$(as_owner "$BIN/initdb" "${opts[@]}" 2>&1); then
    echo "$out" >&2
    die "initdb failed for $DATA"
  fi
  # Settings of a dev/test cluster. Appended last, so they win over initdb's defaults.
  as_owner tee -a "$DATA/postgresql.conf" >/dev/null <<'EOF'

# --- ops/pg-cluster.sh: a private dev/test cluster on loopback ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
shared_buffers = 128MB
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
}

# One pg_ctl start on `port`. 0: started; 1: the port is in use; 2: another failure
# (the log's new lines are on stderr).
try_start() {
  local port=$1 log="$DATA/server.log" before=0
  [ -f "$log" ] && before=$(stat -c %s "$log")
  local o="-p $port -c listen_addresses=127.0.0.1"
  [ "${AGENTOS_PG_NOSYNC:-0}" = 1 ] && o="$o -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  local out
  if out=$(as_owner "$BIN/pg_ctl" -D "$DATA" -l "$log" -w -t 60 -o "$o" start 2>&1); then
    return 0
  fi
  local tail_
  tail_=$(tail -c +"$((before + 1))" "$log" 2>/dev/null | tail -n 30 || true)
  if grep -q "Address already in use" <<<"$tail_"; then return 1; fi
  { echo "$out"; echo "--- $log (last lines) ---"; echo "$tail_"; } >&2
  return 2
}

write_url() {
  local url
  url=$(url_for "$1")
  # Written atomically, so a reader never sees half a URL.
  printf '%s\n' "$url" >"$DATA/agentos-url.tmp"
  chmod 0644 "$DATA/agentos-url.tmp"
  mv -f "$DATA/agentos-url.tmp" "$DATA/agentos-url"
  echo "$url"
}

cmd_start() {
  local want=${1:-auto}
  [[ "$want" == auto || "$want" =~ ^[0-9]+$ ]] || die "port must be a number or 'auto', not '$want'"
  [ -f "$DATA/PG_VERSION" ] || make_datadir
  # Serializes concurrent starts of the same data directory (flock on the directory
  # itself: nothing is written into it before initdb, which wants it empty).
  exec 9<"$DATA"
  flock -w 180 9 || die "another start of $DATA holds its lock for 180 s"
  [ -f "$DATA/PG_VERSION" ] || init_cluster
  if is_running; then
    local port
    port=$(running_port)
    [ -n "$port" ] || die "$DATA: running, but postmaster.pid names no port"
    if [ "$want" != auto ] && [ "$want" != "$port" ]; then
      echo "pg-cluster: $DATA already runs on port $port (not $want)" >&2
    fi
    write_url "$port"
    return 0
  fi
  if [ "$want" != auto ]; then
    local rc=0
    try_start "$want" || rc=$?
    [ "$rc" -eq 1 ] && die "port $want on 127.0.0.1 is in use"
    [ "$rc" -eq 0 ] || die "could not start the cluster in $DATA"
    write_url "$want"
    return 0
  fi
  local attempt port prev=""
  if [ -f "$DATA/agentos-url" ]; then
    prev=$(sed -n 's|.*@127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$DATA/agentos-url" | head -n 1)
  fi
  for attempt in $(seq 1 20); do
    if [ "$attempt" -eq 1 ] && [ -n "$prev" ]; then
      port=$prev
    else
      port=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
    fi
    local rc=0
    try_start "$port" || rc=$?
    if [ "$rc" -eq 0 ]; then write_url "$port"; return 0; fi
    [ "$rc" -eq 1 ] || die "could not start the cluster in $DATA"
  done
  die "could not find a free port for $DATA after 20 tries (see $DATA/server.log)"
}

cmd_stop() {
  local mode=${1:-fast}
  [[ "$mode" == fast || "$mode" == immediate ]] || die "stop mode must be 'fast' or 'immediate', not '$mode'"
  is_running || return 0
  local out
  if ! out=$(as_owner "$BIN/pg_ctl" -D "$DATA" -m "$mode" -w -t 60 stop 2>&1); then
    is_running || return 0  # stopped meanwhile by someone else
    echo "$out" >&2
    die "could not stop the cluster in $DATA"
  fi
}

cmd_url() {
  is_running || die "no cluster running in $DATA"
  [ -f "$DATA/agentos-url" ] || die "$DATA runs, but has no agentos-url (not started by this script?)"
  cat "$DATA/agentos-url"
}

cmd_createdb() {
  local db=${1:-}
  [[ "$db" =~ ^[A-Za-z0-9_]+$ ]] || die "database name must match [A-Za-z0-9_]+, got '$db'"
  is_running || die "no cluster running in $DATA (start it first)"
  local port admin
  port=$(running_port)
  admin=$(url_for "$port")
  local psql=("$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$admin")
  exists() { [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" = 1 ]; }
  if ! exists; then
    local out
    if ! out=$("${psql[@]}" -c "CREATE DATABASE \"$db\"" 2>&1); then
      exists || { echo "$out" >&2; die "could not create database $db"; }  # else: a concurrent create won
    fi
  fi
  url_for "$port" "$db"
}

[ $# -ge 2 ] || usage
CMD=$1
[ -n "$2" ] || die "empty data directory"
DATA=$(realpath -m -- "$2")
shift 2
BIN=$(find_bin)
if [ "$IS_ROOT" -eq 1 ] && ! id -u "$PG_USER" >/dev/null 2>&1; then
  die "running as root needs the '$PG_USER' OS user (created by the postgresql package)"
fi

case "$CMD" in
  start) [ $# -le 1 ] || usage; cmd_start "$@" ;;
  stop) [ $# -le 1 ] || usage; cmd_stop "$@" ;;
  url) [ $# -eq 0 ] || usage; cmd_url ;;
  createdb) [ $# -eq 1 ] || usage; cmd_createdb "$1" ;;
  *) usage ;;
esac
