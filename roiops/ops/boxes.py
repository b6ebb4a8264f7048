"""Box utilities with torchvision's names and numerics."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import call_op


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """Pairwise IoU of Tensor[..., N, 4] and Tensor[..., M, 4] -> Tensor[..., N, M]
    (torchvision.ops.box_iou).

    Args:
        fmt: "xyxy" (x1, y1, x2, y2), "xywh" (x1, y1, w, h) or "cxcywh" (centre, w, h). Rotated
            formats are not implemented (NotImplementedError).
        boxes1, boxes2: any real dtype; leading dimensions broadcast. As in torchvision, half
            precision and integer boxes give float32 IoU, float64 boxes float64; NaN propagates.
    """
    if not torch.jit.is_scripting():
        return call_op(torch.ops.roiops.box_iou, boxes1, boxes2, fmt)
    return torch.ops.roiops.box_iou(boxes1, boxes2, fmt)
