#!/usr/bin/env bash
# Benchmark of the exporter (not a test): makes a synthetic recording of >= 1 GiB (SIZE_MB, default
# 1100), exports it to Parquet with fleetrec-exporter (release build), and runs the Python path on
# the same data in the same run: the MCAP export of it decoded with mcap-ros2-support, pyarrow
# tables built from the decoded messages, Parquet written. Prints messages/s, MB/s (payload bytes)
# and peak RSS of each, and the speed-up, as a Markdown table for docs/BENCHMARKS.md.
# Usage: scripts/bench-exporter.sh [--keep]   (work folder: $BENCH_DIR or target/bench-exporter)
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=0
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "bench-exporter: unknown argument $arg" >&2; exit 2 ;;
  esac
done

SIZE_MB="${SIZE_MB:-1100}"
WORK="${BENCH_DIR:-target/bench-exporter}"
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p exporter --bin fleetrec-exporter --example make_recording
scripts/install-py-readers.sh >/dev/null
PY="${FLEETREC_PY_VENV:-target/py-venv}/bin/python"
export RUST_LOG="${RUST_LOG:-warn}"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

rm -rf "$WORK"
mkdir -p "$WORK"
echo "bench-exporter: writing a ${SIZE_MB} MB recording into $WORK/rec" >&2
STATS=$("$TARGET/release/examples/make_recording" "$WORK/rec" "$SIZE_MB")

# Runs a command, prints "seconds peak_rss_kb" (peak RSS of that command alone).
measure() {
  "$PY" - "$@" <<'PYEOF'
import resource, subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
dt = time.perf_counter() - t
print(f"{dt:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PYEOF
}

echo "bench-exporter: fleetrec-exporter -> parquet" >&2
read -r RUST_S RUST_KB < <(measure "$TARGET/release/fleetrec-exporter" export --quiet --input "$WORK/rec" --out "$WORK/parquet" --format parquet)
echo "bench-exporter: fleetrec-exporter -> mcap (input of the Python path)" >&2
read -r MCAP_S MCAP_KB < <(measure "$TARGET/release/fleetrec-exporter" export --quiet --input "$WORK/rec" --out "$WORK/mcap" --format mcap)

cat > "$WORK/python_path.py" <<'PYEOF'
# The Python path: decode the MCAP with mcap-ros2-support, build pyarrow tables, write Parquet.
import os, sys
import pyarrow as pa, pyarrow.parquet as pq
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
def conv(o):
    if isinstance(o, (bytes, bytearray, str, int, float, bool)) or o is None:
        return o
    if isinstance(o, (list, tuple)):
        return [conv(x) for x in o]
    return {k: conv(getattr(o, k)) for k in o.__slots__}
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
for f in sorted(os.listdir(src)):
    if not f.endswith('.mcap'):
        continue
    rows = {}
    with open(os.path.join(src, f), 'rb') as fh:
        for schema, channel, message, ros in make_reader(fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            r = conv(ros)
            r['receive_time_ns'] = message.log_time
            r['publish_time_ns'] = message.publish_time
            r['sequence'] = message.sequence
            rows.setdefault(channel.topic, []).append(r)
    for topic, rs in rows.items():
        name = f[:-5] + topic.replace('/', '__') + '.parquet'
        pq.write_table(pa.Table.from_pylist(rs), os.path.join(out, name), compression='snappy')
PYEOF
echo "bench-exporter: python path (mcap-ros2-support + pyarrow) -> parquet" >&2
read -r PY_S PY_KB < <(measure "$PY" "$WORK/python_path.py" "$WORK/mcap" "$WORK/py-parquet")

"$PY" - "$STATS" "$RUST_S" "$RUST_KB" "$MCAP_S" "$MCAP_KB" "$PY_S" "$PY_KB" "$(du -sb "$WORK/rec" | cut -f1)" "$WORK" "$LOAD_BEFORE" <<'PYEOF'
import json, os, platform, sys
import pyarrow.parquet as pq
st = json.loads(sys.argv[1])
rs, rkb, ms, mkb, ps, pkb, rec_bytes = float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
work, load_before = sys.argv[9], sys.argv[10]
n, b = st['messages'], st['payload_bytes']
def rows(d):
    total = 0
    for root, _, files in os.walk(d):
        total += sum(pq.ParquetFile(os.path.join(root, f)).metadata.num_rows for f in files if f.endswith('.parquet'))
    return total
model = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
print(f"machine: {os.cpu_count()} cores ({model}), {platform.platform()}; load average before {load_before}, after {' '.join(open('/proc/loadavg').read().split()[:3])}")
print(f"recording: {rec_bytes / 2**30:.2f} GiB on disk, {n} messages, {b / 2**20:.0f} MiB of CDR payload, {st['segments']} segments")
print(f"rows written: fleetrec-exporter {rows(os.path.join(work, 'parquet'))}, Python path {rows(os.path.join(work, 'py-parquet'))}\n")
print("| path | time (s) | messages/s | MB/s (payload) | peak RSS (MiB) |")
print("|---|---:|---:|---:|---:|")
for name, s, kb in [("fleetrec-exporter -> Parquet", rs, rkb), ("fleetrec-exporter -> MCAP", ms, mkb), ("Python: mcap-ros2-support + pyarrow -> Parquet", ps, pkb)]:
    print(f"| {name} | {s:.2f} | {n / s:,.0f} | {b / 2**20 / s:,.1f} | {kb / 1024:,.0f} |")
x = ps / rs
print(f"\nspeed-up of fleetrec-exporter over the Python path (Parquet): {x:.1f}x (goal >= 10x: {'met' if x >= 10 else 'NOT met'})")
PYEOF
[ "$KEEP" = 1 ] || rm -rf "$WORK"
