"""The hyper-parameters of Faster / Mask R-CNN, with torchvision's names and defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import ArgumentTypeError


@dataclass
class DetectorConfig:
    num_classes: int = 91  # COCO's 90 categories (with gaps) and the background
    # transform
    min_size: int | tuple[int, ...] = 800  # training picks one at random per image
    max_size: int = 1333
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    size_divisible: int = 32
    # RPN
    rpn_anchor_sizes: tuple[tuple[int, ...], ...] = ((32,), (64,), (128,), (256,), (512,))
    rpn_aspect_ratios: tuple[tuple[float, ...], ...] = ((0.5, 1.0, 2.0),) * 5
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    rpn_fg_iou_thresh: float = 0.7
    rpn_bg_iou_thresh: float = 0.3
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_score_thresh: float = 0.0
    # RoI heads
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    box_detections_per_img: int = 100
    box_fg_iou_thresh: float = 0.5
    box_bg_iou_thresh: float = 0.5
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    bbox_reg_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    representation_size: int = 1024  # the box head's two fully connected layers
    mask_layers: tuple[int, ...] = (256, 256, 256, 256)  # the mask head's 3x3 convolutions

    @classmethod
    def from_kwargs(cls, **kwargs) -> DetectorConfig:
        """torchvision's keyword arguments (min_size=..., box_score_thresh=..., ...); an unknown one
        is an error that lists the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ArgumentTypeError(f"unknown detector arguments {unknown}; known: {sorted(known)}")
        if kwargs.get("bbox_reg_weights", 0) is None:  # torchvision's "None: the default"
            del kwargs["bbox_reg_weights"]
        return cls(**kwargs)
