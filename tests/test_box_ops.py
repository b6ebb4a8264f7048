"""Box coding, box_iou and anchors against torchvision's BoxCoder, box_iou and AnchorGenerator."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from inputs import boxes_and_codes, mask_rcnn_anchor_inputs
from torch.testing import assert_close
from torchvision.models.detection._utils import BoxCoder as TvBoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator as TvAnchorGenerator
from torchvision.ops.boxes import clip_boxes_to_image, remove_small_boxes

import roiops

RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
BOX_HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def same(a, b, device, dtype):
    """Bit-identical on the CPU; on CUDA within rounding of the same float ops."""
    if device.type == "cpu":
        assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    else:
        tol = 1e-6 if dtype == torch.float32 else 1e-13
        assert_close(a.cpu(), b.cpu(), rtol=tol, atol=tol * 100, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weights", [RPN_WEIGHTS, BOX_HEAD_WEIGHTS])
@pytest.mark.parametrize("n,k", [(1, 1), (1000, 91), (70000, 1)])  # 70000 > ATen's parallel grain
def test_decode_matches_torchvision(device, dtype, weights, n, k):
    boxes, codes = boxes_and_codes(n, k, dtype)
    ref = TvBoxCoder(weights).decode_single(codes, boxes)
    ours = roiops.BoxCoder(weights).decode_single(codes.to(device), boxes.to(device))
    same(ours, ref, device, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weights", [RPN_WEIGHTS, BOX_HEAD_WEIGHTS])
def test_encode_matches_torchvision(device, dtype, weights):
    proposals, _ = boxes_and_codes(70000, 1, dtype, seed=1)
    g = torch.Generator().manual_seed(2)
    gt = proposals + (torch.randn(70000, 4, generator=g, dtype=torch.float64) * 20).to(
        dtype
    )  # some inverted
    ref = TvBoxCoder(weights).encode_single(gt, proposals)
    ours = roiops.BoxCoder(weights).encode_single(gt.to(device), proposals.to(device))
    same(ours, ref, device, dtype)


def test_box_coder_list_api_and_round_trip(device):
    boxes, codes = boxes_and_codes(30, 3, torch.float32)
    per_image = [boxes[:10].to(device), boxes[10:].to(device)]
    ours, ref = roiops.BoxCoder(BOX_HEAD_WEIGHTS), TvBoxCoder(BOX_HEAD_WEIGHTS)
    decoded = ours.decode(codes.to(device), per_image)
    assert decoded.shape == (30, 3, 4)
    same(decoded, ref.decode(codes, [b.cpu() for b in per_image]), device, torch.float32)
    targets = ours.encode(per_image, [b + 1 for b in per_image])
    for a, b in zip(
        targets, ref.encode([b.cpu() for b in per_image], [b.cpu() + 1 for b in per_image])
    ):
        same(a, b, device, torch.float32)
    # decode(encode(gt, p), p) == gt up to rounding
    p = boxes.to(device)
    gt = p + 3.0
    assert_close(ours.decode_single(ours.encode_single(gt, p), p), gt, rtol=1e-5, atol=1e-3)


def test_decode_clip_boxes_matches_rpn_filter(device):
    boxes, codes = boxes_and_codes(5000, 1, torch.float32, seed=4)
    codes[::50] = torch.tensor([0.0, 0.0, -12.0, -12.0])  # tiny boxes
    image = (600, 900)
    decoded = TvBoxCoder(RPN_WEIGHTS).decode_single(codes, boxes)
    clipped = clip_boxes_to_image(decoded, image)
    keep_ref = torch.zeros(len(clipped), dtype=torch.bool)
    keep_ref[remove_small_boxes(clipped, 1e-3)] = True
    out, keep = roiops.decode_clip_boxes(
        codes.to(device), boxes.to(device), RPN_WEIGHTS, image, 1e-3
    )
    same(out, clipped, device, torch.float32)
    assert torch.equal(keep.cpu()[:, 0], keep_ref)
    assert not keep_ref.all()


def test_reduced_precision_decodes_in_float32(device):
    boxes, codes = boxes_and_codes(100, 1, torch.float32)
    ours = roiops.decode_boxes(codes.half().to(device), boxes.half().to(device), RPN_WEIGHTS)
    assert ours.dtype == torch.float16
    ref = roiops.decode_boxes(codes.half().float(), boxes.half().float(), RPN_WEIGHTS).half()
    assert_close(ours.cpu(), ref, rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_iou_matches_torchvision(device, dtype):
    a, _ = boxes_and_codes(300, 1, dtype, seed=5)
    b, _ = boxes_and_codes(200, 1, dtype, seed=6)
    a[::7] = a[::7].flip(1)  # inverted boxes
    b[3, 0] = float("nan")
    same(roiops.box_iou(a.to(device), b.to(device)), torchvision.ops.box_iou(a, b), device, dtype)
    assert roiops.box_iou(a[:0].to(device), b.to(device)).shape == (0, 200)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("image", [(800, 1344), (608, 1088), (1000, 765)])
def test_anchor_generator_matches_torchvision(device, dtype, image):
    sizes = ((32,), (64,), (128,), (256,), (512,))
    ratios = ((0.5, 1.0, 2.0),) * 5
    image_list, feats = mask_rcnn_anchor_inputs(dtype, device, image)
    ours = roiops.AnchorGenerator(sizes, ratios)
    ref = TvAnchorGenerator(sizes, ratios)
    assert all(torch.equal(a, b) for a, b in zip(ours.cell_anchors, ref.cell_anchors))
    assert ours.num_anchors_per_location() == ref.num_anchors_per_location()
    got, expected = ours(image_list, feats), ref(image_list, feats)
    assert len(got) == len(expected) == 2
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype and a.device == b.device
        assert torch.equal(a, b)
    if image == (800, 1344):
        assert got[0].shape == (268569, 4)
    got[0].zero_()  # each image owns its anchors
    assert got[1].abs().sum() > 0


def test_anchor_generator_multi_size_levels(device):
    sizes = ((16, 32, 64), (128,))
    ratios = ((0.25, 1.0), (1.0, 3.0, 0.7))
    image_list, feats = mask_rcnn_anchor_inputs(device=device, image=(96, 160), images=1)
    got = roiops.AnchorGenerator(sizes, ratios)(image_list, feats[:2])
    expected = TvAnchorGenerator(sizes, ratios)(image_list, feats[:2])
    assert torch.equal(got[0], expected[0])


def test_opcheck(device):
    boxes, codes = boxes_and_codes(50, 2, torch.float32)
    boxes, codes = boxes.to(device), codes.to(device)
    w = list(BOX_HEAD_WEIGHTS)
    clip = math.log(1000 / 16)
    torch.library.opcheck(torch.ops.roiops.decode_boxes.default, (codes, boxes, w, clip))
    torch.library.opcheck(
        torch.ops.roiops.decode_clip_boxes.default, (codes, boxes, w, clip, 600, 800, 1e-3)
    )
    torch.library.opcheck(torch.ops.roiops.encode_boxes.default, (boxes + 2, boxes, w))
    torch.library.opcheck(torch.ops.roiops.box_iou.default, (boxes, boxes[:7]))
    torch.library.opcheck(torch.ops.roiops.box_iou.default, (boxes[None], boxes[:7], "cxcywh"))
    torch.library.opcheck(torch.ops.roiops.box_iou.default, (boxes.int(), boxes[:7].int(), "xywh"))
    cells = torch.tensor([[-8.0, -8, 8, 8], [-16, -8, 16, 8], [-4.0, -4, 4, 4]], device=device)
    torch.library.opcheck(
        torch.ops.roiops.grid_anchors.default, (cells, [2, 1], [4, 2], [5, 3], [8, 16], [8, 16], 2)
    )


def test_torch_compile_decode(device):
    boxes, codes = boxes_and_codes(64, 1, torch.float32)
    boxes, codes = boxes.to(device), codes.to(device)
    torch._dynamo.reset()
    fn = torch.compile(
        lambda c, b: roiops.decode_boxes(c, b, RPN_WEIGHTS).sum(1),
        fullgraph=True,
        backend="aot_eager",
    )
    assert torch.equal(fn(codes, boxes), roiops.decode_boxes(codes, boxes, RPN_WEIGHTS).sum(1))


def test_bad_input(device):
    boxes, codes = boxes_and_codes(5, 1, torch.float32)
    boxes, codes = boxes.to(device), codes.to(device)
    with pytest.raises(ValueError, match=r"rel_codes must be a 2-D tensor \[N, 4 \* k\]"):
        roiops.decode_boxes(codes[:, :3], boxes, RPN_WEIGHTS)
    with pytest.raises(ValueError, match=r"boxes must be \[N, 4\] with N = 5"):
        roiops.decode_boxes(codes, boxes[:4], RPN_WEIGHTS)
    with pytest.raises(ValueError, match="weights must be 4 numbers"):
        roiops.decode_boxes(codes, boxes, (1.0, 1.0))
    with pytest.raises(ValueError, match="weights must be finite and non-zero"):
        roiops.encode_boxes(boxes, boxes, (1.0, 0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="proposals must have the shape of reference_boxes"):
        roiops.encode_boxes(boxes, boxes[:3], RPN_WEIGHTS)
    with pytest.raises(TypeError, match="rel_codes must be float32 or float64"):
        torch.ops.roiops.decode_boxes(codes.long(), boxes.long(), [1.0] * 4, 4.0)
    with pytest.raises(ValueError, match=r"boxes2 must be \[\.\.\., M, 4\]"):
        roiops.box_iou(boxes, boxes[:, :2])
    with pytest.raises(TypeError, match="boxes must be a list"):
        roiops.BoxCoder(RPN_WEIGHTS).decode(codes, boxes)
    image_list, feats = mask_rcnn_anchor_inputs(device=device, image=(64, 64), images=1)
    with pytest.raises(ValueError, match="got 5 feature maps but anchors for 1 levels"):
        roiops.AnchorGenerator()(image_list, feats)
    with pytest.raises(ValueError, match=r"cell_anchors must be \[3, 4\]"):
        torch.ops.roiops.grid_anchors(torch.zeros(2, 4, device=device), [3], [2], [2], [8], [8], 1)
    # empty inputs give empty outputs
    assert roiops.decode_boxes(codes[:0], boxes[:0], RPN_WEIGHTS).shape == (0, 4)
    assert roiops.encode_boxes(boxes[:0], boxes[:0], RPN_WEIGHTS).shape == (0, 4)
