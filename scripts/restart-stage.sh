#!/usr/bin/env bash
# Restarts one stage while the others keep running: scripts/restart-stage.sh STAGE [--config FILE]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
stage=${1:-}
shift || true
case " ${FLEETREC_STAGES[*]} " in
  *" $stage "*) ;;
  *) echo "usage: $0 STAGE [--config FILE]   (STAGE: ${FLEETREC_STAGES[*]})" >&2; exit 2 ;;
esac
cfg="$FLEETREC_ROOT/config/default.toml"
[ "${1:-}" = "--config" ] && cfg="$2"
run=$(fr_run_dir "$cfg")
[ -f "$run/config.path" ] && [ "${1:-}" != "--config" ] && cfg=$(cat "$run/config.path")
bin=$(fr_bin_dir)
fr_stop_stage "$stage" "$run"
fr_start_stage "$stage" "$cfg" "$run" "$bin"
