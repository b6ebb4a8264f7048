"""`python -m roiops demo ...` and `python -m roiops bench ...`; `python -m roiops <command> -h`
describes each."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def writable_directory(path: str) -> Path:
    """The --out check, before any work: make the folder and write a file in it."""
    out = Path(path)
    probe = out / ".roiops-write-check"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"--out {path} is not a writable folder: {err.strerror or err}") from None
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m roiops", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,bench}")

    from .demo import DEFAULT_MINUTES, DEFAULT_STEPS

    demo = commands.add_parser(
        "demo",
        help="train a small Mask R-CNN on synthetic shapes (CPU, minutes), evaluate, draw",
        description="Trains roiops' Mask R-CNN with a small backbone on seeded synthetic shapes "
        "(on the CPU, or GPUs with --device cuda; in one process, or data-parallel in several: "
        "--nproc N, or `torchrun --nproc-per-node N -m roiops demo`), evaluates it on held-out "
        "images with COCO's metrics (pycocotools) and writes OUT/metrics.json and "
        "OUT/detections.png.",
    )
    demo.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument(
        "--steps",
        type=_non_negative_int,
        default=DEFAULT_STEPS,
        help=f"training steps of 8 images (default: {DEFAULT_STEPS}; 0: evaluate untrained)",
    )
    demo.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default: 0)")
    demo.add_argument(
        "--minutes",
        type=_positive_float,
        default=DEFAULT_MINUTES,
        help=f"training time budget (default: {DEFAULT_MINUTES:g}, which keeps the whole demo "
        "within 5 minutes on a slow 2-core CPU): the speed of the first steps fits the schedule "
        "to it, so a slow machine trains fewer steps",
    )

    demo.add_argument(
        "--nproc",
        type=_non_negative_int,
        default=None,
        help="train data-parallel in this many processes started here (1, 2, 4 or 8: each takes "
        "its share of every batch; DistributedDataParallel, gloo on the CPU, nccl with --device "
        "cuda); rank 0 evaluates and writes. Under torchrun leave it out: torchrun starts them",
    )
    demo.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda"],
        help="default: cpu; cuda: one GPU per process",
    )

    bench = commands.add_parser(
        "bench",
        help="time roiops against torchvision, write report.md and speedup.png",
        description="Times every benchmark case of roiops against torchvision, interleaved in this "
        "process, prints the ratio table and writes OUT/report.md, OUT/results.json and "
        "OUT/speedup.png.",
    )
    bench.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default: cpu")
    bench.add_argument(
        "--dtypes", default="float32", help="comma-separated, of float32,float16,bfloat16"
    )
    bench.add_argument("--out", default="bench-output", help="output folder (default: %(default)s)")
    bench.add_argument("--filter", default="", help="only the cases whose name contains this")
    bench.add_argument(
        "--all",
        action="store_true",
        help="also the slow cases: on the CPU the Mask R-CNN rows but the 1-image inference "
        "(2 images, per stage, StaticMaskRCNN eager and compiled: tens of minutes on 2 cores), on "
        "CUDA the deterministic-mode backward (about 80 s on an H200)",
    )
    bench.add_argument(
        "--min-run-time",
        type=float,
        default=None,
        help="seconds of timing per case and side (default: 1 CPU, 0.5 CUDA)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from . import demo
        from .demo import distributed

        try:
            out = writable_directory(args.out)
        except ValueError as err:
            parser.error(str(err))
        demo.check_dependencies()
        try:
            distributed.check(args.nproc, args.device, demo.BATCH_SIZE)
        except ValueError as err:
            parser.error(str(err))
        work = functools.partial(
            demo.run, out, steps=args.steps, seed=args.seed, minutes=args.minutes
        )
        distributed.run(work, args.nproc, args.device)
        return 0
    from . import bench

    try:
        options = bench.Options.from_args(args)
        writable_directory(args.out)
    except ValueError as err:
        parser.error(str(err))
    return bench.run(options)


if __name__ == "__main__":
    sys.exit(main())
