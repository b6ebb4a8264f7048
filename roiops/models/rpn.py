"""Region proposal network: FPN maps -> per image up to post_nms_top_n proposals (and, in training,
the objectness and box-regression losses).

Per level the anchors with the highest objectness are kept (pre_nms_top_n); only those are
decoded, clipped and filtered for small boxes -- one fused op per image -- then suppressed by
batched NMS with the level as the class. torchvision decodes every anchor first; the kept boxes are
the same bits. propose_padded is the same step in fixed shapes (StaticMaskRCNN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ArgumentValueError
from ..ops.anchors import AnchorGenerator
from ..ops.box_coder import BoxCoder, decode_clip_boxes
from ..ops.boxes import box_iou
from ..ops.nms import batched_nms, batched_nms_padded
from .checkpoints import rename_old_keys
from .config import DetectorConfig
from .matching import BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS, match, sample_balanced
from .transform import ImageList

RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
MIN_PROPOSAL_SIDE = 1e-3


class RPNHead(nn.Module):
    """A shared 3x3 conv, then per anchor one objectness logit and four box deltas."""

    _version = 2  # state_dict version 1 (torchvision's released weights) names the conv "conv"

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        # Nested Sequentials: torchvision's state_dict names the conv "conv.0.0".
        self.conv = nn.Sequential(
            nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU(inplace=True))
        )
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        rename_old_keys(state_dict, prefix, local_metadata, {"conv": "conv.0.0"})
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        logits, deltas = [], []
        for feature in features:
            t = self.conv(feature)
            logits.append(self.cls_logits(t))  # [N, A, H, W]
            deltas.append(self.bbox_pred(t))  # [N, A * 4, H, W]
        return logits, deltas


def per_anchor(layer: Tensor, values_per_anchor: int) -> Tensor:
    """[N, A * C, H, W] -> [N, H * W * A, C]: the anchors' order (y, x, anchor)."""
    n, _, h, w = layer.shape
    layer = layer.view(n, -1, values_per_anchor, h, w).permute(0, 3, 4, 1, 2)
    return layer.reshape(n, -1, values_per_anchor)


def top_per_level(objectness: Tensor, per_level: list[int], top_n: int) -> tuple[Tensor, Tensor]:
    """Per level the top_n anchors by objectness [N, total]: their indices into the concatenation
    [N, K] and their level [K]."""
    top, levels, offset = [], [], 0
    for level, level_scores in enumerate(objectness.split(per_level, dim=1)):
        k = min(top_n, level_scores.shape[1])
        top.append(level_scores.topk(k, dim=1).indices + offset)
        levels.append(torch.full((k,), level, dtype=torch.int64, device=objectness.device))
        offset += level_scores.shape[1]
    return torch.cat(top, dim=1), torch.cat(levels)


class RegionProposalNetwork(nn.Module):
    def __init__(self, anchor_generator: AnchorGenerator, head: RPNHead, cfg: DetectorConfig):
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = BoxCoder(RPN_WEIGHTS)
        self.cfg = cfg

    def forward(
        self,
        images: ImageList,
        features: dict[str, Tensor],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        objectness, box_deltas, anchors, per_level = self.head_outputs(images, features)
        proposals = self.propose(objectness, box_deltas, anchors, images.image_sizes, per_level)
        losses = {}
        if self.training:
            if targets is None:
                raise ArgumentValueError("targets are needed in training mode")
            labels, matched_boxes = self.assign_targets(anchors, targets)
            regression_targets = self.box_coder.encode(matched_boxes, anchors)
            losses = self.loss(
                objectness.flatten(), box_deltas.reshape(-1, 4), labels, regression_targets
            )
        return proposals, losses

    def head_outputs(
        self, images: ImageList, features: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor, list[Tensor], list[int]]:
        """Objectness logits [N, total] and box deltas [N, total, 4] of every anchor in the
        anchors' order, the anchors (per image [total, 4]) and the anchor count of each level."""
        maps = list(features.values())
        logits, deltas = self.head(maps)
        anchors = self.anchor_generator(images, maps)
        per_level = [o.shape[1] * o.shape[2] * o.shape[3] for o in logits]
        objectness = torch.cat([per_anchor(o, 1) for o in logits], dim=1)[..., 0]
        box_deltas = torch.cat([per_anchor(d, 4) for d in deltas], dim=1)
        return objectness, box_deltas, anchors, per_level

    def propose(
        self,
        objectness: Tensor,  # [N, total] logits
        box_deltas: Tensor,  # [N, total, 4]
        anchors: list[Tensor],
        image_sizes: list[tuple[int, int]],
        per_level: list[int],
    ) -> list[Tensor]:
        objectness, box_deltas = objectness.detach(), box_deltas.detach()
        cfg = self.cfg
        top_n = cfg.rpn_pre_nms_top_n_train if self.training else cfg.rpn_pre_nms_top_n_test
        post_n = cfg.rpn_post_nms_top_n_train if self.training else cfg.rpn_post_nms_top_n_test
        top, level = top_per_level(objectness, per_level, top_n)
        scores = objectness.gather(1, top).sigmoid()  # [N, K]
        proposals = []
        for i, size in enumerate(image_sizes):
            boxes, big_enough = decode_clip_boxes(
                box_deltas[i][top[i]], anchors[i][top[i]], RPN_WEIGHTS, size, MIN_PROPOSAL_SIDE
            )
            keep = torch.where(big_enough[:, 0] & (scores[i] >= self.cfg.rpn_score_thresh))[0]
            boxes, image_scores, image_levels = boxes[keep], scores[i][keep], level[keep]
            keep = batched_nms(boxes, image_scores, image_levels, self.cfg.rpn_nms_thresh)
            proposals.append(boxes[keep[:post_n]])
        return proposals

    def forward_padded(
        self, batch: Tensor, features: dict[str, Tensor], size: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        """Inference in fixed shapes for a padded batch of images of one resized `size`
        (StaticMaskRCNN): proposals [N, post_nms_top_n, 4] and their validity."""
        objectness, box_deltas, anchors, per_level = self.head_outputs(
            ImageList(batch, [size]), features
        )
        return self.propose_padded(objectness, box_deltas, anchors[0], size, per_level)

    def propose_padded(
        self,
        objectness: Tensor,  # [N, total] logits
        box_deltas: Tensor,  # [N, total, 4]
        anchors: Tensor,  # [total, 4], the same for every image (one image size)
        size: tuple[int, int],
        per_level: list[int],
    ) -> tuple[Tensor, Tensor]:
        """propose in fixed shapes, inference only: [N, post_nms_top_n, 4] proposals in score
        order and their validity [N, post_nms_top_n]. Nothing is compacted: boxes that are too
        small or score too low get class -1, and fixed-size batched NMS pads with -1."""
        cfg = self.cfg
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

    def assign_targets(
        self, anchors: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Per image: anchor labels (1 object, 0 background, -1 ignored) and matched boxes."""
        labels, matched_boxes = [], []
        for image_anchors, target in zip(anchors, targets):
            gt = target["boxes"]
            if gt.numel() == 0:
                matched_boxes.append(torch.zeros_like(image_anchors, dtype=torch.float32))
                labels.append(image_anchors.new_zeros(image_anchors.shape[0], dtype=torch.float32))
                continue
            matches = match(
                box_iou(gt, image_anchors),
                self.cfg.rpn_fg_iou_thresh,
                self.cfg.rpn_bg_iou_thresh,
                allow_low_quality_matches=True,
            )
            matched_boxes.append(gt[matches.clamp(min=0)])
            image_labels = (matches >= 0).to(torch.float32)
            image_labels[matches == BELOW_LOW_THRESHOLD] = 0.0
            image_labels[matches == BETWEEN_THRESHOLDS] = -1.0
            labels.append(image_labels)
        return labels, matched_boxes

    def loss(
        self,
        objectness: Tensor,  # [N * total] logits
        box_deltas: Tensor,  # [N * total, 4]
        labels: list[Tensor],
        regression_targets: tuple[Tensor, ...],
    ) -> dict[str, Tensor]:
        positive, negative = sample_balanced(
            labels, self.cfg.rpn_batch_size_per_image, self.cfg.rpn_positive_fraction
        )
        positive = torch.where(torch.cat(positive))[0]
        sampled = torch.cat([positive, torch.where(torch.cat(negative))[0]])
        labels, regression_targets = torch.cat(labels), torch.cat(regression_targets)
        box_loss = (
            F.smooth_l1_loss(
                box_deltas[positive], regression_targets[positive], beta=1 / 9, reduction="sum"
            )
            / sampled.numel()
        )
        objectness_loss = F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled])
        return {"loss_objectness": objectness_loss, "loss_rpn_box_reg": box_loss}
