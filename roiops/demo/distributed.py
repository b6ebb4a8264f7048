"""The demo's processes (roiops/_processes.py: one, --nproc N, or torchrun's). With more than
one, each batch is split across them (a DistributedSampler: train.py), the model trains under
DistributedDataParallel (gloo on CPUs, nccl on GPUs) and rank 0 evaluates and writes."""

from __future__ import annotations

from .._processes import Process, run  # noqa: F401  (the demo's modules take them from here)
from .._processes import check as check_processes


def check(nproc: int | None, device: str, batch_size: int) -> None:
    """A ValueError saying what is wrong with --nproc, --device or torchrun's environment, if
    anything is; called before any work."""
    world_size, who = check_processes(nproc, device, "demo")
    if batch_size % world_size:
        shares = ", ".join(str(n) for n in range(1, batch_size + 1) if batch_size % n == 0)
        raise ValueError(
            f"{who} {world_size}: the demo splits each batch of {batch_size} images evenly across "
            f"its processes, so their number must divide {batch_size} ({shares})"
        )
