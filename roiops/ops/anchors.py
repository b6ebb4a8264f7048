"""Anchor generation with torchvision's AnchorGenerator API and exact results, one op per call."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._imports import subclass_when_imported
from .._onnx import cast, dtype_of, lowering, op
from ..errors import ArgumentValueError, call_op


class ImageList(NamedTuple):
    """A batch as the detectors pass it (torchvision's ImageList: the same two fields)."""

    tensors: Tensor  # [N, 3, H_pad, W_pad], zero-padded
    image_sizes: list[tuple[int, int]]  # (height, width) of each image after resizing


class AnchorGenerator(nn.Module):
    """Drop-in for torchvision.models.detection.anchor_utils.AnchorGenerator, and an instance of it
    once torchvision is imported: torchvision's detectors take it as rpn_anchor_generator.

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
        nn.Module.__init__(self)  # (not super(): torchvision's class may be put in between)
        if not isinstance(sizes[0], (list, tuple)):
            sizes = tuple((s,) for s in sizes)
        if not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = (aspect_ratios,) * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise ArgumentValueError(
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

    def _anchors(
        self,
        heights: list[int],
        widths: list[int],
        stride_heights: list[int],
        stride_widths: list[int],
        num_images: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> Tensor:
        """[num_images, sum_l H_l * W_l * A_l, 4], rows ordered (level, y, x, anchor): one op."""
        if not torch.jit.is_scripting() and len(heights) != len(self.cell_anchors):
            raise ArgumentValueError(
                f"got {len(heights)} feature maps but anchors for "
                f"{len(self.cell_anchors)} levels (sizes={self.sizes})"
            )
        self.set_cell_anchors(dtype, device)
        args = (
            torch.cat(self.cell_anchors),
            [c.size(0) for c in self.cell_anchors],
            heights,
            widths,
            stride_heights,
            stride_widths,
            num_images,
        )
        if not torch.jit.is_scripting():
            return call_op(torch.ops.roiops.grid_anchors, *args)
        return torch.ops.roiops.grid_anchors(*args)

    def grid_anchors(
        self, grid_sizes: list[list[int]], strides: list[list[Tensor]]
    ) -> list[Tensor]:
        """torchvision's grid_anchors: the anchors of one image, one Tensor[H * W * A, 4] per level,
        for feature maps of ``grid_sizes`` [(H, W), ...] at ``strides`` [(stride_h, stride_w), ...]
        (int64 scalars, as torchvision passes them)."""
        heights, widths = [int(s[0]) for s in grid_sizes], [int(s[1]) for s in grid_sizes]
        steps_h, steps_w = [int(s[0]) for s in strides], [int(s[1]) for s in strides]
        ref = self.cell_anchors[0]
        anchors = self._anchors(heights, widths, steps_h, steps_w, 1, ref.dtype, ref.device)[0]
        rows = [h * w * c.size(0) for h, w, c in zip(heights, widths, self.cell_anchors)]
        return list(anchors.split(rows))

    def forward(self, image_list: ImageList, feature_maps: list[Tensor]) -> list[Tensor]:
        """image_list: an ImageList (``.tensors`` padded batch, ``.image_sizes``), roiops' or
        torchvision's. Returns one Tensor[sum_l H_l * W_l * A_l, 4] per image (rows ordered level,
        y, x, anchor). Scripts (torch.jit.script) on roiops' ImageList."""
        image_h, image_w = image_list.tensors.shape[-2], image_list.tensors.shape[-1]
        heights = [int(f.shape[-2]) for f in feature_maps]
        widths = [int(f.shape[-1]) for f in feature_maps]
        # P6 of an 800-pixel image: 800 // 13 = 61, not 64 (torchvision's integer division).
        steps_h = [int(image_h) // h for h in heights]
        steps_w = [int(image_w) // w for w in widths]
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        count = len(image_list.image_sizes)
        anchors = self._anchors(heights, widths, steps_h, steps_w, count, dtype, device)
        return list(anchors.unbind(0))


# torchvision's detectors check isinstance(rpn_anchor_generator, their AnchorGenerator).
subclass_when_imported(
    AnchorGenerator, "torchvision.models.detection.anchor_utils", "AnchorGenerator"
)


@lowering("grid_anchors")
def _grid_anchors_onnx(
    cell_anchors,
    anchors_per_level,
    grid_heights,
    grid_widths,
    stride_heights,
    stride_widths,
    num_images,
):
    """Per level the int64 shifts (x * stride_w, y * stride_h) in the anchors' dtype plus the
    level's cell anchors, rows (y, x, anchor); the levels concatenated and repeated per image."""
    dtype = dtype_of(cell_anchors)
    levels, first = [], 0
    for count, height, width, stride_h, stride_w in zip(
        anchors_per_level, grid_heights, grid_widths, stride_heights, stride_widths
    ):
        cells = op.Slice(cell_anchors, [first], [first + count], [0])  # [A, 4]
        first += count
        shift_x = cast(op.Mul(op.Range(0, width, 1), stride_w), dtype)  # [W]
        shift_y = cast(op.Mul(op.Range(0, height, 1), stride_h), dtype)  # [H]
        x = op.Expand(op.Unsqueeze(shift_x, [0]), [height, width])
        y = op.Expand(op.Unsqueeze(shift_y, [1]), [height, width])
        shifts = op.Concat(*(op.Unsqueeze(c, [2, 3]) for c in (x, y, x, y)), axis=3)  # [H, W, 1, 4]
        levels.append(op.Reshape(op.Add(shifts, cells), [height * width * count, 4]))
    anchors = op.Concat(*levels, axis=0)
    return op.Expand(op.Unsqueeze(anchors, [0]), [num_images, 1, 1])
