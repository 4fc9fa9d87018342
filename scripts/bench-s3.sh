#!/usr/bin/env bash
# What the S3 layer costs: one devnet (6 nodes on loopback; release build unless
# BENCH_PROFILE=dev), one file, stored and fetched through the native API (curl) and through S3
# (aws-cli at its default settings: 8 MiB multipart parts, 10 at once), interleaved ROUNDS
# times. Prints each transfer's MB/s and the S3 / native ratio of the medians, upload and
# download. With boto3 installed it also moves the file through S3 with curl on presigned URLs
# (one PUT, one GET), which shows what the S3 layer itself costs apart from aws-cli's own work
# on the same cores. Each transfer's CPU seconds (the client, the gateway, the nodes) are
# printed too, with their medians per GiB: what each side spends on a byte, apart from the rate.
#
#   scripts/bench-s3.sh                     # 1 GiB, 2 rounds
#   SIZE_MIB=256 ROUNDS=3 scripts/bench-s3.sh
#   PART_MIB=64 CONCURRENCY=4 scripts/bench-s3.sh   # aws-cli's multipart_chunksize and
#                                                   # max_concurrent_requests instead of 8 and 10
set -euo pipefail
# `times` below must print seconds with a decimal point.
export LC_ALL=C
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

# Runs a transfer; prints "seconds client-CPU gateway-CPU nodes-CPU" (CPU seconds, user and
# system, the client's from the subshell's `times`).
measured() {
  local start end c g0 g1 n0 n1
  g0=$(cpu_of "$devnet_pid") n0=$(cpu_of $node_pids)
  start=$(date +%s.%N)
  c=$( ("$@" >/dev/null || exit 1; times) | awk 'NR == 2 {
    split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }') ||
    { echo "bench-s3: failed: $*" >&2; return 1; }
  end=$(date +%s.%N)
  g1=$(cpu_of "$devnet_pid") n1=$(cpu_of $node_pids)
  echo "$(echo "$end - $start" | bc -l) $c $(echo "$g1 - $g0" | bc -l) $(echo "$n1 - $n0" | bc -l)"
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

# One transfer: runs it, checks a download against the file, keeps its time in the array
# named $1 and its CPU seconds in $1_cpu ("client gateway nodes"), prints a line.
transfer() {
  local into=$1 what=$2 t c g n
  shift 2
  read -r t c g n < <(measured "$@") || exit 1
  [[ $what == *GET* ]] && { cmp -s "$work/object" "$work/back" || { echo "$what returned other bytes" >&2; exit 1; }; }
  declare -n times=$into cpus=${into}_cpu
  times+=("$t") cpus+=("$c $g $n")
  printf 'round %s  %-16s %7s MB/s   CPU s: client %5s  gateway %5s  nodes %5s\n' "$r" "$what" "$(mbps "$t")" "$c" "$g" "$n"
}

declare -a nput nget sput sget cput cget nput_cpu nget_cpu sput_cpu sget_cpu cput_cpu cget_cpu
for r in $(seq "$ROUNDS"); do
  transfer nput "native PUT" curl -fsS -T "$work/object" "$api/demo/native-$r"
  transfer sput "S3 PUT" aws --endpoint-url "$s3" s3 cp "$work/object" "s3://bench/s3-$r" --no-progress
  transfer nget "native GET" curl -fsS "$api/demo/native-$r" -o "$work/back"
  transfer sget "S3 GET" aws --endpoint-url "$s3" s3 cp "s3://bench/s3-$r" "$work/back" --no-progress
  if url=$(presign put_object "curl-$r"); then
    transfer cput "presigned PUT" curl -fsS -T "$work/object" "$url"
    url=$(presign get_object "curl-$r")
    transfer cget "presigned GET" curl -fsS "$url" -o "$work/back"
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

# Median CPU seconds per GiB moved of field $2 (1 client, 2 gateway, 3 nodes) of transfers $1.
per_gib() {
  declare -n cpus=${1}_cpu
  local f=$2 v=()
  for c in "${cpus[@]}"; do v+=("$(echo "$c" | awk -v f="$f" '{print $f}')"); done
  echo "scale=2; $(median "${v[@]}") * 1073741824 / $bytes" | bc -l
}
echo "CPU seconds per GiB moved (medians):   client   gateway   nodes"
for t in nput sput cput nget sget cget; do
  declare -n done_=$t
  ((${#done_[@]})) || continue
  printf '  %-34s %7s %9s %7s\n' "$(case $t in
    nput) echo "native PUT (curl)" ;; sput) echo "S3 PUT (aws-cli)" ;; cput) echo "S3 PUT (curl, presigned)" ;;
    nget) echo "native GET (curl)" ;; sget) echo "S3 GET (aws-cli)" ;; cget) echo "S3 GET (curl, presigned)" ;;
    esac)" "$(per_gib $t 1)" "$(per_gib $t 2)" "$(per_gib $t 3)"
done
