"""The CUDA kernels of csrc/cuda/, compiled by the host compiler with the CUDA execution model
emulated on host threads (emulation.h, beside this file), as ``torch.ops.roiops_emulated_cuda.*`` on
CPU tensors. The op layer (csrc/ops/) is compiled in too, into that library, so the composite ops
(nms, batched_nms, ...) reach the emulated kernels.

This is how the kernels' indexing, bounds, tiling and barrier protocol are tested on machines
without a GPU (CI among them): every launcher and kernel runs from its own source, unchanged. It
does not replace a GPU run -- see emulation.h for what it cannot see.

The library is built once per checkout and torch into build/emulated_cuda-torch<version>/ (ninja
rebuilds what changed).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
NAMESPACE = "roiops_emulated_cuda"


def _sources(build_dir: Path) -> list[str]:
    # A .cu file is compiled as C++ through a one-line wrapper, so that cpp_extension does not hand
    # it to nvcc; new kernel files are picked up without touching this list.
    wrappers = build_dir / "wrappers"
    wrappers.mkdir(parents=True, exist_ok=True)
    sources = []
    for cu in sorted((CSRC / "cuda").glob("*.cu")):
        wrapper = wrappers / f"{cu.stem}.cpp"
        text = f'#include "{cu}"\n'
        if not wrapper.exists() or wrapper.read_text() != text:
            wrapper.write_text(text)
        sources.append(str(wrapper))
    # The op layer the launchers plug into, and the schemas.
    sources += sorted(str(p) for p in (CSRC / "ops").glob("*.cpp"))
    sources += [str(CSRC / "schemas.cpp"), str(Path(__file__).with_name("library.cpp"))]
    return sources


def load() -> None:
    """Builds (if needed) and loads the library: torch.ops.roiops_emulated_cuda."""
    if hasattr(torch.ops, NAMESPACE) and hasattr(getattr(torch.ops, NAMESPACE), "roi_align"):
        return
    from torch.utils import cpp_extension

    if shutil.which("ninja") is None:  # a venv's python run without activating the venv
        os.environ["PATH"] = (
            f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        )
    cflags = ["-O2", "-ffp-contract=off", "-DROIOPS_EMULATE_CUDA"]
    # One build folder per torch: objects compiled against one torch's headers do not load in
    # another (ninja would relink them).
    ldflags, build_dir = [], ROOT / "build" / f"emulated_cuda-torch{torch.__version__}"
    if os.environ.get("ROIOPS_EMULATED_ASAN") == "1":  # see scripts/emulated_cuda_asan.sh
        cflags += ["-fsanitize=address", "-fno-omit-frame-pointer"]
        ldflags += ["-fsanitize=address"]
        build_dir = build_dir.with_name(f"emulated_cuda_asan-torch{torch.__version__}")
    build_dir.mkdir(parents=True, exist_ok=True)
    cpp_extension.load(
        name=NAMESPACE,
        sources=_sources(build_dir),
        extra_include_paths=[str(CSRC), str(Path(__file__).parent)],  # emulation.h
        extra_cflags=cflags,
        extra_ldflags=ldflags,
        build_directory=str(build_dir),
        is_python_module=False,
        verbose=os.environ.get("ROIOPS_VERBOSE_BUILD") == "1",
    )
