"""Benchmark cases at Mask R-CNN R50-FPN shapes, shared by the ratio table (compare.py) and the
pytest-benchmark files. Each case builds a roiops callable and the torchvision callable it replaces,
on the same inputs, plus the bytes a perfect kernel must move (for the achieved-bandwidth column)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torchvision

import roiops

# An 800x1333 image padded to 800x1344; P2 is 1/4 of it (REFERENCE.md sections 6-7).
IMAGE_H, IMAGE_W = 800, 1344
CHANNELS = 256


@dataclass
class Prepared:
    ours: Callable[[], object]
    theirs: Callable[[], object]
    bytes_moved: int  # compulsory traffic of one call: inputs read once + outputs written once


@dataclass
class Case:
    name: str
    prepare: Callable[[torch.device, torch.dtype], Prepared]


def proposals(num: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """[K, 5] boxes like RPN proposals: log-uniform sizes 16..512 px, centres inside the image."""
    g = generator
    size = torch.exp(torch.empty(num, 2).uniform_(math.log(16), math.log(512), generator=g))
    cx = torch.rand(num, generator=g) * IMAGE_W
    cy = torch.rand(num, generator=g) * IMAGE_H
    x1 = (cx - size[:, 0] / 2).clamp(0, IMAGE_W)
    y1 = (cy - size[:, 1] / 2).clamp(0, IMAGE_H)
    x2 = (cx + size[:, 0] / 2).clamp(0, IMAGE_W)
    y2 = (cy + size[:, 1] / 2).clamp(0, IMAGE_H)
    index = torch.arange(num) * batch // num
    return torch.stack([index.float(), x1, y1, x2, y2], dim=1)


def touched_bytes(rois: torch.Tensor, scale: float, height: int, width: int, channels: int, itemsize: int) -> int:
    """Bytes of the feature map the RoIs sample from (each RoI's footprint + 1 pixel of bilinear
    support, capped at the whole map per image); overlapping RoIs are counted once per image."""
    total = 0
    for b in rois[:, 0].unique():
        r = rois[rois[:, 0] == b, 1:] * scale
        mask = torch.zeros(height, width, dtype=torch.bool)
        for x1, y1, x2, y2 in r.floor().long().tolist():
            mask[max(y1, 0) : min(y2 + 2, height), max(x1, 0) : min(x2 + 2, width)] = True
        total += int(mask.sum()) * channels * itemsize
    return total


def roi_align_case(num_rois: int, output: int, backward: bool) -> Callable[[torch.device, torch.dtype], Prepared]:
    def prepare(device: torch.device, dtype: torch.dtype) -> Prepared:
        g = torch.Generator().manual_seed(0)
        scale = 1 / 4
        h, w = IMAGE_H // 4, IMAGE_W // 4
        x = torch.randn(1, CHANNELS, h, w, generator=g).to(device, dtype)
        rois = proposals(num_rois, 1, g)
        itemsize = x.element_size()
        out_bytes = num_rois * CHANNELS * output * output * itemsize
        in_bytes = touched_bytes(rois, scale, h, w, CHANNELS, itemsize)
        rois = rois.to(device, dtype)
        if not backward:
            return Prepared(
                ours=lambda: roiops.roi_align(x, rois, output, scale, 2, False),
                theirs=lambda: torchvision.ops.roi_align(x, rois, output, scale, 2, False),
                bytes_moved=out_bytes + in_bytes,
            )
        grad = torch.randn(num_rois, CHANNELS, output, output, generator=g).to(device, dtype)
        xg = x.clone().requires_grad_()

        def run(fn):
            def step():
                xg.grad = None
                fn(xg, rois, output, scale, 2, False).backward(grad)
            return step

        # forward + backward: forward traffic, then grad read + touched gradient written (+ zero fill)
        full_map = x.numel() * itemsize
        return Prepared(
            ours=run(roiops.roi_align),
            theirs=run(torchvision.ops.roi_align),
            bytes_moved=2 * (out_bytes + in_bytes) + full_map,
        )

    return prepare


def multi_scale_case(rois_per_image: int, output: int, backward: bool) -> Callable[[torch.device, torch.dtype], Prepared]:
    """Mask R-CNN's box_roi_pool / mask_roi_pool: 2 images, P2-P5, MultiScaleRoIAlign, sampling 2."""

    def prepare(device: torch.device, dtype: torch.dtype) -> Prepared:
        g = torch.Generator().manual_seed(1)
        names = ["0", "1", "2", "3"]
        feats = {
            n: torch.randn(2, CHANNELS, IMAGE_H >> (2 + i), IMAGE_W >> (2 + i), generator=g).to(device, dtype)
            for i, n in enumerate(names)
        }
        rois = proposals(2 * rois_per_image, 2, g)
        boxes = [rois[rois[:, 0] == i, 1:].to(device, dtype) for i in range(2)]
        sizes = [(IMAGE_H, 1333), (IMAGE_H, 1333)]
        ours_m = roiops.MultiScaleRoIAlign(names, output, 2)
        theirs_m = torchvision.ops.MultiScaleRoIAlign(names, output, 2)
        itemsize = torch.tensor([], dtype=dtype).element_size()
        out_bytes = 2 * rois_per_image * CHANNELS * output * output * itemsize
        levels = roiops.assign_levels(rois, 2, 5)
        in_bytes = sum(
            touched_bytes(rois[levels == lv], 1 / 2 ** (2 + lv), f.shape[2], f.shape[3], CHANNELS, itemsize)
            for lv, f in enumerate(feats.values())
            if bool((levels == lv).any())
        )
        if not backward:
            return Prepared(
                ours=lambda: ours_m(feats, boxes, sizes),
                theirs=lambda: theirs_m(feats, boxes, sizes),
                bytes_moved=out_bytes + in_bytes,
            )
        leaves = {k: v.clone().requires_grad_() for k, v in feats.items()}
        grad = torch.randn(2 * rois_per_image, CHANNELS, output, output, generator=g).to(device, dtype)
        full_maps = sum(f.numel() for f in feats.values()) * itemsize

        def run(module):
            def step():
                for v in leaves.values():
                    v.grad = None
                module(leaves, boxes, sizes).backward(grad)
            return step

        return Prepared(ours=run(ours_m), theirs=run(theirs_m), bytes_moved=2 * (out_bytes + in_bytes) + full_maps)

    return prepare


CASES = [
    Case("roi_align fwd, box head (1000 RoIs, 7x7, P2)", roi_align_case(1000, 7, backward=False)),
    Case("roi_align fwd, mask head (100 RoIs, 14x14, P2)", roi_align_case(100, 14, backward=False)),
    Case("roi_align fwd+bwd, box head (1000 RoIs, 7x7, P2)", roi_align_case(1000, 7, backward=True)),
    Case("roi_align fwd+bwd, mask head (100 RoIs, 14x14, P2)", roi_align_case(100, 14, backward=True)),
    Case("MultiScaleRoIAlign fwd, box head (2x1000, 7x7, P2-P5)", multi_scale_case(1000, 7, backward=False)),
    Case("MultiScaleRoIAlign fwd, mask head (2x100, 14x14)", multi_scale_case(100, 14, backward=False)),
    Case("MultiScaleRoIAlign fwd+bwd, box head (2x1000, 7x7)", multi_scale_case(1000, 7, backward=True)),
    Case("MultiScaleRoIAlign fwd+bwd, mask head (2x100, 14x14)", multi_scale_case(100, 14, backward=True)),
]
