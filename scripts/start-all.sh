#!/usr/bin/env bash
# Starts every built fleetrec stage in the background: scripts/start-all.sh [--config FILE]
# pid files and logs go to the run directory (pipeline.run_dir, default ./data/run).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cfg="$FLEETREC_ROOT/config/default.toml"
while [ $# -gt 0 ]; do
  case "$1" in
    --config) cfg="$2"; shift 2 ;;
    *) echo "usage: $0 [--config FILE]" >&2; exit 2 ;;
  esac
done
[ -f "$cfg" ] || { echo "config $cfg not found" >&2; exit 2; }
cfg="$(cd "$(dirname "$cfg")" && pwd)/$(basename "$cfg")"
bin=$(fr_bin_dir)
run=$(fr_run_dir "$cfg")
mkdir -p "$run"
echo "$cfg" > "$run/config.path"
failed=0
for stage in "${FLEETREC_STAGES[@]}"; do
  rc=0; fr_start_stage "$stage" "$cfg" "$run" "$bin" || rc=$?
  [ "$rc" = 1 ] && failed=1
done
exit $failed
