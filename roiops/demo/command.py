"""What `python -m roiops demo` does: train (in one process, or this one's share of several),
evaluate on held-out images, draw, and save the model and some of the images."""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import time
from pathlib import Path

import torch

from .. import _cli
from ..models.checkpoints import save_detector
from .distributed import Process

DEFAULT_STEPS = 800
# The training's share of a 5-minute demo on a slow 2-core machine (set-up and evaluation of the
# 200 held-out images take ~5 s on the recording machine, ~15 s at a third of its speed).
DEFAULT_MINUTES = 4.6
BATCH_SIZE = 8
HELD_OUT_IMAGES = 200
DRAWN_IMAGES = 6
SAVED_IMAGES = 12  # held-out images written as PNG files: something to try `predict` on


HELP = "train a small Mask R-CNN on synthetic shapes (CPU, minutes), evaluate, draw"
DESCRIPTION = (
    "Trains roiops' Mask R-CNN with a small backbone on seeded synthetic shapes (on the CPU, or "
    "GPUs with --device cuda; in one process, or data-parallel in several: --nproc N, or "
    "`torchrun --nproc-per-node N -m roiops demo`), evaluates it on held-out images with COCO's "
    "metrics (pycocotools) and writes OUT/metrics.json and OUT/detections.png."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo-output", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--steps",
        type=_cli.non_negative_int,
        default=DEFAULT_STEPS,
        help=f"training steps of 8 images (default: {DEFAULT_STEPS}; 0: evaluate untrained)",
    )
    parser.add_argument(
        "--seed", type=_cli.non_negative_int, default=0, help="random seed (default: 0)"
    )
    parser.add_argument(
        "--minutes",
        type=_cli.positive_float,
        default=DEFAULT_MINUTES,
        help=f"training time budget (default: {DEFAULT_MINUTES:g}, which keeps the whole demo "
        "within 5 minutes on a slow 2-core CPU): the learning-rate schedule follows the time "
        "spent, so a slow machine trains fewer steps, over the whole budget",
    )
    parser.add_argument(
        "--nproc",
        type=_cli.non_negative_int,
        default=None,
        help="train data-parallel in this many processes started here (1, 2, 4 or 8: each takes "
        "its share of every batch; DistributedDataParallel, gloo on the CPU, nccl with --device "
        "cuda); rank 0 evaluates and writes. Under torchrun leave it out: torchrun starts them",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda"],
        help="default: cpu; cuda: one GPU per process",
    )


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from . import distributed

    try:
        out = _cli.writable_directory(args.out)
    except ValueError as err:
        parser.error(str(err))
    check_dependencies()
    try:
        distributed.check(args.nproc, args.device, BATCH_SIZE)
    except ValueError as err:
        parser.error(str(err))
    work = functools.partial(run, out, steps=args.steps, seed=args.seed, minutes=args.minutes)
    distributed.run(work, args.nproc, args.device)
    return 0


def check_dependencies() -> None:
    """The demo extra (`pip install .[demo]`): fail before any work, naming what to install."""
    missing = []
    for module, package in (("numpy", "numpy"), ("PIL", "pillow"), ("pycocotools", "pycocotools")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise SystemExit(
            f"the demo needs {' and '.join(missing)}: pip install {' '.join(missing)} "
            "(or pip install 'roiops[demo]')"
        )


def run(
    out: Path,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    stream=None,
    minutes: float | None = DEFAULT_MINUTES,
    process: Process | None = None,
) -> dict | None:
    """Trains (at most `steps` steps, fitted into `minutes` of training when given), evaluates and
    draws; writes out/metrics.json, out/detections.png, the trained model out/model.pt (a
    detector checkpoint: `python -m roiops export` and `predict` take it) and the first held-out
    images as PNG files in out/images/, and returns the metrics. With several
    processes (distributed.run calls this in each), all train and the main one (rank 0) evaluates,
    writes and returns the metrics; the others return None."""
    import numpy as np

    from . import draw, evaluate, model, shapes, train

    process = process or Process()
    stream = stream or sys.stderr
    torch.manual_seed(seed)
    detector = model.small_maskrcnn().to(process.device)
    if process.is_main:
        budget = f", at most {minutes:g} minutes" if minutes is not None else ""
        print(
            f"training a small Mask R-CNN on synthetic shapes: {steps} steps of {BATCH_SIZE} "
            f"{shapes.IMAGE_SIZE}x{shapes.IMAGE_SIZE} images{budget}, {_where(process)}",
            file=stream,
        )
    start = time.perf_counter()
    seconds = None if minutes is None else 60.0 * minutes
    losses, scheduled = [], steps
    if steps:
        losses, scheduled, _ = train.train(
            detector, steps, BATCH_SIZE, seed, stream, seconds, process
        )
    train_seconds = time.perf_counter() - start
    if not process.is_main:
        return None
    start = time.perf_counter()
    held_out = shapes.ShapesDataset(seed, part=1, length=HELD_OUT_IMAGES)
    held_out_images, held_out_targets = shapes.as_lists(list(held_out))
    outputs = evaluate.predict(detector, held_out_images)
    metrics = evaluate.coco_metrics(held_out_targets, outputs)
    eval_seconds = time.perf_counter() - start
    report = {
        **metrics,
        "steps": len(losses),
        "planned_steps": steps,
        "scheduled_steps": scheduled,  # the steps the learning-rate schedule decayed over
        "minutes": minutes,
        "batch_size": BATCH_SIZE,
        "processes": process.world_size,
        "device": process.device.type,
        "seed": seed,
        "held_out_images": HELD_OUT_IMAGES,
        "final_loss": float(np.mean(losses[-20:])) if losses else None,
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    save_detector(out / "model.pt", detector.cpu(), "roiops-demo", shapes.CLASSES)
    shapes.save_images(out / "images", held_out_images[:SAVED_IMAGES])
    draw.draw_detections(
        out / "detections.png",
        held_out_images[:DRAWN_IMAGES],
        held_out_targets[:DRAWN_IMAGES],
        outputs[:DRAWN_IMAGES],
    )
    print(
        f"held-out images: box AP {metrics['box_AP']:.3f} (AP@0.5 {metrics['box_AP50']:.3f}), "
        f"mask AP {metrics['mask_AP']:.3f} (AP@0.5 {metrics['mask_AP50']:.3f}); "
        f"trained {len(losses)} steps in {train_seconds:.0f} s\nwrote {out / 'metrics.json'}, "
        f"{out / 'detections.png'}, {out / 'model.pt'} and {out / 'images'}/",
        file=stream,
    )
    return report


def _where(process: Process) -> str:
    if process.device.type == "cuda":
        gpus = f"{process.world_size} GPUs" if process.world_size > 1 else "a GPU"
        return f"on {gpus}"
    threads = f"{torch.get_num_threads()} CPU thread{'s' * (torch.get_num_threads() > 1)}"
    if process.world_size == 1:
        return threads
    return f"{process.world_size} processes (DistributedDataParallel, gloo) of {threads} each"
