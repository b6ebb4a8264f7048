"""Timing one case: roiops' callable and torchvision's, interleaved round by round in this process
so that a slow phase of a noisy machine hits both sides alike; torch.utils.benchmark.Timer handles
the CUDA synchronisation and the thread count."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.benchmark import Timer


@dataclass
class Prepared:
    ours: Callable[[], object]
    theirs: Callable[[], object]
    bytes_moved: int  # compulsory traffic of one call: inputs read once + outputs written once


def time_pair(prepared: Prepared, min_run_time: float, rounds: int) -> tuple[float, float]:
    """Median seconds per call of roiops' and torchvision's side over `rounds` rounds; each round
    runs blocked_autorange on one side, then on the other, for min_run_time / rounds seconds
    each (its block-size estimate warms the side up again after the other ran)."""
    threads = torch.get_num_threads()
    timers = [
        Timer("fn()", globals={"fn": fn}, num_threads=threads)
        for fn in (prepared.ours, prepared.theirs)
    ]
    for fn in (prepared.ours, prepared.theirs):
        fn()  # first calls (lazy initialisation, a compiled case's compilation) are not timed
    samples: list[list[float]] = [[], []]
    for _ in range(rounds):
        for side, timer in enumerate(timers):
            samples[side] += timer.blocked_autorange(min_run_time=min_run_time / rounds).times
    return statistics.median(samples[0]), statistics.median(samples[1])
