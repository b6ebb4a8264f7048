"""Fake (meta) kernels: output shapes without data, for torch.compile, torch.export and FakeTensor.
Argument checks live in the C++ kernels; here only what the shape needs is checked."""

from __future__ import annotations

import torch
from torch import Tensor


def _check_rois(rois: Tensor) -> None:
    torch._check(
        rois.dim() == 2 and rois.size(1) == 5,
        lambda: f"rois must be a 2-D tensor [K, 5] of (batch_index, x1, y1, x2, y2), got shape {tuple(rois.shape)}",
    )


@torch.library.register_fake("roiops::roi_align")
def _roi_align(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    torch._check(input.dim() == 4, lambda: f"input must be a 4-D tensor [N, C, H, W], got shape {tuple(input.shape)}")
    _check_rois(rois)
    return input.new_empty((rois.size(0), input.size(1), pooled_height, pooled_width))


@torch.library.register_fake("roiops::_roi_align_backward")
def _roi_align_backward(
    grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width, sampling_ratio, aligned
):
    return grad.new_empty((batch_size, channels, height, width))


@torch.library.register_fake("roiops::multi_scale_roi_align")
def _multi_scale_roi_align(features, rois, levels, spatial_scales, pooled_height, pooled_width, sampling_ratio, aligned):
    torch._check(len(features) > 0, lambda: "expected at least one feature map")
    _check_rois(rois)
    return features[0].new_empty((rois.size(0), features[0].size(1), pooled_height, pooled_width))


@torch.library.register_fake("roiops::_multi_scale_roi_align_backward")
def _multi_scale_roi_align_backward(
    grad, rois, levels, spatial_scales, pooled_height, pooled_width, batch_size, channels, heights, widths,
    sampling_ratio, aligned,
):
    return [grad.new_empty((batch_size, channels, h, w)) for h, w in zip(heights, widths)]


@torch.library.register_fake("roiops::assign_levels")
def _assign_levels(boxes, k_min, k_max, canonical_scale, canonical_level, eps):
    torch._check(
        boxes.dim() == 2 and boxes.size(1) in (4, 5),
        lambda: f"boxes must be [K, 4] or [K, 5], got shape {tuple(boxes.shape)}",
    )
    return boxes.new_empty((boxes.size(0),), dtype=torch.int64)
