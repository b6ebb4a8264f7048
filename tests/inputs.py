"""Test inputs shared by the test files: random and adversarial RoIs, feature pyramids, boxes, box
codes and anchor inputs at Mask R-CNN's shapes, and PNG files of any kind. Every builder is
seeded, so a failure reproduces."""

from __future__ import annotations

import contextlib
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import torch
from torch.testing import assert_close

# torchvision is imported where a builder needs it: the tests of version-sensitive parts (ONNX,
# deployment, packaging) also run on a torch no torchvision exists for yet (.ci/newest_torch.sh).


def rois_from_boxes(boxes: list[torch.Tensor]) -> torch.Tensor:
    """Per-image Tensor[L_i, 4] -> Tensor[K, 5] with the image index first (torchvision's
    RoI format)."""
    return torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], 1) for i, b in enumerate(boxes)])


def random_rois(
    num_rois: int,
    batch_size: int,
    height: float,
    width: float,
    dtype=torch.float32,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Tensor[K, 5] of boxes in image coordinates (a map of height x width at spatial_scale 1):
    mostly inside, some partly or fully outside, some degenerate (zero size) or inverted
    (x2 < x1)."""
    g = generator
    k = num_rois
    x1 = torch.rand(k, generator=g, dtype=torch.float64) * width * 1.4 - 0.2 * width
    y1 = torch.rand(k, generator=g, dtype=torch.float64) * height * 1.4 - 0.2 * height
    w = torch.rand(k, generator=g, dtype=torch.float64) * width * 0.8
    h = torch.rand(k, generator=g, dtype=torch.float64) * height * 0.8
    kind = torch.randint(0, 10, (k,), generator=g)
    w = torch.where(kind == 0, torch.zeros_like(w), w)  # degenerate
    h = torch.where(kind == 1, -h * 0.3, h)  # inverted
    x1 = torch.where(kind == 2, x1 + 2 * width, x1)  # fully outside
    batch = torch.randint(0, batch_size, (k,), generator=g).to(torch.float64)
    return torch.stack([batch, x1, y1, x1 + w, y1 + h], dim=1).to(dtype)


def roi_align_case(
    device, dtype, scale, seed=0, num_rois=40, batch=3, channels=5, height=13, width=17
):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, height, width, generator=g, dtype=torch.float64)
    rois = random_rois(num_rois, batch, height / scale, width / scale, generator=g)
    return x.to(device=device, dtype=dtype), rois.to(device=device, dtype=dtype)


def feature_pyramid(
    device,
    dtype,
    num_levels=4,
    channels=4,
    image_sizes=((160, 224), (128, 256)),
    seed=0,
    num_boxes=60,
):
    """FPN-like maps P2.. for images padded to a multiple of 32, boxes of 8..600 px per image."""
    g = torch.Generator().manual_seed(seed)
    pad_h = max(h for h, _ in image_sizes)
    pad_w = max(w for _, w in image_sizes)
    pad_h, pad_w = -(-pad_h // 32) * 32, -(-pad_w // 32) * 32
    names = [f"p{2 + i}" for i in range(num_levels)]
    feats = {
        n: torch.randn(
            len(image_sizes),
            channels,
            pad_h >> (2 + i),
            pad_w >> (2 + i),
            generator=g,
            dtype=torch.float64,
        ).to(device=device, dtype=dtype)
        for i, n in enumerate(names)
    }
    boxes = []
    for h, w in image_sizes:
        size = torch.exp(
            torch.empty(num_boxes, 2, dtype=torch.float64).uniform_(
                math.log(8), math.log(600), generator=g
            )
        )
        cx = torch.rand(num_boxes, generator=g, dtype=torch.float64) * w
        cy = torch.rand(num_boxes, generator=g, dtype=torch.float64) * h
        size[-2:] = torch.tensor(
            [[480.0, 520.0], [700.0, 650.0]], dtype=torch.float64
        )  # coarsest levels too
        b = torch.stack(
            [cx - size[:, 0] / 2, cy - size[:, 1] / 2, cx + size[:, 0] / 2, cy + size[:, 1] / 2], 1
        )
        boxes.append(b.to(device=device, dtype=dtype))
    return feats, boxes, list(image_sizes)


def random_boxes(n, generator, span=200.0, max_size=60.0, dtype=torch.float32):
    xy = torch.rand(n, 2, generator=generator, dtype=torch.float64) * span
    wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) * max_size + 0.5
    return torch.cat([xy, xy + wh], 1).to(dtype)


def clustered_boxes(n, generator, dtype=torch.float32):
    """Groups of near-identical boxes: the case NMS exists for."""
    centres = random_boxes(max(n // 20, 1), generator, dtype=torch.float64)
    pick = torch.randint(0, centres.size(0), (n,), generator=generator)
    jitter = torch.randn(n, 4, generator=generator, dtype=torch.float64) * 1.5
    return (centres[pick] + jitter).to(dtype)


def on_cpu(value):
    """A tensor, or a list / dict of them, on the CPU: where the references of roiops' RoIAlign
    contract are computed for every device (torchvision's CPU bits)."""
    if isinstance(value, dict):
        return {k: v.cpu() for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v.cpu() for v in value]
    return value.cpu()


def boxes_and_codes(n, k, dtype, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 1000
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 300 + 0.5
    boxes = torch.cat([xy, xy + wh], 1).to(dtype)
    codes = (torch.randn(n, 4 * k, generator=g, dtype=torch.float64) * 2).to(dtype)
    codes[::97, 2] = 20.0  # beyond bbox_xform_clip
    return boxes.to(device), codes.to(device)


def mask_rcnn_anchor_inputs(dtype=torch.float32, device="cpu", image=(800, 1344), images=2):
    from torchvision.models.detection.image_list import ImageList

    images_t = torch.zeros(images, 3, *image, device=device)
    image_list = ImageList(images_t, [(image[0], image[1] - 11 * i) for i in range(images)])
    h, w = image
    sizes = [
        (h // 4, w // 4),
        (h // 8, w // 8),
        (h // 16, w // 16),
        (h // 32, w // 32),
        (-(-h // 64), -(-w // 64)),
    ]
    feats = [torch.zeros(images, 1, fh, fw, dtype=dtype, device=device) for fh, fw in sizes]
    return image_list, feats


def pyramid_inputs(dtype, num_levels=4, seed=0):
    """CPU maps of feature_pyramid as a list, its boxes as [K, 5] RoIs, and the levels' scales."""
    feats, boxes, image_sizes = feature_pyramid(
        "cpu", dtype, num_levels=num_levels, seed=seed, num_boxes=25
    )
    maps = list(feats.values())
    scales = [2.0 ** -(2 + i) for i in range(num_levels)]
    rois = rois_from_boxes(boxes)
    return maps, rois, scales


# Pasted masks are compared with torchvision's within this: its resize (ATen's CPU
# upsample_bilinear2d) rounds differently per CPU build, by up to 9.2e-7
# (tests/test_paste_masks.py).
PASTE_ATOL = 2e-6


def pasted_masks_case(n, image, seed=0):
    """Mask R-CNN outputs to paste: sigmoid-like 28x28 masks and boxes of 10..90% of the image,
    some hanging over its edges but all overlapping it (torchvision's Python slicing wraps around,
    or fails, on a box entirely outside the image)."""
    g = torch.Generator().manual_seed(seed)
    h, w = image
    extent = torch.tensor([w, h])
    masks = torch.rand(n, 1, 28, 28, generator=g)
    size = (torch.rand(n, 2, generator=g) * 0.8 + 0.1) * extent + 2
    corner = (torch.rand(n, 2, generator=g) * 0.8 - 0.1) * extent
    return masks, torch.cat([corner, corner + size], 1)


def detection_batch(
    seed=0, with_targets=False, sizes=((300, 420), (260, 380), (280, 330)), num_classes=7, objects=3
):
    """Images of different sizes in [0, 1] and, for training, per image `objects` boxes with labels
    and filled masks of the boxes' region."""
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, h, w, generator=g) for h, w in sizes]
    if not with_targets:
        return images, None
    targets = []
    for h, w in sizes:
        corner = torch.rand(objects, 2, generator=g) * torch.tensor([w, h]) * 0.6
        size = torch.rand(objects, 2, generator=g) * torch.tensor([w, h]) * 0.3 + 12
        boxes = torch.cat([corner, corner + size], 1)
        masks = torch.zeros(objects, h, w, dtype=torch.uint8)
        for k, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
            masks[k, y1:y2, x1:x2] = 1
        labels = torch.randint(1, num_classes, (objects,), generator=g)
        targets.append({"boxes": boxes, "labels": labels, "masks": masks})
    return images, targets


def run_fresh_python(
    code: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Runs `code` in a new interpreter that imports the same roiops as this process: -P keeps the
    working directory (a source tree that may not be built, as in CI) off sys.path, and PYTHONPATH
    points at the folder this roiops came from (site-packages, or the in-place build). `env` adds
    environment variables."""
    import roiops

    env = {**os.environ, **(env or {}), "PYTHONPATH": str(Path(roiops.__file__).parent.parent)}
    return subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=timeout, env=env
    )


def build_support(name: str):
    """build_support/<name>.py of this checkout (the build's own code, not in the package), loaded
    by path: putting the checkout on sys.path would import its unbuilt roiops."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "build_support" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_build_support_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def deterministic_algorithms():
    """torch.use_deterministic_algorithms(True) for the block: RoIAlign's CUDA backward gathers."""
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)


# --- detection models -----------------------------------------------------------------------------

# Small images keep the models' tests fast; the full-size runs are benchmarks.
SMALL_DETECTOR = dict(min_size=320, max_size=448, num_classes=7, box_detections_per_img=25)


def torchvision_detector(kind: str = "mask", **kwargs):
    """torchvision's Mask / Faster R-CNN R50-FPN with seeded random weights, SMALL_DETECTOR options
    unless overridden."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn, maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    factory = {"mask": maskrcnn_resnet50_fpn, "faster": fasterrcnn_resnet50_fpn}[kind]
    return factory(weights=None, weights_backbone=None, **{**SMALL_DETECTOR, **kwargs})


def detector_pair(kind: str = "mask", **kwargs):
    """torchvision's model (torchvision_detector) and roiops' with its state_dict."""
    import roiops.models

    tv = torchvision_detector(kind, **kwargs)
    factory = {
        "mask": roiops.models.maskrcnn_resnet50_fpn,
        "faster": roiops.models.fasterrcnn_resnet50_fpn,
    }[kind]
    ours = factory(**{**SMALL_DETECTOR, **kwargs})
    ours.load_state_dict(tv.state_dict(), strict=True)
    return tv, ours


def assert_same_detections(ours, ref, allow_empty=False):
    """Per image the same detections -- at least one unless allow_empty --, boxes, labels and scores
    bit for bit; pasted masks within ATen's own spread (PASTE_ATOL)."""
    assert len(ours) == len(ref)
    for o, r in zip(ours, ref):
        assert len(o["boxes"]) == len(r["boxes"])
        assert allow_empty or len(r["boxes"]) > 0
        for key in ["boxes", "labels", "scores"]:
            assert torch.equal(o[key], r[key]), key
        if "masks" in r:
            assert_close(o["masks"], r["masks"], rtol=0, atol=PASTE_ATOL)


def png_bytes(pixels, color_type: int, bit_depth: int = 8, palette=None, trns=None):
    """A PNG file of pixels [H, W, C] at any bit depth (pillow writes no 16-bit colour)."""
    import numpy as np

    height, width = pixels.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\0" + pixels[y].astype(dtype).tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    if palette is not None:
        data += chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        data += chunk(b"tRNS", trns)
    return data + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
