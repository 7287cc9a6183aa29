#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (CI calls this script from .ci/run).
# Installs what it needs, then: format check, clippy (deny warnings), all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Real readers for the exporter's outputs (pyarrow, pandas, numpy, tfrecord, mcap) in a venv.
scripts/install-py-readers.sh
# S3 servers for the upload tests (moto, SeaweedFS) in target/s3-venv; quick when installed.
scripts/install-s3-servers.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Shell scripts are part of the product: check their syntax.
for f in scripts/*.sh; do bash -n "$f"; done
# The multi-process tests run the stage binaries: build them all first.
cargo build --workspace --bins
cargo test --workspace
# ROS 2: ingest's `ros2` feature built against ROS 2 from the PyPI wheels; the rclpy publishers,
# ingest and the test run inside a private network namespace (DDS never leaves this machine).
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" scripts/test-ros2.sh
