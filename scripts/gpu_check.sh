#!/usr/bin/env bash
# On a machine with a GPU (offline is fine): build roiops against the installed torch, run the whole
# test suite (CUDA included), a memory-checker pass over the CUDA tests, and the benchmarks; write
# everything under $OUT (default ./gpu-results): env.txt, build.log, tests.log, sanitizer.log and
# bench/ (report.md, results.json, speedup.png). Copy bench/ to benchmarks/results/cuda/ and commit it.
# Expected time on an H100 machine: build ~2 min, tests ~1 min, benchmarks ~2 min, sanitizer last
# (capped by SANITIZER_TIMEOUT, default 240 s) so that one 10-minute device call holds it all.
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
# The emulated CUDA kernels (tests/test_emulated_cuda.py) stand in for a GPU; here the real one runs.
NO_EMULATION=--ignore=tests/test_emulated_cuda.py
$PY -P -m pytest tests $NO_EMULATION -q -rs -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== benchmarks"
$PY -P -m roiops bench --all --device cuda --dtypes float32,float16 --out "$OUT/bench" || status=1
echo "== compute-sanitizer (memcheck) on the CUDA tests"
if command -v compute-sanitizer > /dev/null; then
  timeout ${SANITIZER_TIMEOUT:-240} compute-sanitizer --tool memcheck --error-exitcode 9 \
    $PY -P -m pytest tests $NO_EMULATION -q -x -p no:cacheprovider -k "cuda and not compile and not opcheck" \
    > "$OUT/sanitizer.log" 2>&1
  rc=$?
  tail -5 "$OUT/sanitizer.log"
  [ $rc -eq 0 ] || { echo "sanitizer exit $rc"; status=1; }
else
  echo "compute-sanitizer not found" | tee "$OUT/sanitizer.log"
fi

exit $status
