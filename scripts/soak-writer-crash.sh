#!/usr/bin/env bash
# Soak version of the writer crash test: SIGKILL the writer 200 times (or $1) at random instants
# while synthetic ingest runs, then verify every record at or below each watermark.
set -euo pipefail
cd "$(dirname "$0")/.."
export FLEETREC_CRASH_ITERATIONS="${1:-200}"
cargo test -p fleetrec-tests --test writer_crash -- --nocapture
