"""Whole detectors to ONNX, run in ONNX Runtime: roiops' StaticMaskRCNN with both exporters, and
torchvision's detectors patched with roiops with the exporter torchvision tests them with. Small
images and the demo's small body keep this within CI's budget; the full-size model is measured by
the benchmark."""

from __future__ import annotations

import pytest
import torch
from inputs import torchvision_detector
from test_onnx import EXPORTERS, export, run
from torch.testing import assert_close

import roiops
import roiops.models
from roiops.demo.model import small_maskrcnn

# ONNX Runtime's convolutions are not ATen's: after a backbone the boxes move by up to this much.
STATIC_TOL = {"boxes": 1e-2, "scores": 1e-4, "masks": 1e-3, "roi_masks": 1e-3}


def static_model(paste_masks=True):
    torch.manual_seed(0)
    model = small_maskrcnn().eval()
    model.roi_heads.cfg.box_score_thresh = 0.0  # every slot filled: 20 detections an image
    return roiops.models.StaticMaskRCNN(model, max_detections=20, paste_masks=paste_masks).eval()


def demo_images(count, seed):
    return torch.rand(count, 3, 128, 128, generator=torch.Generator().manual_seed(seed))


def assert_same_detections(outputs, names, reference):
    got = dict(zip(names, outputs))
    assert set(got) == set(reference)
    for key in ["labels", "num_detections"]:
        assert torch.equal(got[key], reference[key]), key
    for key, tolerance in STATIC_TOL.items():
        if key in reference:
            assert_close(got[key], reference[key], rtol=0, atol=tolerance)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_static_mask_rcnn_exports_whole(exporter):
    """One graph of standard ops, masks pasted in it, for any batch size."""
    static = static_model()
    with torch.no_grad():
        reference = static(demo_images(2, 0))
    names = list(reference)
    model = export(
        static, (demo_images(2, 0),), exporter, {"images": [0]}, ["images"], output_names=names
    )
    assert [o.name for o in model.graph.output] == names
    for count, seed in [(2, 0), (1, 1), (3, 2)]:
        images = demo_images(count, seed)
        with torch.no_grad():
            reference = static(images)
        assert reference["num_detections"].tolist() == [20] * count
        assert_same_detections(run(model, images), names, reference)


def test_static_mask_rcnn_unpasted_masks():
    """paste_masks=False: each detection's 28x28 probabilities instead of the pasted masks, which
    paste_masks_in_image turns into the pasted ones (what TensorRT deployments do on the host)."""
    static = static_model(paste_masks=False)
    images = demo_images(2, 3)
    with torch.no_grad():
        reference = static(images)
        pasted = static_model()(images)["masks"]
    assert "masks" not in reference and reference["roi_masks"].shape == (2, 20, 28, 28)
    for i in range(2):
        again = roiops.paste_masks_in_image(
            reference["roi_masks"][i, :, None], pasted.new_tensor(reference["boxes"][i]), (128, 128)
        )
        assert torch.equal(again[:, 0], pasted[i])
    names = list(reference)
    model = export(static, (images,), "dynamo", {"images": [0]}, ["images"], output_names=names)
    assert_same_detections(run(model, images), names, reference)


def test_static_mask_rcnn_names_its_outputs_and_stays_in_eval_mode():
    """output_names are forward's keys, in order (the README's export passes them); a wrapper
    built in training mode around an eval model -- the README's snippet -- is in eval mode and
    stays there after TorchScript's exporter restored the mode it found."""
    static = static_model()
    images = demo_images(1, 4)
    with torch.no_grad():
        assert static.output_names == list(static(images))
    assert static_model(paste_masks=False).output_names[-1] == "roi_masks"
    wrapper = roiops.models.StaticMaskRCNN(static.model)  # no .eval() on the wrapper itself
    assert not wrapper.training
    model = export(wrapper, (images,), "torchscript", {"images": [0]}, ["images"],
                   output_names=wrapper.output_names)  # fmt: skip
    assert [o.name for o in model.graph.output] == wrapper.output_names
    assert not wrapper.training and not wrapper.model.training
    with torch.no_grad():
        wrapper(images)  # no "call .eval() on it first"
    wrapper.train()
    assert not any(m.training for m in wrapper.modules())


def test_static_mask_rcnn_image_size_is_a_constant_of_the_graph():
    """A dynamic image height is refused by the dynamo exporter with the reason; the TorchScript
    exporter cannot be told, so its graph refuses images of another height when run, where it
    would compute garbage."""
    static = static_model()
    images = demo_images(1, 5)
    height = torch.export.Dim("height", min=64, max=256)
    with pytest.raises(Exception, match="image size is a constant of its graph"):
        export(static, (images,), "dynamo", names=["images"])  # a fixed size exports
        torch.onnx.export(static, (images,), dynamo=True, dynamic_shapes=({2: height},))
    model = export(static, (images,), "torchscript", {"images": [0, 2]}, ["images"])
    assert run(model, images)[3].tolist() == [20]  # the exported size runs
    with pytest.raises(Exception, match="cannot be reshaped to the requested shape"):
        run(model, demo_images(1, 5)[:, :, :96])


# --- torchvision's detectors, patched ---------------------------------------------------------

# torchvision's own ONNX test of its detectors: export with one image, run on images of other
# sizes and on one without detections, compare with rtol 1e-3, atol 1e-5.
TORCHVISION_TOL = dict(rtol=1e-3, atol=1e-5)


def torchvision_images():
    g = torch.Generator().manual_seed(0)
    return [
        [torch.rand(3, 100, 320, generator=g)],
        [torch.rand(3, 250, 380, generator=g)],
        [torch.ones(3, 100, 100) * 0.3],
    ]


def export_torchvision(model, images):
    return export(
        model,
        (images,),
        "torchscript",
        {"images_tensors": [0, 1, 2], "outputs": [0, 1, 2]},
        ["images_tensors"],
        output_names=["outputs"],
    )


def within(outputs, reference) -> bool:
    """torchvision's criterion on boxes and scores (labels and masks follow them)."""
    try:
        for got, key in zip(outputs, ["boxes", "labels", "scores"]):
            assert_close(got, reference[key], check_dtype=False, **TORCHVISION_TOL)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("kind", ["faster", "mask"])
def test_patched_torchvision_detector_exports_as_unpatched(kind):
    """After patch_torchvision() a detector exports as it does unpatched (it failed at
    roiops::decode_boxes before roiops' ops had ONNX forms), and ONNX Runtime gives the eager
    detections within torchvision's tolerance on exactly the images where the unpatched export
    does. Under tracing, anchors and mask pasting are torchvision's own (roiops' ops take image
    sizes as ints, fixed at export; torchvision traces them as tensors)."""
    model = torchvision_detector(kind, min_size=200, max_size=300).eval()
    first, *others = torchvision_images()
    with torch.no_grad():
        model(first)  # as torchvision's test: the first call sets the poolers' scales
    unpatched = export_torchvision(model, first)
    with roiops.patch_torchvision():
        patched = export_torchvision(model, first)
        assert "RoiAlign" in {n.op_type for n in patched.graph.node}
        verdicts = []
        for images in [first, *others]:
            with torch.no_grad():
                reference = model(images)[0]
            ours, theirs = run(patched, images[0]), run(unpatched, images[0])
            assert len(ours) == len(theirs) == (4 if kind == "mask" else 3)
            assert within(ours, reference) == within(theirs, reference)
            verdicts.append(within(ours, reference))
    assert any(verdicts), "no image where torchvision's export holds: the test would say nothing"
