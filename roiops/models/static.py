"""Mask R-CNN inference with fixed shapes and no host synchronisation: exportable
(`torch.export`), compilable with `fullgraph=True`, capturable in a CUDA graph.

The eager model (detector.py) compacts with boolean indexing and loops over images in Python; here
every step keeps its full size and carries validity along instead. Each step is the fixed-shape
form its module keeps beside its eager one (RegionProposalNetwork.propose_padded,
RoIHeads.detect_padded / masks_padded, poolers.pool_padded); this file only assembles
them:

    RPN          per-level top-k (the eager call), decode + clip + small-box test of all of them,
                 invalid boxes get class -1, fixed-size batched NMS -> [N, post_nms_top_n] proposals
                 and a validity mask
    box branch   every proposal slot pooled (an invalid one at level -1: a zero row), the box head
    detections   every (proposal, class) box decoded and tested, fixed-size class-wise NMS ->
                 [N, K] detections, K = max_detections
    mask branch  every detection slot pooled and pasted; padded slots are zeroed

Ties: the fixed-size NMS orders equal scores by index (a stable sort). torchvision's batched_nms,
and so the eager model, orders them the same below 4000 box coordinates and by an unstable sort
above; there equal-score boxes may come out in another order (test_static.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ArgumentTypeError, ArgumentValueError
from ..ops.paste_masks import paste_masks_in_image
from .detector import MaskRCNN
from .transform import ImageList, resize_boxes, resize_images, resize_scale


class StaticMaskRCNN(nn.Module):
    """A roiops Mask R-CNN (or Faster R-CNN) for batches of equal-size images, in fixed shapes.

    Shares the wrapped model's modules and weights (no copy). Inference only.

    forward(images: Tensor[N, 3, H, W], values in [0, 1]) -> dict of
        boxes [N, K, 4] (original pixels), scores [N, K], labels [N, K] int64,
        masks [N, K, H, W] (probabilities; Mask R-CNN only), num_detections [N] int64.
    Row j < num_detections[i] is image i's j-th detection of the eager model; the other rows have
    score 0, label -1, zero box and mask.

    With paste_masks=False, "roi_masks" [N, K, M, M] (M = 28) replaces "masks": each detection's
    mask probabilities in its box, unpasted (paste_masks_in_image(roi_masks[i, :, None], boxes[i],
    (H, W)) gives masks[i]) -- what a deployment that pastes on the host wants.
    """

    def __init__(
        self, model: MaskRCNN, max_detections: int = 100, paste_masks: bool = True
    ) -> None:
        super().__init__()
        if not isinstance(model, MaskRCNN):
            raise ArgumentTypeError(
                f"model must be a roiops.models.MaskRCNN, got {type(model).__name__}"
            )
        if max_detections < 1:
            raise ArgumentValueError(f"max_detections must be positive, got {max_detections}")
        self.model = model
        self.max_detections = int(max_detections)
        self.paste_masks = bool(paste_masks)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        if self.model.training:
            raise ArgumentValueError("StaticMaskRCNN is for inference: call .eval() on it first")
        if images.dim() != 4 or images.shape[1] != len(self.model.transform.image_mean):
            raise ArgumentValueError(
                f"images must be a Tensor[N, 3, H, W] batch, got shape {tuple(images.shape)}"
            )
        height, width = int(images.shape[-2]), int(images.shape[-1])
        batch, size = self.transform(images)
        features = self.model.backbone(batch)
        heads = self.model.roi_heads
        proposals, proposal_valid = self.propose(batch, features, size)
        boxes, scores, labels, count = heads.detect_padded(
            features, proposals, proposal_valid, size, self.max_detections
        )
        original_boxes = resize_boxes(boxes, size, (height, width))
        result = {
            "boxes": original_boxes,
            "scores": scores,
            "labels": labels,
            "num_detections": count,
        }
        if heads.has_mask:
            masks = heads.masks_padded(features, boxes, labels, size)  # [N * K, 1, M, M]
            valid = (labels >= 0)[..., None, None]
            if not self.paste_masks:
                roi_masks = masks.reshape(labels.shape[0], labels.shape[1], *masks.shape[-2:])
                result["roi_masks"] = torch.where(valid, roi_masks, 0)
                return result
            pasted = paste_masks_in_image(masks, original_boxes.reshape(-1, 4), (height, width))
            pasted = pasted.reshape(labels.shape[0], labels.shape[1], height, width)
            result["masks"] = torch.where(valid, pasted, 0)
        return result

    def transform(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """The eager transform for a batch of one size: normalize, resize, pad to the stride."""
        transform = self.model.transform
        height, width = int(images.shape[-2]), int(images.shape[-1])
        scale = resize_scale(transform, height, width, transform.min_size[-1])
        x = resize_images(transform.normalize(images), scale)
        resized = (int(x.shape[-2]), int(x.shape[-1]))
        padded = transform.padded_size(resized)
        return F.pad(x, (0, padded[1] - resized[1], 0, padded[0] - resized[0])), resized

    def propose(
        self, batch: Tensor, features: dict[str, Tensor], size: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        rpn = self.model.rpn
        objectness, box_deltas, anchors, per_level = rpn.head_outputs(
            ImageList(batch, [size]), features
        )
        return rpn.propose_padded(objectness, box_deltas, anchors[0], size, per_level)
