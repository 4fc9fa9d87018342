#!/usr/bin/env bash
# What the S3 layer costs: one devnet (6 nodes on loopback; release build unless
# BENCH_PROFILE=dev), one file, stored and fetched through the native API (curl) and through S3
# (aws-cli at its default settings: 8 MiB multipart parts, 10 at once), interleaved ROUNDS
# times. Prints each transfer's MB/s and the S3 / native ratio of the medians, upload and
# download. With boto3 installed it also moves the file through S3 with curl on presigned URLs
# (one PUT, one GET), which shows what the S3 layer itself costs apart from aws-cli's own work
# on the same cores.
#
#   scripts/bench-s3.sh                     # 1 GiB, 2 rounds
#   SIZE_MIB=256 ROUNDS=3 scripts/bench-s3.sh
#   PART_MIB=64 CONCURRENCY=4 scripts/bench-s3.sh   # aws-cli's multipart_chunksize and
#                                                   # max_concurrent_requests instead of 8 and 10
set -euo pipefail
cd "$(dirname "$0")/.."
command -v aws >/dev/null || { echo "bench-s3: needs aws-cli (pip install awscli)" >&2; exit 2; }
source scripts/bench-devnet.sh

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

# Seconds a command takes.
timed() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null || { echo "bench-s3: failed: $*" >&2; return 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

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
