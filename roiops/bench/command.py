"""What `python -m roiops bench` does: check the options, time the selected cases of cases.py,
write the table, the raw numbers and the chart."""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .._cli import writable_directory

DTYPES = ("float32", "float16", "bfloat16")
HELP = "time roiops against torchvision, write report.md and speedup.png"
DESCRIPTION = (
    "Times every benchmark case of roiops against torchvision, interleaved in this process, "
    "prints the ratio table and writes OUT/report.md, OUT/results.json and OUT/speedup.png."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default: cpu")
    parser.add_argument(
        "--dtypes", default="float32", help="comma-separated, of float32,float16,bfloat16"
    )
    parser.add_argument(
        "--out", default="bench-output", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--filter",
        default="",
        help="only the cases whose name contains this (or one of A|B|...)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="also the slow cases: on the CPU the Mask R-CNN rows but the 1-image inference and "
        "the OpenVINO bf16 and ONNX Runtime ones (2 images, per stage, StaticMaskRCNN eager and "
        "compiled, AOTInductor, OpenVINO f32 and int8: tens of minutes on 2 cores), on CUDA the "
        "deterministic-mode backward (about 80 s on an H200)",
    )
    parser.add_argument(
        "--min-run-time",
        type=float,
        default=None,
        help="seconds of timing per case and side (default: 1 CPU, 0.5 CUDA)",
    )


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        options = Options.from_args(args)
        writable_directory(args.out)
    except ValueError as err:
        parser.error(str(err))
    return run(options)


@dataclass
class Options:
    device: torch.device
    dtypes: list[str]
    out: Path
    filter: str
    everything: bool
    min_run_time: float
    rounds: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        """Checks everything before any work; ValueError names the bad argument."""
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: this torch sees no GPU")
        dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
        unknown = [d for d in dtypes if d not in DTYPES]
        if unknown or not dtypes:
            raise ValueError(f"--dtypes {args.dtypes!r}: expected some of {', '.join(DTYPES)}")
        min_run_time = args.min_run_time
        if min_run_time is None:
            min_run_time = 0.5 if device.type == "cuda" else 1.0
        if not min_run_time > 0:
            raise ValueError(f"--min-run-time must be > 0 seconds, got {min_run_time}")
        try:
            import torchvision  # noqa: F401
        except ImportError:
            raise ValueError(
                "the benchmark needs torchvision, the reference: pip install torchvision "
                "(or 'roiops[bench]')"
            ) from None
        return cls(device, dtypes, Path(args.out), args.filter, args.all, min_run_time, 5)


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module knows. Reports
    from machines of one kind may come from different CPUs (this project's: AMD and Intel)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} CPU"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def select(cases: list, options: Options) -> list[tuple]:
    """(case, dtype name) pairs to run, dtype by dtype in the table's order."""
    return [
        (case, dtype)
        for dtype in options.dtypes
        for case in cases
        if any(part in case.name for part in options.filter.split("|"))
        and (options.everything or options.device.type not in case.extended_on)
        and options.device.type in case.devices
        and (case.dtypes is None or dtype in case.dtypes)
    ]


def run(options: Options) -> int:
    """Times the selected cases; returns 1 when a case failed (its error is in the table)."""
    import torchvision

    import roiops

    from .cases import CASES
    from .chart import speedup_chart
    from .timing import copy_bandwidth, time_pair

    device = options.device
    copy = copy_bandwidth(device)
    header = {
        "device": device_name(device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "roiops": roiops.__version__,
        "date": datetime.date.today().isoformat(),
        "copy_GBps": round(copy, 1),
    }
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    if not has_matplotlib:  # a GPU machine may be offline: the numbers matter more than the chart
        print("no matplotlib: no speedup.png (pip install matplotlib)", file=sys.stderr)
    selected = select(CASES, options)
    lines = [" | ".join(f"{k}: {v}" for k, v in header.items()), ""]
    title = (
        f"| {'case':<62} | dtype    | torchvision ms | roiops ms | speedup | roiops GB/s | "
        "% of copy | G taps/s | notes |"
    )
    lines += [title, "|" + "|".join("-" * len(c) for c in title.split("|")[1:-1]) + "|"]
    print("\n".join(lines), flush=True)
    rows = []
    start = time.perf_counter()
    for index, (case, dtype_name) in enumerate(selected):
        print(
            f"  [{index + 1}/{len(selected)}, {time.perf_counter() - start:.0f} s] {case.name} "
            f"({dtype_name}) ...",
            file=sys.stderr,
            flush=True,
        )
        try:
            prepared = case.prepare(device, getattr(torch, dtype_name))
            ours, theirs = time_pair(prepared, options.min_run_time, options.rounds)
        except Exception as err:  # one broken case must not hide the others' numbers
            rows.append({"case": case.name, "dtype": dtype_name, "error": repr(err)})
            line = f"| {case.name:<62} | {dtype_name:<8} | failed: {err!r}"[:400]
        else:
            row = {
                "case": case.name,
                "dtype": dtype_name,
                "torchvision_ms": theirs * 1e3,
                "roiops_ms": ours * 1e3,
                "speedup": theirs / ours,
                "roiops_GBps": prepared.bytes_moved / ours / 1e9,
                "percent_of_copy": 100 * prepared.bytes_moved / ours / 1e9 / copy,
                "roiops_Gtaps": prepared.taps / ours / 1e9,
                "torchvision_Gtaps": prepared.taps / theirs / 1e9,
            }
            if prepared.notes:
                row["notes"] = prepared.notes
            rows.append(row)
            bandwidth = f"{row['roiops_GBps']:11.1f}" if prepared.bytes_moved else " " * 11
            percent = f"{row['percent_of_copy']:8.1f}%" if prepared.bytes_moved else " " * 9
            taps = f"{row['roiops_Gtaps']:8.2f}" if prepared.taps else " " * 8
            line = (
                f"| {case.name:<62} | {dtype_name:<8} | {row['torchvision_ms']:14.3f} | "
                f"{row['roiops_ms']:9.3f} | {row['speedup']:6.2f}x | {bandwidth} | {percent} | "
                f"{taps} | {prepared.notes} |"
            )
        lines.append(line)
        print(line, flush=True)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "report.md").write_text(
        "# roiops vs torchvision\n\n"
        + "\n".join(lines)
        + "\n\nspeedup = torchvision time / roiops time; each time is the median of "
        f"{options.rounds} interleaved rounds (`python -m roiops bench`). roiops GB/s: the "
        "compulsory bytes of a call (inputs read once, outputs written once) over roiops' time; "
        f"% of copy: that against this machine's copy bandwidth measured in the same run "
        f"({copy:.1f} GB/s, read + write); G taps/s: RoIAlign's bilinear corner reads (or "
        "the backward's adds) per second.\n\n"
        "![speedup](speedup.png)\n"
    )
    (options.out / "results.json").write_text(
        json.dumps({"header": header, "rows": rows}, indent=2) + "\n"
    )
    written = ["report.md", "results.json"]
    if has_matplotlib:
        speedup_chart(options.out / "speedup.png", header, rows)
        written.append("speedup.png")
    print(f"wrote {', '.join(written)} in {options.out}", file=sys.stderr)
    return 1 if any("error" in row for row in rows) else 0
