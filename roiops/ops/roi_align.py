"""RoIAlign (Mask R-CNN): torchvision.ops.roi_align's signature and numerics."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.jit.annotations import BroadcastingList2
from torch.nn.modules.utils import _pair

from .._imports import subclass_when_imported
from .._onnx import cast, constant, dtype_of, lowering, op
from ..errors import ArgumentValueError, call_op
from ._box_format import check_roi_boxes, pair, to_rois


@torch.fx.wrap
def roi_align(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: BroadcastingList2[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """Pools each box of ``boxes`` from ``input`` into a fixed ``output_size`` grid by bilinear
    sampling.

    Args:
        input: Tensor[N, C, H, W], float32/float64/float16/bfloat16, any memory layout; or a
            quantized (quint8/qint8/qint32, per tensor) map of one image, with quantized boxes of
            the same dtype (torchvision's quantized RoIAlign).
        boxes: Tensor[K, 5] of (batch_index, x1, y1, x2, y2), or a list of N Tensor[L_i, 4] of
            (x1, y1, x2, y2); same dtype as ``input`` (float32 also accepted for half inputs; under
            torch.autocast any floating dtype, cast to float32 as torchvision does).
        output_size: (PH, PW), or one int for both.
        spatial_scale: feature-map size / image size (e.g. 1/4 for FPN level P2).
        sampling_ratio: samples per bin and axis; -1 or 0: ceil(box size / output size).
        aligned: shift boxes by -0.5 pixel (pixel-centre alignment).

    Returns:
        Tensor[K, C, PH, PW] in ``input``'s dtype. Half precision accumulates in float32. Samples
        at NaN coordinates contribute 0; a batch index outside [0, N) raises on the CPU and gives a
        zero row on CUDA (checking would cost a host sync).

    Raises:
        roiops.ArgumentValueError / ArgumentTypeError (a ValueError / TypeError, and also the
        RuntimeError and AssertionError torchvision raises) for bad arguments.
    """
    check_roi_boxes(boxes)
    if not torch.jit.is_scripting():
        ph, pw = pair(output_size)
        rois = to_rois(boxes)
        args = (float(spatial_scale), ph, pw, int(sampling_ratio), bool(aligned))
        return call_op(torch.ops.roiops.roi_align, input, rois, *args)
    size = _pair(output_size)
    rois = to_rois(boxes)
    return torch.ops.roiops.roi_align(
        input, rois, spatial_scale, size[0], size[1], sampling_ratio, aligned
    )


@lowering("roi_align")
def _roi_align_onnx(
    input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned
):
    """ONNX's RoiAlign in avg mode is torchvision's arithmetic: `aligned` is its
    coordinate_transformation_mode half_pixel, not aligned is output_half_pixel (always written:
    ONNX Runtime's default is not the spec's), sampling_ratio <= 0 is its adaptive 0. float16 and
    bfloat16 maps are pooled in float32 and rounded once, as roiops pools them (ONNX Runtime's CPU
    RoiAlign takes float32 and float64 only).

    Aligned with an adaptive grid, a box without extent (x2 * scale <= x1 * scale, or NaN) has
    a 0 x n grid: torchvision's count is then max(0, 1) and its row zero; OpenVINO divides by the
    0 and gives NaN. Such rows are zeroed here. (Not aligned, torchvision's extent is >= 1.)"""
    dtype = dtype_of(input)
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    boxes = cast(op.Slice(rois, [1], [5], [1]), compute)
    pooled = op.RoiAlign(
        input if dtype == compute else cast(input, compute),
        boxes,
        cast(op.Squeeze(op.Slice(rois, [0], [1], [1]), [1]), torch.int64),
        mode="avg",
        output_height=pooled_height,
        output_width=pooled_width,
        sampling_ratio=max(sampling_ratio, 0),
        spatial_scale=spatial_scale,
        coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
    )
    if aligned and sampling_ratio <= 0:  # torchvision's roi_end - roi_start, per axis
        shifted = op.Sub(op.Mul(boxes, constant(spatial_scale, compute)), constant(0.5, compute))
        extent = op.Sub(op.Slice(shifted, [2], [4], [1]), op.Slice(shifted, [0], [2], [1]))
        positive = op.Greater(extent, constant(0.0, compute))  # [K, 2], false for NaN
        empty = op.Not(op.And(op.Slice(positive, [0], [1], [1]), op.Slice(positive, [1], [2], [1])))
        pooled = op.Where(op.Unsqueeze(empty, [2, 3]), constant(0.0, compute), pooled)
    return pooled if dtype == compute else cast(pooled, dtype)


class RoIAlign(nn.Module):
    """Module form of :func:`roi_align` (torchvision.ops.RoIAlign), and an instance of it once
    torchvision is imported (torchvision's feature extraction keeps it one node, as its own)."""

    def __init__(
        self,
        output_size: BroadcastingList2[int],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = False,
    ) -> None:
        nn.Module.__init__(self)  # (not super(): torchvision's class may be put in between)
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return roi_align(
            input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned
        )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(output_size={self.output_size}, "
            f"spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned})"
        )


subclass_when_imported(RoIAlign, "torchvision.ops.roi_align", "RoIAlign")


class RoIAlignSamplePoints(NamedTuple):
    """Where roi_align looks, per box. Coordinates are image pixels unless named ``feature_*``.

    bins:       Tensor[K, PH, PW, 4] (x1, y1, x2, y2) image region of each output cell.
    sample_x:   Tensor[K, PW, G_w] image x of each sample column of each bin column.
    sample_y:   Tensor[K, PH, G_h] image y of each sample row of each bin row.
    feature_x, feature_y: the same samples in feature-map pixels, exactly as the op computes them.
    grid_w, grid_h: Tensor[K] int64, samples per bin and axis; entries past a box's grid are NaN
        (the adaptive grid differs from box to box).
    A sample (y, x) is bilinearly interpolated from the four pixels around it; samples outside
    [-1, size] on the feature map read as 0.
    """

    bins: Tensor
    sample_x: Tensor
    sample_y: Tensor
    feature_x: Tensor
    feature_y: Tensor
    grid_w: Tensor
    grid_h: Tensor


def roi_align_sample_points(
    boxes: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> RoIAlignSamplePoints:
    """The image region of every output cell of :func:`roi_align` and the points it samples there.

    Answers "which part of the image did pooled cell (ph, pw) -- or mask pixel (i, j) of a 28x28
    mask head -- come from?". The feature coordinates come from the op
    ``roiops::roi_align_sample_points``, which runs the kernels' own geometry code, so they are
    exactly where the op samples; image coordinates undo the scale and the half-pixel shift of
    ``aligned``: image = (feature + offset) / spatial_scale.
    """
    if torch.onnx.is_in_onnx_export():
        raise ArgumentValueError(
            "roi_align_sample_points has no ONNX form: it explains where roi_align samples, "
            "call it outside the exported model"
        )
    check_roi_boxes(boxes)
    ph, pw = pair(output_size)
    edges_y, edges_x, feature_y, feature_x, grid_h, grid_w = call_op(
        torch.ops.roiops.roi_align_sample_points,
        to_rois(boxes),
        float(spatial_scale),
        ph,
        pw,
        int(sampling_ratio),
        bool(aligned),
    )
    offset = 0.5 if aligned else 0.0

    def to_image(c: Tensor) -> Tensor:
        return (c + offset) / spatial_scale

    image_x, image_y = to_image(edges_x), to_image(edges_y)  # [K, PW + 1], [K, PH + 1]
    bins = torch.stack(
        torch.broadcast_tensors(
            image_x[:, None, :-1], image_y[:, :-1, None], image_x[:, None, 1:], image_y[:, 1:, None]
        ),
        dim=-1,
    )
    return RoIAlignSamplePoints(
        bins=bins,
        sample_x=to_image(feature_x),
        sample_y=to_image(feature_y),
        feature_x=feature_x,
        feature_y=feature_y,
        grid_w=grid_w,
        grid_h=grid_h,
    )
