#!/usr/bin/env bash
# Viewer benchmark (not a test): CPU of fleetrec-viewer attached to a pipeline at full rate, and
# the time from start to the first live values. Numbers go to docs/BENCHMARKS.md by hand.
#   viewer/bench/bench-viewer.sh            release build, then measure
# Env: FLEETREC_BIN (prebuilt binaries: no build), CARGO_TARGET_DIR, SECONDS_WINDOW (default 30),
#      RATE_SCALE (default 10), RUNS (start-up runs, default 5).
# Measures, on a private pipeline (writer + synthetic ingest, 2 robots, status every 250 ms):
#   1. the window under Xvfb (software renderer), attached: CPU % of one core, UI updates/s;
#   2. the window with no stage running: CPU and UI updates/s (idle);
#   3. --headless --metrics, attached: CPU;
#   4. start to the first snapshot with ingest and writer up, and to the first non-zero rate.
# CPU comes from /proc/<pid>/stat (utime + stime) over the window; UI updates from the viewer's
# own count, logged when its window closes.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
window="${SECONDS_WINDOW:-30}"
scale="${RATE_SCALE:-10}"
runs="${RUNS:-5}"
if [ -z "${FLEETREC_BIN:-}" ]; then
  cargo build --release -p ingest -p writer -p viewer
  FLEETREC_BIN="${CARGO_TARGET_DIR:-$root/target}/release"
fi
command -v Xvfb >/dev/null || { echo "needs Xvfb (apt-get install xvfb)" >&2; exit 1; }

work=$(mktemp -d)
cfg="$work/fleetrec.toml"
sed -e "s|^name = \"fleetrec\"|name = \"fleetrec-bench-$$\"|" \
    -e "s|^run_dir = .*|run_dir = \"$work/run\"|" \
    -e "s|^path = \"./data/recordings\"|path = \"$work/recordings\"|" \
    -e "s|^rate_scale = .*|rate_scale = $scale|" \
    config/default.toml > "$cfg"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

display=99
while [ -e "/tmp/.X$display-lock" ]; do display=$((display + 1)); done
Xvfb ":$display" -screen 0 1280x800x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$display" ] && break; sleep 0.1; done

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# cpu_percent PID SECONDS: CPU of PID over the next SECONDS, percent of one core.
cpu_percent() {
  local a b
  a=$(cpu_ticks "$1"); sleep "$2"; b=$(cpu_ticks "$1")
  awk -v a="$a" -v b="$b" -v t="$ticks" -v s="$2" 'BEGIN { printf "%.2f", (b - a) * 100 / t / s }'
}
# window_run LABEL: the window for $window s (after 3 s of warm-up); CPU and updates/s.
window_run() {
  DISPLAY=":$display" RUST_LOG=info "$FLEETREC_BIN/fleetrec-viewer" --config "$cfg" >"$work/viewer.log" 2>&1 &
  local v=$!
  sleep 3
  local cpu
  cpu=$(cpu_percent "$v" "$window")
  kill -TERM "$v"; wait "$v" || true
  local per
  per=$(grep -o 'per_second="\?[0-9.]*' "$work/viewer.log" | tail -1 | grep -o '[0-9.]*$' || echo "?")
  echo "$1: CPU $cpu% of a core over ${window}s, $per UI updates/s"
}

window_run "window, no stage running (idle)"

"$FLEETREC_BIN/fleetrec-writer" --config "$cfg" >"$work/writer.log" 2>&1 &
writer=$!; pids+=("$writer")
sleep 1
"$FLEETREC_BIN/fleetrec-ingest" --config "$cfg" >"$work/ingest.log" 2>&1 &
ingest=$!; pids+=("$ingest")
sleep 3

window_run "window, attached at rate_scale $scale"
echo "  same time: ingest $(cpu_percent "$ingest" 5)%, writer $(cpu_percent "$writer" 5)% of a core"

"$FLEETREC_BIN/fleetrec-viewer" --config "$cfg" --headless --metrics 127.0.0.1:0 >"$work/headless.log" 2>&1 &
h=$!
sleep 3
echo "--headless --metrics, attached: CPU $(cpu_percent "$h" "$window")% of a core over ${window}s"
kill -TERM "$h"; wait "$h" || true

# Start to first values: ns timestamps from this script's clock around the viewer's JSON lines.
for i in $(seq "$runs"); do
  python3 - "$FLEETREC_BIN/fleetrec-viewer" "$cfg" <<'EOF'
import json, subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen([sys.argv[1], "--config", sys.argv[2], "--headless", "--json", "--interval-ms", "10"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
up = rate = None
for line in p.stdout:
    s = json.loads(line)
    st = {x["stage"]: x for x in s["stages"]}
    now = (time.monotonic() - t0) * 1000
    if up is None and st["ingest"]["up"] and st["writer"]["up"]:
        up = now
    if up is not None and any(r["rate_hz"] > 0 for r in s["robots"]):
        rate = now
        break
    if now > 10000:
        break
p.terminate()
p.wait()
print(f"start to both stages up: {up:.0f} ms, to first non-zero rate: {rate:.0f} ms")
EOF
done
