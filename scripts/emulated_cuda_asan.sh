#!/usr/bin/env bash
# The emulated CUDA kernels (tests/test_emulated_cuda.py) under AddressSanitizer: every global-memory
# access of every kernel launch in those tests is checked against the tensors' allocations -- the
# closest a machine without a GPU gets to compute-sanitizer's memcheck. Uses the README's venv.
#   bash scripts/emulated_cuda_asan.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTEST=${PYTEST:-.venv/bin/pytest}  # not `python -m pytest`: that would import the unbuilt source tree
export ROIOPS_EMULATED_ASAN=1
# Python and torch are not built with ASan: its runtime must be loaded first, with libstdc++ beside it
# (else ASan finds no __cxa_throw to intercept and every C++ exception aborts); their leaks are not ours.
CXX=${CXX:-c++}
ASAN_LIB=$($CXX -print-file-name=libasan.so)
if [ ! -f "$ASAN_LIB" ]; then
  echo "emulated_cuda_asan.sh: $CXX has no libasan.so (install the compiler's ASan runtime, e.g. libasan8)" >&2
  exit 1
fi
export LD_PRELOAD="$ASAN_LIB $($CXX -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"
# --capture=sys: ASan writes its report to file descriptor 2, which pytest must not swallow.
exec "$PYTEST" tests/test_emulated_cuda.py -q -p no:cacheprovider --capture=sys "$@"
