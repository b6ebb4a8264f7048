"""roiops: fast, torchvision-exact detection ops as torch custom ops.

Every public function keeps torchvision's name and signature, so replacing ``torchvision.ops.X`` with
``roiops.X`` is the whole migration. The kernels are registered as ``torch.ops.roiops.*`` with fake
kernels and autograd, so ``torch.compile``, ``torch.export`` and ``torch.library.opcheck`` work.
"""

from . import _extension

_extension.load()

from . import _autograd, _meta  # noqa: E402,F401  (registrations)
from ._extension import build_info  # noqa: E402
from .ops import (  # noqa: E402
    MultiScaleRoIAlign,
    RoIAlign,
    RoIAlignSamplePoints,
    assign_levels,
    multi_scale_roi_align,
    roi_align,
    roi_align_sample_points,
)

__version__ = "0.1.0"

__all__ = [
    "MultiScaleRoIAlign",
    "RoIAlign",
    "RoIAlignSamplePoints",
    "assign_levels",
    "build_info",
    "multi_scale_roi_align",
    "roi_align",
    "roi_align_sample_points",
]
