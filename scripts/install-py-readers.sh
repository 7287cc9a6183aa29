#!/usr/bin/env bash
# Installs the Python readers the export tests check the exporter's outputs with, into one venv:
#   pyarrow, pandas  -> Parquet and CSV        numpy             -> .npy
#   tfrecord         -> TFRecord (PyPI reader) mcap, mcap-ros2-support -> MCAP with ROS 2 CDR
# The venv is `target/py-venv`, or $FLEETREC_PY_VENV. Versions are pinned (below). Idempotent: when
# the pinned set is installed it only imports the packages once, which takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
  "") ;;
  *) echo "install-py-readers: unknown argument $1" >&2; exit 2 ;;
esac

VENV="${FLEETREC_PY_VENV:-target/py-venv}"
# The pinned set; changing it reinstalls (the stamp file records what is installed).
PINS=(
  "pyarrow==26.0.1"
  "pandas==3.1.1"
  "numpy==2.4.6"
  "tfrecord==1.14.6"
  "protobuf==7.36.2"
  "mcap==1.6.0"
  "mcap-ros2-support==0.6.0"
)
STAMP="$VENV/.fleetrec-py-readers"

PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || { echo "install-py-readers: $PY not found (apt-get install python3-venv)" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "install-py-readers: creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 needs python3-venv for ensurepip.
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
  fi
fi

want="${PINS[*]}"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "install-py-readers: installing ${PINS[*]} into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}"
  echo "$want" > "$STAMP"
fi

"$VENV/bin/python" -c 'import pyarrow.parquet, pandas, numpy, tfrecord, mcap.reader, mcap_ros2.decoder' \
  || { rm -f "$STAMP"; echo "install-py-readers: imports failed in $VENV" >&2; exit 1; }
echo "install-py-readers: ready in $VENV"
