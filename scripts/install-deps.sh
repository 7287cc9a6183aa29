#!/usr/bin/env bash
# Installs the system packages fleetrec needs to build and test on Debian 12, if missing:
# libclang + clang (bindgen for iceoryx2), fonts for the viewer. Safe to run repeatedly.
set -euo pipefail
need=()
for pkg in libclang-dev clang fonts-dejavu-core fontconfig; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup)" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt >/dev/null 2>&1 || true
