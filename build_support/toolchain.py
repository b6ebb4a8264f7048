"""How roiops' op library is built: against which torch, with which compilers and flags.

Knobs (environment variables), printed at build time:
  ROIOPS_CUDA=auto|1|0     the CUDA kernels: auto (default) when torch has CUDA and nvcc is found;
                           1 = required (fail if impossible); 0 = never
  TORCH_CUDA_ARCH_LIST     target GPU architectures, e.g. "8.0;9.0". Default: the visible GPUs, or
                           DEFAULT_ARCHS when none is visible (building on a CPU-only machine)
  MAX_JOBS                 parallel compile jobs (ninja); default: the number of cores
  ROIOPS_DEBUG=1           debug build (-O0 -g, device line info)
  CUDA_HOME                CUDA toolkit root; default: found from nvcc, then /usr/local/cuda
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import site
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The oldest torch roiops builds and is tested against (the README's "Supported").
OLDEST_TORCH = "2.11"
# Written beside the op library: the torch it was built against (roiops/_extension.py reads it).
BUILT_WITH = "_built_with_torch.txt"
# Hopper (H100/H200) is the GPU this project tunes for; "+PTX" lets newer GPUs JIT the same code.
DEFAULT_ARCHS = "9.0+PTX"


def import_torch():
    """The torch of the environment roiops is installed into.

    pip's build isolation hides that environment's packages. Building against a torch downloaded
    into the isolated environment would give a library that fails to load with the user's torch,
    so this falls back to the target environment's own site-packages."""
    try:
        import torch
    except ImportError:
        for path in site.getsitepackages():
            if path not in sys.path:
                sys.path.append(path)
        try:
            import torch
        except ImportError:
            sys.exit("roiops: torch must be installed before building roiops (pip install torch)")
    return torch


def torch_requirement(torch, source: bool) -> str:
    """The torch a distribution needs: a source distribution any supported release, a built wheel
    the minor release it was built against (torch's C++ ABI holds within a minor release, not
    across them)."""
    if source:
        return f"torch>={OLDEST_TORCH}"
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return f"torch=={major}.{minor}.*"


def _has_cudart(root: str) -> bool:
    return any(
        glob.glob(os.path.join(root, sub, "libcudart.so*"))
        for sub in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib")
    )


def set_cuda_home() -> str | None:
    """Finds the CUDA toolkit -- CUDA_HOME if set, else the toolkit that owns nvcc, else
    /usr/local/cuda -- and sets CUDA_HOME to it. Call it before importing
    torch.utils.cpp_extension, which reads CUDA_HOME once, at import.

    torch guesses CUDA_HOME as nvcc's grandparent directory; a wrapper script such as
    /usr/local/bin/nvcc makes that /usr/local, where no CUDA runtime lives and the link fails."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            os.environ["CUDA_HOME"] = os.environ[var]
            return os.environ[var]
    candidates = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates.append("/usr/local/cuda")
    for root in candidates:
        if os.path.exists(os.path.join(root, "bin", "nvcc")) and _has_cudart(root):
            os.environ["CUDA_HOME"] = root
            return root
    return None


def _wheel_cuda_includes(cuda_home: str) -> list[str]:
    """Headers torch's CUDA headers need (cusparse.h, cublas_v2.h, ...) that a minimal toolkit lacks
    but that the nvidia-* wheels installed with torch ship."""
    if os.path.exists(os.path.join(cuda_home, "include", "cusparse.h")):
        return []
    found = []
    for path in sys.path + site.getsitepackages():
        for include in sorted(glob.glob(os.path.join(path, "nvidia", "*", "include"))):
            if os.path.exists(os.path.join(include, "cusparse.h")) and include not in found:
                found.append(include)
    return found[:1]


def _with_cuda(torch, cuda_home: str | None) -> tuple[bool, str]:
    mode = os.environ.get("ROIOPS_CUDA", "auto").lower()
    if mode in ("0", "off", "false", "no"):
        return False, "disabled by ROIOPS_CUDA=0"
    reasons = []
    if torch.version.cuda is None:
        reasons.append("this torch has no CUDA support")
    if cuda_home is None:
        reasons.append("no CUDA toolkit (nvcc) found; set CUDA_HOME")
    if reasons:
        if mode in ("1", "on", "true", "yes"):
            sys.exit(
                "roiops: ROIOPS_CUDA=1 but the CUDA kernels cannot be built: " + "; ".join(reasons)
            )
        return False, "; ".join(reasons)
    return True, f"torch CUDA {torch.version.cuda}, toolkit {cuda_home}"


def _cxx_is_gcc() -> bool:
    """Whether the C++ compiler the build calls (CXX, else c++, as torch's build_ext) is GCC."""
    try:
        version = subprocess.run(
            [*shlex.split(os.environ.get("CXX", "c++")), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "Free Software Foundation" in version


def op_library(torch, name: str):
    """The op library as a torch.utils.cpp_extension Extension, its configuration printed.

    It is a plain shared library, not a Python extension module: Python loads it with
    torch.ops.load_library, a C++ program with dlopen. py_limited_api keeps torch's Python
    bindings (libtorch_python) off its link line."""
    cuda_home = set_cuda_home()
    from torch.utils import cpp_extension

    with_cuda, why = _with_cuda(torch, cuda_home)
    if with_cuda and not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCHS
    debug = os.environ.get("ROIOPS_DEBUG", "0") == "1"

    # The library, the op layer and the CPU and quantized-CPU backends; CUDA below.
    folders = ["csrc", "csrc/ops", "csrc/cpu", "csrc/quantized"]
    sources = sorted(
        os.path.relpath(path, ROOT)
        for folder in folders
        for path in glob.glob(os.path.join(ROOT, folder, "*.cpp"))
    )
    # No -ffast-math anywhere, and no contraction of a * b + c into a fused multiply-add (possible
    # with -march flags that enable FMA): the kernels must round exactly as torchvision does.
    # at::parallel_for is OpenMP inline code: without -fopenmp the kernels run serially.
    # -fno-loop-unroll-and-jam: at -O3, GCC 12 jams two iterations of RoIAlign's loop over a bin's
    # samples into one scalar loop over channels, so the vector loop runs only for an odd last
    # sample (add_samples; 2-core Xeon, 2026-12-07, box-head forward 31 -> 21.5 ms without it).
    optimize = ["-O3", "-fno-loop-unroll-and-jam"] if _cxx_is_gcc() else ["-O3"]
    cxx = (["-O0", "-g"] if debug else optimize) + ["-ffp-contract=off", "-fopenmp"]
    nvcc = ["-O0", "-g", "-lineinfo"] if debug else ["-O3", "-lineinfo"]
    macros = [("ROIOPS_TORCH_VERSION", f'"{torch.__version__}"')]
    include_dirs = [os.path.join(ROOT, "csrc")]
    extension_type, compile_args = cpp_extension.CppExtension, {"cxx": cxx}
    if with_cuda:
        sources += sorted(os.path.relpath(p, ROOT) for p in glob.glob(f"{ROOT}/csrc/cuda/*.cu"))
        macros.append(("ROIOPS_WITH_CUDA", None))
        include_dirs += _wheel_cuda_includes(cuda_home)
        extension_type, compile_args = cpp_extension.CUDAExtension, {"cxx": cxx, "nvcc": nvcc}

    print("roiops build configuration:")
    print(f"  torch            {torch.__version__} ({torch.__file__})")
    print(f"  CUDA kernels     {'yes' if with_cuda else 'no'} ({why})  [ROIOPS_CUDA=auto|1|0]")
    if with_cuda:
        print(f"  CUDA_HOME        {cuda_home}")
        archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "visible GPUs")
        print(f"  arch list        {archs}  [TORCH_CUDA_ARCH_LIST]")
    print(f"  parallel jobs    {os.environ.get('MAX_JOBS', os.cpu_count())}  [MAX_JOBS]")
    print(f"  debug build      {'yes' if debug else 'no'}  [ROIOPS_DEBUG=1]")
    print(f"  C++ flags        {' '.join(cxx)}  [CXX={os.environ.get('CXX', 'c++')}]")
    sys.stdout.flush()
    return extension_type(
        name=name,
        sources=sources,
        include_dirs=include_dirs,
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=["-fopenmp"],
        py_limited_api=True,
    )
