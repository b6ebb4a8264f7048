"""Box utilities with torchvision's names and numerics."""

from __future__ import annotations

import torch
from torch import Tensor


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU of Tensor[N, 4] and Tensor[M, 4] (x1, y1, x2, y2) -> Tensor[N, M]
    (torchvision.ops.box_iou; NaN propagates, half precision computed in float32)."""
    dtype = boxes1.dtype
    if dtype in (torch.float16, torch.bfloat16):
        return torch.ops.roiops.box_iou.default(boxes1.float(), boxes2.float()).to(dtype)
    return torch.ops.roiops.box_iou.default(boxes1, boxes2)
