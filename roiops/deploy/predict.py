"""`python -m roiops predict MODEL IMAGES... --out DIR`: a model file (or a checkpoint) over PNG /
JPEG images, letterboxed into batches of the model's size; in one process, in --nproc N, or in
those torchrun starts on one machine or several (each takes every N-th batch).

Writes:
    DIR/detections.json  COCO results: image_id, category_id, bbox [x, y, w, h], score and the mask
                         as COCO's compressed RLE (pycocotools loads it with COCO.loadRes)
    DIR/images.json      COCO's "images" (id, file_name, height, width) and "categories"
    DIR/<name>.png       each image with its detections drawn (score >= --draw-threshold)
    DIR/parts/           what is done, batch by batch (parts.py): a stopped run started again
                         with the same arguments does only the rest; the two JSON files are
                         merged from it at the end
An image's id is its place in the input list (folders sorted by name), whatever the processes.
An image that cannot be read is named at the end, the others are processed, the exit status is 1.

Per process, three things overlap: reader threads decode and letterbox the next batches, the
model runs the current one, a writer thread encodes the last one's masks, draws its pictures and
writes its part.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import _cli, _processes
from .._progress import Progress
from .formats import RunOptions, open_model
from .images import check_dependencies, image_files, letterbox, letterbox_size, read_image
from .model_files import ModelInfo, OpenedModel
from .parts import PredictRecord, fingerprint, sha256_of

SMALL_PICTURE = 384  # pictures of images smaller than this are drawn enlarged, legibly
WRITES_BEHIND = 2  # batches the writer may be behind the model (their images stay in memory)
# A rank that finishes early waits at the last barrier for the slowest, however long its share.
SLOWEST_RANK = datetime.timedelta(days=7)


HELP = "run a model over images: COCO results and pictures"
DESCRIPTION = (
    "Runs MODEL -- a file of `roiops export` (.pt2, .aoti.pt2, .onnx, .xml) or a checkpoint -- "
    "over PNG / JPEG images (files, or the images of folders) letterboxed to its size, and writes "
    "OUT/detections.json (COCO results, masks as RLE), OUT/images.json and one picture per image; "
    "the progress and report go to stderr, the paths of the two JSON files to stdout. Unreadable "
    "images are named at the end (exit status 1). A run stopped midway and started again with the "
    "same arguments does only what is left (OUT/parts records what is done). Several processes: "
    "--nproc N, or `torchrun [--nnodes M ...] --nproc-per-node N -m roiops predict ...` with an "
    "OUT every machine shares. Needs pillow."
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
        "--no-pictures", action="store_true", help="write the JSON files only, no pictures"
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
    parser.add_argument(
        "--nproc",
        type=int,
        default=None,
        help="processes to run here, each taking every N-th batch and its share of the threads "
        "(with --device cuda, one GPU each); under torchrun leave it out",
    )
    parser.add_argument(
        "--readers",
        type=_cli.non_negative_int,
        default=1,
        help="threads per process decoding and letterboxing the next batches while the model "
        "runs (default: 1; 0: between the model's batches)",
    )


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    options = RunOptions(args.device, args.image_size, args.runtime, args.precision)
    try:
        out = _cli.writable_directory(args.out)
        status = predict(
            args.model, args.images, out, args.batch_size, args.draw_threshold, options,
            pictures=not args.no_pictures, nproc=args.nproc, readers=args.readers,
        )  # fmt: skip
    except ValueError as err:  # ArgumentValueError: what was refused, before any work
        parser.error(str(err))
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
    # copies, not views: the writer thread reads them while the model runs the next batch
    labels = outputs["labels"][row, :count].cpu().clone()
    scores = outputs["scores"][row, :count].float().cpu().clone()
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


def predict(
    model: str,
    inputs: list[str],
    out: Path,
    batch_size: int = 4,
    draw_threshold: float = 0.5,
    options: RunOptions | None = None,
    stream=None,
    pictures: bool = True,
    nproc: int | None = None,
    readers: int = 1,
) -> int:
    """Runs `model` over the images (opened with `options`: device, a checkpoint's image size,
    an ONNX file's runtime, OpenVINO's precision) in this process, in `nproc` processes, or as
    one of torchrun's; returns the exit status (1 when an image could not be read). Among
    several torchrun processes it does not return: each exits with its status once all are done,
    rank 0 after merging. Refuses (ArgumentValueError) before any work: bad options, or an OUT
    holding a run with other arguments."""
    stream = stream or sys.stderr
    check_dependencies("predict")
    files = image_files(inputs)
    under_torchrun = _processes.launched_by_torchrun()
    if under_torchrun and options is not None and options.device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))  # open it on this rank's GPU
    opened = open_model(model, options)
    info = opened.info
    world_size, _ = _processes.check(nproc, opened.device, "predict")
    batch_size = min(max(batch_size, info.batch_min), info.batch_max)
    job = Job(model, files, out, batch_size, draw_threshold, pictures, options, readers)
    record = job.record()
    done = record.start(job.arguments(opened))
    rank = int(os.environ.get("RANK", 0)) if under_torchrun else 0
    if rank == 0:
        resumed = f"; {done} of {job.batches} batches done before, resuming" if done else ""
        print(
            f"{model}: {opened.kind}, {info.architecture}, {info.image_height}x{info.image_width} "
            f"input, on {opened.device} ({opened.runs_as}); {len(files)} images in "
            f"{job.batches} batches of {batch_size}, {world_size} process(es){resumed}",
            file=stream,
        )
    if world_size > 1 and not under_torchrun:
        device = opened.device
        del opened  # --nproc: each process opens its own
        _processes.run(functools.partial(_work, job), nproc, device, SLOWEST_RANK)
        return _merge(job, info, stream)
    work = functools.partial(_work, job, opened=opened, stream=stream, merge=under_torchrun)
    status = _processes.run(work, nproc, opened.device, SLOWEST_RANK)
    return status if under_torchrun else _merge(job, info, stream)


@dataclass
class Job:
    """A predict run's arguments, as every one of its processes needs them (picklable: --nproc
    sends it to the processes it starts)."""

    model: str
    files: list[Path]
    out: Path
    batch_size: int  # within the model's batch range
    draw_threshold: float
    pictures: bool
    options: RunOptions | None
    readers: int
    picture_names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        # <stem>.png, or <stem>-<id>.png for a stem an earlier image has (the same name in two
        # folders): decided over the whole list, so whichever process draws it names it so.
        seen: set[str] = set()
        self.picture_names = []
        for image_id, path in enumerate(self.files):
            name = path.stem if path.stem not in seen else f"{path.stem}-{image_id}"
            self.picture_names.append(name)
            seen.add(path.stem)

    @property
    def batches(self) -> int:
        return -(-len(self.files) // self.batch_size)

    def record(self) -> PredictRecord:
        return PredictRecord(self.out, self.batches)

    def batch(self, index: int) -> list[tuple[int, Path]]:
        start = index * self.batch_size
        return list(enumerate(self.files[start : start + self.batch_size], start))

    def arguments(self, opened: OpenedModel) -> dict:
        """What the results depend on: a rerun into the same OUT must have the same."""
        return {
            "model_sha256": sha256_of(Path(self.model)),  # the same file copied to each machine
            "images": len(self.files),
            "images_fingerprint": fingerprint(self.files),
            "batch_size": self.batch_size,
            "image_size": [opened.info.image_height, opened.info.image_width],
            "device": opened.device,
            "runs_as": opened.runs_as,
            "pictures": self.pictures,
            "draw_threshold": self.draw_threshold if self.pictures else None,
        }


@dataclass
class Decoded:
    """A batch read: its images placed in the letterbox, their letterboxed tensors, and the
    files that could not be read."""

    index: int
    placed: list[Placed]
    letterboxed: list[torch.Tensor]
    failed: list[tuple[str, str]]


def decode(job: Job, index: int, info: ModelInfo) -> Decoded:
    placed, letterboxed, failed = [], [], []
    for image_id, path in job.batch(index):
        try:
            image = read_image(path, background=tuple(info.image_mean))
        except Exception as err:  # any file PIL cannot decode, or too large: report it, go on
            failed.append((str(path), f"{type(err).__name__}: {err}"))
            continue
        _, scaled_h, scaled_w = letterbox_size(image.shape[-2], image.shape[-1], info)
        placed.append(Placed(image_id, path, image, scaled_h, scaled_w))
        letterboxed.append(letterbox(image, info)[0])
    return Decoded(index, placed, letterboxed, failed)


def _work(job: Job, process: _processes.Process, opened: OpenedModel | None = None,
          stream=None, merge: bool = False) -> int | None:  # fmt: skip
    """This process's share: every world_size-th batch from its rank on, those not done yet.
    With `merge` (torchrun), rank 0 merges once all are done and returns the exit status."""
    opened = opened or open_model(job.model, job.options)
    info = opened.info
    record = job.record()
    mine = [k for k in range(process.rank, job.batches, process.world_size) if not record.done(k)]
    progress = Progress(sum(len(job.batch(k)) for k in mine), stream, unit="img")
    done_images = 0
    readers = ThreadPoolExecutor(max(job.readers, 1), thread_name_prefix="roiops-read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="roiops-write")
    with readers, writer:
        read_ahead = max(job.readers, 1) + 1 if job.readers else 0
        upcoming: deque = deque()
        queue = iter(mine)

        def read_next():
            while len(upcoming) <= read_ahead:
                index = next(queue, None)
                if index is None:
                    return
                upcoming.append(readers.submit(decode, job, index, info))

        read_next()
        writes: deque = deque()
        while upcoming:
            decoded = upcoming.popleft().result()
            read_next()
            found = []
            if decoded.placed:
                outputs = _run(opened, decoded.letterboxed)
                found = [detections(outputs, row, p, info) for row, p in enumerate(decoded.placed)]
            writes.append(writer.submit(finish, job, record, decoded, found, info))
            while len(writes) > WRITES_BEHIND:
                writes.popleft().result()
            done_images += len(decoded.placed) + len(decoded.failed)
            if stream is not None and process.is_main:
                progress.update(done_images, job.files[job.batch_size * decoded.index].name)
        while writes:
            writes.popleft().result()
    if merge:
        process.wait_for_all()
        if process.is_main:
            return _merge(job, info, stream or sys.stderr)
    return None


def finish(job: Job, record: PredictRecord, decoded: Decoded, found: list, info: ModelInfo):
    """A batch's COCO results and pictures, then its part: the batch is done."""
    from .._drawing import draw_detections

    images, results = [], []
    for placed, (boxes, labels, scores, masks) in zip(decoded.placed, found):
        height, width = placed.image.shape[-2:]
        images.append(
            {"id": placed.image_id, "file_name": str(placed.path), "height": height, "width": width}
        )
        results += coco_results(placed.image_id, boxes, labels, scores, masks)
        if not job.pictures:
            continue
        shown = scores >= job.draw_threshold
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
        # zlib's fastest level: at 800x1067, 60 ms a picture instead of the default's 330 (which
        # made pictures 7/8 of predict's time), for files ~15% larger
        picture.save(job.out / f"{job.picture_names[placed.image_id]}.png", compress_level=1)
    record.write(decoded.index, images, results, decoded.failed)


def _merge(job: Job, info: ModelInfo, stream) -> int:
    categories = [{"id": c, "name": n} for c, n in enumerate(info.classes) if c > 0]
    try:
        images, results, failed = job.record().merge(categories)
    except FileNotFoundError as err:
        print(f"predict did not finish: {err}", file=stream)
        return 1
    pictures = f" and {images} pictures" if job.pictures else ""
    print(
        f"{images} images, {results} detections: wrote {job.out / 'detections.json'}, "
        f"{job.out / 'images.json'}{pictures}",
        file=stream,
    )
    print(job.out / "detections.json")  # stdout: what was written, for a script to take
    print(job.out / "images.json", flush=True)
    if failed:
        print(f"could not read {len(failed)} of {len(job.files)} images:", file=stream)
        for path, reason in failed:
            print(f"  {path}: {reason}", file=stream)
        return 1
    return 0


def _run(opened: OpenedModel, images: list[torch.Tensor]) -> dict:
    """One batch; a batch below the model's smallest is padded with copies of its last image."""
    batch = torch.stack(images + images[-1:] * (opened.info.batch_min - len(images)))
    return opened.run(batch.to(opened.device))
