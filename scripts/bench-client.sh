#!/usr/bin/env bash
# What the gateway does when clients code their objects themselves (RT-0004): one devnet
# (6 nodes on loopback), one file, stored and fetched through the gateway (curl on the object
# API) and by the CLI peer (`raidtorrent-peer put` / `get`, which seeds to and fetches from the
# nodes), interleaved ROUNDS times. Prints each transfer's MB/s, the gateway process's CPU
# seconds and the bytes it read and wrote (sockets and files, from /proc/<pid>/io), and the
# medians' ratios CLI / gateway path.
#
#   scripts/bench-client.sh                          # 1 GiB, 2 rounds, release build
#   SIZE_MIB=256 ROUNDS=3 BENCH_PROFILE=dev scripts/bench-client.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-devnet.sh
export RT_GATEWAY="$api" RT_KEYRING="$work/keyring"

# The gateway process's CPU seconds and the bytes it read and wrote so far.
gateway_cost() {
  local io
  io=$(awk '/^(rchar|wchar):/ {s += $2} END {printf "%.0f", s}' "/proc/$devnet_pid/io")
  echo "$(cpu_of "$devnet_pid") $io"
}

# Runs a transfer; prints "seconds gateway-cpu-seconds gateway-MB".
measured() {
  local start end c0 c1 b0 b1
  read -r c0 b0 < <(gateway_cost)
  start=$(date +%s.%N)
  "$@" >/dev/null 2>>"$work/client.log" || { echo "bench-client: failed: $*" >&2; tail "$work/client.log" >&2; return 1; }
  end=$(date +%s.%N)
  read -r c1 b1 < <(gateway_cost)
  echo "$(echo "$end - $start" | bc -l) $(echo "$c1 - $c0" | bc -l) $(((b1 - b0) / 1000000))"
}
report() { printf 'round %s  %-14s %7s MB/s   gateway: %6s CPU s  %6s MB moved\n' "$1" "$2" "$(mbps "$3")" "$4" "$5"; }

declare -a gput gget cput cget gputc ggetc cputc cgetc
for r in $(seq "$ROUNDS"); do
  read -r t c b < <(measured curl -fsS -T "$work/object" "$api/demo/gw-$r") || exit 1
  gput+=("$t"); gputc+=("$c"); report "$r" "gateway PUT" "$t" "$c" "$b"
  read -r t c b < <(measured "$bin/raidtorrent-peer" put -q "$work/object" "demo/cli-$r") || exit 1
  cput+=("$t"); cputc+=("$c"); report "$r" "CLI put" "$t" "$c" "$b"
  read -r t c b < <(measured curl -fsS "$api/demo/gw-$r" -o "$work/back") || exit 1
  cmp -s "$work/object" "$work/back" || { echo "gateway GET returned other bytes" >&2; exit 1; }
  gget+=("$t"); ggetc+=("$c"); report "$r" "gateway GET" "$t" "$c" "$b"
  read -r t c b < <(measured "$bin/raidtorrent-peer" get -q "demo/cli-$r" -o "$work/back") || exit 1
  cmp -s "$work/object" "$work/back" || { echo "CLI get returned other bytes" >&2; exit 1; }
  cget+=("$t"); cgetc+=("$c"); report "$r" "CLI get" "$t" "$c" "$b"
done
gp=$(median "${gput[@]}"); cp=$(median "${cput[@]}")
gg=$(median "${gget[@]}"); cg=$(median "${cget[@]}")
echo
echo "$SIZE_MIB MiB, $NODES nodes, medians of $ROUNDS rounds:"
printf '  upload    gateway %6s MB/s %6s CPU s   CLI %6s MB/s %6s CPU s   CLI/gateway rate %s\n' \
  "$(mbps "$gp")" "$(median "${gputc[@]}")" "$(mbps "$cp")" "$(median "${cputc[@]}")" "$(echo "scale=2; $gp / $cp" | bc -l)"
printf '  download  gateway %6s MB/s %6s CPU s   CLI %6s MB/s %6s CPU s   CLI/gateway rate %s\n' \
  "$(mbps "$gg")" "$(median "${ggetc[@]}")" "$(mbps "$cg")" "$(median "${cgetc[@]}")" "$(echo "scale=2; $gg / $cg" | bc -l)"
