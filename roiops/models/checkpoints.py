"""Loading torchvision's checkpoints, without downloading anything."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ArgumentTypeError, ArgumentValueError

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
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        raise ArgumentValueError(
            f"weights={str(weights)!r} is not a file. roiops downloads nothing: download the "
            f"checkpoint (torchvision's COCO Mask R-CNN is {COCO_MASKRCNN_FILE}) and pass its "
            f"path, or put it in {Path(torch.hub.get_dir()) / 'checkpoints'}"
        )
    url = getattr(weights, "url", None)
    if isinstance(url, str):
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
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
