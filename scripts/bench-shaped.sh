#!/usr/bin/env bash
# The cloud on a shaped network: every node in a network namespace of its own, with its own
# address and its uplink capped (tc tbf), so reads and repairs meet the limits real volunteers
# have instead of loopback's. Needs root (ip netns, veth, tc) and python3-libtorrent.
#
# One run measures, each against its baseline from the same run:
#   GET      throughput vs the sum of the uplinks of the nodes holding the data shards it reads;
#   baseline a plain torrent of the same bytes from ONE capped seeder (python3-libtorrent, both
#            ends), against which the GET should be about k times faster;
#   PUT      until durable, vs the bytes it moves (copies x (k+m)/k) over the gateway's link;
#   client   `raidtorrent-peer put` / `get` of the same file from the client's namespace, which
#            seeds to and fetches from the nodes itself: its rates, and the bytes the gateway
#            process moved (/proc/<pid>/io) for it against the gateway's own PUT and GET;
#   repair   time from a node's loss to full redundancy vs X / (sum of the survivors' uplinks),
#            X the bytes the lost node held.
#
#   scripts/bench-shaped.sh                 # 6 nodes at 50 Mbit/s, a 64 MiB object
#   BENCH_PROFILE=dev scripts/bench-shaped.sh   # the workspace's dev build (deps optimized)
#   NODES=9 RATE_MBIT=20 SIZE_MIB=32 scripts/bench-shaped.sh
#
# Everything lives in namespaces named rt<pid>-*, joined by a bridge in its own namespace; they
# and every process are removed when the script ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES="${NODES:-6}"
RATE_MBIT="${RATE_MBIT:-50}"
SIZE_MIB="${SIZE_MIB:-64}"
K=4 M=2 COPIES=2
# Debian's python, which has the libtorrent binding.
PY=/usr/bin/python3
KEY="shaped-bench-key-0123456789abcdef"
[ "$(id -u)" = 0 ] || { echo "bench-shaped: needs root (ip netns, veth, tc)" >&2; exit 2; }
command -v ip >/dev/null || { echo "bench-shaped: needs iproute2" >&2; exit 2; }
"$PY" -c "import libtorrent" 2>/dev/null || { echo "bench-shaped: needs python3-libtorrent" >&2; exit 2; }

case "${BENCH_PROFILE:-release}" in
  release) flags=(--release); dir=release ;;
  dev) flags=(); dir=debug ;;
  *) echo "BENCH_PROFILE must be release or dev" >&2; exit 2 ;;
esac
cargo build "${flags[@]}" -q -p raidtorrent-tracker -p raidtorrent-peer \
  --bin raidtorrent-tracker --bin raidtorrent-peer
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/$dir"
tag="rt$$"
work="$(mktemp -d)"
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in $(ip netns list | awk '{print $1}' | grep "^$tag-" || true); do ip netns del "$ns"; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# A namespace `$tag-$1` with address $2/16 on a veth to the bridge; uplink capped at $3 Mbit/s
# when given.
host() {
  local ns="$tag-$1" addr="$2" rate="${3:-}"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link add eth0 type veth peer name "p-$1" netns "$tag-sw"
  ip -n "$tag-sw" link set "p-$1" master br0 up
  ip -n "$ns" addr add "$addr/16" dev eth0
  ip -n "$ns" link set eth0 up
  if [ -n "$rate" ]; then
    ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "${rate}mbit" burst 64kb latency 100ms
  fi
}
in_ns() { local ns="$tag-$1"; shift; ip netns exec "$ns" "$@"; }
# Starts a command in namespace $1 in the background, its output to $work/$2.log.
spawn() {
  local ns="$tag-$1" log="$work/$2.log"; shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 &
  pids+=($!)
}
mb() { python3 -c "print(f'{$1 / 1e6:.1f}')"; }

ip netns add "$tag-sw"
ip -n "$tag-sw" link add br0 type bridge
ip -n "$tag-sw" link set br0 up
host gw 10.77.0.1
host client 10.77.0.2
host seed 10.77.0.3 "$RATE_MBIT"
for i in $(seq 1 "$NODES"); do host "n$i" "10.77.$i.2" "$RATE_MBIT"; done

# The gateway: every listener on its namespace's address (ports are its own there).
cat >"$work/gateway.toml" <<EOF
http_listen = "10.77.0.1:6969"
udp_listen = "off"
db = "$work/gateway.db"
[objects]
api_listen = "10.77.0.1:9000"
api_keys = ["$KEY"]
control_listen = "10.77.0.1:6970"
swarm_ip = "10.77.0.1"
data_dir = "$work/gateway"
segment_target = 8388608
[objects.health]
interval_ms = 200
grace_secs = 0
EOF
for i in $(seq 1 "$NODES"); do
  "$bin/raidtorrent-tracker" node add "n$i" --db "$work/gateway.db" --zone "zone-$((i % 3))" \
    >"$work/n$i.json"
done
spawn gw gateway env RUST_LOG=warn "$bin/raidtorrent-tracker" serve --config "$work/gateway.toml"
gw_pid=$!
node_pid=()
for i in $(seq 1 "$NODES"); do
  cred=$(python3 -c "import json; v=json.load(open('$work/n$i.json')); print(f\"{v['id']}:{v['passkey']}\")")
  spawn "n$i" "n$i" env RUST_LOG=warn "$bin/raidtorrent-peer" run --quota 8GiB \
    --listen "10.77.$i.2:0" --data-dir "$work/n$i" --zone "zone-$((i % 3))" \
    --gateway "$cred@10.77.0.1:6970"
  node_pid[$i]=$!
done

api() { in_ns client curl -sS -H "Authorization: Bearer $KEY" "$@"; }
health() { api "http://10.77.0.1:9000/_health"; }
wait_for() { # wait_for <seconds> <what> <command...>
  local until=$((SECONDS + $1)) what="$2"; shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < until)) || { echo "bench-shaped: $what did not happen in time" >&2; exit 1; }
    sleep 0.2
  done
}
connected() {
  local n=0
  for i in $(seq 1 "$NODES"); do
    python3 -c "import json,sys; s=json.load(open('$work/n$i/status.json')); sys.exit(s['gateways'][0]['state']!='connected')" \
      2>/dev/null && n=$((n + 1))
  done
  [ "$n" = "$NODES" ]
}
wait_for 60 "the gateway's API answering" health
wait_for 60 "every node connecting" connected

head -c "$((SIZE_MIB << 20))" /dev/urandom >"$work/object"
size=$(stat -c %s "$work/object")
api -X PUT -d "{\"k\":$K,\"m\":$M,\"copies\":$COPIES,\"high_share\":0.0,\"inline_max\":4096}" \
  "http://10.77.0.1:9000/bench" >/dev/null
# Bytes the gateway process has read and written so far (sockets and files).
gw_bytes() { awk '/^(rchar|wchar):/ {s += $2} END {printf "%.0f", s}' "/proc/$gw_pid/io"; }
# Runs a command; sets `took` (seconds) and `moved` (bytes the gateway moved meanwhile).
measured() {
  local b0 t0
  b0=$(gw_bytes) t0=$(date +%s.%N)
  "$@" >/dev/null
  took=$(python3 -c "import time; print(time.time() - $t0)")
  moved=$(($(gw_bytes) - b0))
}
measured api -T "$work/object" "http://10.77.0.1:9000/bench/o"
put=$took put_moved=$moved
measured api -o "$work/back" "http://10.77.0.1:9000/bench/o"
get=$took get_moved=$moved
cmp -s "$work/object" "$work/back" || { echo "bench-shaped: the object read back differs" >&2; exit 1; }
client() {
  in_ns client env RT_GATEWAY=http://10.77.0.1:9000 RT_API_KEY="$KEY" RT_KEYRING="$work/keyring" \
    "$bin/raidtorrent-peer" "$@" -q
}
measured client put "$work/object" bench/c --listen 10.77.0.2:0
cput=$took cput_moved=$moved
rm -f "$work/back"
measured client get bench/c -o "$work/back"
cget=$took cget_moved=$moved
cmp -s "$work/object" "$work/back" || { echo "bench-shaped: the client read back other bytes" >&2; exit 1; }

# The nodes holding copies of the data shards: the uplinks a whole read draws on.
readers=$(python3 - "$work/gateway.db" "$K" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute(
    "SELECT COUNT(DISTINCT h.node_id) FROM holdings h JOIN shards s ON s.info_hash = h.info_hash "
    "WHERE s.idx < ?", (int(sys.argv[2]),)).fetchone()
print(rows[0])
EOF
)

# The baseline: the same bytes as one plain torrent from one capped seeder.
"$PY" - "$work/object" "$work/object.torrent" <<'EOF'
import libtorrent as lt, os, sys
fs = lt.file_storage()
lt.add_files(fs, sys.argv[1])
t = lt.create_torrent(fs)
lt.set_piece_hashes(t, os.path.dirname(sys.argv[1]))
open(sys.argv[2], "wb").write(lt.bencode(t.generate()))
EOF
mkdir -p "$work/leech"
spawn seed seeder "$PY" -c "
import libtorrent as lt, time
s = lt.session({'listen_interfaces': '10.77.0.3:6881', 'enable_dht': False, 'enable_lsd': False,
                'enable_upnp': False, 'enable_natpmp': False})
p = lt.add_torrent_params(); p.ti = lt.torrent_info('$work/object.torrent'); p.save_path = '$work'
s.add_torrent(p)
while True: time.sleep(1)
"
t0=$(date +%s.%N)
in_ns client "$PY" integration/tests/interop/lt_fetch.py --torrent "$work/object.torrent" \
  --save "$work/leech" --iface 10.77.0.2 --port 6881 --peer 10.77.0.3:6881 --timeout 600 >/dev/null
plain=$(python3 -c "import time; print(time.time() - $t0)")

# Repair: lose the node holding the most, time until every shard has its copies again.
lost=1 held=0
for i in $(seq 1 "$NODES"); do
  b=$(du -sb "$work/n$i/shards" | cut -f1)
  if ((b > held)); then held=$b lost=$i; fi
done
shards_under() { health | python3 -c "import json,sys; print(json.load(sys.stdin)['health']['shards_under'])"; }
degraded() { [ "$(shards_under)" != 0 ]; }
whole() { [ "$(shards_under)" = 0 ]; }
t0=$(date +%s.%N)
kill "${node_pid[$lost]}"
wait_for 30 "the gateway noticing the loss" degraded
wait_for 600 "full redundancy after the loss" whole
repair=$(python3 -c "import time; print(time.time() - $t0)")

rate=$((RATE_MBIT * 125000))
python3 - <<EOF
size, get, put, plain, repair = $size, $get, $put, $plain, $repair
cput, cget = $cput, $cget
moved = dict(put=$put_moved, get=$get_moved, cput=$cput_moved, cget=$cget_moved)
readers, nodes, rate, held, k = $readers, $NODES, $rate, $held, $K
print(f"shaped network: {nodes} nodes, uplinks {rate * 8 / 1e6:.0f} Mbit/s each, "
      f"a {size >> 20} MiB object, ({k},$M) x $COPIES")
print(f"  plain torrent, one capped seeder {size / plain / 1e6:8.2f} MB/s")
sum_up = readers * rate
print(f"  GET                              {size / get / 1e6:8.2f} MB/s = {plain / get:.2f}x the one seeder; "
      f"{size / get / sum_up:.0%} of the {readers} holders' uplinks ({sum_up / 1e6:.1f} MB/s)")
print(f"  PUT (durable)                    {size / put / 1e6:8.2f} MB/s of object")
print(f"  client put (durable)             {size / cput / 1e6:8.2f} MB/s = {put / cput:.2f}x the PUT")
print(f"  client get                       {size / cget / 1e6:8.2f} MB/s = {get / cget:.2f}x the GET")
print(f"  gateway MB moved: PUT {moved['put'] / 1e6:.1f}, client put {moved['cput'] / 1e6:.1f}; "
      f"GET {moved['get'] / 1e6:.1f}, client get {moved['cget'] / 1e6:.1f}")
ideal = held / ((nodes - 1) * rate)
print(f"  repair of {held / 1e6:.1f} MB          {repair:8.2f} s = {ideal / repair:.0%} of X / survivors' uplinks ({ideal:.2f} s)")
EOF
