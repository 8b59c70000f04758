#!/usr/bin/env bash
# The GPU check, one command on a machine with an NVIDIA GPU (the `device` tool's H200: nvcc,
# CMake and PyTorch with its CUDA wheels, but none of the CPU engine's Debian libraries):
#   bash scripts/gpu_check.sh [OUT_DIR]
# builds the GPU engine's CUDA code alone (DENSENET_CUDA_ONLY, with the cuDNN that PyTorch's wheels
# carry when the toolkit has none), runs its tests against double-precision references, and
# writes OUT_DIR/gpu_check.json (default: $OUT, else gpu-check/). It ends in about two minutes.
#
# What it covers today: the CUDA ops (batch statistics, BN+ReLU forward and backward, channel
# copies, global pooling, log_softmax+NLL, Adam, cuDNN convolutions in fp32 and TF32). The whole
# network on the GPU, its parity with PyTorch on CUDA and the benchmark against PyTorch's eager
# bf16 channels_last and torch.compile come with the GPU DenseNet (issue 11).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
start=$(date +%s)
log=$out/gpu_check.log
: >"$log"
step() { echo "== $*" | tee -a "$log"; }

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log"

# cuDNN: the toolkit's, else the one PyTorch's wheels installed (site-packages/nvidia/cudnn).
cudnn_root=${CUDNN_ROOT:-}
if [ -z "$cudnn_root" ] && ! ls /usr/local/cuda/include/cudnn.h >/dev/null 2>&1; then
  cudnn_root=$(python3 -c 'import nvidia.cudnn, os; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null || true)
fi
if [ -n "$cudnn_root" ]; then
  export LD_LIBRARY_PATH="$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The wheels ship libcudnn.so.9 only; the linker looks for libcudnn.so.
  [ -e "$cudnn_root/lib/libcudnn.so" ] || ln -sf libcudnn.so.9 "$cudnn_root/lib/libcudnn.so" 2>/dev/null || true
fi
step "cuDNN from ${cudnn_root:-the CUDA toolkit}"

step "build (CUDA code only)"
build_ok=true
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DDENSENET_CUDA_ONLY=ON ${cudnn_root:+-DCUDNN_ROOT=$cudnn_root} \
  >>"$log" 2>&1 && cmake --build build-gpu -j "$(nproc)" >>"$log" 2>&1 || build_ok=false
tail -3 "$log"

ops_status=not-run
if $build_ok; then
  step "CUDA ops against double-precision references"
  ./build-gpu/tests/cuda/test_cuda_ops | tee "$out/test_cuda_ops.txt" | tee -a "$log"
  case ${PIPESTATUS[0]} in 0) ops_status=passed ;; 77) ops_status=skipped-no-gpu ;; *) ops_status=failed ;; esac
fi

python3 - "$out" "$build_ok" "$ops_status" "$(( $(date +%s) - start ))" <<'PY'
import json, re, sys
out, build_ok, ops, seconds = sys.argv[1], sys.argv[2] == "true", sys.argv[3], int(sys.argv[4])
checks = []
try:
    for line in open(f"{out}/test_cuda_ops.txt"):
        m = re.match(r"(.*?)\s+relative error (\S+) \(bar (\S+)\) (\w+)", line)
        if m:
            checks.append({"check": m.group(1), "relative_error": float(m.group(2)), "bar": float(m.group(3)),
                           "ok": m.group(4) == "ok"})
except FileNotFoundError:
    pass
summary = {"build": build_ok, "cuda_ops": ops, "checks": checks, "seconds": seconds}
json.dump(summary, open(f"{out}/gpu_check.json", "w"), indent=2)
print(json.dumps({k: v for k, v in summary.items() if k != "checks"}))
PY
[ "$build_ok" = true ] && [ "$ops_status" = passed ]
