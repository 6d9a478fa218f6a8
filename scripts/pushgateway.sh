#!/usr/bin/env bash
# Runs a private Prometheus Pushgateway on loopback for tests and local development.
#
#   scripts/pushgateway.sh start DIR PORT   start prometheus-pushgateway on 127.0.0.1:PORT (state in DIR:
#                                           pid file, log), wait until it answers (at most 10 s),
#                                           print the URL for GATEHOUSE_TEST_PUSHGATEWAY_URL
#   scripts/pushgateway.sh stop DIR         stop it (no-op when it is not running)
#   scripts/pushgateway.sh status DIR       exit 0 when it answers
#
# Installs nothing: it needs the Debian package prometheus-pushgateway (/usr/bin/prometheus-pushgateway).
# No persistence file: every start is empty. Idempotent: `start` on a running gateway prints the URL again.
#
# CI:  url=$(scripts/pushgateway.sh start /tmp/gh-pgw 9191) && export GATEHOUSE_TEST_PUSHGATEWAY_URL=$url
set -euo pipefail

usage() {
    echo "usage: $0 start DIR PORT | stop DIR | status DIR" >&2
    exit 2
}

BINARY=${PUSHGATEWAY_BINARY:-/usr/bin/prometheus-pushgateway}

answers() {
    local port=$1
    # /-/ready answers 200 once the gateway serves; bash's /dev/tcp avoids needing curl.
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
        IFS= read -r -t 2 status <&3 || exit 1
        [[ $status == *" 200"* ]]
    ) 2>/dev/null
}

running_pid() {
    local dir=$1
    [ -f "$dir/pushgateway.pid" ] || return 1
    local pid
    pid=$(cat "$dir/pushgateway.pid")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

start() {
    local dir=$1 port=$2
    case $port in '' | *[!0-9]*) echo "pushgateway.sh: PORT must be a number" >&2; exit 2 ;; esac
    [ -x "$BINARY" ] || { echo "pushgateway.sh: $BINARY not found; install the Debian package prometheus-pushgateway" >&2; exit 1; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if running_pid "$dir" >/dev/null && answers "$(cat "$dir/port")"; then
        echo "http://127.0.0.1:$(cat "$dir/port")"
        return 0
    fi
    echo "$port" >"$dir/port"
    nohup "$BINARY" --web.listen-address="127.0.0.1:$port" --persistence.file="" --log.level=warn \
        >"$dir/pushgateway.log" 2>&1 </dev/null &
    echo $! >"$dir/pushgateway.pid"
    for _ in $(seq 1 100); do
        if answers "$port"; then
            echo "http://127.0.0.1:$port"
            return 0
        fi
        if ! running_pid "$dir" >/dev/null; then
            echo "pushgateway.sh: the gateway exited; log follows" >&2
            cat "$dir/pushgateway.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "pushgateway.sh: no answer on 127.0.0.1:$port within 10 s; log in $dir/pushgateway.log" >&2
    exit 1
}

stop() {
    local dir=$1
    local pid
    pid=$(running_pid "$dir") || { rm -f "$dir/pushgateway.pid"; return 0; }
    kill "$pid"
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$dir/pushgateway.pid"; return 0; }
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/pushgateway.pid"
}

status() {
    local dir=$1
    running_pid "$dir" >/dev/null && answers "$(cat "$dir/port")"
}

case ${1:-} in
start) [ $# -eq 3 ] || usage; start "$2" "$3" ;;
stop) [ $# -eq 2 ] || usage; stop "$2" ;;
status) [ $# -eq 2 ] || usage; status "$2" ;;
*) usage ;;
esac
