"""roiops where torchvision's ops go: autocast, TorchScript, torch.fx, quantized tensors,
torchvision's arguments and exception types. Each check compares with torchvision on the same
inputs."""

from __future__ import annotations

import pytest
import torch
import torchvision
from inputs import clustered_boxes, feature_pyramid, random_boxes, roi_align_case
from torch.testing import assert_close

import roiops

# --- autocast -----------------------------------------------------------------------------------

AUTOCAST_DTYPES = [torch.bfloat16, torch.float16]


def autocast_case(device, input_dtype, rois_dtype):
    x, rois = roi_align_case(device, torch.float32, 1 / 4, seed=5, channels=6)
    return x.to(input_dtype), rois.to(rois_dtype)


@pytest.mark.parametrize("autocast_dtype", AUTOCAST_DTYPES)
@pytest.mark.parametrize(
    "input_kind,rois_kind", [("float", "float"), ("float", "low"), ("low", "float"), ("low", "low")]
)
@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_under_autocast_is_torchvisions(
    device, autocast_dtype, input_kind, rois_kind, aligned
):
    """Under autocast torchvision computes in float32 and returns the input's dtype; roiops casts
    only the RoIs (its half kernels accumulate in float32): the same bits, forward and backward.
    On every device the reference is torchvision on the CPU: roiops' RoIAlign contract (its CUDA
    geometry is FMA-free; torchvision's CUDA kernel differs from its own CPU result by FMA
    rounding).
    The CUDA backward scatters with atomics, so its gradient is compared within rounding."""
    kinds = {"float": torch.float32, "low": autocast_dtype}
    x, rois = autocast_case(device, kinds[input_kind], kinds[rois_kind])
    grads = []
    for fn, dev in ((roiops.roi_align, device), (torchvision.ops.roi_align, torch.device("cpu"))):
        leaf = x.to(dev).requires_grad_()
        with torch.autocast(dev.type, dtype=autocast_dtype):
            out = fn(leaf, rois.to(dev), 7, 1 / 4, 2, aligned)
        out.float().sum().backward()
        grads.append((out.cpu(), leaf.grad.cpu()))
    (ours, our_grad), (ref, ref_grad) = grads
    assert ours.dtype == ref.dtype == x.dtype
    assert torch.equal(ours, ref)
    assert our_grad.dtype == ref_grad.dtype
    if device.type == "cpu":
        assert torch.equal(our_grad, ref_grad)
    else:
        assert_close(our_grad, ref_grad, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("autocast_dtype", AUTOCAST_DTYPES)
def test_multi_scale_roi_align_under_autocast_is_torchvisions(device, autocast_dtype):
    """Against torchvision on the CPU on every device, as for roi_align above."""
    feats, boxes, sizes = feature_pyramid(device, torch.float32, num_levels=4, seed=3)
    feats = {k: v.to(autocast_dtype) for k, v in feats.items()}  # as a backbone under autocast
    names = list(feats)
    outs = []
    for module, dev in (
        (roiops.MultiScaleRoIAlign(names, 7, 2), device),
        (torchvision.ops.MultiScaleRoIAlign(names, 7, 2), torch.device("cpu")),
    ):
        with torch.autocast(dev.type, dtype=autocast_dtype):
            maps, rois = {k: v.to(dev) for k, v in feats.items()}, [b.to(dev) for b in boxes]
            outs.append(module(maps, rois, sizes).cpu())
    assert outs[0].dtype == outs[1].dtype == autocast_dtype
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("autocast_dtype", AUTOCAST_DTYPES)
def test_nms_and_box_iou_take_half_boxes_under_autocast(device, autocast_dtype):
    g = torch.Generator().manual_seed(0)
    boxes = clustered_boxes(300, g).round().to(device)  # integers: exact in half precision
    scores = torch.rand(300, generator=g).to(device)
    idxs = torch.randint(0, 3, (300,), generator=g).to(device)
    low_boxes, low_scores = boxes.to(autocast_dtype), scores.to(autocast_dtype)
    with torch.autocast(device.type, dtype=autocast_dtype):
        for fn, args in [
            ("nms", (low_boxes, low_scores, 0.5)),
            ("box_iou", (low_boxes, low_boxes[:50])),
        ]:
            ours = getattr(roiops, fn)(*args)
            ref = getattr(torchvision.ops, fn)(*args)
            assert ours.dtype == ref.dtype, fn
            assert_close(ours, ref, rtol=0, atol=0, equal_nan=True)  # 0 / 0 for empty boxes
        ours = roiops.batched_nms(low_boxes, low_scores, idxs, 0.5)
    # torchvision's batched_nms shifts each class by class * (max + 1) in the boxes' own dtype,
    # which in half precision moves boxes by whole pixels; roiops is exact per class, which is
    # torchvision's result on the same boxes held exactly (float32).
    ref = torchvision.ops.batched_nms(low_boxes.float(), low_scores.float(), idxs, 0.5)
    assert torch.equal(ours, ref)


def test_autocast_kernels_are_registered():
    for name in ["roiops::roi_align", "roiops::multi_scale_roi_align"]:
        for key in ["AutocastCPU", "AutocastCUDA"]:
            assert torch._C._dispatch_has_kernel_for_dispatch_key(name, key), (name, key)


# --- TorchScript ----------------------------------------------------------------------------------


def test_functions_script_and_equal_eager():
    x, rois = roi_align_case("cpu", torch.float32, 1 / 4, channels=3)
    feats, boxes, sizes = feature_pyramid("cpu", torch.float32, num_levels=3)
    maps = list(feats.values())
    levels = roiops.assign_levels(boxes, 2, 4)
    g = torch.Generator().manual_seed(2)
    nms_boxes, scores = clustered_boxes(200, g), torch.rand(200, generator=g)
    idxs = torch.randint(0, 4, (200,), generator=g)
    codes = torch.randn(200, 4, generator=g) * 0.3
    cases = [
        (roiops.roi_align, (x, rois, 7, 1 / 4, 2, True)),
        (roiops.roi_align, (x, [rois[:5, 1:], rois[5:9, 1:], rois[9:, 1:]], (3, 5), 1 / 4)),
        (roiops.multi_scale_roi_align, (maps, boxes, levels, 7, [1 / 4, 1 / 8, 1 / 16], 2)),
        (roiops.assign_levels, (boxes, 2, 4)),
        (roiops.nms, (nms_boxes, scores, 0.5)),
        (roiops.batched_nms, (nms_boxes, scores, idxs, 0.5)),
        (roiops.batched_nms_padded, (nms_boxes.view(2, 100, 4), scores.view(2, 100), None, 0.5, 9)),
        (roiops.box_iou, (nms_boxes, nms_boxes[:30])),
        (roiops.box_iou, (nms_boxes, nms_boxes[:30], "cxcywh")),
        (roiops.decode_boxes, (codes, nms_boxes, (10.0, 10.0, 5.0, 5.0))),
        (roiops.encode_boxes, (nms_boxes + 1, nms_boxes, (1.0, 1.0, 1.0, 1.0))),
    ]
    for fn, args in cases:
        scripted = torch.jit.script(fn)
        expected, got = fn(*args), scripted(*args)
        if isinstance(expected, tuple):
            assert all(torch.equal(a, b) for a, b in zip(got, expected)), fn.__name__
        else:
            assert torch.equal(got, expected), fn.__name__


def test_modules_script_and_equal_eager():
    x, rois = roi_align_case("cpu", torch.float32, 1 / 4, channels=3)
    align = roiops.RoIAlign((7, 7), 1 / 4, 2, aligned=True)
    assert torch.equal(torch.jit.script(align)(x, rois), align(x, rois))
    feats, boxes, sizes = feature_pyramid("cpu", torch.float32, num_levels=4)
    pool = roiops.MultiScaleRoIAlign(list(feats), 7, 2)
    scripted = torch.jit.script(pool)  # before the first call: scales still to infer
    assert torch.equal(scripted(feats, boxes, sizes), pool(feats, boxes, sizes))
    assert scripted.scales == pool.scales


def test_a_torchvision_detector_with_roiops_pooling_scripts_and_equals_eager():
    torch.manual_seed(0)
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, box_score_thresh=0.0, num_classes=5
    ).eval()
    model.roi_heads.box_roi_pool = roiops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    # Short sides of min_size (320): resized by exactly 1. (Scripted, torchvision's transform
    # computes the resize factor in float32, eagerly in float64, which can move a side by a pixel.)
    images = [torch.rand(3, 320, 400), torch.rand(3, 360, 320)]
    with torch.no_grad():
        eager = model(images)
        _, scripted = torch.jit.script(model)(images)
        model.roi_heads.box_roi_pool = torchvision.ops.MultiScaleRoIAlign(
            ["0", "1", "2", "3"], 7, 2
        )
        torchvision_pooling = model(images)
    assert len(eager[0]["boxes"]) > 0
    for e, s, t in zip(eager, scripted, torchvision_pooling):
        for key in ["boxes", "scores", "labels"]:
            assert torch.equal(e[key], s[key]), key
            assert torch.equal(e[key], t[key]), key


def test_scripted_box_errors_are_torch_jit_errors_as_torchvisions():
    """torchvision checks roi_align's boxes in Python, a torch._assert when scripted:
    torch.jit.Error (not a RuntimeError in torch 2.13). roiops does the same; an op's own check
    fails as a RuntimeError in both (nms)."""
    x = torch.rand(1, 2, 5, 5)
    for function in [roiops.roi_align, torchvision.ops.roi_align]:
        scripted = torch.jit.script(function)
        for boxes in [torch.rand(3, 4), [torch.rand(3, 5)]]:
            with pytest.raises(torch.jit.Error, match="boxes"):
                scripted(x, boxes, [2, 2], 1.0, -1, False)
    for function in [roiops.nms, torchvision.ops.nms]:
        with pytest.raises(RuntimeError):
            torch.jit.script(function)(torch.rand(3, 5), torch.rand(3), 0.5)


def test_anchor_generator_scripts_and_equals_torchvisions():
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    from roiops.models import ImageList

    sizes, ratios = ((32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 3
    scripted = torch.jit.script(roiops.AnchorGenerator(sizes, ratios))
    images = ImageList(torch.zeros(2, 3, 128, 96), [(128, 96), (120, 90)])
    maps = [torch.zeros(2, 8, 128 >> s, 96 >> s) for s in (3, 4, 5)]
    ours = scripted(images, maps)
    reference = AnchorGenerator(sizes, ratios)(images, maps)
    assert len(ours) == 2 and all(torch.equal(o, r) for o, r in zip(ours, reference))


def test_torchvisions_detectors_take_roiops_pooling_and_anchors():
    """torchvision's fine-tuning tutorial: FasterRCNN around a custom backbone, given its anchor
    generator and RoI pooler -- here roiops' classes, without patch_torchvision() (torchvision's
    constructors check their types: roiops' are subclasses of torchvision's once it is loaded).
    It trains and evaluates, equal to the same detector with torchvision's classes."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    def detector(anchors, pooler):
        torch.manual_seed(0)
        backbone = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, stride=4, padding=1), torch.nn.ReLU()
        )
        backbone.out_channels = 16
        return FasterRCNN(
            backbone,
            num_classes=3,
            rpn_anchor_generator=anchors(((16, 32, 64),), ((0.5, 1.0, 2.0),)),
            box_roi_pool=pooler(["0"], 7, 2),
            min_size=96,
            max_size=128,
        )

    ours = detector(roiops.AnchorGenerator, roiops.MultiScaleRoIAlign)
    theirs = detector(AnchorGenerator, torchvision.ops.MultiScaleRoIAlign)
    assert isinstance(ours.roi_heads.box_roi_pool, roiops.MultiScaleRoIAlign)
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 96, 120, generator=g), torch.rand(3, 100, 96, generator=g)]
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[5.0, 5.0, 40.0, 30.0]]), "labels": torch.tensor([2])},
    ]
    for model in (ours, theirs):
        model.train()
    torch.manual_seed(1)
    our_losses = ours(images, targets)
    torch.manual_seed(1)
    their_losses = theirs(images, targets)
    for key, value in their_losses.items():
        assert torch.equal(our_losses[key], value), key
    sum(our_losses.values()).backward()
    with torch.no_grad():
        ours.eval(), theirs.eval()
        for o, t in zip(ours(images), theirs(images)):
            assert len(t["boxes"]) > 0
            for key in ["boxes", "labels", "scores"]:
                assert torch.equal(o[key], t[key]), key


def test_stricter_arguments_are_torchvisions_now():
    """What roiops refused and torchvision takes: any NMS threshold, an output size of 0, and
    integer boxes' IoU in torch's default dtype."""
    g = torch.Generator().manual_seed(3)
    boxes, scores = clustered_boxes(60, g), torch.rand(60, generator=g)
    for threshold in [-0.1, 1.0, 1.5, float("nan"), float("inf")]:
        assert torch.equal(
            roiops.nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold)
        ), threshold
    x, rois = roi_align_case("cpu", torch.float32, 1.0, channels=3)
    for size in [0, (0, 3), (3, 0)]:
        ours = roiops.roi_align(x, rois, size)
        assert ours.shape == torchvision.ops.roi_align(x, rois, size).shape and ours.numel() == 0
    with pytest.raises(ValueError, match="output_size must be non-negative"):
        roiops.roi_align(x, rois, (-1, 3))
    ints = (random_boxes(20, g) * 3).round().long()
    previous = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        for fmt in ["xyxy", "xywh", "cxcywh"]:
            ours = roiops.box_iou(ints, ints[:7], fmt)
            reference = torchvision.ops.box_iou(ints, ints[:7], fmt)
            assert ours.dtype == reference.dtype == torch.float64
            assert torch.equal(ours, reference), fmt
            torch.library.opcheck(torch.ops.roiops.box_iou, (ints, ints[:7], fmt))  # the fake too
    finally:
        torch.set_default_dtype(previous)


def test_batched_nms_takes_float_categories_as_torchvision():
    """torchvision's batched_nms takes float idxs (its offsets multiply them); roiops too, one
    value one category: the same kept boxes for whole-number floats, also scripted."""
    g = torch.Generator().manual_seed(4)
    boxes, scores = clustered_boxes(200, g), torch.rand(200, generator=g)
    labels = torch.randint(0, 5, (200,), generator=g)
    for idxs in [labels.float(), labels.double(), labels.half()]:
        expected = torchvision.ops.batched_nms(boxes, scores, idxs, 0.5)
        assert torch.equal(roiops.batched_nms(boxes, scores, idxs, 0.5), expected)
        assert torch.equal(torch.jit.script(roiops.batched_nms)(boxes, scores, idxs, 0.5), expected)
    fractional = labels.float() / 4  # 0, 0.25, ...: distinct categories still
    assert torch.equal(
        roiops.batched_nms(boxes, scores, fractional, 0.5),
        roiops.batched_nms(boxes, scores, labels, 0.5),
    )


def test_box_coder_scripts_as_a_module_attribute_as_torchvisions():
    """A module holding a BoxCoder scripts (TorchScript compiles it as a class, as torchvision's),
    and decodes and encodes as torchvision's."""
    from torchvision.models.detection._utils import BoxCoder

    class Coding(torch.nn.Module):
        def __init__(self, coder):
            super().__init__()
            self.coder = coder

        def forward(self, codes: torch.Tensor, boxes: list[torch.Tensor], refs: list[torch.Tensor]):
            return self.coder.decode(codes, boxes), self.coder.encode(refs, boxes)

    g = torch.Generator().manual_seed(5)
    boxes = [random_boxes(30, g), random_boxes(12, g)]
    refs = [b + torch.rand(b.shape, generator=g) * 4 for b in boxes]
    codes = torch.randn(42, 8, generator=g)
    weights = (10.0, 10.0, 5.0, 5.0)
    ours = torch.jit.script(Coding(roiops.BoxCoder(weights)))(codes, boxes, refs)
    theirs = torch.jit.script(Coding(BoxCoder(weights)))(codes, boxes, refs)
    assert torch.equal(ours[0], theirs[0])
    assert all(torch.equal(a, b) for a, b in zip(ours[1], theirs[1]))


# --- torch.fx -------------------------------------------------------------------------------------


class TwoPoolers(torch.nn.Module):
    """A small detector tail: a RoIAlign on one map and a MultiScaleRoIAlign on all of them."""

    def __init__(self, names):
        super().__init__()
        self.box_pool = roiops.MultiScaleRoIAlign(names, 7, 2)
        self.mask_pool = roiops.RoIAlign(5, 1 / 4, 2)
        self.head = torch.nn.Linear(4 * 49, 8)

    def forward(
        self,
        feats: dict[str, torch.Tensor],
        boxes: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
    ):
        pooled = self.box_pool(feats, boxes, image_shapes)
        masks = self.mask_pool(feats["p2"], boxes)
        return self.head(pooled.flatten(1)), masks


def test_fx_traces_the_ops_as_single_nodes():
    feats, boxes, sizes = feature_pyramid("cpu", torch.float32, num_levels=4)
    model = TwoPoolers(list(feats))
    expected = model(feats, boxes, sizes)  # infers the scales
    graph_module = torch.fx.symbolic_trace(model)
    targets = [n.target for n in graph_module.graph.nodes if n.op == "call_function"]
    names = [getattr(t, "__name__", "") for t in targets]
    assert "roi_align" in names and "_multi_scale_pool" in names
    got = graph_module(feats, boxes, sizes)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_torchvision_feature_extraction_sees_roiops_modules_as_its_own():
    """torchvision's feature extraction keeps its poolers one node each: roiops' too (they are
    subclasses of torchvision's once it is loaded), with the same node names."""
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    feats, boxes, sizes = feature_pyramid("cpu", torch.float32, num_levels=4)
    model = TwoPoolers(list(feats))
    model(feats, boxes, sizes)
    theirs = TwoPoolers(list(feats))
    theirs.box_pool = torchvision.ops.MultiScaleRoIAlign(list(feats), 7, 2)
    theirs.mask_pool = torchvision.ops.RoIAlign(5, 1 / 4, 2)
    theirs(feats, boxes, sizes)
    assert get_graph_node_names(model) == get_graph_node_names(theirs)
    assert "box_pool" in get_graph_node_names(model)[1]
    extractor = create_feature_extractor(model, return_nodes={"box_pool": "pooled"})
    pooled = extractor(feats, boxes, sizes)["pooled"]
    assert torch.equal(pooled, roiops.MultiScaleRoIAlign(list(feats), 7, 2)(feats, boxes, sizes))


class CallsRoIAlign(torch.nn.Module):
    """torchvision's leaf-node test: a module whose forward only calls the op module."""

    def __init__(self):
        super().__init__()
        self.layer = roiops.RoIAlign(5, 1.0, -1)

    def forward(self, a, b):
        self.layer(a, b)


class CallsMultiScaleRoIAlign(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = roiops.MultiScaleRoIAlign(["0"], 7, 2)

    def forward(self, a, b, c):
        self.layer(a, b, c)


@pytest.mark.parametrize("wrapper,n_inputs", [(CallsRoIAlign, 2), (CallsMultiScaleRoIAlign, 3)])
def test_op_modules_are_one_graph_node_each(wrapper, n_inputs):
    from torchvision.models.feature_extraction import get_graph_node_names

    train_nodes, eval_nodes = get_graph_node_names(wrapper())
    assert len(train_nodes) == len(eval_nodes) == 1 + n_inputs, eval_nodes


# --- quantized tensors ----------------------------------------------------------------------------

QUANTIZED = [(torch.quint8, 0.05, 7), (torch.qint8, 0.04, -3), (torch.qint32, 0.01, 11)]


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
@pytest.mark.parametrize("qtype,scale,zero_point", QUANTIZED)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_quantized_roi_align_is_torchvisions(qtype, scale, zero_point, aligned, sampling_ratio):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 4, 19, 23, generator=g) * 6 - 2
    rois = torch.cat([torch.zeros(30, 1), random_boxes(30, g, span=20.0, max_size=12.0)], 1)
    qx = torch.quantize_per_tensor(x, scale, zero_point, qtype)
    qrois = torch.quantize_per_tensor(rois, 0.1, 2 if qtype != torch.qint8 else -5, qtype)
    ours = roiops.roi_align(qx, qrois, (5, 3), 0.8, sampling_ratio, aligned)
    ref = torchvision.ops.roi_align(qx, qrois, (5, 3), 0.8, sampling_ratio, aligned)
    assert ours.dtype == ref.dtype == qtype
    assert (ours.q_scale(), ours.q_zero_point()) == (ref.q_scale(), ref.q_zero_point())
    assert torch.equal(ours.int_repr(), ref.int_repr())


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_quantized_roi_align_restrictions_are_torchvisions():
    x = torch.quantize_per_tensor(torch.rand(1, 2, 8, 8), 0.05, 3, torch.quint8)
    rois = torch.tensor([[0, 1.0, 1, 5, 5]])
    qrois = torch.quantize_per_tensor(rois, 0.1, 0, torch.quint8)
    with pytest.raises(ValueError, match="rois must also be quantized"):
        roiops.roi_align(x, rois, 3)
    x2 = torch.quantize_per_tensor(torch.rand(2, 2, 8, 8), 0.05, 3, torch.quint8)
    for op in (roiops.roi_align, torchvision.ops.roi_align):  # the wording code may match on
        with pytest.raises(RuntimeError, match="Only one image per batch is allowed"):
            op(x2, qrois, 3)
    with pytest.raises(RuntimeError, match="quantized rois must have the input's dtype"):
        roiops.roi_align(x, torch.quantize_per_tensor(rois, 0.1, 0, torch.qint8), 3)
    assert roiops.roi_align(x, qrois[:0], 3).shape == (0, 2, 3, 3)


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_quantized_roi_align_checks_its_arguments_as_every_backend():
    """The op layer's checks that do not depend on the dtype hold for quantized maps too."""
    x = torch.quantize_per_tensor(torch.rand(1, 2, 8, 8), 0.05, 3, torch.quint8)
    qrois = torch.quantize_per_tensor(torch.tensor([[0, 1.0, 1, 5, 5]]), 0.1, 0, torch.quint8)
    with pytest.raises(ValueError, match="spatial_scale must be a positive finite number, got nan"):
        roiops.roi_align(x, qrois, 3, float("nan"))
    with pytest.raises(ValueError, match=r"output_size must be at most 4096 per side, got \(5000"):
        roiops.roi_align(x, qrois, (5000, 2))
    # Never read: the check comes first. (An untouched allocation costs no memory.)
    huge = torch._empty_affine_quantized(
        (1, 1, 2**30, 1), scale=0.1, zero_point=0, dtype=torch.quint8
    )
    with pytest.raises(ValueError, match="height and width must be below 2\\^30"):
        roiops.roi_align(huge, qrois, 3)


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
@pytest.mark.parametrize("qtype", [torch.quint8, torch.qint8, torch.qint32])
def test_quantized_nms_is_torchvisions(qtype):
    g = torch.Generator().manual_seed(4)
    boxes = clustered_boxes(400, g).clamp(0, 250)
    scores = torch.rand(400, generator=g)
    qboxes = torch.quantize_per_tensor(boxes, 1.0, 0, qtype)
    qscores = torch.quantize_per_tensor(scores, 0.01, 0, qtype)  # many ties after quantization
    for thr in [0.3, 0.5, 0.7]:
        assert torch.equal(
            roiops.nms(qboxes, qscores, thr), torchvision.ops.nms(qboxes, qscores, thr)
        )


# --- torchvision's arguments --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        torch.float64,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.uint8,
    ],
)
def test_box_iou_formats_and_dtypes_are_torchvisions(device, fmt, dtype):
    g = torch.Generator().manual_seed(7)
    a = random_boxes(60, g, span=100.0, max_size=40.0)
    b = random_boxes(45, g, span=100.0, max_size=40.0)
    if fmt != "xyxy":  # the last two coordinates are sizes
        a[:, 2:] -= a[:, :2]
        b[:, 2:] -= b[:, :2]
    a, b = a.to(dtype), b.to(dtype)  # integers: truncated; uint8 differences wrap as in torch
    ours = roiops.box_iou(a.to(device), b.to(device), fmt=fmt)
    ref = torchvision.ops.box_iou(a, b, fmt=fmt)
    assert ours.dtype == ref.dtype
    if device.type == "cpu":
        assert_close(ours, ref, rtol=0, atol=0, equal_nan=True)
    else:
        assert_close(ours.cpu(), ref, equal_nan=True)


def test_box_iou_batched_and_promoted_like_torchvision(device):
    g = torch.Generator().manual_seed(8)
    a = torch.stack([random_boxes(20, g) for _ in range(3)]).to(device)  # [3, 20, 4]
    b = random_boxes(15, g).to(device)  # [15, 4]: broadcast over the batch
    ours = roiops.box_iou(a, b)
    assert ours.shape == (3, 20, 15)
    assert torch.equal(ours.cpu(), torchvision.ops.box_iou(a.cpu(), b.cpu()))
    mixed = roiops.box_iou(a.double(), b)  # float64 with float32: promoted
    assert mixed.dtype == torch.float64
    with pytest.raises(NotImplementedError, match="rotated"):
        roiops.box_iou(a, b, fmt="cxcywhr")
    # rotated boxes as torchvision takes them ([..., 5], [..., 8]): refused for what they are
    for fmt, width in [("xywhr", 5), ("cxcywhr", 5), ("xyxyxyxy", 8)]:
        rotated = torch.rand(6, width, device=device)
        with pytest.raises(NotImplementedError, match=f"rotated boxes \\(fmt='{fmt}'\\)"):
            roiops.box_iou(rotated, rotated, fmt=fmt)
    with pytest.raises(ValueError, match="fmt must be"):
        roiops.box_iou(a, b, fmt="yxyx")


def test_anchor_generator_grid_anchors_is_torchvisions():
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    sizes, ratios = ((32,), (64,)), ((0.5, 1.0, 2.0),) * 2
    ours, ref = roiops.AnchorGenerator(sizes, ratios), AnchorGenerator(sizes, ratios)
    grid_sizes = [[25, 40], [13, 20]]
    strides = [[torch.tensor(8), torch.tensor(8)], [torch.tensor(16), torch.tensor(16)]]
    for a, b in zip(ours.grid_anchors(grid_sizes, strides), ref.grid_anchors(grid_sizes, strides)):
        assert torch.equal(a, b)


# --- torchvision's exception types ----------------------------------------------------------------


def raises_like_torchvision(exc_type, ours, theirs):
    """Both raise, and what catches torchvision's exception catches roiops'."""
    with pytest.raises(exc_type):
        theirs()
    with pytest.raises(exc_type) as info:
        ours()
    return info.value


def test_exceptions_are_torchvisions_types_with_roiops_messages():
    boxes, scores = torch.rand(5, 4), torch.rand(5)
    x = torch.rand(1, 3, 8, 8)
    err = raises_like_torchvision(
        RuntimeError,
        lambda: roiops.nms(boxes[:, :3], scores, 0.5),
        lambda: torchvision.ops.nms(boxes[:, :3], scores, 0.5),
    )
    assert isinstance(err, ValueError) and "boxes must be a 2-D tensor [N, 4]" in str(err)
    err = raises_like_torchvision(
        RuntimeError,
        lambda: roiops.nms(boxes, scores[:4], 0.5),
        lambda: torchvision.ops.nms(boxes, scores[:4], 0.5),
    )
    assert "scores must have one score per box" in str(err)
    err = raises_like_torchvision(
        AssertionError,
        lambda: roiops.roi_align(x, torch.zeros(2, 4), 3),
        lambda: torchvision.ops.roi_align(x, torch.zeros(2, 4), 3),
    )
    assert isinstance(err, ValueError) and "boxes must be a Tensor[K, 5]" in str(err)
    err = raises_like_torchvision(
        RuntimeError,
        lambda: roiops.roi_align(x, torch.zeros(2, 5).double(), 3),
        lambda: torchvision.ops.roi_align(x, torch.zeros(2, 5).double(), 3),
    )
    assert isinstance(err, TypeError) and "rois must have the input's dtype" in str(err)
    assert isinstance(err, roiops.ArgumentError)


def test_batched_nms_with_empty_boxes_returns_early_like_torchvision():
    empty = torch.zeros(0, 4)
    odd_scores, odd_idxs = torch.rand(3), torch.zeros(7, dtype=torch.long)  # mismatched: ignored
    ref = torchvision.ops.batched_nms(empty, odd_scores, odd_idxs, 0.5)
    ours = roiops.batched_nms(empty, odd_scores, odd_idxs, 0.5)
    assert ours.shape == ref.shape == (0,) and ours.dtype == ref.dtype == torch.int64


# --- featmap_names that skip a level --------------------------------------------------------------


def test_featmap_names_that_skip_a_level_give_torchvisions_zero_rows(device):
    """With ["p2", "p4", "p5"], torchvision maps FPN levels onto the selected maps by position, so
    the boxes of the last level get no map: zero rows. roiops gives the same result."""
    feats, boxes, sizes = feature_pyramid(device, torch.float32, num_levels=4, num_boxes=120)
    names = ["p2", "p4", "p5"]
    ours = roiops.MultiScaleRoIAlign(names, 7, 2)(feats, boxes, sizes)
    ref = torchvision.ops.MultiScaleRoIAlign(names, 7, 2)(feats, boxes, sizes)
    assert (ref.flatten(1).abs().sum(1) == 0).any()  # the case happens
    if device.type == "cpu":
        assert torch.equal(ours, ref)
    else:
        assert_close(ours, ref, rtol=1e-5, atol=1e-5)
