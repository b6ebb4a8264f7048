"""RoIAlign (Mask R-CNN): torchvision.ops.roi_align's signature and numerics."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._box_format import as_rois, pair


def roi_align(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """Pools each box of ``boxes`` from ``input`` into a fixed ``output_size`` grid by bilinear sampling.

    Args:
        input: Tensor[N, C, H, W], float32/float64/float16/bfloat16, any memory layout.
        boxes: Tensor[K, 5] of (batch_index, x1, y1, x2, y2), or a list of N Tensor[L_i, 4] of
            (x1, y1, x2, y2); same dtype as ``input`` (float32 also accepted for half inputs).
        output_size: (PH, PW), or one int for both.
        spatial_scale: feature-map size / image size (e.g. 1/4 for FPN level P2).
        sampling_ratio: samples per bin and axis; -1 or 0: ceil(box size / output size).
        aligned: shift boxes by -0.5 pixel (pixel-centre alignment).

    Returns:
        Tensor[K, C, PH, PW] in ``input``'s dtype. Half precision accumulates in float32. Samples at
        NaN coordinates contribute 0; a batch index outside [0, N) raises on the CPU and gives a zero
        row on CUDA (checking would cost a host sync).
    """
    ph, pw = pair(output_size)
    return torch.ops.roiops.roi_align.default(
        input, as_rois(boxes), float(spatial_scale), ph, pw, int(sampling_ratio), bool(aligned)
    )


class RoIAlign(nn.Module):
    """Module form of :func:`roi_align` (torchvision.ops.RoIAlign)."""

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = False,
    ) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned})"
        )
