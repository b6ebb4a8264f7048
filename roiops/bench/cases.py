"""Benchmark cases at Mask R-CNN R50-FPN shapes, shared by `python -m roiops bench` and the
pytest-benchmark file (benchmarks/). Each case builds a roiops callable and the torchvision callable
it replaces, on the same inputs, plus the bytes a perfect kernel must move (for the
achieved-bandwidth column)."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision

import roiops

from .model_cases import STAGES, autocast_model, deployed_model, stage, static_model, whole_model
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
    device: torch.device,
    dtype: torch.dtype,
    *,
    num_rois: int,
    output: int,
    backward: bool,
    rois_dtype: torch.dtype | None = None,
) -> Prepared:
    """RoIAlign on P2 of one image; the RoIs in the features' dtype unless rois_dtype is given."""
    g = torch.Generator().manual_seed(0)
    scale = 1 / 4
    h, w = IMAGE_H // 4, IMAGE_W // 4
    x = torch.randn(1, CHANNELS, h, w, generator=g).to(device, dtype)
    rois = proposals(num_rois, 1, g)
    itemsize = x.element_size()
    out_bytes = num_rois * CHANNELS * output * output * itemsize
    in_bytes = touched_bytes(rois, scale, h, w, CHANNELS, itemsize)
    rois = rois.to(device, rois_dtype or dtype)
    taps = bilinear_taps(num_rois, output)
    if not backward:
        return Prepared(
            ours=functools.partial(roiops.roi_align, x, rois, output, scale, 2, False),
            theirs=functools.partial(torchvision.ops.roi_align, x, rois, output, scale, 2, False),
            bytes_moved=out_bytes + in_bytes,
            taps=taps,
        )
    grad = torch.randn(num_rois, CHANNELS, output, output, generator=g).to(device, dtype)
    x = x.clone().requires_grad_()
    step = functools.partial(_roi_align_backward, x=x, rois=rois, output=output, scale=scale)
    # forward + backward: forward traffic, then grad read + touched gradient written (+ zero fill)
    return Prepared(
        ours=functools.partial(step, roiops.roi_align, grad=grad),
        theirs=functools.partial(step, torchvision.ops.roi_align, grad=grad),
        bytes_moved=2 * (out_bytes + in_bytes) + x.numel() * itemsize,
        taps=2 * taps,  # the forward's reads, the backward's scattered adds
    )


def bilinear_taps(num_rois: int, output: int, sampling_ratio: int = 2) -> int:
    """Corner reads (forward) or adds (backward) of RoIAlign: 4 per sample, sampling_ratio^2
    samples per bin, for every channel -- out-of-map samples counted as taps too."""
    return num_rois * CHANNELS * output * output * sampling_ratio**2 * 4


def _roi_align_backward(roi_align, x, rois, output, scale, grad) -> None:
    x.grad = None
    roi_align(x, rois, output, scale, 2, False).backward(grad)


def within(
    device: torch.device,
    dtype: torch.dtype,
    *,
    context: Callable[[torch.device], contextlib.AbstractContextManager],
    case: Callable[..., Prepared],
    inputs_dtype: torch.dtype | None = None,
) -> Prepared:
    """`case` with both sides run inside context(device), its inputs in inputs_dtype if given."""
    prepared = case(device, inputs_dtype or dtype)
    return Prepared(
        functools.partial(_inside, context, device, prepared.ours),
        functools.partial(_inside, context, device, prepared.theirs),
        prepared.bytes_moved,
        prepared.notes,
        prepared.taps,
    )


def _inside(context, device: torch.device, function: Callable[[], object]) -> object:
    with context(device):
        return function()


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
    device: torch.device, dtype: torch.dtype, *, rois_per_image: int, output: int, backward: bool
) -> Prepared:
    """Mask R-CNN's box_roi_pool / mask_roi_pool: 2 images, P2-P5, sampling ratio 2."""
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
    ours = roiops.MultiScaleRoIAlign(names, output, 2)
    theirs = torchvision.ops.MultiScaleRoIAlign(names, output, 2)
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
    taps = bilinear_taps(2 * rois_per_image, output)
    if not backward:
        return Prepared(
            ours=functools.partial(ours, feats, boxes, sizes),
            theirs=functools.partial(theirs, feats, boxes, sizes),
            bytes_moved=out_bytes + in_bytes,
            taps=taps,
        )
    leaves = {k: v.clone().requires_grad_() for k, v in feats.items()}
    grad = torch.randn(2 * rois_per_image, CHANNELS, output, output, generator=g).to(device, dtype)
    full_maps = sum(f.numel() for f in feats.values()) * itemsize
    step = functools.partial(_pooler_backward, leaves=leaves, boxes=boxes, sizes=sizes, grad=grad)
    return Prepared(
        ours=functools.partial(step, ours),
        theirs=functools.partial(step, theirs),
        bytes_moved=2 * (out_bytes + in_bytes) + full_maps,
        taps=2 * taps,
    )


def _pooler_backward(pooler, leaves, boxes, sizes, grad) -> None:
    for v in leaves.values():
        v.grad = None
    pooler(leaves, boxes, sizes).backward(grad)


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

    return Prepared(
        ours=functools.partial(roiops.batched_nms_padded, boxes, scores, levels, 0.7, 1000),
        theirs=functools.partial(_torchvision_rpn_nms, boxes, scores, levels),
        bytes_moved=boxes.numel() * boxes.element_size() + scores.numel() * scores.element_size(),
    )


def _torchvision_rpn_nms(boxes, scores, levels) -> list[torch.Tensor]:
    """torchvision's RPN: batched NMS per image, the best 1000."""
    return [
        torchvision.ops.batched_nms(boxes[i], scores[i], levels[i], 0.7)[:1000]
        for i in range(boxes.shape[0])
    ]


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


roi_align_fwd = functools.partial(roi_align_case, backward=False)
roi_align_bwd = functools.partial(roi_align_case, backward=True)
pooler_fwd = functools.partial(multi_scale_case, backward=False)
pooler_bwd = functools.partial(multi_scale_case, backward=True)
CASES = [
    Case(
        "roi_align fwd, box head (1000 RoIs, 7x7, P2)",
        functools.partial(roi_align_fwd, num_rois=1000, output=7),
    ),
    Case(
        "roi_align fwd, mask head (100 RoIs, 14x14, P2)",
        functools.partial(roi_align_fwd, num_rois=100, output=14),
    ),
    Case(
        "roi_align fwd+bwd, box head (1000 RoIs, 7x7, P2)",
        functools.partial(roi_align_bwd, num_rois=1000, output=7),
    ),
    Case(
        "roi_align fwd+bwd, mask head (100 RoIs, 14x14, P2)",
        functools.partial(roi_align_bwd, num_rois=100, output=14),
    ),
    # On the CPU both sides are deterministic anyway: this is the default case again. Behind --all:
    # torchvision first compiles its deterministic RoIAlign, and the case took 76 s on the H200.
    Case(
        "roi_align fwd+bwd, box head, deterministic mode",
        functools.partial(
            within,
            context=deterministic_mode,
            case=functools.partial(roi_align_bwd, num_rois=1000, output=7),
        ),
        ("cuda",),
        extended_on=("cuda",),
    ),
    Case(
        "roi_align fwd+bwd, box head, autocast bf16 (bf16 maps)",
        functools.partial(
            within,
            context=autocast_bf16,
            case=functools.partial(
                roi_align_bwd, num_rois=1000, output=7, rois_dtype=torch.float32
            ),
            inputs_dtype=torch.bfloat16,
        ),
    ),
    Case(
        "MultiScaleRoIAlign fwd, box head (2x1000, 7x7, P2-P5)",
        functools.partial(pooler_fwd, rois_per_image=1000, output=7),
    ),
    Case(
        "MultiScaleRoIAlign fwd, mask head (2x100, 14x14)",
        functools.partial(pooler_fwd, rois_per_image=100, output=14),
    ),
    Case(
        "MultiScaleRoIAlign fwd+bwd, box head (2x1000, 7x7)",
        functools.partial(pooler_bwd, rois_per_image=1000, output=7),
    ),
    Case(
        "MultiScaleRoIAlign fwd+bwd, mask head (2x100, 14x14)",
        functools.partial(pooler_bwd, rois_per_image=100, output=14),
    ),
    Case("RPN batched NMS (2 images x 4819 boxes, 5 levels, keep 1000)", rpn_nms_case),
    Case("detection batched NMS (1000 x 90 classes, score > 0.05)", detection_nms_case),
    Case("decode 268569 anchors (RPN, 1 image)", decode_case),
]

# The whole Mask R-CNN, roiops' model against torchvision's (model_cases.py); float32 weights only.
# On a CPU one image is the default (4 s a call on 2 cores); the slower rows (~20 minutes in all
# there) come with --all. On a GPU they take seconds.
CPU_ONLY, SLOW_ON_CPU, FLOAT32 = ("cpu",), ("cpu",), ("float32",)
CASES += [
    Case(
        "Mask R-CNN inference, 1 image (800x1067)",
        functools.partial(whole_model, count=1),
        dtypes=FLOAT32,
    ),
    Case(
        "Mask R-CNN inference, 2 images (800x1067, 800x1200)",
        functools.partial(whole_model, count=2),
        dtypes=FLOAT32,
        extended_on=SLOW_ON_CPU,
    ),
]
# The static model: on CUDA the compiled model wants CUDA graphs (scripts/gpu_check.sh).
CASES += [
    Case(
        name,
        functools.partial(static_model, count=count, mode=mode),
        CPU_ONLY,
        FLOAT32,
        SLOW_ON_CPU,
    )
    for name, count, mode in [
        ("StaticMaskRCNN eager, 1 image (800x1067)", 1, "eager"),
        ("StaticMaskRCNN eager, 2 images (800x1067)", 2, "eager"),
        ("StaticMaskRCNN compiled, 1 image (800x1067)", 1, "compiled"),
        ("StaticMaskRCNN compiled, 2 images (800x1067)", 2, "compiled"),
        ("StaticMaskRCNN compiled-fast, 2 images (800x1067)", 2, "compiled-fast"),
    ]
]
CASES.append(
    Case(
        "Mask R-CNN inference under bf16 autocast, 1 image (800x1067), both sides",
        functools.partial(autocast_model, count=1),
        dtypes=FLOAT32,
        extended_on=SLOW_ON_CPU,
    )
)
# The same static model deployed as `roiops export` writes it, against torchvision's eager model
# in float32: the AOTInductor package (--all: its compilation takes a minute or more on a CPU),
# ONNX Runtime, OpenVINO in f32, bf16 and int8. By default the two a CPU user compares first.
DEPLOYED = [
    # (name, format, precision, runtime, images, by default)
    ("AOTInductor package", "aoti", "float32", None, 1, False),
    ("AOTInductor package, bfloat16 (autocast)", "aoti", "bfloat16", None, 1, False),
    ("in ONNX Runtime", "onnx", "float32", None, 1, True),
    ("in ONNX Runtime", "onnx", "float32", None, 2, False),
    ("in OpenVINO, f32", "openvino", "float32", None, 1, False),
    ("in OpenVINO, bf16", "openvino", "bfloat16", None, 1, True),
    ("in OpenVINO, bf16", "openvino", "bfloat16", None, 2, False),
    ("in OpenVINO, int8", "openvino", "int8", None, 1, False),
    ("in OpenVINO, int8", "openvino", "int8", None, 2, False),
]
CASES += [
    Case(
        f"StaticMaskRCNN {name}, {count} image{'s' * (count > 1)} (800x1067)",
        functools.partial(
            deployed_model, count=count, format=fmt, precision=precision, runtime=runtime
        ),
        CPU_ONLY,
        FLOAT32,
        () if default else SLOW_ON_CPU,
    )
    for name, fmt, precision, runtime, count, default in DEPLOYED
]
CASES += [
    Case(
        f"Mask R-CNN stage: {name} (2 images)",
        functools.partial(stage, name=name),
        dtypes=FLOAT32,
        extended_on=SLOW_ON_CPU,
    )
    for name in STAGES
]
