"""Box utilities with torchvision's names and numerics."""

from __future__ import annotations

import torch
from torch import Tensor

from .._onnx import cast, constant, dtype_of, lowering, op
from ..errors import call_op


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """Pairwise IoU of Tensor[..., N, 4] and Tensor[..., M, 4] -> Tensor[..., N, M]
    (torchvision.ops.box_iou).

    Args:
        fmt: "xyxy" (x1, y1, x2, y2), "xywh" (x1, y1, w, h) or "cxcywh" (centre, w, h). Rotated
            formats are not implemented (NotImplementedError).
        boxes1, boxes2: any real dtype; leading dimensions broadcast. As in torchvision, float64
            boxes give float64 IoU, half precision boxes float32, and integer boxes torch's default
            dtype (float32, or float64 under torch.set_default_dtype(torch.float64)); NaN
            propagates.
    """
    if not torch.jit.is_scripting():
        return call_op(torch.ops.roiops.box_iou, boxes1, boxes2, fmt)
    return torch.ops.roiops.box_iou(boxes1, boxes2, fmt)


def iou_dtype(boxes1: torch.dtype, boxes2: torch.dtype) -> torch.dtype:
    """box_iou's output dtype (the kernels', the fake's and the ONNX lowering's): float64 for
    float64 boxes, and for integer boxes under a float64 default dtype; float32 otherwise."""
    promoted = torch.promote_types(boxes1, boxes2)
    if promoted.is_floating_point:
        return torch.float64 if promoted == torch.float64 else torch.float32
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


@lowering("box_iou")
def _box_iou_onnx(boxes1, boxes2, fmt):
    """The kernels' arithmetic (box_math.h: corners, intersection sides, areas, then the division)
    in float32 or float64; integer boxes in int64 up to the division (in float32), as the kernel
    computes them, but for cxcywh, halved into float32 up front, and under a float64 default dtype
    computed as float64 boxes. float16 / bfloat16 boxes are computed in float32 (roiops rounds the
    corners and sides to their dtype first)."""
    result = iou_dtype(dtype_of(boxes1), dtype_of(boxes2))
    promoted = torch.promote_types(dtype_of(boxes1), dtype_of(boxes2))
    # Integer boxes stay int64 up to the division, unless halved (cxcywh) or computed as float64.
    integer = not promoted.is_floating_point and result == torch.float32 and fmt != "cxcywh"
    dtype = torch.int64 if integer else result

    def corners_and_area(boxes, axis):  # boxes [..., N, 4] -> [..., N, 1] or [..., 1, M] each
        a, b, c, d = (
            cast(op.Gather(op.Unsqueeze(boxes, [axis]), i, axis=-1), dtype) for i in range(4)
        )
        if fmt == "xyxy":
            return a, b, c, d, op.Mul(op.Sub(c, a), op.Sub(d, b))
        area = op.Mul(c, d)
        if fmt == "xywh":
            return a, b, op.Add(a, c), op.Add(b, d), area
        half_w, half_h = op.Div(c, constant(2, dtype)), op.Div(d, constant(2, dtype))
        return op.Sub(a, half_w), op.Sub(b, half_h), op.Add(a, half_w), op.Add(b, half_h), area

    ax1, ay1, ax2, ay2, area1 = corners_and_area(boxes1, -2)
    bx1, by1, bx2, by2, area2 = corners_and_area(boxes2, -3)
    zero = constant(0, dtype)
    side_x = op.Max(op.Sub(op.Min(ax2, bx2), op.Max(ax1, bx1)), zero)
    side_y = op.Max(op.Sub(op.Min(ay2, by2), op.Max(ay1, by1)), zero)
    inter = op.Mul(side_x, side_y)
    union = op.Sub(op.Add(area1, area2), inter)
    return op.Div(cast(inter, result), cast(union, result))
