"""Mask R-CNN inference with fixed shapes and no host synchronisation: exportable
(`torch.export`), compilable with `fullgraph=True`, capturable in a CUDA graph.

The eager model (detector.py) compacts with boolean indexing and loops over images in Python; here
every step keeps its full size and carries validity along instead:

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

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ArgumentTypeError, ArgumentValueError
from ..ops.box_coder import decode_clip_boxes
from ..ops.nms import batched_nms_padded
from ..ops.paste_masks import paste_masks_in_image
from ..ops.poolers import assign_levels, multi_scale_roi_align
from .detector import MaskRCNN
from .roi_heads import MIN_DETECTION_SIDE
from .rpn import MIN_PROPOSAL_SIDE, RPN_WEIGHTS, per_anchor, top_per_level
from .transform import ImageList, resize_boxes, resize_images, resize_scale


class StaticMaskRCNN(nn.Module):
    """A roiops Mask R-CNN (or Faster R-CNN) for batches of equal-size images, in fixed shapes.

    Shares the wrapped model's modules and weights (no copy). Inference only.

    forward(images: Tensor[N, 3, H, W], values in [0, 1]) -> dict of
        boxes [N, K, 4] (original pixels), scores [N, K], labels [N, K] int64,
        masks [N, K, H, W] (probabilities; Mask R-CNN only), num_detections [N] int64.
    Row j < num_detections[i] is image i's j-th detection of the eager model; the other rows have
    score 0, label -1, zero box and mask.
    """

    def __init__(self, model: MaskRCNN, max_detections: int = 100) -> None:
        super().__init__()
        if not isinstance(model, MaskRCNN):
            raise ArgumentTypeError(
                f"model must be a roiops.models.MaskRCNN, got {type(model).__name__}"
            )
        if max_detections < 1:
            raise ArgumentValueError(f"max_detections must be positive, got {max_detections}")
        self.model = model
        self.max_detections = int(max_detections)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        if self.model.training:
            raise RuntimeError("StaticMaskRCNN is for inference: call .eval() on it first")
        if images.dim() != 4 or images.shape[1] != len(self.model.transform.image_mean):
            raise ArgumentValueError(
                f"images must be a Tensor[N, 3, H, W] batch, got shape {tuple(images.shape)}"
            )
        height, width = int(images.shape[-2]), int(images.shape[-1])
        batch, size = self.transform(images)
        features = self.model.backbone(batch)
        proposals, proposal_valid = self.propose(batch, features, size)
        boxes, scores, labels, count = self.detect(features, proposals, proposal_valid, size)
        valid = labels >= 0
        result = {
            "boxes": resize_boxes(boxes, size, (height, width)),
            "scores": scores,
            "labels": labels,
            "num_detections": count,
        }
        if self.model.roi_heads.has_mask:
            result["masks"] = self.masks(
                features, boxes, labels, valid, size, result["boxes"], (height, width)
            )
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
        """[N, post_nms_top_n, 4] proposals in score order and their validity [N, post_nms_top_n]
        (RegionProposalNetwork.propose without compaction)."""
        rpn, cfg = self.model.rpn, self.model.rpn.cfg
        maps = list(features.values())
        logits, deltas = rpn.head(maps)
        anchors = rpn.anchor_generator(ImageList(batch, [size]), maps)[0]  # every image's
        objectness = torch.cat([per_anchor(o, 1) for o in logits], dim=1)[..., 0]  # [N, total]
        box_deltas = torch.cat([per_anchor(d, 4) for d in deltas], dim=1)  # [N, total, 4]
        per_level = [o.shape[1] * o.shape[2] * o.shape[3] for o in logits]
        top, levels = top_per_level(objectness, per_level, cfg.rpn_pre_nms_top_n_test)  # [N, P]
        scores = objectness.gather(1, top).sigmoid()
        codes = box_deltas.gather(1, top[..., None].expand(-1, -1, 4))
        boxes, big_enough = decode_clip_boxes(
            codes.reshape(-1, 4), anchors[top.reshape(-1)], RPN_WEIGHTS, size, MIN_PROPOSAL_SIDE
        )
        boxes = boxes.reshape(top.shape[0], top.shape[1], 4)
        valid = big_enough.reshape(top.shape) & (scores >= cfg.rpn_score_thresh)
        classes = torch.where(valid, levels.expand_as(top), -1)
        keep, _ = batched_nms_padded(
            boxes, scores, classes, cfg.rpn_nms_thresh, cfg.rpn_post_nms_top_n_test
        )
        proposals = boxes.gather(1, keep.clamp(min=0)[..., None].expand(-1, -1, 4))
        return proposals, keep >= 0

    def detect(
        self,
        features: dict[str, Tensor],
        proposals: Tensor,
        proposal_valid: Tensor,
        size: tuple[int, int],
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Boxes [N, K, 4] (resized-image pixels), scores [N, K], labels [N, K] (-1: padding) and
        counts [N] (RoIHeads.postprocess without compaction)."""
        heads, cfg = self.model.roi_heads, self.model.roi_heads.cfg
        n, p = proposals.shape[0], proposals.shape[1]
        pooled = pool(features, proposals, proposal_valid, size, heads.box_roi_pool)
        class_logits, box_deltas = heads.box_predictor(heads.box_head(pooled))
        num_classes = class_logits.shape[-1]
        scores = F.softmax(class_logits, -1)
        boxes, big_enough = decode_clip_boxes(
            box_deltas, proposals.reshape(-1, 4), cfg.bbox_reg_weights, size, MIN_DETECTION_SIDE
        )
        # Every (proposal, class) pair but the background, proposal-major as in the eager model.
        boxes = boxes.reshape(n, p, num_classes, 4)[:, :, 1:].reshape(n, -1, 4)
        scores = scores.reshape(n, p, num_classes)[:, :, 1:].reshape(n, -1)
        labels = torch.arange(1, num_classes, device=scores.device).repeat(p)  # [p * (C - 1)]
        candidate = (
            big_enough.reshape(n, p, num_classes)[:, :, 1:]
            & proposal_valid[..., None]
            & (scores.reshape(n, p, num_classes - 1) > cfg.box_score_thresh)
        ).reshape(n, -1)
        classes = torch.where(candidate, labels.expand_as(candidate), -1)
        # The eager model's cap is box_detections_per_img; the slots beyond it stay padding.
        kept = min(self.max_detections, cfg.box_detections_per_img)
        keep, count = batched_nms_padded(boxes, scores, classes, cfg.box_nms_thresh, kept)
        keep = F.pad(keep, (0, self.max_detections - kept), value=-1)
        valid = keep >= 0
        index = keep.clamp(min=0)
        boxes = boxes.gather(1, index[..., None].expand(-1, -1, 4))
        boxes = torch.where(valid[..., None], boxes, 0)
        scores = torch.where(valid, scores.gather(1, index), 0)
        labels = torch.where(valid, classes.gather(1, index), -1)
        return boxes, scores, labels, count

    def masks(
        self,
        features: dict[str, Tensor],
        boxes: Tensor,
        labels: Tensor,
        valid: Tensor,
        size: tuple[int, int],
        original_boxes: Tensor,
        original_size: tuple[int, int],
    ) -> Tensor:
        """[N, K, H, W] pasted mask probabilities of each detection's class; zero on padding."""
        heads = self.model.roi_heads
        n, k = boxes.shape[0], boxes.shape[1]
        pooled = pool(features, boxes, valid, size, heads.mask_roi_pool)
        mask_logits = heads.mask_predictor(heads.mask_head(pooled))  # [N * K, C, M, M]
        chosen = labels.reshape(-1).clamp(min=0)[:, None, None, None]
        chosen = chosen.expand(-1, 1, mask_logits.shape[-2], mask_logits.shape[-1])
        masks = mask_logits.gather(1, chosen).sigmoid()  # [N * K, 1, M, M]
        height, width = original_size
        pasted = paste_masks_in_image(masks, original_boxes.reshape(-1, 4), (height, width))
        pasted = pasted.reshape(n, k, height, width)
        return torch.where(valid[..., None, None], pasted, 0)


def pool(
    features: dict[str, Tensor], boxes: Tensor, valid: Tensor, size: tuple[int, int], pooler
) -> Tensor:
    """MultiScaleRoIAlign of boxes [N, R, 4] with the eager pooler's settings; an invalid box
    pools to a zero row (level -1). Returns [N * R, C, PH, PW]."""
    maps = [features[name] for name in features if name in pooler.featmap_names]
    # torchvision's scale inference (poolers._infer_scales) for one image height, in Python math:
    # the maps' scales are powers of two, so log2 rounds the same in float32 and float64.
    scales = [2.0 ** round(math.log2(m.shape[-2] / size[0])) for m in maps]
    n, r = boxes.shape[0], boxes.shape[1]
    image = torch.arange(n, device=boxes.device, dtype=boxes.dtype)[:, None, None].expand(n, r, 1)
    rois = torch.cat([image, boxes], dim=2).reshape(-1, 5)
    k_min, k_max = round(-math.log2(scales[0])), round(-math.log2(scales[-1]))
    levels = assign_levels(
        rois, k_min, k_max, float(pooler.canonical_scale), float(pooler.canonical_level)
    )
    levels = torch.where(valid.reshape(-1), levels, -1)
    return multi_scale_roi_align(
        maps, rois, levels, pooler.output_size, scales, pooler.sampling_ratio
    )
