"""A progress bar for the commands (`python -m roiops demo`, `predict`): one rewritten line on a
terminal, a plain line every tenth of the run when the output is a file or a pipe."""

from __future__ import annotations

import sys
import time


class Progress:
    """`[######----] 120/900 loss 0.812 | 3.4 it/s | 0:40 left`; `note` is the part after the
    count (the demo's loss, predict's current file)."""

    def __init__(self, total: int, stream=None, width: int = 30, unit: str = "it") -> None:
        self.total, self.stream, self.width, self.unit = total, stream or sys.stderr, width, unit
        self.start = time.perf_counter()
        self.interactive = self.stream.isatty()
        self.last_printed = 0

    def update(self, done: int, note: str = "") -> None:
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else 0.0
        filled = self.width * done // max(self.total, 1)
        line = (
            f"[{'#' * filled}{'-' * (self.width - filled)}] {done}/{self.total}"
            f"{' ' + note if note else ''} | {rate:.2f} {self.unit}/s | "
            f"{int(left) // 60}:{int(left) % 60:02d} left"
        )
        if self.interactive:
            self.stream.write("\r" + line + ("\n" if done == self.total else ""))
        elif done == self.total or done - self.last_printed >= max(1, self.total // 10):
            self.stream.write(line + "\n")
            self.last_printed = done
        self.stream.flush()
