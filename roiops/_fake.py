"""Fake (meta) kernels: output shapes without data, for torch.compile, torch.export and FakeTensor.
Argument checks live in the C++ kernels; here only what the shape needs is checked."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .ops.boxes import iou_dtype


def _check_rois(rois: Tensor) -> None:
    torch._check(
        rois.dim() == 2 and rois.size(1) == 5,
        lambda: (
            "rois must be a 2-D tensor [K, 5] of (batch_index, x1, y1, x2, y2), got shape "
            f"{tuple(rois.shape)}"
        ),
    )


@torch.library.register_fake("roiops::roi_align")
def _roi_align(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    torch._check(
        input.dim() == 4,
        lambda: f"input must be a 4-D tensor [N, C, H, W], got shape {tuple(input.shape)}",
    )
    _check_rois(rois)
    return input.new_empty((rois.size(0), input.size(1), pooled_height, pooled_width))


@torch.library.register_fake("roiops::_roi_align_backward")
def _roi_align_backward(
    grad,
    rois,
    spatial_scale,
    pooled_height,
    pooled_width,
    batch_size,
    channels,
    height,
    width,
    sampling_ratio,
    aligned,
):
    return grad.new_empty((batch_size, channels, height, width))


@torch.library.register_fake("roiops::multi_scale_roi_align")
def _multi_scale_roi_align(
    features, rois, levels, spatial_scales, pooled_height, pooled_width, sampling_ratio, aligned
):
    torch._check(len(features) > 0, lambda: "expected at least one feature map")
    _check_rois(rois)
    return features[0].new_empty((rois.size(0), features[0].size(1), pooled_height, pooled_width))


@torch.library.register_fake("roiops::_multi_scale_roi_align_backward")
def _multi_scale_roi_align_backward(
    grad,
    rois,
    levels,
    spatial_scales,
    pooled_height,
    pooled_width,
    batch_size,
    channels,
    heights,
    widths,
    sampling_ratio,
    aligned,
):
    return [grad.new_empty((batch_size, channels, h, w)) for h, w in zip(heights, widths)]


@torch.library.register_fake("roiops::roi_align_sample_points")
def _roi_align_sample_points(
    rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned
):
    _check_rois(rois)
    k = rois.size(0)
    dtype = torch.float64 if rois.dtype == torch.float64 else torch.float32
    if sampling_ratio > 0:
        grid_y = grid_x = sampling_ratio
    else:  # the largest adaptive grid of any RoI: data-dependent
        ctx = torch.library.get_ctx()
        grid_y, grid_x = ctx.new_dynamic_size(), ctx.new_dynamic_size()
    return (
        rois.new_empty((k, pooled_height + 1), dtype=dtype),
        rois.new_empty((k, pooled_width + 1), dtype=dtype),
        rois.new_empty((k, pooled_height, grid_y), dtype=dtype),
        rois.new_empty((k, pooled_width, grid_x), dtype=dtype),
        rois.new_empty((k,), dtype=torch.int64),
        rois.new_empty((k,), dtype=torch.int64),
    )


@torch.library.register_fake("roiops::assign_levels")
def _assign_levels(boxes, k_min, k_max, canonical_scale, canonical_level, eps):
    torch._check(
        boxes.dim() == 2 and boxes.size(1) in (4, 5),
        lambda: f"boxes must be [K, 4] or [K, 5], got shape {tuple(boxes.shape)}",
    )
    return boxes.new_empty((boxes.size(0),), dtype=torch.int64)


def _kept_indices(boxes):
    # The number of kept boxes is data-dependent.
    return boxes.new_empty((torch.library.get_ctx().new_dynamic_size(),), dtype=torch.int64)


@torch.library.register_fake("roiops::nms")
def _nms(boxes, scores, iou_threshold):
    return _kept_indices(boxes)


@torch.library.register_fake("roiops::batched_nms")
def _batched_nms(boxes, scores, idxs, iou_threshold):
    return _kept_indices(boxes)


@torch.library.register_fake("roiops::batched_nms_padded")
def _batched_nms_padded(boxes, scores, idxs, iou_threshold, max_output):
    torch._check(
        boxes.dim() == 3, lambda: f"boxes must be [B, N, 4], got shape {tuple(boxes.shape)}"
    )
    return (
        boxes.new_empty((boxes.size(0), max_output), dtype=torch.int64),
        boxes.new_empty((boxes.size(0),), dtype=torch.int64),
    )


@torch.library.register_fake("roiops::_nms_greedy")
def _nms_greedy(boxes, classes, iou_threshold, max_keep):
    return boxes.new_empty((boxes.size(0), boxes.size(1)), dtype=torch.bool)


@torch.library.register_fake("roiops::decode_boxes")
def _decode_boxes(rel_codes, boxes, weights, bbox_xform_clip):
    return torch.empty_like(rel_codes, memory_format=torch.contiguous_format)


@torch.library.register_fake("roiops::decode_clip_boxes")
def _decode_clip_boxes(
    rel_codes, boxes, weights, bbox_xform_clip, image_height, image_width, min_size
):
    keep = rel_codes.new_empty((rel_codes.size(0), rel_codes.size(1) // 4), dtype=torch.bool)
    return torch.empty_like(rel_codes, memory_format=torch.contiguous_format), keep


@torch.library.register_fake("roiops::encode_boxes")
def _encode_boxes(reference_boxes, proposals, weights):
    return reference_boxes.new_empty((reference_boxes.size(0), 4))


@torch.library.register_fake("roiops::box_iou")
def _box_iou(boxes1, boxes2, fmt="xyxy"):
    batch = torch.broadcast_shapes(boxes1.shape[:-2], boxes2.shape[:-2])
    dtype = iou_dtype(boxes1.dtype, boxes2.dtype)
    return boxes1.new_empty((*batch, boxes1.size(-2), boxes2.size(-2)), dtype=dtype)


@torch.library.register_fake("roiops::grid_anchors")
def _grid_anchors(
    cell_anchors,
    anchors_per_level,
    grid_heights,
    grid_widths,
    stride_heights,
    stride_widths,
    num_images,
):
    rows = sum(h * w * a for h, w, a in zip(grid_heights, grid_widths, anchors_per_level))
    return cell_anchors.new_empty((num_images, rows, 4))


@torch.library.register_fake("roiops::paste_masks_in_image")
def _paste_masks_in_image(masks, boxes, image_height, image_width, padding=1):
    return masks.new_empty((masks.size(0), 1, image_height, image_width))


@torch.library.register_fake("roiops::_resize_images")
def _resize_images(images, scale):
    # F.interpolate's output size under recompute_scale_factor (csrc/ops/resize_images.cpp).
    height = math.floor(float(images.shape[2]) * scale)
    width = math.floor(float(images.shape[3]) * scale)
    return images.new_empty((images.shape[0], images.shape[1], height, width))
