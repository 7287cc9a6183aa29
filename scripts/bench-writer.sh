#!/usr/bin/env bash
# Writer benchmark (not a test), one run on one disk:
#  1. bench_writer example: SegmentWriter vs std File + sync_data vs dd oflag=direct (with and
#     without conv=fdatasync) vs a durable reference (buffered 1 MiB writes, each with a
#     sync_file_range write-out hint, fdatasync every 8 MiB, one file) for 64 B, 4 KiB, 64 KiB,
#     1 MiB records; durable latency p50/p99 at 100 MB/s.
#  2. end to end: synthetic ingest -> iceoryx2 -> writer process, 64-byte messages, msgs/s.
# Each of issue 3's goals gets a line "goal ...: met" or "goal ...: MISSED" with its numbers.
# Usage: scripts/bench-writer.sh [DIR (default target/bench-writer)] [MiB per case (default 256)]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/bench-writer}
mib=${2:-256}
scripts/install-deps.sh
cargo build --release -q -p writer --example bench_writer
cargo build --release -q -p ingest -p writer
mkdir -p "$dir"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'), kernel $(uname -r), $(findmnt -n -o FSTYPE -T "$dir") on $(findmnt -n -o SOURCE -T "$dir")"
# How busy the disk was just before (the ratios to dd and the latency tail move with it).
if [[ -r /proc/pressure/io ]]; then echo "io pressure before the run: $(head -n 1 /proc/pressure/io)"; fi
target/release/examples/bench_writer "$dir" "$mib"

# End to end: one robot, one std_msgs/String topic whose CDR payload is 64 bytes, offered as
# fast as the synthetic source can produce it.
e2e="$dir/e2e"
rm -rf "$e2e"; mkdir -p "$e2e"
cfg="$e2e/bench.toml"
cat > "$cfg" <<EOT
[pipeline]
name = "bench-$$"
run_dir = "$e2e/run"
status_interval_ms = 500
message_buffer = 4096
[storage]
path = "$e2e/recordings"
[synthetic]
robots = 1
[[synthetic.topics]]
name = "fast"
type = "std_msgs/msg/String"
rate_hz = 3000000.0
size = 55
EOT
bin=target/release
"$bin/fleetrec-writer" --config "$cfg" 2>"$e2e/writer.log" & wpid=$!
sleep 1
"$bin/fleetrec-ingest" --config "$cfg" 2>"$e2e/ingest.log" & ipid=$!
trap 'kill -TERM $ipid $wpid 2>/dev/null || true' EXIT
sleep 3
snap() { "$bin/fleetrec-$1" --config "$cfg" status --json; }
w1=$(snap writer); i1=$(snap ingest); t1=$(date +%s.%N)
sleep 10
w2=$(snap writer); i2=$(snap ingest); t2=$(date +%s.%N)
kill -TERM $ipid; wait $ipid || true
sleep 1
kill -TERM $wpid; wait $wpid || true
trap - EXIT
python3 - "$w1" "$w2" "$i1" "$i2" "$t1" "$t2" <<'EOT'
import json, sys
w1, w2, i1, i2 = (json.loads(a) for a in sys.argv[1:5])
dt = float(sys.argv[6]) - float(sys.argv[5])
def offered(s): return sum(t["last_sequence"] for t in s["topics"])
rec = (w2["messages"] - w1["messages"]) / dt
off = (offered(i2) - offered(i1)) / dt
drop = (i2["dropped"] - i1["dropped"]) / dt
print(f"end to end (64 B payload, synthetic ingest -> iceoryx2 -> writer): offered {off:,.0f} msg/s, "
      f"recorded {rec:,.0f} msg/s, dropped (counted) {drop:,.0f} msg/s over {dt:.1f} s")
print(f"goal >= 1 M msg/s end to end at 64 B: {'met' if rec >= 1e6 else 'MISSED'} ({rec:,.0f} msg/s)")
EOT
target/release/fleetrec-writer inspect "$e2e/recordings" | tail -n 3
# Every sequence number inspect finds missing must be one ingest counted as dropped.
echo "ingest's own count at exit: $(sed 's/\x1b\[[0-9;]*m//g' "$e2e/ingest.log" | grep -o 'ingest stopped dropped=[0-9]*' | tail -n 1)"
rm -rf "$e2e"
