#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (CI calls this script from .ci/run).
# Installs what it needs, then: format check, clippy (deny warnings), all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Real readers for the exporter's outputs (pyarrow, pandas, numpy, tfrecord, mcap) in a venv.
scripts/install-py-readers.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Shell scripts are part of the product: check their syntax.
for f in scripts/*.sh; do bash -n "$f"; done
# The multi-process tests run the stage binaries: build them all first.
cargo build --workspace --bins
cargo test --workspace
