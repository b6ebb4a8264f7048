"""Box coding (Faster R-CNN parametrisation) with torchvision's BoxCoder API and numerics."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._onnx import cast, constant, dtype_of, lowering, op
from ..errors import ArgumentTypeError, call_op

DEFAULT_XFORM_CLIP = math.log(1000.0 / 16)  # caps exp(dw) so a box grows at most 62.5x per decode


def _weights(weights: tuple[float, float, float, float]) -> list[float]:
    if not torch.jit.is_scripting():  # any sequence; the op says what is wrong with its length
        return [float(w) for w in weights]
    return [weights[0], weights[1], weights[2], weights[3]]


def decode_boxes(
    rel_codes: Tensor,
    boxes: Tensor,
    weights: tuple[float, float, float, float],
    bbox_xform_clip: float = DEFAULT_XFORM_CLIP,
) -> Tensor:
    """Applies deltas to reference boxes (torchvision BoxCoder.decode_single), fused in one pass.

    Args:
        rel_codes: Tensor[N, 4k] of (dx, dy, dw, dh) per class.
        boxes: Tensor[N, 4] reference boxes (x1, y1, x2, y2); converted to rel_codes' dtype.
        weights: (wx, wy, ww, wh): (1, 1, 1, 1) for the RPN, (10, 10, 5, 5) for the box head.

    Returns:
        Tensor[N, 4k] decoded boxes in rel_codes' dtype. float16 / bfloat16 codes (a model under
        autocast) are decoded as torchvision decodes them: every step rounded to that dtype.
    """
    args = (rel_codes, boxes.to(rel_codes.dtype), _weights(weights), float(bbox_xform_clip))
    if not torch.jit.is_scripting():
        return call_op(torch.ops.roiops.decode_boxes, *args)
    return torch.ops.roiops.decode_boxes(args[0], args[1], args[2], args[3])


def decode_clip_boxes(
    rel_codes: Tensor,
    boxes: Tensor,
    weights: tuple[float, float, float, float],
    image_size: tuple[int, int],
    min_size: float = 1e-3,
    bbox_xform_clip: float = DEFAULT_XFORM_CLIP,
) -> tuple[Tensor, Tensor]:
    """decode_boxes fused with the RPN's clip_boxes_to_image and remove_small_boxes test.

    Returns:
        (boxes Tensor[N, 4k] clipped to ``image_size`` = (height, width),
         keep Tensor[N, k] bool: both sides >= ``min_size``).
    """
    codes, refs, w = rel_codes, boxes.to(rel_codes.dtype), _weights(weights)
    height, width = int(image_size[0]), int(image_size[1])
    if not torch.jit.is_scripting():
        op = torch.ops.roiops.decode_clip_boxes
        args = (codes, refs, w, float(bbox_xform_clip), height, width, float(min_size))
        out, keep = call_op(op, *args)
    else:
        out, keep = torch.ops.roiops.decode_clip_boxes(
            codes, refs, w, bbox_xform_clip, height, width, min_size
        )
    return out, keep


def encode_boxes(
    reference_boxes: Tensor, proposals: Tensor, weights: tuple[float, float, float, float]
) -> Tensor:
    """Deltas that turn ``proposals`` into ``reference_boxes`` (torchvision BoxCoder.encode_single).

    Args:
        reference_boxes: Tensor[N, 4] targets (e.g. matched ground truth); proposals: Tensor[N, 4].

    Returns:
        Tensor[N, 4] of (dx, dy, dw, dh) in reference_boxes' dtype. Proposals are converted to it,
        but for float16 / bfloat16 proposals beside float32 boxes (an RPN's anchors under
        autocast), whose widths and centres are computed in their own dtype, as torchvision does.
    """
    half = proposals.dtype == torch.float16 or proposals.dtype == torch.bfloat16
    if not (half and reference_boxes.dtype == torch.float32):
        proposals = proposals.to(reference_boxes.dtype)
    args = (reference_boxes, proposals, _weights(weights))
    if not torch.jit.is_scripting():
        return call_op(torch.ops.roiops.encode_boxes, *args)
    return torch.ops.roiops.encode_boxes(args[0], args[1], args[2])


# --- ONNX -------------------------------------------------------------------------------------
# The kernels' arithmetic (csrc/common/box_math.h), operation for operation, in the boxes' dtype;
# float16 / bfloat16 boxes are coded in float32 and rounded once at the end (roiops rounds every
# step, as torchvision does). exp and log are ONNX Runtime's, within an ulp of ATen's.


def _coding_dtype(value) -> torch.dtype:
    return torch.float64 if dtype_of(value) == torch.float64 else torch.float32


def _columns(boxes, dtype):
    """[N, 4] -> four [N, 1] columns in dtype."""
    return [cast(op.Slice(boxes, [i], [i + 1], [1]), dtype) for i in range(4)]


def _decode(rel_codes, boxes, weights, bbox_xform_clip, dtype):
    """[N, 4k] codes against [N, 4] boxes -> x1, y1, x2, y2 [N, k] each, in dtype."""
    shape = op.Concat(
        op.Shape(rel_codes, start=0, end=1),
        op.Div(op.Shape(rel_codes, start=1, end=2), constant([4], torch.int64)),
        constant([4], torch.int64),
        axis=0,
    )
    codes = cast(op.Reshape(rel_codes, shape), dtype)  # [N, k, 4]
    dx, dy, dw, dh = (
        op.Div(op.Gather(codes, i, axis=2), constant(w, dtype)) for i, w in enumerate(weights)
    )
    clip = constant(bbox_xform_clip, dtype)
    dw, dh = op.Min(dw, clip), op.Min(dh, clip)
    x1, y1, x2, y2 = _columns(boxes, dtype)
    half = constant(0.5, dtype)
    width, height = op.Sub(x2, x1), op.Sub(y2, y1)
    centre_x = op.Add(x1, op.Mul(half, width))
    centre_y = op.Add(y1, op.Mul(half, height))
    centre_x = op.Add(op.Mul(dx, width), centre_x)
    centre_y = op.Add(op.Mul(dy, height), centre_y)
    half_w = op.Mul(half, op.Mul(op.Exp(dw), width))
    half_h = op.Mul(half, op.Mul(op.Exp(dh), height))
    return (
        op.Sub(centre_x, half_w),
        op.Sub(centre_y, half_h),
        op.Add(centre_x, half_w),
        op.Add(centre_y, half_h),
    )


def _stack_boxes(corners, like):
    """x1, y1, x2, y2 [N, k] -> [N, 4k] in like's dtype."""
    stacked = op.Concat(*(op.Unsqueeze(c, [2]) for c in corners), axis=2)
    return op.CastLike(op.Reshape(stacked, op.Shape(like)), like)


@lowering("decode_boxes")
def _decode_boxes_onnx(rel_codes, boxes, weights, bbox_xform_clip):
    dtype = _coding_dtype(rel_codes)
    return _stack_boxes(_decode(rel_codes, boxes, weights, bbox_xform_clip, dtype), rel_codes)


@lowering("decode_clip_boxes")
def _decode_clip_boxes_onnx(
    rel_codes, boxes, weights, bbox_xform_clip, image_height, image_width, min_size
):
    dtype = _coding_dtype(rel_codes)
    x1, y1, x2, y2 = _decode(rel_codes, boxes, weights, bbox_xform_clip, dtype)
    zero = constant(0.0, dtype)
    height, width = constant(float(image_height), dtype), constant(float(image_width), dtype)
    x1, x2 = op.Min(op.Max(x1, zero), width), op.Min(op.Max(x2, zero), width)
    y1, y2 = op.Min(op.Max(y1, zero), height), op.Min(op.Max(y2, zero), height)
    side = constant(min_size, dtype)
    keep = op.And(op.GreaterOrEqual(op.Sub(x2, x1), side), op.GreaterOrEqual(op.Sub(y2, y1), side))
    return _stack_boxes((x1, y1, x2, y2), rel_codes), keep


@lowering("encode_boxes")
def _encode_boxes_onnx(reference_boxes, proposals, weights):
    dtype = _coding_dtype(reference_boxes)
    half = constant(0.5, dtype)
    gx1, gy1, gx2, gy2 = _columns(reference_boxes, dtype)
    ex1, ey1, ex2, ey2 = _columns(proposals, dtype)
    ex_w, ex_h = op.Sub(ex2, ex1), op.Sub(ey2, ey1)
    ex_x, ex_y = op.Add(ex1, op.Mul(half, ex_w)), op.Add(ey1, op.Mul(half, ex_h))
    gt_w, gt_h = op.Sub(gx2, gx1), op.Sub(gy2, gy1)
    gt_x, gt_y = op.Add(gx1, op.Mul(half, gt_w)), op.Add(gy1, op.Mul(half, gt_h))
    wx, wy, ww, wh = (constant(w, dtype) for w in weights)
    deltas = (
        op.Div(op.Mul(wx, op.Sub(gt_x, ex_x)), ex_w),
        op.Div(op.Mul(wy, op.Sub(gt_y, ex_y)), ex_h),
        op.Mul(ww, op.Log(op.Div(gt_w, ex_w))),
        op.Mul(wh, op.Log(op.Div(gt_h, ex_h))),
    )
    return op.CastLike(op.Concat(*deltas, axis=1), reference_boxes)


class BoxCoder:
    """Drop-in for torchvision.models.detection._utils.BoxCoder."""

    def __init__(
        self,
        weights: tuple[float, float, float, float],
        bbox_xform_clip: float = DEFAULT_XFORM_CLIP,
    ) -> None:
        self.weights = weights
        self.bbox_xform_clip = bbox_xform_clip

    def encode(self, reference_boxes: list[Tensor], proposals: list[Tensor]) -> list[Tensor]:
        # list[Tensor], as torchvision's annotation: what TorchScript's split returns (eager's is
        # a tuple, which torchvision returns too).
        boxes_per_image = [len(b) for b in reference_boxes]
        targets = self.encode_single(torch.cat(reference_boxes, dim=0), torch.cat(proposals, dim=0))
        return targets.split(boxes_per_image, 0)

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        return encode_boxes(reference_boxes, proposals, self.weights)

    def decode(self, rel_codes: Tensor, boxes: list[Tensor]) -> Tensor:
        if not torch.jit.is_scripting() and not isinstance(boxes, (list, tuple)):
            raise ArgumentTypeError(
                f"boxes must be a list of per-image Tensor[L, 4], got {type(boxes).__name__}"
            )
        box_sum = 0
        for b in boxes:
            box_sum += b.size(0)
        concat = torch.cat(list(boxes), dim=0)
        if box_sum > 0:
            rel_codes = rel_codes.reshape(box_sum, -1)
        pred = self.decode_single(rel_codes, concat)
        return pred.reshape(box_sum, -1, 4) if box_sum > 0 else pred

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        return decode_boxes(rel_codes, boxes, self.weights, self.bbox_xform_clip)
