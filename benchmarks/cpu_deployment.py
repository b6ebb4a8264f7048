"""Mask R-CNN R50-FPN on the CPU in every runtime and precision roiops deploys to, all timed in one
process, round-robin: every round runs each variant once, in a rotating order, so that a slow
phase of a shared machine hits them alike. Medians; ratios against torchvision's eager model in
float32 from the same rounds.

    python benchmarks/cpu_deployment.py [--images 1] [--rounds 5] [--out DIR]

The deployed variants are written by `roiops export`'s own code (roiops.bench.model_cases.
deployed_model: export time and file size in the table) from random weights (seed 0,
box_score_thresh 0: 100 detections reach the mask branch) for 800x1067 images. Accuracy is not
measured here (random weights): tests/test_deploy.py measures it on the demo's trained model.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

VARIANTS = [
    # (row, how): eager ones are (model side, autocast); deployed ones (format, precision)
    ("torchvision eager, float32", ("torchvision", False)),
    ("torchvision eager, bf16 autocast", ("torchvision", True)),
    ("roiops eager, float32", ("roiops", False)),
    ("roiops eager, bf16 autocast", ("roiops", True)),
    ("roiops AOTInductor package, float32", ("aoti", "float32")),
    ("roiops AOTInductor package, bfloat16 (autocast)", ("aoti", "bfloat16")),
    ("roiops ONNX in ONNX Runtime, float32", ("onnx", "float32")),
    ("roiops OpenVINO, f32", ("openvino", "float32")),
    ("roiops OpenVINO, bf16", ("openvino", "bfloat16")),
    ("roiops OpenVINO, int8 (bf16 elsewhere)", ("openvino", "int8")),
]


def prepare(how, count: int):
    """(callable, notes) of one variant."""
    from roiops.bench.model_cases import IMAGE_SIZES, deployed_model, models

    device = torch.device("cpu")
    side, option = how
    if side in ("torchvision", "roiops"):
        tv, ours = models("cpu")
        model = tv if side == "torchvision" else ours
        g = torch.Generator().manual_seed(count)
        batch = list(torch.rand(count, 3, *IMAGE_SIZES[0], generator=g))

        def run():
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=option):
                return model(batch)

        return run, ""
    prepared = deployed_model(device, torch.float32, count=count, format=side, precision=option)
    return prepared.ours, prepared.notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=None, help="write table.md and results.json here")
    args = parser.parse_args()
    runs, notes = {}, {}
    for name, how in VARIANTS:
        start = time.perf_counter()
        runs[name], notes[name] = prepare(how, args.images)
        runs[name]()  # the first call allocates (and, for a compiled package, loads)
        print(f"prepared {name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    times = {name: [] for name in runs}
    names = list(runs)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
    reference = statistics.median(times[VARIANTS[0][0]])
    header = {
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "images": args.images,
        "rounds": args.rounds,
    }
    lines = [
        " | ".join(f"{k}: {v}" for k, v in header.items()),
        "",
        f"| {args.images} x 800x1067 | ms (median) | vs torchvision eager float32 | notes |",
        "|---|---|---|---|",
    ]
    rows = []
    for name in names:
        ms = statistics.median(times[name]) * 1e3
        samples = [t * 1e3 for t in times[name]]
        speedup = reference * 1e3 / ms
        rows.append(
            {
                "variant": name,
                "ms": ms,
                "speedup": speedup,
                "notes": notes[name],
                "samples_ms": samples,
            }
        )
        lines.append(f"| {name} | {ms:.0f} | {speedup:.2f}x | {notes[name]} |")
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text("\n".join(lines) + "\n")
        (out / "results.json").write_text(json.dumps({"header": header, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
