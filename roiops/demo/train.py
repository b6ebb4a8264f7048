"""Training on freshly drawn shapes (every step sees new images), with a progress bar."""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch

from ..models.detector import MaskRCNN
from . import shapes

LEARNING_RATE = 2e-3
WARMUP_STEPS = 50
TIMED_STEPS = 20  # with a time budget, the speed is measured over these first steps


class Progress:
    """`[######----] 120/900 loss 0.812 | 3.4 it/s | 0:40 left` on one rewritten line of a
    terminal, or a plain line every tenth of the run when the output is a file or pipe."""

    def __init__(self, total: int, stream=None, width: int = 30) -> None:
        self.total, self.stream, self.width = total, stream or sys.stderr, width
        self.start = time.perf_counter()
        self.interactive = self.stream.isatty()
        self.last_printed = 0

    def update(self, done: int, loss: float) -> None:
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else 0.0
        filled = self.width * done // self.total
        line = (
            f"[{'#' * filled}{'-' * (self.width - filled)}] {done}/{self.total} "
            f"loss {loss:.3f} | {rate:.2f} it/s | {int(left) // 60}:{int(left) % 60:02d} left"
        )
        if self.interactive:
            self.stream.write("\r" + line + ("\n" if done == self.total else ""))
        elif done == self.total or done - self.last_printed >= max(1, self.total // 10):
            self.stream.write(line + "\n")
            self.last_printed = done
        self.stream.flush()


def learning_rate(step: int, steps: int) -> float:
    """Linear warm-up, then a cosine decay to zero."""
    if step < WARMUP_STEPS:
        return LEARNING_RATE * (step + 1) / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / max(1, steps - WARMUP_STEPS)
    return LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * progress))


def train(
    model: MaskRCNN, steps: int, batch_size: int, seed: int, stream=None, seconds=None
) -> list[float]:
    """AdamW on `steps` batches; returns the total loss of every step. (From scratch on this data
    AdamW reached mask AP@0.5 0.87 in 600 steps where SGD with momentum at lr 0.02 reached 0.70 in
    800.)

    With a time budget of `seconds`, the speed of the first TIMED_STEPS steps decides how many
    steps fit: if fewer than `steps`, the schedule (its cosine decay) is shortened to them, so a
    slow machine still ends on a decayed learning rate; training also stops once the time is
    spent. The number of steps then depends on the machine: len() of the result says it."""
    rng = np.random.default_rng(seed)
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE, weight_decay=1e-4
    )
    progress = Progress(steps, stream)
    history: list[float] = []
    start = time.perf_counter()
    while len(history) < steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(len(history), steps)
        images, targets = shapes.batch(rng, batch_size)
        loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        history.append(loss.detach().item())
        if seconds is not None:
            elapsed = time.perf_counter() - start
            if len(history) == TIMED_STEPS:
                steps = min(steps, max(TIMED_STEPS, int(seconds * TIMED_STEPS / elapsed)))
                progress.total = steps
            elif elapsed > seconds:
                steps = len(history)
                progress.total = steps
        progress.update(len(history), history[-1])
    model.eval()
    return history
