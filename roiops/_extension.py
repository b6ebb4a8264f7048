"""Loads the op library, roiops/_C, whose static initialisers register the torch.ops.roiops.* ops.

The library is a plain shared object with no Python in it (as torchvision's _C): Python loads it
with torch.ops.load_library, a C++ program with dlopen -- see library_path()."""

from __future__ import annotations

from pathlib import Path

import torch

_REBUILD = "pip install --no-build-isolation --force-reinstall --no-deps ."


BUILT_WITH = "_built_with_torch.txt"  # build_support/toolchain.py writes it beside the library


def _minor(version: str) -> str:
    """ "2.13" of "2.13.1+cu130": torch's C++ ABI holds within a minor release."""
    return ".".join(version.split("+")[0].split(".")[:2])


def library_path() -> str:
    """Path of roiops' op library: what a C++ program loads (dlopen, or linked with
    -Wl,--no-as-needed) before it runs a model that calls roiops' ops, such as an AOTInductor
    package of roiops.models.StaticMaskRCNN (examples/cpp)."""
    found = sorted(Path(__file__).parent.glob("_C*.so"))
    if not found:
        raise ImportError(
            "roiops' op library (roiops/_C*.so) is missing: this roiops was imported from a source "
            "tree that has not been built; install it with `pip install .` (or `pip install -e .` "
            "for development)."
        )
    return str(max(found, key=lambda p: p.stat().st_mtime))  # a stale build beside a new one


def _check_built_with(built_with: str) -> None:
    if _minor(built_with) != _minor(torch.__version__):
        raise ImportError(
            f"roiops was built against torch {built_with}, and its op library runs with torch "
            f"{_minor(built_with)}.* only, but torch {torch.__version__} is installed: install "
            f"roiops again for this torch (from its source: `{_REBUILD}`)."
        )


def load() -> None:
    """Loads the op library, after checking -- before loading it -- that it was built against
    this torch's minor release: a library built for another would fail to load, or crash."""
    path = library_path()
    recorded = Path(path).with_name(BUILT_WITH)
    if recorded.is_file():
        _check_built_with(recorded.read_text().strip())
    try:
        torch.ops.load_library(path)
    except OSError as err:
        raise ImportError(
            f"roiops' op library failed to load with torch {torch.__version__} ({err}); it was "
            f"most likely built against another torch: rebuild it with `{_REBUILD}`."
        ) from err
    _check_built_with(build_info()["torch"])  # a build from before the recorded version


def build_info() -> dict:
    """How the loaded library was built: {"torch": version, "cuda": bool}; "cuda" says whether
    the CUDA kernels were compiled in, not whether a GPU is present (torch.cuda.is_available())."""
    fields = dict(item.split("=", 1) for item in torch.ops.roiops._build_info().split(";"))
    return {"torch": fields["torch"], "cuda": fields["cuda"] == "1"}


def release_cached_memory() -> int:
    """Unmaps the freed CPU outputs roiops keeps for reuse (pooled batches, gradient maps, pasted
    canvases of 4 MB or more; at most 512 MB, or ROIOPS_CPU_CACHE_MB) and returns their bytes --
    roiops' counterpart of torch.cuda.empty_cache(). Kept memory is not lost: the next output of
    its size reuses it without page faults."""
    return torch.ops.roiops._release_cached_outputs()
