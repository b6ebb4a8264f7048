"""Side-by-side timing of roiops against torchvision, printed as a ratio table.

    python benchmarks/compare.py                  # CPU (the default)
    python benchmarks/compare.py --device cuda --dtypes float32,float16 --save benchmarks/results

Both implementations run interleaved in the same process on the same inputs; each reported time is
the median over rounds. "GB/s" is the compulsory traffic of the case (see cases.py) over roiops'
time:
how close roiops comes to the memory system's limit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import CASES  # noqa: E402

import roiops  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(ours, theirs, device: torch.device, rounds: int, inner: int) -> tuple[float, float]:
    """Median seconds per call of each, measured in alternating rounds of `inner` calls."""
    for fn in (ours, theirs):  # warm-up: allocator, caches, lazy init
        fn()
        fn()
    _sync(device)
    samples = {id(ours): [], id(theirs): []}
    for _ in range(rounds):
        for fn in (ours, theirs):
            _sync(device)
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            _sync(device)
            samples[id(fn)].append((time.perf_counter() - start) / inner)
    return statistics.median(samples[id(ours)]), statistics.median(samples[id(theirs)])


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--dtypes", default="float32", help="comma-separated: float32,float16")
    parser.add_argument(
        "--rounds", type=int, default=None, help="timing rounds (default: 5 CPU, 20 CUDA)"
    )
    parser.add_argument("--filter", default="", help="only cases whose name contains this")
    parser.add_argument("--save", metavar="DIR", help="also write <DIR>/<device>-<date>.{md,json}")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    rounds = args.rounds or (20 if device.type == "cuda" else 5)
    inner = 10 if device.type == "cuda" else 1
    header = {
        "device": device_name(device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "roiops": roiops.__version__,
        "date": datetime.date.today().isoformat(),
    }
    lines = []

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    emit(" | ".join(f"{k}: {v}" for k, v in header.items()))
    emit("")
    rows = []
    title = f"| {'case':<62} | dtype   | torchvision ms | roiops ms | speedup | roiops GB/s |"
    emit(title)
    emit("|" + "|".join("-" * (len(c)) for c in title.split("|")[1:-1]) + "|")
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        for case in CASES:
            if args.filter not in case.name or device.type not in case.devices:
                continue
            if case.dtypes is not None and dtype_name not in case.dtypes:
                continue
            try:
                prepared = case.prepare(device, dtype)
                ours, theirs = time_pair(prepared.ours, prepared.theirs, device, rounds, inner)
            except Exception as err:  # one broken case must not hide the others' numbers
                rows.append({"case": case.name, "dtype": dtype_name, "error": repr(err)})
                emit(f"| {case.name:<62} | {dtype_name:<7} | failed: {err!r}"[:400])
                continue
            row = {
                "case": case.name,
                "dtype": dtype_name,
                "torchvision_ms": theirs * 1e3,
                "roiops_ms": ours * 1e3,
                "speedup": theirs / ours,
                "roiops_GBps": prepared.bytes_moved / ours / 1e9,
            }
            rows.append(row)
            emit(
                f"| {row['case']:<62} | {dtype_name:<7} | {row['torchvision_ms']:14.3f} | "
                f"{row['roiops_ms']:9.3f} | "
                f"{row['speedup']:6.2f}x | {row['roiops_GBps']:11.1f} |"
            )
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        stem = os.path.join(args.save, f"{device.type}-{header['date']}")
        with open(stem + ".json", "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=2)
        with open(stem + ".md", "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"saved {stem}.md and .json")
    if any("error" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
