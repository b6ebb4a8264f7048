"""Multi-level RoI pooling for FPN detectors: torchvision's MultiScaleRoIAlign in one op, no sync.

torchvision assigns each box to a level (FPN eq. 1), then loops over levels in Python: a
`where(levels == l)` (one host sync each), a roi_align per level and an index-put into a zeroed
result. roiops computes the levels with one kernel and pools every RoI from its own level in one
more, writing rows in input order.

The module is scriptable (TorchScript) and traceable: under torch.fx its forward is one graph node,
as torchvision's MultiScaleRoIAlign is one node in torchvision's feature extraction.
"""

import torch
from torch import Tensor, nn
from torch.jit.annotations import BroadcastingList2
from torch.nn.modules.utils import _pair

from .._imports import subclass_when_imported
from .._onnx import cast, constant, dtype_of, lowering, op
from ..errors import ArgumentValueError, call_op
from ._box_format import boxes_to_rois, check_roi_boxes, pair, to_rois
from .roi_align import _roi_align_onnx, roi_align


def assign_levels(
    boxes: Tensor | list[Tensor],
    k_min: int,
    k_max: int,
    canonical_scale: float = 224.0,
    canonical_level: float = 4.0,
    eps: float = 1e-6,
) -> Tensor:
    """FPN level of each box: floor(canonical_level + log2(sqrt(area) / canonical_scale) + eps),
    clamped to [k_min, k_max] and returned as int64 ``level - k_min`` (torchvision's LevelMapper).

    Args:
        boxes: Tensor[K, 4] (x1, y1, x2, y2), Tensor[K, 5] (batch_index first), or a list of
            per-image Tensor[L, 4]; float32 or float64, or float16 / bfloat16 (the proposals of
            a model under torch.autocast), computed in float32 as torchvision's box_area upcasts.

    Returns:
        Tensor[K] int64 in [0, k_max - k_min]; -1 for a box whose area is negative or NaN, which
        torchvision turns into an unspecified integer (its pooler then leaves that row zero, as
        roiops' pooler does for -1).
    """
    if isinstance(boxes, Tensor):
        flat = boxes
    else:
        flat = torch.cat(boxes, dim=0) if len(boxes) > 0 else torch.zeros(0, 4)
    args = (int(k_min), int(k_max), float(canonical_scale), float(canonical_level), float(eps))
    if not torch.jit.is_scripting():
        return call_op(torch.ops.roiops.assign_levels, flat, *args)
    return torch.ops.roiops.assign_levels(flat, k_min, k_max, canonical_scale, canonical_level, eps)


def multi_scale_roi_align(
    features: list[Tensor],
    boxes: Tensor | list[Tensor],
    levels: Tensor,
    output_size: BroadcastingList2[int],
    spatial_scales: list[float],
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign of box k from ``features[levels[k]]`` at ``spatial_scales[levels[k]]``, in one
    launch.

    Args:
        features: L maps Tensor[N, C, H_l, W_l] (same N, C, dtype, device; L <= 8).
        boxes: Tensor[K, 5] or list of per-image Tensor[L_i, 4], as for roi_align.
        levels: Tensor[K] int64 level of each box (e.g. from :func:`assign_levels`); a level
            outside [0, L) -- -1 for "no level", or a level the caller has no map for -- gives a
            zero row, as torchvision's MultiScaleRoIAlign gives.

    Returns:
        Tensor[K, C, PH, PW], rows in the order of ``boxes``. Gradients reach every level.
    """
    check_roi_boxes(boxes)
    if not torch.jit.is_scripting():
        ph, pw = pair(output_size)
        args = ([float(s) for s in spatial_scales], ph, pw, int(sampling_ratio), bool(aligned))
        op = torch.ops.roiops.multi_scale_roi_align
        return call_op(op, list(features), to_rois(boxes), levels, *args)
    size = _pair(output_size)
    return torch.ops.roiops.multi_scale_roi_align(
        features, to_rois(boxes), levels, spatial_scales, size[0], size[1], sampling_ratio, aligned
    )


@lowering("assign_levels")
def _assign_levels_onnx(boxes, k_min, k_max, canonical_scale, canonical_level, eps):
    """The level formula in the boxes' dtype (float32 for half precision), log2 as Log / Log(2):
    ONNX has no Log2, and eps keeps a box whose size is exactly a level's boundary on its level."""
    dtype = torch.float64 if dtype_of(boxes) == torch.float64 else torch.float32
    x1, y1, x2, y2 = (cast(op.Gather(boxes, i - 4, axis=1), dtype) for i in range(4))
    area = op.Mul(op.Sub(x2, x1), op.Sub(y2, y1))
    ratio = op.Div(op.Sqrt(area), constant(canonical_scale, dtype))
    log2 = op.Div(op.Log(ratio), op.Log(constant(2.0, dtype)))
    level = op.Floor(op.Add(op.Add(constant(canonical_level, dtype), log2), constant(eps, dtype)))
    clamped = op.Clip(level, constant(float(k_min), dtype), constant(float(k_max), dtype))
    relative = op.Sub(cast(clamped, torch.int64), constant(k_min, torch.int64))
    return op.Where(op.IsNaN(level), constant(-1, torch.int64), relative)


@lowering("multi_scale_roi_align")
def _multi_scale_roi_align_onnx(
    features, rois, levels, spatial_scales, pooled_height, pooled_width, sampling_ratio, aligned
):
    """Per level, the RoIs of that level pooled by ONNX's RoiAlign and scattered into their rows
    of a zero result: a RoI of no level keeps a zero row."""
    rows = op.Shape(rois, start=0, end=1)
    channels = op.Shape(features[0], start=1, end=2)
    size = constant([pooled_height, pooled_width], torch.int64)
    pooled = op.ConstantOfShape(
        op.Concat(rows, channels, size, axis=0),
        value=torch.zeros(1, dtype=dtype_of(features[0])),
    )
    for level, (feature, scale) in enumerate(zip(features, spatial_scales)):
        at_level = op.NonZero(op.Equal(levels, constant(level, torch.int64)))  # [1, K_l]
        level_rois = op.Gather(rois, op.Squeeze(at_level, [0]), axis=0)
        level_pooled = _roi_align_onnx(
            feature, level_rois, scale, pooled_height, pooled_width, sampling_ratio, aligned
        )
        pooled = op.ScatterND(pooled, op.Transpose(at_level, perm=[1, 0]), level_pooled)
    return pooled


def _select_maps(x: dict[str, Tensor], featmap_names: list[str]) -> list[Tensor]:
    """The maps of ``x`` named in featmap_names, in x's order (as torchvision selects them)."""
    maps: list[Tensor] = []
    for name, value in x.items():
        if name in featmap_names:
            maps.append(value)
    if not torch.jit.is_scripting() and not maps:
        raise ArgumentValueError(
            f"none of featmap_names {featmap_names} is in the feature dict {list(x)}"
        )
    return maps


def _nearest_power_of_two(value: float) -> float:
    """2 ** round(log2(value)) for value > 0: the power of two p with p / sqrt(2) <= value <
    p * sqrt(2). In Python floats and without logs -- TorchScript has no math.log2, and a tensor
    would make the scale data under torch.export. torchvision rounds a float32 log2: the same power
    for every value not within float32 rounding of a boundary 2^(k + 1/2), which the ratio of a
    map's height to an image's never is at FPN strides."""
    if not 0.0 < value < float("inf"):  # (else the loops below would not end)
        raise ArgumentValueError(
            f"cannot infer a feature map's scale from the ratio {value} of its height to the "
            "image's"
        )
    sqrt2 = 1.4142135623730951  # a local: TorchScript takes no float globals
    power = 1.0
    while value < power / sqrt2:
        power = power / 2.0
    while value >= power * sqrt2:
        power = power * 2.0
    return power


def _level_of_scale(scale: float) -> int:
    """k for a map of scale 2^-k (its FPN level: P2 has scale 1/4), exactly."""
    if not 0.0 < scale < float("inf"):
        raise ArgumentValueError(f"a feature map's scale must be a positive number, got {scale}")
    level = 0
    while scale < 1.0:
        scale, level = scale * 2.0, level + 1
    while scale > 1.0:
        scale, level = scale / 2.0, level - 1
    return level


def _infer_scales(features: list[Tensor], image_shapes: list[tuple[int, int]]) -> list[float]:
    """Per map, the power of two closest to map height / largest image height (torchvision's)."""
    if len(image_shapes) == 0:
        raise ArgumentValueError(
            "image_shapes must list the (height, width) of every image, got an empty list"
        )
    largest = 0
    for shape in image_shapes:
        largest = max(largest, shape[0])
    scales: list[float] = []
    for feature in features:
        scales.append(_nearest_power_of_two(float(feature.shape[-2]) / float(largest)))
    return scales


def _levels_for_maps(
    rois: Tensor, scales: list[float], canonical_scale: int, canonical_level: int
) -> Tensor:
    """FPN level of every RoI as an index into the maps of `scales` (the first is level 0)."""
    k_min, k_max = _level_of_scale(scales[0]), _level_of_scale(scales[-1])
    return assign_levels(rois, k_min, k_max, float(canonical_scale), float(canonical_level))


def _is_tracing() -> bool:
    """Under torch.fx, torch.export or torch.compile (not TorchScript): no state is cached then, the
    traced graph infers the scales itself."""
    if torch.jit.is_scripting():
        return False
    return torch.fx._symbolic_trace.is_fx_symbolic_tracing() or torch.compiler.is_compiling()


@torch.fx.wrap
def _multi_scale_pool(
    x: dict[str, Tensor],
    boxes: list[Tensor],
    image_shapes: list[tuple[int, int]],
    featmap_names: list[str],
    output_size: list[int],
    sampling_ratio: int,
    scales: list[float] | None,
    canonical_scale: int,
    canonical_level: int,
) -> Tensor:
    """MultiScaleRoIAlign's forward as one function -- one node of a torch.fx graph. Levels index
    the selected maps by position, as in torchvision: with featmap_names that skip a level, boxes
    mapped past the last map get zero rows."""
    check_roi_boxes(boxes)
    maps = _select_maps(x, featmap_names)
    if scales is None:  # only when traced: eager calls infer them once and keep them
        scales = _infer_scales(maps, image_shapes)
    if not torch.jit.is_scripting() and len(maps) != len(scales):
        raise ArgumentValueError(
            f"expected {len(scales)} feature maps (as on the first call), got {len(maps)}"
        )
    rois = boxes_to_rois(boxes)
    if len(maps) == 1:
        return roi_align(maps[0], rois, output_size, scales[0], sampling_ratio)
    levels = _levels_for_maps(rois, scales, canonical_scale, canonical_level)
    return multi_scale_roi_align(maps, rois, levels, output_size, scales, sampling_ratio)


class MultiScaleRoIAlign(nn.Module):
    """Drop-in for torchvision.ops.MultiScaleRoIAlign (same constructor, forward and results), and
    an instance of it once torchvision is imported: torchvision's detectors take it as box_roi_pool
    and mask_roi_pool.

    Scales are inferred on the first call from the feature sizes and the largest image size, exactly
    as torchvision does; boxes are pooled with ``aligned=False`` (torchvision's choice for Mask
    R-CNN). FPN levels index the selected maps by position, as in torchvision: with featmap_names
    that skip a level (["0", "2", "3"]), boxes whose level has no map get zero rows.
    """

    __annotations__ = {"scales": list[float] | None}

    def __init__(
        self,
        featmap_names: list[str],
        output_size: int | tuple[int, int] | list[int],
        sampling_ratio: int,
        *,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ) -> None:
        nn.Module.__init__(self)  # (not super(): torchvision's class may be put in between)
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.featmap_names = featmap_names
        self.sampling_ratio = sampling_ratio
        self.output_size = tuple(output_size)
        self.scales = None
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def forward(
        self,
        x: dict[str, Tensor],
        boxes: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> Tensor:
        """x: feature maps by name (those in featmap_names are used, in x's order);
        boxes: per-image Tensor[L_i, 4]; image_shapes: per-image (height, width) after resizing.
        Returns Tensor[sum L_i, C, PH, PW]."""
        scales = self.scales
        if scales is None and not _is_tracing():  # the first call fixes them, as torchvision's
            scales = _infer_scales(_select_maps(x, self.featmap_names), image_shapes)
            self.scales = scales
        output_size = [self.output_size[0], self.output_size[1]]
        return _multi_scale_pool(
            x,
            boxes,
            image_shapes,
            self.featmap_names,
            output_size,
            self.sampling_ratio,
            scales,
            self.canonical_scale,
            self.canonical_level,
        )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(featmap_names={self.featmap_names}, "
            f"output_size={self.output_size}, sampling_ratio={self.sampling_ratio})"
        )


# torchvision's detectors check isinstance(box_roi_pool, torchvision.ops.MultiScaleRoIAlign).
subclass_when_imported(MultiScaleRoIAlign, "torchvision.ops.poolers", "MultiScaleRoIAlign")


def pool_padded(
    pooler: MultiScaleRoIAlign,
    x: dict[str, Tensor],
    boxes: Tensor,
    valid: Tensor,
    image_size: tuple[int, int],
) -> Tensor:
    """pooler's forward in fixed shapes, for N images of one size (roiops.models.StaticMaskRCNN):
    boxes [N, R, 4] of which valid [N, R] are real; an invalid box pools to a zero row (level -1).
    The scales are inferred on every call, not cached. Returns [N * R, C, PH, PW]. (A function,
    not a method: TorchScript compiles every method of a module it scripts.)"""
    maps = _select_maps(x, pooler.featmap_names)
    scales = _infer_scales(maps, [image_size])
    n, r = boxes.shape[0], boxes.shape[1]
    image = torch.arange(n, device=boxes.device, dtype=boxes.dtype)[:, None, None]
    rois = torch.cat([image.expand(n, r, 1), boxes], dim=2).reshape(-1, 5)
    levels = _levels_for_maps(rois, scales, pooler.canonical_scale, pooler.canonical_level)
    levels = torch.where(valid.reshape(-1), levels, -1)
    return multi_scale_roi_align(
        maps, rois, levels, pooler.output_size, scales, pooler.sampling_ratio
    )
