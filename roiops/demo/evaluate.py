"""COCO box and mask AP of a detector on held-out images, with pycocotools (the demo extra)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from .shapes import CLASSES


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def _xywh(box: list[float]) -> list[float]:
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]


@torch.no_grad()
def predict(model, images: list[torch.Tensor], batch_size: int = 16) -> list[dict]:
    """The model's detections of `images`, on the CPU whatever the model's device."""
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = [image.to(device) for image in images[start : start + batch_size]]
        outputs += [{k: v.cpu() for k, v in out.items()} for out in model(batch)]
    return outputs


def ground_truth(targets: list[dict]):
    """The targets as COCO's ground truth (pycocotools.coco.COCO): image i is COCO image i."""
    from pycocotools.coco import COCO

    size = targets[0]["masks"].shape[-2:] if targets else (0, 0)
    truth = {
        "images": [{"id": i, "height": size[0], "width": size[1]} for i in range(len(targets))],
        "categories": [{"id": c, "name": name} for c, name in enumerate(CLASSES) if c],
        "annotations": [],
    }
    for i, target in enumerate(targets):
        for box, label, mask in zip(
            target["boxes"].tolist(), target["labels"].tolist(), target["masks"].numpy()
        ):
            truth["annotations"].append(
                {
                    "id": len(truth["annotations"]) + 1,
                    "image_id": i,
                    "category_id": label,
                    "bbox": _xywh(box),
                    "area": float(mask.sum()),
                    "iscrowd": 0,
                    "segmentation": _rle(mask),
                }
            )
    coco = COCO()
    coco.dataset = truth
    coco.createIndex()
    return coco


def coco_metrics(targets: list[dict], outputs: list[dict]) -> dict[str, float]:
    """AP (IoU .50:.95), AP50 and AP75 of boxes and of masks (probabilities cut at 0.5), as
    COCO's evaluation computes them; every image is one COCO image."""
    from pycocotools.cocoeval import COCOeval

    boxes, segments = [], []
    for i, output in enumerate(outputs):
        masks = (output["masks"][:, 0] > 0.5).numpy()
        for box, label, score, mask in zip(
            output["boxes"].tolist(), output["labels"].tolist(), output["scores"].tolist(), masks
        ):
            common = {"image_id": i, "category_id": label, "score": score}
            boxes.append({**common, "bbox": _xywh(box)})
            segments.append({**common, "segmentation": _rle(mask)})
    metrics = {}
    quiet = io.StringIO()  # pycocotools prints its progress and table; the demo prints its own
    with contextlib.redirect_stdout(quiet):
        truth = ground_truth(targets)
        for kind, results in (("bbox", boxes), ("segm", segments)):
            prefix = "box" if kind == "bbox" else "mask"
            if not results:  # loadRes cannot take an empty list: nothing found scores zero
                metrics.update({f"{prefix}_AP": 0.0, f"{prefix}_AP50": 0.0, f"{prefix}_AP75": 0.0})
                continue
            evaluation = COCOeval(truth, truth.loadRes(results), kind)
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
            stats = evaluation.stats
            metrics.update(
                {
                    f"{prefix}_AP": float(stats[0]),
                    f"{prefix}_AP50": float(stats[1]),
                    f"{prefix}_AP75": float(stats[2]),
                }
            )
    return metrics
