#!/usr/bin/env bash
# Upload throughput of fleetrec-uploader next to `rclone copy`, both to the same local S3 server
# (SeaweedFS by default, or moto) on 127.0.0.1, in the same run. Not a test: it prints numbers.
#
#   scripts/bench-uploader.sh [--server seaweedfs|moto] [--mib 256] [--segment-mib 16] [--rounds 3]
#
# Each round uploads every segment once with each tool (to its own prefix), alternating which
# goes first; a warm-up upload comes before. It prints the median rates and their ratio.
#
# Environment: BENCH_CONCURRENCY (uploader [sync] concurrency, default 4, rclone's default
# --transfers), BENCH_KEEP=1 keeps the work directory, BENCH_LOG sets the uploader's RUST_LOG
# (default warn; its log is uploader.log in the work directory). Installs the servers and rclone
# (scripts/install-s3-servers.sh --bench) and builds the release binaries first.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER=seaweedfs
TOTAL_MIB=256
SEGMENT_MIB=16
ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --server) SERVER=$2; shift 2 ;;
    --mib) TOTAL_MIB=$2; shift 2 ;;
    --segment-mib) SEGMENT_MIB=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bench-uploader: unknown argument $1" >&2; exit 2 ;;
  esac
done
CONCURRENCY=${BENCH_CONCURRENCY:-4}
COUNT=$(( TOTAL_MIB / SEGMENT_MIB ))

scripts/install-s3-servers.sh --bench
VENV="${FLEETREC_S3_VENV:-target/s3-venv}"
VENV=$(cd "$VENV" && pwd)
cargo build --release -q -p uploader --bin fleetrec-uploader --example make_segments

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fleetrec-bench.XXXXXX")
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  # SeaweedFS leaves its local gRPC sockets in /tmp whatever TMPDIR says.
  for p in ${M:-} ${V:-} ${F:-} ${PORT:-}; do rm -f /tmp/seaweedfs-*-grpc-$(( p + 10000 )).sock; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_pair() { # a port p with p+10000 free too (SeaweedFS gRPC)
  python3 - <<'PY'
import socket
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    if p >= 55000: s.close(); continue
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p + 10000)); print(p); break
    except OSError:
        pass
    finally:
        t.close(); s.close()
PY
}

AUTH='Authorization: AWS4-HMAC-SHA256 Credential=AKIABENCH/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0000'
if [ "$SERVER" = seaweedfs ]; then
  M=$(free_pair); V=$(free_pair); F=$(free_pair); PORT=$(free_pair)
  mkdir -p "$WORK/weed"
  TMPDIR="$WORK/weed" "$VENV/bin/weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$WORK/weed" \
    -volume.max=100 -master.volumeSizeLimitMB=256 -filer -s3 -master.port="$M" -volume.port="$V" \
    -filer.port="$F" -s3.port="$PORT" -master.telemetry=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -filer.localSocket="$WORK/weed/filer.sock" -s3.localSocket="$WORK/weed/s3.sock" \
    >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
elif [ "$SERVER" = moto ]; then
  PORT=$(free_port)
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
else
  echo "bench-uploader: --server seaweedfs|moto" >&2; exit 2
fi
ENDPOINT="http://127.0.0.1:$PORT"
for _ in $(seq 1 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "$AUTH" "$ENDPOINT/bench" || true)
  [ "$code" = 200 ] && break
  sleep 0.2
done
[ "$code" = 200 ] || { echo "server did not come up; log:" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }

REC="$WORK/recordings"
target/release/examples/make_segments "$REC" "$COUNT" "$SEGMENT_MIB"
BYTES=$(cat "$REC"/*.wal | wc -c)
MIB=$(python3 -c "print($BYTES/1048576)")

export AWS_ACCESS_KEY_ID=AKIABENCH AWS_SECRET_ACCESS_KEY=bench-secret
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other RCLONE_CONFIG_BENCH_ENDPOINT="$ENDPOINT" \
  RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=AKIABENCH RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=bench-secret \
  RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true RCLONE_CONFIG_BENCH_REGION=us-east-1
now() { python3 -c 'import time; print(time.monotonic())'; }
# Runs a command, appending "seconds cpu_seconds" to file $1 (cpu 0 without /usr/bin/time).
timed() {
  local out=$1 t0 t1; shift
  t0=$(now)
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%U %S" -o "$out.cpu" "$@"
  else
    echo "0 0" >"$out.cpu"; "$@"
  fi
  t1=$(now)
  echo "$(python3 -c "print($t1 - $t0)") $(awk '{ print $1 + $2 }' "$out.cpu")" >>"$out"
}
uploader_round() { # round
  cat >"$WORK/bench-$1.toml" <<TOML
[pipeline]
name = "bench-$$-$1"
[storage]
path = "$REC"
[sync]
endpoint = "$ENDPOINT"
bucket = "bench"
prefix = "fleetrec-$1"
concurrency = $CONCURRENCY
state_dir = "$WORK/state-$1"
TOML
  RUST_LOG=${BENCH_LOG:-warn} timed "$WORK/uploader.times" target/release/fleetrec-uploader \
    --config "$WORK/bench-$1.toml" --once 2>>"$WORK/uploader.log" \
    || { echo "uploader failed; log:" >&2; tail -20 "$WORK/uploader.log" >&2; exit 1; }
}
rclone_round() { # round
  timed "$WORK/rclone.times" "$VENV/bin/rclone" copy "$REC" "bench:bench/rclone-$1" --include '*.wal' \
    --config /dev/null 2>>"$WORK/rclone.log" \
    || { echo "rclone failed; log:" >&2; tail -20 "$WORK/rclone.log" >&2; exit 1; }
}

# Warm-up: the server grows its volumes on first use; neither tool should pay for that.
"$VENV/bin/rclone" copy "$REC" bench:bench/warmup --include "$(basename "$(ls "$REC"/*.wal | head -1)")" \
  --config /dev/null 2>>"$WORK/rclone.log"
# Rounds alternate which tool goes first.
for r in $(seq 1 "$ROUNDS"); do
  if [ $(( r % 2 )) = 1 ]; then uploader_round "$r"; rclone_round "$r"; else rclone_round "$r"; uploader_round "$r"; fi
done

python3 - "$MIB" "$WORK/uploader.times" "$WORK/rclone.times" "$SERVER" "$COUNT" "$SEGMENT_MIB" "$CONCURRENCY" \
  "$("$VENV/bin/rclone" version 2>/dev/null | head -1)" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)" "$ROUNDS" <<'PY'
import statistics, sys
mib = float(sys.argv[1])
def load(path):
    rows = [tuple(map(float, l.split())) for l in open(path) if l.strip()]
    return [mib / t for t, _ in rows], statistics.median(c for _, c in rows)
up, up_cpu = load(sys.argv[2])
rc, rc_cpu = load(sys.argv[3])
server, count, seg, conc, rver, cores, load_avg, rounds = sys.argv[4:12]
print(f"server {server}, {count} segments of {seg} MiB ({mib:.1f} MiB), {rounds} rounds, "
      f"uploader concurrency {conc}, {rver} defaults")
print(f"{cores} cores shared with the server, load average {load_avg} at the end")
fmt = lambda xs: " ".join(f"{x:.1f}" for x in xs)
print(f"fleetrec-uploader: median {statistics.median(up):6.1f} MiB/s  (rounds: {fmt(up)})  client CPU {up_cpu:.2f} s/round")
print(f"rclone copy:       median {statistics.median(rc):6.1f} MiB/s  (rounds: {fmt(rc)})  client CPU {rc_cpu:.2f} s/round")
print(f"ratio uploader/rclone (medians): {statistics.median(up) / statistics.median(rc):.2f}")
PY
