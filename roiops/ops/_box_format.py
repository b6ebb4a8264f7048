"""Box-format helpers shared by the RoI pooling ops. check_roi_boxes, to_rois and boxes_to_rois
are TorchScript functions too; pair runs in eager mode only (in script, the ops check)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ArgumentTypeError, ArgumentValueError


def check_roi_boxes(boxes: Tensor | list[Tensor], arg: str = "boxes") -> None:
    """Tensor[K, 5] (batch_index, x1, y1, x2, y2) or a list of per-image Tensor[L, 4]; raises
    ArgumentValueError (torchvision raises AssertionError here) or ArgumentTypeError. Scripted,
    a failed torch._assert: torch.jit.Error, as torchvision's scripted check."""
    if torch.jit.is_scripting():
        if isinstance(boxes, list):
            for b in boxes:
                torch._assert(
                    b.dim() == 2 and b.size(1) == 4,
                    "boxes: each per-image Tensor must be [L, 4] of (x1, y1, x2, y2)",
                )
        else:
            torch._assert(
                boxes.dim() == 2 and boxes.size(1) == 5,
                "boxes must be a Tensor[K, 5] of (batch_index, x1, y1, x2, y2)",
            )
    else:
        _check_roi_boxes_eagerly(boxes, arg)


def _check_roi_boxes_eagerly(boxes, arg: str) -> None:
    if isinstance(boxes, (list, tuple)):
        for i, b in enumerate(boxes):
            if not isinstance(b, Tensor) or b.dim() != 2 or b.size(1) != 4:
                shape = tuple(b.shape) if isinstance(b, Tensor) else type(b).__name__
                raise ArgumentValueError(
                    f"{arg}[{i}] must be a Tensor[L, 4] of (x1, y1, x2, y2), got {shape}"
                )
    elif isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.size(1) != 5:
            raise ArgumentValueError(
                f"{arg} must be a Tensor[K, 5] of (batch_index, x1, y1, x2, y2) or a list of "
                f"Tensor[L, 4], got shape {tuple(boxes.shape)}"
            )
    else:
        raise ArgumentTypeError(
            f"{arg} must be a Tensor[K, 5] or a list of Tensor[L, 4], got {type(boxes).__name__}"
        )


def boxes_to_rois(boxes: list[Tensor]) -> Tensor:
    """Per-image boxes -> Tensor[K, 5] with the image index first, in the boxes' dtype
    (torchvision's convert_boxes_to_roi_format)."""
    if len(boxes) == 0:
        raise ArgumentValueError("boxes must hold one Tensor[L, 4] per image, got an empty list")
    ids: list[Tensor] = []
    for i, b in enumerate(boxes):
        ids.append(torch.full_like(b[:, :1], i))
    return torch.cat([torch.cat(ids, dim=0), torch.cat(boxes, dim=0)], dim=1)


def to_rois(boxes: Tensor | list[Tensor]) -> Tensor:
    if isinstance(boxes, Tensor):
        return boxes
    return boxes_to_rois(boxes)


def pair(size: int | tuple[int, int] | list[int], arg: str = "output_size") -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return int(size[0]), int(size[1])
    raise ArgumentValueError(f"{arg} must be an int or a pair of ints, got {size!r}")
