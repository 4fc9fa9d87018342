#!/usr/bin/env bash
# The long chaos run: 12 nodes in 3 zones, objects written and read while nodes are killed and
# restarted at random, then every object checked byte for byte and every shard back to its copies.
#
#   scripts/chaos.sh            # 10 minutes of chaos (release build)
#   scripts/chaos.sh 1800       # 30 minutes
#   RAIDTORRENT_CHAOS_SEED=123 scripts/chaos.sh 600   # replay a run by its seed
#
# The same test runs for 20 s in `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
export RAIDTORRENT_CHAOS_SECS="$secs"
cargo build --release -p raidtorrent-peer --bin raidtorrent-peer
exec cargo test --release -p raidtorrent-integration --test e2e \
    chaos::objects_survive_nodes_dying_and_returning_at_random -- --exact --nocapture
