#!/usr/bin/env bash
# The ROS 2 tests, as CI runs them: sets up ROS 2 from the PyPI wheels (scripts/setup-ros2.sh),
# builds ingest with the `ros2` feature, checks it (clippy, unit tests), then runs the
# tests/tests/ros2_*.rs tests inside a private network namespace (DDS stays on this machine).
# Needs root for the namespace (unshare -n). Target dir: $CARGO_TARGET_DIR (default target; the
# ROS env's RUSTFLAGS give its artifacts their own hashes, so they sit beside the plain build's).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
scripts/setup-ros2.sh
# shellcheck disable=SC1091
. target/ros2.env
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
NETNS_RUN="${FLEETREC_NETNS_RUN:-$ROOT/../shared/tools/netns-run}"
cargo clippy -p ingest --all-targets --features ros2 -- -D warnings
cargo build -p ingest --features ros2
# The ROS 2 build replaces target/debug/fleetrec-ingest, which then needs librcl.so: put the
# plain one back when this script ends (cached, seconds), so later non-ROS tests still run.
trap 'cargo build -q -p ingest --bin fleetrec-ingest || echo "test-ros2: could not rebuild the plain fleetrec-ingest" >&2' EXIT
# The tests run this copy: a plain `cargo build --workspace` meanwhile (same target dir) would
# replace target/debug/fleetrec-ingest with one built without the ros2 feature.
mkdir -p "$CARGO_TARGET_DIR/ros2-bin"
cp "$CARGO_TARGET_DIR/debug/fleetrec-ingest" "$CARGO_TARGET_DIR/ros2-bin/fleetrec-ingest.tmp"
mv "$CARGO_TARGET_DIR/ros2-bin/fleetrec-ingest.tmp" "$CARGO_TARGET_DIR/ros2-bin/fleetrec-ingest"
export FLEETREC_ROS2_INGEST="$CARGO_TARGET_DIR/ros2-bin/fleetrec-ingest"
cargo test -p ingest --features ros2
# The tests only start that binary (and rclpy): they build like the plain workspace (no ROS
# RUSTFLAGS, no feature), so CI reuses what `cargo test --workspace` built instead of compiling
# the tests' whole dependency graph (viewer, exporter, uploader) a second time.
env -u RUSTFLAGS cargo test -p fleetrec-tests --no-run
tests=()
for f in tests/tests/ros2_*.rs; do tests+=(--test "$(basename "$f" .rs)"); done
# Everything that speaks DDS runs in the namespace: the test, the ingest and the publishers.
"$NETNS_RUN" "FLEETREC_ROS2=1 FLEETREC_ROS2_INGEST='$FLEETREC_ROS2_INGEST' env -u RUSTFLAGS cargo test -p fleetrec-tests ${tests[*]} -- --ignored --nocapture"
