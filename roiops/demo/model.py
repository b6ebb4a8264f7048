"""The demo's detector: roiops' Mask R-CNN (roiops.models.assemble: the same FPN, RPN and RoI
heads as the R50-FPN model) around a small convolutional body sized for 128x128 images."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import BackboneWithFPN, DetectorConfig, FeaturePyramidNetwork, MaskRCNN, assemble
from .shapes import CLASSES, IMAGE_SIZE

STAGE_CHANNELS = (32, 64, 96, 128)  # at strides 4, 8, 16, 32, as ResNet's layer1..layer4
FPN_CHANNELS = 64


def _conv(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallBody(nn.Module):
    """Feature maps {"0": stride 4, ..., "3": stride 32}, two 3x3 convolutions per stage."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _conv(3, 24, 2)
        stages, channels = [], 24
        for out_channels in STAGE_CHANNELS:
            stages.append(
                nn.Sequential(
                    _conv(channels, out_channels, 2), _conv(out_channels, out_channels, 1)
                )
            )
            channels = out_channels
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.stem(x)
        features = {}
        for i, stage in enumerate(self.stages):
            x = stage(x)
            features[str(i)] = x
        return features


def config() -> DetectorConfig:
    """Mask R-CNN's recipe scaled to 128x128 images holding 1-4 shapes of 12-52 px."""
    return DetectorConfig(
        num_classes=len(CLASSES),
        min_size=IMAGE_SIZE,
        max_size=IMAGE_SIZE,
        rpn_anchor_sizes=((16,), (32,), (64,), (128,), (256,)),
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=100,
        rpn_batch_size_per_image=128,
        box_batch_size_per_image=64,
        box_detections_per_img=20,
        representation_size=256,
        mask_layers=(64, 64),
    )


def small_maskrcnn(cfg: DetectorConfig | None = None) -> MaskRCNN:
    """The demo's detector, of `cfg` (default: config()); a checkpoint of it is architecture
    "roiops-demo" to roiops.models.load_detector."""
    body = SmallBody()
    return assemble(
        BackboneWithFPN(
            body, FeaturePyramidNetwork(list(STAGE_CHANNELS), FPN_CHANNELS), FPN_CHANNELS
        ),
        cfg or config(),
    )
