#!/usr/bin/env bash
# A guided tour of a running Gatehouse: start `swift run gatehouse serve` in another
# terminal first (README), then run this. It registers two set-top boxes, grants one a
# product, sends messages, and shows what comes out: request status with on-air times,
# what each virtual box decrypted from the multicast, and the monitor's EMM figures.
#
#   scripts/demo.sh            # uses ./gatehouse-data/admin.token and 127.0.0.1:8080
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${GATEHOUSE_DATA_DIR:-./gatehouse-data}"
API="http://${GATEHOUSE_HTTP_ADDR:-127.0.0.1:8080}"
BIN="${GATEHOUSE_BIN:-.build/debug/gatehouse}"
[ -x "$BIN" ] || swift build --product gatehouse >&2
TOKEN="${GATEHOUSE_TOKEN:-$(cat "$DATA_DIR/admin.token" 2>/dev/null || true)}"
if [ -z "$TOKEN" ]; then
    echo "demo: no token: start 'swift run gatehouse serve' first (it writes $DATA_DIR/admin.token)" >&2
    exit 1
fi
curl -fsS "$API/healthz" >/dev/null || { echo "demo: no API at $API: is 'gatehouse serve' running?" >&2; exit 1; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
call() {  # METHOD PATH [JSON]
    if [ $# -ge 3 ]; then
        curl -sS -X "$1" "$API$2" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' --data-binary "$3"
    else
        curl -sS -X "$1" "$API$2" -H "Authorization: Bearer $TOKEN"
    fi
    echo
}
id_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["request_id"])'; }

KEY_1=00112233445566778899aabbccddeeff
KEY_2=ffeeddccbbaa99887766554433221100
TMP=$(mktemp -d)
trap 'kill $STB1 $STB2 2>/dev/null || true; rm -rf "$TMP"' EXIT

say "Two virtual set-top boxes join the EMM multicast group"
"$BIN" stb --device demo-box-1 --key $KEY_1 >"$TMP/box1.log" 2>&1 & STB1=$!
"$BIN" stb --device demo-box-2 --key $KEY_2 >"$TMP/box2.log" 2>&1 & STB2=$!
sleep 1

say "Register both boxes with their AES keys (the API answers 202 with a request id)"
call POST /device_keys "{\"device_id\":\"demo-box-1\",\"key\":\"$KEY_1\"}"
call POST /device_keys "{\"device_id\":\"demo-box-2\",\"key\":\"$KEY_2\"}"
sleep 1
say "The device as the API shows it: only the key check value (KCV), never the key"
call GET /devices/demo-box-1

say "Grant product 42 to box 1 until the end of 2030, and send messages"
GRANT=$(call POST /add_entitlement '{"device_id":"demo-box-1","product_id":42,"end_time":"2030-12-31T23:59:59Z"}' | tee /dev/stderr | id_of)
OSM=$(call POST /generate_osm '{"device_id":"demo-box-1","kind":"mailbox","text":"Welcome to Gatehouse TV"}' | tee /dev/stderr | id_of)
ALL=$(call POST /generate_osm '{"all":true,"kind":"scroll_bottom","text":"Maintenance tonight 02:00-04:00","priority":6}' | tee /dev/stderr | id_of)
say "A bad request gets a clear error naming the field, and changes nothing"
call POST /add_entitlement '{"device_id":"demo-box-1","product_id":70000,"end_time":"2030-12-31T23:59:59Z"}'

sleep 4
say "Request status: accepted, processed, and on air (seen and decrypted by the monitor)"
for id in $GRANT $OSM $ALL; do call GET "/requests/$id"; done
say "Box 1's entitlements as stored"
call GET /devices/demo-box-1/entitlements

say "Cancel product 42 for box 1"
call DELETE /devices/demo-box-1/entitlements/42
sleep 3

say "The monitor's view of the EMM stream (from /metrics)"
curl -sS "$API/metrics" | grep -E '^gatehouse_monitor_(emm_total_bytes_per_second|emm_decrypt_total\{result="(ok|authentication_failed)"|emm_sections_total)' || true

say "What each box decrypted from the multicast (it sees only its own EMMs)"
kill -INT $STB1 $STB2 2>/dev/null || true
wait $STB1 $STB2 2>/dev/null || true
echo "--- demo-box-1"; cat "$TMP/box1.log"
echo "--- demo-box-2"; cat "$TMP/box2.log"
say "Audit log for box 1"
call GET "/audit?device_id=demo-box-1"
