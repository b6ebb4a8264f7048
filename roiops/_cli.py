"""What the commands of `python -m roiops` share: argument types, the --out check, and quieting
torch's own noise (warnings about its internals that a user of the command can do nothing about).
Each command's arguments and entry point live beside its logic: add_arguments(parser) and
main(args, parser) in demo/command.py, bench/command.py, deploy/export.py and deploy/predict.py."""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def image_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(side) for side in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected HEIGHTxWIDTH, e.g. 800x1067, got {text!r}"
        ) from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"both sides must be positive, got {text}")
    return height, width


def batch_range(text: str) -> tuple[int, int]:
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


def quiet_torch_noise() -> None:
    """torch.export's pytree FutureWarning (LeafSpec) on every export, and torch.utils.
    cpp_extension's "No CUDA runtime is found" on every CPU machine that has a CUDA toolkit: torch's
    internals, not the user's to act on."""
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
