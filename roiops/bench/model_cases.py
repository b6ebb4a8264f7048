"""Mask R-CNN R50-FPN, roiops' against torchvision's with the same (random) weights, at
torchvision's default size (shorter side 800, longer at most 1333): the whole inference (eager,
and the static model eager and compiled) and each stage on the same inputs. box_score_thresh 0
so that random weights give torchvision's 100 detections per image and the mask stages do real
work."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.models.detection.roi_heads import maskrcnn_inference
from torchvision.models.detection.roi_heads import paste_masks_in_image as tv_paste

import roiops
import roiops.models

from .timing import Prepared

IMAGE_SIZES = [(800, 1067), (800, 1200)]  # already at the model's size: the resize is a no-op


@functools.cache
def models(device_type: str):
    torch.manual_seed(0)
    tv = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, box_score_thresh=0.0)
    ours = roiops.models.maskrcnn_resnet50_fpn(box_score_thresh=0.0)
    ours.load_state_dict(tv.state_dict())
    return tv.eval().to(device_type), ours.eval().to(device_type)


def images(count: int, device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(count)
    return [torch.rand(3, h, w, generator=g).to(device) for h, w in IMAGE_SIZES[:count]]


def no_grad(fn: Callable[[], object]) -> Callable[[], object]:
    def step():
        with torch.no_grad():
            return fn()

    return step


def whole_model(device: torch.device, dtype: torch.dtype, *, count: int) -> Prepared:
    tv, ours = models(device.type)
    batch = images(count, device)
    return Prepared(no_grad(lambda: ours(batch)), no_grad(lambda: tv(batch)), 0)


def static_model(device: torch.device, dtype: torch.dtype, *, count: int, mode: str) -> Prepared:
    """StaticMaskRCNN on `count` 800x1067 images (one size: a static batch) against torchvision's
    model on the same images. mode: "eager"; "compiled" (inductor, layout_optimization off: the
    eager bits); "compiled-fast" (inductor's defaults: channels-last convolutions, detections equal
    but boxes within ~0.04 px)."""
    tv, ours = models(device.type)
    static = roiops.models.StaticMaskRCNN(ours).eval()
    g = torch.Generator().manual_seed(count)
    batch = torch.rand(count, 3, *IMAGE_SIZES[0], generator=g).to(device)
    run, options = static, {}
    if mode != "eager":
        torch._dynamo.reset()
        run = torch.compile(static, fullgraph=True, dynamic=False)
        options = {} if mode == "compiled-fast" else {"layout_optimization": False}

    def ours_step():
        with torch.no_grad(), torch._inductor.config.patch(options):
            return run(batch)  # the first call compiles (time_pair's warm-up)

    return Prepared(ours_step, no_grad(lambda: tv(list(batch))), 0)


def autocast_model(device: torch.device, dtype: torch.dtype, *, count: int) -> Prepared:
    """roiops' eager model against torchvision's, both under torch.autocast in bfloat16 (on a
    CPU: convolutions and matrix products in bf16), on the same `count` images."""
    tv, ours = models(device.type)
    batch = images(count, device)

    def under_autocast(model):
        def step():
            with torch.no_grad(), torch.autocast(device.type, torch.bfloat16):
                return model(batch)

        return step

    return Prepared(under_autocast(ours), under_autocast(tv), 0)


def deployed_model(
    device: torch.device,
    dtype: torch.dtype,
    *,
    count: int,
    format: str,
    precision: str = "float32",
    runtime: str | None = None,
) -> Prepared:
    """StaticMaskRCNN written by `roiops export`'s own code (export_detector: the format's writer,
    verification included; compiling and quantizing are set-up, not timed) for `count` 800x1067
    images in `precision`, and opened as `predict` opens it (OpenVINO at the file's precision),
    against torchvision's eager model in float32 on the same images: what a CPU deployment picks
    instead of PyTorch. The row's notes: export time and file size. int8 is calibrated on 4
    random images: enough to time it, not to judge its accuracy (the demo's test does)."""
    import io
    import tempfile
    from pathlib import Path

    from ..deploy.export import export_detector
    from ..deploy.formats import RunOptions, open_model

    tv, ours = models(device.type)
    g = torch.Generator().manual_seed(count)
    batch = torch.rand(count, 3, *IMAGE_SIZES[0], generator=g).to(device)
    calibration = (
        list(torch.rand(4, 3, *IMAGE_SIZES[0], generator=g)) if precision == "int8" else []
    )
    log = io.StringIO()
    with tempfile.TemporaryDirectory() as folder:
        (written,) = export_detector(
            ours, "maskrcnn_resnet50_fpn", [str(c) for c in range(91)], Path(folder), "model",
            [format], IMAGE_SIZES[0], (count, count), 100, device.type, precision, True,
            calibration, stream=log,
        )  # fmt: skip
        opened = open_model(written.path, RunOptions(runtime=runtime))
        notes = f"{opened.runs_as}; export {written.seconds:.1f} s, {written.size / 1e6:.0f} MB" + (
            "" if written.problem is None else " (NOT VERIFIED: near-tied random weights)"
        )
    return Prepared(lambda: opened.run(batch), no_grad(lambda: tv(list(batch))), 0, notes)


@functools.cache
def stage_inputs(device_type: str):
    """Every stage's input, computed once with torchvision's modules (roiops' give the same)."""
    tv, _ = models(device_type)
    device = torch.device(device_type)
    with torch.no_grad():
        tv_batch, _ = tv.transform(images(2, device))
        ours_batch = roiops.models.ImageList(tv_batch.tensors, tv_batch.image_sizes)
        features = tv.backbone(tv_batch.tensors)
        proposals, _ = tv.rpn(tv_batch, features)
        sizes = tv_batch.image_sizes
        pooled = tv.roi_heads.box_roi_pool(features, proposals, sizes)
        logits, deltas = tv.roi_heads.box_predictor(tv.roi_heads.box_head(pooled))
        boxes, _, labels = tv.roi_heads.postprocess_detections(logits, deltas, proposals, sizes)
        mask_pooled = tv.roi_heads.mask_roi_pool(features, boxes, sizes)
        mask_logits = tv.roi_heads.mask_predictor(tv.roi_heads.mask_head(mask_pooled))
        masks = maskrcnn_inference(mask_logits, labels)
    return dict(
        tv_batch=tv_batch,
        ours_batch=ours_batch,
        features=features,
        proposals=proposals,
        sizes=sizes,
        pooled=pooled,
        logits=logits,
        deltas=deltas,
        boxes=boxes,
        mask_pooled=mask_pooled,
        masks=masks,
    )


def stage(device: torch.device, dtype: torch.dtype, *, name: str) -> Prepared:
    """One stage of the inference, roiops' module against torchvision's, on the same inputs."""
    tv, ours = models(device.type)
    s = stage_inputs(device.type)
    feats, sizes = s["features"], s["sizes"]
    pairs = {
        "backbone": (lambda m: m.backbone(s["tv_batch"].tensors),) * 2,
        "RPN": (lambda m: m.rpn(s["ours_batch"], feats), lambda m: m.rpn(s["tv_batch"], feats)),
        "box pooling": (lambda m: m.roi_heads.box_roi_pool(feats, s["proposals"], sizes),) * 2,
        "box head": (lambda m: m.roi_heads.box_predictor(m.roi_heads.box_head(s["pooled"])),) * 2,
        "box post-processing": (
            lambda m: m.roi_heads.postprocess(s["logits"], s["deltas"], s["proposals"], sizes),
            lambda m: m.roi_heads.postprocess_detections(
                s["logits"], s["deltas"], s["proposals"], sizes
            ),
        ),
        "mask pooling": (lambda m: m.roi_heads.mask_roi_pool(feats, s["boxes"], sizes),) * 2,
        "mask head": (
            lambda m: m.roi_heads.mask_predictor(m.roi_heads.mask_head(s["mask_pooled"])),
        )
        * 2,
        "paste masks": (
            lambda m: [
                roiops.paste_masks_in_image(k, b, sz)
                for k, b, sz in zip(s["masks"], s["boxes"], sizes)
            ],
            lambda m: [tv_paste(k, b, sz) for k, b, sz in zip(s["masks"], s["boxes"], sizes)],
        ),
    }
    ours_fn, tv_fn = pairs[name]
    return Prepared(no_grad(lambda: ours_fn(ours)), no_grad(lambda: tv_fn(tv)), 0)


STAGES = [
    "backbone",
    "RPN",
    "box pooling",
    "box head",
    "box post-processing",
    "mask pooling",
    "mask head",
    "paste masks",
]
