"""A thin Faster / Mask R-CNN R50-FPN on roiops ops, with torchvision's state_dict and results.

    model = roiops.models.maskrcnn_resnet50_fpn(weights="maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth")
    model.load_state_dict(torchvision_model.state_dict())  # or any torchvision state_dict

Read in this order: transform.py (images -> padded batch), backbone.py (ResNet-50 + FPN), rpn.py
(proposals), roi_heads.py (detections and masks), detector.py (the assembly, ~20 lines);
static.py is the same inference in fixed shapes (export, compile); checkpoints.py loads and saves
detectors. A custom backbone: assemble(BackboneWithFPN(body, FeaturePyramidNetwork(...), C), cfg),
as the demo's model (roiops/demo/model.py).
"""

from .backbone import BackboneWithFPN, FeaturePyramidNetwork
from .checkpoints import Detector, load_detector, save_detector
from .config import DetectorConfig
from .detector import (
    FasterRCNN,
    MaskRCNN,
    assemble,
    fasterrcnn_resnet50_fpn,
    maskrcnn_resnet50_fpn,
)
from .static import StaticMaskRCNN
from .transform import ImageList

__all__ = [
    "BackboneWithFPN",
    "Detector",
    "DetectorConfig",
    "FasterRCNN",
    "FeaturePyramidNetwork",
    "ImageList",
    "MaskRCNN",
    "StaticMaskRCNN",
    "assemble",
    "fasterrcnn_resnet50_fpn",
    "load_detector",
    "maskrcnn_resnet50_fpn",
    "save_detector",
]
