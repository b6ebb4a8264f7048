"""Box-format helpers shared by the RoI pooling ops."""

from __future__ import annotations

import torch
from torch import Tensor


def check_roi_boxes(boxes: Tensor | list[Tensor], arg: str = "boxes") -> None:
    """Tensor[K, 5] (batch_index, x1, y1, x2, y2) or a list of per-image Tensor[L, 4]."""
    if isinstance(boxes, (list, tuple)):
        for i, b in enumerate(boxes):
            if not isinstance(b, Tensor) or b.dim() != 2 or b.size(1) != 4:
                shape = tuple(b.shape) if isinstance(b, Tensor) else type(b).__name__
                raise ValueError(
                    f"{arg}[{i}] must be a Tensor[L, 4] of (x1, y1, x2, y2), got {shape}"
                )
    elif isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.size(1) != 5:
            raise ValueError(
                f"{arg} must be a Tensor[K, 5] of (batch_index, x1, y1, x2, y2) or a list of "
                f"Tensor[L, 4], got shape {tuple(boxes.shape)}"
            )
    else:
        raise TypeError(
            f"{arg} must be a Tensor[K, 5] or a list of Tensor[L, 4], got {type(boxes).__name__}"
        )


def boxes_to_rois(boxes: list[Tensor]) -> Tensor:
    """Per-image boxes -> Tensor[K, 5] with the image index first, in the boxes' dtype
    (torchvision's convert_boxes_to_roi_format)."""
    if len(boxes) == 0:
        raise ValueError("boxes must hold one Tensor[L, 4] per image, got an empty list")
    concat = torch.cat(list(boxes), dim=0)
    ids = torch.cat([torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)], dim=0)
    return torch.cat([ids, concat], dim=1)


def as_rois(boxes: Tensor | list[Tensor]) -> Tensor:
    check_roi_boxes(boxes)
    return boxes if isinstance(boxes, Tensor) else boxes_to_rois(boxes)


def pair(size: int | tuple[int, int] | list[int], arg: str = "output_size") -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return int(size[0]), int(size[1])
    raise ValueError(f"{arg} must be an int or a pair of ints, got {size!r}")
