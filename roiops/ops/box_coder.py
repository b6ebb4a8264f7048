"""Box coding (Faster R-CNN parametrisation) with torchvision's BoxCoder API and numerics."""

from __future__ import annotations

import math

import torch
from torch import Tensor

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


class BoxCoder:
    """Drop-in for torchvision.models.detection._utils.BoxCoder."""

    def __init__(
        self,
        weights: tuple[float, float, float, float],
        bbox_xform_clip: float = DEFAULT_XFORM_CLIP,
    ) -> None:
        self.weights = weights
        self.bbox_xform_clip = bbox_xform_clip

    def encode(self, reference_boxes: list[Tensor], proposals: list[Tensor]) -> tuple[Tensor, ...]:
        boxes_per_image = [len(b) for b in reference_boxes]
        targets = self.encode_single(torch.cat(reference_boxes, dim=0), torch.cat(proposals, dim=0))
        return targets.split(boxes_per_image, 0)

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        return encode_boxes(reference_boxes, proposals, self.weights)

    def decode(self, rel_codes: Tensor, boxes: list[Tensor]) -> Tensor:
        if not isinstance(boxes, (list, tuple)):
            raise ArgumentTypeError(
                f"boxes must be a list of per-image Tensor[L, 4], got {type(boxes).__name__}"
            )
        box_sum = sum(b.size(0) for b in boxes)
        concat = torch.cat(list(boxes), dim=0)
        if box_sum > 0:
            rel_codes = rel_codes.reshape(box_sum, -1)
        pred = self.decode_single(rel_codes, concat)
        return pred.reshape(box_sum, -1, 4) if box_sum > 0 else pred

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        return decode_boxes(rel_codes, boxes, self.weights, self.bbox_xform_clip)
