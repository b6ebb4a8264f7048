"""ONNX export of every op and of StaticMaskRCNN with both of torch's exporters -- the default
(dynamo) and the TorchScript one -- run in ONNX Runtime and compared with roiops' own results on the
same inputs. Box counts and batch sizes are dynamic: each graph is exported once and run on inputs
of other sizes, 0 and 1 boxes included. The tolerances are the README's ("Deploying")."""

from __future__ import annotations

import importlib.util
import inspect
import io
import warnings

import pytest
import torch
from inputs import clustered_boxes, random_boxes, random_rois, run_fresh_python
from torch.testing import assert_close

import roiops
from roiops.models.transform import resize_images

# The onnx extra (pip install '.[onnx]'); `make test` and CI install it, and .ci/run checks that
# they did, so that these tests run there rather than skip.
onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")

EXPORTERS = ["dynamo", "torchscript"]
# What runs the graphs: ONNX Runtime, and OpenVINO where the openvino extra is installed (CI
# installs it: .ci/run checks), in float32 -- its inference precision would be bf16 by default on a
# CPU with bf16 units.
RUNTIMES = ["onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])


def computed_in(dtype: torch.dtype, runtime: str) -> torch.dtype:
    """The precision a runtime computes a graph of `dtype` in: OpenVINO's CPU plugin computes
    float64 graphs in float32 (their outputs stay float64), so they meet float32 tolerances."""
    return torch.float32 if runtime == "openvino" and dtype == torch.float64 else dtype


ROI_ALIGN_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


class Call(torch.nn.Module):
    """A module whose forward is `function`, with the function's parameter names as its inputs."""

    def __init__(self, function):
        super().__init__()
        self.function = function
        self.names = list(inspect.signature(function).parameters)

    def forward(self, *inputs):
        return self.function(*inputs)


def export(module, inputs, exporter, dynamic=None, names=None, **options) -> onnx.ModelProto:
    """module exported with `exporter`; dynamic: {input name: dims that vary}."""
    names = names or module.names
    dynamic = dynamic or {}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            shapes = [
                dict.fromkeys(dynamic.get(name, []), torch.export.Dim.DYNAMIC) or None
                for name in names
            ]
            if isinstance(module, Call):
                shapes = (tuple(shapes),)  # the *inputs parameter
            torch.onnx.export(
                module,
                tuple(inputs),
                buffer,
                dynamo=True,
                input_names=names,
                dynamic_shapes=tuple(shapes),
                verbose=False,
                **options,
            )
        else:
            torch.onnx.export(
                module,
                tuple(inputs),
                buffer,
                dynamo=False,
                input_names=names,
                dynamic_axes=dynamic,
                opset_version=options.pop("opset_version", 17),
                **options,
            )
    model = onnx.load_from_string(buffer.getvalue())
    assert_standard_ops(model)
    return model


def assert_standard_ops(model: onnx.ModelProto) -> None:
    """Only ONNX's own ops (the default domain): what stock ONNX Runtime and TensorRT's parser
    read."""
    foreign = {(n.domain, n.op_type) for n in model.graph.node if n.domain not in ("", "ai.onnx")}
    assert not foreign and not model.functions, foreign


def run(model: onnx.ModelProto, *inputs, runtime: str = "onnxruntime"):
    """The graph's outputs on `inputs` (torch tensors, in the graph's input order; those beyond
    its inputs -- tensors whose only use was their static shape -- are left out)."""
    if runtime == "openvino":
        import openvino

        from roiops.deploy.formats import openvino_from_onnx

        compiled = openvino.Core().compile_model(
            openvino_from_onnx(model.SerializeToString()),
            "CPU",
            {"INFERENCE_PRECISION_HINT": "f32"},
        )
        results = compiled([x.numpy() for x, _ in zip(inputs, compiled.inputs)])
        return [torch.from_numpy(results[i].copy()) for i in range(len(compiled.outputs))]
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    feed = {name: x.numpy() for name, x in zip(names, inputs)}
    return [torch.from_numpy(out) for out in session.run(None, feed)]


def op_types(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}


# --- RoIAlign ---------------------------------------------------------------------------------


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_roi_align(exporter, dtype, runtime):
    """aligned both ways and sampling ratios -1 and 2 in one graph; boxes partly and wholly
    outside the map, degenerate and inverted ones (random_rois); 0 and 1 box; batch 1 and 3."""

    def roi_align(input, rois):
        return tuple(
            roiops.roi_align(input, rois, (5, 4), 0.5, sampling_ratio, aligned)
            for aligned in (False, True)
            for sampling_ratio in (-1, 2)
        )

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 13, 17, generator=g, dtype=dtype)
    rois = random_rois(40, 3, 26, 34, dtype=dtype, generator=g)
    model = export(Call(roi_align), (x, rois), exporter, {"input": [0], "rois": [0]})
    modes = [
        attribute.s.decode()
        for node in model.graph.node
        if node.op_type == "RoiAlign"
        for attribute in node.attribute
        if attribute.name == "coordinate_transformation_mode"
    ]
    assert sorted(modes) == ["half_pixel"] * 2 + ["output_half_pixel"] * 2  # always written
    on_edges = torch.tensor(
        [[0, -1, -1, 34, 26], [1, 0, 0, 0, 0], [2, 33, 25, 34, 26]], dtype=dtype
    )
    for batch, boxes in [(x, rois), (x[:1], rois[:0]), (x[:1], rois[:1] * 0), (x, on_edges)]:
        for ours, ref in zip(run(model, batch, boxes, runtime=runtime), roi_align(batch, boxes)):
            assert_close(ours, ref, rtol=0, atol=ROI_ALIGN_TOL[computed_in(dtype, runtime)])


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_roi_align_half_precision_pools_in_float32(exporter, dtype):
    """ONNX's RoiAlign has no bfloat16 and ONNX Runtime's CPU kernel no float16: the graph pools in
    float32 and rounds once, which is what roiops computes. (The map enters as float32 and is cast
    in the graph: ONNX Runtime's Python API takes no bfloat16 arrays.)"""

    def roi_align(input, rois):
        return roiops.roi_align(input.to(dtype), rois, (3, 3), 0.5, 2).float()

    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 9, 11, generator=g)
    rois = random_rois(12, 2, 18, 22, generator=g)  # float32 boxes beside half maps
    model = export(Call(roi_align), (x, rois), exporter, {"input": [0], "rois": [0]})
    assert_close(run(model, x, rois)[0], roi_align(x, rois), rtol=0, atol=0)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_roi_align_list_of_boxes(exporter, runtime):
    def roi_align(input, boxes0, boxes1):
        return roiops.roi_align(input, [boxes0, boxes1], 7, 0.25, 2)

    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 16, 20, generator=g)
    b0, b1 = random_boxes(5, g, span=60), random_boxes(3, g, span=60)
    model = export(Call(roi_align), (x, b0, b1), exporter, {"boxes0": [0], "boxes1": [0]})
    for boxes in [(b0, b1), (b0[:0], b1), (b1, b0[:1])]:
        assert_close(
            run(model, x, *boxes, runtime=runtime)[0], roi_align(x, *boxes), rtol=0, atol=1e-5
        )


# --- FPN levels and multi-scale RoIAlign ----------------------------------------------------------


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_assign_levels(exporter, dtype, runtime):
    def levels(boxes):
        return roiops.assign_levels(boxes, 2, 5)

    g = torch.Generator().manual_seed(3)
    boxes = random_boxes(200, g, span=800, max_size=900, dtype=dtype)
    model = export(Call(levels), (boxes,), exporter, {"boxes": [0]})
    # Boxes of exactly each level's size (112, 224, 448 and 896 px squares), below the first and
    # above the last, empty, inverted (negative area) and NaN.
    edges = [[0, 0, s, s] for s in (56, 111.99, 112, 224, 448, 896, 1792, 4000)]
    edges += [[5, 5, 5, 9], [9, 9, 1, 2], [0, 0, 9, -9], [0, 0, float("nan"), 9]]
    edges = torch.tensor(edges, dtype=dtype)
    for b in [boxes, boxes[:1], boxes[:0], edges]:
        assert torch.equal(run(model, b, runtime=runtime)[0], levels(b))
    assert levels(edges).tolist() == [0, 0, 1, 2, 3, 3, 3, 3, 0, 0, -1, -1]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_multi_scale_roi_align(exporter, runtime):
    """Each RoI from its own level; a RoI whose level is -1 or past the maps keeps a zero row."""
    scales = [0.25, 0.125, 0.0625, 0.03125]

    def pool(p2, p3, p4, p5, rois, levels):
        return roiops.multi_scale_roi_align([p2, p3, p4, p5], rois, levels, 7, scales, 2)

    g = torch.Generator().manual_seed(4)
    maps = [torch.randn(2, 4, 64 >> i, 96 >> i, generator=g) for i in range(4)]
    rois = random_rois(60, 2, 256, 384, generator=g)
    levels = roiops.assign_levels(rois, 2, 5)
    model = export(
        Call(pool),
        (*maps, rois, levels),
        exporter,
        {n: [0] for n in ["p2", "p3", "rois", "levels"]},
    )
    odd = torch.tensor([0, -1, 3, 4, 2])
    for case in [(*maps, rois, levels), (*maps, rois[:5], odd), (*maps, rois[:0], levels[:0])]:
        assert_close(run(model, *case, runtime=runtime)[0], pool(*case), rtol=0, atol=1e-5)
    assert not pool(*maps, rois[:5], odd)[[1, 3]].any()


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_multi_scale_roi_align_module(exporter, runtime):
    """torchvision's MultiScaleRoIAlign call: feature dict, per-image boxes, image sizes."""
    pooler = roiops.MultiScaleRoIAlign(["0", "1", "2"], 5, 2)

    def pool(f0, f1, f2, boxes0, boxes1):
        return pooler({"0": f0, "1": f1, "2": f2}, [boxes0, boxes1], [(128, 160), (120, 150)])

    g = torch.Generator().manual_seed(5)
    maps = [torch.randn(2, 3, 32 >> i, 40 >> i, generator=g) for i in range(3)]
    b0, b1 = random_boxes(20, g, span=140, max_size=120), random_boxes(9, g, span=140)
    model = export(Call(pool), (*maps, b0, b1), exporter, {"boxes0": [0], "boxes1": [0]})
    for boxes in [(b0, b1), (b1[:1], b0[:0])]:
        assert_close(
            run(model, *maps, *boxes, runtime=runtime)[0], pool(*maps, *boxes), rtol=0, atol=1e-5
        )


# --- NMS -----------------------------------------------------------------------------------------


def ordered_corners(boxes):
    """x1 <= x2, y1 <= y2: ONNX Runtime's NonMaxSuppression reads flipped boxes its own way
    (test_where_onnx_runtime_suppresses_differently)."""
    return torch.cat(
        [torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:])], 1
    )


def nms_cases(seed):
    """Random and clustered boxes, scores with ties among boxes that do not overlap."""
    g = torch.Generator().manual_seed(seed)
    yield random_boxes(300, g), torch.rand(300, generator=g)
    yield ordered_corners(clustered_boxes(500, g)), torch.rand(500, generator=g)
    spread = torch.arange(40.0)[:, None] * 100 + torch.tensor([0.0, 0, 50, 50])
    yield spread, (torch.arange(40) % 3).float()  # ties, no overlaps: order by index
    yield random_boxes(1, g), torch.rand(1, generator=g)
    yield random_boxes(0, g), torch.rand(0, generator=g)


def nms_at(threshold):
    def nms(boxes, scores):
        return roiops.nms(boxes, scores, threshold)

    return nms


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_nms(exporter, threshold, runtime):
    nms = nms_at(threshold)
    boxes, scores = next(nms_cases(0))
    model = export(Call(nms), (boxes, scores), exporter, {"boxes": [0], "scores": [0]})
    assert "NonMaxSuppression" in op_types(model)
    for boxes, scores in nms_cases(int(threshold * 10)):
        assert torch.equal(run(model, boxes, scores, runtime=runtime)[0], nms(boxes, scores))


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_nms_iou_exactly_at_the_threshold(exporter, runtime):
    """IoUs of exactly 0.3, 0.5 and 0.7 with the kept box, compared as roiops compares them: the
    float32 IoU with the double threshold, so float32(0.3) > 0.3 suppresses and float32(0.7) <
    0.7 does not. ONNX compares with a float32 threshold, rounded down here so that the two
    agree."""
    for height, threshold, kept in [(3.0, 0.3, [0]), (5.0, 0.5, [0, 1]), (7.0, 0.7, [0, 1])]:
        nms = nms_at(threshold)
        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, height]])
        scores = torch.tensor([0.9, 0.8])
        model = export(Call(nms), (boxes, scores), exporter, {"boxes": [0], "scores": [0]})
        assert (
            run(model, boxes, scores, runtime=runtime)[0].tolist()
            == nms(boxes, scores).tolist()
            == kept
        )
        taller = boxes + torch.tensor([0.0, 0.0, 0.0, 0.5])  # IoU above any of them: suppressed
        assert (
            run(model, taller, scores, runtime=runtime)[0].tolist()
            == nms(taller, scores).tolist()
            == [0]
        )


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_batched_nms_is_exact_per_class(exporter, runtime):
    """Class ids of any sign and size; boxes of different classes never interact, also where
    torchvision's coordinate offsets would let them (negative coordinates)."""

    def batched_nms(boxes, scores, idxs):
        return roiops.batched_nms(boxes, scores, idxs, 0.5)

    g = torch.Generator().manual_seed(6)
    boxes, scores = ordered_corners(clustered_boxes(400, g)), torch.rand(400, generator=g)
    idxs = torch.randint(-3, 12, (400,), generator=g) * 1000
    model = export(
        Call(batched_nms),
        (boxes, scores, idxs),
        exporter,
        {n: [0] for n in ["boxes", "scores", "idxs"]},
    )
    negative = torch.tensor([[-10.0, -10, -1, -1], [-9, -9, 0, 0], [-10, -10, -1, -1]])
    cases = [
        (boxes, scores, idxs),
        (boxes[:50], scores[:50], torch.zeros(50, dtype=torch.int64)),
        (negative, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1, 1])),
        (boxes[:1], scores[:1], idxs[:1]),
        (boxes[:0], scores[:0], idxs[:0]),
    ]
    for case in cases:
        if runtime == "openvino" and len(case[0]) == 0:
            assert_openvino_fails_on_no_boxes(model, case)
            continue
        assert torch.equal(run(model, *case, runtime=runtime)[0], batched_nms(*case))
    assert batched_nms(*cases[2]).tolist() == [0, 1]


def assert_openvino_fails_on_no_boxes(model, case):
    """OpenVINO's CPU plugin cannot run class-wise NMS on zero boxes: its Unique of an empty tensor
    leaves shapes it cannot reshape (README, "Deploying"). A deployed model never has zero boxes
    (StaticMaskRCNN's shapes are fixed); this shows the limit, and a release that lifts it."""
    with pytest.raises(RuntimeError, match="non static shape"):
        run(model, *case, runtime="openvino")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_batched_nms_padded_of_many_boxes(runtime):
    """60 000 boxes in 1000 classes, past _STABLE_ORDER_LIMIT (as Mask R-CNN's 1000 proposals x 90
    classes): the first 100 kept by decreasing score, as roiops keeps them. (In OpenVINO, which
    computes int64 in int32, the tie-ordering key overflowed there and put low scores first.)"""

    def padded(boxes, scores, idxs):
        return roiops.batched_nms_padded(boxes, scores, idxs, 0.5, 100)

    g = torch.Generator().manual_seed(13)
    n = 60_000
    boxes = random_boxes(n, g, span=2000, max_size=100).reshape(1, n, 4)
    scores = (torch.randperm(n, generator=g).float() / n).reshape(1, n)  # distinct
    idxs = torch.randint(0, 1000, (1, n), generator=g)
    model = export(Call(padded), (boxes[:, :10], scores[:, :10], idxs[:, :10]), "dynamo",
                   {name: [1] for name in ["boxes", "scores", "idxs"]})  # fmt: skip
    for ours, ref in zip(
        run(model, boxes, scores, idxs, runtime=runtime), padded(boxes, scores, idxs)
    ):
        assert torch.equal(ours, ref)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("with_classes", [True, False])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_batched_nms_padded(exporter, with_classes, runtime):
    """Per image the first max_output kept by decreasing score, -1 padding, counts; a negative class
    is padding."""

    def padded(boxes, scores, idxs):
        return roiops.batched_nms_padded(boxes, scores, idxs if with_classes else None, 0.6, 40)

    g = torch.Generator().manual_seed(7)
    boxes = ordered_corners(clustered_boxes(3 * 200, g)).reshape(3, 200, 4)
    scores = torch.rand(3, 200, generator=g)
    idxs = torch.randint(-1, 5, (3, 200), generator=g)
    model = export(
        Call(padded),
        (boxes, scores, idxs),
        exporter,
        {n: [0, 1] for n in ["boxes", "scores", "idxs"]},
    )
    few = (
        random_boxes(6, g).reshape(2, 3, 4),
        torch.rand(2, 3, generator=g),
        torch.zeros(2, 3).long(),
    )
    none = boxes[:2, :0], scores[:2, :0], idxs[:2, :0]
    for case in [(boxes, scores, idxs), (boxes[:1], scores[:1], idxs[:1]), few, none]:
        if runtime == "openvino" and with_classes and case is none:
            assert_openvino_fails_on_no_boxes(model, case)
            continue
        for ours, ref in zip(run(model, *case, runtime=runtime), padded(*case)):
            assert torch.equal(ours, ref)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_where_onnx_runtime_suppresses_differently(exporter):
    """ONNX Runtime's NonMaxSuppression normalises flipped corners (x2 < x1) before its IoU; roiops,
    as torchvision, gives a flipped box no overlap with anything. Shown here so that a change on
    either side is seen (README, "Deploying")."""

    def nms(boxes, scores):
        return roiops.nms(boxes, scores, 0.5)

    boxes = torch.tensor([[0.0, 0, 10, 10], [10, 10, 0, 0]])  # the same box, corners swapped
    scores = torch.tensor([0.9, 0.8])
    model = export(Call(nms), (boxes, scores), exporter, {"boxes": [0], "scores": [0]})
    assert nms(boxes, scores).tolist() == [0, 1]
    assert run(model, boxes, scores)[0].tolist() == [0]


# --- box coding, box_iou, anchors ---------------------------------------------------------------


def boxes_and_codes(n, k, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(n, g, span=800, max_size=300, dtype=dtype)
    codes = (torch.randn(n, 4 * k, generator=g, dtype=torch.float64) * 2).to(dtype)
    codes[::7, 2] = 20.0  # beyond bbox_xform_clip
    return codes, boxes


# exp and log are ONNX Runtime's, within an ulp or two of ATen's: a few ulps of the box.
CODING_TOL = {torch.float32: dict(rtol=4e-6, atol=1e-4), torch.float64: dict(rtol=1e-13, atol=1e-9)}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_box_coding(exporter, dtype, runtime):
    weights = (10.0, 10.0, 5.0, 5.0)

    def coding(rel_codes, boxes, references):
        decoded = roiops.decode_boxes(rel_codes, boxes, weights)
        clipped, keep = roiops.decode_clip_boxes(rel_codes, boxes, (1.0,) * 4, (600, 700), 1.0)
        return decoded, clipped, keep, roiops.encode_boxes(references, boxes, weights)

    codes, boxes = boxes_and_codes(300, 3, dtype, seed=8)
    references = (
        boxes
        + torch.randn(boxes.shape, dtype=dtype, generator=torch.Generator().manual_seed(9)) * 10
    )
    model = export(
        Call(coding), (codes, boxes, references), exporter, {n: [0] for n in Call(coding).names}
    )
    precision = computed_in(dtype, runtime)
    for case in [(codes, boxes, references), (codes[:1], boxes[:1], references[:1])]:
        expected = coding(*(x.to(precision) for x in case))  # float64 in float32: as float32
        for ours, ref in zip(run(model, *case, runtime=runtime), expected):
            ref = ref.to(ours.dtype)
            assert_close(
                ours,
                ref,
                equal_nan=True,
                **(CODING_TOL[precision] if ref.is_floating_point() else {}),
            )
    empty = codes[:0], boxes[:0], references[:0]
    assert [tuple(o.shape) for o in run(model, *empty, runtime=runtime)] == [
        (0, 12),
        (0, 12),
        (0, 3),
        (0, 4),
    ]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_box_coder_module_api(exporter):
    coder = roiops.BoxCoder((1.0, 1.0, 1.0, 1.0))

    def decode(rel_codes, boxes0, boxes1):
        return coder.decode(rel_codes, [boxes0, boxes1])

    codes, boxes = boxes_and_codes(20, 1, torch.float32, seed=10)
    model = export(
        Call(decode), (codes, boxes[:12], boxes[12:]), exporter, {"rel_codes": [0], "boxes0": [0]}
    )
    assert_close(
        run(model, codes[:15], boxes[:7], boxes[12:])[0],
        decode(codes[:15], boxes[:7], boxes[12:]),
        **CODING_TOL[torch.float32],
    )


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_box_iou(exporter, fmt, runtime):
    """Leading dimensions broadcast; float32, float64 and integer boxes."""

    def iou(boxes1, boxes2, ints1, ints2, doubles1, doubles2):
        return (
            roiops.box_iou(boxes1, boxes2, fmt),
            roiops.box_iou(ints1, ints2, fmt),
            roiops.box_iou(doubles1, doubles2, fmt),
        )

    g = torch.Generator().manual_seed(11)
    boxes = random_boxes(2 * 30, g).reshape(2, 30, 4)
    others = random_boxes(1 * 7, g).reshape(1, 7, 4)
    case = (
        boxes,
        others,
        boxes.round().long(),
        others.round().long(),
        boxes.double(),
        others.double(),
    )
    model = export(Call(iou), case, exporter, {n: [1] for n in Call(iou).names})
    for c in [case, tuple(b[:, :0] if i % 2 == 0 else b for i, b in enumerate(case))]:
        for ours, ref in zip(run(model, *c, runtime=runtime), iou(*c)):
            assert ours.dtype == ref.dtype
            atol = 1e-12 if computed_in(ref.dtype, runtime) == torch.float64 else 1e-6
            assert_close(ours, ref, rtol=0, atol=atol)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_iou_of_integer_boxes_follows_the_default_dtype(exporter, fmt):
    """Under torch.set_default_dtype(torch.float64), integer boxes give float64 IoUs (as in
    torchvision), in the graph as in eager."""

    def iou(boxes1, boxes2):
        return roiops.box_iou(boxes1, boxes2, fmt)

    g = torch.Generator().manual_seed(12)
    ints1, ints2 = (random_boxes(n, g).mul(3).round().long() for n in (20, 9))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = export(Call(iou), (ints1, ints2), exporter, {"boxes1": [0], "boxes2": [0]})
        (ours,), ref = run(model, ints1, ints2), iou(ints1, ints2)
        assert ours.dtype == ref.dtype == torch.float64
        assert_close(ours, ref, rtol=0, atol=1e-12)
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_anchor_generator(exporter, runtime):
    """The anchors of fixed image and feature sizes (sizes given to an op as ints are constants
    in the graph), for a dynamic number of images: exactly roiops' (and torchvision's)."""
    generator = roiops.AnchorGenerator(((32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 3)

    def anchors(images, p3, p4, p5):
        from roiops.models import ImageList

        batch = ImageList(images, [(128, 160)] * images.shape[0])
        return generator(batch, [p3, p4, p5])[0] + images.sum() * 0  # the images feed the graph

    images = torch.rand(2, 3, 128, 160)
    maps = [torch.rand(2, 1, 128 >> s, 160 >> s) for s in (3, 4, 5)]
    model = export(Call(anchors), (images, *maps), exporter)
    assert torch.equal(run(model, images, *maps, runtime=runtime)[0], anchors(images, *maps))


# --- masks and the detection transform's resize -------------------------------------------


# OpenVINO fuses the sample position's multiply and subtract into one FMA, which roiops' kernel
# keeps apart (mul_exact): the position moves by an ulp (~2e-6 at 30 px), the value with it.
PASTE_TOL = {"onnxruntime": 1e-6, "openvino": 4e-6}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_paste_masks_in_image(exporter, runtime):
    """Boxes inside, over the edges, tiny (under a pixel), inverted and wholly outside the image."""

    def paste(masks, boxes):
        return roiops.paste_masks_in_image(masks, boxes, (90, 120))

    g = torch.Generator().manual_seed(12)
    masks = torch.rand(12, 1, 28, 28, generator=g)
    boxes = random_boxes(12, g, span=110, max_size=70)
    boxes[:6] = torch.tensor(
        [
            [-10, -5, 30, 40],
            [100, 70, 150, 130],
            [5, 5, 5.4, 5.2],
            [40, 40, 20, 30],
            [200, 0, 260, 50],
            [0, 0, 120, 90],
        ]
    )
    model = export(Call(paste), (masks, boxes), exporter, {"masks": [0], "boxes": [0]})
    assert {"Loop", "If"}.isdisjoint(op_types(model))
    for case in [(masks, boxes), (masks[:1], boxes[:1]), (masks[:0], boxes[:0])]:
        ours = run(model, *case, runtime=runtime)[0]
        assert_close(ours, paste(*case), rtol=0, atol=PASTE_TOL[runtime])


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("scale", [0.61, 1.37])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_resize_images(exporter, scale, runtime):
    """The detection transform's bilinear resize: ONNX Runtime's Resize computes its source
    coordinates by division where ATen multiplies, a few float32 ulps apart."""

    def resize(images):
        return resize_images(images, scale)

    images = torch.rand(2, 3, 40, 50, generator=torch.Generator().manual_seed(13))
    model = export(Call(resize), (images,), exporter, {"images": [0]})
    for batch in [images, images[:1]]:
        assert_close(run(model, batch, runtime=runtime)[0], resize(batch), rtol=0, atol=1e-5)


# --- bad use ---------------------------------------------------------------------------------


def test_opset_below_16_is_refused_with_the_reason():
    module = Call(lambda boxes, scores: roiops.nms(boxes, scores, 0.5))
    boxes, scores = next(nms_cases(0))
    with pytest.raises(
        roiops.ArgumentValueError, match="roiops::nms: ONNX export needs opset_version 16"
    ):
        export(module, (boxes, scores), "torchscript", opset_version=11)


def test_a_dynamic_image_size_is_refused_with_the_reason():
    """Sizes an op takes as ints are constants in the graph: a dynamic image size cannot reach
    them."""

    def paste(masks, boxes, image):
        return roiops.paste_masks_in_image(masks, boxes, (image.shape[1], image.shape[2]))

    inputs = (torch.rand(2, 1, 28, 28), random_boxes(2, torch.Generator()), torch.rand(3, 50, 60))
    with pytest.raises(
        Exception, match="roiops::paste_masks_in_image: image_height changes with the inputs"
    ):
        export(Call(paste), inputs, "dynamo", {"image": [1, 2]})


def test_sample_points_have_no_onnx_form():
    def points(boxes):
        return roiops.roi_align_sample_points(boxes, 7, 0.25, 2).sample_x

    with pytest.raises(Exception, match="roi_align_sample_points has no ONNX form"):
        export(Call(points), (random_rois(3, 1, 50, 50),), "torchscript")


# --- how the dynamo exporter finds roiops' translations -----------------------------------------

EXPORT_NMS = """
import io, warnings, torch
warnings.simplefilter("ignore")
class Nms(torch.nn.Module):
    def forward(self, boxes, scores):
        return roiops.nms(boxes, scores, 0.5)
boxes, scores = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10]]), torch.tensor([0.9, 0.8])
def export(**options):
    program = torch.onnx.export(Nms(), (boxes, scores), dynamo=True, verbose=False, **options)
    print("exported", "NonMaxSuppression" in {n.op_type for n in program.model.graph})
"""


def test_dynamo_export_needs_no_argument_whichever_is_imported_first():
    """roiops reaches the exporter's registry whether torch.onnx's exporter was loaded before
    `import roiops` or after."""
    for first in ["import roiops", "import torch.onnx._internal.exporter._registration"]:
        code = f"{first}\nimport roiops, torch\n{EXPORT_NMS}\nexport()"
        result = run_fresh_python(code, timeout=300)
        assert result.returncode == 0 and "exported True" in result.stdout, result.stderr


def test_onnx_translations_as_a_custom_translation_table():
    """The documented fallback for a torch whose exporter roiops cannot reach by itself: without
    roiops' hook the export fails at its op, with the table it succeeds."""
    code = (
        "import sys, roiops, roiops._imports as i\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, i._AfterImport)]\n"
        f"{EXPORT_NMS}\n"
        "try:\n    export()\n"
        "except Exception as err:\n    print('refused', 'roiops.nms' in str(err))\n"
        "export(custom_translation_table=roiops.onnx_translations())\n"
    )
    result = run_fresh_python(code, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "refused True" in result.stdout and "exported True" in result.stdout, result.stdout
