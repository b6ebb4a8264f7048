"""Shared fixtures: every test runs on the CPU, and on CUDA when a GPU is present."""

from __future__ import annotations

import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


def random_rois(
    num_rois: int,
    batch_size: int,
    height: float,
    width: float,
    dtype=torch.float32,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Tensor[K, 5] of boxes in image coordinates (a map of height x width at spatial_scale 1):
    mostly inside, some partly or fully outside, some degenerate (zero size) or inverted (x2 < x1)."""
    g = generator
    k = num_rois
    x1 = torch.rand(k, generator=g, dtype=torch.float64) * width * 1.4 - 0.2 * width
    y1 = torch.rand(k, generator=g, dtype=torch.float64) * height * 1.4 - 0.2 * height
    w = torch.rand(k, generator=g, dtype=torch.float64) * width * 0.8
    h = torch.rand(k, generator=g, dtype=torch.float64) * height * 0.8
    kind = torch.randint(0, 10, (k,), generator=g)
    w = torch.where(kind == 0, torch.zeros_like(w), w)  # degenerate
    h = torch.where(kind == 1, -h * 0.3, h)  # inverted
    x1 = torch.where(kind == 2, x1 + 2 * width, x1)  # fully outside
    batch = torch.randint(0, batch_size, (k,), generator=g).to(torch.float64)
    return torch.stack([batch, x1, y1, x1 + w, y1 + h], dim=1).to(dtype)
