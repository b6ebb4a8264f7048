"""ResNet-50 and a feature pyramid on top of it: image [N, 3, H, W] -> P2-P6, 256 channels each.

Module names follow torchvision's (backbone.body.layer1.0.conv1, backbone.fpn.inner_blocks.0.0,
...), so torchvision's state_dict loads as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoints import rename_old_keys


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters (buffers, not parameters), computed
    in torchvision's order: x * (w / sqrt(var + eps)) + (b - mean * scale)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)  # from an nn.BatchNorm2d checkpoint
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        scale = (
            self.weight.reshape(1, -1, 1, 1)
            * (self.running_var.reshape(1, -1, 1, 1) + self.eps).rsqrt()
        )
        bias = self.bias.reshape(1, -1, 1, 1) - self.running_mean.reshape(1, -1, 1, 1) * scale
        return x * scale + bias

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here: ResNet v1.5) -> 1x1, plus the shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int, norm: type[nn.Module]) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = norm(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                norm(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        # The shortcut after the main path, as torchvision: autograd sums the gradients reaching x
        # (from conv1, the downsample and the FPN) in the order the graph was built, so building
        # it in another order rounds the backbone's gradients differently.
        y += x if self.downsample is None else self.downsample(x)  # in place: no new buffer
        return self.relu(y)


class ResNet50Body(nn.Module):
    """The stem and the four stages; returns C2-C5 (strides 4, 8, 16, 32) as "0".."3"."""

    def __init__(self, norm: type[nn.Module], trainable_layers: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for i, (width, blocks, stride) in enumerate(
            [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]
        ):
            stage = []
            for b in range(blocks):
                stage.append(Bottleneck(in_channels, width, stride if b == 0 else 1, norm))
                in_channels = width * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # torchvision trains the last `trainable_layers` of layer4, layer3, layer2, layer1, conv1
        # (and bn1 with all five); the rest is frozen.
        trained = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
        if trainable_layers == 5:
            trained.append("bn1")
        for name, parameter in self.named_parameters():
            if not any(name.startswith(layer) for layer in trained):
                parameter.requires_grad_(False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features = {}
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            features[str(i)] = x
        return features


class FeaturePyramidNetwork(nn.Module):
    """FPN (Lin et al. 2017): lateral 1x1 convs, a top-down path of nearest upsampling, 3x3 output
    convs; P6 is a stride-2 subsampling of P5 ("pool")."""

    _version = 2  # state_dict version 1 (torchvision's released weights) has no ".0" in the names

    def __init__(self, in_channels: list[int], out_channels: int = 256) -> None:
        super().__init__()
        # Sequential wrappers: torchvision's Conv2dNormActivation names the conv ".0".
        self.inner_blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, out_channels, 1)) for c in in_channels
        )
        self.layer_blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1)) for _ in in_channels
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        renames = {
            f"{kind}.{i}": f"{kind}.{i}.0"
            for kind in ("inner_blocks", "layer_blocks")
            for i in range(len(self.inner_blocks))
        }
        rename_old_keys(state_dict, prefix, local_metadata, renames)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        names, maps = list(features), list(features.values())
        inner = self.inner_blocks[-1](maps[-1])
        outputs = [self.layer_blocks[-1](inner)]
        for i in range(len(maps) - 2, -1, -1):
            lateral = self.inner_blocks[i](maps[i])
            inner = lateral + F.interpolate(inner, size=lateral.shape[-2:], mode="nearest")
            outputs.insert(0, self.layer_blocks[i](inner))
        outputs.append(F.max_pool2d(outputs[-1], 1, 2, 0))
        return dict(zip(names + ["pool"], outputs))


class BackboneWithFPN(nn.Module):
    def __init__(
        self, body: nn.Module, fpn: FeaturePyramidNetwork, out_channels: int = 256
    ) -> None:
        super().__init__()
        self.body = body
        self.fpn = fpn
        self.out_channels = out_channels

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return self.fpn(self.body(images))


def resnet50_fpn(frozen_batch_norm: bool, trainable_layers: int) -> BackboneWithFPN:
    """torchvision's choice: frozen batch norm when starting from pretrained weights, trainable
    batch norm (and every layer trainable) when starting from random ones."""
    norm = FrozenBatchNorm2d if frozen_batch_norm else nn.BatchNorm2d
    body = ResNet50Body(norm, trainable_layers)
    return BackboneWithFPN(body, FeaturePyramidNetwork([256, 512, 1024, 2048]))
