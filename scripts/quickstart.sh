#!/usr/bin/env bash
# The main job, on a fresh Debian 12: installs the dependencies, builds, and trains densenet121
# briefly on Fashion-MNIST (Debian's dataset-fashion-mnist, so it works offline), writing a run
# folder with init/last checkpoints, the optimizer state and metrics.csv.
# CIFAR-10 training, resizing to 224 and the pictures arrive with the next issues.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
echo "No CIFAR-10 support yet: training on Fashion-MNIST from /usr/share/datasets/fashion-mnist."
./build/densenet train --arch densenet121 --dataset fashion-mnist --input-size 32 --epochs 2 \
  --limit-train 4096 --limit-test 2000 --lr 1e-3 --out runs/quickstart
