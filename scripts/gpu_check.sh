#!/usr/bin/env bash
# What anyone with a GPU runs first: one call, at most ~8 minutes on a fresh H200 machine that has
# only its own torch and torchvision (offline is fine). Everything lands under $OUT
# (default ./gpu-results); copy $OUT to benchmarks/results/cuda/ and commit it.
#   env.txt        GPU, driver, torch / torchvision / python versions
#   toolchain.txt  compilers, the interpreter's link flags, the link line, ldd of the op library,
#                  its checks (build_support/elf.py: no libstdc++ code, no Python), its std:: symbols
#   wheel/         the wheel that was built and tested;  build.log
#   tests.md       the test suite file by file, each in its own process (a crash in one file hides
#                  no other), with pass / fail / skip counts and exit codes; tests/<file>.log
#                  (test_deploy: the demo's model exported for CUDA, predict, the C++ runner on it)
#   sanitizer.log  compute-sanitizer memcheck over the CUDA cases of the op tests (capped)
#   bench/         python -m roiops bench --device cuda: report.md, results.json, speedup.png
#   bench-deterministic/  the deterministic-mode backward case alone (capped: torchvision compiles)
# Budget on an H200 (16 cores): build ~70 s, tests ~3 min, sanitizer <= 90 s, bench ~2 min.
#   bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT/tests" "$OUT/wheel"
PY=${PYTHON:-python3}
export ROIOPS_CUDA=1 PYTHONUNBUFFERED=1
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-$(nproc)}
status=0
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started )) s"; }

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  $PY -c "import sys, torch, torchvision; print('python', sys.version.split()[0], '| torch', torch.__version__, '| torchvision', torchvision.__version__, '|', torch.cuda.get_device_name())"
  echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== build ($(elapsed))"
# -v: the build prints its configuration, the link line and the libstdc++ check.
if ! $PY -m pip wheel -v --no-build-isolation --no-deps -w "$OUT/wheel" . > "$OUT/build.log" 2>&1 ||
  ! $PY -m pip install --no-deps --force-reinstall "$OUT"/wheel/roiops-*.whl >> "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  exit 1
fi
grep -A7 "roiops build configuration" "$OUT/build.log"
grep "libstdc++" "$OUT/build.log"

echo "== toolchain ($(elapsed))"
{
  echo "# compilers"; c++ --version | head -1; nvcc --version | tail -2
  echo "# the interpreter's link command and flags (setuptools links with them)"
  $PY -c "import sysconfig as s; [print(k, '=', s.get_config_var(k)) for k in ('LDSHARED', 'LDCXXSHARED', 'LDFLAGS')]"
  echo "LDFLAGS (environment) = ${LDFLAGS:-}"
  echo "# libstdc++ beside the compiler"
  for f in libstdc++.so libstdc++.a; do echo "$f -> $(readlink -f "$(c++ -print-file-name=$f)")"; done
  echo "# the link line"; grep -E -- " -shared .*_C\." "$OUT/build.log" | tail -1
  SO=$(cd /tmp && $PY -c "import roiops; print(roiops.library_path())" 2> /dev/null)
  echo "# ldd $SO"; ldd "$SO"
  echo "# the checks of the installed library"
  (cd /tmp && $PY -c "
import sys; sys.path.insert(0, '$PWD/build_support')
import elf, roiops
print('loaded libstdc++:', elf.loaded_libstdcxx())
print(elf.op_library_problem(roiops.library_path()) or 'no libstdc++ code of its own, no Python: OK')")
  echo "# std:: symbols _C defines (header template code is expected; library code is not)"
  nm -DC --defined-only "$SO" | grep -c ' std::'
  nm -DC --defined-only "$SO" | grep ' std::' | head -40
} > "$OUT/toolchain.txt" 2>&1
sed -n '/the checks of the installed library/,/std:: symbols/p' "$OUT/toolchain.txt"

echo "== tests, file by file ($(elapsed))"
# -P: keep the source tree's roiops/ (no compiled extension) off sys.path; test the installed one.
# The emulated CUDA kernels stand in for a GPU on machines without one; here the real ones run.
{
  echo "| file | exit | result |"
  echo "|---|---|---|"
} > "$OUT/tests.md"
for file in tests/test_*.py; do
  name=$(basename "$file" .py)
  [ "$name" = test_emulated_cuda ] && continue
  limit=${TEST_FILE_TIMEOUT:-240}
  # test_deploy compiles AOTInductor packages for the CPU and the GPU and builds the C++ runner.
  [ "$name" = test_deploy ] && limit=$((limit + 240))
  timeout "$limit" $PY -P -m pytest "$file" -q -rfEs -p no:cacheprovider \
    > "$OUT/tests/$name.log" 2>&1
  rc=$?
  summary=$(grep -E "^(=+ )?[0-9]+ (passed|failed|error|skipped)|no tests ran|Segmentation|Aborted" \
    "$OUT/tests/$name.log" | tail -1 | sed 's/=//g')
  case $rc in 0 | 5) ;; *) status=1 ;; esac
  echo "| $name | $rc | ${summary:-no summary (killed?)} |" >> "$OUT/tests.md"
  echo "$name: exit $rc, $summary"
done

echo "== compute-sanitizer memcheck on the op tests' CUDA cases ($(elapsed))"
if command -v compute-sanitizer > /dev/null; then
  timeout "${SANITIZER_TIMEOUT:-90}" compute-sanitizer --tool memcheck --error-exitcode 9 \
    $PY -P -m pytest tests/test_roi_align.py tests/test_multi_scale.py tests/test_nms.py \
    tests/test_box_ops.py tests/test_paste_masks.py -q -x -p no:cacheprovider \
    -k "cuda and not compile and not opcheck and not 2_28" > "$OUT/sanitizer.log" 2>&1
  rc=$?
  tail -3 "$OUT/sanitizer.log"
  case $rc in 0) ;; 124) echo "sanitizer: time cap reached (the cases it ran are in the log)" ;;
    *) echo "sanitizer exit $rc"; status=1 ;; esac
else
  echo "compute-sanitizer not found" | tee "$OUT/sanitizer.log"
fi

echo "== benchmarks ($(elapsed))"
timeout "${BENCH_TIMEOUT:-240}" $PY -P -m roiops bench --device cuda --dtypes float32,float16 \
  --out "$OUT/bench" || status=1
timeout "${DETERMINISTIC_TIMEOUT:-120}" $PY -P -m roiops bench --device cuda --all \
  --filter "deterministic mode" --out "$OUT/bench-deterministic" ||
  echo "deterministic-mode case: not finished within its cap"

echo "== done in $(elapsed), status $status"
cat "$OUT/tests.md"
exit $status
