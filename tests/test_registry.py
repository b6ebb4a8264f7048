"""Every roiops op is complete: a kernel for each backend (or one composite for all), a fake kernel
for torch.compile / torch.export, and the Python API that names it. Adding an op and forgetting one
of them fails here."""

from __future__ import annotations

import pytest
import torch

import roiops

COMPOSITE_KEYS = ("CompositeExplicitAutograd", "CompositeImplicitAutograd")
# plain functions of the library, no tensors: its build, its kept CPU memory
NOT_OPS = {"roiops::_build_info", "roiops::_cached_output_bytes", "roiops::_release_cached_outputs"}


def roiops_ops() -> list[str]:
    names = sorted(n for n in torch._C._dispatch_get_all_op_names() if n.startswith("roiops::"))
    return [n for n in names if n not in NOT_OPS]


def has_kernel(name: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(name, key)


def is_composite(name: str) -> bool:
    return any(has_kernel(name, key) for key in COMPOSITE_KEYS)


def test_one_version_string():
    import importlib.metadata

    assert roiops.__version__ == importlib.metadata.version("roiops")
    assert "__version__" in roiops.__all__


def test_every_name_in_all_exists():
    assert all(hasattr(roiops, name) for name in roiops.__all__)


def test_the_library_has_its_ops():
    assert "roiops::roi_align" in roiops_ops() and len(roiops_ops()) >= 15


@pytest.mark.parametrize("name", [n for n in roiops_ops() if not is_composite(n)])
def test_op_has_a_kernel_for_every_backend(name):
    assert has_kernel(name, "CPU"), f"{name} has no CPU kernel (csrc/cpu/)"
    # Built without CUDA, roiops.cpp registers a stub that says how to rebuild: also a kernel.
    assert has_kernel(name, "CUDA"), f"{name} has no CUDA kernel (csrc/cuda/) nor the stub"


# CompositeImplicitAutograd ops are traced through: no fake kernel of their own.
@pytest.mark.parametrize(
    "name", [n for n in roiops_ops() if not has_kernel(n, "CompositeImplicitAutograd")]
)
def test_op_has_a_fake_kernel(name):
    entry = torch._library.simple_registry.singleton.find(name)
    assert entry.fake_impl.kernel is not None, f"{name} has no fake kernel (roiops/_fake.py)"


# Public ops whose Python API is a class rather than a function of the same name.
PYTHON_API = {"grid_anchors": "AnchorGenerator"}


# Private ops (called by another op or by autograd) have no Python API of their own.
@pytest.mark.parametrize("name", [n for n in roiops_ops() if not n.split("::")[1].startswith("_")])
def test_public_op_has_a_python_api(name):
    op = name.split("::")[1]
    api = PYTHON_API.get(op, op)
    assert callable(getattr(roiops, api, None)), f"roiops.{api} is missing (roiops/ops/)"


# Ops that never sit in an inference graph: backward ops, NMS's backend step, and the sample points
# (an explanation of roi_align, refused under export with the reason).
NO_ONNX_FORM = {
    "_roi_align_backward",
    "_multi_scale_roi_align_backward",
    "_nms_greedy",
    "roi_align_sample_points",
}


@pytest.mark.parametrize("name", roiops_ops())
def test_op_has_an_onnx_lowering(name):
    import roiops.models  # noqa: F401  (the detection transform's resize lowers there)
    from roiops._onnx import _LOWERINGS

    op = name.split("::")[1]
    assert (op in _LOWERINGS) != (op in NO_ONNX_FORM), (
        f"{name} has no ONNX lowering (@lowering beside its Python API, roiops/_onnx.py)"
    )
