"""What a deployed detector's file says of its model (ModelInfo), the file opened to run
(OpenedModel: images [N, 3, H, W] in [0, 1] -> StaticMaskRCNN's outputs, boxes, scores, labels,
num_detections and masks or roi_masks), and the letterbox that fits any image to its input size.
The formats themselves, and opening them, are formats.py's."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from ..errors import ArgumentValueError

INFO_PREFIX = "roiops."  # metadata keys, in every format (AOTInductor's and ONNX's are strings)


@dataclass
class ModelInfo:
    """What a deployed model file says of its model: enough to feed it and name its outputs."""

    architecture: str
    image_height: int  # the input images' fixed size
    image_width: int
    batch_min: int
    batch_max: int
    max_detections: int
    classes: list[str]  # class names by label, the background first
    image_mean: list[float]  # the letterbox's padding: zero after the model's normalisation
    masks: str  # "pasted" (masks [N, K, H, W]), "roi" (roi_masks [N, K, 28, 28]) or "none"
    device: str
    dtype: str  # float32, bfloat16 (computed in, under autocast or OpenVINO's precision) or int8
    outputs: list[str]  # the outputs' names, in the model's order (StaticMaskRCNN.output_names)

    def to_strings(self) -> dict[str, str]:
        """Flat string metadata (AOTInductor's and ONNX's kind), read back by from_strings and
        by examples/cpp: lists as JSON, numbers as decimals."""
        return {
            INFO_PREFIX + key: json.dumps(value) if isinstance(value, list) else str(value)
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_strings(cls, strings: dict[str, str], path) -> ModelInfo:
        fields = {}
        for key, kind in cls.__annotations__.items():
            text = strings.get(INFO_PREFIX + key)
            if text is None and key == "outputs" and INFO_PREFIX + "masks" in strings:
                # a file of roiops before 2026-12-07: StaticMaskRCNN's order, which it had too
                text = json.dumps(output_names(strings[INFO_PREFIX + "masks"]))
            if text is None:
                raise ArgumentValueError(
                    f"{path} has no {INFO_PREFIX + key} metadata: not written by roiops export"
                )
            fields[key] = json.loads(text) if kind.startswith("list") else text
            if kind == "int":
                fields[key] = int(text)
        return cls(**fields)


def output_names(masks: str) -> list[str]:
    """StaticMaskRCNN's outputs, in order, for a masks kind of ModelInfo."""
    from ..models.static import DETECTIONS

    return [*DETECTIONS, *{"pasted": ["masks"], "roi": ["roi_masks"], "none": []}[masks]]


def info_of(static, image_size: tuple[int, int], batch: tuple[int, int], architecture: str,
            classes: list[str], device: str, dtype: str) -> ModelInfo:  # fmt: skip
    """The ModelInfo of a StaticMaskRCNN exported for images of image_size, batches in batch."""
    heads = static.model.roi_heads
    masks = "none" if not heads.has_mask else ("pasted" if static.paste_masks else "roi")
    return ModelInfo(
        architecture=architecture,
        image_height=image_size[0],
        image_width=image_size[1],
        batch_min=batch[0],
        batch_max=batch[1],
        max_detections=static.max_detections,
        classes=list(classes),
        image_mean=[float(m) for m in static.model.transform.image_mean],
        masks=masks,
        device=device,
        dtype=dtype,
        outputs=static.output_names,
    )


@dataclass
class OpenedModel:
    """A model file (or a checkpoint) opened to run: images [N, 3, H, W] in [0, 1] on `device`
    -> StaticMaskRCNN's outputs by name."""

    info: ModelInfo
    run: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    kind: str  # the format's name, or "checkpoint"
    device: str  # where its inputs go
    runs_as: str = "PyTorch, float32"  # the runtime and precision, as predict reports them
    layer_times: Callable[[], list[tuple[str, str, float]]] | None = None  # (name, type, ms)
