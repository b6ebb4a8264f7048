"""roiops.roi_align against torchvision.ops.roi_align: numerics, gradients, registration, bad
input."""

from __future__ import annotations

import contextlib
import itertools
import math

import pytest
import torch
import torchvision
from inputs import deterministic_algorithms, random_rois, roi_align_case, rois_from_boxes
from torch.testing import assert_close

import roiops

tv_roi_align = torchvision.ops.roi_align

SCALES = [1.0, 1 / 4, 1 / 16, 1 / 32]
SAMPLING = [-1, 0, 1, 2, 3]


# --- forward numerics -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", SAMPLING)
@pytest.mark.parametrize("scale", SCALES)
def test_forward_cpu_bit_identical_to_torchvision(dtype, aligned, sampling_ratio, scale):
    x, rois = roi_align_case(
        "cpu", dtype, scale, seed=hash((aligned, sampling_ratio, scale)) % 1000
    )
    for output_size in [(7, 7), (3, 5)]:
        ours = roiops.roi_align(x, rois, output_size, scale, sampling_ratio, aligned)
        ref = tv_roi_align(x, rois, output_size, scale, sampling_ratio, aligned)
        assert torch.equal(ours, ref), (ours - ref).abs().max()


def edge_rois(batch: int, height: int, width: int, dtype) -> torch.Tensor:
    """1x1-bin RoIs (aligned=False, sampling_ratio=1, scale 1) whose one sample lands exactly at
    -1, 0, size - 1 and size on each axis -- the bilinear clamp's boundaries -- and just past
    them, in every image."""
    rows = []
    for b in range(batch):
        for y in [-1.0, -0.75, 0.0, height - 1.0, height - 0.5, float(height), height + 0.25]:
            for x in [-1.0, 0.0, 0.5, width - 1.0, float(width), width + 1e-3]:
                rows.append([b, x - 0.5, y - 0.5, x + 0.5, y + 0.5])  # centred on (x, y), 1 px
    return torch.tensor(rows, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels", [1, 8, 13, 17, 37, 256])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_channel_vectorized_path_is_torchvisions_bits(dtype, channels, layout):
    """The CPU kernels pool and scatter every channel of a bin at once on a channels-last copy of
    the map (channels-last input, or enough RoIs for the copy to pay): forward and backward the
    same bits as torchvision's plane-wise loop, for channel counts that are not a multiple of a
    vector, with samples exactly on the map's edges. Half precision: torchvision's float32 result
    of the same values, rounded once."""
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    x, rois = roi_align_case("cpu", compute, 1 / 4, seed=channels, num_rois=60, channels=channels)
    x = x.to(dtype).to(compute)  # values the reduced dtype holds
    edges = edge_rois(3, 13, 17, compute)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    # Sampling ratio 3: 9 samples a bin, a count that is not a power of two (the backward divides
    # by it; by a power of two it multiplies by the reciprocal, the same bits).
    for boxes, scale, sampling, aligned in [(rois, 1 / 4, 2, False), (rois, 1 / 4, -1, True),
                                            (rois, 1 / 4, 3, False),
                                            (edges, 1.0, 1, False)]:  # fmt: skip
        inputs = x.to(dtype).clone().requires_grad_()  # a new leaf each time, x's layout
        ours = roiops.roi_align(inputs, boxes.to(compute), 7, scale, sampling, aligned)
        reference = x.detach().clone().requires_grad_()
        theirs = tv_roi_align(reference, boxes, 7, scale, sampling, aligned)
        assert torch.equal(ours, theirs.to(dtype)), (ours.float() - theirs).abs().max()
        grad = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
        ours.backward(grad)
        theirs.backward(grad.to(compute))
        assert torch.equal(inputs.grad, reference.grad.to(dtype))


def test_the_plane_wise_and_vectorized_paths_agree_bit_for_bit():
    """One RoI on a large map takes the plane-wise loop, a channels-last map the vectorized one
    (a copy would not pay for the first): the same bits."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 32, 120, 160, generator=g)
    box = torch.tensor([[0, 10.3, 20.7, 90.1, 77.5]])
    planes = roiops.roi_align(x, box, 7, 0.5, 2)
    vectors = roiops.roi_align(x.contiguous(memory_format=torch.channels_last), box, 7, 0.5, 2)
    assert torch.equal(planes, vectors) and torch.equal(planes, tv_roi_align(x, box, 7, 0.5, 2))


# The copy's paths: value by value (8 channels); 16 x 16 tile transposes with a partial channel
# tile and a partial pixel tile at each row's end (24 channels, 70 pixels); the tiles written with
# streaming stores (a copy of >= 8 MB, 64 channels); bfloat16 maps widened in the transpose.
COPY_PATHS = {
    "value-by-value": (8, 40, 70, torch.float32),
    "tiles": (24, 40, 70, torch.float32),
    "streamed-tiles": (64, 150, 230, torch.float32),
    "bfloat16-tiles": (24, 40, 70, torch.bfloat16),
}


@pytest.mark.parametrize("path", COPY_PATHS)
@pytest.mark.parametrize("aligned", [False, True])
def test_the_channels_last_copy_holds_every_pixel_the_samples_read(path, aligned):
    """The forward copies only the runs of 16 pixels of each row that RoIs may sample into its kept
    workspace; the rest holds what an earlier call left. A first call fills the workspace with NaN;
    then 1-pixel RoIs whose samples sit exactly on a run's or a row's last pixel (their bilinear
    corners reach into the next run and row), on the map's edges, and RoIs of negative size
    (aligned) must give torchvision's bits: a corner missed by the copy would read NaN, a value
    the transpose put in the wrong place would differ."""
    channels, height, width, dtype = COPY_PATHS[path]
    copies = 2 * height * width // 16 // 20 + 1  # RoIs x 1 bin x 16 >= 2 x pixels: channels-last
    whole = torch.tensor([[0.0, 0.0, 0.0, width, height]]).repeat(20 * copies, 1)
    poison = torch.full((1, channels, height, width), float("nan"), dtype=dtype)
    assert roiops.roi_align(poison, whole, 1, 1.0, 1).isnan().all()  # the workspace: NaN
    last_x, last_y = width - 1.0, height - 1.0
    centres = [(15.0, 15.0), (16.0, 31.0), (31.0, 16.0), (47.5, 0.0), (63.0, last_y),
               (last_x, 15.0), (0.0, 31.0), (-1.0, 15.0), (width - 0.5, height - 0.5),
               (32.0, 47.0)]  # fmt: skip
    boxes = [[0.0, x - 0.5, y - 0.5, x + 0.5, y + 0.5] for x, y in centres]
    boxes += [[0.0, x + 0.5, y + 0.5, x - 0.5, y - 0.5] for x, y in centres]  # negative extent
    rois = torch.tensor(boxes).repeat(copies, 1)
    x = torch.randn(1, channels, height, width, generator=torch.Generator().manual_seed(3))
    x = x.to(dtype)
    for output_size in [1, 3]:
        ours = roiops.roi_align(x, rois, output_size, 1.0, 1, aligned)
        theirs = tv_roi_align(x.float(), rois, output_size, 1.0, 1, aligned).to(dtype)
        assert torch.equal(ours, theirs), (ours.float() - theirs.float()).abs().max()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
@pytest.mark.parametrize("scale", [1.0, 1 / 4])
def test_forward_cuda_is_torchvisions_cpu_result(dtype, aligned, sampling_ratio, scale):
    """The CUDA contract: torchvision's CPU bits (FMA-free geometry). torchvision's own CUDA kernel
    contracts products into FMAs and differs from its CPU result: by up to 1.3e-5 in float32 on the
    H200 (2026-11-30), well within the tolerance stated here."""
    x, rois = roi_align_case("cuda", dtype, scale, seed=7)
    ours = roiops.roi_align(x, rois, (7, 7), scale, sampling_ratio, aligned)
    args = ((7, 7), scale, sampling_ratio, aligned)
    assert torch.equal(ours.cpu(), tv_roi_align(x.cpu(), rois.cpu(), *args))
    tol = dict(rtol=1e-5, atol=5e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    assert_close(ours, tv_roi_align(x, rois, *args), **tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("rois_dtype", ["same", "float32"])
def test_reduced_precision_accumulates_in_float32(device, dtype, rois_dtype):
    # Half inputs are upcast exactly, so torchvision's float32 CPU result on the upcast inputs,
    # rounded once, is what a float32 accumulation must give, bit for bit on every device.
    x, rois = roi_align_case(device, dtype, 1 / 4, seed=3)
    if rois_dtype == "float32":
        rois = rois.float()
    ours = roiops.roi_align(x, rois, (7, 7), 1 / 4, 2, False)
    assert ours.dtype == dtype
    ref = tv_roi_align(x.float().cpu(), rois.float().cpu(), (7, 7), 1 / 4, 2, False).to(dtype)
    assert torch.equal(ours.cpu(), ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_float16_cuda_matches_torchvision_half():
    # torchvision's half kernel computes box geometry in half; boxes on a 1/8-pixel grid and a
    # power-of-two scale keep that arithmetic exact, leaving only its half-precision accumulation.
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 20, 24, generator=g).cuda().half()
    xy = (torch.rand(30, 2, generator=g) * 60).mul(8).round().div(8)
    wh = (torch.rand(30, 2, generator=g) * 30 + 1).mul(8).round().div(8)
    rois = (
        torch.cat([torch.randint(0, 2, (30, 1), generator=g).float(), xy, xy + wh], 1).cuda().half()
    )
    ours = roiops.roi_align(x, rois, 7, 0.25, 2, True)
    assert_close(ours, tv_roi_align(x, rois, 7, 0.25, 2, True), rtol=1e-3, atol=1e-3)


def test_list_of_boxes_equals_rois_tensor(device):
    x, rois = roi_align_case(device, torch.float32, 1.0)
    boxes = [rois[rois[:, 0] == i, 1:] for i in range(x.size(0))]
    as_list = roiops.roi_align(x, boxes, 5, 1.0, 2)
    rois_sorted = rois_from_boxes(boxes)
    assert torch.equal(as_list, roiops.roi_align(x, rois_sorted, 5, 1.0, 2))
    assert torch.equal(as_list.cpu(), tv_roi_align(x.cpu(), [b.cpu() for b in boxes], 5, 1.0, 2))


@pytest.mark.parametrize("layout", ["channels_last", "sliced"])
def test_any_memory_layout(device, layout):
    x, rois = roi_align_case(device, torch.float32, 1 / 4, channels=40)
    expected = roiops.roi_align(x, rois, 7, 1 / 4, 2)
    if layout == "channels_last":
        x2 = x.to(memory_format=torch.channels_last)
    else:
        x2 = torch.cat([x, x], dim=1)[:, ::2]  # non-contiguous channel stride
        expected = roiops.roi_align(x2.contiguous(), rois, 7, 1 / 4, 2)
    ours = roiops.roi_align(x2, rois, 7, 1 / 4, 2)
    assert ours.is_contiguous()
    assert_close(ours, expected, rtol=0, atol=0)


def test_module_matches_function(device):
    x, rois = roi_align_case(device, torch.float32, 1 / 4)
    module = roiops.RoIAlign((7, 7), spatial_scale=1 / 4, sampling_ratio=2, aligned=True)
    assert torch.equal(module(x, rois), roiops.roi_align(x, rois, (7, 7), 1 / 4, 2, True))
    assert repr(module) == repr(torchvision.ops.RoIAlign((7, 7), 1 / 4, 2, True))


# --- backward ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_backward_matches_torchvision(device, dtype, tol, aligned, sampling_ratio):
    x, rois = roi_align_case(device, dtype, 1 / 4, seed=11)
    grad = torch.randn(rois.size(0), x.size(1), 7, 7, dtype=dtype, device=device)
    ours = x.clone().requires_grad_()
    ref = x.clone().requires_grad_()
    roiops.roi_align(ours, rois, 7, 1 / 4, sampling_ratio, aligned).backward(grad)
    tv_roi_align(ref, rois, 7, 1 / 4, sampling_ratio, aligned).backward(grad)
    assert_close(ours.grad, ref.grad, rtol=tol, atol=tol)
    if device.type == "cpu":  # same visiting order as torchvision: identical sums
        assert torch.equal(ours.grad, ref.grad)


def test_cpu_backward_over_several_batches_of_samples_is_torchvisions_bits():
    """The CPU backward builds the samples of RoIs in batches of about a million points and adds
    each batch's gradient through a channels-last buffer per 16-channel pass: a batch after the
    first starts from what the earlier ones added. 96 overlapping RoIs of 7x7 bins sampled 16 x 16
    (1.2 M points, two batches): the same bits as torchvision's single pass."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 19, 30, 40, generator=g, dtype=torch.float64)
    corner = torch.rand(96, 2, generator=g, dtype=torch.float64) * 20
    rois = torch.cat([torch.zeros(96, 1, dtype=torch.float64), corner, corner + 12], dim=1)
    grad = torch.randn(96, 19, 7, 7, generator=g, dtype=torch.float64)
    ours, ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    roiops.roi_align(ours, rois, 7, 1.0, 16).backward(grad)
    tv_roi_align(ref, rois, 7, 1.0, 16).backward(grad)
    assert torch.equal(ours.grad, ref.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_backward_over_maps_in_several_groups_is_torchvisions_bits(dtype):
    """The CPU backward's channels-last buffer holds at most 8 MB of maps (a pixel's 16 channels);
    2 images of 300 x 300 take it in two groups (float64: three), each with the RoIs of its
    maps: the same bits as torchvision."""
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 3, 300, 300, generator=g, dtype=dtype)
    corner = torch.rand(40, 2, generator=g, dtype=dtype) * 250
    size = torch.rand(40, 2, generator=g, dtype=dtype) * 60 + 1
    index = (torch.arange(40) % 2).to(dtype)[:, None]
    rois = torch.cat([index, corner, corner + size], dim=1)
    grad = torch.randn(40, 3, 7, 7, generator=g, dtype=dtype)
    ours, ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    roiops.roi_align(ours, rois, 7, 1.0, 2).backward(grad)
    tv_roi_align(ref, rois, 7, 1.0, 2).backward(grad)
    assert torch.equal(ours.grad, ref.grad)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_backward_accumulates_in_float32(device, dtype):
    x, rois = roi_align_case(device, dtype, 1 / 4, seed=2)
    grad = torch.randn(rois.size(0), x.size(1), 7, 7, device=device).to(dtype)
    ours = x.clone().requires_grad_()
    roiops.roi_align(ours, rois, 7, 1 / 4, 2).backward(grad)
    ref = x.float().cpu().requires_grad_()
    tv_roi_align(ref, rois.float().cpu(), 7, 1 / 4, 2).backward(grad.float().cpu())
    assert ours.grad.dtype == dtype
    assert_close(
        ours.grad.float().cpu(), ref.grad, rtol=1e-2, atol=1e-2 if dtype == torch.bfloat16 else 2e-3
    )


@pytest.mark.parametrize("aligned", [False, True])
def test_gradcheck(device, aligned):
    x, rois = roi_align_case(
        device, torch.float64, 1 / 2, num_rois=6, batch=2, channels=2, height=6, width=7
    )
    x.requires_grad_()
    fn = lambda t: roiops.roi_align(t, rois, (3, 2), 1 / 2, -1, aligned)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    # RoIAlign is linear, so double backward is the forward op again (torchvision raises here).
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_empty_rois_give_empty_output_and_zero_grad(device):
    x = torch.randn(2, 3, 8, 8, device=device, requires_grad=True)
    rois = torch.zeros(0, 5, device=device)
    out = roiops.roi_align(x, rois, 7, 1.0, 2)
    assert out.shape == (0, 3, 7, 7)
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert roiops.roi_align(x, [torch.zeros(0, 4, device=device)] * 2, 7).shape == (0, 3, 7, 7)


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("size", [0, (0, 3), (3, 0)])
def test_output_size_zero_gives_empty_output_and_zero_grad(device, size, deterministic):
    """An output size of 0 is torchvision's empty output (no kernel runs: a CUDA launch of 0
    blocks would fail), and its gradient is zero, in the atomic and the deterministic backward."""
    x, rois = roi_align_case(device, torch.float32, 1 / 2, num_rois=5, channels=3)
    x.requires_grad_()
    reference = torchvision.ops.roi_align(x.detach().cpu(), rois.cpu(), size, 1 / 2, 2)
    with deterministic_algorithms() if deterministic else contextlib.nullcontext():
        out = roiops.roi_align(x, rois, size, 1 / 2, 2)
        assert out.shape == reference.shape and out.numel() == 0
        out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


# --- torch.library integration -------------------------------------------------------------------


def test_opcheck(device):
    for dtype in [torch.float32, torch.float64]:
        x, rois = roi_align_case(device, dtype, 1 / 4, num_rois=8, channels=3)
        x.requires_grad_()
        for args in [(x, rois, 0.25, 7, 7, 2, False), (x, rois, 0.25, 3, 5, -1, True)]:
            torch.library.opcheck(torch.ops.roiops.roi_align.default, args)
        grad = torch.randn(8, 3, 7, 7, device=device, dtype=dtype)
        bw_args = (grad, rois, 0.25, 7, 7, x.size(0), 3, x.size(2), x.size(3), 2, False)
        torch.library.opcheck(torch.ops.roiops._roi_align_backward.default, bw_args)


def test_torch_compile_fullgraph(device):
    x, rois = roi_align_case(device, torch.float32, 1 / 4, channels=3)
    torch._dynamo.reset()

    @torch.compile(fullgraph=True, backend="aot_eager")
    def pooled_sum(feat, boxes):
        return roiops.roi_align(feat, boxes, 7, 1 / 4, 2).relu().sum(dim=(2, 3))

    feat = x.clone().requires_grad_()
    out = pooled_sum(feat, rois)
    assert torch.equal(out, roiops.roi_align(x, rois, 7, 1 / 4, 2).relu().sum(dim=(2, 3)))
    out.sum().backward()
    assert feat.grad is not None and feat.grad.abs().sum() > 0


def test_torch_export():
    x, rois = roi_align_case("cpu", torch.float32, 1 / 4, channels=3)

    class Pool(torch.nn.Module):
        def forward(self, feat, boxes):
            return roiops.roi_align(feat, boxes, 7, 1 / 4, 2)

    exported = torch.export.export(Pool(), (x, rois))
    assert "roiops.roi_align" in str(exported.graph)
    assert torch.equal(exported.module()(x, rois), roiops.roi_align(x, rois, 7, 1 / 4, 2))


# --- bad input: clear errors or defined results --------------------------------------------------


def test_nan_and_inf_boxes_give_zero_samples(device):
    x = torch.randn(1, 2, 10, 10, device=device)
    nan, inf = float("nan"), float("inf")
    rois = torch.tensor(
        [
            [0, nan, 1, 5, 5],
            [0, 1, 1, nan, 5],
            [0, 1, 1, inf, 5],
            [0, -inf, 1, 5, 5],
            [0, nan, nan, nan, nan],
            [0, 1, 1, 5, 5],  # a normal box alongside
        ],
        device=device,
    )
    for sampling_ratio in [-1, 2]:
        for aligned in [False, True]:
            out = roiops.roi_align(x, rois, 3, 1.0, sampling_ratio, aligned)
            assert torch.equal(out[:5], torch.zeros_like(out[:5]))
            ok = roiops.roi_align(x, rois[5:], 3, 1.0, sampling_ratio, aligned)
            assert torch.equal(out[5:], ok)
    xg = x.clone().requires_grad_()
    roiops.roi_align(xg, rois, 3, 1.0, 2).sum().backward()
    assert torch.isfinite(xg.grad).all()


def test_huge_box_with_adaptive_grid_is_fast_and_exact(device):
    # An adaptive grid of ceil(1e7 / 7) per axis is ~2e12 samples per bin: torchvision would not
    # finish. Samples outside the map are skipped by bisection, which must not change results:
    # a box with a large but tractable grid is checked against torchvision sample for sample.
    x = torch.randn(1, 2, 12, 12, device=device, dtype=torch.float64)
    huge = torch.tensor([[0, -5e6, -5e6, 5e6, 5e6]], device=device, dtype=torch.float64)
    out = roiops.roi_align(x, huge, 7, 1.0, -1)
    assert torch.isfinite(out).all()
    big = torch.tensor([[0, -900.0, -700.0, 300.0, 400.0]], device=device, dtype=torch.float64)
    assert_close(
        roiops.roi_align(x, big, 7, 1.0, -1),
        tv_roi_align(x, big, 7, 1.0, -1),
        rtol=1e-12,
        atol=1e-12,
    )


def test_batch_index_out_of_range(device):
    x = torch.randn(2, 3, 8, 8, device=device)
    for bad in [2.0, -1.0, float("nan")]:
        rois = torch.tensor([[0, 1, 1, 4, 4], [bad, 1, 1, 4, 4]], device=device)
        if device.type == "cpu":
            with pytest.raises(ValueError, match=r"rois\[1, 0\].*batch index"):
                roiops.roi_align(x, rois, 2)
        else:  # defined result without a host sync: a zero row, no out-of-bounds read
            out = roiops.roi_align(x, rois, 2)
            assert torch.equal(out[1], torch.zeros_like(out[1]))
            assert torch.equal(out[0], roiops.roi_align(x, rois[:1], 2)[0])


@pytest.mark.parametrize(
    "make_args,exc,pattern",
    [
        (
            lambda d: (torch.randn(3, 8, 8, device=d), torch.zeros(1, 5, device=d), 2),
            ValueError,
            "input must be a 4-D",
        ),
        (
            lambda d: (torch.randn(1, 3, 8, 8, device=d), torch.zeros(1, 4, device=d), 2),
            ValueError,
            "boxes must be a Tensor",
        ),
        (
            lambda d: (torch.randn(1, 3, 8, 8, device=d), [torch.zeros(1, 5, device=d)], 2),
            ValueError,
            r"boxes\[0\] must be",
        ),
        (lambda d: (torch.randn(1, 3, 8, 8, device=d), "boxes", 2), TypeError, "boxes must be"),
        (
            lambda d: (
                torch.randn(1, 3, 8, 8, device=d),
                torch.zeros(1, 5, device=d, dtype=torch.float64),
                2,
            ),
            TypeError,
            "rois must have the input's dtype",
        ),
        (
            lambda d: (
                torch.randint(0, 5, (1, 3, 8, 8), device=d),
                torch.zeros(1, 5, device=d, dtype=torch.long),
                2,
            ),
            TypeError,
            "input must be float32",
        ),
        (
            lambda d: (torch.randn(1, 3, 8, 8, device=d), torch.zeros(1, 5, device=d), (2, -1)),
            ValueError,
            "output_size must be non-negative",
        ),
        (
            lambda d: (torch.randn(1, 3, 8, 8, device=d), torch.zeros(1, 5, device=d), "7"),
            ValueError,
            "output_size must be an int",
        ),
        (
            lambda d: (torch.randn(1, 3, 0, 8, device=d), torch.zeros(1, 5, device=d), 2),
            ValueError,
            "non-empty height and width",
        ),
    ],
)
def test_bad_input_raises_clear_error(device, make_args, exc, pattern):
    with pytest.raises(exc, match=pattern):
        roiops.roi_align(*make_args(device))


def test_bad_scalar_arguments(device):
    x = torch.randn(1, 3, 8, 8, device=device)
    rois = torch.zeros(1, 5, device=device)
    with pytest.raises(ValueError, match="sampling_ratio must be"):
        roiops.roi_align(x, rois, 2, 1.0, -2)
    with pytest.raises(ValueError, match="spatial_scale must be a positive finite"):
        roiops.roi_align(x, rois, 2, -0.25)
    with pytest.raises(ValueError, match="spatial_scale must be a positive finite"):
        roiops.roi_align(x, rois, 2, math.inf)
    with pytest.raises(ValueError, match="rois must be a 2-D tensor"):  # the op itself, no wrapper
        torch.ops.roiops.roi_align(x, torch.zeros(1, 4, device=device), 1.0, 2, 2, 2, False)


def test_mixed_devices():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU for a second device")
    with pytest.raises(RuntimeError, match="rois is on cpu but the input is on cuda"):
        roiops.roi_align(torch.randn(1, 3, 8, 8, device="cuda"), torch.zeros(1, 5), 2)


def test_build_info_names_the_running_torch():
    info = roiops.build_info()
    assert info["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert isinstance(info["cuda"], bool)


def test_backward_op_rejects_wrong_grad_shape():
    rois = torch.zeros(2, 5)
    with pytest.raises(ValueError, match=r"grad must have shape \[2, 3, 7, 7\]"):
        torch.ops.roiops._roi_align_backward(
            torch.zeros(2, 3, 5, 5), rois, 1.0, 7, 7, 1, 3, 8, 8, 2, False
        )


def test_randomized_sweep_against_torchvision():
    # Many small random problems, every parameter combination, exact equality on the CPU.
    g = torch.Generator().manual_seed(1234)
    for trial, (aligned, sr) in enumerate(itertools.product([False, True], SAMPLING)):
        h, w = (int(v) for v in torch.randint(1, 24, (2,), generator=g))
        scale = SCALES[trial % len(SCALES)]
        x = torch.randn(2, 3, h, w, generator=g)
        rois = random_rois(25, 2, h / scale, w / scale, generator=g)
        ph, pw = (int(v) for v in torch.randint(1, 9, (2,), generator=g))
        assert torch.equal(
            roiops.roi_align(x, rois, (ph, pw), scale, sr, aligned),
            tv_roi_align(x, rois, (ph, pw), scale, sr, aligned),
        ), (h, w, ph, pw, scale, sr, aligned)


def test_import_from_an_unbuilt_source_tree_says_how_to_fix_it(tmp_path):
    # A copy of the package without its compiled extension, as in a fresh checkout.
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    source = Path(roiops.__file__).parent
    shutil.copytree(
        source, tmp_path / "roiops", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    result = subprocess.run(
        [sys.executable, "-c", "import roiops"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "op library (roiops/_C*.so) is missing" in result.stderr
    assert "pip install ." in result.stderr


def test_backward_under_deterministic_mode_is_torchvision_cpu_bitwise(device):
    # CUDA scatters with atomics by default; under deterministic algorithms it gathers each pixel's
    # terms in torchvision's CPU order instead, so both backends give torchvision's CPU gradient.
    x, rois = roi_align_case("cpu", torch.float32, 1 / 4)
    grad = torch.randn(rois.size(0), x.size(1), 7, 7, generator=torch.Generator().manual_seed(1))
    x_ref = x.clone().requires_grad_()
    tv_roi_align(x_ref, rois, 7, 1 / 4, 2, True).backward(grad)
    x, rois, grad = x.to(device).requires_grad_(), rois.to(device), grad.to(device)
    with deterministic_algorithms():
        for _ in range(2):
            x.grad = None
            roiops.roi_align(x, rois, 7, 1 / 4, 2, True).backward(grad)
            assert torch.equal(x.grad.cpu(), x_ref.grad)
