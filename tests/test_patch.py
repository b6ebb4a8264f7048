"""roiops.patch_torchvision(): torchvision's own detection models running on roiops ops, with
identical detections, and torchvision restored afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from inputs import assert_same_detections, torchvision_detector

import roiops


def roiops_ops_run(fn) -> set[str]:
    """The roiops ops a call of fn() dispatches, from a profiler trace."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {e.name for e in prof.events() if e.name.startswith("roiops::")}


@pytest.fixture(scope="module")
def maskrcnn():
    """A small torchvision Mask R-CNN, random weights, that detects plenty (score threshold 0)."""
    kwargs = dict(box_score_thresh=0.0, box_detections_per_img=50)
    model = torchvision_detector("mask", **kwargs).eval()
    images = [torch.rand(3, 300, 420), torch.rand(3, 280, 360)]
    return model, images, kwargs


@torch.no_grad()
def test_patched_maskrcnn_detects_the_same_on_roiops_ops(maskrcnn):
    model, images, kwargs = maskrcnn
    reference = model(images)
    assert roiops_ops_run(lambda: model(images)) == set()
    with roiops.patch_torchvision():
        patched = model(images)  # a model built before the patch
        ops = roiops_ops_run(lambda: model(images))
        built_inside = torchvision_detector("mask", **kwargs).eval()
        built_inside.load_state_dict(model.state_dict())
        assert_same_detections(built_inside(images), reference)
    assert_same_detections(patched, reference)
    expected = {
        "roiops::multi_scale_roi_align",
        "roiops::batched_nms",
        "roiops::decode_boxes",
        "roiops::grid_anchors",
        "roiops::assign_levels",
        "roiops::paste_masks_in_image",
    }
    assert expected <= ops, ops
    assert roiops_ops_run(lambda: model(images)) == set()  # restored
    assert_same_detections(model(images), reference)


SCRIPTED = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from inputs import assert_same_detections, torchvision_detector
from test_patch import roiops_ops_run
import roiops
from torchvision.models.detection import anchor_utils, generalized_rcnn, rpn

model = torchvision_detector("mask", box_score_thresh=0.0, box_detections_per_img=50).eval()
images = [torch.rand(3, 300, 420), torch.rand(3, 280, 360)]
with torch.no_grad():
    reference = model(images)
    with roiops.patch_torchvision():
        scripted = torch.jit.script(model)
        _, detections = scripted(images)
        ops = roiops_ops_run(lambda: scripted(images))
        assert type(model.rpn) is rpn.RegionProposalNetwork
        assert type(model.rpn.anchor_generator) is anchor_utils.AnchorGenerator
        assert roiops_ops_run(lambda: model(images)) >= {"roiops::grid_anchors"}  # still roiops'
        prepared = model.__prepare_scriptable__()  # what TorchScript compiles
        assert prepared.rpn.box_similarity is prepared.roi_heads.box_similarity is roiops.box_iou
        assert isinstance(prepared.rpn.box_coder, roiops.BoxCoder)
        assert prepared.backbone.body.conv1.weight is model.backbone.body.conv1.weight  # shared
assert_same_detections(detections, reference)
expected = {
    "roiops::multi_scale_roi_align",
    "roiops::batched_nms",
    "roiops::decode_boxes",
    "roiops::paste_masks_in_image",
}
assert expected <= ops and "roiops::grid_anchors" not in ops, ops
assert not hasattr(generalized_rcnn.GeneralizedRCNN, "__prepare_scriptable__")  # restored
print("ok")
"""


def test_a_patched_model_scripts_and_runs_roiops_ops():
    """torch.jit.script of a torchvision detector works under the patch as without it: the
    scripted model gives torchvision's detections and runs roiops' ops (its anchors are
    torchvision's: roiops' take roiops' ImageList), and the eager model it came from is left as
    it was. In a fresh process: TorchScript compiles a class once per process, and this suite
    scripts torchvision's detectors unpatched elsewhere."""
    tests = Path(__file__).parent
    result = subprocess.run(
        [sys.executable, "-P", "-c", SCRIPTED, str(tests)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_patch_and_unpatch_restore_every_attribute():
    from torchvision.models.detection import _utils, anchor_utils, rpn

    originals = (
        torchvision.ops.nms,
        torchvision.ops.boxes.batched_nms,
        torchvision.ops.MultiScaleRoIAlign.forward,
        _utils.BoxCoder.decode_single,
    )
    assert not hasattr(anchor_utils.AnchorGenerator, "_anchors")
    handle = roiops.patch_torchvision()
    assert roiops.is_torchvision_patched()
    assert (
        torchvision.ops.nms is roiops.nms
        and torchvision.ops.boxes.batched_nms is roiops.batched_nms
    )
    with roiops.patch_torchvision():  # nested: leaves the outer patch in place
        pass
    assert roiops.is_torchvision_patched()
    model_rpn = rpn.RegionProposalNetwork(
        anchor_utils.AnchorGenerator(),
        rpn.RPNHead(8, 3),
        0.7,
        0.3,
        256,
        0.5,
        dict(training=10, testing=10),
        dict(training=10, testing=10),
        0.7,
    )
    assert model_rpn.box_similarity is roiops.box_iou
    roiops.unpatch_torchvision()
    assert not roiops.is_torchvision_patched()
    assert (
        torchvision.ops.nms,
        torchvision.ops.boxes.batched_nms,
        torchvision.ops.MultiScaleRoIAlign.forward,
        _utils.BoxCoder.decode_single,
    ) == originals
    assert not hasattr(anchor_utils.AnchorGenerator, "_anchors")
    assert model_rpn.box_similarity is torchvision.ops.boxes.box_iou  # its own, set when built
    with handle:  # exiting a stale handle's block must not disturb anything
        pass
    roiops.unpatch_torchvision()  # a no-op when not patched


@torch.no_grad()
def test_patched_maskrcnn_trains_on_roiops_ops(maskrcnn):
    """Training also reaches roiops: box_similarity (anchor and proposal matching), encode, the
    mask targets' roi_align."""
    model, images, _ = maskrcnn
    targets = [
        {
            "boxes": torch.tensor([[20.0, 30.0, 200.0, 220.0]]),
            "labels": torch.tensor([1]),
            "masks": torch.zeros(1, 300, 420, dtype=torch.uint8),
        },
        {
            "boxes": torch.tensor([[50.0, 60.0, 150.0, 250.0]]),
            "labels": torch.tensor([2]),
            "masks": torch.ones(1, 280, 360, dtype=torch.uint8),
        },
    ]
    model.train()
    try:
        with roiops.patch_torchvision():
            ops = roiops_ops_run(lambda: model(images, targets))
    finally:
        model.eval()
    assert {"roiops::box_iou", "roiops::encode_boxes", "roiops::roi_align"} <= ops, ops
