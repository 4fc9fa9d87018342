#!/usr/bin/env bash
# Runs the durability simulator on a preset and draws its figures.
#   scripts/durability.sh [preset] [out-dir] [extra args for `run`, e.g. --years 0.25]
# preset: quick (default), default, calibration, or a path to a TOML file.
set -euo pipefail
cd "$(dirname "$0")/.."

preset="${1:-quick}"
out="${2:-target/durability/$(basename "$preset" .toml)}"
shift $(( $# > 2 ? 2 : $# )) || true
case "$preset" in
  *.toml) config="$preset" ;;
  *) config="durability/presets/$preset.toml" ;;
esac

cargo build --release -p raidtorrent-durability
mkdir -p "$out"
/usr/bin/time -v target/release/raidtorrent-durability run --config "$config" --out "$out" "$@" \
  2> >(tee "$out/time.log" >&2)

if ! python3 -c 'import matplotlib' 2>/dev/null; then
  python3 -m pip install --quiet matplotlib
fi
python3 scripts/durability_plot.py "$out"
echo "figures and CSV files in $out"
