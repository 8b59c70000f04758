#!/usr/bin/env bash
# Installs everything densenet.cpp needs to build, test and run, on Debian 12, from Debian's packages.
# Recommended packages are not installed, so every package the build needs is named here, even
# where another recommends it (libdnnl-dev's CMake config needs OpenCL's: ocl-icd-opencl-dev).
# python3-torch, python3-torchvision and python3-pil are test-only: PyTorch is the oracle the tests
# compare against, never a dependency of the program; so are OpenCV's DNN module (a second reader of
# the ONNX export) and python3-venv (scripts/test-venv.sh: the readers Debian does not package).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build pkg-config \
  libdnnl-dev ocl-icd-opencl-dev libcli11-dev nlohmann-json3-dev zlib1g-dev libcurl4-openssl-dev libarchive-dev \
  libssl-dev libpng-dev libjpeg-dev libplplot-dev plplot-driver-cairo \
  libgtest-dev libbenchmark-dev \
  libprotobuf-dev protobuf-compiler libonnx-dev libboost-dev libopencv-dnn-dev dpkg-dev \
  libopenmpi-dev openmpi-bin \
  dataset-fashion-mnist \
  python3 python3-venv python3-torch python3-torchvision python3-pil python3-numpy
