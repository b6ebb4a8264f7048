"""Non-maximum suppression with torchvision's signatures and results, and a fixed-size batched
form."""

from __future__ import annotations

import torch
from torch import Tensor

from .._onnx import cast, constant, lowering, op
from ..errors import call_op


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS: keeps boxes by decreasing score, dropping those whose IoU with a kept box is
    greater than ``iou_threshold`` (strictly).

    Args:
        boxes: Tensor[N, 4] (x1, y1, x2, y2). x2 < x1 gives zero overlap, as in torchvision.
            Quantized boxes (and scores) are compared on their integers, as torchvision does.
        scores: Tensor[N]. Equal scores keep ascending box order; NaN scores sort first.
        iou_threshold: any number, as in torchvision: at 1 or above nothing is suppressed, below 0
            the best box suppresses all others (every IoU, 0 included, is above it).

    Returns:
        int64 Tensor of kept indices, by decreasing score (torchvision.ops.nms's result).
    """
    if not torch.jit.is_scripting():
        return call_op(torch.ops.roiops.nms, boxes, scores, float(iou_threshold))
    return torch.ops.roiops.nms(boxes, scores, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category ``idxs`` (integers, or floats: boxes of one value are one
    category): boxes of different categories never suppress each other.

    Exact per-class NMS in one op (torchvision shifts boxes by ``idx * (max_coordinate + 1)`` and
    runs one NMS, which loses float precision for large ``idx`` and lets boxes of neighbouring
    classes overlap when coordinates are negative; roiops never mixes classes).

    Returns:
        int64 Tensor of kept indices, by decreasing score. Equal scores come in torchvision's
        order: ascending index, or above 4000 box coordinates on the CPU (20000 on CUDA) the order
        torchvision's unstable sort leaves them in.
    """
    if boxes.numel() == 0:  # as torchvision: empty boxes keep nothing, whatever the rest
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    if idxs.is_floating_point():  # torchvision takes float categories: one value, one category
        idxs = torch.unique(idxs, return_inverse=True)[1]
    if not torch.jit.is_scripting():
        return call_op(torch.ops.roiops.batched_nms, boxes, scores, idxs, float(iou_threshold))
    return torch.ops.roiops.batched_nms(boxes, scores, idxs, iou_threshold)


def batched_nms_padded(
    boxes: Tensor,
    scores: Tensor,
    idxs: Tensor | None,
    iou_threshold: float,
    max_output: int,
) -> tuple[Tensor, Tensor]:
    """Per-image batched NMS for a batch of images, fixed-size and without host sync (for RPN
    proposal filtering, CUDA graphs and ``torch.compile``).

    Args:
        boxes: Tensor[B, N, 4]; scores: Tensor[B, N].
        idxs: Tensor[B, N] category (e.g. FPN level) of each box, or None for one category.
            A negative category marks padding: never kept, never suppresses.
        max_output: kept boxes returned per image; suppression stops once that many are kept.

    Returns:
        (keep, count): keep Tensor[B, max_output] int64 indices into N, by decreasing score,
        padded with -1; count Tensor[B] int64 of valid entries. Row b equals
        ``batched_nms(boxes[b][v], scores[b][v], idxs[b][v], iou_threshold)[:max_output]`` mapped
        back to indices of row b, where v are its non-padding boxes.
    """
    if not torch.jit.is_scripting():
        op = torch.ops.roiops.batched_nms_padded
        return call_op(op, boxes, scores, idxs, float(iou_threshold), int(max_output))
    return torch.ops.roiops.batched_nms_padded(boxes, scores, idxs, iou_threshold, max_output)


# --- ONNX -------------------------------------------------------------------------------------
# ONNX's NonMaxSuppression keeps a box unless its IoU with a kept box of its class exceeds the
# threshold (strictly), as roiops does, but its output is the kept (batch, class, box) triples in an
# order of its own. The lowerings below turn them into keep flags and order the kept boxes as
# roiops does: by decreasing score, equal scores by index (_score_order). What ONNX Runtime
# does differently (README, "Deploying"): it suppresses in float32, normalises flipped corners,
# never suppresses with a box of zero area, and among equal scores picks its own first box.


def _iou_threshold_below(iou_threshold: float) -> Tensor:
    """The largest float32 not above `iou_threshold`: roiops compares float32 IoUs with the double
    threshold, ONNX with a float32 one, and `iou > t` agrees for every float32 iou only when t is
    rounded down."""
    threshold = torch.tensor([iou_threshold], dtype=torch.float32)
    if float(threshold) > iou_threshold:
        threshold = torch.nextafter(threshold, torch.tensor(float("-inf")))
    return threshold


def _keep_flags(boxes, scores, classes, valid, iou_threshold):
    """boxes [B, N, 4], scores [B, N] and classes [B, N] int64 (or None: one class) -> int64 keep
    flags [B, N]. Boxes where `valid` [B, N] (or None: all) is false are neither kept nor
    suppress."""
    boxes = cast(boxes, torch.float32)  # ONNX's NonMaxSuppression takes float32 only
    scores = cast(scores, torch.float32)
    threshold = op.Constant(value=_iou_threshold_below(iou_threshold))
    score_threshold = None
    if classes is None and valid is None:
        class_scores = op.Unsqueeze(scores, [1])  # [B, 1, N]
    else:
        if classes is None:
            dense = op.Expand(constant(0, torch.int64), op.Shape(scores))
            count = constant([1], torch.int64)
        else:  # class ids -> 0..C-1, so that the class axis holds no empty rows
            unique, _, inverse, _ = op.Unique(op.Reshape(classes, [-1]), sorted=1)
            dense = op.Reshape(inverse, op.Shape(classes), allowzero=1)
            count = op.Shape(unique)
        # [B, C, N]: a box's score in its own class, -inf elsewhere; score_threshold -inf drops
        # those (ONNX keeps a box only while its score is above the threshold).
        in_class = op.Equal(
            op.Unsqueeze(dense, [1]),
            op.Unsqueeze(op.Range(constant(0, torch.int64), op.Squeeze(count, [0]), 1), [0, 2]),
        )
        if valid is not None:
            in_class = op.And(in_class, op.Unsqueeze(valid, [1]))
        minus_inf = constant(float("-inf"), torch.float32)
        class_scores = op.Where(in_class, op.Unsqueeze(scores, [1]), minus_inf)
        score_threshold = constant([float("-inf")], torch.float32)
    max_per_class = constant([2**63 - 1], torch.int64)
    selected = op.NonMaxSuppression(boxes, class_scores, max_per_class, threshold, score_threshold)
    batch_and_box = op.Gather(selected, [0, 2], axis=1)  # [K, 2]
    kept = op.Expand(constant(1, torch.int64), op.Shape(selected, start=0, end=1))
    zeros = op.ConstantOfShape(op.Shape(scores), value=torch.zeros(1, dtype=torch.int64))
    return op.ScatterND(zeros, batch_and_box, kept)


# OpenVINO's CPU plugin computes int64 tensors in int32: _score_order's keys, below N * N, stay in
# range only for N below this.
_STABLE_ORDER_LIMIT = 46340  # floor(sqrt(2**31 - 1))


def _score_order(scores):
    """[B, N] -> indices [B, N] by decreasing score, equal scores by index. ONNX's TopK puts the
    lower index first among equal values, but not every runtime's does (OpenVINO's does not): the
    first TopK sorts by score, and a second, on (run of equal scores, index) -- unique integers
    below N * N --, puts each run of ties in index order. From N = _STABLE_ORDER_LIMIT on the
    first TopK's order is taken as it is (ONNX Runtime's is right; in OpenVINO, exact ties among
    that many boxes come out in its order)."""
    count = op.Shape(scores, start=1, end=2)
    values, order = op.TopK(scores, count, axis=1, largest=1, sorted=1)
    first = op.Expand(constant(False, torch.bool), op.Shape(scores, start=0, end=1))
    same = op.Equal(op.Slice(values, [1], [2**62], [1]), op.Slice(values, [0], [-1], [1]))
    new_run = op.Concat(op.Unsqueeze(first, [1]), op.Not(same), axis=1)  # [B, N]
    run = op.CumSum(cast(new_run, torch.int64), constant(1, torch.int64))
    key = op.Add(op.Mul(run, count), order)
    position = op.TopK(key, count, axis=1, largest=0, sorted=1)[1]
    stable = op.GatherElements(order, position, axis=1)
    small = op.Less(count, constant([_STABLE_ORDER_LIMIT], torch.int64))
    return op.Where(small, stable, order)


def _kept_in_score_order(boxes, scores, classes, iou_threshold):
    """[N] boxes of one image -> the kept indices [K] by decreasing score."""
    keep = _keep_flags(
        op.Unsqueeze(boxes, [0]),
        op.Unsqueeze(scores, [0]),
        None if classes is None else op.Unsqueeze(cast(classes, torch.int64), [0]),
        None,
        iou_threshold,
    )
    # [1, N] -> [N] by Reshape, and NonZero + Gather rather than Compress: OpenVINO reads Squeeze
    # of [1, ?] (also inside its Compress) as of unknown rank, which its CPU plugin refuses.
    order = op.Reshape(_score_order(op.Unsqueeze(cast(scores, torch.float32), [0])), [-1])
    kept = op.NonZero(cast(op.Gather(op.Reshape(keep, [-1]), order), torch.bool))  # [1, K]
    return op.Gather(order, op.Reshape(kept, [-1]))


@lowering("nms")
def _nms_onnx(boxes, scores, iou_threshold):
    return _kept_in_score_order(boxes, scores, None, iou_threshold)


@lowering("batched_nms")
def _batched_nms_onnx(boxes, scores, idxs, iou_threshold):
    """Exact per-class NMS with NonMaxSuppression's class axis (each box scores -inf in the other
    classes), not torchvision's coordinate offsets."""
    return _kept_in_score_order(boxes, scores, idxs, iou_threshold)


@lowering("batched_nms_padded")
def _batched_nms_padded_onnx(boxes, scores, idxs, iou_threshold, max_output):
    """Per image the first max_output kept indices by decreasing score, padded with -1, and their
    count; negative classes are padding."""
    scores = cast(scores, torch.float32)
    classes = None if idxs is None else cast(idxs, torch.int64)
    valid = None if idxs is None else op.GreaterOrEqual(classes, constant(0, torch.int64))
    keep = _keep_flags(boxes, scores, classes, valid, iou_threshold)
    order = _score_order(scores)
    kept = op.GatherElements(keep, order, axis=1)  # [B, N] in score order
    rank = op.CumSum(kept, constant(1, torch.int64))
    take = op.And(cast(kept, torch.bool), op.LessOrEqual(rank, constant(max_output, torch.int64)))
    # The r-th kept box of a row goes to column r - 1, the others to a spare last column.
    spare = constant(max_output, torch.int64)
    column = op.Where(take, op.Sub(rank, constant(1, torch.int64)), spare)
    minus_one = constant(-1, torch.int64)
    rows = op.Shape(scores, start=0, end=1)
    out = op.ConstantOfShape(
        op.Concat(rows, constant([max_output + 1], torch.int64), axis=0),
        value=torch.full((1,), -1, dtype=torch.int64),
    )
    out = op.ScatterElements(out, column, op.Where(take, order, minus_one), axis=1)
    out = op.Slice(out, [0], [max_output], [1])
    count = op.Min(op.ReduceSum(kept, [1], keepdims=0), spare)
    return out, count
