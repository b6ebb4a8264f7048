"""Every private torch API roiops uses, in one place, each with why (no public one does the job).

tests/test_private_torch.py resolves each of them on the installed torch -- CI runs it on the
pinned torch and on the newest -- and fails if roiops' code refers to a private torch name that is
not listed here. A torch that moves one of them then fails that test, not a user's export.
"""

from __future__ import annotations

import importlib
from typing import Any

PRIVATE_APIS: dict[str, str] = {
    # The dynamo ONNX exporter builds a registry of translations per export; roiops adds its own to
    # each (roiops/_onnx.py), so that torch.onnx.export needs no argument after `import roiops`.
    # torch has no public hook for that: the public fallback is torch.onnx.export(...,
    # custom_translation_table=roiops.onnx_translations()), which the README names.
    "torch.onnx._internal.exporter._registration.ONNXRegistry.from_torchlib": (
        "roiops' ONNX translations in every dynamo export's registry (roiops/_onnx.py)"
    ),
    # The TorchScript exporter's helpers that read a symbolic function's arguments; torchvision's
    # own symbolic functions use them the same way.
    "torch.onnx.symbolic_helper._get_const": "a constant argument's value (roiops/_onnx.py)",
    "torch.onnx.symbolic_helper._unpack_list": "a Tensor[] argument's values (roiops/_onnx.py)",
    "torch.onnx.symbolic_helper._is_none": "an absent Tensor? argument (roiops/_onnx.py)",
    "torch.onnx.symbolic_helper._optional_input_placeholder_tensor": (
        "an absent optional ONNX input (roiops/_onnx.py)"
    ),
    # torch.fx has no public "am I being traced" test; MultiScaleRoIAlign must not store a tracer's
    # proxies as its scales (torchvision does).
    "torch.fx._symbolic_trace.is_fx_symbolic_tracing": (
        "MultiScaleRoIAlign leaves its scales alone while traced (roiops/ops/poolers.py)"
    ),
    # AOTInductor's documented entry points live in torch._inductor.
    "torch._inductor.aoti_compile_and_package": "export --format aoti (roiops/deploy/formats.py)",
    "torch._inductor.aoti_load_package": "opening an .aoti.pt2 (roiops/deploy/formats.py)",
    # Documented, underscore and all: torch.export's shape checks in fake kernels, and the
    # TorchScript-compatible assertion torchvision's box checks use.
    "torch._check": "fake kernels' checks (roiops/_fake.py)",
    "torch._assert": "scripted box checks, torch.jit.Error as torchvision's (roiops/ops)",
    # The benchmark only: compiled cases start from a clean slate, with the layout option named.
    "torch._dynamo.reset": "compiled bench cases (roiops/bench/model_cases.py)",
    "torch._inductor.config.patch": "compiled bench cases (roiops/bench/model_cases.py)",
}


def resolve(path: str) -> Any:
    """The object a dotted path names: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            target = getattr(target, name)
        return target
    raise ImportError(f"no module of {path} can be imported")
