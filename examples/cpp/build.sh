#!/usr/bin/env bash
# Builds roiops_predict into BUILD_DIR (default build/cpp/) against the torch (its libtorch,
# torch/share/cmake) and the roiops (its op library) of PYTHON:
#   bash examples/cpp/build.sh [PYTHON] [BUILD_DIR]   (make cpp runs it)
# CUDA_HOME names the toolkit the CUDA build of torch's CMake config asks for (nvcc's own folder,
# when nvcc on PATH is a wrapper); default /usr/local/cuda.
set -euo pipefail
PY=${1:-python3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${2:-$ROOT/build/cpp}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
# -P: not the checkout's unbuilt roiops/, the installed one
cmake -S "$ROOT/examples/cpp" -B "$BUILD" \
  -DCMAKE_PREFIX_PATH="$("$PY" -P -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
  -DROIOPS_LIBRARY="$("$PY" -P -c 'import roiops; print(roiops.library_path())')"
cmake --build "$BUILD" -j "$(nproc)"
