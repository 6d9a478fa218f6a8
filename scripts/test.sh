#!/usr/bin/env bash
# Runs the whole test suite against real components: it starts a private MariaDB on
# loopback (scripts/mariadb.sh), points the tests at it, runs `swift test`, and stops
# what it started, pass or fail. Extra arguments go to `swift test` (e.g. --filter).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi

RUN_DIR="${GATEHOUSE_TEST_RUN_DIR:-$(mktemp -d /tmp/gatehouse-test.XXXXXX)}"
MARIADB_PORT="${GATEHOUSE_TEST_MARIADB_PORT:-33306}"

cleanup() {
    scripts/mariadb.sh stop "$RUN_DIR/mariadb" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ -z "${GATEHOUSE_TEST_MYSQL_URL:-}" ]; then
    scripts/mariadb.sh start "$RUN_DIR/mariadb" "$MARIADB_PORT" >&2
    export GATEHOUSE_TEST_MYSQL_URL="mysql://gatehouse:gatehouse@127.0.0.1:${MARIADB_PORT}/gatehouse_test"
fi

swift build --build-tests
swift test --skip-build "$@"
