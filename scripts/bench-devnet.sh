# Sourced by the benchmark scripts that measure one local devnet (bench-s3.sh,
# bench-client.sh): builds the gateway and node binaries (BENCH_PROFILE release or dev), starts
# `raidtorrent-tracker devnet` with NODES nodes on loopback, waits for its banner and sets
#   bin         the directory of the built binaries
#   work        a temporary directory, removed on exit with the devnet stopped
#   devnet_pid  the devnet's process (the gateway)
#   api         the object API's address;  s3 key secret  the S3 endpoint and a ready access key
#   bytes       SIZE_MIB in bytes, and $work/object: that many random bytes
#   node_pids   the node processes
# and the helpers `mbps SECONDS`, `median VALUES...` and `cpu_of PIDS...`.
SIZE_MIB="${SIZE_MIB:-1024}"
ROUNDS="${ROUNDS:-2}"
NODES="${NODES:-6}"
case "${BENCH_PROFILE:-release}" in
  release) flags=(--release); dir=release ;;
  dev) flags=(); dir=debug ;;
  *) echo "BENCH_PROFILE must be release or dev" >&2; exit 2 ;;
esac
command -v curl >/dev/null || { echo "$0: needs curl" >&2; exit 2; }

cargo build "${flags[@]}" -q -p raidtorrent-tracker -p raidtorrent-peer \
  --bin raidtorrent-tracker --bin raidtorrent-peer
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/$dir"
work="$(mktemp -d)"
devnet_pid=""
cleanup() {
  [ -n "$devnet_pid" ] && kill -INT "$devnet_pid" 2>/dev/null && wait "$devnet_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

RUST_LOG=warn "$bin/raidtorrent-tracker" devnet --dir "$work/devnet" --nodes "$NODES" \
  --quota 16GiB --api-listen 127.0.0.1:0 --s3-listen 127.0.0.1:0 --peer-bin "$bin/raidtorrent-peer" \
  >"$work/banner" 2>"$work/devnet.log" &
devnet_pid=$!
# The banner's last line is written once every node is connected.
for _ in $(seq 600); do
  grep -q "^Paste:" "$work/banner" 2>/dev/null && grep -q "^S3 API" "$work/banner" && break
  kill -0 "$devnet_pid" 2>/dev/null || { cat "$work/devnet.log" >&2; exit 1; }
  sleep 0.2
done
api=$(awk '/object API/ {print $3; exit}' "$work/banner")
read -r _ _ s3 _ _ key _ secret < <(grep "^S3 API" "$work/banner")

head -c "$((SIZE_MIB << 20))" /dev/urandom >"$work/object"
bytes=$((SIZE_MIB << 20))

node_pids=$(pgrep -P "$devnet_pid" | tr '\n' ' ')
tick=$(getconf CLK_TCK)

# CPU seconds (user and system) the processes PIDS have used so far.
cpu_of() {
  local ticks=0 p
  for p in "$@"; do ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "scale=2; $ticks / $tick" | bc -l
}
mbps() { echo "scale=1; $bytes / $1 / 1000000" | bc -l; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
