"""Mask pasting with torchvision's paste_masks_in_image signature and results, in one op."""

from __future__ import annotations

import torch
from torch import Tensor

from .._onnx import cast, constant, dtype_of, lowering, op
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


# --- ONNX -------------------------------------------------------------------------------------
# The kernel's evaluation (csrc/common/paste_math.h) in fixed shapes: for every mask the grown,
# truncated box and its window in the image; per image column and row the bilinear taps into the
# padded mask. The resize is separable, so each pass is a matrix product with a sparse matrix of
# tap weights -- two non-zeros per image pixel, none outside the window: rows = padded @ Wx
# ([N, Ph, Pw] @ [N, Pw, W]), then pasted = Wy @ rows ([N, H, Ph] @ [N, Ph, W]). The products
# and sums are the kernel's (a zero weight adds an exact zero), and no [N, H, W]-sized gathers or
# masks are made: on an 800x1067 image with 100 detections, gathering rows and zeroing outside the
# windows took ~190 ms of OpenVINO's 640 ms in bf16 (benchmarks/results/cpu-openvino-2026-12-07).
# A non-finite mask value, which the kernel confines to its window, spreads along its row and
# column here (0 * inf is NaN); mask probabilities are finite.

_TRUNCATION_LIMIT = float(2**60)  # as paste_math.h's truncate(): NaN and huge values clamped


def _truncate(value, dtype):
    """float -> int64 rounding toward zero, as torch's .to(torch.int64)."""
    low, high = constant(-_TRUNCATION_LIMIT, dtype), constant(_TRUNCATION_LIMIT, dtype)
    clamped = op.Where(op.IsNaN(value), low, op.Clip(value, low, high))
    return cast(clamped, torch.int64)


def _window(box_first, box_last, image_size):
    """One axis of paste_window: the resized mask's size and the image pixels [begin, end)."""
    one = constant(1, torch.int64)
    resized = op.Max(op.Add(op.Sub(box_last, box_first), one), one)
    begin = op.Max(box_first, constant(0, torch.int64))
    end = op.Min(
        op.Min(op.Add(box_last, one), constant(image_size, torch.int64)), op.Add(box_first, resized)
    )
    return resized, begin, end


def _taps(box_first, resized, padded, image_size, compute):
    """Per mask and image pixel along one axis [N, image_size]: the padded mask pixels read
    (low, high) and the weight of high, as resize_tap (ATen's upsample_bilinear2d)."""
    pixel = op.Unsqueeze(op.Range(0, image_size, 1), [0])  # [1, S]
    local = cast(op.Sub(pixel, box_first), compute)  # box_first [N, 1]
    ratio = op.Div(cast(padded, compute), cast(resized, compute))
    half = constant(0.5, compute)
    source = op.Max(op.Sub(op.Mul(ratio, op.Add(local, half)), half), constant(0.0, compute))
    low = cast(source, torch.int64)
    frac = op.Sub(source, cast(low, compute))
    last = op.Sub(padded, constant(1, torch.int64))
    low_read = op.Min(low, last)  # beyond the window only: those pixels are zeroed
    return low_read, op.Min(op.Add(low_read, constant(1, torch.int64)), last), frac


def _tap_weights(low, high, frac, inside, padded, compute):
    """[N, S] taps (low, high, frac) and window [N, S] -> the pass's weights [N, P, S]: column s
    holds 1 - frac at row low and frac at row high (their sum where they coincide), zero outside
    the window."""
    position = op.Unsqueeze(op.Range(0, op.Squeeze(padded, [0]), 1), [0, 2])  # [1, P, 1]
    frac = op.Unsqueeze(op.Where(inside, frac, constant(0.0, compute)), [1])  # [N, 1, S]
    keep = op.Unsqueeze(cast(inside, compute), [1])
    at_low = cast(op.Equal(op.Unsqueeze(low, [1]), position), compute)
    at_high = cast(op.Equal(op.Unsqueeze(high, [1]), position), compute)
    return op.Add(op.Mul(at_low, op.Sub(keep, frac)), op.Mul(at_high, frac))


@lowering("paste_masks_in_image")
def _paste_masks_in_image_onnx(masks, boxes, image_height, image_width, padding):
    mask_dtype = dtype_of(masks)
    compute = torch.float64 if mask_dtype == torch.float64 else torch.float32
    box_dtype = torch.float64 if dtype_of(boxes) == torch.float64 else torch.float32
    # The padded masks [N, Ph, Pw] and the ratio by which their boxes grow.
    padded = op.Squeeze(
        op.Pad(cast(masks, compute), [0, 0, padding, padding, 0, 0, padding, padding]), [1]
    )
    mask_width = cast(op.Shape(masks, start=3, end=4), torch.float64)
    scale = op.Div(op.Add(mask_width, constant(2.0 * padding, torch.float64)), mask_width)
    scale = cast(scale, box_dtype)
    x1, y1, x2, y2 = (cast(op.Slice(boxes, [i], [i + 1], [1]), box_dtype) for i in range(4))
    half = constant(0.5, box_dtype)
    half_w = op.Mul(op.Mul(op.Sub(x2, x1), half), scale)
    half_h = op.Mul(op.Mul(op.Sub(y2, y1), half), scale)
    centre_x, centre_y = op.Mul(op.Add(x2, x1), half), op.Mul(op.Add(y2, y1), half)
    box_x1, box_x2 = (
        _truncate(op.Sub(centre_x, half_w), box_dtype),
        _truncate(op.Add(centre_x, half_w), box_dtype),
    )
    box_y1, box_y2 = (
        _truncate(op.Sub(centre_y, half_h), box_dtype),
        _truncate(op.Add(centre_y, half_h), box_dtype),
    )
    width, x0, x_end = _window(box_x1, box_x2, image_width)
    height, y0, y_end = _window(box_y1, box_y2, image_height)
    padded_h = op.Shape(padded, start=1, end=2)
    padded_w = op.Shape(padded, start=2, end=3)
    column = op.Unsqueeze(op.Range(0, image_width, 1), [0])  # [1, W]
    row = op.Unsqueeze(op.Range(0, image_height, 1), [0])  # [1, H]
    inside_x = op.And(op.GreaterOrEqual(column, x0), op.Less(column, x_end))  # [N, W]
    inside_y = op.And(op.GreaterOrEqual(row, y0), op.Less(row, y_end))  # [N, H]
    # x pass: every padded row resized along x at every image column -> [N, Ph, W].
    left, right, fx = _taps(box_x1, width, padded_w, image_width, compute)
    rows = op.MatMul(padded, _tap_weights(left, right, fx, inside_x, padded_w, compute))
    # y pass: every image row from two of those rows -> [N, H, W].
    upper, lower, fy = _taps(box_y1, height, padded_h, image_height, compute)
    by_row = op.Transpose(
        _tap_weights(upper, lower, fy, inside_y, padded_h, compute), perm=[0, 2, 1]
    )
    pasted = op.MatMul(by_row, rows)
    return op.Unsqueeze(cast(pasted, mask_dtype), [1])
