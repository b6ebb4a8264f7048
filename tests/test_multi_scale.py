"""FPN level assignment and multi-scale RoIAlign against torchvision's LevelMapper and
MultiScaleRoIAlign."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from inputs import feature_pyramid, on_cpu, rois_from_boxes
from torch.testing import assert_close
from torchvision.ops.poolers import LevelMapper

import roiops

# --- assign_levels --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_assign_levels_equals_level_mapper(device, dtype):
    """Half precision boxes (a model's proposals under autocast) too: torchvision's LevelMapper
    computes them in float32 (its box_area upcasts). On every device the reference is the CPU
    LevelMapper (on CUDA torchvision multiplies by 1/224 where its CPU divides)."""
    _, boxes, _ = feature_pyramid(device, dtype, num_boxes=2000)
    # Boxes exactly on level boundaries (sqrt(area) = 224 * 2^k), one ulp either side, empty and
    # huge.
    edges = []
    for k in range(-4, 4):
        side = 224 * 2.0**k
        for s in [side, math.nextafter(side, 0), math.nextafter(side, math.inf)]:
            edges.append([10.0, 20.0, 10.0 + s, 20.0 + s])
    edges += [[5, 5, 5, 5], [5, 5, 9, 5], [0, 0, 1e7, 1e7], [0, 0, 1e-3, 1e-3]]
    boxes.append(torch.tensor(edges, dtype=dtype, device=device))
    for k_min, k_max in [(2, 5), (2, 6), (3, 3)]:
        ref = LevelMapper(k_min, k_max)(on_cpu(boxes))
        assert torch.equal(roiops.assign_levels(boxes, k_min, k_max).cpu(), ref)
        rois = rois_from_boxes(boxes)
        assert torch.equal(roiops.assign_levels(rois, k_min, k_max).cpu(), ref)  # [K, 5] form


def test_assign_levels_undefined_area_is_minus_one(device):
    nan = float("nan")
    boxes = torch.tensor(
        [[0, 0, 10, 10], [10, 0, 0, 10], [nan, 0, 10, 10], [0, 0, 300, 300]], device=device
    )
    assert roiops.assign_levels(boxes, 2, 5).tolist() == [0, -1, -1, 2]


def test_assign_levels_bad_input(device):
    with pytest.raises(ValueError, match=r"boxes must be \[K, 4\]"):
        roiops.assign_levels(torch.zeros(3, 3, device=device), 2, 5)
    with pytest.raises(TypeError, match="boxes must be float32, float64, float16 or bfloat16"):
        roiops.assign_levels(torch.zeros(3, 4, device=device, dtype=torch.int64), 2, 5)
    with pytest.raises(ValueError, match="k_min must be <= k_max"):
        roiops.assign_levels(torch.zeros(3, 4, device=device), 5, 2)
    assert roiops.assign_levels(torch.zeros(0, 4, device=device), 2, 5).shape == (0,)


# --- MultiScaleRoIAlign ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("num_levels", [2, 3, 4, 5])
@pytest.mark.parametrize("output_size,sampling_ratio", [(7, 2), (14, 2), ((5, 3), -1), (4, 0)])
def test_multi_scale_matches_torchvision(device, dtype, num_levels, output_size, sampling_ratio):
    feats, boxes, sizes = feature_pyramid(device, dtype, num_levels=num_levels, seed=num_levels)
    names = list(feats)
    ours = roiops.MultiScaleRoIAlign(names, output_size, sampling_ratio)
    ref = torchvision.ops.MultiScaleRoIAlign(names, output_size, sampling_ratio)
    out = ours(feats, boxes, sizes)
    expected = ref(on_cpu(feats), on_cpu(boxes), sizes)  # the contract on every device
    assert ours.scales == ref.scales
    assert torch.equal(out.cpu(), expected)
    if device.type == "cuda":  # torchvision's CUDA kernel rounds its FMAs: 4.6e-5 on the H200
        tol = dict(rtol=1e-5, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
        assert_close(out, ref(feats, boxes, sizes), **tol)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_multi_scale_gradient_matches_torchvision(device, dtype, tol):
    feats, boxes, sizes = feature_pyramid(device, dtype, num_levels=4, seed=9)
    names = list(feats)
    grads = {}
    for name, module in [
        ("ours", roiops.MultiScaleRoIAlign(names, 7, 2)),
        ("tv", torchvision.ops.MultiScaleRoIAlign(names, 7, 2)),
    ]:
        leaves = {k: v.clone().requires_grad_() for k, v in feats.items()}
        out = module(leaves, boxes, sizes)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=dtype, device=device).view_as(out))
        grads[name] = [leaves[k].grad for k in names]
    for level, (g_ours, g_tv) in enumerate(zip(grads["ours"], grads["tv"])):
        assert g_ours.abs().sum() > 0, f"level {level} got no gradient"
        assert_close(g_ours, g_tv, rtol=tol, atol=tol)
        if device.type == "cpu":
            assert torch.equal(g_ours, g_tv)


def test_multi_scale_gradcheck(device):
    feats, boxes, sizes = feature_pyramid(
        device, torch.float64, num_levels=3, channels=2, num_boxes=4, image_sizes=((64, 96),)
    )
    rois = torch.cat(
        [torch.zeros(len(boxes[0]), 1, dtype=torch.float64, device=device), boxes[0]], 1
    )
    levels = torch.tensor([0, 1, 2, 1], device=device)
    maps = [f.requires_grad_() for f in feats.values()]
    fn = lambda *m: roiops.multi_scale_roi_align(
        list(m), rois, levels, (3, 2), [1 / 4, 1 / 8, 1 / 16], 2
    )  # noqa: E731
    assert torch.autograd.gradcheck(fn, tuple(maps))
    assert torch.autograd.gradgradcheck(fn, tuple(maps))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_multi_scale_reduced_precision(device, dtype):
    feats, boxes, sizes = feature_pyramid(device, torch.float32, num_levels=4, seed=4)
    names = list(feats)
    half = {k: v.to(dtype) for k, v in feats.items()}
    rois = rois_from_boxes(boxes)
    levels = roiops.assign_levels(rois, 2, 5)
    out = roiops.multi_scale_roi_align(
        list(half.values()), rois, levels, 7, [1 / 4, 1 / 8, 1 / 16, 1 / 32], 2
    )
    assert out.dtype == dtype
    ref = torchvision.ops.MultiScaleRoIAlign(names, 7, 2)(
        {k: v.float().cpu() for k, v in half.items()}, on_cpu(boxes), sizes
    )
    assert torch.equal(out.cpu(), ref.to(dtype))


def test_empty_boxes_for_some_or_all_images(device):
    feats, boxes, sizes = feature_pyramid(device, torch.float32, num_levels=4)
    names = list(feats)
    some = [boxes[0], boxes[1][:0]]
    none = [boxes[0][:0], boxes[1][:0]]
    for case in (some, none):
        ours = roiops.MultiScaleRoIAlign(names, 7, 2)(feats, case, sizes)
        ref = torchvision.ops.MultiScaleRoIAlign(names, 7, 2)(on_cpu(feats), on_cpu(case), sizes)
        assert torch.equal(ours.cpu(), ref)


def test_nan_and_inverted_boxes_give_zero_rows_like_torchvision(device):
    feats, boxes, sizes = feature_pyramid(device, torch.float32, num_levels=4)
    names = list(feats)
    bad = torch.tensor([[float("nan"), 0, 50, 50], [60, 10, 20, 80]], device=device)  # NaN; x2 < x1
    boxes = [torch.cat([bad, boxes[0]]), boxes[1]]
    ours = roiops.MultiScaleRoIAlign(names, 7, 2)(feats, boxes, sizes)
    assert torch.equal(ours[:2], torch.zeros_like(ours[:2]))
    ref = torchvision.ops.MultiScaleRoIAlign(names, 7, 2)(feats, boxes, sizes)
    assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_one_level_is_plain_roi_align(device):
    feats, boxes, sizes = feature_pyramid(device, torch.float32, num_levels=1)
    out = roiops.MultiScaleRoIAlign(["p2"], 7, 2)(feats, boxes, sizes)
    ref = torchvision.ops.MultiScaleRoIAlign(["p2"], 7, 2)(feats, boxes, sizes)
    assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_feature_dict_order_and_filtering_follow_torchvision(device):
    feats, boxes, sizes = feature_pyramid(device, torch.float32, num_levels=4)
    feats = {"pool": feats["p5"][:, :, ::2, ::2].contiguous(), **feats}  # an unused extra map
    names = ["p2", "p3", "p4", "p5"]
    out = roiops.MultiScaleRoIAlign(names, 7, 2)(feats, boxes, sizes)
    ref = torchvision.ops.MultiScaleRoIAlign(names, 7, 2)(feats, boxes, sizes)
    assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert repr(roiops.MultiScaleRoIAlign(names, 7, 2)) == repr(
        torchvision.ops.MultiScaleRoIAlign(names, 7, 2)
    )


def test_opcheck_multi_scale_and_assign_levels(device):
    feats, boxes, sizes = feature_pyramid(
        device, torch.float64, num_levels=3, channels=2, num_boxes=6
    )
    rois = rois_from_boxes(boxes)
    levels = roiops.assign_levels(rois, 2, 4)
    maps = [f.requires_grad_() for f in feats.values()]
    scales = [1 / 4, 1 / 8, 1 / 16]
    torch.library.opcheck(
        torch.ops.roiops.multi_scale_roi_align.default, (maps, rois, levels, scales, 7, 7, 2, False)
    )
    grad = torch.randn(rois.size(0), 2, 7, 7, dtype=torch.float64, device=device)
    heights = [m.size(2) for m in maps]
    widths = [m.size(3) for m in maps]
    torch.library.opcheck(
        torch.ops.roiops._multi_scale_roi_align_backward.default,
        (grad, rois, levels, scales, 7, 7, 2, 2, heights, widths, 2, False),
    )
    torch.library.opcheck(torch.ops.roiops.assign_levels.default, (rois, 2, 4, 224.0, 4.0, 1e-6))


def test_torch_compile_fullgraph_module(device):
    feats, boxes, sizes = feature_pyramid(device, torch.float32, num_levels=4)
    module = roiops.MultiScaleRoIAlign(list(feats), 7, 2)
    expected = module(feats, boxes, sizes)  # first call infers the scales
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(feats, boxes, sizes), expected)


# --- bad input ------------------------------------------------------------------------------------


def test_multi_scale_bad_input(device):
    feats, boxes, sizes = feature_pyramid(device, torch.float32, num_levels=3)
    maps = list(feats.values())
    rois = rois_from_boxes(boxes)
    levels = roiops.assign_levels(rois, 2, 4)
    scales = [1 / 4, 1 / 8, 1 / 16]
    call = roiops.multi_scale_roi_align
    with pytest.raises(ValueError, match="share batch size and channels"):
        call([maps[0], maps[1][:1], maps[2]], rois, levels, 7, scales)
    with pytest.raises(ValueError, match="share batch size and channels"):
        call([maps[0], maps[1][:, :2], maps[2]], rois, levels, 7, scales)
    with pytest.raises(ValueError, match="3 feature maps but 2 spatial scales"):
        call(maps, rois, levels, 7, scales[:2])
    with pytest.raises(ValueError, match="levels must be a 1-D tensor with one entry per RoI"):
        call(maps, rois, levels[:-1], 7, scales)
    with pytest.raises(TypeError, match="levels must be int64"):
        call(maps, rois, levels.int(), 7, scales)
    with pytest.raises(ValueError, match="at most 8 feature levels"):
        call(maps * 3, rois, levels, 7, scales * 3)
    with pytest.raises(ValueError, match="expected at least one feature map"):
        call([], rois, levels, 7, [])
    with pytest.raises(ValueError, match="image_shapes must list"):
        roiops.MultiScaleRoIAlign(list(feats), 7, 2)(feats, boxes, [])
    with pytest.raises(ValueError, match="none of featmap_names"):
        roiops.MultiScaleRoIAlign(["x"], 7, 2)(feats, boxes, sizes)
    # Boxes for more images than the batch holds.
    too_many = boxes + [boxes[0]]
    module = roiops.MultiScaleRoIAlign(list(feats), 7, 2)
    if device.type == "cpu":
        with pytest.raises(ValueError, match="not a batch index"):
            module(feats, too_many, sizes)
    else:
        out = module(feats, too_many, sizes)
        assert torch.equal(out[-len(boxes[0]) :], torch.zeros_like(out[-len(boxes[0]) :]))
    # A level with no map (past the last, or -1) is a zero row on both backends, as torchvision's
    # pooler leaves it; the other rows are untouched.
    bad_levels = levels.clone()
    bad_levels[0], bad_levels[1] = 3, -1
    out = call(maps, rois, bad_levels, 7, scales)
    assert not out[:2].any()
    assert torch.equal(out[2:], call(maps, rois, levels, 7, scales)[2:])


# --- where the op samples -------------------------------------------------------------------------


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [1, 2, -1])
def test_sample_points_are_where_the_op_samples(aligned, sampling_ratio):
    # On a map whose value is its own x (or y) coordinate, bilinear interpolation returns the sample
    # coordinate itself, so roi_align of that map is the mean of the sample coordinates of each bin.
    h, w, scale = 40, 50, 1 / 4
    ramp_x = torch.arange(w, dtype=torch.float64).expand(1, 1, h, w)
    ramp_y = torch.arange(h, dtype=torch.float64).view(h, 1).expand(1, 1, h, w)
    boxes = torch.tensor(
        [[0, 8.0, 12.0, 150.0, 90.0], [0, 30.5, 4.25, 61.0, 140.0]], dtype=torch.float64
    )
    pts = roiops.roi_align_sample_points(boxes, (7, 5), scale, sampling_ratio, aligned)
    pooled_x = roiops.roi_align(ramp_x, boxes, (7, 5), scale, sampling_ratio, aligned)[:, 0]
    pooled_y = roiops.roi_align(ramp_y, boxes, (7, 5), scale, sampling_ratio, aligned)[:, 0]
    mean_x = torch.nanmean(pts.feature_x, dim=-1)  # [K, PW]
    mean_y = torch.nanmean(pts.feature_y, dim=-1)  # [K, PH]
    assert_close(pooled_x, mean_x[:, None, :].expand_as(pooled_x), rtol=1e-12, atol=1e-12)
    assert_close(pooled_y, mean_y[:, :, None].expand_as(pooled_y), rtol=1e-12, atol=1e-12)
    # Image coordinates: samples lie inside their bin, bins tile the box.
    offset = 0.5 if aligned else 0.0
    assert_close(pts.sample_x, (pts.feature_x + offset) / scale, equal_nan=True)
    x_in = (pts.sample_x >= pts.bins[:, 0, :, 0, None]) & (
        pts.sample_x <= pts.bins[:, 0, :, 2, None]
    )
    assert bool((x_in | pts.sample_x.isnan()).all())
    assert_close(pts.bins[:, 0, 0, :2], boxes[:, 1:3])
    if aligned:
        assert_close(pts.bins[:, -1, -1, 2:], boxes[:, 3:5])


def test_sample_points_of_a_mask_head_cell():
    box = torch.tensor(
        [[0, 100.0, 200.0, 156.0, 256.0]]
    )  # 56x56 px: each 28x28 mask cell is 2x2 px
    pts = roiops.roi_align_sample_points(box, 28, 1 / 4, 2, aligned=False)
    assert pts.bins.shape == (1, 28, 28, 4)
    assert pts.bins[0, 3, 5].tolist() == [110.0, 206.0, 112.0, 208.0]
    assert pts.sample_x[0, 5].tolist() == [110.5, 111.5]


def test_sample_points_opcheck(device):
    op = torch.ops.roiops.roi_align_sample_points.default
    same_grids = torch.tensor([[0, 8.0, 12.0, 150, 90], [0, 10.0, 14.0, 152, 92]], device=device)
    for sampling_ratio in [2, -1]:
        torch.library.opcheck(op, (same_grids, 0.25, 7, 5, sampling_ratio, True))
    # Different adaptive grids pad with NaN, which opcheck's eager-vs-traced comparison does not
    # accept as equal: the fake kernel (a data-dependent grid size) is checked on its own.
    mixed = torch.tensor([[0, 8.0, 12.0, 150, 90], [0, 30.5, 4.25, 61, 140]], device=device)
    utils = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(op, (mixed, 0.25, 7, 5, -1, True), test_utils=utils)


def test_scale_inference_rounds_to_the_nearest_power_of_two_and_refuses_nonsense():
    """torchvision's 2 ** round(log2(map height / image height)), without logs; boundaries at
    2^(k + 1/2) (0.3536 between 1/4 and 1/2). A zero, infinite or NaN ratio raises (no endless
    loop)."""
    from roiops.ops.poolers import _level_of_scale, _nearest_power_of_two

    cases = {0.25: 0.25, 0.26: 0.25, 0.35: 0.25, 0.36: 0.5, 1.0: 1.0, 3.0: 4.0, 200 / 800: 0.25}
    for value, power in cases.items():
        assert _nearest_power_of_two(value) == power, value
        expected = 2.0 ** float(torch.tensor(value).log2().round())  # torchvision's way
        assert _nearest_power_of_two(value) == expected, value
    assert [_level_of_scale(s) for s in (1 / 4, 1 / 32, 1.0, 2.0)] == [2, 5, 0, -1]
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            _nearest_power_of_two(bad)
        with pytest.raises(ValueError):
            _level_of_scale(bad)
