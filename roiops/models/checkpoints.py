"""Checkpoints: torchvision's (loaded without downloading anything), and roiops' detector
checkpoints, which name what to build their weights into."""

from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ArgumentTypeError, ArgumentValueError
from .config import DetectorConfig

# torchvision's released COCO Mask R-CNN R50-FPN weights (MaskRCNN_ResNet50_FPN_Weights.COCO_V1).
COCO_MASKRCNN_FILE = "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"


def rename_old_keys(
    state_dict: dict[str, Any], prefix: str, local_metadata: dict, renames: dict[str, str]
) -> None:
    """A state_dict of version 1 -- torchvision's released weights -- names some convolutions as
    torchvision did before it wrapped them in Sequentials ("conv.weight" for "conv.0.0.weight");
    renames[old] = new renames their weight and bias in place."""
    version = local_metadata.get("version")
    if version is not None and version >= 2:
        return
    for old, new in renames.items():
        for kind in ("weight", "bias"):
            key = f"{prefix}{old}.{kind}"
            if key in state_dict:
                state_dict[f"{prefix}{new}.{kind}"] = state_dict.pop(key)


def checkpoint_path(weights: Any) -> Path:
    """The file of `weights`: a path, or a torchvision weights enum whose file torchvision has
    already downloaded into torch.hub's checkpoint folder (roiops never downloads)."""
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        if path.name == str(weights) and (hub / path.name).is_file():  # a bare file name
            return hub / path.name
        raise ArgumentValueError(
            f"weights={str(weights)!r} is not a file. roiops downloads nothing: download the "
            f"checkpoint (torchvision's COCO Mask R-CNN is {COCO_MASKRCNN_FILE}) and pass its "
            f"path, or put it in {hub} and pass its file name"
        )
    url = getattr(weights, "url", None)
    if isinstance(url, str):
        path = hub / os.path.basename(url)
        if path.is_file():
            return path
        raise ArgumentValueError(
            f"the checkpoint of {weights} is not in {path.parent}. roiops downloads nothing: "
            f"download {url} to {path} (or pass any checkpoint's path as weights=...)"
        )
    raise ArgumentTypeError(
        f"weights must be a checkpoint path or a torchvision weights enum, got {weights!r}"
    )


def load_state_dict(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a training checkpoint: {"model": ..., "optimizer": ...}
    return state


# --- roiops' detector checkpoints: the weights and what to build them into ------------------

DETECTOR_FORMAT = "roiops.detector/1"

# Architecture name -> "module:function" building a MaskRCNN from a DetectorConfig. Looked up
# lazily: the demo's builder lives in the demo package, which imports this one.
ARCHITECTURES = {
    "maskrcnn_resnet50_fpn": "roiops.models.detector:maskrcnn_resnet50_fpn_from_config",
    "fasterrcnn_resnet50_fpn": "roiops.models.detector:fasterrcnn_resnet50_fpn_from_config",
    "roiops-demo": "roiops.demo.model:small_maskrcnn",
}


@dataclass
class Detector:
    """A detector loaded by load_detector: the model (in eval mode) and what its checkpoint says
    of it."""

    model: Any  # roiops.models.MaskRCNN
    architecture: str
    classes: list[str]  # class names by label, the background first ("0", "1", ... if unnamed)


def save_detector(path, model, architecture: str, classes: list[str] | None = None) -> None:
    """Writes `model`'s weights with what load_detector needs to rebuild it: its architecture
    (a name of ARCHITECTURES), its DetectorConfig and, optionally, its class names."""
    if architecture not in ARCHITECTURES:
        raise ArgumentValueError(
            f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}"
        )
    num_classes = model.roi_heads.box_predictor.cls_score.out_features
    if classes is not None and len(classes) != num_classes:
        raise ArgumentValueError(
            f"classes names {len(classes)} classes for a model of {num_classes} (the background "
            "first, then one name per class)"
        )
    frozen = [m.eps for m in model.modules() if type(m).__name__ == "FrozenBatchNorm2d"]
    torch.save(
        {
            "format": DETECTOR_FORMAT,
            "architecture": architecture,
            "config": dataclasses.asdict(model.roi_heads.cfg),
            "frozen_batch_norm_eps": frozen[0] if frozen else None,
            "classes": list(classes) if classes is not None else None,
            "state_dict": model.state_dict(),
        },
        path,
    )


def load_detector(path) -> Detector:
    """A detector from a checkpoint: roiops' own (save_detector; the demo's model.pt), or a
    torchvision or roiops Faster / Mask R-CNN R50-FPN state_dict (a training checkpoint's
    {"model": ...} too), whose classes are counted from its box predictor. Raises
    ArgumentValueError naming what does not fit."""
    path = Path(path)
    if not path.is_file():
        raise ArgumentValueError(f"checkpoint {str(path)!r} is not a file")
    try:
        state = load_state_dict(path)
    except Exception as err:  # not a torch file, or one that needs unpickling code
        raise ArgumentValueError(
            f"checkpoint {path} is not a file torch.save wrote, or holds more than weights "
            f"(torch.load(weights_only=True): {type(err).__name__}: {err})"
        ) from None
    if not isinstance(state, dict):
        raise ArgumentValueError(f"checkpoint {path} holds a {type(state).__name__}, not weights")
    if state.get("format") == DETECTOR_FORMAT:
        architecture, weights = state["architecture"], state["state_dict"]
        if architecture not in ARCHITECTURES:
            raise ArgumentValueError(
                f"checkpoint {path}: unknown architecture {architecture!r} (known: "
                f"{sorted(ARCHITECTURES)})"
            )
        config = DetectorConfig(**_tuples(state["config"]))
        classes, frozen_eps = state.get("classes"), state.get("frozen_batch_norm_eps")
    else:
        # torchvision's layout: the classes from its predictor; frozen batch norm of eps 0 (as
        # torchvision's released and fine-tuned weights) when it has no running-batch counters.
        architecture, weights, classes = _torchvision_layout(path, state), state, None
        num_classes = weights["roi_heads.box_predictor.cls_score.weight"].shape[0]
        config = DetectorConfig(num_classes=num_classes)
        frozen_eps = None if "backbone.body.bn1.num_batches_tracked" in weights else 0.0
    model = _build(architecture, config, frozen_eps)
    expected = model.state_dict()
    missing = [key for key in expected if key not in weights]
    unexpected = [key for key in weights if key not in expected]
    shapes = [
        f"{key} {list(weights[key].shape)} (the model's: {list(expected[key].shape)})"
        for key in expected
        if key in weights and weights[key].shape != expected[key].shape
    ]
    if missing or unexpected or shapes:
        hint = ""
        if state.get("format") != DETECTOR_FORMAT:
            hint = (
                "; a state_dict of another architecture (the demo's, say) loads only as roiops' "
                "detector checkpoint, which names it: roiops.models.save_detector"
            )
        raise ArgumentValueError(
            f"checkpoint {path} does not fit {architecture} with {config.num_classes} classes: "
            f"missing keys {_some(missing)}, unexpected keys {_some(unexpected)}, other shapes "
            f"{_some(shapes)}{hint}"
        )
    model.load_state_dict(weights)
    num_classes = model.roi_heads.box_predictor.cls_score.out_features
    if classes is None:
        classes = [str(c) for c in range(num_classes)]
    elif len(classes) != num_classes:
        raise ArgumentValueError(
            f"checkpoint {path} names {len(classes)} classes for a model of {num_classes}"
        )
    return Detector(model.eval(), architecture, list(classes))


def _tuples(config: dict) -> dict:
    """A saved DetectorConfig's lists back to the tuples of its fields."""

    def as_tuple(value):
        return tuple(as_tuple(v) for v in value) if isinstance(value, list) else value

    return {key: as_tuple(value) for key, value in config.items()}


def _torchvision_layout(path: Path, state: dict) -> str:
    """The architecture of a plain state_dict: torchvision's (or roiops') R50-FPN names."""
    if "roi_heads.box_predictor.cls_score.weight" not in state:
        keys = ", ".join(list(state)[:4])
        raise ArgumentValueError(
            f"checkpoint {path} is neither roiops' detector checkpoint nor a Faster / Mask R-CNN "
            f"R50-FPN state_dict (no roi_heads.box_predictor.cls_score.weight; its keys begin "
            f"{keys})"
        )
    has_masks = any(key.startswith("roi_heads.mask_predictor.") for key in state)
    return "maskrcnn_resnet50_fpn" if has_masks else "fasterrcnn_resnet50_fpn"


def _build(architecture: str, config: DetectorConfig, frozen_batch_norm_eps: float | None):
    """The architecture's builder called with the config (and, for a frozen batch norm, its
    eps)."""
    module, function = ARCHITECTURES[architecture].split(":")
    build = getattr(importlib.import_module(module), function)
    if frozen_batch_norm_eps is None:
        return build(config)
    return build(config, frozen_batch_norm_eps=frozen_batch_norm_eps)


def _some(keys: list[str]) -> str:
    return "[]" if not keys else f"{keys[:5]}{f' (+{len(keys) - 5} more)' if len(keys) > 5 else ''}"
