#!/usr/bin/env bash
# The test command: installs the dependencies, builds (Release, then AddressSanitizer + UBSan) and
# runs every test. Usage: bash scripts/test.sh [--no-install] [--no-sanitize]
set -euo pipefail
cd "$(dirname "$0")/.."
install=1 sanitize=1
for arg in "$@"; do
  case "$arg" in
    --no-install) install=0 ;;
    --no-sanitize) sanitize=0 ;;
    *) echo "usage: bash scripts/test.sh [--no-install] [--no-sanitize]" >&2; exit 2 ;;
  esac
done
[ "$install" = 1 ] && bash scripts/install-deps.sh
bash scripts/test-venv.sh >/dev/null  # ONNX Runtime, onnx and tensorboard from PyPI: the tests' readers

jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDENSENET_TESTS=ON  # ON: the quick start turns them off
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure

if [ "$sanitize" = 1 ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDENSENET_SANITIZE=ON -DDENSENET_TESTS=ON
  cmake --build build-asan -j "$jobs"
  # oneDNN's OpenMP runtime keeps thread-local state that LeakSanitizer reports at exit.
  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build-asan --output-on-failure
fi
