"""Box and mask AP of the demo's trained model (docs/demo/model.pt, 128x128) in every format and
precision `roiops export` writes, on the demo's 200 held-out images, through `roiops predict`
(PNG files, letterbox, COCO results) and pycocotools: the accuracy side of the README's deployment
table. int8 is calibrated on 32 of the demo's training images.

    python benchmarks/deploy_accuracy.py [--out DIR]

tests/test_deploy.py asserts the contract (at most 0.01 AP lost) on the same images.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "docs" / "demo" / "model.pt"
# (row, export dtype, format, predict options)
VARIANTS = [
    ("PyTorch eager (the checkpoint), float32", None, None, []),
    ("ExportedProgram (.pt2), float32", "float32", "pt2", []),
    ("AOTInductor package, float32", "float32", "aoti", []),
    ("ONNX in ONNX Runtime, float32", "float32", "onnx", []),
    ("ONNX in OpenVINO, f32", "float32", "onnx", ["--runtime", "openvino"]),
    ("OpenVINO IR, f32", "float32", "openvino", []),
    ("ExportedProgram (.pt2), bfloat16 autocast", "bfloat16", "pt2", []),
    ("AOTInductor package, bfloat16 autocast", "bfloat16", "aoti", []),
    ("OpenVINO IR, bf16", "bfloat16", "openvino", []),
    ("OpenVINO IR, int8 (bf16 elsewhere)", "int8", "openvino", []),
    ("OpenVINO IR, int8 (f32 elsewhere)", "int8", "openvino", ["--precision", "f32"]),
]
SUFFIX = {"pt2": ".pt2", "aoti": ".aoti.pt2", "onnx": ".onnx", "openvino": ".xml"}


def command(*argv: str) -> str:
    from roiops.__main__ import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(list(argv))
    if status != 0:
        raise RuntimeError(err.getvalue())
    return err.getvalue()


def coco_ap(folder: Path, targets) -> tuple[float, float]:
    from pycocotools.cocoeval import COCOeval

    from roiops.demo.evaluate import ground_truth

    metrics = []
    with contextlib.redirect_stdout(io.StringIO()):
        truth = ground_truth(targets)
        for kind in ["bbox", "segm"]:
            evaluation = COCOeval(truth, truth.loadRes(str(folder / "detections.json")), kind)
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
            metrics.append(float(evaluation.stats[0]))
    return metrics[0], metrics[1]


def main() -> int:
    from roiops.demo import shapes

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="write table.md and results.json here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        images, targets = shapes.as_lists(list(shapes.ShapesDataset(0, part=1, length=200)))
        shapes.save_images(work / "held_out", images)
        training, _ = shapes.as_lists(list(shapes.ShapesDataset(0, part=0, length=32)))
        shapes.save_images(work / "calibration", training)
        for dtype in ["float32", "bfloat16", "int8"]:
            formats = sorted({f for _, d, f, _ in VARIANTS if d == dtype})
            print(f"exporting {dtype}: {', '.join(formats)}", file=sys.stderr)
            command(
                "export", str(CHECKPOINT), "--image-size", "128x128", "--batch", "1-8",
                "--dtype", dtype, "--format", ",".join(formats), "--out", str(work / dtype),
                "--calibration", str(work / "calibration"),
            )  # fmt: skip
        rows = []
        for name, dtype, fmt, options in VARIANTS:
            model = CHECKPOINT if fmt is None else work / dtype / f"model{SUFFIX[fmt]}"
            out = work / f"predict-{len(rows)}"
            command("predict", str(model), str(work / "held_out"), "--out", str(out),
                    "--batch-size", "8", *options)  # fmt: skip
            box, mask = coco_ap(out, targets)
            rows.append({"variant": name, "box_AP": box, "mask_AP": mask})
            print(f"{name}: box AP {box:.4f}, mask AP {mask:.4f}", file=sys.stderr)
    base = rows[0]
    lines = ["| demo model, 200 held-out images | box AP | mask AP |", "|---|---|---|"]
    for row in rows:
        box = row["box_AP"] - base["box_AP"]
        mask = row["mask_AP"] - base["mask_AP"]
        lines.append(
            f"| {row['variant']} | {row['box_AP']:.4f} ({box:+.4f}) | "
            f"{row['mask_AP']:.4f} ({mask:+.4f}) |"
        )
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "accuracy.md").write_text("\n".join(lines) + "\n")
        (out / "accuracy.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
