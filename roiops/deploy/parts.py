"""What a `predict` run into OUT has done, kept in OUT/parts so that a stopped run (Ctrl-C, a
preempted machine, SIGKILL) started again with the same arguments does only what is left, and the
processes of a sharded run (--nproc, torchrun) share one record:

    OUT/parts/run.json          the arguments the results depend on; a rerun with others into the
                                same OUT is refused, not mixed
    OUT/parts/batch-000042.json batch 42's images (COCO "images" entries), detections and the files
                                that could not be read: written whole (a temporary file renamed)
                                after its pictures, so a batch is done exactly when its part exists

Batch k holds images k * batch_size ... (k + 1) * batch_size - 1 of the sorted input list, and an
image's id is its place in that list: neither depends on how many processes run or which finishes
first. merge() writes OUT/detections.json and OUT/images.json from the parts in batch order, one
part in memory at a time: the same bytes as an uninterrupted single-process run."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import ArgumentValueError


def write_json(path: Path, value) -> None:
    """Whole or not at all: a process stopped while writing leaves the previous version (or
    none). The temporary name is the process's own, so processes writing the same file at once
    do not write into each other's."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value) + "\n")
    os.replace(temporary, path)


def fingerprint(files: list[Path]) -> str:
    """The input list's identity: its paths as named (as images.json names them), in order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path).encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """A file's content's identity (~0.1 s for an R50 model's 180 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class PredictRecord:
    def __init__(self, out: Path, batches: int) -> None:
        self.folder = out / "parts"
        self.out = out
        self.batches = batches
        self.digits = max(6, len(str(batches - 1)))

    def part(self, index: int) -> Path:
        return self.folder / f"batch-{index:0{self.digits}d}.json"

    def start(self, arguments: dict) -> int:
        """Records `arguments` for a new run, or checks them against the run already recorded
        (ArgumentValueError naming what differs); returns how many batches are done."""
        self.folder.mkdir(parents=True, exist_ok=True)
        recorded_file = self.folder / "run.json"
        arguments = json.loads(json.dumps(arguments))  # tuples as lists, as read back
        if recorded_file.exists():
            recorded = json.loads(recorded_file.read_text())
            differ = sorted(
                key
                for key in set(recorded) | set(arguments)
                if recorded.get(key) != arguments.get(key)
            )
            if differ:
                changes = "; ".join(
                    f"{key}: {recorded.get(key)!r} then, {arguments.get(key)!r} now"
                    for key in differ
                )
                raise ArgumentValueError(
                    f"--out {self.out} holds a run with other arguments ({changes}): its results "
                    f"would mix with this one's. Use another --out, or delete {self.folder} to "
                    "start over"
                )
        else:
            write_json(recorded_file, arguments)
        return sum(self.done(k) for k in range(self.batches))

    def done(self, index: int) -> bool:
        return self.part(index).exists()

    def write(self, index: int, images: list[dict], detections: list[dict], failed) -> None:
        write_json(
            self.part(index),
            {"images": images, "detections": detections, "failed": [list(f) for f in failed]},
        )

    def merge(self, categories: list[dict]) -> tuple[int, int, list[tuple[str, str]]]:
        """Writes OUT/detections.json and OUT/images.json from every batch's part; returns the
        number of images and detections and the files that could not be read. Raises
        FileNotFoundError naming the batches with no part."""
        missing = [k for k in range(self.batches) if not self.done(k)]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
            raise FileNotFoundError(
                f"{len(missing)} of {self.batches} batches have no part in {self.folder} "
                f"(batches {shown}): a process stopped before them, or, across machines, --out "
                "is not a folder they all share"
            )
        images = detections = 0
        failed = []
        detections_file = self.out / "detections.json"
        images_file = self.out / "images.json"
        detections_temporary = detections_file.with_name(f"detections.json.{os.getpid()}.tmp")
        images_temporary = images_file.with_name(f"images.json.{os.getpid()}.tmp")
        with open(detections_temporary, "w") as results, open(images_temporary, "w") as catalogue:
            results.write("[")
            catalogue.write('{"images": [')
            for k in range(self.batches):
                part = json.loads(self.part(k).read_text())
                for entry in part["detections"]:
                    results.write((", " if detections else "") + json.dumps(entry))
                    detections += 1
                for entry in part["images"]:
                    catalogue.write((", " if images else "") + json.dumps(entry))
                    images += 1
                failed += [tuple(f) for f in part["failed"]]
            results.write("]\n")
            catalogue.write(f'], "categories": {json.dumps(categories)}}}\n')
        os.replace(detections_temporary, detections_file)
        os.replace(images_temporary, images_file)
        return images, detections, failed
