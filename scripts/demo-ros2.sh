#!/usr/bin/env bash
# ROS 2 demo: two simulated robots as real rclpy nodes (tests/tests/ros2_publisher.py) publish
# std_msgs, sensor_msgs, geometry_msgs and nav_msgs topics under /robot1 and /robot2 at 100 Hz;
# fleetrec-ingest --source ros2 records them through fleetrec-writer into ./data/recordings-ros2.
#
#   scripts/demo-ros2.sh [SECONDS]   # default 20; then prints status and the recording report
#
# DDS stays on this machine: the publishers and the ingest run in a private network namespace
# (../shared/tools/netns-run, root). With FLEETREC_DEMO_HOST_NETWORK=1 they use the host network
# instead (for a real robot network; do not do this on shared machines).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SECONDS_TO_RUN="${1:-20}"
scripts/setup-ros2.sh
# shellcheck disable=SC1091
. target/ros2.env
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --release -p writer
cargo build --release -p ingest --features ros2
BIN="$CARGO_TARGET_DIR/release"
CFG="$ROOT/target/ros2-demo.toml"
mkdir -p data/run-ros2 data/recordings-ros2
cat > "$CFG" <<EOT
# Written by scripts/demo-ros2.sh.
[pipeline]
name = "fleetrec-ros2-demo"
run_dir = "$ROOT/data/run-ros2"

[storage]
path = "$ROOT/data/recordings-ros2"

[ingest]
source = "ros2"
exclude = "^/(rosout|parameter_events)\$"

[[robots]]
name = "robot1"

[[robots]]
name = "robot2"
EOT
"$BIN/fleetrec-writer" --config "$CFG" >>data/run-ros2/writer.log 2>&1 &
WRITER=$!
trap 'kill -TERM $WRITER 2>/dev/null || true' EXIT
sleep 1
DDS="$BIN/fleetrec-ingest --config $CFG --source ros2 >>$ROOT/data/run-ros2/ingest.log 2>&1 & ING=\$!; \
sleep 1; $FLEETREC_ROS2_VENV/bin/python $ROOT/tests/tests/ros2_publisher.py --robots robot1,robot2 --count 0 \
>>$ROOT/data/run-ros2/publisher.log 2>&1 & PUB=\$!; sleep $SECONDS_TO_RUN; \
$BIN/fleetrec-ingest --config $CFG status || true; kill -TERM \$PUB \$ING; wait \$ING"
echo "demo-ros2: recording for $SECONDS_TO_RUN s (logs in data/run-ros2)"
if [ "${FLEETREC_DEMO_HOST_NETWORK:-0}" = 1 ]; then bash -c "$DDS"; else ../shared/tools/netns-run "$DDS"; fi
"$BIN/fleetrec-writer" --config "$CFG" status || true
kill -TERM $WRITER; wait $WRITER || true
trap - EXIT
"$BIN/fleetrec-writer" inspect data/recordings-ros2 | tail -n 20
