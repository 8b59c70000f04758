#!/usr/bin/env bash
# The peers' virtual environment for scripts/compare_pytorch.py: ../shared/peer/setup-peers.sh
# (PyTorch 2.x, torchvision, ONNX Runtime, OpenVINO at the versions measured against), plus what
# that script leaves out: onnxscript, which torch.onnx.export needs since PyTorch 2.9 (without it
# the ONNX Runtime and OpenVINO measurements fail at the export). Prints the python on its last line.
#   py=$(bash scripts/peers-venv.sh | tail -1)
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash ../shared/peer/setup-peers.sh | tail -1)
"$py" -c "import onnxscript" 2>/dev/null || "$py" -m pip install -q onnxscript >&2
echo "$py"
