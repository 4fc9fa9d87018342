#!/usr/bin/env bash
# What the S3 layer costs: one devnet (release build, 6 nodes on loopback), one file, stored
# and fetched through the native API (curl) and through S3 (aws-cli at its default settings:
# 8 MiB multipart parts, 10 at once), interleaved ROUNDS times. Prints each transfer's MB/s and
# the S3 / native ratio of the medians, upload and download. With boto3 installed it also moves
# the file through S3 with curl on presigned URLs (one PUT, one GET), which shows what the S3
# layer itself costs apart from aws-cli's own work on the same cores.
#
#   scripts/bench-s3.sh                     # 1 GiB, 2 rounds
#   SIZE_MIB=256 ROUNDS=3 scripts/bench-s3.sh
#   PART_MIB=64 CONCURRENCY=4 scripts/bench-s3.sh   # aws-cli's multipart_chunksize and
#                                                   # max_concurrent_requests instead of 8 and 10
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${SIZE_MIB:-1024}"
ROUNDS="${ROUNDS:-2}"
NODES="${NODES:-6}"
command -v aws >/dev/null || { echo "bench-s3: needs aws-cli (pip install awscli)" >&2; exit 2; }
command -v curl >/dev/null || { echo "bench-s3: needs curl" >&2; exit 2; }

cargo build --release -q -p raidtorrent-tracker -p raidtorrent-peer \
  --bin raidtorrent-tracker --bin raidtorrent-peer
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/release"
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
for _ in $(seq 600); do
  grep -q "^S3 API" "$work/banner" 2>/dev/null && break
  kill -0 "$devnet_pid" 2>/dev/null || { cat "$work/devnet.log" >&2; exit 1; }
  sleep 0.2
done
api=$(awk '/object API/ {print $3; exit}' "$work/banner")
read -r _ _ s3 _ _ key _ secret < <(grep "^S3 API" "$work/banner")

# The clients' own settings only: no config files, no CA bundle from the environment.
unset AWS_CA_BUNDLE AWS_PROFILE AWS_ENDPOINT_URL
export AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/none"
echo "[default]" >"$AWS_CONFIG_FILE"
if [ -n "${PART_MIB:-}${CONCURRENCY:-}" ]; then
  {
    echo "s3 ="
    [ -n "${PART_MIB:-}" ] && echo "  multipart_chunksize = ${PART_MIB}MB"
    [ -n "${PART_MIB:-}" ] && echo "  multipart_threshold = ${PART_MIB}MB"
    [ -n "${CONCURRENCY:-}" ] && echo "  max_concurrent_requests = ${CONCURRENCY}"
    true
  } >>"$AWS_CONFIG_FILE"
fi
aws --endpoint-url "$s3" s3 mb s3://bench >/dev/null

head -c "$((SIZE_MIB << 20))" /dev/urandom >"$work/object"
bytes=$((SIZE_MIB << 20))

# Seconds a command takes.
timed() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null || { echo "bench-s3: failed: $*" >&2; return 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}
mbps() { echo "scale=1; $bytes / $1 / 1000000" | bc -l; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# A presigned URL for `method` on s3://bench/<key>, if boto3 is there.
presign() {
  python3 - "$s3" "$1" "$2" <<'PY' 2>/dev/null
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], config=Config(signature_version="s3v4"))
print(s3.generate_presigned_url(sys.argv[2], Params={"Bucket": "bench", "Key": sys.argv[3]}, ExpiresIn=3600))
PY
}

declare -a nput nget sput sget cput cget
for r in $(seq "$ROUNDS"); do
  t=$(timed curl -fsS -T "$work/object" "$api/demo/native-$r") || exit 1
  nput+=("$t"); echo "round $r  native PUT  $(mbps "$t") MB/s"
  t=$(timed aws --endpoint-url "$s3" s3 cp "$work/object" "s3://bench/s3-$r" --no-progress) || exit 1
  sput+=("$t"); echo "round $r  S3 PUT      $(mbps "$t") MB/s"
  t=$(timed curl -fsS "$api/demo/native-$r" -o "$work/back") || exit 1
  cmp -s "$work/object" "$work/back" || { echo "native GET returned other bytes" >&2; exit 1; }
  nget+=("$t"); echo "round $r  native GET  $(mbps "$t") MB/s"
  t=$(timed aws --endpoint-url "$s3" s3 cp "s3://bench/s3-$r" "$work/back" --no-progress) || exit 1
  cmp -s "$work/object" "$work/back" || { echo "S3 GET returned other bytes" >&2; exit 1; }
  sget+=("$t"); echo "round $r  S3 GET      $(mbps "$t") MB/s"
  if url=$(presign put_object "curl-$r"); then
    t=$(timed curl -fsS -T "$work/object" "$url") || exit 1
    cput+=("$t"); echo "round $r  S3 PUT curl $(mbps "$t") MB/s   (presigned)"
    url=$(presign get_object "curl-$r")
    t=$(timed curl -fsS "$url" -o "$work/back") || exit 1
    cmp -s "$work/object" "$work/back" || { echo "presigned GET returned other bytes" >&2; exit 1; }
    cget+=("$t"); echo "round $r  S3 GET curl $(mbps "$t") MB/s   (presigned)"
  fi
done
np=$(median "${nput[@]}"); sp=$(median "${sput[@]}")
ng=$(median "${nget[@]}"); sg=$(median "${sget[@]}")
echo
echo "$SIZE_MIB MiB, $NODES nodes, medians of $ROUNDS rounds (MB/s):"
printf '  upload    native %6s   S3 %6s   S3/native %s\n' "$(mbps "$np")" "$(mbps "$sp")" "$(echo "scale=2; $np / $sp" | bc -l)"
printf '  download  native %6s   S3 %6s   S3/native %s\n' "$(mbps "$ng")" "$(mbps "$sg")" "$(echo "scale=2; $ng / $sg" | bc -l)"
if ((${#cput[@]})); then
  cp=$(median "${cput[@]}"); cg=$(median "${cget[@]}")
  printf '  curl, presigned S3 URLs:  upload %6s (S3/native %s)   download %6s (S3/native %s)\n' \
    "$(mbps "$cp")" "$(echo "scale=2; $np / $cp" | bc -l)" "$(mbps "$cg")" "$(echo "scale=2; $ng / $cg" | bc -l)"
fi
