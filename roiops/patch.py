"""roiops.patch_torchvision(): torchvision's ops and detection models, running on roiops ops.

    roiops.patch_torchvision()              # from now on
    ...
    roiops.unpatch_torchvision()            # torchvision as it was

    with roiops.patch_torchvision():        # or for a block
        detections = model(images)

What is rerouted: torchvision.ops.roi_align / RoIAlign / MultiScaleRoIAlign / nms / batched_nms /
box_iou, and in the detection models the box coder (BoxCoder.encode_single / decode_single), the
anchor generator (AnchorGenerator.forward / grid_anchors), the RPN's and RoI heads' box_similarity,
and mask pasting (paste_masks_in_image). Functions are rebound where torchvision's own code looks
them up (module attributes, at call time) and classes get roiops' methods, so models built before
the patch run on roiops ops as well as models built inside it. Code that imported a function object
itself before the patch (``from torchvision.ops import nms``) keeps torchvision's.
"""

from __future__ import annotations

import copy
import functools
import sys
from dataclasses import dataclass
from typing import Any

import torch

from .ops.anchors import AnchorGenerator
from .ops.box_coder import BoxCoder
from .ops.boxes import box_iou
from .ops.nms import batched_nms, nms
from .ops.paste_masks import paste_masks_in_image
from .ops.poolers import MultiScaleRoIAlign
from .ops.roi_align import roi_align

_MISSING = object()


@dataclass
class _Patch:
    owner: Any  # a module or a class
    name: str
    replacement: Any
    original: Any = _MISSING  # the owner's own attribute before the patch, if it had one
    # torchvision's own code while torch.jit traces (the TorchScript ONNX exporter): it traces image
    # and feature map sizes as tensors, so that the exported graph takes any image size; roiops'
    # ops take sizes as integers, fixed at export.
    torchvision_when_traced: bool = False

    def installed(self) -> Any:
        if not self.torchvision_when_traced:
            return self.replacement
        original, replacement = self.original, self.replacement

        @functools.wraps(replacement)
        def dispatch(*args, **kwargs):
            return (original if torch.jit.is_tracing() else replacement)(*args, **kwargs)

        # torch.jit.script compiles roiops' function itself, with its own module's names (it
        # would compile its source -- functools.wraps' __wrapped__ -- with patch.py's).
        dispatch.__prepare_scriptable__ = lambda: replacement
        return dispatch


def _box_similarity_property(torchvision_box_iou) -> property:
    # RegionProposalNetwork and RoIHeads bind `self.box_similarity = box_ops.box_iou` when built; a
    # property on the class takes precedence over that instance attribute. Assignments go to the
    # instance, where they reappear after the patch -- as torchvision's box_iou when a model built
    # while patched assigned roiops' (from the patched module attribute).
    def get(self):
        return box_iou

    def set(self, value):
        self.__dict__["box_similarity"] = torchvision_box_iou if value is box_iou else value

    return property(get, set)


def _patches() -> list[_Patch]:
    import torchvision  # noqa: F401  (loads torchvision.ops and torchvision.models)
    from torchvision.models.detection import _utils, anchor_utils, roi_heads, rpn, transform
    from torchvision.ops import boxes, poolers

    roi_align_module = sys.modules["torchvision.ops.roi_align"]  # shadowed by the function
    similarity = _box_similarity_property(boxes.box_iou)
    traced = {"torchvision_when_traced": True}
    patches = [
        # Functions, where torchvision's code and its users look them up.
        _Patch(torchvision.ops, "roi_align", roi_align),
        _Patch(roi_align_module, "roi_align", roi_align),  # RoIAlign.forward
        _Patch(roi_heads, "roi_align", roi_align),  # mask targets in training
        _Patch(torchvision.ops, "nms", nms),
        _Patch(boxes, "nms", nms),
        _Patch(torchvision.ops, "batched_nms", batched_nms),
        _Patch(boxes, "batched_nms", batched_nms),  # RPN and RoI heads
        _Patch(torchvision.ops, "box_iou", box_iou),
        _Patch(boxes, "box_iou", box_iou),  # RoI heads' matching
        # Classes: instances built before the patch run on roiops too.
        _Patch(poolers.MultiScaleRoIAlign, "forward", MultiScaleRoIAlign.forward),
        _Patch(_utils.BoxCoder, "encode_single", BoxCoder.encode_single),
        _Patch(_utils.BoxCoder, "decode_single", BoxCoder.decode_single),
        _Patch(anchor_utils.AnchorGenerator, "forward", AnchorGenerator.forward, **traced),
        _Patch(
            anchor_utils.AnchorGenerator,
            "grid_anchors",
            AnchorGenerator.grid_anchors,
            **traced,
        ),
        _Patch(anchor_utils.AnchorGenerator, "_anchors", AnchorGenerator._anchors),
        _Patch(rpn.RegionProposalNetwork, "box_similarity", similarity),
        _Patch(roi_heads.RoIHeads, "box_similarity", similarity),
        _Patch(roi_heads, "paste_masks_in_image", paste_masks_in_image, **traced),
        _Patch(transform, "paste_masks_in_image", paste_masks_in_image, **traced),
    ]
    return patches


_applied: list[_Patch] = []


def _own_attribute(owner: Any, name: str) -> Any:
    # A class's own attribute (not an inherited one), or a module's.
    return vars(owner).get(name, _MISSING)


class TorchvisionPatch:
    """What patch_torchvision() returns: usable as a context manager that restores torchvision on
    exit (unless torchvision was already patched when the block began)."""

    def __init__(self, applied_here: bool) -> None:
        self._applied_here = applied_here

    def __enter__(self) -> TorchvisionPatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._applied_here:
            unpatch_torchvision()


def patch_torchvision() -> TorchvisionPatch:
    """Routes torchvision's ops and detection models through roiops (see the module docstring).
    Calling it again while patched does nothing; unpatch_torchvision() restores torchvision."""
    if _applied:
        return TorchvisionPatch(applied_here=False)
    patches = _patches()
    for patch in patches:
        patch.original = _own_attribute(patch.owner, patch.name)
    patches += _scripting_patches(patches)  # (which know their originals)
    for patch in patches:
        setattr(patch.owner, patch.name, patch.installed())
        _applied.append(patch)
    return TorchvisionPatch(applied_here=True)


# --- torch.jit.script of a patched model ---------------------------------------------------------
#
# TorchScript compiles a module's methods from its class, and compiles each class once per process:
# a torchvision class scripted before the patch would keep torchvision's ops. And two patched
# classes cannot be compiled as patched: AnchorGenerator's roiops methods take roiops' ImageList (a
# NamedTuple) where the RPN passes torchvision's, and the box_similarity property would be compiled
# as a method returning a function, which TorchScript refuses. So torch.jit.script (through
# __prepare_scriptable__, which it calls on every module first) gets a copy of the module tree --
# each module copied, parameters and buffers shared, the user's model untouched (TorchScript
# replaces submodules in the tree it is given) -- in which the classes the patch touches are
# subclasses made by this patch (compiled afresh): AnchorGenerator's with torchvision's own methods,
# the RPN's and RoI heads' with box_similarity as roiops' box_iou attribute and roiops' BoxCoder
# (a TorchScript class cannot be subclassed). Scripted, a patched model runs roiops' RoIAlign,
# MultiScaleRoIAlign, NMS, box_iou, box coder and mask pasting; torchvision's anchors.


def _scripting_patches(patches: list[_Patch]) -> list[_Patch]:
    from torchvision.models.detection import (
        anchor_utils,
        generalized_rcnn,
        roi_heads,
        rpn,
        transform,
    )
    from torchvision.ops import poolers

    anchors = anchor_utils.AnchorGenerator
    restored = {  # each subclass's own attributes: torchvision's methods, or none (the property)
        anchors: {
            p.name: p.original for p in patches if p.owner is anchors and p.original is not _MISSING
        },  # fmt: skip
        rpn.RegionProposalNetwork: {"box_similarity": None},
        roi_heads.RoIHeads: {"box_similarity": None},
        poolers.MultiScaleRoIAlign: {},
        transform.GeneralizedRCNNTransform: {},  # its postprocess pastes masks
    }
    scripting_classes = {
        cls: type(cls.__name__, (cls,), {**attributes, "__module__": cls.__module__})
        for cls, attributes in restored.items()
    }

    def prepare_scriptable(module):
        if type(module) in scripting_classes.values():
            return module  # a copy already
        return _scripting_copy(module, scripting_classes)

    return [
        _Patch(
            cls,
            "__prepare_scriptable__",
            prepare_scriptable,
            original=_own_attribute(cls, "__prepare_scriptable__"),
        )  # fmt: skip
        for cls in [*scripting_classes, generalized_rcnn.GeneralizedRCNN]
    ]


def _scripting_copy(module: torch.nn.Module, classes: dict) -> torch.nn.Module:
    from torchvision.models.detection import _utils

    copied = copy.copy(module)
    copied.__dict__["_modules"] = {
        name: None if child is None else _scripting_copy(child, classes)
        for name, child in module._modules.items()
    }
    if type(module) in classes:
        copied.__class__ = classes[type(module)]
        if "box_similarity" in vars(classes[type(module)]):
            copied.__dict__["box_similarity"] = box_iou
    coder = copied.__dict__.get("box_coder")
    if isinstance(coder, _utils.BoxCoder):
        copied.__dict__["box_coder"] = BoxCoder(coder.weights, coder.bbox_xform_clip)
    return copied


def unpatch_torchvision() -> None:
    """Restores every attribute patch_torchvision() replaced (a no-op when not patched)."""
    while _applied:
        patch = _applied.pop()
        if patch.original is _MISSING:
            delattr(patch.owner, patch.name)
        else:
            setattr(patch.owner, patch.name, patch.original)


def is_torchvision_patched() -> bool:
    return bool(_applied)
