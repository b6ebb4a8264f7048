"""Anchor generation with torchvision's AnchorGenerator API and exact results, one op per call."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AnchorGenerator(nn.Module):
    """Drop-in for torchvision.models.detection.anchor_utils.AnchorGenerator.

    ``sizes[l]`` and ``aspect_ratios[l]`` give the anchors of feature map l. For size s and ratio r
    the cell anchor is round([-w, -h, w, h] / 2) with h = sqrt(r) * s, w = s / sqrt(r), rounded half
    to even in float32; it is repeated on every cell of the map with stride = image size // map
    size.
    """

    def __init__(
        self,
        sizes: tuple[tuple[int, ...], ...] = ((128, 256, 512),),
        aspect_ratios: tuple[tuple[float, ...], ...] = ((0.5, 1.0, 2.0),),
    ) -> None:
        super().__init__()
        if not isinstance(sizes[0], (list, tuple)):
            sizes = tuple((s,) for s in sizes)
        if not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = (aspect_ratios,) * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise ValueError(
                "sizes and aspect_ratios must have one entry per level, got "
                f"{len(sizes)} and {len(aspect_ratios)}"
            )
        self.sizes = sizes
        self.aspect_ratios = aspect_ratios
        self.cell_anchors = [self.generate_anchors(s, a) for s, a in zip(sizes, aspect_ratios)]

    def generate_anchors(self, scales, aspect_ratios, dtype=torch.float32, device=None) -> Tensor:
        # The same float32 tensor ops as torchvision, so the rounding lands on the same integers.
        scales = torch.as_tensor(scales, dtype=dtype, device=device)
        aspect_ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
        h_ratios = torch.sqrt(aspect_ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).view(-1)  # ratio-major
        hs = (h_ratios[:, None] * scales[None, :]).view(-1)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()

    def num_anchors_per_location(self) -> list[int]:
        return [len(s) * len(a) for s, a in zip(self.sizes, self.aspect_ratios)]

    def set_cell_anchors(self, dtype: torch.dtype, device: torch.device) -> None:
        self.cell_anchors = [c.to(dtype=dtype, device=device) for c in self.cell_anchors]

    def forward(self, image_list, feature_maps: list[Tensor]) -> list[Tensor]:
        """image_list: a torchvision ImageList (``.tensors`` padded batch, ``.image_sizes``).
        Returns one Tensor[sum_l H_l * W_l * A_l, 4] per image (rows ordered level, y, x,
        anchor)."""
        if len(feature_maps) != len(self.cell_anchors):
            raise ValueError(
                f"got {len(feature_maps)} feature maps but anchors for "
                f"{len(self.cell_anchors)} levels "
                f"(sizes={self.sizes})"
            )
        image_h, image_w = image_list.tensors.shape[-2:]
        grid_h = [int(f.shape[-2]) for f in feature_maps]
        grid_w = [int(f.shape[-1]) for f in feature_maps]
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        self.set_cell_anchors(dtype, device)
        anchors = torch.ops.roiops.grid_anchors.default(
            torch.cat(self.cell_anchors),
            [c.size(0) for c in self.cell_anchors],
            grid_h,
            grid_w,
            [image_h // g for g in grid_h],  # P6 of an 800-pixel image: 800 // 13 = 61, not 64
            [image_w // g for g in grid_w],
            len(image_list.image_sizes),
        )
        return list(anchors.unbind(0))
