#!/usr/bin/env bash
# The soak test (not in CI; docs/reliability.md): the release binary against a throwaway Postgres
# and a fake upstream on 127.0.0.1, mixed plain and streamed traffic from several tenants for
# SOAK_SECS, Postgres stopped for SOAK_PG_DOWN_SECS at a third of the run, then: graceful
# shutdown, `burncloud audit`, no panic in the log, every request settled at most once and at the
# right price, leases given back, RSS bounded. Exits non-zero when any check fails.
#
#   scripts/soak.sh                       # 10 minutes (SOAK_SECS=600)
#   SOAK_SECS=90 SOAK_PG_DOWN_SECS=15 scripts/soak.sh   # a quick rehearsal
#
# Settings (environment): SOAK_SECS (600), SOAK_PG_DOWN_SECS (60), SOAK_PG_DOWN_AT (SOAK_SECS/3),
# SOAK_TENANTS (5; the last one is poor and runs out of money), SOAK_CLIENTS_PER_TENANT (4),
# SOAK_CHUNK_MS (20: the fake upstream's delay per stream chunk), SOAK_OUT (the results directory,
# default $CARGO_TARGET_DIR/soak/<stamp>), SOAK_SKIP_BUILD=1 (use the binary as built),
# SOAK_STRICT_OUTAGE=1 (also fail when requests answered during the outage went unsettled),
# SOAK_LOG (the gateway's log filter, default warn), SOAK_BIN (another binary, e.g. a debug build,
# with SOAK_SKIP_BUILD=1). CARGO_TARGET_DIR is respected.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SOAK_SECS=${SOAK_SECS:-600}
SOAK_PG_DOWN_SECS=${SOAK_PG_DOWN_SECS:-60}
SOAK_PG_DOWN_AT=${SOAK_PG_DOWN_AT:-$((SOAK_SECS / 3))}
SOAK_TENANTS=${SOAK_TENANTS:-5}
SOAK_CLIENTS_PER_TENANT=${SOAK_CLIENTS_PER_TENANT:-4}
SOAK_CHUNK_MS=${SOAK_CHUNK_MS:-20}
SOAK_STRICT_OUTAGE=${SOAK_STRICT_OUTAGE:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${SOAK_OUT:-$TARGET/soak/$(date -u +%Y%m%dT%H%M%SZ)}
BIN=${SOAK_BIN:-$TARGET/release/burncloud}

for n in SOAK_SECS SOAK_PG_DOWN_SECS SOAK_PG_DOWN_AT SOAK_TENANTS SOAK_CLIENTS_PER_TENANT; do
  [[ ${!n} =~ ^[0-9]+$ ]] || { echo "soak: $n must be a whole number" >&2; exit 2; }
done
[ "$SOAK_TENANTS" -ge 2 ] && [ "$SOAK_TENANTS" -le 50 ] || { echo "soak: SOAK_TENANTS: 2 to 50" >&2; exit 2; }
command -v psql >/dev/null || { echo "soak: psql is needed (apt-get install postgresql-client)" >&2; exit 2; }
command -v curl >/dev/null || { echo "soak: curl is needed" >&2; exit 2; }

if [ "${SOAK_SKIP_BUILD:-0}" != 1 ]; then
  echo "soak: building the release binary (CARGO_TARGET_DIR=$TARGET)"
  cargo build --release --locked --bin burncloud
fi
[ -x "$BIN" ] || { echo "soak: $BIN is missing" >&2; exit 2; }
mkdir -p "$OUT"
echo "soak: results in $OUT"

# shellcheck source=scripts/throwaway-postgres.sh
source "$ROOT/scripts/throwaway-postgres.sh"
UP_PID=""
BC_PID=""
cleanup() {
  # Only the processes this script started, by their ids.
  [ -n "$BC_PID" ] && kill -KILL "$BC_PID" 2>/dev/null || true
  [ -n "$UP_PID" ] && kill -TERM "$UP_PID" 2>/dev/null || true
  stop_throwaway_postgres
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start_throwaway_postgres
AS_PG=()
[ "$(id -u)" = 0 ] && AS_PG=(runuser -u postgres --)
# The same options as start_throwaway_postgres, so the restarted server is the same server.
PG_OPTS="-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
PG_STOP_CMD="cd /tmp && ${AS_PG[*]} $PG_BIN/pg_ctl -D $PG_DIR/data -m fast -w -t 60 stop"
PG_START_CMD="cd /tmp && ${AS_PG[*]} $PG_BIN/pg_ctl -D $PG_DIR/data -l $PG_DIR/server.log -w -t 60 -o '$PG_OPTS' start"
psql -X -q -v ON_ERROR_STOP=1 "$BURNCLOUD_TEST_DATABASE_URL" -c "CREATE DATABASE soak" >/dev/null
DSN="postgres://postgres@127.0.0.1:$PG_PORT/soak"

# The fake upstream.
python3 "$ROOT/scripts/soak_upstream.py" --port 0 --chunk-ms "$SOAK_CHUNK_MS" >"$OUT/upstream.out" 2>"$OUT/upstream.err" &
UP_PID=$!
UP_PORT=""
for _ in $(seq 1 100); do
  UP_PORT=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$OUT/upstream.out" 2>/dev/null || true)
  [ -n "$UP_PORT" ] && break
  sleep 0.1
done
[ -n "$UP_PORT" ] || { echo "soak: the fake upstream did not start" >&2; cat "$OUT/upstream.err" >&2; exit 1; }

# The tenants: the last one has 0.05 and runs out (429 insufficient_quota from then on).
BC_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KEYS=""
{
  cat <<EOF
[[channels]]
name = "soak-upstream"
type = "openai"
base_url = "http://127.0.0.1:$UP_PORT/v1"
key = "sk-soak-upstream"
models = ["mock-gpt"]

[[prices]]
model = "mock-gpt"
input = "2.50"
output = "10.00"
EOF
  for i in $(seq 1 "$SOAK_TENANTS"); do
    balance="1000.00"
    [ "$i" = "$SOAK_TENANTS" ] && balance="0.05"
    cat <<EOF

[[users]]
email = "soak-t$i@example.com"
balance = "$balance"
group = "default"

[[users.keys]]
key = "sk-soak-tenant-$i"
name = "soak"
EOF
  done
} >"$OUT/bootstrap.toml"
for i in $(seq 1 "$SOAK_TENANTS"); do KEYS="$KEYS${KEYS:+,}sk-soak-tenant-$i"; done

echo "soak: starting burncloud on 127.0.0.1:$BC_PORT (upstream :$UP_PORT, Postgres :$PG_PORT)"
env BURNCLOUD_LISTEN="127.0.0.1:$BC_PORT" BURNCLOUD_DATA_DIR="$OUT/data" DATABASE_URL="$DSN" \
  BURNCLOUD_LOG="${SOAK_LOG:-warn}" BURNCLOUD_ADMIN_PASSWORD="soak-admin-password" \
  "$BIN" serve --bootstrap "$OUT/bootstrap.toml" >"$OUT/burncloud.log" 2>&1 &
BC_PID=$!
ready=0
for _ in $(seq 1 120); do
  if curl -fsS -m 2 "http://127.0.0.1:$BC_PORT/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$BC_PID" 2>/dev/null || break
  sleep 0.5
done
[ "$ready" = 1 ] || { echo "soak: burncloud did not become ready" >&2; tail -20 "$OUT/burncloud.log" >&2; exit 1; }

echo "soak: driving $((SOAK_TENANTS * SOAK_CLIENTS_PER_TENANT)) clients for ${SOAK_SECS}s; Postgres down at ${SOAK_PG_DOWN_AT}s for ${SOAK_PG_DOWN_SECS}s"
python3 "$ROOT/scripts/soak_driver.py" drive --base "http://127.0.0.1:$BC_PORT" --keys "$KEYS" \
  --clients-per-tenant "$SOAK_CLIENTS_PER_TENANT" --secs "$SOAK_SECS" --pid "$BC_PID" \
  --pg-down-at "$SOAK_PG_DOWN_AT" --pg-down-secs "$SOAK_PG_DOWN_SECS" \
  --pg-stop-cmd "$PG_STOP_CMD" --pg-start-cmd "$PG_START_CMD" --out "$OUT"

# Settlements commit in the background: wait until the request log stops growing (at most 60 s).
prev=-1
for _ in $(seq 1 30); do
  cur=$(psql -X -At "$DSN" -c "SELECT count(*) FROM request_logs" 2>/dev/null || echo -2)
  [ "$cur" = "$prev" ] && break
  prev=$cur
  sleep 2
done
[ "$prev" -ge 0 ] 2>/dev/null || { echo "soak: the database did not answer after the outage" >&2; }

# Graceful shutdown: SIGTERM, then at most the grace period (30 s) plus 30 s.
kill -TERM "$BC_PID"
exit_rc=""
for _ in $(seq 1 120); do
  if ! kill -0 "$BC_PID" 2>/dev/null; then
    set +e; wait "$BC_PID"; exit_rc=$?; set -e
    break
  fi
  sleep 0.5
done
if [ -z "$exit_rc" ]; then
  echo "soak: burncloud did not stop within 60 s of SIGTERM" >&2
  exit_rc=124
fi
BC_PID=""

set +e
env DATABASE_URL="$DSN" BURNCLOUD_DATA_DIR="$OUT/data" "$BIN" audit >"$OUT/audit.txt" 2>&1
audit_rc=$?
set -e
panics=$(grep -ci panic "$OUT/burncloud.log" || true)
echo "soak: audit (exit $audit_rc): $(tail -1 "$OUT/audit.txt")"
[ "$panics" = 0 ] || grep -i panic "$OUT/burncloud.log" | head -5

set +e
python3 "$ROOT/scripts/soak_driver.py" check --out "$OUT" --dsn "$DSN" --secs "$SOAK_SECS" \
  --pg-down-at "$SOAK_PG_DOWN_AT" --expect-outage "$([ "$SOAK_PG_DOWN_SECS" -gt 0 ] && echo 1 || echo 0)" \
  --strict-outage "$SOAK_STRICT_OUTAGE" --audit-rc "$audit_rc" --panics "$panics" --exit-rc "$exit_rc"
rc=$?
set -e
cp "$PG_DIR/server.log" "$OUT/postgres.log" 2>/dev/null || true
echo "soak: $( [ "$rc" = 0 ] && echo PASS || echo FAIL ) (details: $OUT/summary.json, logs: $OUT/burncloud.log)"
exit "$rc"
