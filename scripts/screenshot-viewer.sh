#!/usr/bin/env bash
# Screenshot of the real fleetrec-viewer window, live, under Xvfb: scripts/screenshot-viewer.sh [OUT.png]
# Starts the demo pipeline (writer + synthetic ingest, plus the uploader and the exporter if
# built) on a private pipeline name and data directory, with a local S3 server (moto from
# target/s3-venv, see scripts/install-s3-servers.sh) for the uploader when it is installed, opens
# the viewer on a virtual X display, waits until it shows live values, saves the screen (default
# docs/viewer.png) and stops everything it started.
# Env: FLEETREC_PROFILE (release|debug, default release), CARGO_TARGET_DIR, FLEETREC_BIN (prebuilt
# binaries: no build), SHOT_DELAY (s, default 8), SHOT_S3 (0: no S3 server, the uploader shows offline).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$FLEETREC_ROOT"
out="${1:-docs/viewer.png}"
profile="${FLEETREC_PROFILE:-release}"
delay="${SHOT_DELAY:-8}"

missing=()
command -v Xvfb >/dev/null || missing+=(xvfb)
command -v xwininfo >/dev/null || missing+=(x11-apps x11-utils)
command -v import >/dev/null || missing+=(imagemagick)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" fonts-dejavu-core fontconfig
fi

# FLEETREC_BIN set: use the binaries there as they are; else build them.
if [ -z "${FLEETREC_BIN:-}" ]; then
  if [ "$profile" = release ]; then cargo build --release -p ingest -p writer -p uploader -p viewer; else cargo build -p ingest -p writer -p uploader -p viewer; fi
  export FLEETREC_BIN="${CARGO_TARGET_DIR:-$FLEETREC_ROOT/target}/$profile"
fi
[ -x "$FLEETREC_BIN/fleetrec-viewer" ] || { echo "no $FLEETREC_BIN/fleetrec-viewer" >&2; exit 1; }

work=$(mktemp -d)
run="$work/run"
cfg="$work/fleetrec.toml"
# A local S3 server for the uploader, if installed: sync then shows real uploads.
moto="$FLEETREC_ROOT/target/s3-venv/bin/moto_server"
s3_port=""
if [ "${SHOT_S3:-1}" != 0 ] && [ -x "$moto" ]; then
  s3_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
# The demo configuration, on a private pipeline name and data directory; 4 MB segments so that
# segments seal (and upload) every few seconds.
sed -e "s|^name = \"fleetrec\"|name = \"fleetrec-shot-$$\"|" \
    -e "s|^run_dir = .*|run_dir = \"$run\"|" \
    -e "s|^path = \"./data/recordings\"|path = \"$work/recordings\"|" \
    -e "s|^wal_segment_size = .*|wal_segment_size = 4194304|" \
    ${s3_port:+-e "s|^endpoint = .*|endpoint = \"http://127.0.0.1:$s3_port\"|"} \
    config/default.toml > "$cfg"

display=99
while [ -e "/tmp/.X$display-lock" ]; do display=$((display + 1)); done
xvfb_pid=""; viewer_pid=""; moto_pid=""
cleanup() {
  [ -n "$viewer_pid" ] && kill -TERM "$viewer_pid" 2>/dev/null && wait "$viewer_pid" 2>/dev/null || true
  for stage in "${FLEETREC_STAGES[@]}"; do fr_stop_stage "$stage" "$run" >/dev/null || true; done
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

Xvfb ":$display" -screen 0 1280x800x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$display" ] && break; sleep 0.1; done

if [ -n "$s3_port" ]; then
  "$moto" -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
  moto_pid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null -X PUT "http://127.0.0.1:$s3_port/fleetrec" && break
    sleep 0.1
  done
  # moto accepts any credentials.
  export AWS_ACCESS_KEY_ID=fleetrec-screenshot AWS_SECRET_ACCESS_KEY=fleetrec-screenshot
fi

mkdir -p "$run"
for stage in "${FLEETREC_STAGES[@]}"; do
  fr_start_stage "$stage" "$cfg" "$run" "$FLEETREC_BIN" || echo "$stage: not running (shown as down)"
done

DISPLAY=":$display" "$FLEETREC_BIN/fleetrec-viewer" --config "$cfg" >"$work/viewer.log" 2>&1 &
viewer_pid=$!
# Rates need two statuses and the plot a few seconds of history.
sleep "$delay"
kill -0 "$viewer_pid" 2>/dev/null || { echo "viewer exited:" >&2; cat "$work/viewer.log" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
DISPLAY=":$display" import -window root "$out"
echo "screenshot: $out ($(identify -format '%wx%h' "$out"))"
