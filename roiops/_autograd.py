"""Autograd for the roiops ops, registered on the torch.ops.roiops.* schemas.

RoIAlign is linear in its input: out = A(rois) @ input. Its backward is A^T @ grad (our backward op),
and the backward of that, with respect to grad, is A again -- the forward op. So double backward is
exact and cheap, where torchvision raises. Boxes get no gradient (as in torchvision).
"""

from __future__ import annotations

import torch

_ops = torch.ops.roiops


# roi_align ------------------------------------------------------------------------------------------
def _roi_align_setup(ctx, inputs, output):
    input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois)
    ctx.input_shape = tuple(input.shape)
    ctx.params = (spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned)


def _roi_align_grad(ctx, grad):
    (rois,) = ctx.saved_tensors
    spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned = ctx.params
    n, c, h, w = ctx.input_shape
    grad_input = None
    if ctx.needs_input_grad[0]:
        grad_input = _ops._roi_align_backward(
            grad, rois, spatial_scale, pooled_h, pooled_w, n, c, h, w, sampling_ratio, aligned
        )
    return grad_input, None, None, None, None, None, None


def _roi_align_backward_setup(ctx, inputs, output):
    grad, rois, spatial_scale, pooled_h, pooled_w, _n, _c, _h, _w, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois)
    ctx.params = (spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned)


def _roi_align_backward_grad(ctx, grad_grad_input):
    (rois,) = ctx.saved_tensors
    grad_grad = None
    if ctx.needs_input_grad[0]:
        grad_grad = _ops.roi_align(grad_grad_input, rois, *ctx.params)
    return (grad_grad,) + (None,) * 10


torch.library.register_autograd("roiops::roi_align", _roi_align_grad, setup_context=_roi_align_setup)
torch.library.register_autograd(
    "roiops::_roi_align_backward", _roi_align_backward_grad, setup_context=_roi_align_backward_setup
)


# multi_scale_roi_align ------------------------------------------------------------------------------
def _multi_scale_setup(ctx, inputs, output):
    features, rois, levels, spatial_scales, pooled_h, pooled_w, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois, levels)
    ctx.shape = (features[0].size(0), features[0].size(1), [f.size(2) for f in features], [f.size(3) for f in features])
    ctx.params = (spatial_scales, pooled_h, pooled_w, sampling_ratio, aligned)


def _multi_scale_grad(ctx, grad):
    rois, levels = ctx.saved_tensors
    spatial_scales, pooled_h, pooled_w, sampling_ratio, aligned = ctx.params
    n, c, heights, widths = ctx.shape
    grads = None
    if ctx.needs_input_grad[0]:
        grads = _ops._multi_scale_roi_align_backward(
            grad, rois, levels, spatial_scales, pooled_h, pooled_w, n, c, heights, widths, sampling_ratio, aligned
        )
    return grads, None, None, None, None, None, None, None


def _multi_scale_backward_setup(ctx, inputs, output):
    grad, rois, levels, spatial_scales, pooled_h, pooled_w, n, c, heights, widths, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois, levels)
    ctx.shape = (n, c, heights, widths)
    ctx.params = (spatial_scales, pooled_h, pooled_w, sampling_ratio, aligned)


def _multi_scale_backward_grad(ctx, grad_grads):
    rois, levels = ctx.saved_tensors
    n, c, heights, widths = ctx.shape
    grad_grad = None
    if ctx.needs_input_grad[0]:
        ref = next(g for g in grad_grads if g is not None)
        feats = [
            g if g is not None else ref.new_zeros((n, c, h, w)) for g, h, w in zip(grad_grads, heights, widths)
        ]
        grad_grad = _ops.multi_scale_roi_align(feats, rois, levels, *ctx.params)
    return (grad_grad,) + (None,) * 11


torch.library.register_autograd(
    "roiops::multi_scale_roi_align", _multi_scale_grad, setup_context=_multi_scale_setup
)
torch.library.register_autograd(
    "roiops::_multi_scale_roi_align_backward", _multi_scale_backward_grad, setup_context=_multi_scale_backward_setup
)
