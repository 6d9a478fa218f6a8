#!/usr/bin/env bash
# Property-based API tests with schemathesis against a live `gatehouse api`.
#
#   scripts/schemathesis.sh [GATEHOUSE_BINARY] [-- EXTRA SCHEMATHESIS ARGS]
#
# What it does:
#   1. installs schemathesis from PyPI when it is missing or not major version 4
#      (pinned: SCHEMATHESIS_VERSION, default 4.32.5; the CLI flags below are v4 flags);
#   2. uses the given binary (argument, or GATEHOUSE_BIN), else runs `swift build` and
#      uses .build/debug/gatehouse;
#   3. makes a temporary data directory (GATEHOUSE_DATA_DIR), a fresh KEK
#      (`gatehouse keygen --kek`) and an admin token (scopes read,write,keys);
#   4. starts `gatehouse api` on 127.0.0.1 with a kernel-chosen port (read back from the
#      `http.listening` log line) and waits for /healthz (bounded);
#   5. runs schemathesis on http://127.0.0.1:PORT/openapi.json with the bearer token and the
#      checks not_a_server_error, status_code_conformance, content_type_conformance,
#      response_headers_conformance, response_schema_conformance;
#      (one worker: hypothesis on Python 3.11 can fail with "AST constructor recursion depth
#      mismatch" when two workers build strategies at once);
#   6. stops the server (trap) and exits non-zero on any failure.
#
# Settings (environment):
#   GATEHOUSE_BIN              the gatehouse binary (same as the first argument)
#   GATEHOUSE_DATABASE_URL     optional, e.g. mysql://gatehouse:gatehouse@127.0.0.1:33306/gatehouse_test;
#                              default: the embedded SQLite file in the temporary data directory
#   SCHEMATHESIS_MAX_EXAMPLES  generated cases per operation and phase (default 40)
#   SCHEMATHESIS_SEED          random seed (default 20240601, so CI runs are reproducible;
#                              set it to "random" for a new seed each run)
#   SCHEMATHESIS_TIMEOUT       hard bound for the whole schemathesis run, seconds (default 600)
#   SCHEMATHESIS_VERSION       version to install when schemathesis is missing (default 4.32.5)
#   SCHEMATHESIS_KEEP=1        keep the run directory (server log, JUnit report) after the run
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi

BIN="${GATEHOUSE_BIN:-}"
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) BIN="$1"; shift ;;
    esac
done

SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-40}"
SEED="${SCHEMATHESIS_SEED:-20240601}"
RUN_TIMEOUT="${SCHEMATHESIS_TIMEOUT:-600}"

# --- schemathesis -----------------------------------------------------------------------
st_major() { schemathesis --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1 | cut -d. -f1; }
if ! command -v schemathesis >/dev/null 2>&1 || [ "$(st_major)" != "4" ]; then
    echo "schemathesis.sh: installing schemathesis==$SCHEMATHESIS_VERSION from PyPI" >&2
    python3 -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION" >&2
    hash -r
fi
echo "schemathesis.sh: $(schemathesis --version 2>&1 | head -1)" >&2

# --- gatehouse binary -------------------------------------------------------------------
if [ -z "$BIN" ]; then
    swift build --product gatehouse >&2
    BIN=".build/debug/gatehouse"
fi
[ -x "$BIN" ] || { echo "schemathesis.sh: $BIN is not an executable" >&2; exit 2; }
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

# --- a private server -------------------------------------------------------------------
RUN_DIR="$(mktemp -d /tmp/gatehouse-schemathesis.XXXXXX)"
SERVER_PID=""
cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] || [ "${SCHEMATHESIS_KEEP:-0}" = 1 ]; then
        echo "schemathesis.sh: run directory kept: $RUN_DIR (server.log, report/)" >&2
    else
        rm -rf "$RUN_DIR"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export GATEHOUSE_DATA_DIR="$RUN_DIR/data"
export GATEHOUSE_KEK_FILE="$RUN_DIR/kek.hex"
export GATEHOUSE_HTTP_ADDR="127.0.0.1:0"
export GATEHOUSE_LOG_LEVEL="${GATEHOUSE_LOG_LEVEL:-info}"
mkdir -p "$GATEHOUSE_DATA_DIR"
"$BIN" keygen --kek "$GATEHOUSE_KEK_FILE" >/dev/null
TOKEN_NAME="schemathesis-$(date +%s)-$$"
TOKEN="$("$BIN" token create "$TOKEN_NAME" --scopes read,write,keys 2>/dev/null | tail -1)"
[ -n "$TOKEN" ] || { echo "schemathesis.sh: token create printed nothing" >&2; exit 1; }

"$BIN" api >"$RUN_DIR/server.log" 2>&1 &
SERVER_PID=$!

PORT=""
for _ in $(seq 1 150); do       # 15 s to listen
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "schemathesis.sh: gatehouse api exited:" >&2; tail -20 "$RUN_DIR/server.log" >&2; exit 1; }
    PORT="$(grep -o '"http.address":"127\.0\.0\.1:[0-9]*"' "$RUN_DIR/server.log" | head -1 | grep -oE '[0-9]+"$' | tr -d '"' || true)"
    [ -n "$PORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "schemathesis.sh: the server did not report its address" >&2; tail -20 "$RUN_DIR/server.log" >&2; exit 1; }
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do        # 10 s for /healthz
    if curl -fsS -m 2 "$BASE/healthz" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -fsS -m 2 "$BASE/healthz" >/dev/null || { echo "schemathesis.sh: /healthz does not answer on $BASE" >&2; exit 1; }
echo "schemathesis.sh: gatehouse api (pid $SERVER_PID) on $BASE, data in $RUN_DIR, database ${GATEHOUSE_DATABASE_URL:-sqlite (embedded)}" >&2

# --- the run ----------------------------------------------------------------------------
SEED_ARGS=()
[ "$SEED" = random ] || SEED_ARGS=(--seed "$SEED")
status=0
timeout --signal=INT --kill-after=30 "$RUN_TIMEOUT" \
    schemathesis run "$BASE/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$MAX_EXAMPLES" \
    "${SEED_ARGS[@]}" \
    --workers 1 \
    --request-timeout 10 \
    --suppress-health-check all \
    --report junit --report-dir "$RUN_DIR/report" \
    --output-sanitize true \
    "${EXTRA[@]}" || status=$?

# The server must still be up and sane after the run.
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "schemathesis.sh: gatehouse api died during the run" >&2; tail -20 "$RUN_DIR/server.log" >&2; status=1
elif ! curl -fsS -m 5 "$BASE/readyz" >/dev/null; then
    echo "schemathesis.sh: /readyz fails after the run" >&2; status=1
fi
if grep -q '"http.status":"5[0-9][0-9]"' "$RUN_DIR/server.log"; then
    echo "schemathesis.sh: the server answered 5xx during the run:" >&2
    grep '"http.status":"5[0-9][0-9]"' "$RUN_DIR/server.log" | head -5 >&2
    status=1
fi
[ "$status" -eq 0 ] && echo "schemathesis.sh: passed" >&2 || echo "schemathesis.sh: FAILED (status $status)" >&2
exit "$status"
