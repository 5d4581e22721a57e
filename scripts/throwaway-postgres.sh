#!/usr/bin/env bash
# Sourced by scripts/test.sh: start_throwaway_postgres / stop_throwaway_postgres.
# Creates a private Postgres cluster (trust auth, fsync off, loopback only) on a free port and
# exports BURNCLOUD_TEST_DATABASE_URL pointing at its `postgres` database.

find_pg_bin() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
    return
  fi
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return; }
  done
  command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)"
}

start_throwaway_postgres() {
  PG_BIN=$(find_pg_bin || true)
  if [ -z "$PG_BIN" ]; then
    echo "error: the PostgreSQL server (initdb, pg_ctl) is not installed." >&2
    echo "       Install Debian's package:  apt-get install postgresql" >&2
    echo "       or set BURNCLOUD_TEST_DATABASE_URL=postgres://USER@HOST:PORT/postgres" >&2
    exit 1
  fi
  PG_DIR=$(mktemp -d /tmp/burncloud-pg.XXXXXX)
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local as_pg=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$PG_DIR"
    as_pg=(runuser -u postgres --)
  fi
  (cd /tmp && "${as_pg[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" --auth=trust -U postgres --no-sync -E UTF8 >"$PG_DIR/initdb.log" 2>&1) \
    || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
  (cd /tmp && "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null) || { cat "$PG_DIR/server.log" >&2; exit 1; }
  export BURNCLOUD_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "started a throwaway Postgres ($("$PG_BIN/postgres" --version)) on port $PG_PORT"
}

stop_throwaway_postgres() {
  [ -n "${PG_DIR:-}" ] || return 0
  local as_pg=()
  [ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
  (cd /tmp && "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1) || true
  rm -rf "$PG_DIR"
}
