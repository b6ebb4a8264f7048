"""`python -m roiops predict MODEL IMAGES... --out DIR`: a model file (or a checkpoint) over PNG /
JPEG images, letterboxed into batches of the model's size.

Writes, as it goes (a run stopped midway keeps what it wrote, and each file is whole):
    DIR/detections.json  COCO results: image_id, category_id, bbox [x, y, w, h], score and the mask
                         as COCO's compressed RLE (pycocotools loads it with COCO.loadRes)
    DIR/images.json      COCO's "images" (id, file_name, height, width) and "categories"
    DIR/<name>.png       each image with its detections drawn (score >= --draw-threshold)
An image that cannot be read is named at the end, the others are processed, the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import _cli
from .._progress import Progress
from .formats import RunOptions, open_model
from .images import check_dependencies, image_files, letterbox, letterbox_size, read_image
from .model_files import ModelInfo, OpenedModel

SMALL_PICTURE = 384  # pictures of images smaller than this are drawn enlarged, legibly


HELP = "run a model over images: COCO results and pictures"
DESCRIPTION = (
    "Runs MODEL -- a file of `roiops export` (.pt2, .aoti.pt2, .onnx, .xml) or a checkpoint -- "
    "over PNG / JPEG images (files, or the images of folders) letterboxed to its size, and writes "
    "OUT/detections.json (COCO results, masks as RLE), OUT/images.json and one picture per image; "
    "the progress and report go to stderr, the paths of the two JSON files to stdout. Unreadable "
    "images are named at the end (exit status 1). Needs pillow."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="the model file or checkpoint")
    parser.add_argument("images", nargs="+", help="image files or folders")
    parser.add_argument(
        "--out", default="predict-output", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=_cli.non_negative_int, default=4, help="images per batch (default: 4)"
    )
    parser.add_argument(
        "--image-size",
        type=_cli.image_size,
        default=None,
        help="HEIGHTxWIDTH to run a checkpoint at (default: its min_size x max_size); an exported "
        "file takes the size it was exported for",
    )
    parser.add_argument(
        "--draw-threshold",
        type=float,
        default=0.5,
        help="draw detections scoring at least this (default: 0.5; all are in detections.json)",
    )
    parser.add_argument(
        "--device",
        default=None,
        choices=["cpu", "cuda"],
        help="default: the device the model was exported for (a checkpoint: cpu); an AOTInductor "
        "package runs only there, an ONNX or OpenVINO file on the CPU",
    )
    parser.add_argument(
        "--runtime",
        default=None,
        choices=["onnxruntime", "openvino"],
        help="what runs an .onnx file (default: onnxruntime)",
    )
    parser.add_argument(
        "--precision",
        default=None,
        choices=["f32", "bf16", "default"],
        help="OpenVINO's inference precision (an .xml file, or .onnx with --runtime openvino); "
        "default: the file's dtype (float32: f32, bfloat16: bf16); 'default': OpenVINO's own "
        "choice (bf16 on a CPU with bf16 units)",
    )


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    options = RunOptions(args.device, args.image_size, args.runtime, args.precision)
    try:
        out = _cli.writable_directory(args.out)
        status = predict(
            args.model, args.images, out, args.batch_size, args.draw_threshold, options
        )
    except ValueError as err:  # ArgumentValueError: what was refused, before any work
        parser.error(str(err))
    print(out / "detections.json")  # stdout: what was written, for a script to take
    print(out / "images.json")
    return status


@dataclass
class Placed:
    """An image of the batch: its id, file and where the letterbox put it."""

    image_id: int
    path: Path
    image: torch.Tensor  # [3, h, w], the original
    scaled_h: int
    scaled_w: int


def detections(outputs: dict[str, torch.Tensor], row: int, placed: Placed, info: ModelInfo):
    """Row `row` of a batch's outputs in the original image's pixels: boxes [K, 4], labels [K],
    scores [K] and binary masks [K, h, w] (None without a mask branch)."""
    from ..ops.paste_masks import paste_masks_in_image

    height, width = placed.image.shape[-2:]
    count = int(outputs["num_detections"][row])
    boxes = outputs["boxes"][row, :count].float().cpu()
    ratio_x, ratio_y = width / placed.scaled_w, height / placed.scaled_h
    boxes = boxes * torch.tensor([ratio_x, ratio_y, ratio_x, ratio_y], dtype=torch.float32)
    limits = torch.tensor([width, height, width, height], dtype=torch.float32)
    boxes = torch.minimum(boxes.clamp(min=0), limits)
    labels = outputs["labels"][row, :count].cpu()
    scores = outputs["scores"][row, :count].float().cpu()
    masks = None
    if info.masks == "pasted":
        probabilities = outputs["masks"][row, :count, : placed.scaled_h, : placed.scaled_w]
        probabilities = probabilities.float().cpu()
        if (placed.scaled_h, placed.scaled_w) != (height, width):
            probabilities = torch.nn.functional.interpolate(
                probabilities[None], size=(height, width), mode="bilinear", align_corners=False
            )[0]
        masks = probabilities > 0.5
    elif info.masks == "roi":
        roi_masks = outputs["roi_masks"][row, :count, None].float().cpu()
        masks = paste_masks_in_image(roi_masks, boxes, (height, width))[:, 0] > 0.5
    return boxes, labels, scores, masks


def coco_rle(mask: np.ndarray) -> dict:
    """COCO's compressed RLE of a binary mask [h, w], as pycocotools' encode writes it: the run
    lengths in column-major order, starting with a run of zeros; each count (from the third on, as
    the difference to the count two before) in 5-bit groups, low first, with a continuation bit
    0x20, offset by 48 into printable characters. (examples/cpp/predict.cpp writes the same.)"""
    height, width = mask.shape
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)  # column-major
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]  # the first run counts zeros
    text = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # Python's shift is arithmetic: a negative difference ends at -1
            more = x != -1 if c & 0x10 else x != 0
            text.append(chr((c | 0x20 if more else c) + 48))
    return {"size": [height, width], "counts": "".join(text)}


def coco_results(image_id: int, boxes, labels, scores, masks) -> list[dict]:
    results = []
    for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        entry = {
            "image_id": image_id,
            "category_id": int(labels[k]),
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": float(scores[k]),
        }
        if masks is not None:
            entry["segmentation"] = coco_rle(masks[k].numpy())
        results.append(entry)
    return results


def write_json(path: Path, value) -> None:
    """Whole or not at all: a run stopped while writing keeps the previous version."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value) + "\n")
    os.replace(temporary, path)


def predict(
    model: str,
    inputs: list[str],
    out: Path,
    batch_size: int = 4,
    draw_threshold: float = 0.5,
    options: RunOptions | None = None,
    stream=None,
) -> int:
    """Runs `model` over the images (opened with `options`: device, a checkpoint's image size,
    an ONNX file's runtime, OpenVINO's precision); returns the exit status (1 when an image could
    not be read)."""
    stream = stream or sys.stderr
    check_dependencies("predict")
    from .._drawing import draw_detections

    files = image_files(inputs)
    opened = open_model(model, options)
    info = opened.info
    batch_size = min(max(batch_size, info.batch_min), info.batch_max)
    print(
        f"{model}: {opened.kind}, {info.architecture}, {info.image_height}x{info.image_width} "
        f"input, on {opened.device} ({opened.runs_as}); {len(files)} images in batches of "
        f"{batch_size}",
        file=stream,
    )
    out.mkdir(parents=True, exist_ok=True)
    categories = [{"id": c, "name": n} for c, n in enumerate(info.classes) if c > 0]
    images, results, failed, drawn = [], [], [], set()
    progress = Progress(len(files), stream, unit="img")
    for start in range(0, len(files), batch_size):
        batch = []
        for image_id, path in enumerate(files[start : start + batch_size], start):
            try:
                image = read_image(path)
            except Exception as err:  # any file PIL cannot decode: report it, go on
                failed.append((path, f"{type(err).__name__}: {err}"))
                continue
            _, scaled_h, scaled_w = letterbox_size(image.shape[-2], image.shape[-1], info)
            batch.append(Placed(image_id, path, image, scaled_h, scaled_w))
        if batch:
            outputs = _run(opened, [letterbox(p.image, info)[0] for p in batch])
            for row, placed in enumerate(batch):
                boxes, labels, scores, masks = detections(outputs, row, placed, info)
                height, width = placed.image.shape[-2:]
                images.append(
                    {
                        "id": placed.image_id,
                        "file_name": str(placed.path),
                        "height": height,
                        "width": width,
                    }  # fmt: skip
                )
                results += coco_results(placed.image_id, boxes, labels, scores, masks)
                shown = scores >= draw_threshold
                drawn_masks = masks[shown].numpy() if masks is not None else np.zeros((0, 1, 1))
                picture = draw_detections(
                    placed.image,
                    boxes[shown].tolist(),
                    labels[shown].tolist(),
                    drawn_masks,
                    info.classes,
                    scores[shown].tolist(),
                    scale=max(1, SMALL_PICTURE // max(height, width)),
                )
                name = placed.path.stem
                if name in drawn:  # the same name in two folders
                    name = f"{name}-{placed.image_id}"
                drawn.add(name)
                picture.save(out / f"{name}.png")
            write_json(out / "detections.json", results)
            write_json(out / "images.json", {"images": images, "categories": categories})
        progress.update(min(start + batch_size, len(files)), files[start].name)
    print(
        f"{len(images)} images, {len(results)} detections: wrote {out / 'detections.json'}, "
        f"{out / 'images.json'} and {len(images)} pictures",
        file=stream,
    )
    if failed:
        print(f"could not read {len(failed)} of {len(files)} images:", file=stream)
        for path, reason in failed:
            print(f"  {path}: {reason}", file=stream)
        return 1
    return 0


def _run(opened: OpenedModel, images: list[torch.Tensor]) -> dict:
    """One batch; a batch below the model's smallest is padded with copies of its last image."""
    batch = torch.stack(images + images[-1:] * (opened.info.batch_min - len(images)))
    return opened.run(batch.to(opened.device))
