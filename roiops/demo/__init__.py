"""`python -m roiops demo`: train a small Mask R-CNN on synthetic shapes on the CPU, evaluate it
with COCO's metrics and draw its detections.

    shapes.py    the seeded dataset (squares, circles, triangles with boxes and masks)
    model.py     roiops' Mask R-CNN around a small backbone (roiops.models.detector.assemble)
    train.py     AdamW with warm-up and cosine decay, a progress bar
    evaluate.py  COCO box / mask AP with pycocotools
    draw.py      detections.png
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import torch

DEFAULT_STEPS = 800
# The training's share of a 5-minute demo on a slow 2-core machine (set-up and evaluation of the
# 200 held-out images take ~5 s on the recording machine, ~15 s at a third of its speed).
DEFAULT_MINUTES = 4.6
BATCH_SIZE = 8
HELD_OUT_IMAGES = 200
DRAWN_IMAGES = 6


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
) -> dict:
    """Trains (at most `steps` steps, fitted into `minutes` of training when given), evaluates and
    draws; writes out/metrics.json and out/detections.png and returns the metrics."""
    import numpy as np

    from . import draw, evaluate, model, shapes, train

    stream = stream or sys.stderr
    torch.manual_seed(seed)
    detector = model.small_maskrcnn()
    held_out_images, held_out_targets = shapes.batch(
        np.random.default_rng([seed, 1]), HELD_OUT_IMAGES
    )
    budget = f", at most {minutes:g} minutes" if minutes is not None else ""
    print(
        f"training a small Mask R-CNN on synthetic shapes: {steps} steps of {BATCH_SIZE} "
        f"{shapes.IMAGE_SIZE}x{shapes.IMAGE_SIZE} images{budget}, {torch.get_num_threads()} CPU "
        "threads",
        file=stream,
    )
    start = time.perf_counter()
    seconds = None if minutes is None else 60.0 * minutes
    losses = train.train(detector, steps, BATCH_SIZE, seed, stream, seconds) if steps else []
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    outputs = evaluate.predict(detector, held_out_images)
    metrics = evaluate.coco_metrics(held_out_targets, outputs)
    eval_seconds = time.perf_counter() - start
    report = {
        **metrics,
        "steps": len(losses),
        "planned_steps": steps,
        "minutes": minutes,
        "batch_size": BATCH_SIZE,
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
    draw.draw_detections(
        out / "detections.png",
        held_out_images[:DRAWN_IMAGES],
        held_out_targets[:DRAWN_IMAGES],
        outputs[:DRAWN_IMAGES],
    )
    print(
        f"held-out images: box AP {metrics['box_AP']:.3f} (AP@0.5 {metrics['box_AP50']:.3f}), "
        f"mask AP {metrics['mask_AP']:.3f} (AP@0.5 {metrics['mask_AP50']:.3f}); "
        f"trained {len(losses)} steps in {train_seconds:.0f} s\nwrote {out / 'metrics.json'} and "
        f"{out / 'detections.png'}",
        file=stream,
    )
    return report
