#!/usr/bin/env bash
# Tracker benchmark: raidtorrent-tracker against aquatic on this machine, each driven by
# aquatic's own load testers with the same settings, one after the other in one run.
# Prints announces per second (HTTP) and responses per second (UDP) with the ratio ours/aquatic.
#
# Our tracker runs as it would in production: the HTTP load announces to /announce/<passkey>
# of a registered node, so every announce is authorised and its reliability observation is
# recorded (the number recorded is printed). aquatic's UDP load tester sends no BEP 41 URL
# data, so the UDP run uses `open = true` (announces without a passkey are served, not
# recorded) — the same mode aquatic runs in.
#
# Needs: cargo install aquatic_http aquatic_udp aquatic_http_load_test aquatic_udp_load_test
# Usage: scripts/bench-tracker.sh            (DURATION=15 seconds per run by default)
set -euo pipefail

DURATION=${DURATION:-15}
cd "$(dirname "$0")/.."

for b in aquatic_http aquatic_udp aquatic_http_load_test aquatic_udp_load_test; do
    command -v "$b" >/dev/null || {
        echo "missing $b: cargo install aquatic_http aquatic_udp aquatic_http_load_test aquatic_udp_load_test" >&2
        exit 1
    }
done

cargo build --release -p raidtorrent-tracker
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/raidtorrent-tracker
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_udp_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until a TCP port accepts connections (or a UDP server had time to bind).
wait_tcp() {
    for _ in $(seq 100); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "server on port $1 did not start" >&2
    exit 1
}
wait_udp() {
    for _ in $(seq 100); do
        if python3 - "$1" <<'PY' 2>/dev/null; then return 0; fi
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
s.sendto(struct.pack(">QII", 0x41727101980, 0, 1), ("127.0.0.1", int(sys.argv[1])))
s.recvfrom(64)
PY
        sleep 0.1
    done
    echo "UDP server on port $1 did not start" >&2
    exit 1
}

avg() { grep -m1 "Average responses per second" "$1" | awk '{print $NF}'; }
announce_avg() { grep -A4 "Average responses per second" "$1" | grep -m1 "Announce responses" | awk '{print $NF}'; }

# --- HTTP load-test config (shared) ---
http_load() { # port url_suffix out
    aquatic_http_load_test -p > "$WORK/hl.toml"
    sed -i "s|^server_address = .*|server_address = \"127.0.0.1:$1\"|; s|^duration = .*|duration = $DURATION|; s|^enable_tls = .*|enable_tls = false|; s|^url_suffix = .*|url_suffix = \"$2\"|" "$WORK/hl.toml"
    aquatic_http_load_test -c "$WORK/hl.toml" > "$3" 2>&1
}
udp_load() { # port out
    aquatic_udp_load_test -p > "$WORK/ul.toml"
    sed -i "s|^server_address = .*|server_address = \"127.0.0.1:$1\"|; s|^duration = .*|duration = $DURATION|" "$WORK/ul.toml"
    aquatic_udp_load_test -c "$WORK/ul.toml" > "$2" 2>&1
}

# --- ours ---
DB=$WORK/tracker.db
PASSKEY=$("$BIN" node add bench --db "$DB" | python3 -c 'import json,sys; print(json.load(sys.stdin)["passkey"])')
OUR_HTTP=$(free_port); OUR_UDP=$(free_udp_port)
cat > "$WORK/ours.toml" <<TOML
http_listen = "127.0.0.1:$OUR_HTTP"
udp_listen = "127.0.0.1:$OUR_UDP"
db = "$DB"
open = true
[announce]
max_numwant = 50
TOML
RUST_LOG=warn "$BIN" serve --config "$WORK/ours.toml" > "$WORK/ours.log" 2>&1 &
OURS=$!; PIDS+=("$OURS")
wait_tcp "$OUR_HTTP"; wait_udp "$OUR_UDP"
echo "HTTP: raidtorrent-tracker (private path, recording) for ${DURATION}s..."
http_load "$OUR_HTTP" "/$PASSKEY" "$WORK/ours-http.out"
echo "UDP:  raidtorrent-tracker for ${DURATION}s..."
udp_load "$OUR_UDP" "$WORK/ours-udp.out"
kill -TERM "$OURS"; wait "$OURS" || true
# Shutdown flushes the last batch; read what was recorded from the database.
RECORDED=$("$BIN" node list --db "$DB" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["announces"])')

# --- aquatic ---
AQ_HTTP=$(free_port); AQ_UDP=$(free_udp_port)
aquatic_http -p > "$WORK/ah.toml"
sed -i "s|^address = .*|address = \"127.0.0.1:$AQ_HTTP\"|" "$WORK/ah.toml"
aquatic_udp -p > "$WORK/au.toml"
sed -i "s|^address = .*|address = \"127.0.0.1:$AQ_UDP\"|" "$WORK/au.toml"
aquatic_http -c "$WORK/ah.toml" > "$WORK/ah.log" 2>&1 &
AH=$!; PIDS+=("$AH")
wait_tcp "$AQ_HTTP"
echo "HTTP: aquatic_http for ${DURATION}s..."
http_load "$AQ_HTTP" "" "$WORK/aq-http.out"
kill "$AH"; wait "$AH" 2>/dev/null || true
aquatic_udp -c "$WORK/au.toml" > "$WORK/au.log" 2>&1 &
AU=$!; PIDS+=("$AU")
wait_udp "$AQ_UDP"
echo "UDP:  aquatic_udp for ${DURATION}s..."
udp_load "$AQ_UDP" "$WORK/aq-udp.out"
kill "$AU"; wait "$AU" 2>/dev/null || true

OH=$(avg "$WORK/ours-http.out"); AH_=$(avg "$WORK/aq-http.out")
OU=$(avg "$WORK/ours-udp.out"); AU_=$(avg "$WORK/aq-udp.out")
OUA=$(announce_avg "$WORK/ours-udp.out"); AUA=$(announce_avg "$WORK/aq-udp.out")
python3 - "$OH" "$AH_" "$OU" "$AU_" "$OUA" "$AUA" "$RECORDED" "$DURATION" <<'PY'
import sys
oh, ah, ou, au, oua, aua = map(float, sys.argv[1:7])
recorded, duration = sys.argv[7], sys.argv[8]
print()
print(f"{'':34}{'raidtorrent':>14}{'aquatic':>14}{'ratio':>8}")
print(f"{'HTTP announces/s':34}{oh:14.0f}{ah:14.0f}{oh/ah:8.2f}x")
print(f"{'UDP responses/s (all kinds)':34}{ou:14.0f}{au:14.0f}{ou/au:8.2f}x")
print(f"{'UDP announce responses/s':34}{oua:14.0f}{aua:14.0f}{oua/aua:8.2f}x")
print(f"reliability observations recorded during the HTTP run: {recorded} ({duration} s per run)")
PY
