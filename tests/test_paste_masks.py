"""roiops.paste_masks_in_image against torchvision's paste_masks_in_image (a Python loop over
masks): the same canvases within 2e-6, one op for all masks.

Not bit for bit: torchvision resizes with ATen's CPU upsample_bilinear2d, whose rounding depends on
the CPU build it dispatches to -- ATEN_CPU_CAPABILITY=default and avx2 differ from each other by up
to 9.2e-7 on a third of the pixels of these cases (FMA contraction in the vectorised builds). roiops
evaluates the same formula in the same order without contraction: within 1 ulp of the default
build."""

from __future__ import annotations

import pytest
import torch
from inputs import PASTE_ATOL, pasted_masks_case
from torch.testing import assert_close
from torchvision.models.detection.roi_heads import paste_masks_in_image as tv_paste

import roiops


@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("image", [(120, 160), (97, 61)])
def test_paste_matches_torchvision(device, padding, image):
    masks, boxes = pasted_masks_case(40, image, seed=padding)
    ours = roiops.paste_masks_in_image(masks.to(device), boxes.to(device), image, padding)
    ref = tv_paste(masks, boxes, image, padding)
    assert ours.shape == ref.shape == (40, 1, *image) and ours.dtype == ref.dtype
    assert_close(ours.cpu(), ref, rtol=0, atol=PASTE_ATOL)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_masks_and_boxes_land_where_torchvisions_do(device, dtype):
    """A model's detections under autocast: torchvision grows the boxes in their own dtype, every
    step rounded, and so does roiops. Grown in float32 instead, 146 of these 200 bfloat16 windows
    land a pixel off (differences up to 0.96). The resized values agree within two ulps of the
    dtype (both resize in float32 and round once)."""
    image = (120, 160)
    masks, boxes = pasted_masks_case(200, image, seed=3)
    masks, boxes = masks.to(dtype), boxes.to(dtype)
    ours = roiops.paste_masks_in_image(masks.to(device), boxes.to(device), image).cpu()
    ref = tv_paste(masks, boxes, image)
    assert ours.dtype == ref.dtype == dtype
    assert_close(ours.float(), ref.float(), rtol=0, atol=2 * torch.finfo(dtype).eps)


def test_paste_boxes_on_the_image_edges(device):
    """Boxes that start exactly at 0, end exactly at the last pixel, hang over every side, are a
    single pixel, under a pixel, or inverted."""
    image = (50, 70)
    boxes = torch.tensor(
        [
            [0.0, 0.0, 69.0, 49.0],  # the whole image
            [-20.0, -10.0, 30.0, 25.0],  # over the top-left corner
            [50.0, 30.0, 90.0, 80.0],  # over the bottom-right corner
            [-5.0, 20.0, 75.0, 30.0],  # over the left and right sides
            [10.0, 10.0, 10.0, 10.0],  # a point
            [30.0, 20.0, 25.0, 15.0],  # inverted
            [5.4, 7.6, 5.9, 8.1],  # under a pixel
            [0.0, 49.0, 69.0, 49.0],  # the last row
        ]
    )
    masks = torch.rand(len(boxes), 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ours = roiops.paste_masks_in_image(masks.to(device), boxes.to(device), image)
    assert_close(ours.cpu(), tv_paste(masks, boxes, image), rtol=0, atol=PASTE_ATOL)
    assert ours[7, 0, 49].any() and not ours[7, 0, :48].any()


def test_large_canvases_are_rewritten_whole_by_streaming_stores():
    """Canvases of 8 MB or more in all, already in memory, get their zeros by streaming stores:
    the whole cache lines of each run of zeros streamed, the partial lines at its ends by plain
    stores (canvases the kernel has yet to fault in: plain stores). A first call's canvases,
    filled with NaN and freed, are reused at the same address (the kept outputs, in memory), so a
    byte the second call misses stays NaN. Rows of an odd width (runs start and end mid-line),
    windows on each edge and across the whole width, one box outside the image (an all-zero
    canvas; torchvision's slicing cannot paste it, so it is checked alone)."""
    image = (403, 1067)
    masks, boxes = pasted_masks_case(7, image, seed=4)
    boxes[0] = torch.tensor([-20.0, -10.0, 60.0, 50.0])  # the top-left corner
    boxes[1] = torch.tensor([1000.0, 350.0, 1100.0, 420.0])  # over the bottom-right corner
    boxes[2] = torch.tensor([-5.0, 100.0, 1090.0, 140.0])  # the whole width
    boxes[3] = torch.tensor([2000.0, 10.0, 2100.0, 20.0])  # outside the image
    inside = [0, 1, 2, 4, 5, 6]
    ref = tv_paste(masks[inside], boxes[inside], image)
    first = roiops.paste_masks_in_image(masks, boxes, image)
    assert first.nbytes >= 8 << 20
    assert_close(first[inside], ref, rtol=0, atol=PASTE_ATOL)
    address = first.data_ptr()
    first.fill_(float("nan"))
    del first
    ours = roiops.paste_masks_in_image(masks, boxes, image)
    assert ours.data_ptr() == address  # the NaN canvases, rewritten
    assert torch.equal(ours[3], torch.zeros(1, *image))
    assert_close(ours[inside], ref, rtol=0, atol=PASTE_ATOL)


def test_paste_boxes_outside_the_image_give_empty_canvases(device):
    """A box entirely outside the image, or broken (NaN, inf), pastes nothing -- where torchvision's
    Python slicing raises or wraps around to the other side of the image."""
    image = (50, 70)
    inf, nan = float("inf"), float("nan")
    boxes = torch.tensor(
        [
            [100.0, 10.0, 130.0, 40.0],  # right of the image
            [10.0, 60.0, 40.0, 90.0],  # below
            [-60.0, 10.0, -30.0, 40.0],  # left
            [10.0, -60.0, 40.0, -30.0],  # above
            [nan, 0.0, 20.0, 20.0],
            [0.0, 0.0, inf, inf],
            [-inf, -inf, 10.0, 10.0],
        ]
    )
    masks = torch.rand(len(boxes), 1, 28, 28, generator=torch.Generator().manual_seed(2)) + 0.5
    ours = roiops.paste_masks_in_image(masks.to(device), boxes.to(device), image).cpu()
    assert not ours[:5].any()
    # A box with an infinite corner is clamped to +-2^60 pixels: finite values, no crash.
    assert ours[5:].isfinite().all()


def test_paste_float64_boxes_and_masks():
    masks, boxes = pasted_masks_case(20, (80, 90), seed=3)
    masks, boxes = masks.double(), boxes.double()
    ours = roiops.paste_masks_in_image(masks, boxes, (80, 90))
    assert ours.dtype == torch.float64
    assert_close(ours, tv_paste(masks, boxes, (80, 90)), rtol=0, atol=1e-10)


def test_paste_empty_and_bad_input(device):
    empty = roiops.paste_masks_in_image(
        torch.zeros(0, 1, 28, 28, device=device), torch.zeros(0, 4, device=device), (30, 40)
    )
    assert empty.shape == (0, 1, 30, 40)
    masks, boxes = torch.rand(3, 1, 28, 28, device=device), torch.rand(3, 4, device=device) * 10
    with pytest.raises(ValueError, match=r"masks must be \[N, 1, M, M\]"):
        roiops.paste_masks_in_image(masks[:, 0], boxes, (30, 40))
    with pytest.raises(ValueError, match=r"boxes must be \[N, 4\] with N = 3"):
        roiops.paste_masks_in_image(masks, boxes[:2], (30, 40))
    with pytest.raises(ValueError, match="padding must be non-negative"):
        roiops.paste_masks_in_image(masks, boxes, (30, 40), padding=-1)
    with pytest.raises(TypeError, match="masks must be a floating tensor"):
        roiops.paste_masks_in_image(masks.long(), boxes, (30, 40))


def test_paste_opcheck(device):
    masks, boxes = pasted_masks_case(6, (40, 50), seed=4)
    torch.library.opcheck(
        torch.ops.roiops.paste_masks_in_image.default,
        (masks.to(device), boxes.to(device), 40, 50, 1),
    )
