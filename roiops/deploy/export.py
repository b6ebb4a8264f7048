"""`python -m roiops export`: a detector checkpoint -> StaticMaskRCNN of a fixed image size and a
batch range -> the formats asked for (formats.py), in the dtype asked for. Each file is loaded
back and run on one batch before it is reported done, and compared with the float32 eager model
on that batch (`compare`): a float32 file within FLOAT32_TOLERANCE slot by slot (an ExportedProgram
bit for bit), a bfloat16 or int8 file by its confident detections (AGREEMENT). With
--calibration, the comparison runs on the first VERIFICATION_IMAGES of those images (real
detections), else on random images."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import _cli
from ..errors import ArgumentValueError
from .formats import DTYPES, FORMATS, Exporting, Format, RunOptions, open_model
from .model_files import info_of

# A float32 file's outputs against the eager model's on the same batch: the same counts and
# labels, and these distances (absolute) elsewhere. Inductor's, ONNX Runtime's and OpenVINO's
# convolutions are not ATen's; after a backbone the boxes move by hundredths of a pixel at most
# (tests/test_onnx_models.py, tests/test_deploy.py).
FLOAT32_TOLERANCE = {"boxes": 1e-2, "scores": 1e-4, "masks": 1e-3, "roi_masks": 1e-3}


@dataclass(frozen=True)
class Agreement:
    """How a reduced-precision file's detections must agree with the float32 model's. Slots
    cannot be compared one to one: rounding moves scores and reorders near-equal detections. So
    each detection scoring at least `confident` in either is looked for in the other -- the same
    label, a box overlapping it by at least `box_iou`, a score within `score`, pasted masks (> 0.5)
    overlapping by at least `mask_iou` --, and at least `found` of them must be there."""

    box_iou: float = 0.8
    score: float = 0.1
    mask_iou: float = 0.7
    found: float = 0.9
    confident: float = 0.5


# Measured on the demo's model over its 200 held-out images (1350 confident detections, 2026-12-07;
# tests/test_deploy.py): under this rule OpenVINO bf16 finds 99.6 % of them, PyTorch under bf16
# autocast 98.7 %, OpenVINO int8 98.1 %; the int8 file whose mask paste NNCF had quantized (mask
# AP 0.11 instead of 0.68) fails it. Box and mask AP: README's table.
AGREEMENT = Agreement()
VERIFICATION_IMAGES = 16  # of the calibration folder, when one is given: real detections
CALIBRATION_IMAGES = 300  # at most, the first by name: NNCF's default subset


HELP = "a checkpoint to deployable files (pt2, AOTInductor, ONNX, OpenVINO), each verified"
DESCRIPTION = (
    "Builds roiops.models.StaticMaskRCNN from a checkpoint (roiops' own -- the demo's model.pt "
    "--, or a torchvision / roiops R50-FPN state_dict) for images of one size and a range of batch "
    "sizes, and writes OUT/NAME.pt2 (torch.export), OUT/NAME.aoti.pt2 (AOTInductor package: "
    "python, or C++ -- examples/cpp), OUT/NAME.onnx and OUT/NAME.xml + .bin (OpenVINO), in "
    "float32, bfloat16 or int8. Each file is loaded back, run and compared with the float32 model "
    "before it is reported; the report goes to stderr, the written files' paths to stdout."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="the detector checkpoint")
    parser.add_argument(
        "--out", default="export-output", help="output folder (default: %(default)s)"
    )
    parser.add_argument("--name", default="model", help="file name stem (default: %(default)s)")
    parser.add_argument(
        "--format",
        default="pt2,aoti,onnx",
        help=f"comma-separated, of {','.join(FORMATS)} (default: %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=_cli.image_size,
        required=True,
        help="HEIGHTxWIDTH of the input images (others are letterboxed to it by predict)",
    )
    parser.add_argument(
        "--batch", type=_cli.batch_range, default=(1, 8), help="N or MIN-MAX (default: 1-8)"
    )
    parser.add_argument(
        "--max-detections",
        type=_cli.non_negative_int,
        default=100,
        help="detections per image (default: 100)",
    )
    parser.add_argument(
        "--roi-masks",
        action="store_true",
        help="output each detection's 28x28 mask probabilities instead of pasted masks",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default: cpu")
    parser.add_argument(
        "--dtype",
        default="float32",
        help="float32 (default); bfloat16: pt2 and aoti computed under autocast, openvino run at "
        "bf16 precision; int8: openvino quantized by NNCF (needs --calibration)",
    )
    parser.add_argument(
        "--calibration",
        default=None,
        metavar="DIR",
        help="a folder of your own images: int8's calibration, and the images a file is verified "
        "on (default: random images)",
    )


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Exit status 0 when every file verified, 1 when one did not (it is written all the same)."""
    try:
        written = export(
            args.checkpoint,
            _cli.writable_directory(args.out),
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
    except ValueError as err:  # ArgumentValueError: what was refused, before any work
        parser.error(str(err))
    for done in written:
        for path in FORMATS[done.format].files(done.path):
            print(path)  # stdout: the files, for a script to take
    return 0 if all(w.problem is None for w in written) else 1


@dataclass
class Written:
    format: str
    path: Path
    seconds: float  # export (and compile) time
    problem: str | None  # None: verified
    detail: str  # how it was verified, or what did not hold

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in FORMATS[self.format].files(self.path))


def check_options(names: list[str], device: str, dtype: str, calibrated: bool) -> list[Format]:
    """Everything that can be refused before the checkpoint is read; the formats asked for."""
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ArgumentValueError(f"--format {','.join(names)}: expected some of {list(FORMATS)}")
    formats = [FORMATS[n] for n in names]
    if dtype not in DTYPES:
        raise ArgumentValueError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    for fmt in formats:
        if dtype not in fmt.dtypes:
            able = [f.name for f in FORMATS.values() if dtype in f.dtypes]
            raise ArgumentValueError(
                f"--dtype {dtype}: --format {fmt.name} is exported in {', '.join(fmt.dtypes)} "
                f"only; {dtype} goes to {', '.join(able)}"
            )
    if dtype == "int8" and not calibrated:
        raise ArgumentValueError(
            "--dtype int8 needs --calibration DIR: a folder of your own images (a few hundred "
            "at most are used), on which the activations' ranges are measured"
        )
    if device == "cuda" and not torch.cuda.is_available():
        raise ArgumentValueError("--device cuda: this torch sees no GPU")
    for fmt in formats:
        missing = fmt.missing()
        if missing:
            raise ArgumentValueError(
                f"--format {fmt.name} needs {' and '.join(missing)}: "
                f"pip install 'roiops[{fmt.extra}]'"
            )
    if "aoti" in names and shutil.which("c++") is None and shutil.which("g++") is None:
        raise ArgumentValueError(
            "--format aoti compiles the model to C++: it needs a C++ compiler (c++ or g++) on PATH"
        )
    return formats


class _Autocast(torch.nn.Module):
    """The model run under torch.autocast (torchvision's recipe: convolutions and matrix products
    in `dtype`, box coding, RoIAlign's geometry and NMS in float32), its outputs in float32. An
    ExportedProgram of it keeps the autocast region; outside it autocast does not export."""

    def __init__(self, model: torch.nn.Module, device: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.device_type, self.dtype = model, torch.device(device).type, dtype

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device_type, self.dtype):
            outputs = self.model(images)
        return {k: v.float() if v.is_floating_point() else v for k, v in outputs.items()}


def export(
    checkpoint,
    out: Path,
    name: str,
    formats: list[str],
    image_size: tuple[int, int],
    batch: tuple[int, int],
    max_detections: int,
    device: str = "cpu",
    dtype: str = "float32",
    paste_masks: bool = True,
    calibration: str | None = None,
    stream=None,
) -> list[Written]:
    """`python -m roiops export`: everything checked, then the checkpoint and the calibration
    folder's images read, then export_detector."""
    from ..models.checkpoints import load_detector

    check_options(formats, device, dtype, calibration is not None)
    height, width = image_size
    if height < 1 or width < 1:
        raise ArgumentValueError(f"--image-size {height}x{width}: both sides must be positive")
    low, high = batch
    if not 1 <= low <= high:
        raise ArgumentValueError(f"--batch {low} {high}: expected 1 <= min <= max")
    detector = load_detector(checkpoint)
    mean = tuple(detector.model.transform.image_mean)  # transparency: as predict reads it
    images = _calibration_images(calibration, mean) if calibration is not None else []
    return export_detector(
        detector.model, detector.architecture, detector.classes, out, name, formats, image_size,
        batch, max_detections, device, dtype, paste_masks, images, stream,
    )  # fmt: skip


def export_detector(
    model,
    architecture: str,
    classes: list[str],
    out: Path,
    name: str,
    formats: list[str],
    image_size: tuple[int, int],
    batch: tuple[int, int],
    max_detections: int,
    device: str = "cpu",
    dtype: str = "float32",
    paste_masks: bool = True,
    calibration: list[torch.Tensor] | None = None,
    stream=None,
) -> list[Written]:
    """A roiops MaskRCNN as StaticMaskRCNN of `image_size` in each format, each file verified;
    calibration: images [3, h, w] in [0, 1] of any size (letterboxed here)."""
    from ..models import StaticMaskRCNN
    from .images import letterbox

    stream = stream or sys.stderr
    chosen = check_options(formats, device, dtype, bool(calibration))
    height, width = image_size
    low, high = batch
    static = StaticMaskRCNN(model.to(device), max_detections, paste_masks).eval()
    info = info_of(static, image_size, batch, architecture, classes, device, dtype)
    images = [letterbox(image, info)[0][None] for image in calibration or []]
    if dtype == "int8" and len(images) < low:
        raise ArgumentValueError(
            f"--calibration: {len(images)} images, fewer than the smallest batch ({low}): int8 "
            "is calibrated on whole batches"
        )
    count = min(max(2, low), high)
    # Verified on real images where there are some (reduced precision: real detections), else on
    # random ones; in batches of `count`, the first of them the example torch.export traces.
    batches = [
        torch.cat(images[i : i + count]).to(device)
        for i in range(0, min(len(images), VERIFICATION_IMAGES), count)
        if len(images[i : i + count]) >= low
    ]
    if not batches:
        generator = torch.Generator().manual_seed(0)
        batches = [torch.rand(count, 3, height, width, generator=generator).to(device)]
    example = batches[0]
    with torch.no_grad():
        try:
            references = [static(batch) for batch in batches]
        except Exception as err:
            raise ArgumentValueError(
                f"--image-size {height}x{width}: the model cannot take images of that size: {err}"
            ) from None
    reference = _concatenated(references)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"exporting {architecture} ({len(classes) - 1} classes) for "
        f"{height}x{width} images, batches of {low} to {high}, {max_detections} detections, on "
        f"{device}, in {dtype}"
        + (f"; int8 calibrated on {len(images)} images" if dtype == "int8" else "")
        + (f"; verified on {sum(len(b) for b in batches)} --calibration images" if images else ""),
        file=stream,
    )
    traced = static
    if dtype == "bfloat16":
        traced = _Autocast(static, device, torch.bfloat16)
    exporting = Exporting(static, traced, example, batch, info, images)
    written = []
    for fmt in chosen:
        path = fmt.path(out, name)
        start = time.perf_counter()
        fmt.write(exporting, path)
        seconds = time.perf_counter() - start
        opened = open_model(path, RunOptions())
        if opened.info != info:
            problem, detail = "metadata", f"its metadata reads back as {opened.info}"
        else:
            with torch.no_grad():
                outputs = _concatenated([opened.run(batch) for batch in batches])
            problem, detail = compare(reference, outputs, dtype, exact=fmt.exact)
        done = Written(fmt.name, path, seconds, problem, detail)
        written.append(done)
        verdict = f"verified: {detail}" if problem is None else f"NOT VERIFIED: {detail}"
        print(
            f"  {fmt.name:8} {path}  {done.size / 1e6:.1f} MB  {seconds:.1f} s  {opened.runs_as}"
            f"  {verdict}",
            file=stream,
        )
    for step, seconds in exporting.timings.items():
        print(f"  (of which {step}: {seconds:.1f} s, once for all formats)", file=stream)
    return written


def _concatenated(outputs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.cat([o[key].cpu() for o in outputs]) for key in outputs[0]}


def _calibration_images(folder: str, background: tuple[float, ...]) -> list[torch.Tensor]:
    """The folder's images (the first CALIBRATION_IMAGES by name), [3, h, w] each."""
    from .images import check_dependencies, image_files, read_image

    check_dependencies("--calibration")
    images = []
    for path in image_files([folder])[:CALIBRATION_IMAGES]:
        try:
            images.append(read_image(path, background))
        except Exception as err:
            raise ArgumentValueError(
                f"--calibration: {path} cannot be read ({type(err).__name__}: {err})"
            ) from None
    return images


# --- verification --------------------------------------------------------------------------


def compare(
    reference: dict[str, torch.Tensor],
    outputs: dict[str, torch.Tensor],
    dtype: str,
    exact: bool = False,
) -> tuple[str | None, str]:
    """(None, how it holds) when `outputs` reproduce the float32 eager model's `reference` as a
    file of `dtype` must; else (what failed, how)."""
    if dtype != "float32":
        return _agree(reference, outputs, AGREEMENT)
    for key in ["num_detections", "labels", *(k for k in reference if k in FLOAT32_TOLERANCE)]:
        if key not in outputs:
            return key, f"it has no {key!r} output"
        expected = reference[key]
        got = outputs[key].to(expected.device)
        if got.shape != expected.shape:
            return key, f"{key} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        limit = 0.0 if exact else FLOAT32_TOLERANCE.get(key, 0.0)
        wrong = ~((got.double() - expected.double()).abs() <= limit)  # NaN is wrong
        if wrong.any():
            slots = wrong.flatten(2).any(-1) if wrong.dim() > 2 else wrong  # [N, K] or [N]
            by = f" by more than {limit:g}" if limit else ""
            return key, (
                f"{key} differ{by} in {int(slots.sum())} of {slots.numel()} slots; if the eager "
                "model's scores are near-tied (untrained weights), detections may come out in "
                "another order: verify with the trained model"
            )
    if exact:
        return None, "equal to the eager model, bit for bit"
    return None, (
        "counts and labels equal, boxes within 1e-2 px, scores within 1e-4, masks within 1e-3 of "
        "the eager model"
    )


def _agree(reference: dict, outputs: dict, rule: Agreement) -> tuple[str | None, str]:
    looked_for, missing = 0, []
    for image in range(len(reference["num_detections"])):
        for a, b, whose in [(reference, outputs, "float32 model"), (outputs, reference, "file")]:
            for j in _confident(a, image, rule.confident):
                looked_for += 1
                if not _found(a, b, image, j, rule):
                    label, score = int(a["labels"][image, j]), float(a["scores"][image, j])
                    missing.append(f"image {image}: the {whose}'s label {label} at {score:.3f}")
    if looked_for == 0:
        return None, (
            f"no detection scores >= {rule.confident} on these images, nothing to compare: pass "
            "--calibration DIR (your images) to verify on real detections"
        )
    found = 1 - len(missing) / looked_for
    within = (
        f"(same label, box IoU >= {rule.box_iou}, score within {rule.score}, mask IoU >= "
        f"{rule.mask_iou})"
    )
    if found < rule.found:
        return "detections", (
            f"{found:.1%} of {looked_for} confident detections (score >= {rule.confident}) are in "
            f"both the file and the float32 model {within}, fewer than {rule.found:.0%}; not "
            f"found: {'; '.join(missing[:3])}"
        )
    return None, (
        f"{found:.1%} of {looked_for} confident detections (score >= {rule.confident}) in both "
        f"the file and the float32 model {within}"
    )


def _confident(outputs: dict, image: int, threshold: float) -> list[int]:
    count = int(outputs["num_detections"][image])
    return [j for j in range(count) if float(outputs["scores"][image, j]) >= threshold]


def _found(a: dict, b: dict, image: int, j: int, rule: Agreement) -> bool:
    """Whether b has a detection matching a's detection j under the rule."""
    from ..ops.boxes import box_iou

    label, score = int(a["labels"][image, j]), float(a["scores"][image, j])
    candidates = [
        k
        for k in range(int(b["num_detections"][image]))
        if int(b["labels"][image, k]) == label
        and abs(float(b["scores"][image, k]) - score) <= rule.score
    ]
    if not candidates:
        return False
    ious = box_iou(a["boxes"][image, j : j + 1].float(), b["boxes"][image, candidates].float())[0]
    for k, iou in zip(candidates, ious.tolist()):
        if iou < rule.box_iou:
            continue
        if "masks" not in a:
            return True
        mask_a, mask_b = a["masks"][image, j] > 0.5, b["masks"][image, k] > 0.5
        union = int((mask_a | mask_b).sum())
        if union == 0 or int((mask_a & mask_b).sum()) / union >= rule.mask_iou:
            return True
    return False
