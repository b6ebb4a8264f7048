"""What nvcc makes of the bit-exact kernels (RoIAlign, mask pasting), read from their PTX for sm_90
(no GPU needed).

Both backends promise the very bits of torchvision's CPU RoIAlign (forward, and the deterministic
backward). The host compiler never fuses `a * b + c` into one FMA (setup.py: -ffp-contract=off), but
nvcc does wherever it may -- it did, in the sample geometry and the interpolation sum -- and an FMA
rounds once where torchvision rounds twice. So: no contracted `fma.rn` may be left in these kernels,
and no plain `mul.f32`/`mul.f64` either, because ptxas may still fuse those with a following add;
`mul.rn` (exact_math.h's mul_exact) may not be fused by anyone. The emulated-CUDA tests cannot see
this: they run the host compiler's code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(
    NVCC is None or torch.version.cuda is None, reason="needs nvcc and a CUDA build of torch"
)

# Each file, the kernels in it that carry bit-exact arithmetic, and how many of them there are at
# least (one per dtype instantiation).
KERNELS = {
    "roi_align_kernel.cu": (r"roi_align_forward_kernel|roi_align_backward_kernel", 4),
    "roi_align_deterministic_backward.cu": (
        r"count_corners_kernel|write_corners_kernel|gather_corners_kernel",
        3,
    ),
    # Mask pasting: CUDA gives the CPU kernel's bits (the resize of paste_math.h).
    "paste_masks_kernel.cu": (r"paste_masks_kernel", 4),
}
FUSED = re.compile(r"\bfma\.rn\.f(32|64)\b")
FUSABLE = re.compile(r"\bmul\.f(32|64)\b")  # a product without a rounding mode


def include_dirs() -> list[str]:
    torch_include = Path(torch.__file__).parent / "include"
    cuda_home = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))
    dirs = [ROOT / "csrc", torch_include, torch_include / "torch/csrc/api/include"]
    dirs.append(cuda_home / "include")
    # Headers a minimal toolkit lacks (cusparse.h, ...) ship in the nvidia wheels, as in setup.py.
    for site in sys.path:
        dirs += sorted(Path(site).glob("nvidia/*/include"))
    return [str(d) for d in dirs if d.is_dir()]


def compile_ptx(sources: list[Path], out_dir: Path) -> dict[str, str]:
    """PTX of each source, compiled side by side as setup.py compiles them (-O3, torch's flags)."""
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS

    flags = ["-ptx", "-arch=sm_90", "-O3", "-std=c++20", *COMMON_NVCC_FLAGS]
    flags += [f"-I{d}" for d in include_dirs()]
    jobs = {}
    for src in sources:
        out = out_dir / f"{src.stem}.ptx"
        jobs[src.name] = (
            out,
            subprocess.Popen(
                [NVCC, *flags, str(src), "-o", str(out)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            ),
        )
    ptx = {}
    for name, (out, proc) in jobs.items():
        log = proc.communicate(timeout=600)[0].decode()
        assert proc.returncode == 0, f"nvcc failed on {name}:\n{log[-3000:]}"
        ptx[name] = out.read_text()
    return ptx


def entries(ptx: str) -> dict[str, str]:
    """Kernel name -> body, for every .entry of a PTX module."""
    found = {}
    for m in re.finditer(r"^(?:\.visible )?\.entry (\S+)\((.*?)^\}", ptx, re.S | re.M):
        found[m.group(1)] = m.group(0)
    return found


@pytest.fixture(scope="module")
def ptx(tmp_path_factory):
    out = tmp_path_factory.mktemp("ptx")
    control = out / "contraction_control.cu"
    control.write_text(
        "__global__ void contraction_control(const float* a, const float* b, float* c) {\n"
        "  c[threadIdx.x] = a[threadIdx.x] * b[threadIdx.x] + c[threadIdx.x];\n}\n"
    )
    return compile_ptx([ROOT / "csrc" / "cuda" / f for f in KERNELS] + [control], out)


def test_the_check_sees_contraction(ptx):
    # The same flags turn a plain a * b + c into one FMA: were nvcc to stop contracting (or the
    # parsing to break), the test below would pass vacuously.
    assert FUSED.search(ptx["contraction_control.cu"])


@pytest.mark.parametrize("source", list(KERNELS))
def test_exact_kernels_have_no_fused_or_fusable_products(ptx, source):
    pattern, at_least = KERNELS[source]
    kernels = {n: body for n, body in entries(ptx[source]).items() if re.search(pattern, n)}
    assert len(kernels) >= at_least, list(entries(ptx[source]))
    for name, body in kernels.items():
        fused = [m.group(0) for m in FUSED.finditer(body)]
        fusable = [m.group(0) for m in FUSABLE.finditer(body)]
        assert not fused and not fusable, f"{name}: {len(fused)} fma.rn, {len(fusable)} plain mul"
