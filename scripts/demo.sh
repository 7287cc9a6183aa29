#!/usr/bin/env bash
# Builds fleetrec and runs the demo: two synthetic robots recorded into ./data/recordings.
# The pipeline keeps running in the background; stop it with scripts/stop-all.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release -p ingest -p writer -p uploader -p exporter
export FLEETREC_BIN="$PWD/target/release"
scripts/start-all.sh --config config/default.toml
sleep 3
"$FLEETREC_BIN/fleetrec-ingest" status --config config/default.toml
"$FLEETREC_BIN/fleetrec-writer" status --config config/default.toml || true
cat <<EOT

The pipeline is running (logs and pids in ./data/run, recordings in ./data/recordings).
  status:   $FLEETREC_BIN/fleetrec-ingest status   |   $FLEETREC_BIN/fleetrec-writer status
  inspect:  $FLEETREC_BIN/fleetrec-writer inspect data/recordings
  restart:  scripts/restart-stage.sh writer
  stop:     scripts/stop-all.sh
EOT
