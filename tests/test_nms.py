"""roiops NMS ops against torchvision.ops.nms / batched_nms: same kept indices in the same order."""

from __future__ import annotations

import pytest
import torch
import torchvision
from inputs import clustered_boxes, random_boxes
from torch.testing import assert_close

import roiops


def tv_reference(boxes, scores, thr, idxs=None):
    """torchvision on the CPU (its coordinate trick is exact for these non-negative boxes)."""
    b, s = boxes.cpu(), scores.cpu()
    if idxs is None:
        return torchvision.ops.nms(b, s, thr)
    return torchvision.ops.batched_nms(b, s, idxs.cpu(), thr)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 2, 17, 64, 65, 300, 1000])
@pytest.mark.parametrize("kind", ["random", "clustered", "tied_scores"])
def test_nms_matches_torchvision(device, dtype, n, kind):
    g = torch.Generator().manual_seed(n)
    boxes = (clustered_boxes if kind == "clustered" else random_boxes)(n, g, dtype=dtype)
    scores = torch.rand(n, generator=g, dtype=torch.float64).to(dtype)
    if kind == "tied_scores":
        scores = (scores * 4).round() / 4  # many equal scores: stable order decides
    for thr in [0.0, 0.3, 0.5, 0.7, 1.0]:
        ours = roiops.nms(boxes.to(device), scores.to(device), thr)
        assert ours.device.type == device.type and ours.dtype == torch.int64
        assert torch.equal(ours.cpu(), tv_reference(boxes, scores, thr)), thr


def test_nms_10000_boxes(device):
    g = torch.Generator().manual_seed(0)
    boxes = clustered_boxes(10000, g)
    scores = torch.rand(10000, generator=g)
    ours = roiops.nms(boxes.to(device), scores.to(device), 0.5)
    assert torch.equal(ours.cpu(), torchvision.ops.nms(boxes, scores, 0.5))


def test_iou_exactly_at_threshold(device):
    # IoU of box 1 with box 0 is exactly 0.5, 0.3 and 0.7 in turn; suppression needs IoU > thr,
    # compared in double as torchvision does: float32(0.3) > 0.3 but float32(0.7) < 0.7.
    for height, thr in [(5.0, 0.5), (3.0, 0.3), (7.0, 0.7)]:
        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, height]], device=device)
        scores = torch.tensor([0.9, 0.8], device=device)
        ours = roiops.nms(boxes, scores, thr).cpu()
        assert torch.equal(ours, torchvision.ops.nms(boxes.cpu(), scores.cpu(), thr)), (height, thr)
    assert roiops.nms(boxes, scores, 0.5).tolist() == [0]  # IoU 0.7 > 0.5


@pytest.mark.parametrize("num_classes", [1, 3, 100])
@pytest.mark.parametrize("n", [10, 500, 1000])
def test_batched_nms_matches_torchvision(device, num_classes, n):
    g = torch.Generator().manual_seed(num_classes * 7 + n)
    boxes = clustered_boxes(n, g)
    scores = torch.rand(n, generator=g)  # distinct: torchvision's per-class path sorts unstably
    idxs = torch.randint(0, num_classes, (n,), generator=g)
    for thr in [0.3, 0.5, 0.7]:
        ours = roiops.batched_nms(boxes.to(device), scores.to(device), idxs.to(device), thr)
        assert torch.equal(ours.cpu(), tv_reference(boxes, scores, thr, idxs)), thr


@pytest.mark.parametrize("n", [1000, 1001, 5001, 20000])
def test_batched_nms_tied_scores_in_torchvisions_order(device, n):
    """Tied scores (as a detector's saturated scores are): the same order as torchvision's both
    at and above the size (4000 coordinates on the CPU) where it switches to an unstable sort."""
    g = torch.Generator().manual_seed(n)
    boxes = clustered_boxes(n, g)
    scores = (torch.rand(n, generator=g) * 8).round() / 8
    idxs = torch.randint(0, 5, (n,), generator=g)
    boxes, scores, idxs = boxes.to(device), scores.to(device), idxs.to(device)
    ours = roiops.batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(ours, torchvision.ops.batched_nms(boxes, scores, idxs, 0.5))


def test_batched_nms_is_exact_where_torchvision_offset_trick_is_not(device):
    # torchvision shifts class c by c * (max_coordinate + 1). With negative coordinates a shifted
    # box can land on a box of another class: max is 0, so box 1 (class 1) moves by +1 onto box 0
    # and is suppressed by it. roiops never compares boxes of different classes.
    boxes = torch.tensor([[-10.0, -10.0, 0.0, 0.0], [-11.0, -11.0, -1.0, -1.0]], device=device)
    scores = torch.tensor([0.9, 0.8], device=device)
    idxs = torch.tensor([0, 1], device=device)
    assert torchvision.ops.batched_nms(boxes.cpu(), scores.cpu(), idxs.cpu(), 0.5).tolist() == [0]
    assert roiops.batched_nms(boxes, scores, idxs, 0.5).tolist() == [0, 1]
    # Negative class indices are classes like any other.
    assert roiops.batched_nms(
        boxes, scores, torch.tensor([-5, 7], device=device), 0.5
    ).tolist() == [0, 1]


def test_batched_nms_equals_per_class_nms_with_large_class_ids(device):
    # Offsets of idx * (max + 1) with idx ~ 1e6 exceed float32's integer precision; exact per-class
    # NMS must still equal NMS run on each class alone.
    g = torch.Generator().manual_seed(3)
    boxes = clustered_boxes(400, g)
    scores = torch.rand(400, generator=g)
    idxs = torch.randint(0, 4, (400,), generator=g) * 1_000_000
    ours = roiops.batched_nms(boxes.to(device), scores.to(device), idxs.to(device), 0.5).cpu()
    expected = []
    for c in idxs.unique():
        members = (idxs == c).nonzero().squeeze(1)
        expected.append(members[torchvision.ops.nms(boxes[members], scores[members], 0.5)])
    expected = torch.cat(expected)
    expected = expected[scores[expected].argsort(descending=True, stable=True)]
    assert torch.equal(ours, expected)


@pytest.mark.parametrize("with_classes", [False, True])
@pytest.mark.parametrize("max_output", [0, 1, 7, 50, 1000])
def test_batched_nms_padded_equals_per_image_batched_nms(device, with_classes, max_output):
    g = torch.Generator().manual_seed(max_output)
    b, n = 4, 300
    boxes = torch.stack([clustered_boxes(n, g) for _ in range(b)])
    scores = torch.rand(b, n, generator=g)
    idxs = torch.randint(-1, 5, (b, n), generator=g) if with_classes else None  # -1: padding
    if with_classes:
        idxs[3] = -1  # an image with no valid box
    keep, count = roiops.batched_nms_padded(
        boxes.to(device),
        scores.to(device),
        None if idxs is None else idxs.to(device),
        0.5,
        max_output,
    )
    assert keep.shape == (b, max_output) and count.shape == (b,)
    keep, count = keep.cpu(), count.cpu()
    for i in range(b):
        valid = torch.arange(n) if idxs is None else (idxs[i] >= 0).nonzero().squeeze(1)
        classes = torch.zeros(len(valid), dtype=torch.long) if idxs is None else idxs[i][valid]
        ref = valid[torchvision.ops.batched_nms(boxes[i][valid], scores[i][valid], classes, 0.5)][
            :max_output
        ]
        assert int(count[i]) == len(ref)
        assert torch.equal(keep[i, : count[i]], ref)
        assert (keep[i, count[i] :] == -1).all()


def test_nan_scores_and_coordinates_follow_torchvision(device):
    nan = float("nan")
    boxes = torch.tensor(
        [
            [0, 0, 10, 10],
            [1, 1, 11, 11],
            [nan, 0, 10, 10],
            [0, 0, 10, 10],
            [50, 50, 60, 60],
            [50, 50, 60, nan],
        ],
        dtype=torch.float32,
    )
    scores = torch.tensor([0.9, nan, 0.8, 0.7, 0.6, 0.95])
    ours = roiops.nms(boxes.to(device), scores.to(device), 0.5).cpu()
    assert torch.equal(ours, torchvision.ops.nms(boxes, scores, 0.5))
    assert ours[0] == 1  # NaN scores sort first, as in torch.sort


def test_inverted_boxes_have_zero_overlap(device):
    boxes = torch.tensor(
        [[10.0, 10.0, 0.0, 0.0], [10.0, 10.0, 0.0, 0.0], [0, 0, 5, 5]], device=device
    )
    scores = torch.tensor([0.9, 0.8, 0.7], device=device)
    assert torch.equal(
        roiops.nms(boxes, scores, 0.5).cpu(), torchvision.ops.nms(boxes.cpu(), scores.cpu(), 0.5)
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_on_cuda(dtype):
    g = torch.Generator().manual_seed(0)
    boxes = random_boxes(500, g).round()  # integer coordinates: exact in half precision
    scores = torch.rand(500, generator=g)
    ours = roiops.nms(boxes.cuda().to(dtype), scores.cuda().to(dtype), 0.5)
    ref = torchvision.ops.nms(boxes.to(dtype).float(), scores.to(dtype).float(), 0.5)
    assert torch.equal(ours.cpu(), ref)


def test_empty_inputs(device):
    empty = torch.zeros(0, 4, device=device)
    out = roiops.nms(empty, torch.zeros(0, device=device), 0.5)
    assert out.shape == (0,) and out.dtype == torch.int64 and out.device.type == device.type
    out = roiops.batched_nms(
        empty, torch.zeros(0, device=device), torch.zeros(0, dtype=torch.long, device=device), 0.5
    )
    assert out.shape == (0,) and out.dtype == torch.int64
    keep, count = roiops.batched_nms_padded(
        torch.zeros(2, 0, 4, device=device), torch.zeros(2, 0, device=device), None, 0.5, 5
    )
    assert keep.tolist() == [[-1] * 5] * 2 and count.tolist() == [0, 0]


def test_bad_input(device):
    boxes = torch.rand(5, 4, device=device)
    scores = torch.rand(5, device=device)
    with pytest.raises(ValueError, match=r"scores must have one score per box"):
        roiops.nms(boxes, scores[:4], 0.5)
    with pytest.raises(ValueError, match=r"boxes must be a 2-D tensor \[N, 4\]"):
        roiops.nms(boxes[:, :3], scores, 0.5)
    with pytest.raises(ValueError, match=r"boxes must be a 2-D tensor"):
        roiops.nms(boxes[None], scores, 0.5)
    with pytest.raises(ValueError, match=r"idxs must have one class index per box"):
        roiops.batched_nms(boxes, scores, torch.zeros(4, dtype=torch.long, device=device), 0.5)
    with pytest.raises(TypeError, match="idxs must be an integer tensor"):  # float: a category
        roiops.batched_nms(boxes, scores, torch.zeros(5, dtype=torch.bool, device=device), 0.5)
    with pytest.raises(TypeError, match="idxs must be an integer tensor"):  # the op itself
        torch.ops.roiops.batched_nms(boxes, scores, torch.zeros(5, device=device), 0.5)
    with pytest.raises(TypeError, match="boxes must be float32, float64"):
        roiops.nms(boxes.long(), scores, 0.5)
    with pytest.raises(ValueError, match="max_output must be non-negative"):
        roiops.batched_nms_padded(boxes[None], scores[None], None, 0.5, -1)
    if device.type == "cuda":
        with pytest.raises(RuntimeError, match="scores is on cpu but boxes is on cuda"):
            roiops.nms(boxes, scores.cpu(), 0.5)


def test_opcheck(device):
    g = torch.Generator().manual_seed(0)
    boxes = clustered_boxes(80, g).to(device)
    scores = torch.rand(80, generator=g).to(device)
    idxs = torch.randint(0, 3, (80,), generator=g).to(device)
    torch.library.opcheck(torch.ops.roiops.nms.default, (boxes, scores, 0.5))
    torch.library.opcheck(torch.ops.roiops.batched_nms.default, (boxes, scores, idxs, 0.5))
    torch.library.opcheck(
        torch.ops.roiops.batched_nms_padded.default,
        (boxes.view(2, 40, 4), scores.view(2, 40), idxs.view(2, 40), 0.5, 10),
    )
    order = scores.argsort(descending=True)
    torch.library.opcheck(
        torch.ops.roiops._nms_greedy.default,
        (boxes[order].view(1, 80, 4).contiguous(), None, 0.5, -1),
    )


def test_torch_compile_padded(device):
    g = torch.Generator().manual_seed(1)
    boxes = torch.stack([clustered_boxes(100, g) for _ in range(2)]).to(device)
    scores = torch.rand(2, 100, generator=g).to(device)
    levels = torch.randint(0, 3, (2, 100), generator=g).to(device)
    torch._dynamo.reset()
    fn = torch.compile(
        lambda b, s, i: roiops.batched_nms_padded(b, s, i, 0.7, 20),
        fullgraph=True,
        backend="aot_eager",
    )
    keep, count = fn(boxes, scores, levels)
    ref_keep, ref_count = roiops.batched_nms_padded(boxes, scores, levels, 0.7, 20)
    assert torch.equal(keep, ref_keep) and torch.equal(count, ref_count)
    assert_close(count.float(), ref_count.float())
