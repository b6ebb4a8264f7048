"""Autograd for the roiops ops, registered on the torch.ops.roiops.* schemas.

RoIAlign is linear in its input: out = A(rois) @ input. Its backward is A^T @ grad (our backward
op), and the backward of that, with respect to grad, is A again -- the forward op. So double
backward is exact and cheap, where torchvision raises. Boxes get no gradient (as in torchvision).

Each setup stores the arguments the other direction needs: the forward keeps the backward op's
non-tensor arguments, the backward keeps the forward op's.
"""

from __future__ import annotations

import torch

_ops = torch.ops.roiops


# roi_align ---------------------------------------------------------------------------------------
def _roi_align_setup(ctx, inputs, output):
    input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois)
    n, c, h, w = input.shape
    ctx.backward_args = (spatial_scale, pooled_h, pooled_w, n, c, h, w, sampling_ratio, aligned)


def _roi_align_grad(ctx, grad):
    (rois,) = ctx.saved_tensors
    grad_input = None
    if ctx.needs_input_grad[0]:
        grad_input = _ops._roi_align_backward(grad, rois, *ctx.backward_args)
    return (grad_input,) + (None,) * 6


def _roi_align_backward_setup(ctx, inputs, output):
    _grad, rois, spatial_scale, pooled_h, pooled_w, _n, _c, _h, _w, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois)
    ctx.forward_args = (spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned)


def _roi_align_backward_grad(ctx, grad_grad_input):
    (rois,) = ctx.saved_tensors
    grad_grad = None
    if ctx.needs_input_grad[0]:
        grad_grad = _ops.roi_align(grad_grad_input, rois, *ctx.forward_args)
    return (grad_grad,) + (None,) * 10


torch.library.register_autograd(
    "roiops::roi_align", _roi_align_grad, setup_context=_roi_align_setup
)
torch.library.register_autograd(
    "roiops::_roi_align_backward", _roi_align_backward_grad, setup_context=_roi_align_backward_setup
)


# multi_scale_roi_align ---------------------------------------------------------------------------
def _multi_scale_setup(ctx, inputs, output):
    features, rois, levels, spatial_scales, pooled_h, pooled_w, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois, levels)
    n, c = features[0].shape[:2]
    heights = [f.size(2) for f in features]
    widths = [f.size(3) for f in features]
    ctx.backward_args = (spatial_scales, pooled_h, pooled_w, n, c, heights, widths)
    ctx.backward_args += (sampling_ratio, aligned)


def _multi_scale_grad(ctx, grad):
    rois, levels = ctx.saved_tensors
    grads = None
    if ctx.needs_input_grad[0]:
        grads = _ops._multi_scale_roi_align_backward(grad, rois, levels, *ctx.backward_args)
    return (grads,) + (None,) * 7


def _multi_scale_backward_setup(ctx, inputs, output):
    _grad, rois, levels, spatial_scales, pooled_h, pooled_w, n, c, heights, widths, *rest = inputs
    ctx.save_for_backward(rois, levels)
    ctx.shapes = [(n, c, h, w) for h, w in zip(heights, widths)]
    ctx.forward_args = (spatial_scales, pooled_h, pooled_w, *rest)  # rest: sampling_ratio, aligned


def _multi_scale_backward_grad(ctx, grad_grads):
    rois, levels = ctx.saved_tensors
    grad_grad = None
    if ctx.needs_input_grad[0]:
        ref = next(g for g in grad_grads if g is not None)
        maps = [g if g is not None else ref.new_zeros(s) for g, s in zip(grad_grads, ctx.shapes)]
        grad_grad = _ops.multi_scale_roi_align(maps, rois, levels, *ctx.forward_args)
    return (grad_grad,) + (None,) * 11


torch.library.register_autograd(
    "roiops::multi_scale_roi_align", _multi_scale_grad, setup_context=_multi_scale_setup
)
torch.library.register_autograd(
    "roiops::_multi_scale_roi_align_backward",
    _multi_scale_backward_grad,
    setup_context=_multi_scale_backward_setup,
)
