"""StaticMaskRCNN: the eager model's detections in fixed shapes, without host syncs -- so that
torch.export and torch.compile(fullgraph=True) take it. Small images, random weights."""

from __future__ import annotations

import copy

import pytest
import torch
from inputs import PASTE_ATOL, SMALL_DETECTOR, detector_pair, run_fresh_python
from torch.testing import assert_close

import roiops
import roiops.models


def build(**kwargs):
    """torchvision's model (seeded random weights) and roiops' eager and static models on them."""
    tv, ours = detector_pair("mask", **kwargs)
    return tv.eval(), ours.eval(), roiops.models.StaticMaskRCNN(ours, max_detections=30).eval()


def image_batch(count=2, size=(300, 420), seed=0):
    return torch.rand(count, 3, *size, generator=torch.Generator().manual_seed(seed))


def assert_static_equals(static_out, eager_out, k):
    """Row j < num_detections[i] is the eager model's j-th detection of image i; padding after."""
    assert static_out["boxes"].shape[:2] == (len(eager_out), k)
    for i, ref in enumerate(eager_out):
        count = int(static_out["num_detections"][i])
        assert count == len(ref["boxes"])
        assert torch.equal(static_out["labels"][i, :count], ref["labels"])
        assert torch.equal(static_out["boxes"][i, :count], ref["boxes"])
        assert torch.equal(static_out["scores"][i, :count], ref["scores"])
        assert_close(static_out["masks"][i, :count], ref["masks"][:, 0], rtol=0, atol=PASTE_ATOL)
        assert (static_out["labels"][i, count:] == -1).all()
        assert not static_out["scores"][i, count:].any()
        assert not static_out["boxes"][i, count:].any()
        assert not static_out["masks"][i, count:].any()


@pytest.fixture(scope="module")
def models():
    return build(box_score_thresh=0.0)


@torch.no_grad()
def test_equals_eager_and_torchvision_with_many_detections(models):
    tv, ours, static = models
    images = image_batch()
    out = static(images)
    eager = ours(list(images))
    assert all(
        len(d["boxes"]) == SMALL_DETECTOR["box_detections_per_img"] for d in eager
    )  # the cap
    assert_static_equals(out, eager, 30)
    assert_static_equals(out, tv(list(images)), 30)
    assert out["masks"].shape == (2, 30, 300, 420) and out["num_detections"].dtype == torch.int64


@torch.no_grad()
def test_few_none_and_filtered_out():
    """A score threshold at image 0's best score (so it detects nothing, the others a few each),
    and an RPN score threshold that filters every proposal out."""
    _, ours, static = build(box_score_thresh=0.0)
    images = image_batch(3, seed=1)
    best = [float(d["scores"][0]) for d in ours(list(images))]
    ours.roi_heads.cfg.box_score_thresh = best[0]  # the config the eager and static models share
    eager = ours(list(images))
    counts = [len(d["boxes"]) for d in eager]
    assert counts[0] == 0 and 0 < min(counts[1:]) and max(counts[1:]) < 25, counts
    assert_static_equals(static(images), eager, 30)
    ours.roi_heads.cfg.box_score_thresh = 0.0
    ours.rpn.cfg.rpn_score_thresh = 1.1  # sigmoid scores never reach it
    out = static(images)
    assert out["num_detections"].tolist() == [0, 0, 0]
    assert_static_equals(out, ours(list(images)), 30)


@torch.no_grad()
def test_tied_scores_keep_the_eager_order():
    """Every anchor's objectness and every class score equal (zeroed classifiers): top-k and both
    NMS stages run on ties only. Below 4000 box coordinates per NMS call torchvision -- and the
    eager model -- order ties by index, as the fixed-size NMS does: the same rows in the same
    order. (Above that torchvision sorts with an unstable sort: see roiops/models/static.py.)"""
    tv, ours, static = build(
        box_score_thresh=0.0, rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=100
    )
    state = tv.state_dict()
    for name in ["rpn.head.cls_logits", "roi_heads.box_predictor.cls_score"]:
        state[name + ".weight"].zero_()
        state[name + ".bias"].zero_()
    tv.load_state_dict(state)
    ours.load_state_dict(state)
    images = image_batch(2, seed=3)
    eager = ours(list(images))
    assert all((d["scores"] == d["scores"][0]).all() for d in eager)  # all tied
    out = static(images)
    assert_static_equals(out, eager, 30)
    assert_static_equals(out, tv(list(images)), 30)


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    _, _, static = models
    batch = torch.export.Dim("batch", min=1, max=8)
    program = torch.export.export(static, (image_batch(2),), dynamic_shapes={"images": {0: batch}})
    path = tmp_path_factory.mktemp("export") / "maskrcnn.pt2"
    torch.export.save(program, path)
    return program, path


@torch.no_grad()
@pytest.mark.parametrize("count", [1, 3])
def test_exported_program_equals_the_module_for_any_batch_size(models, exported, count):
    _, _, static = models
    program, _ = exported
    images = image_batch(count, seed=count)
    out, ref = program.module()(images), static(images)
    assert list(out) == list(ref)
    assert all(torch.equal(out[k], ref[k]) for k in ref)


def test_saved_program_runs_in_a_fresh_process_with_torch_and_roiops(models, exported, tmp_path):
    """torch.export.load in a new interpreter, torchvision made unimportable: `import roiops`
    registers the ops the program calls."""
    _, _, static = models
    _, path = exported
    images = image_batch(2, seed=5)
    torch.save(images, tmp_path / "images.pt")
    code = (
        "import sys; sys.modules['torchvision'] = None\n"
        "import torch, roiops\n"
        f"program = torch.export.load({str(path)!r})\n"
        f"images = torch.load({str(tmp_path / 'images.pt')!r})\n"
        "with torch.no_grad(): out = program.module()(images)\n"
        f"torch.save(out, {str(tmp_path / 'out.pt')!r})\n"
    )
    run = run_fresh_python(code, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        ref = static(images)
    assert all(torch.equal(out[k], ref[k]) for k in ref)


@torch.no_grad()
def test_compiles_in_one_graph_and_equals_eager(models):
    """torch.compile(fullgraph=True) with inductor: one graph, no break, and the eager bits when
    inductor keeps the convolutions' memory layout (its channels-last rewrite of the backbone
    changes the convolution algorithm, so the last bits)."""
    _, _, static = models
    images = image_batch(2, seed=6)
    explained = torch._dynamo.explain(static)(images)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    torch._dynamo.reset()
    with torch._inductor.config.patch(layout_optimization=False):
        compiled = torch.compile(static, fullgraph=True, backend="inductor")
        out = compiled(images)
    ref = static(images)
    assert all(torch.equal(out[k], ref[k]) for k in ref)
    torch._dynamo.reset()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@torch.no_grad()
def test_cuda_graph_replays_equal_eager(models):
    """Captured once in a CUDA graph, replayed on new images: the eager outputs."""
    _, ours, _ = models
    model = copy.deepcopy(ours).cuda()
    static = roiops.models.StaticMaskRCNN(model, max_detections=30).eval()
    images = image_batch(2, seed=7).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture: lazy init, cached anchors
        for _ in range(2):
            static(images)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = static(images)
    images.copy_(image_batch(2, seed=8).cuda())
    graph.replay()
    torch.cuda.synchronize()
    ref = static(images)
    assert all(torch.equal(captured[k], ref[k]) for k in ref)


def test_bad_use_gives_clear_errors(models):
    _, ours, static = models
    with pytest.raises(ValueError, match=r"images must be a Tensor\[N, 3, H, W\]"):
        static(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match="max_detections must be positive"):
        roiops.models.StaticMaskRCNN(ours, max_detections=0)
    with pytest.raises(TypeError, match="must be a roiops.models.MaskRCNN"):
        roiops.models.StaticMaskRCNN(torch.nn.Linear(2, 2))
    static.train()  # inference only: stays in eval mode
    assert not any(m.training for m in static.modules())
    static.model.train()  # the wrapped model itself put in training mode: refused
    try:
        with pytest.raises(RuntimeError, match="for inference"):
            static(image_batch(1))
    finally:
        static.eval()
