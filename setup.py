"""Build roiops: C++ CPU kernels always, CUDA kernels when torch has CUDA and nvcc is found.

Knobs (environment variables), printed at build time:
  ROIOPS_CUDA=auto|1|0     build the CUDA kernels: auto (default) = when torch has CUDA and nvcc is
                           found;
                           1 = required (fail if impossible); 0 = never
  TORCH_CUDA_ARCH_LIST     target GPU architectures, e.g. "8.0;9.0". Default: the visible GPUs, or
                           DEFAULT_ARCHS below when none is visible (building on a CPU-only machine)
  MAX_JOBS                 parallel compile jobs (ninja); default: the number of cores
  ROIOPS_DEBUG=1           debug build (-O0 -g, device line info)
  CUDA_HOME                CUDA toolkit root; default: found from nvcc, then /usr/local/cuda

Installing: `pip install .` builds against the torch ALREADY installed in the target environment
(see _import_torch); `pip install --no-build-isolation .` and `pip install -e .` work as well.
"""

import glob
import importlib.util
import os
import re
import shutil
import site
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
# Hopper (H100/H200) is the GPU this project tunes for; "+PTX" lets newer GPUs JIT the same code.
DEFAULT_ARCHS = "9.0+PTX"


def _import_torch():
    try:
        import torch
    except ImportError:
        # pip's build isolation hides the target environment's packages. Building against a torch
        # downloaded into the isolated environment would give an extension that fails to load with
        # the user's torch, so fall back to the target environment's own site-packages.
        for path in site.getsitepackages():
            if path not in sys.path:
                sys.path.append(path)
        try:
            import torch
        except ImportError:
            sys.exit("roiops: torch must be installed before building roiops (pip install torch)")
    return torch


def _has_cudart(root):
    return any(
        glob.glob(os.path.join(root, sub, "libcudart.so*"))
        for sub in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib")
    )


def _find_cuda_home():
    """CUDA_HOME if set, else the toolkit that owns nvcc, else /usr/local/cuda.

    torch guesses CUDA_HOME as nvcc's grandparent directory; a wrapper script such as
    /usr/local/bin/nvcc makes that /usr/local, where no CUDA runtime lives and the link fails.
    """
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    candidates = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates.append("/usr/local/cuda")
    for root in candidates:
        if os.path.exists(os.path.join(root, "bin", "nvcc")) and _has_cudart(root):
            return root
    return None


def _wheel_cuda_includes(cuda_home):
    """Headers torch's CUDA headers need (cusparse.h, cublas_v2.h, ...) that a minimal toolkit lacks
    but that the nvidia-* wheels installed with torch ship."""
    if os.path.exists(os.path.join(cuda_home, "include", "cusparse.h")):
        return []
    found = []
    for path in sys.path + site.getsitepackages():
        for inc in sorted(glob.glob(os.path.join(path, "nvidia", "*", "include"))):
            if os.path.exists(os.path.join(inc, "cusparse.h")) and inc not in found:
                found.append(inc)
    return found[:1]


def _build_cuda(torch, cuda_home):
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


def _libstdcxx_check():
    """roiops/_libstdcxx_check.py, loaded by path: importing the package would need its _C."""
    path = os.path.join(ROOT, "roiops", "_libstdcxx_check.py")
    spec = importlib.util.spec_from_file_location("_roiops_libstdcxx_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_ext_class(base):
    """torch's BuildExtension, linking libstdc++ as a shared library and checking that it did.

    A copy of libstdc++'s compiled code inside _C crashes the process the first time an error
    message formats a number (see roiops/_libstdcxx_check.py). -static-libstdc++ can reach the link
    from the interpreter's LDSHARED or from LDFLAGS; it is dropped here, and whatever else put
    libstdc++ code into _C fails the build with the symbols and where to look, not the first user.
    """

    class BuildExtension(base):
        def build_extensions(self):
            for attr in ("linker_so", "linker_so_cxx"):
                command = getattr(self.compiler, attr, None)
                if isinstance(command, list) and "-static-libstdc++" in command:
                    print(f"roiops: dropping -static-libstdc++ from the link ({attr})")
                    setattr(self.compiler, attr, [a for a in command if a != "-static-libstdc++"])
            super().build_extensions()

        def build_extension(self, ext):
            super().build_extension(ext)
            check = _libstdcxx_check()
            library = self.get_ext_fullpath(ext.name)
            foreign = check.foreign_libstdcxx_code(library)
            if foreign:
                sys.exit("roiops: the build is unsafe: " + check.explain(library, foreign))
            print(f"roiops: {os.path.basename(library)} carries no libstdc++ code of its own")

    return BuildExtension


def _extensions():
    torch = _import_torch()
    cuda_home = _find_cuda_home()
    if cuda_home:
        os.environ["CUDA_HOME"] = cuda_home  # before cpp_extension reads it at import
    from torch.utils import cpp_extension

    with_cuda, why = _build_cuda(torch, cuda_home)
    if with_cuda and not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCHS
    debug = os.environ.get("ROIOPS_DEBUG", "0") == "1"

    # The library, the op layer and the CPU and quantized-CPU backends; CUDA below.
    folders = ["csrc", "csrc/ops", "csrc/cpu", "csrc/quantized"]
    sources = sorted(path for folder in folders for path in glob.glob(f"{folder}/*.cpp"))
    # Build flags: no -ffast-math anywhere, and no contraction of a * b + c into a fused
    # multiply-add (possible with -march flags that enable FMA): the kernels must round exactly as
    # torchvision does.
    cxx = ["-O0", "-g"] if debug else ["-O3"]
    cxx += ["-ffp-contract=off"]
    # at::parallel_for is OpenMP inline code: without -fopenmp the kernels run serially.
    cxx += ["-fopenmp"]
    nvcc = ["-O0", "-g", "-lineinfo"] if debug else ["-O3", "-lineinfo"]
    macros = [("ROIOPS_TORCH_VERSION", f'"{torch.__version__}"')]
    include_dirs = [os.path.join(ROOT, "csrc")]
    if with_cuda:
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        macros.append(("ROIOPS_WITH_CUDA", None))
        include_dirs += _wheel_cuda_includes(cuda_home)
        ext_type = cpp_extension.CUDAExtension
        extra = {"cxx": cxx, "nvcc": nvcc}
    else:
        ext_type = cpp_extension.CppExtension
        extra = {"cxx": cxx}

    print("roiops build configuration:")
    print(f"  torch            {torch.__version__} ({torch.__file__})")
    print(f"  CUDA kernels     {'yes' if with_cuda else 'no'} ({why})  [ROIOPS_CUDA=auto|1|0]")
    if with_cuda:
        print(f"  CUDA_HOME        {cuda_home}")
        print(
            f"  arch list        {os.environ.get('TORCH_CUDA_ARCH_LIST', 'visible GPUs')}"
            "  [TORCH_CUDA_ARCH_LIST]"
        )
    print(f"  parallel jobs    {os.environ.get('MAX_JOBS', os.cpu_count())}  [MAX_JOBS]")
    print(f"  debug build      {'yes' if debug else 'no'}  [ROIOPS_DEBUG=1]")
    sys.stdout.flush()

    ext = ext_type(
        name="roiops._C",
        sources=sources,
        include_dirs=include_dirs,
        define_macros=macros,
        extra_compile_args=extra,
        extra_link_args=["-fopenmp"],
    )
    return [ext], {"build_ext": _build_ext_class(cpp_extension.BuildExtension)}


def _version():
    with open(os.path.join(ROOT, "roiops", "version.py")) as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


def _is_metadata_only():
    return any(arg in sys.argv for arg in ("egg_info", "dist_info", "sdist", "--version", "--name"))


ext_modules, cmdclass = ([], {}) if _is_metadata_only() else _extensions()

setup(
    name="roiops",
    version=_version(),
    description="Fast, torchvision-exact detection ops (RoIAlign, NMS, box coding) as torch ops",
    packages=find_packages(include=["roiops", "roiops.*"]),
    python_requires=">=3.10",
    install_requires=["torch>=2.11"],
    extras_require={
        # python -m roiops demo: drawing, and COCO's evaluation
        "demo": ["numpy", "pillow", "pycocotools"],
        # torch.onnx.export of roiops' ops and models (both exporters), and ONNX Runtime to run them
        "onnx": ["onnx", "onnxscript", "onnxruntime"],
        # python -m roiops bench: torchvision is the reference, matplotlib draws the chart,
        # ONNX Runtime runs the exported model's rows
        "bench": ["torchvision", "matplotlib", "onnx", "onnxscript", "onnxruntime"],
    },
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
