#!/usr/bin/env bash
# The test-only Python readers that Debian does not package, from PyPI, in a virtual environment of
# the project's own: ONNX Runtime and onnx (the exported model's judges) and tensorboard (the event
# files' judge). It sees Debian's python3-torch, numpy and OpenCV (--system-site-packages), so the
# tests that need both run in one interpreter. Nothing here is a dependency of the program.
# Usage: bash scripts/test-venv.sh [DIR]   (default: .venv-test); prints DIR's python.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.venv-test}
# The versions the tests were written against; a newer reader is a new judge, so it is a change.
# numpy stays below 2: Debian's torch 1.13 is built against numpy 1.x.
pins=(onnxruntime==1.32.0 onnx==1.23.2 tensorboard==2.21.0 "numpy<2")
if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -m pip show -q onnxruntime onnx tensorboard >/dev/null 2>&1; then
  /usr/bin/python3 -m venv --system-site-packages "$dir" >&2
  "$dir/bin/python" -m pip install -q "${pins[@]}" >&2
fi
echo "$(cd "$dir" && pwd)/bin/python"
