"""The CUDA kernels, run on the CPU under the emulated CUDA execution model (tests/emulated_cuda/).

Every launcher and kernel of csrc/cuda/ runs here from its own source on every machine, CI included:
its results must equal torchvision's and the CPU backend's on the same inputs, exactly where the
arithmetic is the same (RoIAlign forward, assign_levels, NMS, box_iou, anchors), within a few ulps
where the kernel's math library or atomic summation order differs (exp/log of the box coder, the
backward scatter). The emulated grid has at most 3 blocks (emulation.h), so every element-wise
kernel runs its grid-stride loop here as a GPU does only past 2^28 elements. The cases aim at the
kernels' own branches: channels-last thread mapping, channel chunks, the shared-memory tap table
and its fallback, invalid RoIs, NMS tiles and segment striding.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from emulated_cuda import load as load_emulated_cuda
from inputs import (
    boxes_and_codes,
    clustered_boxes,
    deterministic_algorithms,
    mask_rcnn_anchor_inputs,
    pasted_masks_case,
    pyramid_inputs,
    random_boxes,
    roi_align_case,
)
from torch.testing import assert_close
from torchvision.ops.boxes import clip_boxes_to_image

import roiops

CPU = torch.ops.roiops


@pytest.fixture(scope="module")
def gpu():
    """The CUDA kernels' ops, emulated: torch.ops.roiops_emulated_cuda."""
    load_emulated_cuda()
    return torch.ops.roiops_emulated_cuda


# --- the emulator itself --------------------------------------------------------------------------


def test_emulator_shares_memory_per_block_and_refuses_broken_barriers(gpu):
    x = torch.arange(5 * 64).view(5, 64) ** 2
    assert torch.equal(gpu._emulator_row_sums(x), x.sum(1))
    with pytest.raises(RuntimeError, match="different __syncthreads"):
        gpu._emulator_run_broken_kernel(0)
    with pytest.raises(RuntimeError, match="returned from the kernel"):
        gpu._emulator_run_broken_kernel(1)


# --- RoIAlign -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize(
    "sampling_ratio,scale", [(-1, 1 / 4), (0, 1 / 4), (1, 1 / 16), (2, 1.0), (3, 1 / 32)]
)
def test_roi_align_forward_bit_identical_to_torchvision(gpu, dtype, aligned, sampling_ratio, scale):
    x, rois = roi_align_case("cpu", dtype, scale, seed=sampling_ratio + 7, batch=2, num_rois=24)
    out = gpu.roi_align(x, rois, scale, 7, 7, sampling_ratio, aligned)
    ref = torchvision.ops.roi_align(x, rois, (7, 7), scale, sampling_ratio, aligned)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("layout", ["channels_last", "sliced", "channel_chunks"])
def test_roi_align_forward_thread_mappings(gpu, layout):
    """channels_last takes the channel-fastest mapping (no copy); many channels split a RoI over
    blocks."""
    channels = 300 if layout == "channel_chunks" else 6
    x, rois = roi_align_case("cpu", torch.float32, 1 / 4, channels=channels, num_rois=6, batch=2)
    ref = torchvision.ops.roi_align(x, rois, (7, 7), 1 / 4, 2, False)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    elif layout == "sliced":
        x = torch.cat([x, x], 3)[..., : x.size(3)]
    for inp in [x, x.to(memory_format=torch.channels_last)] if layout == "channel_chunks" else [x]:
        assert torch.equal(gpu.roi_align(inp, rois, 1 / 4, 7, 7, 2, False), ref)


def test_roi_align_taps_beyond_shared_memory(gpu):
    """Adaptive grids of more than 512 taps per axis take the per-thread path with bisection."""
    x = torch.randn(1, 2, 40, 50, dtype=torch.float64)
    rois = torch.tensor(
        [[0, -300.0, -250.0, 3800.0, 3900.0], [0, 5.0, 6.0, 44.0, 30.0], [0, -1e6, -1e6, 1e6, 1e6]],
        dtype=torch.float64,
    )
    out = gpu.roi_align(x, rois, 1.0, 7, 7, -1, True)
    assert torch.equal(out[:2], torchvision.ops.roi_align(x, rois[:2], (7, 7), 1.0, -1, True))
    assert torch.equal(
        out[2], CPU.roi_align(x, rois[2:], 1.0, 7, 7, -1, True)[0]
    )  # torchvision: minutes


def test_roi_align_invalid_rois_give_defined_results(gpu):
    """A batch index outside [0, N) gives a zero row on CUDA (the CPU raises); NaN/Inf boxes zero
    samples."""
    x, rois = roi_align_case("cpu", torch.float32, 1.0, num_rois=8, batch=2)
    rois[1, 0] = 2.0  # batch index == N
    rois[2, 0] = -1.0
    rois[3, 1] = float("nan")
    rois[4, 3] = float("inf")
    rois[5, 0] = float("nan")
    rois[6, 0] = float("inf")
    out = gpu.roi_align(x, rois, 1.0, 5, 4, 2, False)
    assert not out[[1, 2, 5, 6]].any()
    valid = torch.tensor([0, 3, 4, 7])
    assert torch.equal(out[valid], CPU.roi_align(x, rois[valid], 1.0, 5, 4, 2, False))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_roi_align_reduced_precision_accumulates_in_float32(gpu, dtype):
    x, rois = roi_align_case("cpu", dtype, 1 / 4, batch=2, num_rois=24)
    out = gpu.roi_align(x, rois, 1 / 4, 7, 7, 2, True)
    ref = torchvision.ops.roi_align(x.float(), rois.float(), (7, 7), 1 / 4, 2, True).to(dtype)
    assert out.dtype == dtype and torch.equal(out, ref)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_backward_matches_torchvision(gpu, dtype, rtol, sampling_ratio):
    x, rois = roi_align_case("cpu", dtype, 1 / 4, seed=3, batch=2, num_rois=24)
    x.requires_grad_(True)
    torchvision.ops.roi_align(x, rois, (7, 7), 1 / 4, sampling_ratio, True).backward(
        grad := torch.randn(rois.size(0), x.size(1), 7, 7, dtype=dtype)
    )
    n, c, h, w = x.shape
    out = gpu._roi_align_backward(grad, rois, 1 / 4, 7, 7, n, c, h, w, sampling_ratio, True)
    assert_close(out, x.grad, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_roi_align_reduced_precision_backward(gpu, dtype):
    x, rois = roi_align_case("cpu", dtype, 1 / 4, seed=4, batch=2, num_rois=24)
    grad = torch.randn(rois.size(0), x.size(1), 7, 7).to(dtype)
    args = (rois, 1 / 4, 7, 7, *x.shape, 2, False)
    out = gpu._roi_align_backward(grad, *args)
    assert out.dtype == dtype
    assert_close(out, CPU._roi_align_backward(grad, *args), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "sampling_ratio,aligned,scale",
    [(-1, True, 1 / 4), (0, False, 1.0), (2, False, 1 / 16), (3, True, 1 / 4)],
)
def test_roi_align_deterministic_backward_bit_identical_to_torchvision(
    gpu, dtype, sampling_ratio, aligned, scale
):
    """Under deterministic mode the CUDA backward gathers each pixel's terms in torchvision's CPU
    order."""
    x, rois = roi_align_case("cpu", dtype, scale, seed=sampling_ratio + 20, batch=2, num_rois=24)
    x.requires_grad_(True)
    grad = torch.randn(rois.size(0), x.size(1), 7, 7, dtype=dtype)
    torchvision.ops.roi_align(x, rois, (7, 7), scale, sampling_ratio, aligned).backward(grad)
    with deterministic_algorithms():
        out = gpu._roi_align_backward(grad, rois, scale, 7, 7, *x.shape, sampling_ratio, aligned)
    assert torch.equal(out, x.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_deterministic_backward_equals_cpu_on_invalid_rois_and_levels(gpu, dtype):
    """Bad batch index, NaN box, no level, huge adaptive box: the same bits as the CPU kernel."""
    maps, rois, scales = pyramid_inputs(dtype, num_levels=3, seed=2)
    levels = CPU.assign_levels(rois.float(), 2, 4, 224.0, 4.0, 1e-6)
    rois[0, 0], rois[1, 2], levels[2] = 5.0, float("nan"), -1
    rois[3, 1:] = torch.tensor(
        [-500.0, -400.0, 3000.0, 2000.0], dtype=dtype
    )  # grid of 500+ per bin axis
    grad = torch.randn(rois.size(0), maps[0].size(1), 7, 7).to(dtype)
    sizes = ([m.size(2) for m in maps], [m.size(3) for m in maps], 0, False)
    args = (grad, rois, levels, scales, 7, 7, maps[0].size(0), maps[0].size(1), *sizes)
    with deterministic_algorithms():
        out = gpu._multi_scale_roi_align_backward(*args)
        again = gpu._multi_scale_roi_align_backward(*args)
    valid = torch.arange(rois.size(0)) > 0  # the CPU kernel raises on the bad batch index of row 0
    ref = CPU._multi_scale_roi_align_backward(grad[valid], rois[valid], levels[valid], *args[3:])
    for o, a, r in zip(out, again, ref):
        assert o.dtype == dtype and torch.equal(o, r) and torch.equal(a, r)


def test_roi_align_empty(gpu):
    x = torch.randn(2, 3, 5, 5)
    assert gpu.roi_align(x, torch.zeros(0, 5), 1.0, 7, 7, 2, False).shape == (0, 3, 7, 7)
    grad = gpu._roi_align_backward(
        torch.zeros(0, 3, 7, 7), torch.zeros(0, 5), 1.0, 7, 7, 2, 3, 5, 5, 2, False
    )
    assert grad.shape == (2, 3, 5, 5) and not grad.any()


# --- multi-level ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_assign_levels_equals_cpu(gpu, dtype):
    _, rois, _ = pyramid_inputs(torch.float32)
    edges = [[0, 10.0, 20.0, 10.0 + s, 20.0 + s] for k in range(-4, 4) for s in [224 * 2.0**k]]
    edges += [[0, 5, 5, 5, 5], [0, 0, 0, 1e7, 1e7], [0, 4, 4, 2, 9], [0, float("nan"), 0, 1, 1]]
    rois = torch.cat([rois, torch.tensor(edges)]).to(dtype)
    for boxes in [rois, rois[:, 1:]]:
        out = gpu.assign_levels(boxes, 2, 5, 224.0, 4.0, 1e-6)
        assert torch.equal(out, CPU.assign_levels(boxes, 2, 5, 224.0, 4.0, 1e-6))


@pytest.mark.parametrize(
    "sampling_ratio,aligned,size", [(2, False, 7), (0, True, 14), (-1, False, 5)]
)
def test_multi_scale_forward_equals_cpu_and_torchvision(gpu, sampling_ratio, aligned, size):
    maps, rois, scales = pyramid_inputs(torch.float32)
    levels = CPU.assign_levels(rois, 2, 5, 224.0, 4.0, 1e-6)
    levels[0] = -1  # no level (assign_levels' NaN box): a zero row
    args = (scales, size, size, sampling_ratio, aligned)
    out = gpu.multi_scale_roi_align(maps, rois, levels, *args)
    assert torch.equal(out, CPU.multi_scale_roi_align(maps, rois, levels, *args))
    assert not out[0].any()
    # Level indices past the last level: the CPU raises, CUDA gives zero rows (checking would sync).
    levels[1:3] = torch.tensor([4, 7])
    out_of_range = gpu.multi_scale_roi_align(maps, rois, levels, *args)
    assert not out_of_range[:3].any() and torch.equal(out_of_range[3:], out[3:])
    level = 2  # rows of one level are plain torchvision RoIAlign on that level's map
    rows = (levels == level).nonzero()[:, 0]
    ref = torchvision.ops.roi_align(
        maps[level], rois[rows], size, scales[level], sampling_ratio, aligned
    )
    assert torch.equal(out[rows], ref)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_multi_scale_backward_equals_cpu(gpu, dtype, rtol):
    maps, rois, scales = pyramid_inputs(dtype, num_levels=3, seed=1)
    levels = CPU.assign_levels(rois, 2, 4, 224.0, 4.0, 1e-6)
    grad = torch.randn(rois.size(0), maps[0].size(1), 7, 7, dtype=dtype)
    args = (grad, rois, levels, scales, 7, 7, maps[0].size(0), maps[0].size(1))
    sizes = ([m.size(2) for m in maps], [m.size(3) for m in maps], 2, True)
    out = gpu._multi_scale_roi_align_backward(*args, *sizes)
    ref = CPU._multi_scale_roi_align_backward(*args, *sizes)
    assert len(out) == 3
    for o, r in zip(out, ref):
        assert_close(o, r, rtol=rtol, atol=rtol)


# --- NMS ------------------------------------------------------------------------------------------


def greedy_inputs(boxes, scores, classes):
    """What the composite NMS ops hand to _nms_greedy: per row, boxes grouped by class, by score
    within."""
    order = scores.sort(dim=1, descending=True, stable=True).indices
    if classes is None:
        return boxes.gather(1, order[..., None].expand(-1, -1, 4)).contiguous(), None
    cls, within = classes.gather(1, order).sort(dim=1, stable=True)
    perm = order.gather(1, within)
    return boxes.gather(1, perm[..., None].expand(-1, -1, 4)).contiguous(), cls.contiguous()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 63, 64, 65, 200])
@pytest.mark.parametrize("kind", ["random", "clustered"])
def test_nms_one_segment_equals_cpu(gpu, dtype, n, kind):
    g = torch.Generator().manual_seed(n)
    boxes = (clustered_boxes if kind == "clustered" else random_boxes)(n, g, dtype=dtype)
    scores = torch.rand(n, generator=g, dtype=dtype)
    sorted_boxes, _ = greedy_inputs(boxes[None], scores[None], None)
    for thr in [0.3, 0.5, 0.7]:
        keep = gpu._nms_greedy(sorted_boxes, None, thr, -1)
        assert torch.equal(keep, CPU._nms_greedy(sorted_boxes, None, thr, -1))
    # The kept boxes are torchvision's, in its order.
    order = scores.sort(descending=True, stable=True).indices
    assert torch.equal(order[keep[0]], torchvision.ops.nms(boxes, scores, 0.7))


@pytest.mark.parametrize("max_keep", [-1, 1, 5, 64, 100])
def test_nms_many_segments_equal_cpu(gpu, max_keep):
    """3 rows x up to 40 classes: far more segments than the emulated grid's 16 blocks, padding
    included."""
    g = torch.Generator().manual_seed(max_keep + 10)
    rows, n = 3, 400
    boxes = torch.stack([clustered_boxes(n, g) for _ in range(rows)])
    scores = torch.rand(rows, n, generator=g)
    classes = torch.randint(-1, 40, (rows, n), generator=g)
    classes[1, :] = torch.randint(0, 2, (n,), generator=g)  # two big segments of ~200 boxes
    sorted_boxes, cls = greedy_inputs(boxes, scores, classes)
    keep = gpu._nms_greedy(sorted_boxes, cls, 0.5, max_keep)
    assert torch.equal(keep, CPU._nms_greedy(sorted_boxes, cls, 0.5, max_keep))
    assert not keep[cls < 0].any()


def test_nms_nan_and_inverted_boxes_equal_cpu(gpu):
    g = torch.Generator().manual_seed(5)
    boxes = clustered_boxes(130, g)
    boxes[::7, 0] = float("nan")
    boxes[3::11] = boxes[3::11].flip(1)  # x2 < x1
    scores = torch.rand(130, generator=g)
    sorted_boxes, _ = greedy_inputs(boxes[None], scores[None], None)
    assert torch.equal(
        gpu._nms_greedy(sorted_boxes, None, 0.5, -1), CPU._nms_greedy(sorted_boxes, None, 0.5, -1)
    )


def test_composite_nms_ops_reach_the_emulated_kernel(gpu):
    """The op layer is compiled into the emulated library too: nms, batched_nms and
    batched_nms_padded sort and group there and call the emulated _nms_greedy."""
    g = torch.Generator().manual_seed(11)
    boxes = clustered_boxes(300, g)
    scores = (torch.rand(300, generator=g) * 8).round() / 8  # ties: the stable order decides
    idxs = torch.randint(0, 4, (300,), generator=g)
    assert torch.equal(gpu.nms(boxes, scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))
    assert torch.equal(
        gpu.batched_nms(boxes, scores, idxs, 0.5), CPU.batched_nms(boxes, scores, idxs, 0.5)
    )
    keep, count = gpu.batched_nms_padded(
        boxes.view(3, 100, 4), scores.view(3, 100), idxs.view(3, 100), 0.5, 20
    )
    ref_keep, ref_count = CPU.batched_nms_padded(
        boxes.view(3, 100, 4), scores.view(3, 100), idxs.view(3, 100), 0.5, 20
    )
    assert torch.equal(keep, ref_keep) and torch.equal(count, ref_count)


# --- box coding, IoU, anchors ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 3])
def test_box_coder_equals_torchvision_on_cuda(gpu, dtype, k):
    """The contract on CUDA is torchvision's CUDA bits, whose `codes / w` is ATen's CUDA division
    by a scalar: a multiplication by 1 / w. Here that is spelled with torchvision's own decode on
    the CPU: weights 1 and the codes multiplied by the reciprocals first. Exact up to exp/log
    (glibc's here, ATen's vectorised ones on the CPU): a 1-ulp difference in a box height shows in
    x1 = ctr - h / 2 as an absolute error of that ulp (6e-5 at 1000 px); a true division instead of
    the reciprocal is up to 4 ulps off (2.4e-4), beyond the tolerance."""
    tol = dict(rtol=1e-6, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-13, atol=1e-10)
    boxes, codes = boxes_and_codes(300, k, dtype)
    weights, clip = [10.0, 10.0, 5.0, 5.0], math.log(1000.0 / 16)
    reciprocals = torch.tensor(1.0, dtype=dtype) / torch.tensor(weights, dtype=dtype)
    on_cuda = torchvision.models.detection._utils.BoxCoder((1.0,) * 4, clip)
    ref = on_cuda.decode_single(codes * reciprocals.repeat(k), boxes)  # [N, 4k]
    assert_close(gpu.decode_boxes(codes, boxes, weights, clip), ref, **tol)
    decoded, keep = gpu.decode_clip_boxes(codes, boxes, weights, clip, 480, 640, 1e-3)
    ref_decoded = clip_boxes_to_image(ref.view(-1, 4), (480, 640)).view_as(ref)
    sides = ref_decoded.view(-1, k, 4)
    ref_keep = ((sides[..., 2] - sides[..., 0]) >= 1e-3) & ((sides[..., 3] - sides[..., 1]) >= 1e-3)
    assert_close(decoded, ref_decoded, **tol)
    assert torch.equal(keep, ref_keep)
    coder = torchvision.models.detection._utils.BoxCoder(tuple(weights), clip)
    gt = ref[:, :4]
    assert_close(gpu.encode_boxes(gt, boxes, weights), coder.encode_single(gt, boxes), **tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_box_coding_on_cuda(gpu, dtype):
    """Every step rounded to the dtype, as torchvision's ops on CUDA round: the codes times the
    float32 reciprocals of the weights, rounded; the rest as in the CPU kernel (exp: glibc's here,
    ATen's on the CPU -- after rounding to half precision they agree but at rare ties). Encoding
    with half precision anchors beside float32 boxes: the anchors' widths and centres in their
    dtype, as torchvision's RPN under autocast."""
    boxes, codes = boxes_and_codes(300, 2, torch.float32)
    boxes, codes = boxes.to(dtype), codes.to(dtype)
    weights, clip = [10.0, 10.0, 5.0, 5.0], math.log(1000.0 / 16)
    reciprocals = 1.0 / torch.tensor(weights)  # float32, as ATen's CUDA division by a scalar
    scaled = (codes.float() * reciprocals.repeat(2)).to(dtype)
    ref = torchvision.models.detection._utils.BoxCoder((1.0,) * 4, clip).decode_single(
        scaled, boxes
    )
    out = gpu.decode_boxes(codes, boxes, weights, clip)
    assert out.dtype == dtype
    assert_close(out, ref, rtol=torch.finfo(dtype).eps, atol=0)
    gt = boxes.float() + 3.0
    coder = torchvision.models.detection._utils.BoxCoder(tuple(weights), clip)
    assert_close(gpu.encode_boxes(gt, boxes, weights), coder.encode_single(gt, boxes))


@pytest.mark.parametrize("box_dtype", [torch.float16, torch.bfloat16])
def test_paste_masks_half_precision_boxes_equal_cpu(gpu, box_dtype):
    masks, boxes = pasted_masks_case(30, (37, 45), seed=4)
    boxes = boxes.to(box_dtype)
    out = gpu.paste_masks_in_image(masks, boxes, 37, 45, 1)
    assert torch.equal(out, CPU.paste_masks_in_image(masks, boxes, 37, 45, 1))


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.float16, torch.int32, torch.uint8]
)
@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_iou_bit_identical_to_torchvision(gpu, dtype, fmt):
    """Every format, the promotion of half-precision and integer boxes, and a batch dimension."""
    g = torch.Generator().manual_seed(0)
    a, b = random_boxes(70, g), random_boxes(300, g)
    a[5] = a[5].flip(0)
    a, b = a.to(dtype), torch.stack([b, b.flip(0)]).to(dtype)  # b: [2, 300, 4]
    out = gpu.box_iou(a, b, fmt)
    assert out.shape == (2, 70, 300)
    assert_close(out, torchvision.ops.box_iou(a, b, fmt=fmt), rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_grid_anchors_equal_cpu(gpu, dtype):
    """The Mask R-CNN anchors (5 levels, 3 ratios, P6 of odd size) of two 96x160 images."""
    _, feature_maps = mask_rcnn_anchor_inputs(dtype, image=(96, 160), images=2)
    generator = roiops.AnchorGenerator(
        ((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5
    )
    grids = [f.shape[-2:] for f in feature_maps]
    args = (
        torch.cat(generator.cell_anchors).to(dtype),
        [c.size(0) for c in generator.cell_anchors],
        [h for h, _ in grids],
        [w for _, w in grids],
        [96 // h for h, _ in grids],
        [160 // w for _, w in grids],
        2,
    )
    out = gpu.grid_anchors(*args)
    assert out.shape == (2, 3 * sum(h * w for h, w in grids), 4)
    assert torch.equal(out, CPU.grid_anchors(*args))


@pytest.mark.parametrize("padding", [0, 1])
def test_paste_masks_equals_cpu(gpu, padding):
    """One thread per canvas pixel, many masks in one launch, boxes over every edge of the image."""
    masks, boxes = pasted_masks_case(12, (37, 45), seed=padding)
    boxes[3] = torch.tensor([40.0, 30.0, 20.0, 10.0])  # inverted
    boxes[4] = torch.tensor([60.0, 5.0, 80.0, 20.0])  # right of the image
    boxes[5] = torch.tensor([float("nan"), 0.0, float("inf"), 30.0])  # broken
    out = gpu.paste_masks_in_image(masks, boxes, 37, 45, padding)
    assert torch.equal(out, CPU.paste_masks_in_image(masks, boxes, 37, 45, padding))
