"""`python -m roiops demo|bench|export|predict ...`; `python -m roiops <command> -h` describes
each."""

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


def _image_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(side) for side in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected HEIGHTxWIDTH, e.g. 800x1067, got {text!r}"
        ) from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"both sides must be positive, got {text}")
    return height, width


def _batch_range(text: str) -> tuple[int, int]:
    try:
        low, _, high = text.partition("-")
        batch = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN-MAX, e.g. 1-8, got {text!r}") from None
    if not 1 <= batch[0] <= batch[1]:
        raise argparse.ArgumentTypeError(f"expected 1 <= MIN <= MAX, got {text}")
    return batch


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
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{demo,bench,export,predict}"
    )

    from .demo.command import DEFAULT_MINUTES, DEFAULT_STEPS

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
    bench.add_argument(
        "--filter",
        default="",
        help="only the cases whose name contains this (or one of A|B|...)",
    )
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

    export = commands.add_parser(
        "export",
        help="a checkpoint to an ExportedProgram, an AOTInductor package and ONNX, each verified",
        description="Builds roiops.models.StaticMaskRCNN from a checkpoint (roiops' own -- the "
        "demo's model.pt --, or a torchvision / roiops R50-FPN state_dict) for images of one "
        "size and a range of batch sizes, and writes OUT/NAME.pt2 (torch.export), "
        "OUT/NAME.aoti.pt2 (AOTInductor package: python, or C++ -- examples/cpp) and "
        "OUT/NAME.onnx. Each file is loaded back and run on one batch before it is reported.",
    )
    export.add_argument("checkpoint", help="the detector checkpoint")
    export.add_argument(
        "--out", default="export-output", help="output folder (default: %(default)s)"
    )
    export.add_argument("--name", default="model", help="file name stem (default: %(default)s)")
    export.add_argument(
        "--format",
        default="pt2,aoti,onnx",
        help="comma-separated, of pt2,aoti,onnx,openvino (default: pt2,aoti,onnx)",
    )
    export.add_argument(
        "--image-size",
        type=_image_size,
        required=True,
        help="HEIGHTxWIDTH of the input images (others are letterboxed to it by predict)",
    )
    export.add_argument(
        "--batch", type=_batch_range, default=(1, 8), help="N or MIN-MAX (default: 1-8)"
    )
    export.add_argument(
        "--max-detections",
        type=_non_negative_int,
        default=100,
        help="detections per image (default: 100)",
    )
    export.add_argument(
        "--roi-masks",
        action="store_true",
        help="output each detection's 28x28 mask probabilities instead of pasted masks",
    )
    export.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default: cpu")
    export.add_argument(
        "--dtype",
        default="float32",
        help="float32 (default); bfloat16: pt2 and aoti computed under autocast, openvino run at "
        "bf16 precision; int8: openvino quantized by NNCF (needs --calibration)",
    )
    export.add_argument(
        "--calibration",
        default=None,
        metavar="DIR",
        help="a folder of your own images: int8's calibration, and the images a reduced-precision "
        "file is verified on (default: random images)",
    )

    predict = commands.add_parser(
        "predict",
        help="run a model over images: COCO results and pictures",
        description="Runs MODEL -- a file of `roiops export` (.pt2, .aoti.pt2, .onnx) or a "
        "checkpoint -- over PNG / JPEG images (files, or the images of folders) letterboxed to "
        "its size, and writes OUT/detections.json (COCO results, masks as RLE), OUT/images.json "
        "and one picture per image. Unreadable images are named at the end (exit status 1).",
    )
    predict.add_argument("model", help="the model file or checkpoint")
    predict.add_argument("images", nargs="+", help="image files or folders")
    predict.add_argument(
        "--out", default="predict-output", help="output folder (default: %(default)s)"
    )
    predict.add_argument(
        "--batch-size", type=_non_negative_int, default=4, help="images per batch (default: 4)"
    )
    predict.add_argument(
        "--image-size",
        type=_image_size,
        default=None,
        help="HEIGHTxWIDTH to run a checkpoint at (default: its min_size x max_size)",
    )
    predict.add_argument(
        "--draw-threshold",
        type=float,
        default=0.5,
        help="draw detections scoring at least this (default: 0.5; all are in detections.json)",
    )
    predict.add_argument(
        "--device",
        default=None,
        choices=["cpu", "cuda"],
        help="default: the device the model was exported for (a checkpoint: cpu); an AOTInductor "
        "package runs only there, an ONNX or OpenVINO file on the CPU",
    )
    predict.add_argument(
        "--runtime",
        default=None,
        choices=["onnxruntime", "openvino"],
        help="what runs an .onnx file (default: onnxruntime)",
    )
    predict.add_argument(
        "--precision",
        default=None,
        choices=["f32", "bf16", "default"],
        help="OpenVINO's inference precision (an .xml file, or .onnx with --runtime openvino); "
        "default: the file's dtype (float32: f32, bfloat16: bf16); 'default': OpenVINO's own "
        "choice (bf16 on a CPU with bf16 units)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import command as demo
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
    if args.command in ("export", "predict"):
        return _deploy(parser, args)
    from .bench import command as bench

    try:
        options = bench.Options.from_args(args)
        writable_directory(args.out)
    except ValueError as err:
        parser.error(str(err))
    return bench.run(options)


def _deploy(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .errors import ArgumentValueError

    try:
        out = writable_directory(args.out)
        if args.command == "export":
            from .deploy import export

            written = export.export(
                args.checkpoint,
                out,
                args.name,
                [f.strip() for f in args.format.split(",") if f.strip()],
                args.image_size,
                args.batch,
                args.max_detections,
                args.device,
                args.dtype,
                paste_masks=not args.roi_masks,
                calibration=args.calibration,
            )
            return 0 if all(w.problem is None for w in written) else 1
        from .deploy import predict
        from .deploy.formats import RunOptions

        options = RunOptions(args.device, args.image_size, args.runtime, args.precision)
        return predict.predict(
            args.model, args.images, out, args.batch_size, args.draw_threshold, options
        )
    except ArgumentValueError as err:
        parser.error(str(err))


if __name__ == "__main__":
    sys.exit(main())
