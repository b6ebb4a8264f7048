"""`python -m roiops export`: a detector checkpoint -> StaticMaskRCNN of a fixed image size and a
batch range -> the formats asked for. Each file is loaded back and run on one batch before it is
reported done; its outputs must equal the eager model's within VERIFY_TOLERANCE."""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ArgumentValueError
from .model_files import FORMATS, ModelInfo, info_of, open_model

# A file's outputs against the eager model's on the same batch: the same counts and labels, and
# these distances (absolute) elsewhere. The ExportedProgram runs the eager kernels: exactly equal.
# Inductor's and ONNX Runtime's convolutions are not ATen's; after a backbone the boxes move by
# hundredths of a pixel at most (tests/test_onnx_models.py, tests/test_deploy.py).
VERIFY_TOLERANCE = {"boxes": 1e-2, "scores": 1e-4, "masks": 1e-3, "roi_masks": 1e-3}


@dataclass
class Written:
    format: str
    path: Path
    seconds: float  # export (and compile) time
    verified: str | None  # None: verified; else what did not hold


def check_options(formats: list[str], device: str, dtype: str) -> None:
    """Everything that can be refused before the checkpoint is read."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ArgumentValueError(f"--format {','.join(formats)}: expected some of {list(FORMATS)}")
    if dtype != "float32":
        raise ArgumentValueError(
            f"--dtype {dtype}: only float32 is exported so far (the model runs under autocast in "
            "eager PyTorch, not in an exported file)"
        )
    if device == "cuda" and not torch.cuda.is_available():
        raise ArgumentValueError("--device cuda: this torch sees no GPU")
    if "onnx" in formats:
        for module, package in (("onnx", "onnx"), ("onnxscript", "onnxscript")):
            try:
                __import__(module)
            except ImportError:
                raise ArgumentValueError(
                    f"--format onnx needs {package}: pip install 'roiops[onnx]'"
                ) from None
    if "aoti" in formats and shutil.which("c++") is None and shutil.which("g++") is None:
        raise ArgumentValueError(
            "--format aoti compiles the model to C++: it needs a C++ compiler (c++ or g++) on PATH"
        )


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
    stream=None,
) -> list[Written]:
    from ..models import StaticMaskRCNN
    from ..models.checkpoints import load_detector

    stream = stream or sys.stderr
    check_options(formats, device, dtype)
    height, width = image_size
    if height < 1 or width < 1:
        raise ArgumentValueError(f"--image-size {height}x{width}: both sides must be positive")
    low, high = batch
    if not 1 <= low <= high:
        raise ArgumentValueError(f"--batch {low} {high}: expected 1 <= min <= max")
    detector = load_detector(checkpoint)
    model = detector.model.to(device)
    static = StaticMaskRCNN(model, max_detections, paste_masks=paste_masks).eval()
    info = info_of(static, image_size, batch, detector.architecture, detector.classes, device,
                   dtype)  # fmt: skip
    example = torch.rand(min(max(2, low), high), 3, height, width, generator=_seeded())
    example = example.to(device)
    with torch.no_grad():
        try:
            reference = static(example)
        except Exception as err:
            raise ArgumentValueError(
                f"--image-size {height}x{width}: the model cannot take images of that size: {err}"
            ) from None
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"exporting {detector.architecture} ({len(detector.classes) - 1} classes) for "
        f"{height}x{width} images, batches of {low} to {high}, {max_detections} detections, on "
        f"{device}",
        file=stream,
    )
    start = time.perf_counter()
    program = _export_program(static, example, batch)
    export_seconds = time.perf_counter() - start
    print(f"  torch.export: {export_seconds:.1f} s", file=stream)
    written = []
    for kind in formats:
        path = out / f"{name}{FORMATS[kind]}"
        start = time.perf_counter()
        if kind == "pt2":
            extra = {"roiops.json": json.dumps(info.to_strings())}
            torch.export.save(program, str(path), extra_files=extra)
        elif kind == "aoti":
            torch._inductor.aoti_compile_and_package(
                program,
                package_path=str(path),
                inductor_configs={"aot_inductor.metadata": info.to_strings()},
            )
        else:
            _export_onnx(static, example, batch, info, list(reference), path)
        seconds = time.perf_counter() - start + export_seconds
        problem = _verify(path, info, example, reference)
        written.append(Written(kind, path, seconds, problem))
        size = path.stat().st_size / 1e6
        verdict = "verified" if problem is None else f"NOT VERIFIED: {problem}"
        print(f"  {kind:5} {path}  {size:.1f} MB  {seconds:.1f} s  {verdict}", file=stream)
    return written


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _dynamic_batch(batch: tuple[int, int]):
    low, high = batch
    if low == high:
        return None
    return ({0: torch.export.Dim("batch", min=low, max=high)},)


def _export_program(static, example, batch):
    with torch.no_grad():
        return torch.export.export(static, (example,), dynamic_shapes=_dynamic_batch(batch))


def _export_onnx(static, example, batch, info: ModelInfo, outputs: list[str], path: Path) -> None:
    import onnx

    with torch.no_grad():
        program = torch.onnx.export(
            static,
            (example,),
            dynamic_shapes=_dynamic_batch(batch),
            input_names=["images"],
            output_names=outputs,
            verbose=False,
        )
    model = program.model_proto
    for key, value in info.to_strings().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def _verify(path: Path, info: ModelInfo, example, reference) -> str | None:
    """None when the file, loaded back, reproduces the eager outputs on the example batch (random
    images); else what differs. Near-tied scores -- common with untrained weights -- may come out
    in another order from other convolutions: then say so."""
    opened = open_model(path)
    if opened.info != info:
        return f"its metadata reads back as {opened.info}"
    outputs = opened.run(example)
    exact = opened.kind == "pt2"  # the eager kernels: the very bits
    for key in ["num_detections", "labels", *(k for k in reference if k in VERIFY_TOLERANCE)]:
        expected, got = reference[key], outputs[key].to(reference[key].device)
        limit = 0.0 if exact else VERIFY_TOLERANCE.get(key, 0.0)
        wrong = (got.double() - expected.double()).abs() > limit
        if wrong.any():
            slots = wrong.flatten(2).any(-1) if wrong.dim() > 2 else wrong  # [N, K] or [N]
            by = f" by more than {limit:g}" if limit else ""
            return (
                f"{key} differ{by} in {int(slots.sum())} of {slots.numel()} slots; if the eager "
                "model's scores are near-tied (untrained weights), detections may come out in "
                "another order: verify with the trained model"
            )
    return None
