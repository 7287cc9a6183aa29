#!/usr/bin/env bash
# Starts every built fleetrec stage in the background: scripts/start-all.sh [--config FILE] [--viewer]
# --viewer also starts fleetrec-viewer: the window when a display is set, else headless with the
# Prometheus endpoint on $FLEETREC_METRICS_ADDR (default 127.0.0.1:9464).
# pid files and logs go to the run directory (pipeline.run_dir, default ./data/run).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cfg="$FLEETREC_ROOT/config/default.toml"
viewer=0
while [ $# -gt 0 ]; do
  case "$1" in
    --config) cfg="$2"; shift 2 ;;
    --viewer) viewer=1; shift ;;
    *) echo "usage: $0 [--config FILE] [--viewer]" >&2; exit 2 ;;
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
if [ "$viewer" = 1 ]; then
  vargs=()
  [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] || vargs=(--headless --metrics "${FLEETREC_METRICS_ADDR:-127.0.0.1:9464}")
  if fr_alive "$run/viewer.pid"; then
    echo "viewer: already running (pid $(cat "$run/viewer.pid"))"
  else
    setsid "$bin/fleetrec-viewer" --config "$cfg" "${vargs[@]}" >>"$run/viewer.log" 2>&1 < /dev/null &
    echo $! > "$run/viewer.pid"
    echo "viewer: started (pid $!, log $run/viewer.log)"
  fi
fi
exit $failed
