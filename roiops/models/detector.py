"""Faster / Mask R-CNN R50-FPN: transform -> backbone -> RPN -> RoI heads -> results back to the
original images. The same parts, state_dict names and numerics as torchvision's models.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ArgumentTypeError, ArgumentValueError
from ..ops.anchors import AnchorGenerator
from .backbone import FrozenBatchNorm2d, resnet50_fpn
from .checkpoints import checkpoint_path, load_state_dict
from .config import DetectorConfig
from .roi_heads import (
    BOX_POOL_SIZE,
    FastRCNNPredictor,
    MaskRCNNHeads,
    MaskRCNNPredictor,
    RoIHeads,
    TwoMLPHead,
)
from .rpn import RegionProposalNetwork, RPNHead
from .transform import DetectionTransform


class MaskRCNN(nn.Module):
    """Mask R-CNN, or Faster R-CNN when the RoI heads have no mask branch.

    forward(images: list of Tensor[3, H, W] in [0, 1], targets=None):
        eval:  one dict per image: boxes [n, 4] (x1, y1, x2, y2, original pixels), labels [n],
               scores [n], masks [n, 1, H, W] probabilities (Mask R-CNN);
        train: the loss dict (loss_classifier, loss_box_reg, loss_mask, loss_objectness,
               loss_rpn_box_reg); targets: per image boxes [G, 4] float, labels [G] int64,
               masks [G, H, W] uint8 (Mask R-CNN).
    """

    def __init__(
        self,
        transform: DetectionTransform,
        backbone: nn.Module,
        rpn: RegionProposalNetwork,
        roi_heads: RoIHeads,
    ) -> None:
        super().__init__()
        self.transform = transform
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> list[dict[str, Tensor]] | dict[str, Tensor]:
        self._check_device(images)
        if self.training:
            self._check_targets(images, targets)
        original_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        images, targets = self.transform(images, targets)
        features = self.backbone(images.tensors)
        proposals, rpn_losses = self.rpn(images, features, targets)
        detections, head_losses = self.roi_heads(features, proposals, images.image_sizes, targets)
        if self.training:
            return {**head_losses, **rpn_losses}
        return self.transform.postprocess(detections, images.image_sizes, original_sizes)

    def _check_device(self, images: list[Tensor]) -> None:
        """Images where the parameters are not: say which, and the usual cause (a model wrapped in
        DistributedDataParallel, then moved, or never moved), before a convolution fails on it."""
        parameter = next(self.parameters(), None)
        if parameter is None:
            return
        for i, image in enumerate(images):
            if isinstance(image, Tensor) and image.device != parameter.device:
                raise ArgumentValueError(
                    f"images[{i}] is on {image.device} but the model's parameters are on "
                    f"{parameter.device}: move the model with model.to(device) before wrapping it "
                    "in DistributedDataParallel (or move the images)"
                )

    def _check_targets(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None):
        if targets is None:
            raise ArgumentValueError("targets are needed in training mode")
        if not isinstance(images, (list, tuple)) or len(targets) != len(images):
            raise ArgumentValueError(f"got {len(targets)} targets for {len(images)} images")
        needed = ("boxes", "labels", "masks") if self.roi_heads.has_mask else ("boxes", "labels")
        num_classes = self.roi_heads.box_predictor.cls_score.out_features
        for i, target in enumerate(targets):
            missing = [key for key in needed if key not in target]
            if missing:
                raise ArgumentValueError(f"targets[{i}] has no {missing} (needs {list(needed)})")
            boxes, labels = target["boxes"], target["labels"]
            if boxes.dim() != 2 or boxes.shape[-1] != 4:
                raise ArgumentValueError(
                    f"targets[{i}]['boxes'] must be [G, 4], got shape {tuple(boxes.shape)}"
                )
            # Integer boxes are welcome, as in torchvision: resizing makes them float32.
            if boxes.is_complex() or boxes.dtype == torch.bool:
                raise ArgumentTypeError(
                    f"targets[{i}]['boxes'] must be real numbers, got {boxes.dtype}"
                )
            if labels.dtype != torch.int64:
                raise ArgumentTypeError(f"targets[{i}]['labels'] must be int64, got {labels.dtype}")
            if labels.shape != boxes.shape[:1]:
                raise ArgumentValueError(
                    f"targets[{i}]['labels'] must have one label per box ({boxes.shape[0]}), got "
                    f"shape {tuple(labels.shape)}"
                )
            if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
                raise ArgumentValueError(
                    f"targets[{i}]['labels'] must be in [0, {num_classes}) (num_classes), got "
                    f"labels from {int(labels.min())} to {int(labels.max())}"
                )
            degenerate = (boxes[:, 2:] <= boxes[:, :2]).any(dim=1)
            if degenerate.any():  # torchvision asserts the same
                box = boxes[torch.where(degenerate)[0][0]].tolist()
                raise ArgumentValueError(
                    "All bounding boxes should have positive height and width. Found invalid box "
                    f"{box} for target at index {i}."
                )


def _trainable_layers(is_trained: bool, requested: int | None) -> int:
    """torchvision's rule: 3 by default from pretrained weights, all 5 from random ones."""
    if not is_trained:
        return 5
    layers = 3 if requested is None else requested
    if not 0 <= layers <= 5:
        raise ArgumentValueError(f"trainable_backbone_layers must be in [0, 5], got {layers}")
    return layers


class FasterRCNN(MaskRCNN):
    """Faster R-CNN: MaskRCNN without the mask branch (roi_heads.has_mask is False); a subclass, so
    that everything taking a MaskRCNN (StaticMaskRCNN, save_detector) takes it too."""


def assemble(backbone: nn.Module, cfg: DetectorConfig, with_masks: bool = True) -> MaskRCNN:
    """Mask R-CNN (Faster R-CNN without masks) around any backbone whose forward maps a padded
    batch to FPN levels {"0", "1", "2", "3", "pool"} of `backbone.out_channels` channels, at strides
    4, 8, 16, 32 and 64; every other size comes from `cfg`."""
    anchors = AnchorGenerator(cfg.rpn_anchor_sizes, cfg.rpn_aspect_ratios)
    head = RPNHead(backbone.out_channels, anchors.num_anchors_per_location()[0])
    box_head = TwoMLPHead(backbone.out_channels * BOX_POOL_SIZE**2, cfg.representation_size)
    box_predictor = FastRCNNPredictor(cfg.representation_size, cfg.num_classes)
    mask_head = mask_predictor = None
    if with_masks:
        mask_head = MaskRCNNHeads(backbone.out_channels, cfg.mask_layers)
        width = cfg.mask_layers[-1]
        mask_predictor = MaskRCNNPredictor(width, width, cfg.num_classes)
    detector = MaskRCNN if with_masks else FasterRCNN
    return detector(
        DetectionTransform(
            cfg.min_size, cfg.max_size, cfg.image_mean, cfg.image_std, cfg.size_divisible
        ),
        backbone,
        RegionProposalNetwork(anchors, head, cfg),
        RoIHeads(cfg, box_head, box_predictor, mask_head, mask_predictor),
    )


def _build(
    with_masks: bool,
    weights: Any,
    weights_backbone: Any,
    num_classes: int | None,
    trainable_backbone_layers: int | None,
    kwargs: dict[str, Any],
) -> MaskRCNN:
    if weights is not None:
        weights_backbone = None
    cfg = DetectorConfig.from_kwargs(num_classes=num_classes or 91, **kwargs)
    is_trained = weights is not None or weights_backbone is not None
    backbone = resnet50_fpn(is_trained, _trainable_layers(is_trained, trainable_backbone_layers))
    if weights_backbone is not None:  # an ImageNet ResNet-50 checkpoint (its fc is not used)
        state = load_state_dict(checkpoint_path(weights_backbone))
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        backbone.body.load_state_dict(state)
    model = assemble(backbone, cfg, with_masks)
    if weights is not None:
        model.load_state_dict(load_state_dict(checkpoint_path(weights)))
        # torchvision's released weights were trained with frozen batch norm of eps 0 (its
        # overwrite_eps); every detection checkpoint torchvision ships for this model is one.
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.eps = 0.0
    return model


def _from_config(
    with_masks: bool, cfg: DetectorConfig, frozen_batch_norm_eps: float | None
) -> MaskRCNN:
    backbone = resnet50_fpn(frozen_batch_norm_eps is not None, 5)
    model = assemble(backbone, cfg, with_masks)
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.eps = frozen_batch_norm_eps
    return model


def maskrcnn_resnet50_fpn_from_config(
    cfg: DetectorConfig, frozen_batch_norm_eps: float | None = None
) -> MaskRCNN:
    """Mask R-CNN R50-FPN of `cfg`, untrained (what roiops.models.load_detector loads weights
    into); frozen batch norm of that eps, or plain batch norm."""
    return _from_config(True, cfg, frozen_batch_norm_eps)


def fasterrcnn_resnet50_fpn_from_config(
    cfg: DetectorConfig, frozen_batch_norm_eps: float | None = None
) -> MaskRCNN:
    """Faster R-CNN R50-FPN of `cfg`, untrained (see maskrcnn_resnet50_fpn_from_config)."""
    return _from_config(False, cfg, frozen_batch_norm_eps)


def maskrcnn_resnet50_fpn(
    *,
    weights: Any = None,
    weights_backbone: Any = None,
    num_classes: int | None = None,
    trainable_backbone_layers: int | None = None,
    **kwargs: Any,
) -> MaskRCNN:
    """Mask R-CNN R50-FPN with torchvision's keyword names and defaults (min_size, max_size,
    box_score_thresh, box_nms_thresh, box_detections_per_img, rpn_*: roiops.models.DetectorConfig).

    weights: the path of a detection checkpoint in torchvision's format (its released COCO file
    included), or a torchvision weights enum whose file torchvision already downloaded; nothing is
    downloaded. weights_backbone: likewise for an ImageNet ResNet-50. As in torchvision, random
    weights train every layer with plain batch norm; pretrained ones freeze batch norm and all but
    `trainable_backbone_layers` (default 3) stages of the ResNet.
    """
    return _build(True, weights, weights_backbone, num_classes, trainable_backbone_layers, kwargs)


def fasterrcnn_resnet50_fpn(
    *,
    weights: Any = None,
    weights_backbone: Any = None,
    num_classes: int | None = None,
    trainable_backbone_layers: int | None = None,
    **kwargs: Any,
) -> MaskRCNN:
    """Faster R-CNN R50-FPN: Mask R-CNN without the mask branch (same arguments)."""
    return _build(False, weights, weights_backbone, num_classes, trainable_backbone_layers, kwargs)
