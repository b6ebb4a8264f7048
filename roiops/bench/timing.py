"""Timing one case: roiops' callable and torchvision's, interleaved round by round in this process
so that a slow phase of a noisy machine hits both sides alike; torch.utils.benchmark.Timer handles
the CUDA synchronisation and the thread count (_one_call, for slow calls, synchronises itself)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.benchmark import Timer


@dataclass
class Prepared:
    ours: Callable[[], object]
    theirs: Callable[[], object]
    bytes_moved: int  # compulsory traffic of one call: inputs read once + outputs written once
    notes: str = ""  # what else the row should say (a deployed model's runtime, export time, size)
    taps: int = 0  # bilinear taps of one call (RoIAlign: 4 corner reads per sample and channel)


def copy_bandwidth(device: torch.device, megabytes: int = 256) -> float:
    """This machine's copy bandwidth in GB/s (bytes read + written), measured now: the best of 5
    copies of a buffer larger than the caches into another already allocated. The roofline of the
    benchmark's memory-bound rows."""
    source = torch.ones(megabytes << 18, device=device)  # float32: megabytes MB
    target = torch.empty_like(source)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    best = float("inf")
    for _ in range(6):  # the first warms the pages up
        synchronize()
        start = time.perf_counter()
        target.copy_(source)
        synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * source.numel() * source.element_size() / best / 1e9


def time_pair(prepared: Prepared, min_run_time: float, rounds: int) -> tuple[float, float]:
    """Median seconds per call of roiops' and torchvision's side over `rounds` rounds; each round
    times one side, then the other, for min_run_time / rounds seconds each: blocked_autorange,
    whose block-size estimate warms the side up again after the other ran -- or, for a side whose
    call alone outlasts the round, one call (the estimate would be one more untimed call of it:
    half of a slow case's time, no more samples)."""
    threads = torch.get_num_threads()
    per_round = min_run_time / rounds
    sides = []
    for fn in (prepared.ours, prepared.theirs):
        timer = Timer("fn()", globals={"fn": fn}, num_threads=threads)
        fn()  # the first call (lazy initialisation, a compiled case's compilation) is not timed
        if _one_call(fn) > per_round:
            sides.append(lambda fn=fn: [_one_call(fn)])
        else:
            sides.append(lambda timer=timer: timer.blocked_autorange(min_run_time=per_round).times)
    samples: list[list[float]] = [[], []]
    for _ in range(rounds):
        for side, measure in enumerate(sides):
            samples[side] += measure()
    return statistics.median(samples[0]), statistics.median(samples[1])


def _one_call(fn: Callable[[], object]) -> float:
    """Seconds of one call, GPU work included (Timer.timeit(1) would add two warm-up calls)."""
    synchronize = torch.cuda.synchronize if torch.cuda.is_available() else lambda: None
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    return time.perf_counter() - start
