"""`roiops predict`'s images per second over a folder, as a user runs it (a fresh process each
time), in the configurations that matter: readers decoding ahead or not, pictures or not, one
process or two (--nproc 2), and optionally another roiops checkout's predict ("before").

    python benchmarks/predict_throughput.py [--images 200] [--before PATH] [--out FILE.md]

The model is the demo's recorded one (docs/demo/model.pt, run at 128x128), so the numbers are
predict's own work -- reading, letterboxing, mapping masks back, RLE, pictures, parts -- more
than the model's: over folders of the demo's images at their size (PNG, 128x128) and upscaled to
800x1067 JPEGs (a phone photo's shape; every mask is pasted, encoded and drawn at that size).
Images per second = (N - 2) / (time for N images - time for 2): the process start and the
model's opening are left out. --before PATH runs PATH's roiops (a copy of the package, e.g. from
`git show` of an older commit, with its built op library) on the same folders."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "docs" / "demo" / "model.pt"


def make_folders(root: Path, count: int) -> dict[str, Path]:
    from roiops.demo import shapes

    images, _ = shapes.as_lists(list(shapes.ShapesDataset(0, part=1, length=count)))
    small = root / "128x128"
    shapes.save_images(small, images)
    large = root / "800x1067"
    large.mkdir()
    from PIL import Image

    for k, image in enumerate(images):
        big = torch.nn.functional.interpolate(image[None], size=(800, 1067), mode="bilinear")[0]
        pixels = (big.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        Image.fromarray(pixels).save(large / f"{k:04d}.jpg", quality=90)
    return {"128x128 PNG": small, "800x1067 JPEG": large}


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--before", default=None, help="a folder holding an older roiops package")
    parser.add_argument("--out", default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()

    configurations = [
        ("this checkout: readers 0, pictures", ["--readers", "0"], None),
        ("this checkout: 1 reader (default), pictures", ["--readers", "1"], None),
        ("this checkout: 2 readers, pictures", ["--readers", "2"], None),
        ("this checkout: 1 reader, --no-pictures", ["--readers", "1", "--no-pictures"], None),
        ("this checkout: --nproc 2, pictures", ["--nproc", "2"], None),
    ]
    if args.before:
        configurations.insert(0, ("before: pictures", [], args.before))
    work = Path(tempfile.mkdtemp(prefix="roiops-predict-bench-"))
    rows = []
    try:
        folders = make_folders(work / "images", args.images)
        for size, folder in folders.items():
            few = work / f"few-{size.split()[0]}"
            few.mkdir()
            for path in sorted(folder.iterdir())[:2]:
                shutil.copy(path, few / path.name)
            for name, extra, package in configurations:
                env = dict(os.environ)
                if package:
                    env["PYTHONPATH"] = package
                command = [sys.executable, "-P", "-m", "roiops", "predict", str(MODEL),
                           "--image-size", "128x128", *extra]  # fmt: skip
                out = work / "out"
                times = []
                for inputs in [few, folder]:
                    shutil.rmtree(out, ignore_errors=True)
                    times.append(timed([*command, str(inputs), "--out", str(out)], env))
                rate = (args.images - 2) / (times[1] - times[0])
                rows.append((size, name, times[1], rate))
                print(f"{size} | {name}: {times[1]:.1f} s, {rate:.1f} img/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"predict throughput, {time.strftime('%Y-%m-%d')}, {cpu_name()} ({os.cpu_count()} CPUs), "
        f"torch {torch.__version__}; {args.images} images per folder, the demo model at 128x128",
        "",
        "| images | run | s (whole command) | images/s (start left out) |",
        "|---|---|---|---|",
        *[f"| {size} | {name} | {t:.1f} | {rate:.1f} |" for size, name, t, rate in rows],
    ]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
