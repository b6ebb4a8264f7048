"""Box coding, box_iou and anchors against torchvision's BoxCoder, box_iou and AnchorGenerator.

The contract, on every device: the bits torchvision gives on that same device. (On CUDA that is not
torchvision's CPU result: there ATen divides by a Python float as a multiplication by its reciprocal
and calls CUDA's expf/logf, where the CPU divides and calls its own vectorised exp/log.)"""

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
from roiops.models.rpn import RPN_WEIGHTS

BOX_HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def same(a, b):
    """Bit-identical (NaN where torchvision has NaN), computed on the same device."""
    assert a.device == b.device
    assert_close(a, b, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weights", [RPN_WEIGHTS, BOX_HEAD_WEIGHTS])
@pytest.mark.parametrize("n,k", [(1, 1), (1000, 91), (70000, 1)])  # 70000 > ATen's parallel grain
def test_decode_matches_torchvision(device, dtype, weights, n, k):
    boxes, codes = boxes_and_codes(n, k, dtype, device=device)
    ref = TvBoxCoder(weights).decode_single(codes, boxes)
    same(roiops.BoxCoder(weights).decode_single(codes, boxes), ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weights", [RPN_WEIGHTS, BOX_HEAD_WEIGHTS])
def test_encode_matches_torchvision(device, dtype, weights):
    proposals, _ = boxes_and_codes(70000, 1, dtype, seed=1, device=device)
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(70000, 4, generator=g, dtype=torch.float64) * 20
    gt = proposals + noise.to(dtype).to(device)  # some inverted
    ref = TvBoxCoder(weights).encode_single(gt, proposals)
    same(roiops.BoxCoder(weights).encode_single(gt, proposals), ref)


def test_box_coder_list_api_and_round_trip(device):
    boxes, codes = boxes_and_codes(30, 3, torch.float32, device=device)
    per_image = [boxes[:10], boxes[10:]]
    ours, ref = roiops.BoxCoder(BOX_HEAD_WEIGHTS), TvBoxCoder(BOX_HEAD_WEIGHTS)
    decoded = ours.decode(codes, per_image)
    assert decoded.shape == (30, 3, 4)
    same(decoded, ref.decode(codes, per_image))
    targets = ours.encode(per_image, [b + 1 for b in per_image])
    for a, b in zip(targets, ref.encode(per_image, [b + 1 for b in per_image])):
        same(a, b)
    # decode(encode(gt, p), p) == gt up to rounding
    p = boxes.to(device)
    gt = p + 3.0
    assert_close(ours.decode_single(ours.encode_single(gt, p), p), gt, rtol=1e-5, atol=1e-3)


def test_decode_clip_boxes_matches_rpn_filter(device):
    boxes, codes = boxes_and_codes(5000, 1, torch.float32, seed=4, device=device)
    codes[::50] = torch.tensor([0.0, 0.0, -12.0, -12.0])  # tiny boxes
    image = (600, 900)
    decoded = TvBoxCoder(RPN_WEIGHTS).decode_single(codes, boxes)
    clipped = clip_boxes_to_image(decoded, image)
    keep_ref = torch.zeros(len(clipped), dtype=torch.bool, device=device)
    keep_ref[remove_small_boxes(clipped, 1e-3)] = True
    out, keep = roiops.decode_clip_boxes(codes, boxes, RPN_WEIGHTS, image, 1e-3)
    same(out, clipped)
    assert torch.equal(keep[:, 0], keep_ref)
    assert not keep_ref.all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("weights", [RPN_WEIGHTS, BOX_HEAD_WEIGHTS])
def test_half_precision_box_coding_is_torchvisions(device, dtype, weights):
    """A model under autocast decodes half precision codes: torchvision rounds every step to that
    dtype, and so does roiops (not a float32 computation rounded once, which moves boxes by an ulp:
    up to 2 px at 300 px in bfloat16, enough to change NMS). Reference boxes convert to the codes'
    dtype."""
    boxes, codes = boxes_and_codes(2000, 3, torch.float32, device=device)
    codes = codes.to(dtype)
    coder, ref = roiops.BoxCoder(weights), TvBoxCoder(weights)
    decoded = coder.decode_single(codes, boxes)
    assert decoded.dtype == dtype
    same(decoded, ref.decode_single(codes, boxes))
    assert not torch.equal(decoded, ref.decode_single(codes.float(), boxes).to(dtype))
    out, _ = roiops.decode_clip_boxes(codes[:, :4], boxes, weights, (600, 900))
    same(out, clip_boxes_to_image(ref.decode_single(codes[:, :4], boxes), (600, 900)))
    gt = boxes.to(dtype) + torch.tensor([1.0, -2.0, 3.0, 0.5], device=device).to(dtype)
    same(coder.encode_single(gt, boxes.to(dtype)), ref.encode_single(gt, boxes.to(dtype)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_iou_matches_torchvision(device, dtype):
    a, _ = boxes_and_codes(300, 1, dtype, seed=5, device=device)
    b, _ = boxes_and_codes(200, 1, dtype, seed=6, device=device)
    a[::7] = a[::7].flip(1)  # inverted boxes
    b[3, 0] = float("nan")
    same(roiops.box_iou(a, b), torchvision.ops.box_iou(a, b))
    assert roiops.box_iou(a[:0], b).shape == (0, 200)


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
    # half precision, as a model under autocast calls them: codes, and anchors beside float boxes
    torch.library.opcheck(
        torch.ops.roiops.decode_boxes.default, (codes.half(), boxes.half(), w, clip)
    )
    torch.library.opcheck(torch.ops.roiops.encode_boxes.default, (boxes + 2, boxes.bfloat16(), w))
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
    with pytest.raises(TypeError, match="rel_codes must be float32, float64, float16 or bfloat16"):
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: 2^28 outputs")
def test_box_iou_writes_every_output_past_2_28():
    """16 500 x 16 500 = 272 million IoUs, more than the capped grid's threads (2^20 blocks of 256):
    the grid-stride loop must reach the last rows (the emulated tests run it with 3 blocks)."""
    n = 16500
    boxes, _ = boxes_and_codes(n, 1, torch.float32, seed=9, device="cuda")
    iou = roiops.box_iou(boxes, boxes)
    assert iou.numel() > 2**28
    assert torch.equal(iou.diagonal(), torch.ones(n, device="cuda"))
    same(iou[-64:], torchvision.ops.box_iou(boxes[-64:], boxes))
