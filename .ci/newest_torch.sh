#!/usr/bin/env bash
# CI's second job: roiops installed as a user installs it from its source distribution -- into a
# fresh environment, on the newest torch the package index serves (TORCH; no torchvision exists
# for 2.15 yet), CPU kernels only -- then the tests of what changes from one torch release to the
# next: packaging and loading, the private torch APIs, the op schemas and fake kernels, ONNX
# export with both exporters run in ONNX Runtime and OpenVINO, torch.export / AOTInductor / the C++
# runner's build and its equality with Python. The pinned torch runs the whole suite (make test).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TORCH=${TORCH:-2.15.0}
VENV=$ROOT/.venv-newest
rm -rf "$VENV" "$ROOT/dist-newest"
python3 -m venv "$VENV"
# PIP_CONFIG_FILE=/dev/null: this machine's pip settings cap torch below the newest release.
export PIP_CONFIG_FILE=/dev/null
"$VENV/bin/pip" install --quiet "torch==$TORCH" ninja numpy pytest pillow pycocotools \
    onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0 openvino==2026.4.1 nncf==3.4.0 build wheel
# The sdist as a maintainer makes it (setup.py reads the environment's torch), installed from /tmp
# so that nothing of the checkout is on the path; pip builds it in isolation, as for a user.
"$VENV/bin/python" -m build --sdist --no-isolation --outdir "$ROOT/dist-newest" "$ROOT"
(cd /tmp && ROIOPS_CUDA=0 "$VENV/bin/pip" install "$ROOT"/dist-newest/roiops-*.tar.gz)
(cd /tmp && "$VENV/bin/python" -c "import roiops; print('roiops from its sdist:', roiops.build_info())")
"$VENV/bin/pytest" tests/test_packaging.py tests/test_private_torch.py tests/test_registry.py \
    tests/test_crash_safety.py tests/test_onnx.py tests/test_deploy.py
