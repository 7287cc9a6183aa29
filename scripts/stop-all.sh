#!/usr/bin/env bash
# Stops every stage started by start-all.sh: scripts/stop-all.sh [--config FILE]
# Ingest stops first, so the writer can record everything ingest delivered before it seals.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cfg="$FLEETREC_ROOT/config/default.toml"
[ "${1:-}" = "--config" ] && cfg="$2"
run=$(fr_run_dir "$cfg")
fr_stop_stage viewer "$run"
for stage in ingest writer uploader exporter; do
  fr_stop_stage "$stage" "$run"
done
