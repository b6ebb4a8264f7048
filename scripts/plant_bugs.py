"""Plants one-line bugs in the deployment code, one at a time, and runs the tests that cover it:
a test suite that passes with a bug planted does not protect what it claims to. Not part of CI
(each plant runs its tests; the C++ ones rebuild the runner): run it after changing deployment
code or its tests.

    python scripts/plant_bugs.py [--only SUBSTRING] [--keep]

Each plant is made in a temporary copy of the installed roiops package and of this checkout's
tests, examples and demo model (PYTHONPATH puts the copy first), so neither the checkout nor the
installation is touched. Prints one line per plant -- caught (by which test) or MISSED -- and
exits 1 if any was missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Plant:
    what: str  # the promise the bug breaks
    file: str  # relative to the copy's root: roiops/... or examples/...
    old: str  # one line's text, replaced once
    new: str
    tests: str  # the test file under tests/ ...
    select: str = ""  # ... and its -k selection


PLANTS = [
    Plant("letterbox pads with the mean colour", "roiops/deploy/images.py",
          "canvas = mean.expand(3, info.image_height, info.image_width).clone()",
          "canvas = torch.zeros(3, info.image_height, info.image_width)",
          "test_deploy.py", "letterbox"),
    Plant("float32 verification's box tolerance", "roiops/deploy/export.py",
          'FLOAT32_TOLERANCE = {"boxes": 1e-2', 'FLOAT32_TOLERANCE = {"boxes": 1e9',
          "test_deploy.py", "verification"),
    Plant("reduced-precision verification needs 90% found", "roiops/deploy/export.py",
          "    found: float = 0.9", "    found: float = 0.0",
          "test_deploy.py", "verification"),
    Plant("pictures show detections >= --draw-threshold", "roiops/deploy/predict.py",
          "shown = scores >= job.draw_threshold", "shown = scores >= 0",
          "test_deploy.py", "pictures"),
    Plant("COCO RLE starts with a run of zeros", "roiops/deploy/predict.py",
          "counts = [0, *counts]", "counts = counts",
          "test_deploy.py", "rle"),
    Plant("boxes mapped back are clamped to the image", "roiops/deploy/predict.py",
          "boxes = torch.minimum(boxes.clamp(min=0), limits)", "boxes = boxes",
          "test_deploy.py", "letterboxes or every_format"),
    Plant("a batch below the smallest is padded", "roiops/deploy/predict.py",
          "batch = torch.stack(images + images[-1:] * (opened.info.batch_min - len(images)))",
          "batch = torch.stack(images)",
          "test_deploy.py", "every_format or held_out or padded"),
    Plant("metadata lists round-trip as JSON", "roiops/deploy/model_files.py",
          "INFO_PREFIX + key: json.dumps(value) if isinstance(value, list) else str(value)",
          "INFO_PREFIX + key: str(value)",
          "test_deploy.py", "writes_and_verifies"),
    Plant("a file runs only where it can", "roiops/deploy/formats.py",
          "and torch.device(options.device) != torch.device(device):",
          "and False:",
          "test_deploy.py", "where_it_was_exported or refuses_another"),
    Plant("OpenVINO runs a float32 file at f32", "roiops/deploy/formats.py",
          'return {"float32": "f32", "bfloat16": "bf16"}.get(info.dtype)',
          'return {"float32": "bf16", "bfloat16": "bf16"}.get(info.dtype)',
          "test_deploy.py", "every_format"),
    Plant("OpenVINO's NMS threshold judged as roiops'", "roiops/deploy/formats.py",
          "        node.input(3).replace_source_output(openvino.opset13.constant(above).output(0))",
          "        pass",
          "test_onnx.py", "openvino and nms"),
    Plant("int8 without calibration is refused", "roiops/deploy/export.py",
          '    if dtype == "int8" and not calibrated:', '    if False:',
          "test_deploy.py", "refuses_bad_use"),
    Plant("a missing runtime is refused up front", "roiops/deploy/formats.py",
          "        needs=(\"onnx\", \"onnxscript\", \"onnxruntime\"),",
          "        needs=(\"onnx\", \"onnxscript\"),",
          "test_deploy.py", "missing_extra"),
    Plant("an AOTInductor package is recognised by its content", "roiops/deploy/formats.py",
          'return any("/aotinductor/" in n for n in _zip_names(path))', "return False",
          "test_deploy.py", "writes_and_verifies"),
    Plant("the ONNX RoiAlign's coordinate mode", "roiops/ops/roi_align.py",
          'coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",',
          'coordinate_transformation_mode="output_half_pixel",',
          "test_onnx.py", "test_roi_align and onnxruntime"),
    Plant("NMS ties in index order in any runtime", "roiops/ops/nms.py",
          "    return op.Where(small, stable, order)", "    return order",
          "test_onnx.py", "test_nms and openvino"),
    Plant("a stopped run's done batches are not done again", "roiops/deploy/predict.py",
          "job.batches, process.world_size) if not record.done(k)]",
          "job.batches, process.world_size)]",
          "test_predict_at_scale.py", "killed"),
    Plant("each process takes its own batches", "roiops/deploy/predict.py",
          "range(process.rank, job.batches, process.world_size)",
          "range(0, job.batches, process.world_size)",
          "test_predict_at_scale.py", "two_processes or torchrun"),
    Plant("a rerun with other arguments is refused", "roiops/deploy/parts.py",
          "            if differ:", "            if False:",
          "test_predict_at_scale.py", "refused"),
    Plant("an image's id is its place in the input list", "roiops/deploy/predict.py",
          "enumerate(self.files[start : start + self.batch_size], start)",
          "enumerate(self.files[start : start + self.batch_size])",
          "test_predict_at_scale.py", "two_processes or reference"),
    Plant("the parts are merged in batch order", "roiops/deploy/parts.py",
          "            for k in range(self.batches):",
          "            for k in reversed(range(self.batches)):",
          "test_predict_at_scale.py", "reference"),
    Plant("16-bit grey PNGs keep their high byte", "roiops/deploy/images.py",
          "(np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)",
          "np.asarray(image).clip(0, 255).astype(np.uint8)",
          "test_predict_at_scale.py", "kind"),
    Plant("alpha is composited onto the background", "roiops/deploy/images.py",
          "pixels = pixels[..., :3] * alpha + colour * (1 - alpha)",
          "pixels = pixels[..., :3]",
          "test_predict_at_scale.py", "kind"),
    Plant("EXIF orientation is applied", "roiops/deploy/images.py",
          "image = ImageOps.exif_transpose(image)", "image = image",
          "test_predict_at_scale.py", "exif or kind"),
    Plant("C++: 16-bit PNGs keep their high byte", "examples/cpp/predict.cpp",
          "  png_set_strip_16(png);", "  png_set_scale_16(png);",
          "test_deploy.py", "cpp and kind"),
    Plant("C++: alpha is composited onto the mean colour", "examples/cpp/predict.cpp",
          "(pixel[c] / 255.0f) * alpha + mean[c] * (1.0f - alpha);", "pixel[c] / 255.0f;",
          "test_deploy.py", "cpp and kind"),
    Plant("C++: the letterbox pads with the mean colour", "examples/cpp/predict.cpp",
          "at::Tensor canvas = mean.view({3, 1, 1}).expand({3, info.height, info.width}).clone();",
          "at::Tensor canvas = at::zeros({3, info.height, info.width});",
          "test_deploy.py", "cpp"),
    Plant("C++: RLE backslashes escaped in JSON", "examples/cpp/predict.cpp",
          "    if (c == '\\\\') escaped += '\\\\';", "",
          "test_deploy.py", "cpp"),
    Plant("C++: boxes mapped back are clamped", "examples/cpp/predict.cpp",
          "  boxes = at::minimum(boxes.clamp_min(0), limits);", "",
          "test_deploy.py", "cpp"),
    Plant("C++: outputs read by name", "examples/cpp/predict.cpp",
          'const at::Tensor& scores_all = info.output(outputs, "scores");',
          'const at::Tensor& scores_all = outputs[2];',
          "test_deploy.py", "cpp"),
]  # fmt: skip


def copy_tree(work: Path) -> None:
    import roiops  # the installed package, its op library built

    shutil.copytree(Path(roiops.__file__).parent, work / "roiops",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ["tests", "examples"]:
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "docs" / "demo", work / "docs" / "demo")
    shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")


def run(plant: Plant, work: Path) -> tuple[bool, str]:
    """(caught, by what) with the plant in place; the file is restored afterwards."""
    target = work / plant.file
    original = target.read_text()
    if original.count(plant.old) < 1:
        return False, f"NOT PLANTED: {plant.old!r} is not in {plant.file} (the code moved)"
    target.write_text(original.replace(plant.old, plant.new, 1))
    try:
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                   str(work / "tests" / plant.tests)]  # fmt: skip
        if plant.select:
            command += ["-k", plant.select]
        env = {**os.environ, "PYTHONPATH": str(work)}
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    finally:
        target.write_text(original)
    failed = [line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if result.returncode == 0:
        return False, "MISSED"
    if result.returncode == 5:
        return False, f"NO TEST SELECTED by -k {plant.select!r}"
    return True, failed[0].split(" - ")[0] if failed else f"pytest exit {result.returncode}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="the plants whose promise contains this")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args()
    plants = [p for p in PLANTS if args.only in p.what]
    work = Path(tempfile.mkdtemp(prefix="roiops-plants-"))
    caught = 0
    try:
        copy_tree(work)
        for plant in plants:
            ok, how = run(plant, work)
            caught += ok
            print(f"{'caught' if ok else 'MISSED'}: {plant.what} ({plant.file}): {how}",
                  flush=True)  # fmt: skip
    finally:
        if args.keep:
            print(f"copy kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{caught} of {len(plants)} planted bugs caught")
    return 0 if caught == len(plants) else 1


if __name__ == "__main__":
    sys.exit(main())
