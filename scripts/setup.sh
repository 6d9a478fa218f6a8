#!/usr/bin/env bash
# Installs what Gatehouse needs on a fresh Debian 12 machine (run as root, or with sudo
# available) and builds the package. Safe to run again: apt and pip skip what is there.
#
#   scripts/setup.sh            # install packages and build (debug)
#   scripts/setup.sh --release  # build in release mode as well
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# C libraries (wrapped by the C* system-library targets) and the real components the
# tests start on loopback: MariaDB, a Pushgateway, plus independent TS decoders.
APT_PACKAGES=(
    pkg-config libssl-dev libsqlite3-dev libmariadb-dev libmicrohttpd-dev librdkafka-dev
    libdvbpsi-dev tstools
    mariadb-server prometheus-pushgateway prometheus
    curl wrk openssl ca-certificates
    # Tools the tests and scripts call (on the base image today; listed so a leaner one still works):
    # cc for the libdvbpsi harness (Tests/tools), ip for loopback multicast in scripts/test.sh.
    gcc libc6-dev iproute2
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts services it installs when it can; Gatehouse runs its own on private
# ports, so stop the system-wide ones to keep loopback ports free and CPUs quiet.
for svc in mariadb prometheus-pushgateway prometheus; do
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true; fi
    if command -v service >/dev/null 2>&1; then $SUDO service "$svc" stop >/dev/null 2>&1 || true; fi
done

# The embedded defaults send and watch EMM multicast on the loopback interface, which
# Linux brings up without the MULTICAST flag. (Not persistent across reboots: rerun, or
# set it in your network configuration.)
if ! ip link show lo | grep -q MULTICAST; then
    $SUDO ip link set lo multicast on || echo "setup: could not enable multicast on lo; run: ip link set lo multicast on" >&2
fi

if ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then export PATH="/opt/swift/usr/bin:$PATH"; else
        echo "setup: the Swift 6 toolchain is not on PATH (expected /opt/swift); install it first" >&2
        exit 1
    fi
fi

swift build
if [ "${1:-}" = "--release" ]; then swift build -c release; fi
echo "setup: done" >&2
