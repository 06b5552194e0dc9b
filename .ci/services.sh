#!/usr/bin/env bash
# Starts the real servers the `stores` tests and the `fleet` example need, on loopback only:
#   - Redis (Debian's redis-server) on 127.0.0.1:6379
#   - PostgreSQL (Debian's postgresql) in its own throw-away cluster on 127.0.0.1:54329,
#     trust auth for local connections, database `stores_test`
# Idempotent: installs the packages only if missing (as root, one `apt-get update`), reuses
# servers that already answer, waits (bounded) until both answer.
#
# Use:  source .ci/services.sh          (exports STORES_REDIS_URL and STORES_PG_URL)
#   or: eval "$(bash .ci/services.sh)"   (prints the export lines on stdout, logs on stderr)
#
# Knobs (environment): STORES_PG_PORT (54329), STORES_PG_DIR (/tmp/stores-pg),
# STORES_REDIS_PORT (6379).

_stores_services() (
  set -euo pipefail
  local_log() { printf '[services] %s\n' "$*" >&2; }

  redis_port="${STORES_REDIS_PORT:-6379}"
  pg_port="${STORES_PG_PORT:-54329}"
  pg_dir="${STORES_PG_DIR:-/tmp/stores-pg}"

  # ---- packages --------------------------------------------------------------------------
  need=()
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then need+=(postgresql); fi
  command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
  if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      local_log "missing ${need[*]} and not root: install them first"
      exit 1
    fi
    local_log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
    pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi

  # ---- redis -----------------------------------------------------------------------------
  if redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG; then
    local_log "redis already answers on 127.0.0.1:$redis_port"
  else
    local_log "starting redis-server on 127.0.0.1:$redis_port"
    redis-server --bind 127.0.0.1 --port "$redis_port" --daemonize yes \
      --save '' --appendonly no --protected-mode yes \
      --logfile /tmp/stores-redis.log >&2
  fi

  # ---- postgresql ------------------------------------------------------------------------
  # PostgreSQL refuses to run as root: run it as the `postgres` system user when we are root.
  as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
      runuser -u postgres -- "$@"
    else
      "$@"
    fi
  }
  if "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" 2>/dev/null; then
    local_log "postgresql already answers on 127.0.0.1:$pg_port"
  else
    if [ ! -s "$pg_dir/PG_VERSION" ]; then
      local_log "initdb into $pg_dir"
      mkdir -p "$pg_dir"
      [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$pg_dir"
      chmod 700 "$pg_dir"
      as_pg "$pg_bin/initdb" -D "$pg_dir" -U postgres --auth=trust \
        --encoding=UTF8 --no-locale >/dev/null
    fi
    local_log "starting postgresql on 127.0.0.1:$pg_port"
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir" -l "$pg_dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c max_connections=200 -c fsync=off" \
      start >&2
  fi

  # ---- wait (bounded) ----------------------------------------------------------------------
  for _ in $(seq 1 60); do
    if redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG \
      && "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then
      break
    fi
    sleep 0.5
  done
  redis-cli -h 127.0.0.1 -p "$redis_port" ping | grep -q PONG \
    || { local_log "redis does not answer"; exit 1; }
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" \
    || { local_log "postgresql does not answer"; exit 1; }

  if ! psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'stores_test'" | grep -q 1; then
    psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qc "CREATE DATABASE stores_test" >&2
  fi
  local_log "redis and postgresql are up"
)

if _stores_services; then
  export STORES_REDIS_URL="redis://127.0.0.1:${STORES_REDIS_PORT:-6379}/"
  export STORES_PG_URL="postgres://postgres@127.0.0.1:${STORES_PG_PORT:-54329}/stores_test"
  echo "export STORES_REDIS_URL=$STORES_REDIS_URL"
  echo "export STORES_PG_URL=$STORES_PG_URL"
else
  echo "[services] could not start redis and postgresql" >&2
  # `return` when sourced, `exit` when run.
  return 1 2>/dev/null || exit 1
fi
