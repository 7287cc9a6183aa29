# Common helpers of the fleetrec scripts (sourced, not run).
# Layout: binaries in $FLEETREC_BIN (default: target/release if built, else target/debug);
# pid files and logs in the run directory (config key pipeline.run_dir, default ./data/run).

FLEETREC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Stages start-all manages, in start order (the writer first, so ingest loses nothing at start).
# The viewer is a desktop program the user opens and closes at will: not started here. The
# exporter stage serves export requests (viewer, `fleetrec-exporter control export JSON`); one-off
# exports need no running stage (`fleetrec-exporter export ...`).
FLEETREC_STAGES=(writer ingest uploader exporter)

fr_bin_dir() {
  if [ -n "${FLEETREC_BIN:-}" ]; then echo "$FLEETREC_BIN"; return; fi
  if [ -x "$FLEETREC_ROOT/target/release/fleetrec-ingest" ]; then echo "$FLEETREC_ROOT/target/release"; return; fi
  if [ -x "$FLEETREC_ROOT/target/debug/fleetrec-ingest" ]; then echo "$FLEETREC_ROOT/target/debug"; return; fi
  echo "fleetrec binaries not found: run 'cargo build --release' (or set FLEETREC_BIN)" >&2
  return 1
}

# Reads a string key of a TOML section with a light parser (our config format is flat).
fr_toml_get() { # file section key default
  local v
  v=$(awk -v sec="[$2]" -v key="$3" '
    /^[[:space:]]*\[/ { gsub(/[[:space:]]/, ""); cur=$0; next }
    cur==sec {
      line=$0; sub(/#.*/, "", line)
      n=index(line, "="); if (n==0) next
      k=substr(line, 1, n-1); gsub(/[[:space:]]/, "", k)
      if (k==key) { v=substr(line, n+1); gsub(/^[[:space:]]*"|"[[:space:]]*$/, "", v); print v; exit }
    }' "$1" 2>/dev/null)
  echo "${v:-$4}"
}

# Resolves the run directory of a config (relative paths are relative to the current directory,
# as the stages resolve them).
fr_run_dir() { # config
  fr_toml_get "$1" pipeline run_dir ./data/run
}

fr_alive() { # pidfile
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# Starts one stage in the background. Returns 0 if started or already running, 2 if the stage
# is not built yet, 1 on failure.
fr_start_stage() { # stage config run_dir bin_dir
  local stage=$1 cfg=$2 run=$3 bin="$4/fleetrec-$1"
  local pidf="$run/$stage.pid" log="$run/$stage.log"
  if fr_alive "$pidf"; then echo "$stage: already running (pid $(cat "$pidf"))"; return 0; fi
  if [ ! -x "$bin" ]; then echo "$stage: binary $bin missing" >&2; return 1; fi
  if ! "$bin" --help >/dev/null 2>&1; then echo "$stage: not built yet, skipped"; return 2; fi
  mkdir -p "$run"
  setsid "$bin" --config "$cfg" >>"$log" 2>&1 < /dev/null &
  echo $! > "$pidf"
  sleep 0.5
  if ! fr_alive "$pidf"; then
    echo "$stage: exited at start; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    rm -f "$pidf"
    return 1
  fi
  echo "$stage: started (pid $(cat "$pidf"), log $log)"
}

# Stops one stage: SIGTERM (clean shutdown: flush, seal, release shared memory), then SIGKILL
# after a grace period.
fr_stop_stage() { # stage run_dir [grace_seconds]
  local pidf="$2/$1.pid" grace=${3:-20} pid i
  if ! fr_alive "$pidf"; then rm -f "$pidf"; echo "$1: not running"; return 0; fi
  pid=$(cat "$pidf")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$1: did not stop within ${grace}s, killing" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidf"
  echo "$1: stopped"
}
