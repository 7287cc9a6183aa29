#!/usr/bin/env bash
# Installs ROS 2 (Kilted-era) from the PyPI `ros-*` wheels into a virtual environment and writes
# `target/ros2.env`, which the ROS 2 build, tests and demo source. Idempotent; fast when done.
#
#   scripts/setup-ros2.sh            # venv in target/ros2-venv (or $FLEETREC_ROS2_VENV)
#   . target/ros2.env                # then: cargo build -p ingest --features ros2
#
# Users with a system ROS 2 (`source /opt/ros/<distro>/setup.bash`) skip this script.
# Facts behind every step: ../shared/ROS2.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLEETREC_ROS2_VENV:-$ROOT/target/ros2-venv}"
ENV_FILE="$ROOT/target/ros2.env"
LINKDIR="$ROOT/target/ros2-link"
# Pinned wheel versions. `[fastrtps]`: Fast DDS is the only RMW in these wheels.
# ros-nav-msgs is the type outside r2r's build-time IDL filter that the tests record.
PKGS=(
  "ros-rclpy[fastrtps]==9.1.2"
  "ros-std-msgs==5.5.1"
  "ros-sensor-msgs==5.5.1"
  "ros-geometry-msgs==5.5.1"
  "ros-nav-msgs==5.5.1"
)
STAMP="$VENV/.fleetrec-setup-$(printf '%s\n' "${PKGS[@]}" | sha256sum | cut -c1-16)"

# 1. Debian packages: bindgen (libclang, clang) and libpython for linking rcl's Python typesupport.
need=()
for pkg in libclang-dev clang libpython3.11-dev python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup-ros2: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. The venv with pinned wheels (skipped when the stamp of this exact list exists).
if [ ! -f "$STAMP" ]; then
  echo "setup-ros2: installing ROS 2 wheels into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PKGS[@]}"
  rm -f "$VENV"/.fleetrec-setup-*
  touch "$STAMP"
fi

# 3. r2r_rcl links -lrmw_implementation; the wheels link the RMW into rcl instead.
mkdir -p "$LINKDIR"
ln -sfn "$VENV/lib/librmw_fastrtps_cpp.so" "$LINKDIR/librmw_implementation.so"

# 4. The env file. The wheels' RPATHs do not resolve from VENV/lib, hence LD_LIBRARY_PATH.
libs="$VENV/lib"
for d in "$VENV"/lib/python3.11/site-packages/ros_*.libs; do
  [ -d "$d" ] && libs="$libs:$d"
done
cat > "$ENV_FILE.tmp" <<EOF
# Written by scripts/setup-ros2.sh: source before building or running with --features ros2.
export FLEETREC_ROS2_VENV="$VENV"
export AMENT_PREFIX_PATH="$VENV"
export ROS_DISTRO=jazzy
export IDL_PACKAGE_FILTER="std_msgs;sensor_msgs;geometry_msgs"
export LIBRARY_PATH="$LINKDIR:$VENV/lib\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export RUSTFLAGS="-C link-arg=-Wl,--no-as-needed,-lpython3.11\${RUSTFLAGS:+ \$RUSTFLAGS}"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
EOF
mv "$ENV_FILE.tmp" "$ENV_FILE"
echo "setup-ros2: ready; source $ENV_FILE"
