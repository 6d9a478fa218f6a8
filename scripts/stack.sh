#!/usr/bin/env bash
# The distributed deployment on one machine, for development: a private MariaDB, a
# Kafka-protocol broker and a Prometheus Pushgateway on loopback, then `gatehouse api`,
# `worker`, `playout` and `monitor` as four processes against them.
#
#   scripts/stack.sh start [DIR]   # components + services; prints the settings in use
#   scripts/stack.sh env [DIR]     # the GATEHOUSE_* settings (eval them to use the CLI)
#   scripts/stack.sh stop [DIR]    # stops the services, then the components
#
# DIR defaults to /tmp/gatehouse-stack. Ports: API 8080, MariaDB 33406, broker 39192,
# Pushgateway 39291, monitor /metrics 9464 (override with the GATEHOUSE_STACK_* variables).
set -euo pipefail
cd "$(dirname "$0")/.."
ACTION="${1:-}"
DIR="${2:-/tmp/gatehouse-stack}"
MARIADB_PORT="${GATEHOUSE_STACK_MARIADB_PORT:-33406}"
KAFKA_PORT="${GATEHOUSE_STACK_KAFKA_PORT:-39192}"
PUSHGATEWAY_PORT="${GATEHOUSE_STACK_PUSHGATEWAY_PORT:-39291}"
BIN="${GATEHOUSE_BIN:-.build/debug/gatehouse}"
SERVICES=(api worker playout monitor)

settings() {
    cat <<ENV
export GATEHOUSE_DATA_DIR=$DIR/data
export GATEHOUSE_DATABASE_URL=mysql://gatehouse:gatehouse@127.0.0.1:$MARIADB_PORT/gatehouse_test
export GATEHOUSE_BUS_URL=kafka://127.0.0.1:$KAFKA_PORT
export GATEHOUSE_KEK_FILE=$DIR/data/kek.hex
export GATEHOUSE_PUSHGATEWAY_URL=http://127.0.0.1:$PUSHGATEWAY_PORT
export GATEHOUSE_KAFKA_OPTIONS=session.timeout.ms=6000,heartbeat.interval.ms=500
ENV
    scripts/kafka.sh env "$DIR/kafka" | grep LD_LIBRARY_PATH
}

case "$ACTION" in
start)
    mkdir -p "$DIR/data" "$DIR/logs"
    [ -x "$BIN" ] || swift build --product gatehouse >&2
    scripts/mariadb.sh start "$DIR/mariadb" "$MARIADB_PORT" >&2
    scripts/kafka.sh start "$DIR/kafka" "$KAFKA_PORT" >/dev/null
    scripts/pushgateway.sh start "$DIR/pushgateway" "$PUSHGATEWAY_PORT" >/dev/null
    eval "$(settings)"
    [ -f "$GATEHOUSE_KEK_FILE" ] || "$BIN" keygen --kek "$GATEHOUSE_KEK_FILE" >&2
    "$BIN" migrate >&2
    if ! "$BIN" token list | grep -q '^admin'; then
        "$BIN" token create admin --scopes read,write,keys > "$DIR/data/admin.token"
        chmod 600 "$DIR/data/admin.token"
    fi
    for service in "${SERVICES[@]}"; do
        if [ -f "$DIR/$service.pid" ] && kill -0 "$(cat "$DIR/$service.pid")" 2>/dev/null; then continue; fi
        nohup "$BIN" "$service" >>"$DIR/logs/$service.log" 2>&1 &
        echo $! > "$DIR/$service.pid"
    done
    echo "stack: running; API token in $DIR/data/admin.token, logs in $DIR/logs; settings:" >&2
    settings
    ;;
env)
    settings
    ;;
stop)
    for service in "${SERVICES[@]}"; do
        if [ -f "$DIR/$service.pid" ]; then
            kill "$(cat "$DIR/$service.pid")" 2>/dev/null || true
            rm -f "$DIR/$service.pid"
        fi
    done
    sleep 1
    scripts/pushgateway.sh stop "$DIR/pushgateway" >/dev/null 2>&1 || true
    scripts/kafka.sh stop "$DIR/kafka" >/dev/null 2>&1 || true
    scripts/mariadb.sh stop "$DIR/mariadb" >/dev/null 2>&1 || true
    echo "stack: stopped" >&2
    ;;
*)
    echo "usage: $0 start|env|stop [DIR]" >&2
    exit 2
    ;;
esac
