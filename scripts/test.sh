#!/usr/bin/env bash
# The test command (see README.md). Runs the whole suite on SQLite and Postgres, then checks that
# every route the app serves was exercised by a test.
#
# Postgres: unless BURNCLOUD_TEST_DATABASE_URL points at a server, a throwaway cluster is created
# from the local installation (initdb/pg_ctl; as the `postgres` user when run as root) on a free
# port under a temporary directory, and removed afterwards. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${BURNCLOUD_TEST_DATABASE_URL:-}" ]; then
  # shellcheck source=scripts/throwaway-postgres.sh
  source scripts/throwaway-postgres.sh
  start_throwaway_postgres
  trap stop_throwaway_postgres EXIT
fi
# A venv at $1 with the pinned packages of requirements file $2, kept between runs and rebuilt
# only when the pins change.
prepare_venv() {
  local venv="$1" requirements="$2"
  if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    echo "preparing the venv $venv ($requirements)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
  fi
}
# The official SDKs the suite drives (tests/sdk/requirements.txt).
SDK_VENV="${BURNCLOUD_SDK_VENV:-$HOME/.cache/burncloud-sdk-venv}"
prepare_venv "$SDK_VENV" tests/sdk/requirements.txt
export BURNCLOUD_SDK_PYTHON="$SDK_VENV/bin/python"

# The real clients the client suite drives (tests/api/clients.rs): Claude Code and Codex CLI from
# npm (tests/clients/package-lock.json, `npm ci`), LangChain and llm from PyPI
# (tests/clients/requirements.txt, a venv of their own). Kept between runs; reinstalled only when
# the pins change. Without npm the client tests fail and say how to install them.
CLIENTS_DIR="${BURNCLOUD_CLIENTS_DIR:-$HOME/.cache/burncloud-clients}"
if ! cmp -s tests/clients/package-lock.json "$CLIENTS_DIR/npm/installed-lock.json" 2>/dev/null; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing the npm clients into $CLIENTS_DIR/npm"
    rm -rf "$CLIENTS_DIR/npm"
    mkdir -p "$CLIENTS_DIR/npm"
    cp tests/clients/package.json tests/clients/package-lock.json "$CLIENTS_DIR/npm/"
    (cd "$CLIENTS_DIR/npm" && npm ci --no-audit --no-fund --loglevel=error)
    cp tests/clients/package-lock.json "$CLIENTS_DIR/npm/installed-lock.json"
  else
    echo "warning: npm is not installed: the Claude Code and Codex tests will fail (apt-get install nodejs npm)"
  fi
fi
prepare_venv "$CLIENTS_DIR/venv" tests/clients/requirements.txt
export BURNCLOUD_CLAUDE="$CLIENTS_DIR/npm/node_modules/.bin/claude"
export BURNCLOUD_CODEX="$CLIENTS_DIR/npm/node_modules/.bin/codex"
export BURNCLOUD_CLIENTS_PYTHON="$CLIENTS_DIR/venv/bin/python"
export BURNCLOUD_LLM="$CLIENTS_DIR/venv/bin/llm"

echo "test databases: SQLite (one file per test) and Postgres at ${BURNCLOUD_TEST_DATABASE_URL%%\?*}"

# The browser tests (tests/api/browser.rs) need Chromium and chromedriver (Debian: chromium,
# chromium-driver); without them they fail and say so. Their screenshots (and notes on pages that
# scroll sideways) go to one directory, whose old PNGs and notes are removed first.
for program in chromium chromedriver; do
  command -v "$program" >/dev/null 2>&1 || echo "warning: $program is not installed: the browser tests will fail (apt-get install chromium chromium-driver)"
done
export BURNCLOUD_BROWSER_ARTIFACTS="${BURNCLOUD_BROWSER_ARTIFACTS:-${CARGO_TARGET_DIR:-$PWD/target}/browser-artifacts}"
[ -d "$BURNCLOUD_BROWSER_ARTIFACTS" ] && find "$BURNCLOUD_BROWSER_ARTIFACTS" -maxdepth 1 \( -name '*.png' -o -name '*-layout.txt' \) -delete

export BURNCLOUD_TEST_RUN_ID="run-$(date +%s)-$$"
results=$(mktemp)
RUST_BACKTRACE=${RUST_BACKTRACE:-0} cargo test "$@" 2>&1 | tee "$results"
# The route-coverage check reads what the run above recorded; it needs the whole suite to have run.
if [ "$#" -eq 0 ]; then
  cargo test --test api -- --ignored --exact route_coverage::every_route_is_exercised --nocapture 2>&1 | tee -a "$results"
fi
# The live provider suite (tests/api/live.rs) runs only with credentials (.env.example).
live_vars=(BURNCLOUD_LIVE_OPENAI_KEY BURNCLOUD_LIVE_ANTHROPIC_KEY BURNCLOUD_LIVE_GEMINI_KEY AWS_ACCESS_KEY_ID)
live_set=()
for v in "${live_vars[@]}"; do [ -n "${!v:-}" ] && live_set+=("$v"); done
if [ "$#" -eq 0 ] && [ "${#live_set[@]}" -gt 0 ]; then
  echo "live provider suite: running (credentials: ${live_set[*]})"
  cargo test --test api -- --ignored live:: --nocapture 2>&1 | tee -a "$results"
elif [ "$#" -eq 0 ]; then
  echo "live provider suite: NOT RUN (no credentials; set ${live_vars[*]} as in .env.example)"
fi
if [ -d "$BURNCLOUD_BROWSER_ARTIFACTS" ]; then
  echo "browser screenshots: $BURNCLOUD_BROWSER_ARTIFACTS ($(find "$BURNCLOUD_BROWSER_ARTIFACTS" -name '*.png' | wc -l) PNGs)"
  cat "$BURNCLOUD_BROWSER_ARTIFACTS"/*-layout.txt 2>/dev/null || true
fi
# One closing line over every test binary and both runs.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$results"
rm -f "$results"
