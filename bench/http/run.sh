#!/usr/bin/env bash
# HTTP API benchmarks with wrk on loopback: `gatehouse api` (release build) on the embedded
# SQLite store in a temporary data directory.
#
#   bench/http/run.sh [GATEHOUSE_BINARY]
#
# Measures, for each connection count in BENCH_CONNECTIONS:
#   - accepted writes per second to POST /add_entitlement (bench/http/add_entitlement.lua),
#   - reads per second: GET /healthz, GET /devices?limit=10, GET /devices/{id} over seeded devices
#     (bench/http/get.lua),
# with wrk --latency, and the server's resident memory (VmRSS) idle, after seeding, and the
# peak sampled during each run. Results go to stdout and to $BENCH_OUT (default
# /tmp/gatehouse-bench-http.txt).
#
# Settings (environment):
#   GATEHOUSE_BIN       binary (default: `swift build -c release --product gatehouse`, .build/release/gatehouse)
#   BENCH_DURATION      seconds per wrk run (default 12)
#   BENCH_CONNECTIONS   connection counts (default "8 32 64")
#   BENCH_THREADS       wrk threads (default 2)
#   BENCH_DEVICES       devices seeded for the GET /devices/{id} run (default 10000)
#   GATEHOUSE_LOG_LEVEL server log level (default info: one access-log line per request, to a file)
#   GATEHOUSE_HTTP_THREADS  server event-loop threads (default: the server's own, 4 per core)
#
# No worker runs, so every accepted write stays in the outbox; GATEHOUSE_OUTBOX_LIMIT is raised so the
# backlog guard (503) does not cut the write runs short. The devices for the read run are inserted
# straight into the SQLite file (python3 sqlite3) before the server starts, as the worker would have.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
command -v wrk >/dev/null || { echo "run.sh: wrk is not installed (Debian: apt-get install wrk)" >&2; exit 2; }

BIN="${1:-${GATEHOUSE_BIN:-}}"
if [ -z "$BIN" ]; then
    swift build -c release --product gatehouse >&2
    BIN=".build/release/gatehouse"
fi
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
DURATION="${BENCH_DURATION:-12}"
CONNECTIONS="${BENCH_CONNECTIONS:-8 32 64}"
WRK_THREADS="${BENCH_THREADS:-2}"
DEVICES="${BENCH_DEVICES:-10000}"
OUT="${BENCH_OUT:-/tmp/gatehouse-bench-http.txt}"
SCRIPTS="$(pwd)/bench/http"

RUN_DIR="$(mktemp -d /tmp/gatehouse-bench-http.XXXXXX)"
SERVER_PID=""
cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    [ "${BENCH_KEEP:-0}" = 1 ] && echo "run.sh: kept $RUN_DIR" >&2 || rm -rf "$RUN_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export GATEHOUSE_DATA_DIR="$RUN_DIR/data"
export GATEHOUSE_KEK_FILE="$RUN_DIR/kek.hex"
export GATEHOUSE_HTTP_ADDR="127.0.0.1:0"
export GATEHOUSE_LOG_LEVEL="${GATEHOUSE_LOG_LEVEL:-info}"
export GATEHOUSE_OUTBOX_LIMIT=100000000
mkdir -p "$GATEHOUSE_DATA_DIR"
"$BIN" keygen --kek "$GATEHOUSE_KEK_FILE" >/dev/null
export GATEHOUSE_TOKEN="$("$BIN" token create bench --scopes read,write 2>/dev/null | tail -1)"

# Seed devices (the schema exists now: `token create` migrated the database).
python3 - "$GATEHOUSE_DATA_DIR/gatehouse.db" "$DEVICES" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1]); now = int(time.time() * 1000)
db.executemany("INSERT INTO devices (device_id, status, key_version, created_at, updated_at) VALUES (?, 'active', 0, ?, ?)",
               (("bench-dev-%d" % i, now, now) for i in range(int(sys.argv[2]))))
db.commit()
PY

"$BIN" api >"$RUN_DIR/server.log" 2>&1 &
SERVER_PID=$!
PORT=""
for _ in $(seq 1 150); do
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$RUN_DIR/server.log" >&2; exit 1; }
    PORT="$(grep -o '"http.address":"127\.0\.0\.1:[0-9]*"' "$RUN_DIR/server.log" | head -1 | grep -oE '[0-9]+"$' | tr -d '"' || true)"
    [ -n "$PORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "run.sh: the server did not start" >&2; exit 1; }
BASE="http://127.0.0.1:$PORT"
curl -fsS -m 5 "$BASE/healthz" >/dev/null

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status"; }   # kB
# Samples VmRSS every 0.2 s while wrk runs; prints the peak in kB.
run_wrk() {
    local label="$1"; shift
    local peak=0 value
    wrk "$@" >"$RUN_DIR/wrk.txt" 2>&1 &
    local wrk_pid=$!
    while kill -0 "$wrk_pid" 2>/dev/null; do
        value=$(rss); [ "$value" -gt "$peak" ] && peak=$value
        sleep 0.2
    done
    wait "$wrk_pid"
    {
        echo "### $label"
        echo "\$ wrk $*"
        cat "$RUN_DIR/wrk.txt"
        echo "server VmRSS peak during the run: $((peak / 1024)) MiB; after: $(( $(rss) / 1024 )) MiB"
        echo
    } | tee -a "$OUT"
}

{
    echo "# gatehouse HTTP API benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); kernel $(uname -r)"
    echo "binary: $BIN; $(wrk -v 2>&1 | head -1)"
    echo "server: GATEHOUSE_LOG_LEVEL=$GATEHOUSE_LOG_LEVEL, GATEHOUSE_HTTP_THREADS=${GATEHOUSE_HTTP_THREADS:-default}, SQLite in $RUN_DIR; $DEVICES devices seeded"
    echo "server VmRSS idle: $(( $(rss) / 1024 )) MiB"
    echo
} | tee "$OUT"

for c in $CONNECTIONS; do
    run_wrk "GET /healthz, $c connections" -t"$WRK_THREADS" -c"$c" -d"${DURATION}s" --latency \
        -s "$SCRIPTS/get.lua" "$BASE"
done
for c in $CONNECTIONS; do
    GATEHOUSE_DEVICES="$DEVICES" run_wrk "GET /devices/{id} over $DEVICES devices, $c connections" \
        -t"$WRK_THREADS" -c"$c" -d"${DURATION}s" --latency -s "$SCRIPTS/get.lua" "$BASE"
done
GATEHOUSE_PATHS="/devices?limit=10" run_wrk "GET /devices?limit=10, 32 connections" \
    -t"$WRK_THREADS" -c32 -d"${DURATION}s" --latency -s "$SCRIPTS/get.lua" "$BASE"
for c in $CONNECTIONS; do
    GATEHOUSE_RUN="c$c" run_wrk "POST /add_entitlement, $c connections" -t"$WRK_THREADS" -c"$c" -d"${DURATION}s" --latency \
        -s "$SCRIPTS/add_entitlement.lua" "$BASE"
done
{
    echo "outbox rows after the write runs: $(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM outbox').fetchone()[0])" "$GATEHOUSE_DATA_DIR/gatehouse.db")"
    echo "database size: $(du -sh "$GATEHOUSE_DATA_DIR" | cut -f1)"
    echo "server VmRSS at the end: $(( $(rss) / 1024 )) MiB"
    grep -o '"http.status":"5[0-9][0-9]"' "$RUN_DIR/server.log" | sort | uniq -c | sed 's/^/5xx in the server log: /' || echo "5xx in the server log: none"
} | tee -a "$OUT"
