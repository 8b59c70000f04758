#!/usr/bin/env bash
# The GPU check, one command on a machine with an NVIDIA GPU (the `device` tool's H200: nvcc,
# CMake, and python3 with PyTorch and its CUDA wheels, but none of the CPU engine's Debian
# libraries):
#   bash scripts/gpu_check.sh --prepare   # here, first: copies nlohmann/json.hpp (header-only) into
#                                         # build-deps/include, which must travel with the tree
#   bash scripts/gpu_check.sh [OUT_DIR]   # there: writes OUT_DIR/gpu_check.json ($OUT, else gpu-check/)
# It builds the GPU engine's CUDA code alone (DENSENET_CUDA_ONLY, with the cuDNN of PyTorch's
# wheels where the toolkit has none), then runs
#  1. the CUDA op tests, against double-precision references;
#  2. PyTorch's fixtures (tests/python/make_reference.py, as the CPU parity test uses them), and the
#     GPU DenseNet against them with TF32 off: logits, loss, every gradient, running statistics and
#     the weights after 5 Adam steps, per tensor.
# It takes a few minutes, most of it compiling. Still to come with the GPU engine: the comparison
# with the CPU engine, and the benchmark against PyTorch's eager bf16 channels_last and
# torch.compile on the same GPU (issue 11).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --prepare ]; then
  mkdir -p build-deps/include && cp -r /usr/include/nlohmann build-deps/include/ && echo "build-deps/include/nlohmann ready"
  exit
fi
out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
start=$(date +%s)
log=$out/gpu_check.log
: >"$log"
step() { echo "== $* ($(( $(date +%s) - start )) s)" | tee -a "$log"; }

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
status_build=passed
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DDENSENET_CUDA_ONLY=ON ${cudnn_root:+-DCUDNN_ROOT=$cudnn_root} \
  >>"$log" 2>&1 && cmake --build build-gpu -j "$(nproc)" >>"$log" 2>&1 || status_build=failed
tail -3 "$log"

run_test() {  # name, command...: passed, failed or skipped-no-gpu
  local name=$1; shift
  step "$name"
  "$@" >"$out/$name.txt" 2>&1
  local rc=$?
  tail -40 "$out/$name.txt" | tee -a "$log"
  case $rc in 0) echo passed ;; 77) echo skipped-no-gpu ;; *) echo failed ;; esac >"$out/$name.status"
}
if [ "$status_build" = passed ]; then
  run_test test_cuda_ops ./build-gpu/tests/cuda/test_cuda_ops
  run_test make_reference python3 tests/python/make_reference.py build-gpu/tests/reference
  run_test test_cuda_parity ./build-gpu/tests/cuda/test_cuda_parity build-gpu/tests/reference
fi

python3 - "$out" "$status_build" "$(( $(date +%s) - start ))" <<'PY'
import json, os, re, sys
out, build, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
def status(name):
    path = f"{out}/{name}.status"
    return open(path).read().strip() if os.path.exists(path) else "not-run"
checks = []
if os.path.exists(f"{out}/test_cuda_ops.txt"):
    for line in open(f"{out}/test_cuda_ops.txt"):
        m = re.match(r"(.*?)\s+relative error (\S+) \(bar (\S+)\) (\w+)", line)
        if m:
            checks.append({"check": m.group(1), "relative_error": float(m.group(2)), "bar": float(m.group(3)),
                           "ok": m.group(4) == "ok"})
parity = open(f"{out}/test_cuda_parity.txt").read().splitlines()[-12:] if os.path.exists(f"{out}/test_cuda_parity.txt") else []
summary = {"build": build, "cuda_ops": status("test_cuda_ops"), "reference": status("make_reference"),
           "parity": status("test_cuda_parity"), "parity_tail": parity, "op_checks": checks, "seconds": seconds}
json.dump(summary, open(f"{out}/gpu_check.json", "w"), indent=2)
print(json.dumps({k: summary[k] for k in ("build", "cuda_ops", "reference", "parity", "seconds")}))
PY
[ "$status_build" = passed ] && [ "$(cat "$out/test_cuda_ops.status")" = passed ] && \
  [ "$(cat "$out/test_cuda_parity.status")" = passed ]
