"""The private torch APIs roiops relies on (roiops/_private_torch.py) exist on this torch -- CI runs
this on the pinned torch and on the newest -- and roiops uses no other."""

from __future__ import annotations

import re
import types
import warnings
from pathlib import Path

import pytest
import torch

import roiops
from roiops._private_torch import PRIVATE_APIS, resolve

PACKAGE = Path(roiops.__file__).parent
# A dotted torch name with a private component (not a dunder), or a symbolic_helper helper.
PRIVATE_NAME = re.compile(r"\btorch(?:\.[A-Za-z_]\w*)*\._(?!_)\w*(?:\.\w+)*|symbolic_helper\._\w+")


@pytest.mark.parametrize("path", sorted(PRIVATE_APIS))
def test_every_private_api_exists_on_this_torch(path):
    assert callable(resolve(path)), f"torch {torch.__version__} has moved {path}"


def private_names_in_roiops() -> set[str]:
    found = set()
    for source in PACKAGE.rglob("*.py"):
        for name in PRIVATE_NAME.findall(source.read_text()):
            if name.startswith("symbolic_helper."):
                name = "torch.onnx." + name
            if not name.startswith("torch.ops.roiops."):  # roiops' own private ops
                found.add(name)
    return found


def test_roiops_uses_no_private_api_that_is_not_listed():
    """Each private torch name in roiops' code is a listed API or a module on the way to one."""
    found = private_names_in_roiops()
    assert "torch._inductor.aoti_compile_and_package" in found  # the scan sees them
    unlisted = {
        name
        for name in found
        if not any(path == name or path.startswith(name + ".") for path in PRIVATE_APIS)
    }
    assert not unlisted, f"list these in roiops/_private_torch.py, with why: {sorted(unlisted)}"


def test_the_onnx_registry_hook_is_in_place_after_the_exporter_loads():
    """After torch loads its dynamo exporter's registry module, every registry it builds has
    roiops' translations (the export itself: tests/test_onnx.py)."""
    from roiops._onnx import _DYNAMO_REGISTRATION

    registration = resolve(_DYNAMO_REGISTRATION)
    assert getattr(registration.ONNXRegistry.from_torchlib.__func__, "_roiops", False)


def test_a_moved_registry_hook_warns_with_the_fallback():
    from roiops._onnx import _add_translations

    moved = types.SimpleNamespace(ONNXRegistry=type("ONNXRegistry", (), {}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _add_translations(moved)
    (warning,) = caught
    assert warning.category is RuntimeWarning
    assert "custom_translation_table=roiops.onnx_translations()" in str(warning.message)
