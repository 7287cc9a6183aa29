#!/usr/bin/env bash
# ROS 2 ingest benchmark (not a test). An rclpy publisher sends 1 KiB and 1 MiB messages
# (std_msgs/msg/UInt8MultiArray, reliable, keep last 1000) at stepped rates; recording them at the
# same time are (a) the pipeline, fleetrec-ingest --source ros2 (release) -> iceoryx2 ->
# fleetrec-writer (release) -> segments on disk, and (b) an rclpy subscriber (raw bytes) that
# writes every message to a file. Per step it prints what was sent, what the writer recorded,
# what ingest dropped, what the rclpy subscriber wrote, and the CPU seconds of ingest and of the
# rclpy subscriber per MB (= cores per MB/s). Zero loss = recorded == sent.
#
#   scripts/bench-ros2.sh [SECONDS per step (default 4)] [1 KiB rates] [1 MiB rates]
#   scripts/bench-ros2.sh 4 "1000 2000 5000 10000 20000" "10 20 50 100 200"
#
# Everything that speaks DDS runs in a private network namespace (../shared/tools/netns-run).
# Work files go to target/bench-ros2 (deleted at the end, they are GBs; BENCH_KEEP=1 keeps them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SECS="${1:-4}"
RATES_1K="${2:-1000 2000 5000 10000 20000}"
RATES_1M="${3:-10 20 50 100 200}"
scripts/setup-ros2.sh >/dev/null
# shellcheck disable=SC1091
. target/ros2.env
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --release -q -p ingest --features ros2
# The writer is built without the ROS env (it does not link ROS).
(env -u RUSTFLAGS cargo build --release -q -p writer)
WORK="$ROOT/target/bench-ros2"
rm -rf "$WORK"; mkdir -p "$WORK/bin"
# Private copies: another build of the shared target dir may replace the binaries meanwhile.
cp "$CARGO_TARGET_DIR/release/fleetrec-ingest" "$CARGO_TARGET_DIR/release/fleetrec-writer" "$WORK/bin/"
[ "${BENCH_KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'), $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cat > "$WORK/pub.py" <<'EOF'
# Publishes SIZE-byte UInt8MultiArray messages on TOPIC at RATE for SECS once a subscriber count
# of MATCH is reached and a line arrives on stdin; prints {"sent", "secs"}.
import json, sys, time
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
from rclpy.serialization import serialize_message
from std_msgs.msg import UInt8MultiArray
topic, size, rate, secs, match = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
rclpy.init()
node = rclpy.create_node("bench_publisher")
qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
pub = node.create_publisher(UInt8MultiArray, topic, qos)
# CDR of a UInt8MultiArray: 4 header + 4 dim count + 4 offset + 4 length = 16 bytes before data.
data = serialize_message(UInt8MultiArray(data=bytes(range(256)) * (max(size - 16, 0) // 256) + bytes((size - 16) % 256)))
deadline = time.monotonic() + 30
while pub.get_subscription_count() < match:
    if time.monotonic() > deadline:
        print(json.dumps({"error": "subscribers did not match"}), flush=True)
        sys.exit(1)
    time.sleep(0.01)
print("ready", flush=True)
sys.stdin.readline()
n_total = int(rate * secs)
sent = 0
t0 = time.monotonic()
while sent < n_total:
    due = min(n_total, int((time.monotonic() - t0) * rate) + 1)
    while sent < due:
        pub.publish(data)
        sent += 1
    nxt = t0 + sent / rate
    d = nxt - time.monotonic()
    if d > 0:
        time.sleep(d)
el = time.monotonic() - t0
print(json.dumps({"sent": sent, "secs": el, "bytes": len(data)}), flush=True)
time.sleep(2.0)  # reliable delivery completes after publish returns
node.destroy_node()
rclpy.shutdown()
EOF
cat > "$WORK/sub.py" <<'EOF'
# The reference: an rclpy subscriber (raw bytes, same QoS) that appends every message of the
# given topics to OUT, and keeps {topic: count} in OUT.counts.json.
import json, sys
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
from std_msgs.msg import UInt8MultiArray
out, topics = sys.argv[1], sys.argv[2].split(",")
rclpy.init()
node = rclpy.create_node("bench_rclpy_recorder")
qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
f = open(out, "wb")
counts = {t: 0 for t in topics}
def writer(t):
    def cb(msg):
        f.write(msg)
        counts[t] += 1
    return cb
subs = [node.create_subscription(UInt8MultiArray, t, writer(t), qos, raw=True) for t in topics]
def dump():
    f.flush()
    with open(out + ".counts.json.tmp", "w") as c:
        json.dump(counts, c)
    import os
    os.replace(out + ".counts.json.tmp", out + ".counts.json")
node.create_timer(0.2, dump)
try:
    rclpy.spin(node)
except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
    pass
EOF
cat > "$WORK/run.py" <<'EOF'
# Orchestrates the steps inside the network namespace.
import json, os, signal, subprocess, sys, time
work, py, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
steps = [(1024, float(r)) for r in sys.argv[4].split()] + [(1 << 20, float(r)) for r in sys.argv[5].split()]
topic = lambda size, rate: f"/bench/s{size}_r{int(rate)}"
cfg = f"{work}/bench.toml"
open(cfg, "w").write(f"""[pipeline]
name = "bench-ros2-{os.getpid()}"
run_dir = "{work}/run"
[storage]
path = "{work}/recordings"
[ingest]
exclude = "^/(rosout|parameter_events)$"
""")
tick = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
def status(stage):
    r = subprocess.run([f"{work}/bin/fleetrec-{stage}", "--config", cfg, "status", "--json"], capture_output=True, text=True)
    try:
        return {t["name"]: t for t in json.loads(r.stdout)["topics"]}
    except Exception:
        return {}
logs = lambda n: open(f"{work}/{n}.log", "w")
writer = subprocess.Popen([f"{work}/bin/fleetrec-writer", "--config", cfg], stderr=logs("writer"))
time.sleep(1)
ingest = subprocess.Popen([f"{work}/bin/fleetrec-ingest", "--config", cfg, "--source", "ros2"], stderr=logs("ingest"))
sub = subprocess.Popen([py, f"{work}/sub.py", f"{work}/rclpy.bin", ",".join(topic(s, r) for s, r in steps)], stderr=logs("rclpy"))
print(f"{'msg size':>8} {'rate Hz':>8} {'achieved':>9} {'MB/s':>7} {'sent':>7} {'recorded':>8} {'ingest drop':>11} "
      f"{'rclpy wrote':>11} {'ingest CPU s/MB':>15} {'rclpy CPU s/MB':>14}", flush=True)
rows = []
try:
    for size, rate in steps:
        t = topic(size, rate)
        p = subprocess.Popen([py, f"{work}/pub.py", t, str(size), str(rate), str(secs), "2"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, stderr=logs("publisher"))
        line = p.stdout.readline().strip()
        if line != "ready":
            print(f"{t}: publisher not ready: {line}", flush=True)
            p.kill(); p.wait()
            continue
        c_ing, c_sub = cpu(ingest.pid), cpu(sub.pid)
        p.stdin.write("go\n"); p.stdin.flush()
        line = p.stdout.readline()
        try:
            res = json.loads(line)
        except ValueError:
            p.wait()
            tail = open(f"{work}/publisher.log").read()[-1500:]
            print(f"{t}: publisher failed ({line!r}):\n{tail}", flush=True)
            continue
        # Wait until the writer's count stops moving (or everything arrived).
        last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + 20
        while time.monotonic() < deadline:
            rec = status("writer").get(t, {}).get("messages", 0)
            if rec >= res["sent"]:
                break
            if rec != last:
                last, stable_since = rec, time.monotonic()
            elif time.monotonic() - stable_since > 2:
                break
            time.sleep(0.2)
        d_ing, d_sub = cpu(ingest.pid) - c_ing, cpu(sub.pid) - c_sub
        p.wait()
        time.sleep(0.5)
        rec = status("writer").get(t, {}).get("messages", 0)
        drop = status("ingest").get(t, {}).get("dropped", 0)
        try:
            wrote = json.load(open(f"{work}/rclpy.bin.counts.json")).get(t, 0)
        except Exception:
            wrote = 0
        mb = rec * res["bytes"] / 1e6
        mbs = res["sent"] * res["bytes"] / 1e6 / res["secs"]
        sub_mb = wrote * res["bytes"] / 1e6
        row = dict(size=size, rate=rate, achieved=res["sent"] / res["secs"], mbs=mbs, sent=res["sent"], recorded=rec,
                   dropped=drop, rclpy=wrote, ingest_cpu_per_mb=d_ing / mb if mb else None,
                   rclpy_cpu_per_mb=d_sub / sub_mb if sub_mb else None)
        rows.append(row)
        fmt = lambda v: f"{v:.4f}" if v is not None else "-"
        print(f"{size:>8} {rate:>8.0f} {row['achieved']:>9.0f} {mbs:>7.1f} {res['sent']:>7} {rec:>8} {drop:>11} "
              f"{wrote:>11} {fmt(row['ingest_cpu_per_mb']):>15} {fmt(row['rclpy_cpu_per_mb']):>14}", flush=True)
        # The rclpy recorder's file is only a sink: keep the disk free.
        open(f"{work}/rclpy.bin", "r+b").truncate(0)
finally:
    for name, proc in (("ingest", ingest), ("rclpy recorder", sub)):
        try:
            hwm = [l for l in open(f"/proc/{proc.pid}/status") if l.startswith("VmHWM")][0].split()[1]
            print(f"{name} peak RSS: {int(hwm) / 1024:.0f} MiB", flush=True)
        except (OSError, IndexError):
            pass
    for proc in (sub, ingest):
        proc.send_signal(signal.SIGINT if proc is sub else signal.SIGTERM)
    for proc in (sub, ingest):
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    writer.send_signal(signal.SIGTERM)
    writer.wait(30)
for size in (1024, 1 << 20):
    ok = [r for r in rows if r["size"] == size and r["recorded"] == r["sent"] and r["dropped"] == 0]
    ok_py = [r for r in rows if r["size"] == size and r["rclpy"] == r["sent"]]
    best = max(ok, key=lambda r: r["achieved"], default=None)
    best_py = max(ok_py, key=lambda r: r["achieved"], default=None)
    desc = lambda b: f"{b['achieved']:.0f} msg/s = {b['mbs']:.1f} MB/s" if b else "none"
    print(f"{size} B: highest zero-loss step: fleetrec {desc(best)}; rclpy file writer {desc(best_py)}")
EOF
echo "steps of $SECS s; 1 KiB rates: $RATES_1K; 1 MiB rates: $RATES_1M"
../shared/tools/netns-run "python3 '$WORK/run.py' '$WORK' '$FLEETREC_ROS2_VENV/bin/python' '$SECS' '$RATES_1K' '$RATES_1M'"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
