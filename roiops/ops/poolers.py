"""Multi-level RoI pooling for FPN detectors: torchvision's MultiScaleRoIAlign in one op, no sync.

torchvision assigns each box to a level (FPN eq. 1), then loops over levels in Python: a
`where(levels == l)` (one host sync each), a roi_align per level and an index-put into a zeroed
result. roiops computes the levels with one kernel and pools every RoI from its own level in one
more, writing rows in input order.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._box_format import as_rois, boxes_to_rois, pair
from .roi_align import roi_align


def assign_levels(
    boxes: Tensor | list[Tensor],
    k_min: int,
    k_max: int,
    canonical_scale: float = 224,
    canonical_level: float = 4,
    eps: float = 1e-6,
) -> Tensor:
    """FPN level of each box: floor(canonical_level + log2(sqrt(area) / canonical_scale) + eps),
    clamped to [k_min, k_max] and returned as int64 ``level - k_min`` (torchvision's LevelMapper).

    Args:
        boxes: Tensor[K, 4] (x1, y1, x2, y2), Tensor[K, 5] (batch_index first), or a list of
            per-image Tensor[L, 4]; float32 or float64.

    Returns:
        Tensor[K] int64 in [0, k_max - k_min]; -1 for a box whose area is negative or NaN, which
        torchvision turns into an unspecified integer (its pooler then leaves that row zero, as
        roiops' pooler does for -1).
    """
    if isinstance(boxes, (list, tuple)):
        boxes = torch.cat(list(boxes), dim=0) if len(boxes) else torch.zeros(0, 4)
    return torch.ops.roiops.assign_levels.default(
        boxes, int(k_min), int(k_max), float(canonical_scale), float(canonical_level), float(eps)
    )


def multi_scale_roi_align(
    features: list[Tensor],
    boxes: Tensor | list[Tensor],
    levels: Tensor,
    output_size: int | tuple[int, int],
    spatial_scales: list[float],
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign of box k from ``features[levels[k]]`` at ``spatial_scales[levels[k]]``, in one
    launch.

    Args:
        features: L maps Tensor[N, C, H_l, W_l] (same N, C, dtype, device; L <= 8).
        boxes: Tensor[K, 5] or list of per-image Tensor[L_i, 4], as for roi_align.
        levels: Tensor[K] int64 level of each box (e.g. from :func:`assign_levels`); -1 = zero row.

    Returns:
        Tensor[K, C, PH, PW], rows in the order of ``boxes``. Gradients reach every level.
    """
    ph, pw = pair(output_size)
    return torch.ops.roiops.multi_scale_roi_align.default(
        list(features),
        as_rois(boxes),
        levels,
        [float(s) for s in spatial_scales],
        ph,
        pw,
        int(sampling_ratio),
        bool(aligned),
    )


def infer_scale(feature: Tensor, original_size: tuple[int, int]) -> float:
    """Power of two closest to feature size / image size (height decides, as in torchvision)."""
    approx = float(feature.shape[-2]) / float(original_size[0])
    return 2.0 ** float(torch.tensor(approx).log2().round())


class MultiScaleRoIAlign(nn.Module):
    """Drop-in for torchvision.ops.MultiScaleRoIAlign (same constructor, forward and results).

    Scales are inferred on the first call from the feature sizes and the largest image size, exactly
    as torchvision does; boxes are pooled with ``aligned=False`` (torchvision's choice for Mask
    R-CNN).
    """

    def __init__(
        self,
        featmap_names: list[str],
        output_size: int | tuple[int, int] | list[int],
        sampling_ratio: int,
        *,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ) -> None:
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.featmap_names = featmap_names
        self.sampling_ratio = sampling_ratio
        self.output_size = tuple(output_size)
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level
        self.scales: list[float] | None = None
        self.k_min: int | None = None
        self.k_max: int | None = None

    def _setup_scales(self, features: list[Tensor], image_shapes: list[tuple[int, int]]) -> None:
        if not image_shapes:
            raise ValueError(
                "image_shapes must list the (height, width) of every image, got an empty list"
            )
        original = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
        self.scales = [infer_scale(f, original) for f in features]
        # Level of a map = -log2(scale): P2 (scale 1/4) is level 2.
        self.k_min = int(-math.log2(self.scales[0]))
        self.k_max = int(-math.log2(self.scales[-1]))

    def forward(
        self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        """x: feature maps by name (those in featmap_names are used, in x's order);
        boxes: per-image Tensor[L_i, 4]; image_shapes: per-image (height, width) after resizing.
        Returns Tensor[sum L_i, C, PH, PW]."""
        features = [v for k, v in x.items() if k in self.featmap_names]
        if not features:
            raise ValueError(
                f"none of featmap_names {self.featmap_names} is in the feature dict {list(x)}"
            )
        if self.scales is None:
            self._setup_scales(features, image_shapes)
        if len(features) != len(self.scales):
            raise ValueError(
                f"expected {len(self.scales)} feature maps (as on the first call), got "
                f"{len(features)}"
            )
        rois = boxes_to_rois(boxes)
        if len(features) == 1:
            return roi_align(
                features[0], rois, self.output_size, self.scales[0], self.sampling_ratio
            )
        levels = assign_levels(
            rois, self.k_min, self.k_max, self.canonical_scale, self.canonical_level
        )
        return multi_scale_roi_align(
            features, rois, levels, self.output_size, self.scales, self.sampling_ratio
        )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(featmap_names={self.featmap_names}, "
            f"output_size={self.output_size}, sampling_ratio={self.sampling_ratio})"
        )
