#!/usr/bin/env bash
# Runs a private MariaDB server on loopback for tests and local development.
#
#   scripts/mariadb.sh start DIR PORT   initialise DIR (once), start mariadbd on 127.0.0.1:PORT,
#                                       create database gatehouse_test and user gatehouse/gatehouse,
#                                       print the URL for GATEHOUSE_TEST_MYSQL_URL
#   scripts/mariadb.sh stop DIR         shut the server down (no-op when it is not running)
#   scripts/mariadb.sh status DIR       exit 0 when the server answers
#
# Installs nothing: it needs the Debian mariadb-server package (mariadbd, mariadb-install-db,
# mariadb, mariadb-admin). Idempotent: `start` on a running server only re-checks the database and
# user and prints the URL again. Runs as root too (mariadbd is told --user=root then).
set -euo pipefail

usage() {
    echo "usage: $0 start DIR PORT | stop DIR | status DIR" >&2
    exit 2
}

find_tool() {
    local name
    for name in "$@"; do
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
        if [ -x "/usr/sbin/$name" ]; then echo "/usr/sbin/$name"; return 0; fi
    done
    echo "mariadb.sh: none of [$*] found; install the Debian package mariadb-server" >&2
    exit 1
}

MARIADBD=$(find_tool mariadbd mysqld)
INSTALL_DB=$(find_tool mariadb-install-db mysql_install_db)
CLIENT=$(find_tool mariadb mysql)
ADMIN=$(find_tool mariadb-admin mysqladmin)

# The server runs as the calling user; root must say so explicitly or mariadbd refuses to start.
USER_NAME=$(id -un)

# Root talks to its own server over the private socket only (unix_socket authentication as the
# OS user that initialised the datadir), so no root password is needed or stored anywhere.
admin_sql() {
    local dir=$1
    shift
    "$CLIENT" --no-defaults --protocol=socket --socket="$dir/mariadb.sock" --user="$USER_NAME" -N -B "$@"
}

is_up() {
    local dir=$1
    [ -S "$dir/mariadb.sock" ] &&
        "$ADMIN" --no-defaults --protocol=socket --socket="$dir/mariadb.sock" --user="$USER_NAME" \
            --connect-timeout=2 ping >/dev/null 2>&1
}

start() {
    local dir=$1 port=$2
    case $port in '' | *[!0-9]*) echo "mariadb.sh: PORT must be a number" >&2; exit 2 ;; esac
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)

    if ! is_up "$dir"; then
        if [ ! -d "$dir/data/mysql" ]; then
            # unix_socket auth for the OS user that runs this script, no test database, no
            # anonymous users; the datadir is private to this server.
            "$INSTALL_DB" --no-defaults --user="$USER_NAME" --datadir="$dir/data" \
                --auth-root-authentication-method=socket --skip-test-db \
                >"$dir/install.log" 2>&1 || {
                echo "mariadb.sh: mariadb-install-db failed; see $dir/install.log" >&2
                exit 1
            }
        fi
        # A stale pid/socket from a crashed run would block the new server.
        rm -f "$dir/mariadb.sock" "$dir/mariadb.sock.lock" "$dir/mariadbd.pid"
        # setsid: the server outlives the shell (and job control group) that started it.
        setsid "$MARIADBD" --no-defaults --user="$USER_NAME" --datadir="$dir/data" \
            --bind-address=127.0.0.1 --port="$port" --socket="$dir/mariadb.sock" \
            --pid-file="$dir/mariadbd.pid" --log-error="$dir/mariadbd.err" \
            --skip-name-resolve --innodb-buffer-pool-size=64M --innodb-log-file-size=48M \
            --character-set-server=utf8mb4 --collation-server=utf8mb4_bin \
            --max-connections=200 >/dev/null 2>&1 &
        # Bounded wait: 60 s at most, then show the server's own log.
        local i
        for i in $(seq 1 120); do
            if is_up "$dir"; then break; fi
            sleep 0.5
        done
        if ! is_up "$dir"; then
            echo "mariadb.sh: mariadbd did not answer within 60 s; last lines of $dir/mariadbd.err:" >&2
            tail -n 20 "$dir/mariadbd.err" >&2 || true
            exit 1
        fi
    fi

    admin_sql "$dir" <<'SQL'
CREATE DATABASE IF NOT EXISTS gatehouse_test CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'gatehouse'@'127.0.0.1' IDENTIFIED BY 'gatehouse';
CREATE USER IF NOT EXISTS 'gatehouse'@'localhost' IDENTIFIED BY 'gatehouse';
GRANT ALL PRIVILEGES ON gatehouse_test.* TO 'gatehouse'@'127.0.0.1';
GRANT ALL PRIVILEGES ON gatehouse_test.* TO 'gatehouse'@'localhost';
-- Test suites that need a database of their own create gatehouse_t_* databases.
GRANT ALL PRIVILEGES ON `gatehouse\_t\_%`.* TO 'gatehouse'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `gatehouse\_t\_%`.* TO 'gatehouse'@'localhost';
-- The reconnect test kills its own connections from another session (same user: no extra
-- privilege needed); PROCESS lets it see them in the process list.
GRANT PROCESS ON *.* TO 'gatehouse'@'127.0.0.1';
GRANT PROCESS ON *.* TO 'gatehouse'@'localhost';
FLUSH PRIVILEGES;
SQL
    echo "mysql://gatehouse:gatehouse@127.0.0.1:$port/gatehouse_test"
}

stop() {
    local dir=$1
    [ -d "$dir" ] || return 0
    dir=$(cd "$dir" && pwd)
    if is_up "$dir"; then
        "$ADMIN" --no-defaults --protocol=socket --socket="$dir/mariadb.sock" --user="$USER_NAME" shutdown
    fi
    # Wait (bounded) for the process to go away so a following start can reuse the datadir.
    local pid i
    pid=$(cat "$dir/mariadbd.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
        for i in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
    fi
}

case ${1:-} in
    start) [ $# -eq 3 ] || usage; start "$2" "$3" ;;
    stop) [ $# -eq 2 ] || usage; stop "$2" ;;
    status) [ $# -eq 2 ] || usage; is_up "$(cd "$2" 2>/dev/null && pwd || echo "$2")" ;;
    *) usage ;;
esac
