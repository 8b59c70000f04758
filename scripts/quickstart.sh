#!/usr/bin/env bash
# The main job, on a fresh Debian 12: installs the dependencies, builds, and runs a short but real
# training of torchvision's densenet121 (Adam, lr 1e-4, batch 32, as the lecture) that writes every
# output of a run into runs/quickstart: checkpoints, metrics.csv, curves and weight pictures.
# It trains on CIFAR-10 when data/cifar10 holds it (densenet train --download fetches it), and
# otherwise, offline, on Fashion-MNIST from Debian's dataset-fashion-mnist package.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The program alone: the tests (and their PyPI readers) are the test command's business.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDENSENET_TESTS=OFF
cmake --build build -j "$(nproc)"

if [ -f data/cifar10/cifar-10-batches-bin/test_batch.bin ] || [ -f data/cifar10/test_batch.bin ]; then
  dataset=cifar10
  echo "Training on CIFAR-10 from data/cifar10."
else
  dataset=fashion-mnist
  echo "No CIFAR-10 in data/cifar10 (get it with: ./build/densenet train --download ...)."
  echo "Training on Fashion-MNIST from /usr/share/datasets/fashion-mnist instead, offline."
fi
# 32x32 keeps this to about a minute on 2 cores; the lecture's 224x224 run is in the README.
./build/densenet train --arch densenet121 --dataset "$dataset" --input-size 32 --epochs 2 \
  --limit-train 4096 --limit-test 2000 --out runs/quickstart --overwrite
# Every file of a run folder must be there (CI runs this in a brand-new Debian 12 root).
missing=""
for f in init.safetensors last.safetensors best.safetensors last.optim.safetensors best.optim.safetensors \
         metrics.csv state.json loss.png accuracy.png conv0_init.png conv0_trained.png conv0_diff.png \
         denselayer1_conv1.png; do
  [ -s "runs/quickstart/$f" ] || missing="$missing $f"
done
[ "$(wc -l < runs/quickstart/metrics.csv)" -eq 3 ] || missing="$missing metrics.csv's-two-epochs"
ls runs/quickstart/events.out.tfevents.* >/dev/null 2>&1 || missing="$missing events.out.tfevents.*(TensorBoard)"
if [ -n "$missing" ]; then echo "error: runs/quickstart lacks:$missing" >&2; exit 1; fi
echo "Outputs: $(ls runs/quickstart | tr '\n' ' ')"
