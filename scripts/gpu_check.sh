#!/usr/bin/env bash
# On a machine with a GPU (offline is fine): build roiops against the installed torch, run the whole
# test suite (CUDA included), run the benchmarks, and write everything under $OUT (default ./gpu-results).
#   bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export ROIOPS_CUDA=1 PYTHONUNBUFFERED=1
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-$(nproc)}
status=0

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  $PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== build"
if ! $PY -m pip install --no-build-isolation --no-deps . > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  exit 1
fi
grep -A6 "roiops build configuration" "$OUT/build.log"

echo "== tests"
# -P: keep the source tree's roiops/ (no compiled extension) off sys.path; test the installed one.
$PY -P -m pytest tests -q -rs --junitxml="$OUT/tests.xml" 2>&1 | tee "$OUT/tests.log" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== benchmarks"
for dtype in float32 float16; do
  $PY -P benchmarks/compare.py --device cuda --dtype "$dtype" --save "$OUT" || status=1
done
exit $status
