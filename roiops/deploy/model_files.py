"""The files a deployed detector lives in, the facts each carries about its model, and opening any
of them (or a checkpoint) as one callable: images [N, 3, H, W] in [0, 1] -> StaticMaskRCNN's
outputs (boxes, scores, labels, num_detections and masks, or roi_masks)."""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import ArgumentValueError

# format -> file suffix
FORMATS = {"pt2": ".pt2", "aoti": ".aoti.pt2", "onnx": ".onnx"}
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
    dtype: str

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
            if text is None:
                raise ArgumentValueError(
                    f"{path} has no {INFO_PREFIX + key} metadata: not written by roiops export"
                )
            fields[key] = json.loads(text) if kind.startswith("list") else text
            if kind == "int":
                fields[key] = int(text)
        return cls(**fields)


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
    )


def kind_of(path: Path) -> str:
    """ "onnx", "aoti", "pt2" or "checkpoint", by the file's content (both .pt2 kinds are zips)."""
    if path.suffix == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any("/aotinductor/" in name for name in names):
            return "aoti"
        if any(name.endswith(".json") and "/models/" in name for name in names):
            return "pt2"
    return "checkpoint"


@dataclass
class OpenedModel:
    info: ModelInfo
    run: Callable[[torch.Tensor], dict[str, torch.Tensor]]  # images on `device`
    kind: str
    device: str  # where its inputs go


OUTPUT_NAMES = ("boxes", "scores", "labels", "num_detections")


def open_model(
    path, image_size: tuple[int, int] | None = None, device: str | None = None
) -> OpenedModel:
    """Any model file of FORMATS, or a detector checkpoint (run eagerly as a StaticMaskRCNN of
    `image_size`, default (min_size, max_size) of its config). It runs on `device`, by default
    where it was exported for (a checkpoint: the CPU); an AOTInductor package runs only there, an
    ONNX file on the CPU (ONNX Runtime's CPU provider)."""
    path = Path(path)
    if not path.is_file():
        raise ArgumentValueError(f"model {str(path)!r} is not a file")
    if device is not None and torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ArgumentValueError("--device cuda: this torch sees no GPU")
    kind = kind_of(path)
    if kind == "onnx":
        opened = _open_onnx(path)
    elif kind == "aoti":
        package = torch._inductor.aoti_load_package(str(path))
        info = ModelInfo.from_strings(package.get_metadata(), path)
        opened = OpenedModel(info, lambda images: package(images), kind, info.device)
    elif kind == "pt2":
        extra = {"roiops.json": ""}
        program = torch.export.load(str(path), extra_files=extra)
        info = ModelInfo.from_strings(json.loads(extra["roiops.json"] or "{}"), path)
        device = device or info.device
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise ArgumentValueError(f"{path} was exported for {device}: this torch sees no GPU")
        opened = OpenedModel(info, _no_grad(program.module().to(device)), kind, device)
    else:
        return _open_checkpoint(path, image_size, device or "cpu")
    if device is not None and torch.device(device) != torch.device(opened.device):
        raise ArgumentValueError(
            f"{path} runs on {opened.device} only ({kind}), not on {device}: run it there, or "
            f"export it again with --device {device}"
            + (" and --format pt2 or aoti" if kind == "onnx" else "")
        )
    return opened


def _no_grad(function):
    def run(images):
        with torch.no_grad():
            return function(images)

    return run


def _open_checkpoint(path: Path, image_size, device: str) -> OpenedModel:
    from ..models import StaticMaskRCNN
    from ..models.checkpoints import load_detector

    detector = load_detector(path)
    cfg = detector.model.roi_heads.cfg
    if image_size is None:
        min_size = cfg.min_size[-1] if isinstance(cfg.min_size, tuple) else cfg.min_size
        image_size = (min_size, cfg.max_size)
    static = StaticMaskRCNN(detector.model.to(device), cfg.box_detections_per_img).eval()
    info = info_of(static, image_size, (1, 2**31 - 1), detector.architecture, detector.classes,
                   device, "float32")  # fmt: skip
    return OpenedModel(info, _no_grad(static), "checkpoint", device)


def _open_onnx(path: Path) -> OpenedModel:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ArgumentValueError(
            f"{path} is an ONNX model: running it needs onnx and onnxruntime, pip install "
            "'roiops[onnx]'"
        ) from None
    proto = onnx.load(str(path), load_external_data=False)
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    info = ModelInfo.from_strings(metadata, path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name

    def run(images: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = session.run(None, {input_name: images.cpu().numpy()})
        return {name: torch.from_numpy(out) for name, out in zip(names, outputs)}

    return OpenedModel(info, run, "onnx", "cpu")


# --- letterboxing: one fixed input size for images of any size ----------------------------------


def letterbox_size(height: int, width: int, info: ModelInfo) -> tuple[float, int, int]:
    """The scale that fits an image into the model's size, and the scaled image's size (rounded
    half up; examples/cpp computes the same in double)."""
    scale = min(info.image_height / height, info.image_width / width)
    scaled_h = min(max(int(math.floor(height * scale + 0.5)), 1), info.image_height)
    scaled_w = min(max(int(math.floor(width * scale + 0.5)), 1), info.image_width)
    return scale, scaled_h, scaled_w


def letterbox(image: torch.Tensor, info: ModelInfo) -> tuple[torch.Tensor, float]:
    """image [3, h, w] in [0, 1] -> [3, H, W]: scaled to fit (bilinear, F.interpolate's), in the
    top-left corner, the rest the mean colour; and the scale."""
    height, width = image.shape[-2:]
    scale, scaled_h, scaled_w = letterbox_size(height, width, info)
    if (scaled_h, scaled_w) != (height, width):
        image = torch.nn.functional.interpolate(
            image[None], size=(scaled_h, scaled_w), mode="bilinear", align_corners=False
        )[0]
    mean = torch.tensor(info.image_mean, dtype=image.dtype)[:, None, None]
    canvas = mean.expand(3, info.image_height, info.image_width).clone()
    canvas[:, :scaled_h, :scaled_w] = image
    return canvas, scale
