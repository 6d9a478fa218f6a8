#!/usr/bin/env bash
# Pipeline benchmark: accepted (202) -> processed (the request's EMMs committed), measured from
# the database (requests.accepted_at vs requests.processed_at, the latter set in the worker's
# transaction that stores the EMMs). See docs/benchmarks-pipeline.md.
#
#   bench/pipeline/run.sh embedded|serve|kafka [GATEHOUSE_BINARY]
#
#   embedded  `gatehouse api` + `gatehouse worker` (relay inside) on one SQLite file, embedded bus
#   serve     `gatehouse serve`: the same in one process (plus playout and monitor), as the README
#             starts it; no drain phase (the worker cannot be stopped on its own)
#   kafka     the same two processes on MariaDB (GATEHOUSE_DATABASE_URL=mysql://...) and a Kafka
#             broker (GATEHOUSE_BUS_URL=kafka://...); start both first:
#               scripts/mariadb.sh start /tmp/pipe-mariadb 35306
#               scripts/kafka.sh start /tmp/pipe-kafka 41092 && eval "$(scripts/kafka.sh env /tmp/pipe-kafka)"
#
# Phases (each bounded in count and time):
#   keys    register BENCH_DEVICES devices (POST /device_keys), wait until processed
#   drain   worker stopped; BENCH_BURST add_entitlement requests accepted as fast as wrk can;
#           then the worker starts and drains them: the worker side's throughput
#   burst   worker running; BENCH_BURST requests as fast as possible: end-to-end throughput
#           (processed / (last processed_at - first accepted_at)) and latency under overload
#   steady  worker running; BENCH_STEADY requests paced at about BENCH_RATE/s (below
#           saturation): 202 -> EMM ready latency p50/p99
#
# Settings (environment): BENCH_DEVICES (300), BENCH_BURST (20000), BENCH_STEADY (6000),
# BENCH_RATE (300), BENCH_CONNECTIONS (32), BENCH_THREADS (2), BENCH_TIMEOUT (seconds per
# phase, 180), BENCH_HTTP_PORT (41180), BENCH_MYSQL (mysql://gatehouse:gatehouse@127.0.0.1:35306),
# BENCH_KAFKA (127.0.0.1:41092), BENCH_OUT (/tmp/gatehouse-bench-pipeline-MODE.txt),
# BENCH_KEEP=1 keeps the run directory, BENCH_PERF=FILE perf-records the worker while it drains, BENCH_PERF_BURST=PREFIX both processes in the burst (PREFIX.api, PREFIX.worker). Worker/relay settings pass through (GATEHOUSE_RELAY_BATCH, ...).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE="${1:?usage: run.sh embedded|serve|kafka [GATEHOUSE_BINARY]}"
case "$MODE" in embedded|serve|kafka) ;; *) echo "run.sh: mode is embedded, serve or kafka" >&2; exit 2 ;; esac
command -v wrk >/dev/null || { echo "run.sh: wrk is not installed (Debian: apt-get install wrk)" >&2; exit 2; }
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
BIN="${2:-${GATEHOUSE_BIN:-}}"
if [ -z "$BIN" ]; then
    swift build -c release --product gatehouse >&2
    BIN=".build/release/gatehouse"
fi
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
HERE="$(pwd)/bench/pipeline"

DEVICES="${BENCH_DEVICES:-300}"
BURST="${BENCH_BURST:-20000}"
STEADY="${BENCH_STEADY:-6000}"
RATE="${BENCH_RATE:-300}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-2}"
TIMEOUT="${BENCH_TIMEOUT:-180}"
PORT="${BENCH_HTTP_PORT:-41180}"
OUT="${BENCH_OUT:-/tmp/gatehouse-bench-pipeline-$MODE.txt}"
RUN_ID="p$(date +%s)"

RUN_DIR="$(mktemp -d /tmp/gatehouse-bench-pipeline.XXXXXX)"
API_PID=""
WORKER_PID=""
stop_pid() {
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    local status=$?
    stop_pid "$WORKER_PID"
    stop_pid "$API_PID"
    [ "${BENCH_KEEP:-0}" = 1 ] && echo "run.sh: kept $RUN_DIR" >&2 || rm -rf "$RUN_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export GATEHOUSE_DATA_DIR="$RUN_DIR/data"
export GATEHOUSE_KEK_FILE="$RUN_DIR/kek.hex"
export GATEHOUSE_HTTP_ADDR="127.0.0.1:$PORT"
export GATEHOUSE_LOG_LEVEL="${GATEHOUSE_LOG_LEVEL:-warning}"
export GATEHOUSE_OUTBOX_LIMIT="${GATEHOUSE_OUTBOX_LIMIT:-100000000}"
mkdir -p "$GATEHOUSE_DATA_DIR"
touch "$RUN_DIR/worker.log"
if [ "$MODE" = kafka ]; then
    MYSQL_BASE="${BENCH_MYSQL:-mysql://gatehouse:gatehouse@127.0.0.1:35306}"
    DB_NAME="gatehouse_t_pipe_$RUN_ID"
    export GATEHOUSE_DATABASE_URL="$MYSQL_BASE/$DB_NAME"
    export GATEHOUSE_BUS_URL="kafka://${BENCH_KAFKA:-127.0.0.1:41092}"
    export GATEHOUSE_BUS_COMMANDS_TOPIC="pipe.commands.$RUN_ID"
    export GATEHOUSE_BUS_DLQ_TOPIC="pipe.dlq.$RUN_ID"
    export GATEHOUSE_BUS_GROUP="pipe-worker-$RUN_ID"
    # tansu's group join waits in proportion to the session timeout (docs/bus.md). tansu also
    # holds every fetch for fetch.wait.max.ms (librdkafka default 500 ms) even when records are
    # there; add fetch.wait.max.ms=10 for latency figures (costs broker CPU, see the doc).
    export GATEHOUSE_KAFKA_OPTIONS="${GATEHOUSE_KAFKA_OPTIONS:-session.timeout.ms=6000}"
    # user:pass@host:port
    hostpart="${MYSQL_BASE#mysql://}"; creds="${hostpart%@*}"; hostport="${hostpart#*@}"
    MY=(mariadb -N -B -u "${creds%%:*}" -p"${creds#*:}" -h "${hostport%%:*}" -P "${hostport##*:}" --protocol=tcp)
    "${MY[@]}" -e "CREATE DATABASE $DB_NAME"
    sql() { "${MY[@]}" "$DB_NAME" -e "$1"; }
else
    export GATEHOUSE_DATABASE_URL="sqlite:$GATEHOUSE_DATA_DIR/gatehouse.db"
    export GATEHOUSE_BUS_URL=embedded
    sql() {
        python3 - "$GATEHOUSE_DATA_DIR/gatehouse.db" "$1" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30)
for row in c.execute(sys.argv[2]):
    print("\t".join("NULL" if v is None else str(v) for v in row))
EOF
    }
fi
now_ms() { date +%s%3N; }
cpu_ms() { # utime + stime of a process, in ms
    awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat" 2>/dev/null || echo 0
}
log() { echo "$*" | tee -a "$OUT"; }
# CPU of the processes that take part: api, worker, and in kafka mode mariadbd and the broker
# (their pid files, if BENCH_MARIADB_DIR / BENCH_KAFKA_DIR name the directories of the scripts)
EXTRA_PIDS=()
if [ "$MODE" = kafka ]; then
    for f in "${BENCH_MARIADB_DIR:-/tmp/pipe-mariadb}/mariadbd.pid" "${BENCH_KAFKA_DIR:-/tmp/pipe-kafka}/tansu.pid"; do
        [ -f "$f" ] && EXTRA_PIDS+=("$(basename "$f" .pid):$(cat "$f")")
    done
fi
cpu_snapshot() {
    local out="api=$(cpu_ms "$API_PID") worker=$(cpu_ms "$WORKER_PID")" e
    [ "$MODE" = serve ] && out="serve=$(cpu_ms "$API_PID")"
    for e in "${EXTRA_PIDS[@]}"; do out+=" ${e%%:*}=$(cpu_ms "${e#*:}")"; done
    echo "$out"
}
cpu_delta() { # BEFORE AFTER ("name=ms ..." each) -> "name ms, ..."
    python3 -c 'import sys
a = dict(x.split("=") for x in sys.argv[1].split()); b = dict(x.split("=") for x in sys.argv[2].split())
print(", ".join("%s %d ms" % (k, int(b[k]) - int(a.get(k, 0))) for k in b))' "$1" "$2"
}

start_api() {
    "$BIN" "$([ "$MODE" = serve ] && echo serve || echo api)" >"$RUN_DIR/api.log" 2>&1 &
    API_PID=$!
    for _ in $(seq 1 300); do
        curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$API_PID" 2>/dev/null || { cat "$RUN_DIR/api.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "run.sh: the API did not come up" >&2; exit 1
}
start_worker() {
    [ "$MODE" = serve ] && { WORKER_PID=$API_PID; return 0; }  # serve runs the worker itself
    "$BIN" worker >>"$RUN_DIR/worker.log" 2>&1 &
    WORKER_PID=$!
}
stop_worker() { [ "$MODE" = serve ] || stop_pid "$WORKER_PID"; WORKER_PID=""; }
# wait until nothing accepted is left (bounded)
wait_processed() {
    local deadline=$(( $(date +%s) + TIMEOUT )) left
    while :; do
        left=$(sql "SELECT COUNT(*) FROM requests WHERE status = 'accepted'")
        [ "$left" = 0 ] && return 0
        [ "$(date +%s)" -ge "$deadline" ] && { log "  timeout: $left requests still accepted"; return 1; }
        kill -0 "$WORKER_PID" 2>/dev/null || { tail -20 "$RUN_DIR/worker.log" >&2; exit 1; }
        sleep 0.2
    done
}
# send COUNT writes of KIND (keys|entitlements) with PRODUCT_BASE and DELAY_MS per connection
load() {
    local kind=$1 count=$2 base=$3 delay=$4 connections=$5 done_dir="$RUN_DIR/done.$RANDOM" wrk_pid
    mkdir -p "$done_dir"
    GATEHOUSE_TOKEN="$TOKEN" BENCH_KIND="$kind" BENCH_DEVICES="$DEVICES" BENCH_PREFIX="$RUN_ID-" \
        BENCH_PER_THREAD=$(( (count + THREADS - 1) / THREADS )) BENCH_PRODUCT_BASE="$base" BENCH_DELAY_MS="$delay" \
        BENCH_DONE_DIR="$done_dir" wrk -t"$THREADS" -c"$connections" -d"${TIMEOUT}s" --timeout 10s -s "$HERE/load.lua" \
        "http://127.0.0.1:$PORT" >"$done_dir/wrk.out" 2>&1 &
    wrk_pid=$!
    while kill -0 "$wrk_pid" 2>/dev/null; do
        [ "$(ls "$done_dir" | grep -c '^thread-')" -ge "$THREADS" ] && { kill -INT "$wrk_pid" 2>/dev/null || true; break; }
        sleep 0.05
    done
    wait "$wrk_pid" || true
    grep -E "statuses|wrk:" "$done_dir/wrk.out" | sed 's/^/  /' | tee -a "$OUT"
}
phase_stats() { # PHASE FROM_MS TO_MS [--start MS]
    local phase=$1 from=$2 to=$3; shift 3
    sql "SELECT accepted_at, processed_at, status FROM requests WHERE kind = 'add_entitlement' AND accepted_at >= $from AND accepted_at <= $to" |
        python3 "$HERE/stats.py" "$phase" "$@" | sed 's/^/  /' | tee -a "$OUT"
}

: >"$OUT"
log "pipeline benchmark, mode $MODE, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
log "  devices=$DEVICES burst=$BURST steady=$STEADY@${RATE}/s connections=$CONNECTIONS threads=$THREADS relay_batch=${GATEHOUSE_RELAY_BATCH:-default} worker_batch=${GATEHOUSE_WORKER_BATCH:-default}"
[ "$MODE" = kafka ] && log "  GATEHOUSE_KAFKA_OPTIONS=$GATEHOUSE_KAFKA_OPTIONS"
"$BIN" keygen --kek "$GATEHOUSE_KEK_FILE" >/dev/null
TOKEN=$("$BIN" token create pipeline --scopes read,write,keys 2>/dev/null)
start_api
start_worker

log "keys: registering $DEVICES devices"
load keys "$DEVICES" 1 0 4
wait_processed

if [ "$MODE" != serve ]; then
log "drain: worker stopped, $BURST requests accepted, then the worker starts"
stop_worker
from=$(now_ms)
load entitlements "$BURST" 1 0 "$CONNECTIONS"
to=$(now_ms)
started=$(now_ms)
start_worker
cpu0=$(cpu_snapshot)
perf_pid=""
if [ -n "${BENCH_PERF:-}" ]; then # BENCH_PERF=FILE: perf record the worker while it drains
    perf record -F 499 -g -o "$BENCH_PERF" -p "$WORKER_PID" >/dev/null 2>&1 &
    perf_pid=$!
fi
wait_processed || true
finished=$(now_ms)
if [ -n "$perf_pid" ]; then kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" || true; fi
log "  worker: $(( finished - started )) ms wall to drain; CPU: $(cpu_delta "$cpu0" "$(cpu_snapshot)") (worker: since start)"
phase_stats drain "$from" "$to" --start "$started"
fi

log "burst: worker running, $BURST requests as fast as possible"
burst_perf=()
if [ -n "${BENCH_PERF_BURST:-}" ]; then # BENCH_PERF_BURST=PREFIX: PREFIX.api and PREFIX.worker
    for which in api worker; do
        pid=$API_PID; [ "$which" = worker ] && pid=$WORKER_PID
        [ -n "$pid" ] && { [ "$which" = api ] || [ "$pid" != "$API_PID" ]; } || continue
        perf record -F 499 -g -o "$BENCH_PERF_BURST.$which" -p "$pid" >/dev/null 2>&1 &
        burst_perf+=($!)
    done
fi
cpu0=$(cpu_snapshot)
from=$(now_ms)
load entitlements "$BURST" 201 0 "$CONNECTIONS"
to=$(now_ms)
wait_processed || true
for p in "${burst_perf[@]}"; do kill -INT "$p" 2>/dev/null || true; wait "$p" || true; done
log "  CPU: $(cpu_delta "$cpu0" "$(cpu_snapshot)")"
phase_stats burst "$from" "$to"

# paced: 8 connections, each waiting `delay` ms before each request (offered rate a little under RATE)
steady_connections=8
delay=$(( steady_connections * 1000 / RATE ))
log "steady: $STEADY requests at about ${RATE}/s ($steady_connections connections, ${delay} ms apart each)"
cpu0=$(cpu_snapshot)
from=$(now_ms)
load entitlements "$STEADY" 401 "$delay" "$steady_connections"
to=$(now_ms)
wait_processed || true
log "  CPU: $(cpu_delta "$cpu0" "$(cpu_snapshot)")"
phase_stats steady "$from" "$to"
log "emms: $(sql "SELECT COUNT(*) FROM emms")  requests: $(sql "SELECT status, COUNT(*) FROM requests GROUP BY status" | tr '\n\t' '; ')"
grep -ciE '"level":"(error|critical)"' "$RUN_DIR/worker.log" "$RUN_DIR/api.log" | sed 's/^/  error lines: /' | tee -a "$OUT" || true
if [ "$MODE" = kafka ]; then "${MY[@]}" -e "DROP DATABASE $DB_NAME"; fi
