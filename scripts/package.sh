#!/usr/bin/env bash
# Builds densenet's Debian package and prints its path: a separate Release build in build-pkg for
# any x86-64 CPU (DENSENET_NATIVE=OFF: -march=native would make a program that dies with SIGILL on
# an older CPU; oneDNN picks its own kernels at run time, so the convolutions lose nothing), installed
# under /usr. It is the CPU program: no tests, no CUDA (the GPU engine is not part of the program).
# The build's output goes to stderr; stdout is the .deb's path alone.
#
#   deb=$(bash scripts/package.sh)     # needs the build dependencies: scripts/install-deps.sh
#   sudo apt-get install ./build-pkg/densenet_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
build="build-pkg"
command -v dpkg-shlibdeps >/dev/null ||
  { echo "error: dpkg-shlibdeps not found; HINT: bash scripts/install-deps.sh (it installs dpkg-dev)" >&2; exit 1; }

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DDENSENET_NATIVE=OFF -DDENSENET_TESTS=OFF -DDENSENET_CUDA=OFF >&2
cmake --build "$build" -j"$(nproc)" >&2
rm -f "$build"/densenet_*.deb   # so that the one printed is this build's
(cd "$build" && cpack -G DEB >cpack.log 2>&1) || { cat "$build/cpack.log" >&2; echo "error: cpack failed" >&2; exit 1; }
deb=$(ls "$build"/densenet_*.deb)
echo "$(pwd)/$deb"
