"""Training targets: which ground-truth box each anchor / proposal is matched to, and which of them
are sampled for the loss. Semantics and random draws are torchvision's (Matcher,
BalancedPositiveNegativeSampler), so that the same seed gives the same losses."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ArgumentValueError

BELOW_LOW_THRESHOLD = -1  # background
BETWEEN_THRESHOLDS = -2  # ignored


def match(quality: Tensor, high: float, low: float, allow_low_quality_matches: bool) -> Tensor:
    """For each prediction (column of quality [M gt, N predictions]), the index of its best ground
    truth if that IoU >= high, BETWEEN_THRESHOLDS if in [low, high), BELOW_LOW_THRESHOLD below.
    With allow_low_quality_matches, every prediction that is some ground truth's best match keeps
    that match whatever its IoU (the RPN's rule, so that every object gets an anchor)."""
    if quality.numel() == 0:
        what = "ground-truth boxes" if quality.shape[0] == 0 else "proposal boxes"
        raise ArgumentValueError(f"No {what} available for one of the images during training")
    best, matches = quality.max(dim=0)
    all_matches = matches.clone() if allow_low_quality_matches else None
    matches[best < low] = BELOW_LOW_THRESHOLD
    matches[(best >= low) & (best < high)] = BETWEEN_THRESHOLDS
    if all_matches is not None:
        best_per_gt = quality.max(dim=1).values
        tied = torch.where(quality == best_per_gt[:, None])[1]
        matches[tied] = all_matches[tied]
    return matches


def sample_balanced(
    labels: list[Tensor], batch_size_per_image: int, positive_fraction: float
) -> tuple[list[Tensor], list[Tensor]]:
    """Per image, uint8 masks of the sampled positives (label >= 1) and negatives (label 0): up to
    batch_size_per_image * positive_fraction positives, negatives for the rest, chosen by
    torch.randperm -- positives first, then negatives, image after image, as torchvision draws."""
    positives, negatives = [], []
    for image_labels in labels:
        positive = torch.where(image_labels >= 1)[0]
        negative = torch.where(image_labels == 0)[0]
        num_pos = min(positive.numel(), int(batch_size_per_image * positive_fraction))
        num_neg = min(negative.numel(), batch_size_per_image - num_pos)
        pos_pick = positive[torch.randperm(positive.numel(), device=positive.device)[:num_pos]]
        neg_pick = negative[torch.randperm(negative.numel(), device=negative.device)[:num_neg]]
        pos_mask = torch.zeros_like(image_labels, dtype=torch.uint8)
        neg_mask = torch.zeros_like(image_labels, dtype=torch.uint8)
        pos_mask[pos_pick] = 1
        neg_mask[neg_pick] = 1
        positives.append(pos_mask)
        negatives.append(neg_mask)
    return positives, negatives
