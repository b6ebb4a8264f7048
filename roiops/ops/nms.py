"""Non-maximum suppression with torchvision's signatures and results, and a fixed-size batched
form."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import call_op


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS: keeps boxes by decreasing score, dropping those whose IoU with a kept box is
    greater than ``iou_threshold`` (strictly).

    Args:
        boxes: Tensor[N, 4] (x1, y1, x2, y2). x2 < x1 gives zero overlap, as in torchvision.
            Quantized boxes (and scores) are compared on their integers, as torchvision does.
        scores: Tensor[N]. Equal scores keep ascending box order; NaN scores sort first.
        iou_threshold: in [0, 1].

    Returns:
        int64 Tensor of kept indices, by decreasing score (torchvision.ops.nms's result).
    """
    if not torch.jit.is_scripting():
        return call_op(torch.ops.roiops.nms, boxes, scores, float(iou_threshold))
    return torch.ops.roiops.nms(boxes, scores, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category ``idxs``: boxes of different categories never suppress each other.

    Exact per-class NMS in one op (torchvision shifts boxes by ``idx * (max_coordinate + 1)`` and
    runs one NMS, which loses float precision for large ``idx`` and lets boxes of neighbouring
    classes overlap when coordinates are negative; roiops never mixes classes).

    Returns:
        int64 Tensor of kept indices, by decreasing score. Equal scores come in torchvision's
        order: ascending index, or above 4000 box coordinates on the CPU (20000 on CUDA) the order
        torchvision's unstable sort leaves them in.
    """
    if boxes.numel() == 0:  # as torchvision: empty boxes keep nothing, whatever the rest
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    if not torch.jit.is_scripting():
        return call_op(torch.ops.roiops.batched_nms, boxes, scores, idxs, float(iou_threshold))
    return torch.ops.roiops.batched_nms(boxes, scores, idxs, iou_threshold)


def batched_nms_padded(
    boxes: Tensor,
    scores: Tensor,
    idxs: Tensor | None,
    iou_threshold: float,
    max_output: int,
) -> tuple[Tensor, Tensor]:
    """Per-image batched NMS for a batch of images, fixed-size and without host sync (for RPN
    proposal filtering, CUDA graphs and ``torch.compile``).

    Args:
        boxes: Tensor[B, N, 4]; scores: Tensor[B, N].
        idxs: Tensor[B, N] category (e.g. FPN level) of each box, or None for one category.
            A negative category marks padding: never kept, never suppresses.
        max_output: kept boxes returned per image; suppression stops once that many are kept.

    Returns:
        (keep, count): keep Tensor[B, max_output] int64 indices into N, by decreasing score,
        padded with -1; count Tensor[B] int64 of valid entries. Row b equals
        ``batched_nms(boxes[b][v], scores[b][v], idxs[b][v], iou_threshold)[:max_output]`` mapped
        back to indices of row b, where v are its non-padding boxes.
    """
    if not torch.jit.is_scripting():
        op = torch.ops.roiops.batched_nms_padded
        return call_op(op, boxes, scores, idxs, float(iou_threshold), int(max_output))
    return torch.ops.roiops.batched_nms_padded(boxes, scores, idxs, iou_threshold, max_output)
