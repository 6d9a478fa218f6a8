#!/usr/bin/env bash
# Runs the whole test suite against real components on loopback: a private MariaDB
# (scripts/mariadb.sh), a Kafka-protocol broker (scripts/kafka.sh: tansu + librdkafka
# 2.16) and a Prometheus Pushgateway (scripts/pushgateway.sh). It points the tests at
# them, runs `swift test`, then the schemathesis run against a live API, and stops
# everything it started, pass or fail. Extra arguments go to `swift test` (e.g. --filter).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi

RUN_DIR="${GATEHOUSE_TEST_RUN_DIR:-$(mktemp -d /tmp/gatehouse-test.XXXXXX)}"
MARIADB_PORT="${GATEHOUSE_TEST_MARIADB_PORT:-33306}"
KAFKA_PORT="${GATEHOUSE_TEST_KAFKA_PORT:-39092}"
PUSHGATEWAY_PORT="${GATEHOUSE_TEST_PUSHGATEWAY_PORT:-39091}"

cleanup() {
    scripts/pushgateway.sh stop "$RUN_DIR/pushgateway" >/dev/null 2>&1 || true
    scripts/kafka.sh stop "$RUN_DIR/kafka" >/dev/null 2>&1 || true
    scripts/mariadb.sh stop "$RUN_DIR/mariadb" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Multicast tests send on the loopback interface only; make sure it takes multicast.
if [ "$(id -u)" -eq 0 ] && ! ip link show lo | grep -q MULTICAST; then ip link set lo multicast on; fi

# Build first: the broker's environment swaps librdkafka for the test run only.
swift build --build-tests

if [ -z "${GATEHOUSE_TEST_MYSQL_URL:-}" ]; then
    scripts/mariadb.sh start "$RUN_DIR/mariadb" "$MARIADB_PORT" >&2
    export GATEHOUSE_TEST_MYSQL_URL="mysql://gatehouse:gatehouse@127.0.0.1:${MARIADB_PORT}/gatehouse_test"
fi
if [ -z "${GATEHOUSE_TEST_KAFKA_BROKERS:-}" ]; then
    scripts/kafka.sh start "$RUN_DIR/kafka" "$KAFKA_PORT" >/dev/null
    eval "$(scripts/kafka.sh env "$RUN_DIR/kafka")"
fi
if [ -z "${GATEHOUSE_TEST_PUSHGATEWAY_URL:-}" ]; then
    scripts/pushgateway.sh start "$RUN_DIR/pushgateway" "$PUSHGATEWAY_PORT" >&2
    export GATEHOUSE_TEST_PUSHGATEWAY_URL="http://127.0.0.1:${PUSHGATEWAY_PORT}"
fi

if [ $# -gt 0 ]; then
    swift test --skip-build "$@"
    exit 0
fi

# The wall-clock playout tests (an EMM with a one-second life on air, a row committed during
# the run on air within a second) get a `swift test` of their own. In the one parallel run, on
# 2 cores, CPU-bound suites hold both threads of Swift's cooperative pool for seconds, the
# playout's store poll runs late and those deadlines are missed (streamIsCorrectByteByByte took
# 11-17 s there instead of 4 s, and failed in 3 runs out of 4). Both passes always run.
LIVE_PLAYOUT='^GatehousePlayoutTests\.(LivePlayoutTests|OutOfOrderTests)/'
status=0
swift test --skip-build --skip "$LIVE_PLAYOUT" || status=$?
swift test --skip-build --filter "$LIVE_PLAYOUT" || status=$?
[ "$status" -eq 0 ] || exit "$status"
# Property-based API run (schemathesis) against a live server: no 5xx, no schema violation.
scripts/schemathesis.sh .build/debug/gatehouse
