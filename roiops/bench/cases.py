"""Benchmark cases at Mask R-CNN R50-FPN shapes, shared by `python -m roiops bench` and the
pytest-benchmark file (benchmarks/). Each case builds a roiops callable and the torchvision callable
it replaces, on the same inputs, plus the bytes a perfect kernel must move (for the
achieved-bandwidth column)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision

import roiops

from .model_cases import (
    STAGES,
    aoti_package_model,
    onnx_runtime_model,
    stage,
    static_model,
    whole_model,
)
from .timing import Prepared

# Mask R-CNN R50-FPN at its default size: an 800x1333 image, padded to a multiple of 32 (800x1344);
# the P2 map is 1/4 of it, 256 channels.
IMAGE_H, IMAGE_W = 800, 1344
CHANNELS = 256


@dataclass
class Case:
    name: str
    prepare: Callable[[torch.device, torch.dtype], Prepared]
    devices: tuple[str, ...] = ("cpu", "cuda")  # device types the case means something on
    dtypes: tuple[str, ...] | None = None  # the table dtypes it runs in (None: all)
    # device types on which the case runs only with `bench --all`: slow to set up or to time there
    extended_on: tuple[str, ...] = ()


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


def touched_bytes(
    rois: torch.Tensor, scale: float, height: int, width: int, channels: int, itemsize: int
) -> int:
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


def roi_align_case(
    num_rois: int, output: int, backward: bool, rois_dtype: torch.dtype | None = None
) -> Callable[[torch.device, torch.dtype], Prepared]:
    """RoIAlign on P2 of one image; the RoIs in the features' dtype unless rois_dtype is given."""

    def prepare(device: torch.device, dtype: torch.dtype) -> Prepared:
        g = torch.Generator().manual_seed(0)
        scale = 1 / 4
        h, w = IMAGE_H // 4, IMAGE_W // 4
        x = torch.randn(1, CHANNELS, h, w, generator=g).to(device, dtype)
        rois = proposals(num_rois, 1, g)
        itemsize = x.element_size()
        out_bytes = num_rois * CHANNELS * output * output * itemsize
        in_bytes = touched_bytes(rois, scale, h, w, CHANNELS, itemsize)
        rois = rois.to(device, rois_dtype or dtype)
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

        # forward + backward: forward traffic, then grad read + touched gradient written (+ zero
        # fill)
        full_map = x.numel() * itemsize
        return Prepared(
            ours=run(roiops.roi_align),
            theirs=run(torchvision.ops.roi_align),
            bytes_moved=2 * (out_bytes + in_bytes) + full_map,
        )

    return prepare


def within(
    context: Callable[[torch.device], contextlib.AbstractContextManager],
    prepare: Callable[[torch.device, torch.dtype], Prepared],
    dtype: torch.dtype | None = None,
) -> Callable[[torch.device, torch.dtype], Prepared]:
    """The case with both sides run inside context(device), and its inputs in `dtype` if given."""

    def wrapped(device: torch.device, table_dtype: torch.dtype) -> Prepared:
        p = prepare(device, dtype or table_dtype)

        def inside(fn: Callable[[], object]) -> Callable[[], object]:
            def step():
                with context(device):
                    return fn()

            return step

        return Prepared(inside(p.ours), inside(p.theirs), p.bytes_moved)

    return wrapped


@contextlib.contextmanager
def deterministic_mode(device: torch.device):
    """torch.use_deterministic_algorithms(True). On CUDA that is roiops' sorted gather backward
    against torchvision's deterministic fallback (its RoIAlign in plain PyTorch ops)."""
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)


def autocast_bf16(device: torch.device) -> contextlib.AbstractContextManager:
    """torch.autocast(bfloat16): torchvision casts the features to float32 and back; roiops' bf16
    kernels accumulate in float32 without the copy."""
    return torch.autocast(device.type, dtype=torch.bfloat16)


def multi_scale_case(
    rois_per_image: int, output: int, backward: bool
) -> Callable[[torch.device, torch.dtype], Prepared]:
    """Mask R-CNN's box_roi_pool / mask_roi_pool: 2 images, P2-P5, sampling ratio 2."""

    def prepare(device: torch.device, dtype: torch.dtype) -> Prepared:
        g = torch.Generator().manual_seed(1)
        names = ["0", "1", "2", "3"]
        feats = {
            n: torch.randn(2, CHANNELS, IMAGE_H >> (2 + i), IMAGE_W >> (2 + i), generator=g).to(
                device, dtype
            )
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
            touched_bytes(
                rois[levels == lv], 1 / 2 ** (2 + lv), f.shape[2], f.shape[3], CHANNELS, itemsize
            )
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
        grad = torch.randn(2 * rois_per_image, CHANNELS, output, output, generator=g).to(
            device, dtype
        )
        full_maps = sum(f.numel() for f in feats.values()) * itemsize

        def run(module):
            def step():
                for v in leaves.values():
                    v.grad = None
                module(leaves, boxes, sizes).backward(grad)

            return step

        return Prepared(
            ours=run(ours_m),
            theirs=run(theirs_m),
            bytes_moved=2 * (out_bytes + in_bytes) + full_maps,
        )

    return prepare


def clustered_proposals(num: int, generator: torch.Generator) -> torch.Tensor:
    """[num, 4] boxes in groups around objects, like detector outputs before NMS."""
    g = generator
    objects = proposals(max(num // 25, 1), 1, g)[:, 1:]
    pick = torch.randint(0, objects.size(0), (num,), generator=g)
    size = (objects[pick, 2:] - objects[pick, :2]).clamp(min=8)
    jitter = torch.randn(num, 4, generator=g) * size.repeat(1, 2) * 0.08
    return objects[pick] + jitter


def rpn_nms_case(device: torch.device, dtype: torch.dtype) -> Prepared:
    """RPN proposal filtering: 2 images, top-1000 of P2-P5 + 819 of P6 per image, NMS 0.7, keep
    1000."""
    g = torch.Generator().manual_seed(2)
    per_level = [1000, 1000, 1000, 1000, 819]
    n = sum(per_level)
    boxes = torch.stack([clustered_proposals(n, g) for _ in range(2)]).to(device, dtype)
    scores = torch.rand(2, n, generator=g).to(device, dtype)
    levels = (
        torch.cat([torch.full((c,), i) for i, c in enumerate(per_level)])
        .expand(2, n)
        .contiguous()
        .to(device)
    )

    def theirs():
        return [
            torchvision.ops.batched_nms(boxes[i], scores[i], levels[i], 0.7)[:1000]
            for i in range(2)
        ]

    return Prepared(
        ours=lambda: roiops.batched_nms_padded(boxes, scores, levels, 0.7, 1000),
        theirs=theirs,
        bytes_moved=boxes.numel() * boxes.element_size() + scores.numel() * scores.element_size(),
    )


def detection_nms_case(device: torch.device, dtype: torch.dtype) -> Prepared:
    """Box-head post-processing: 1000 proposals x 90 classes, scores > 0.05, per-class NMS 0.5."""
    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(torch.randn(1000, 91, generator=g) * 3, dim=1)[:, 1:]
    base = clustered_proposals(1000, g)
    boxes = base[:, None, :] + torch.randn(1000, 90, 4, generator=g) * 4
    labels = torch.arange(90).expand(1000, 90)
    keep = probs > 0.05
    boxes, scores, labels = (
        boxes[keep].to(device, dtype),
        probs[keep].to(device, dtype),
        labels[keep].to(device),
    )
    return Prepared(
        ours=lambda: roiops.batched_nms(boxes, scores, labels, 0.5)[:100],
        theirs=lambda: torchvision.ops.batched_nms(boxes, scores, labels, 0.5)[:100],
        bytes_moved=boxes.numel() * boxes.element_size() + scores.numel() * scores.element_size(),
    )


def decode_case(device: torch.device, dtype: torch.dtype) -> Prepared:
    """RPN decode of all 268 569 anchors of an 800x1344 image (P2-P6, 3 anchors per cell)."""
    from torchvision.models.detection._utils import BoxCoder

    g = torch.Generator().manual_seed(4)
    n = 268569
    # contiguous, as the RPN's concatenated anchors are (a strided view would time a copy)
    anchors = proposals(n, 1, g)[:, 1:].contiguous().to(device, dtype)
    codes = (torch.randn(n, 4, generator=g) * 0.5).to(device, dtype)
    tv_coder, our_coder = BoxCoder((1.0, 1.0, 1.0, 1.0)), roiops.BoxCoder((1.0, 1.0, 1.0, 1.0))
    return Prepared(
        ours=lambda: our_coder.decode_single(codes, anchors),
        theirs=lambda: tv_coder.decode_single(codes, anchors),
        bytes_moved=3 * n * 4 * anchors.element_size(),  # read codes and anchors, write boxes
    )


CASES = [
    Case("roi_align fwd, box head (1000 RoIs, 7x7, P2)", roi_align_case(1000, 7, backward=False)),
    Case("roi_align fwd, mask head (100 RoIs, 14x14, P2)", roi_align_case(100, 14, backward=False)),
    Case(
        "roi_align fwd+bwd, box head (1000 RoIs, 7x7, P2)", roi_align_case(1000, 7, backward=True)
    ),
    Case(
        "roi_align fwd+bwd, mask head (100 RoIs, 14x14, P2)", roi_align_case(100, 14, backward=True)
    ),
    # On the CPU both sides are deterministic anyway: this is the default case again. Behind --all:
    # torchvision first compiles its deterministic RoIAlign, and the case took 76 s on the H200.
    Case(
        "roi_align fwd+bwd, box head, deterministic mode",
        within(deterministic_mode, roi_align_case(1000, 7, True)),
        ("cuda",),
        extended_on=("cuda",),
    ),
    Case(
        "roi_align fwd+bwd, box head, autocast bf16 (bf16 maps)",
        within(autocast_bf16, roi_align_case(1000, 7, True, torch.float32), torch.bfloat16),
    ),
    Case(
        "MultiScaleRoIAlign fwd, box head (2x1000, 7x7, P2-P5)",
        multi_scale_case(1000, 7, backward=False),
    ),
    Case(
        "MultiScaleRoIAlign fwd, mask head (2x100, 14x14)",
        multi_scale_case(100, 14, backward=False),
    ),
    Case(
        "MultiScaleRoIAlign fwd+bwd, box head (2x1000, 7x7)",
        multi_scale_case(1000, 7, backward=True),
    ),
    Case(
        "MultiScaleRoIAlign fwd+bwd, mask head (2x100, 14x14)",
        multi_scale_case(100, 14, backward=True),
    ),
    Case("RPN batched NMS (2 images x 4819 boxes, 5 levels, keep 1000)", rpn_nms_case),
    Case("detection batched NMS (1000 x 90 classes, score > 0.05)", detection_nms_case),
    Case("decode 268569 anchors (RPN, 1 image)", decode_case),
]

# The whole Mask R-CNN, roiops' model against torchvision's (model_cases.py); float32 weights only.
# On a CPU one image is the default (4 s a call on 2 cores); two images, the static model and the
# per-stage rows (~20 minutes in all there) come with --all. On a GPU they take seconds.
CASES += [
    Case(
        f"Mask R-CNN inference, {n} image{'s' * (n > 1)} (800x1067{', 800x1200' * (n > 1)})",
        whole_model(n),
        dtypes=("float32",),
        extended_on=("cpu",) if n > 1 else (),
    )
    for n in (1, 2)
]
CASES += [
    Case(
        f"StaticMaskRCNN {mode}, {n} image{'s' * (n > 1)} (800x1067)",
        static_model(n, mode),
        devices=("cpu",),  # on CUDA the compiled model wants CUDA graphs: scripts/gpu_check.sh
        dtypes=("float32",),
        extended_on=("cpu",),
    )
    for mode, counts in [("eager", (1, 2)), ("compiled", (1, 2)), ("compiled-fast", (2,))]
    for n in counts
]
# The same static model deployed: compiled ahead of time into an AOTInductor package (--all: its
# compilation takes minutes on a CPU), and exported to ONNX and run by ONNX Runtime (CPU), where a
# CPU deployment stands against roiops and torchvision (one image by default; two with --all).
CASES += [
    Case(
        "StaticMaskRCNN AOTInductor package, 1 image (800x1067)",
        aoti_package_model(1),
        devices=("cpu",),
        dtypes=("float32",),
        extended_on=("cpu",),
    )
]
CASES += [
    Case(
        f"StaticMaskRCNN in ONNX Runtime, {n} image{'s' * (n > 1)} (800x1067)",
        onnx_runtime_model(n),
        devices=("cpu",),
        dtypes=("float32",),
        extended_on=("cpu",) if n > 1 else (),
    )
    for n in (1, 2)
]
CASES += [
    Case(
        f"Mask R-CNN stage: {name} (2 images)",
        stage(name),
        dtypes=("float32",),
        extended_on=("cpu",),
    )
    for name in STAGES
]
