#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests, on loopback, started without systemd.
#   source scripts/pg_test_cluster.sh && pg_test_start   # exports ELASTIC_TEST_POSTGRES
#   pg_test_stop                                          # stops it if pg_test_start started it
# One cluster per checkout (its directory and port derive from the checkout's path), kept between
# runs: a re-run finds it initialised (no initdb) and, if it is already running, uses it as it is
# and leaves it running. Durability is off (fsync, full-page writes): the data is thrown away.

_pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$dir" ] || { echo "pg_test_cluster: PostgreSQL is not installed (scripts/setup.sh)" >&2; return 1; }
  echo "$dir"
}

pg_test_start() {
  local bin checkout hash
  bin=$(_pg_bin) || return 1
  checkout=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  hash=$(printf '%s' "$checkout" | cksum | cut -d' ' -f1)
  PG_TEST_PORT=${ELASTIC_TEST_PG_PORT:-$((20000 + hash % 10000))}
  # Under /tmp, not the checkout: the server runs as `postgres`, who may not enter /root or /work.
  PG_TEST_DIR=${ELASTIC_TEST_PG_DIR:-/tmp/elastic-api-pg-$hash}
  PG_TEST_STARTED=0
  local run=()
  if [ "$(id -u)" -eq 0 ]; then
    run=(runuser -u postgres --)
  fi
  mkdir -p "$PG_TEST_DIR"
  [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$PG_TEST_DIR"
  if [ ! -f "$PG_TEST_DIR/data/PG_VERSION" ]; then
    "${run[@]}" "$bin/initdb" -D "$PG_TEST_DIR/data" -U postgres --auth=trust --encoding=UTF8 \
      --locale=C.UTF-8 >"$PG_TEST_DIR/initdb.log" 2>&1 \
      || { cat "$PG_TEST_DIR/initdb.log" >&2; return 1; }
  fi
  if ! "${run[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" status >/dev/null 2>&1; then
    "${run[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/server.log" -w -t 30 start \
      -o "-k $PG_TEST_DIR -h 127.0.0.1 -p $PG_TEST_PORT -c fsync=off -c full_page_writes=off \
          -c synchronous_commit=off -c max_connections=200 -c shared_buffers=64MB" >/dev/null \
      || { tail -20 "$PG_TEST_DIR/server.log" >&2; return 1; }
    PG_TEST_STARTED=1
  fi
  export ELASTIC_TEST_POSTGRES="postgresql://postgres@127.0.0.1:$PG_TEST_PORT/postgres"
}

pg_test_stop() {
  local bin
  [ "${PG_TEST_STARTED:-0}" = 1 ] || return 0
  bin=$(_pg_bin) || return 0
  local run=()
  [ "$(id -u)" -ne 0 ] || run=(runuser -u postgres --)
  "${run[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  PG_TEST_STARTED=0
}
