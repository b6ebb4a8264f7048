"""Mask pasting with torchvision's paste_masks_in_image signature and results, in one op."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import call_op


def paste_masks_in_image(
    masks: Tensor, boxes: Tensor, img_shape: tuple[int, int], padding: int = 1
) -> Tensor:
    """Pastes each detection's mask into an image-sized canvas at its box
    (torchvision.models.detection.roi_heads.paste_masks_in_image).

    Args:
        masks: Tensor[N, 1, M, M] mask probabilities (28x28 for Mask R-CNN).
        boxes: Tensor[N, 4] (x1, y1, x2, y2) in image pixels.
        img_shape: (height, width) of the image.
        padding: the mask is padded by this many zeros, and its box grown by (M + 2 * padding) / M,
            before the box is truncated to whole pixels and the mask resized to it (bilinear).

    Returns:
        Tensor[N, 1, height, width] in the masks' dtype: zero outside each mask's box. One op for
        all masks (torchvision loops over them in Python). Equal to torchvision's within 1e-6:
        torchvision's resize (ATen's) itself rounds differently on different CPU builds, by up to
        9.2e-7. A box entirely outside the image (or NaN) pastes nothing, where torchvision's
        slicing raises or wraps around.
    """
    height, width = int(img_shape[0]), int(img_shape[1])
    if not torch.jit.is_scripting():
        op = torch.ops.roiops.paste_masks_in_image
        return call_op(op, masks, boxes, height, width, int(padding))
    return torch.ops.roiops.paste_masks_in_image(masks, boxes, height, width, padding)
