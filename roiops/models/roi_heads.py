"""RoI heads: proposals -> detections (boxes, labels, scores, 28x28 masks), or the training losses.

Box branch: multi-scale RoIAlign 7x7 -> two FC layers (box head) -> class logits and per-class box
deltas (predictor) -> decode, clip, score threshold, per-class NMS (post-processing).
Mask branch: multi-scale RoIAlign 14x14 of the detections -> four 3x3 convs (mask head) -> 2x2
transposed conv and per-class 28x28 logits (predictor).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ArgumentValueError
from ..ops.box_coder import BoxCoder, decode_clip_boxes
from ..ops.boxes import box_iou
from ..ops.nms import batched_nms, batched_nms_padded
from ..ops.poolers import MultiScaleRoIAlign, pool_padded
from ..ops.roi_align import roi_align
from .checkpoints import rename_old_keys
from .config import DetectorConfig
from .matching import BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS, match, sample_balanced

MIN_DETECTION_SIDE = 1e-2
# torchvision's Mask R-CNN pools proposals to 7x7 and detections to 14x14 from FPN levels P2-P5
# (features "0".."3"), two samples per bin and axis.
POOLED_LEVELS = ["0", "1", "2", "3"]
BOX_POOL_SIZE = 7
MASK_POOL_SIZE = 14
POOL_SAMPLING_RATIO = 2


class TwoMLPHead(nn.Module):
    """Box features [K, C, 7, 7] -> [K, representation_size]."""

    def __init__(self, in_channels: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(start_dim=1)))))


class FastRCNNPredictor(nn.Module):
    """[K, representation_size] -> class logits [K, classes], box deltas [K, classes * 4]."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_classes * 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)


class MaskRCNNHeads(nn.Sequential):
    """Mask features [K, C, 14, 14] through 3x3 conv + ReLU layers."""

    _version = 2  # state_dict version 1 (torchvision's released weights) names the convs mask_fcn*

    def __init__(self, in_channels: int, layers: tuple[int, ...]) -> None:
        blocks = []
        for out_channels in layers:
            conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            blocks.append(nn.Sequential(conv, nn.ReLU(inplace=True)))  # "mask_head.{i}.0.weight"
            in_channels = out_channels
        super().__init__(*blocks)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        renames = {f"mask_fcn{i + 1}": f"{i}.0" for i in range(len(self))}
        rename_old_keys(state_dict, prefix, local_metadata, renames)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)


class MaskRCNNPredictor(nn.Sequential):
    """[K, C, 14, 14] -> per-class mask logits [K, classes, 28, 28]."""

    def __init__(self, in_channels: int, hidden: int, num_classes: int) -> None:
        super().__init__(
            OrderedDict(
                conv5_mask=nn.ConvTranspose2d(in_channels, hidden, 2, stride=2),
                relu=nn.ReLU(inplace=True),
                mask_fcn_logits=nn.Conv2d(hidden, num_classes, 1),
            )
        )
        for name, param in self.named_parameters():
            if "weight" in name:  # the biases keep PyTorch's default initialisation, as torchvision
                nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")


class RoIHeads(nn.Module):
    def __init__(
        self,
        cfg: DetectorConfig,
        box_head: TwoMLPHead,
        box_predictor: FastRCNNPredictor,
        mask_head: MaskRCNNHeads | None = None,
        mask_predictor: MaskRCNNPredictor | None = None,
    ) -> None:
        super().__init__()
        self.box_roi_pool = MultiScaleRoIAlign(POOLED_LEVELS, BOX_POOL_SIZE, POOL_SAMPLING_RATIO)
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.mask_roi_pool = None
        if mask_head is not None:
            self.mask_roi_pool = MultiScaleRoIAlign(
                POOLED_LEVELS, MASK_POOL_SIZE, POOL_SAMPLING_RATIO
            )
        self.mask_head = mask_head
        self.mask_predictor = mask_predictor
        self.box_coder = BoxCoder(cfg.bbox_reg_weights)
        self.cfg = cfg

    @property
    def has_mask(self) -> bool:
        return self.mask_head is not None

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_sizes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Eval: (one detection dict per image, {}); train: ([], the losses)."""
        if self.training:
            return [], self.losses(features, proposals, image_sizes, targets)
        return self.detect(features, proposals, image_sizes), {}

    def detect(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """Per image boxes, labels, scores and (Mask R-CNN) masks [n, 1, 28, 28] probabilities."""
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_sizes))
        class_logits, box_deltas = self.box_predictor(box_features)
        detections = self.postprocess(class_logits, box_deltas, proposals, image_sizes)
        if self.has_mask:
            boxes = [d["boxes"] for d in detections]
            mask_logits = self.mask_logits(features, boxes, image_sizes)
            labels = torch.cat([d["labels"] for d in detections])
            masks = mask_logits[torch.arange(labels.numel()), labels].sigmoid()[:, None]
            for d, m in zip(detections, masks.split([len(b) for b in boxes])):
                d["masks"] = m
        return detections

    def losses(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_sizes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None,
    ) -> dict[str, Tensor]:
        """The box branch's losses on sampled proposals, and the mask loss on their positives."""
        proposals, matched, labels, regression_targets = self.training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_sizes))
        class_logits, box_deltas = self.box_predictor(box_features)
        losses = box_losses(class_logits, box_deltas, labels, regression_targets)
        if self.has_mask:
            positive = [torch.where(image_labels > 0)[0] for image_labels in labels]
            boxes = [p[i] for p, i in zip(proposals, positive)]
            mask_logits = self.mask_logits(features, boxes, image_sizes)
            gt = [(t["masks"], t["labels"]) for t in targets]
            losses["loss_mask"] = mask_loss(
                mask_logits, boxes, [m[i] for m, i in zip(matched, positive)], gt
            )
        return losses

    def mask_logits(
        self, features: dict[str, Tensor], boxes: list[Tensor], image_sizes: list[tuple[int, int]]
    ) -> Tensor:
        return self.mask_predictor(self.mask_head(self.mask_roi_pool(features, boxes, image_sizes)))

    def postprocess(
        self,
        class_logits: Tensor,  # [K, classes]
        box_deltas: Tensor,  # [K, classes * 4]
        proposals: list[Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """Per image: every (proposal, class) box decoded and clipped in one op, background and
        small boxes dropped, score > box_score_thresh, per-class NMS, the best
        box_detections_per_img."""
        num_classes = class_logits.shape[-1]
        scores = F.softmax(class_logits, -1)
        detections = []
        for image_deltas, image_scores, image_proposals, size in zip(
            box_deltas.split([len(p) for p in proposals]),
            scores.split([len(p) for p in proposals]),
            proposals,
            image_sizes,
        ):
            boxes, big_enough = decode_clip_boxes(
                image_deltas, image_proposals, self.cfg.bbox_reg_weights, size, MIN_DETECTION_SIDE
            )
            labels = torch.arange(num_classes, device=scores.device).expand_as(image_scores)
            boxes = boxes.reshape(-1, num_classes, 4)[:, 1:].reshape(-1, 4)  # drop the background
            labels, image_scores = labels[:, 1:].reshape(-1), image_scores[:, 1:].reshape(-1)
            candidate = big_enough[:, 1:].reshape(-1) & (image_scores > self.cfg.box_score_thresh)
            keep = torch.where(candidate)[0]
            boxes, image_scores, labels = boxes[keep], image_scores[keep], labels[keep]
            keep = batched_nms(boxes, image_scores, labels, self.cfg.box_nms_thresh)
            keep = keep[: self.cfg.box_detections_per_img]
            detections.append(
                {"boxes": boxes[keep], "labels": labels[keep], "scores": image_scores[keep]}
            )
        return detections

    def detect_padded(
        self,
        features: dict[str, Tensor],
        proposals: Tensor,  # [N, P, 4], resized-image pixels
        proposal_valid: Tensor,  # [N, P]
        size: tuple[int, int],
        max_detections: int,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The box branch and postprocess in fixed shapes, inference only: boxes [N, K, 4]
        (resized-image pixels), scores [N, K], labels [N, K] (-1: padding) and counts [N], K =
        max_detections. Every (proposal, class) box is decoded and tested; nothing is compacted."""
        cfg = self.cfg
        n, p = proposals.shape[0], proposals.shape[1]
        pooled = pool_padded(self.box_roi_pool, features, proposals, proposal_valid, size)
        class_logits, box_deltas = self.box_predictor(self.box_head(pooled))
        num_classes = class_logits.shape[-1]
        scores = F.softmax(class_logits, -1)
        boxes, big_enough = decode_clip_boxes(
            box_deltas, proposals.reshape(-1, 4), cfg.bbox_reg_weights, size, MIN_DETECTION_SIDE
        )
        # Every (proposal, class) pair but the background, proposal-major as in postprocess.
        boxes = boxes.reshape(n, p, num_classes, 4)[:, :, 1:].reshape(n, -1, 4)
        scores = scores.reshape(n, p, num_classes)[:, :, 1:].reshape(n, -1)
        labels = torch.arange(1, num_classes, device=scores.device).repeat(p)  # [p * (C - 1)]
        candidate = (
            big_enough.reshape(n, p, num_classes)[:, :, 1:]
            & proposal_valid[..., None]
            & (scores.reshape(n, p, num_classes - 1) > cfg.box_score_thresh)
        ).reshape(n, -1)
        classes = torch.where(candidate, labels.expand_as(candidate), -1)
        # postprocess keeps box_detections_per_img; the slots beyond it stay padding.
        kept = min(max_detections, cfg.box_detections_per_img)
        keep, count = batched_nms_padded(boxes, scores, classes, cfg.box_nms_thresh, kept)
        keep = F.pad(keep, (0, max_detections - kept), value=-1)
        valid = keep >= 0
        index = keep.clamp(min=0)
        boxes = boxes.gather(1, index[..., None].expand(-1, -1, 4))
        boxes = torch.where(valid[..., None], boxes, 0)
        scores = torch.where(valid, scores.gather(1, index), 0)
        labels = torch.where(valid, classes.gather(1, index), -1)
        return boxes, scores, labels, count

    def masks_padded(
        self,
        features: dict[str, Tensor],
        boxes: Tensor,  # [N, K, 4], resized-image pixels
        labels: Tensor,  # [N, K], -1 for padding
        size: tuple[int, int],
    ) -> Tensor:
        """The mask branch in fixed shapes: [N * K, 1, M, M] probabilities of each detection's
        class (padding pools zero rows)."""
        valid = labels >= 0
        pooled = pool_padded(self.mask_roi_pool, features, boxes, valid, size)
        mask_logits = self.mask_predictor(self.mask_head(pooled))  # [N * K, C, M, M]
        chosen = labels.reshape(-1).clamp(min=0)[:, None, None, None]
        chosen = chosen.expand(-1, 1, mask_logits.shape[-2], mask_logits.shape[-1])
        return mask_logits.gather(1, chosen).sigmoid()

    def training_samples(
        self, proposals: list[Tensor], targets: list[dict[str, Tensor]] | None
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], tuple[Tensor, ...]]:
        """The ground truth joins the proposals; each is matched to a ground-truth box, sampled
        (box_batch_size_per_image, box_positive_fraction) and given its regression target."""
        if targets is None:
            raise ArgumentValueError("targets are needed in training mode")
        gt_boxes = [t["boxes"].to(proposals[0].dtype) for t in targets]
        proposals = [torch.cat([p, gt]) for p, gt in zip(proposals, gt_boxes)]
        matched, labels = [], []
        for image_proposals, gt, target in zip(proposals, gt_boxes, targets):
            if gt.numel() == 0:
                zeros = torch.zeros(
                    len(image_proposals), dtype=torch.int64, device=image_proposals.device
                )
                matched.append(zeros)
                labels.append(zeros.clone())
                continue
            matches = match(
                box_iou(gt, image_proposals),
                self.cfg.box_fg_iou_thresh,
                self.cfg.box_bg_iou_thresh,
                allow_low_quality_matches=False,
            )
            clamped = matches.clamp(min=0)
            image_labels = target["labels"][clamped].to(torch.int64)
            image_labels[matches == BELOW_LOW_THRESHOLD] = 0
            image_labels[matches == BETWEEN_THRESHOLDS] = -1
            matched.append(clamped)
            labels.append(image_labels)
        positive, negative = sample_balanced(
            labels, self.cfg.box_batch_size_per_image, self.cfg.box_positive_fraction
        )
        matched_boxes = []
        for i, (pos, neg) in enumerate(zip(positive, negative)):
            sampled = torch.where(pos | neg)[0]
            proposals[i], labels[i], matched[i] = (
                proposals[i][sampled],
                labels[i][sampled],
                matched[i][sampled],
            )
            gt = gt_boxes[i] if gt_boxes[i].numel() else gt_boxes[i].new_zeros((1, 4))
            matched_boxes.append(gt[matched[i]])
        return proposals, matched, labels, self.box_coder.encode(matched_boxes, proposals)


def box_losses(
    class_logits: Tensor, box_deltas: Tensor, labels: list[Tensor], targets: tuple[Tensor, ...]
) -> dict[str, Tensor]:
    """Cross-entropy over the classes; smooth L1 (beta 1/9) on the deltas of each positive's own
    class, normalised by the number of sampled proposals."""
    labels, targets = torch.cat(labels), torch.cat(targets)
    positive = torch.where(labels > 0)[0]
    deltas = box_deltas.reshape(box_deltas.shape[0], -1, 4)[positive, labels[positive]]
    box_loss = F.smooth_l1_loss(deltas, targets[positive], beta=1 / 9, reduction="sum")
    return {
        "loss_classifier": F.cross_entropy(class_logits, labels),
        "loss_box_reg": box_loss / labels.numel(),
    }


def mask_loss(
    mask_logits: Tensor,  # [P, classes, M, M] for the positive proposals of all images
    boxes: list[Tensor],  # per image, the positive proposals
    matched: list[Tensor],  # per image, their ground-truth index
    gt: list[tuple[Tensor, Tensor]],  # per image, (masks [G, H, W], labels [G])
) -> Tensor:
    """Binary cross-entropy of each positive's logits for its class against its ground-truth mask
    cropped to its box and resized to M x M by RoIAlign (torchvision's projection)."""
    size = mask_logits.shape[-1]
    targets, labels = [], []
    for image_boxes, image_matched, (masks, gt_labels) in zip(boxes, matched, gt):
        labels.append(gt_labels[image_matched])
        rois = torch.cat([image_matched.to(image_boxes)[:, None], image_boxes], dim=1)
        targets.append(roi_align(masks[:, None].to(rois), rois, (size, size), 1.0)[:, 0])
    labels, targets = torch.cat(labels), torch.cat(targets)
    if targets.numel() == 0:
        return mask_logits.sum() * 0
    chosen = mask_logits[torch.arange(labels.shape[0], device=labels.device), labels]
    return F.binary_cross_entropy_with_logits(chosen, targets)
