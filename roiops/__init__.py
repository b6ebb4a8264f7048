"""roiops: fast, torchvision-exact detection ops as torch custom ops.

Every public function keeps torchvision's name and signature, so replacing ``torchvision.ops.X``
with ``roiops.X`` is the whole migration. The kernels are registered as ``torch.ops.roiops.*`` with
fake kernels and autograd, so ``torch.compile``, ``torch.export`` and ``torch.library.opcheck``
work.
"""

import importlib

from . import _extension

_extension.load()

from . import _autograd, _fake, _onnx  # noqa: E402,F401  (registrations)
from ._extension import build_info, library_path, release_cached_memory  # noqa: E402
from ._onnx import onnx_translations  # noqa: E402
from .errors import ArgumentError, ArgumentTypeError, ArgumentValueError  # noqa: E402
from .ops.anchors import AnchorGenerator  # noqa: E402
from .ops.box_coder import BoxCoder, decode_boxes, decode_clip_boxes, encode_boxes  # noqa: E402
from .ops.boxes import box_iou  # noqa: E402
from .ops.nms import batched_nms, batched_nms_padded, nms  # noqa: E402
from .ops.paste_masks import paste_masks_in_image  # noqa: E402
from .ops.poolers import MultiScaleRoIAlign, assign_levels, multi_scale_roi_align  # noqa: E402
from .ops.roi_align import (  # noqa: E402
    RoIAlign,
    RoIAlignSamplePoints,
    roi_align,
    roi_align_sample_points,
)
from .patch import is_torchvision_patched, patch_torchvision, unpatch_torchvision  # noqa: E402
from .version import __version__  # noqa: E402

_onnx.install_dynamo_translations()

__all__ = [
    "__version__",
    "AnchorGenerator",
    "ArgumentError",
    "ArgumentTypeError",
    "ArgumentValueError",
    "BoxCoder",
    "MultiScaleRoIAlign",
    "RoIAlign",
    "RoIAlignSamplePoints",
    "assign_levels",
    "batched_nms",
    "batched_nms_padded",
    "box_iou",
    "build_info",
    "decode_boxes",
    "decode_clip_boxes",
    "encode_boxes",
    "is_torchvision_patched",
    "library_path",
    "multi_scale_roi_align",
    "nms",
    "onnx_translations",
    "paste_masks_in_image",
    "patch_torchvision",
    "release_cached_memory",
    "roi_align",
    "roi_align_sample_points",
    "unpatch_torchvision",
]


def __getattr__(name: str):
    """roiops.models and roiops.deploy on first use (`import roiops` does not load the models)."""
    if name in ("models", "deploy"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
