#!/usr/bin/env bash
# A whole raidtorrent cloud on this machine in one command: builds the gateway and node
# binaries, then runs `raidtorrent-tracker devnet`, which starts a gateway (SQLite, tracker,
# control listener, object API on 127.0.0.1:9000) and N node processes in three zones on
# loopback, waits until every node is connected and prints curl commands to paste.
#
#   scripts/devnet.sh                      # 6 nodes, release build
#   scripts/devnet.sh --nodes 9 --dir ./my-devnet --api-listen 127.0.0.1:9100
#   DEVNET_PROFILE=dev scripts/devnet.sh   # debug build (faster to compile)
#
# Needs only a Rust toolchain (https://rustup.rs); Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${DEVNET_PROFILE:-release}"
case "$profile" in
  release) flags=(--release); dir=release ;;
  dev | debug) flags=(); dir=debug ;;
  *) echo "DEVNET_PROFILE must be release or dev" >&2; exit 2 ;;
esac
cargo build "${flags[@]}" -p raidtorrent-tracker -p raidtorrent-peer \
  --bin raidtorrent-tracker --bin raidtorrent-peer
target="${CARGO_TARGET_DIR:-target}"
exec "$target/$dir/raidtorrent-tracker" devnet --peer-bin "$target/$dir/raidtorrent-peer" "$@"
