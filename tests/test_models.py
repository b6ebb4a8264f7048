"""roiops.models against torchvision's Faster / Mask R-CNN with the same weights: the same
state_dict, the same intermediate stages, detections, losses and gradients. Small images and random
weights keep this fast; the full-size runs are benchmarks."""

from __future__ import annotations

import pytest
import torch
import torchvision
from inputs import (
    SMALL_DETECTOR,
    assert_same_detections,
    detection_batch,
    detector_pair,
    run_fresh_python,
)
from torch.testing import assert_close

import roiops
import roiops.models


@pytest.fixture(scope="module")
def mask_pair():
    tv, ours = detector_pair("mask", box_score_thresh=0.0)
    return tv.eval(), ours.eval()


def test_state_dict_is_torchvisions():
    for kind in ["mask", "faster"]:
        tv, ours = detector_pair(kind)
        tv_state, our_state = tv.state_dict(), ours.state_dict()
        assert list(our_state) == list(tv_state)
        assert all(our_state[k].shape == tv_state[k].shape for k in tv_state)


@torch.no_grad()
def test_stages_equal_torchvision(mask_pair):
    """Transform, backbone, proposals, pooled box features and box logits: the same tensors."""
    tv, ours = mask_pair
    images, _ = detection_batch(seed=1)
    tv_batch, _ = tv.transform(images)
    our_batch, _ = ours.transform(images)
    assert torch.equal(our_batch.tensors, tv_batch.tensors)
    assert our_batch.image_sizes == tv_batch.image_sizes
    tv_features = tv.backbone(tv_batch.tensors)
    our_features = ours.backbone(our_batch.tensors)
    assert list(our_features) == list(tv_features)
    assert all(torch.equal(our_features[k], tv_features[k]) for k in tv_features)
    tv_proposals, _ = tv.rpn(tv_batch, tv_features)
    our_proposals, _ = ours.rpn(our_batch, our_features)
    assert all(torch.equal(a, b) for a, b in zip(our_proposals, tv_proposals))
    sizes = tv_batch.image_sizes
    tv_pooled = tv.roi_heads.box_roi_pool(tv_features, tv_proposals, sizes)
    our_pooled = ours.roi_heads.box_roi_pool(our_features, our_proposals, sizes)
    assert torch.equal(our_pooled, tv_pooled)
    tv_logits = tv.roi_heads.box_predictor(tv.roi_heads.box_head(tv_pooled))
    our_logits = ours.roi_heads.box_predictor(ours.roi_heads.box_head(our_pooled))
    assert all(torch.equal(a, b) for a, b in zip(our_logits, tv_logits))


@torch.no_grad()
def test_mask_rcnn_detections_equal_torchvision(mask_pair):
    tv, ours = mask_pair
    images, _ = detection_batch(seed=2)  # three images of different sizes in one batch
    assert_same_detections(ours(images), tv(images))


@torch.no_grad()
def test_faster_rcnn_and_default_threshold_equal_torchvision():
    tv, ours = detector_pair("faster", box_score_thresh=0.0)
    images, _ = detection_batch(seed=3)
    assert_same_detections(ours.eval()(images), tv.eval()(images))
    # A score threshold set exactly at a detection's score keeps some detections and drops others;
    # the filter is strict (score > threshold), so that very detection goes too.
    tv, ours = detector_pair("mask", box_score_thresh=0.0)
    scores = tv.eval()(images)[0]["scores"]
    threshold = float(scores[len(scores) // 2])
    tv, ours = detector_pair("mask", box_score_thresh=threshold)
    got, ref = ours.eval()(images), tv.eval()(images)
    assert_same_detections(got, ref, allow_empty=True)
    assert len(got[0]["boxes"]) == int((scores > threshold).sum()) < len(scores)
    assert all(d["masks"].shape[1:] == (1, *im.shape[-2:]) for d, im in zip(got, images))


def test_training_losses_and_gradients_equal_torchvision():
    """Same seed, images and targets: the same losses (so the samplers draw as torchvision's) and
    the same gradient for every parameter, bit for bit (RoIAlign's CPU backward visits in
    torchvision's order, and the graph is built in torchvision's order)."""
    tv, ours = detector_pair("mask")
    images, targets = detection_batch(seed=4, with_targets=True)
    results = []
    for model in (tv.train(), ours.train()):
        torch.manual_seed(7)
        losses = model(images, targets)
        sum(losses.values()).backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        results.append((losses, grads))
    (tv_losses, tv_grads), (our_losses, our_grads) = results
    assert list(our_losses) == list(tv_losses)
    for key in tv_losses:
        assert torch.equal(our_losses[key], tv_losses[key]), key
    assert list(our_grads) == list(tv_grads)
    for name in tv_grads:
        assert torch.equal(our_grads[name], tv_grads[name]), name


# --- torch.autocast and CUDA ----------------------------------------------------------------------
# On the CPU under autocast (bfloat16) the two models agree bit for bit: the convolutions are the
# same layers, roiops' ops compute what torchvision's do (RoIAlign in float32, box coding rounded
# step by step in bfloat16, levels from float32 areas). On CUDA, torchvision's RoIAlign kernel
# rounds FMAs that roiops' does not (roiops keeps torchvision's CPU bits there), so the detections
# agree within tolerances: the same counts, and each detection found in torchvision's output with
# its label and its box within `box_atol` px -- but for near-ties in half precision scores, which
# may swap which of two detections makes the top-k cut (at most one in ten here).

CUDA_ONLY = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
# Boxes within ~3e-3 px in float32 (2026-11-30 H200: 3.2e-3 at 800x1067); in half precision two
# ulps of the largest coordinate of these 448-px images.
BOX_ATOL = {torch.float32: 5e-3, torch.float16: 0.5, torch.bfloat16: 4.0}


def assert_detections_close(ours, ref, box_atol, matched=0.9):
    for o, r in zip(ours, ref, strict=True):
        assert len(o["boxes"]) == len(r["boxes"]) > 0
        same_label = o["labels"][:, None] == r["labels"][None, :]
        gap = (o["boxes"][:, None, :].float() - r["boxes"][None, :, :].float()).abs().amax(-1)
        found = ((gap <= box_atol) & same_label).any(1)
        assert found.float().mean() >= matched, f"{int(found.sum())} of {len(found)} found"


@torch.no_grad()
def test_eval_under_cpu_autocast_is_torchvisions(mask_pair):
    tv, ours = mask_pair
    images, _ = detection_batch(seed=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, ref = ours(images), tv(images)
    assert got[0]["boxes"].dtype == ref[0]["boxes"].dtype == torch.bfloat16
    for o, r in zip(got, ref, strict=True):
        assert len(o["boxes"]) == len(r["boxes"]) > 0
        for key in ["boxes", "labels", "scores"]:
            assert torch.equal(o[key], r[key]), key
        assert_close(o["masks"].float(), r["masks"].float(), rtol=0, atol=1e-2)


@torch.no_grad()
def test_eval_under_cpu_autocast_differs_only_among_tied_scores(monkeypatch):
    """With COCO's 91 classes and 100 detections in bfloat16, two things part the models:
    torchvision's batched_nms shifts each class's boxes by class * (max + 1), in bfloat16, which
    moves them and changes what it suppresses (roiops' NMS is exact per class); and bfloat16 scores
    tie exactly, where each model's sort decides which of a tie makes the top-100 cut. With
    torchvision's own per-class NMS (what it runs above 4000 boxes anyway), the detections above
    the lowest kept score are torchvision's, bit for bit, up to their order among equal scores."""
    from torchvision.ops import boxes as torchvision_boxes

    tv, ours = detector_pair("mask", num_classes=91, box_detections_per_img=100)
    tv.eval(), ours.eval()
    images, _ = detection_batch(seed=0)

    def rows(d, above):
        columns = [d["scores"][:, None], d["labels"][:, None], d["boxes"]]
        values = torch.cat([c.float() for c in columns], 1)  # exact: bfloat16 and labels < 91
        return sorted(map(tuple, values[above].tolist()))

    def above_the_cut_equal(got, ref):
        for o, r in zip(got, ref, strict=True):
            lowest = r["scores"].min()
            if o["scores"].min() != lowest or rows(o, o["scores"] > lowest) != rows(
                r, r["scores"] > lowest
            ):
                return False
        return True

    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, ref = ours(images), tv(images)
    assert all(len(o["scores"]) == len(r["scores"]) == 100 for o, r in zip(got, ref))
    assert not above_the_cut_equal(got, ref)  # torchvision's bfloat16 offsets
    trick = torchvision_boxes._batched_nms_vanilla  # torchvision's per-class loop
    monkeypatch.setattr(torchvision_boxes, "_batched_nms_coordinate_trick", trick)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        per_class = tv(images)
    assert above_the_cut_equal(got, per_class)
    assert any(not torch.equal(o["boxes"], r["boxes"]) for o, r in zip(got, per_class))  # ties


def training_step(model, images, targets, device, autocast_dtype=None):
    """Losses and parameter gradients of one step, with the samplers' random numbers seeded."""
    model.to(device).train()
    images = [i.to(device) for i in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    torch.manual_seed(7)
    with torch.autocast(device, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        losses = model(images, targets)
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    return losses, grads


def test_training_under_cpu_autocast_is_torchvisions():
    """Same losses, bit for bit: torchvision's RPN encodes its regression targets against bfloat16
    anchors (widths and centres in bfloat16, the rest in float32), and so does roiops."""
    tv, ours = detector_pair("mask")
    images, targets = detection_batch(seed=4, with_targets=True)
    (tv_losses, tv_grads), (our_losses, our_grads) = (
        training_step(m, images, targets, "cpu", torch.bfloat16) for m in (tv, ours)
    )
    assert list(our_losses) == list(tv_losses)
    for key in tv_losses:
        assert torch.equal(our_losses[key], tv_losses[key]), key
    for name in tv_grads:
        assert_close(our_grads[name], tv_grads[name], rtol=1e-5, atol=1e-6, msg=name)


@CUDA_ONLY
@torch.no_grad()
@pytest.mark.parametrize("autocast_dtype", [None, torch.float16, torch.bfloat16])
def test_eval_on_cuda_is_torchvisions(mask_pair, autocast_dtype):
    tv, ours = (m.to("cuda") for m in mask_pair)
    images = [i.cuda() for i in detection_batch(seed=2)[0]]
    try:
        with torch.autocast("cuda", dtype=autocast_dtype, enabled=autocast_dtype is not None):
            got, ref = ours(images), tv(images)
    finally:
        tv.cpu(), ours.cpu()
    assert_detections_close(got, ref, BOX_ATOL[autocast_dtype or torch.float32])


@CUDA_ONLY
@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16])
def test_training_step_on_cuda_is_torchvisions(autocast_dtype):
    """Losses within 5.1e-6 of torchvision's in float32 on the H200 (2026-11-30)."""
    tv, ours = detector_pair("mask")
    images, targets = detection_batch(seed=4, with_targets=True)
    (tv_losses, tv_grads), (our_losses, our_grads) = (
        training_step(m, images, targets, "cuda", autocast_dtype) for m in (tv, ours)
    )
    tol = 1e-4 if autocast_dtype is None else 2e-2
    for key in tv_losses:
        assert torch.isfinite(our_losses[key]), key
        assert_close(our_losses[key], tv_losses[key], rtol=tol, atol=tol, msg=key)
    assert all(torch.isfinite(g).all() for g in our_grads.values())


def assert_same_training_losses(images, targets, seed):
    """torchvision's and roiops' training losses on the same batch, the samplers seeded alike."""
    tv, ours = detector_pair("mask")
    results = []
    for model in (tv.train(), ours.train()):
        torch.manual_seed(seed)
        with torch.no_grad():
            results.append(model(images, targets))
    for key in results[0]:
        assert torch.isfinite(results[1][key]), key
        assert torch.equal(results[1][key], results[0][key]), key


def test_integer_target_boxes_train_as_in_torchvision():
    """torchvision takes integer ground-truth boxes (its transform's resize makes them float32)."""
    images, targets = detection_batch(seed=4, with_targets=True)
    targets = [dict(t, boxes=t["boxes"].round().to(torch.int64)) for t in targets]
    assert_same_training_losses(images, targets, seed=7)


def test_a_few_sgd_steps_lower_the_loss():
    torch.manual_seed(0)
    model = roiops.models.maskrcnn_resnet50_fpn(
        num_classes=3,
        min_size=128,
        max_size=160,
        rpn_batch_size_per_image=64,
        box_batch_size_per_image=64,
    )
    images, targets = detection_batch(
        seed=5, with_targets=True, sizes=((128, 160), (120, 150)), num_classes=3
    )
    # From random weights lr 0.01 diverges, in torchvision's model as in this one.
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.002, momentum=0.9
    )
    model.train()
    totals = []
    for _ in range(10):
        losses = model(images, targets)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(float(total.detach()))
    assert all(torch.isfinite(torch.tensor(totals)))
    assert totals[-1] < 0.8 * totals[0], totals


def test_training_with_an_image_without_objects_is_torchvisions():
    images, targets = detection_batch(seed=6, with_targets=True)
    targets[0] = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": torch.zeros(0, *images[0].shape[-2:], dtype=torch.uint8),
    }
    assert_same_training_losses(images, targets, seed=8)


@torch.no_grad()
def test_the_model_runs_on_roiops_ops(mask_pair):
    _, ours = mask_pair
    images, _ = detection_batch(seed=9)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        ours(images)
    ops = {e.name for e in prof.events() if e.name.startswith(("roiops::", "torchvision::"))}
    expected = {
        "roiops::grid_anchors",
        "roiops::decode_clip_boxes",
        "roiops::batched_nms",
        "roiops::assign_levels",
        "roiops::multi_scale_roi_align",
        "roiops::paste_masks_in_image",
    }
    assert expected <= ops and not any(op.startswith("torchvision::") for op in ops), ops


def test_the_model_needs_no_torchvision():
    code = (
        "import sys; sys.modules['torchvision'] = None\n"
        "import torch, roiops.models\n"
        "model = roiops.models.maskrcnn_resnet50_fpn(num_classes=3, min_size=64, max_size=96,"
        " box_score_thresh=0.0).eval()\n"
        "with torch.no_grad(): out = model([torch.rand(3, 64, 80)])\n"
        "print(sorted(out[0]), tuple(out[0]['masks'].shape[2:]))\n"
    )
    run = run_fresh_python(code, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "['boxes', 'labels', 'masks', 'scores'] (64, 80)" in run.stdout


# --- checkpoints ----------------------------------------------------------------------------------


def released_format(state_dict):
    """torchvision's state_dict with the names of its released COCO file (version 1): mask_fcn*,
    rpn.head.conv, FPN blocks without ".0", no version metadata."""
    renamed = {}
    for key, value in state_dict.items():
        for i in range(4):
            key = key.replace(
                f"roi_heads.mask_head.{i}.0.", f"roi_heads.mask_head.mask_fcn{i + 1}."
            )
            key = key.replace(f"fpn.inner_blocks.{i}.0.", f"fpn.inner_blocks.{i}.")
            key = key.replace(f"fpn.layer_blocks.{i}.0.", f"fpn.layer_blocks.{i}.")
        renamed[key.replace("rpn.head.conv.0.0.", "rpn.head.conv.")] = value
    return renamed


def test_released_checkpoint_format_loads(tmp_path):
    tv, _ = detector_pair("mask")
    path = tmp_path / "maskrcnn.pth"
    torch.save(released_format(tv.state_dict()), path)
    model = roiops.models.maskrcnn_resnet50_fpn(weights=path, **SMALL_DETECTOR)
    ours, ref = model.state_dict(), tv.state_dict()
    assert all(torch.equal(ours[k], ref[k]) for k in ours)  # num_batches_tracked: not frozen BN's
    frozen = [m for m in model.modules() if isinstance(m, roiops.models.backbone.FrozenBatchNorm2d)]
    assert frozen and all(m.eps == 0.0 for m in frozen)  # torchvision's overwrite_eps


def test_weights_that_are_not_a_file_say_where_to_put_them(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="downloads nothing"):
        roiops.models.maskrcnn_resnet50_fpn(weights=tmp_path / "missing.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    enum = torchvision.models.detection.MaskRCNN_ResNet50_FPN_Weights.COCO_V1
    with pytest.raises(ValueError, match=r"maskrcnn_resnet50_fpn_coco-bf2d0c1e\.pth"):
        roiops.models.maskrcnn_resnet50_fpn(weights=enum)
    with pytest.raises(ValueError, match=f"put it in {tmp_path / 'hub' / 'checkpoints'}"):
        roiops.models.maskrcnn_resnet50_fpn(weights="maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth")


def test_a_checkpoint_file_name_is_looked_up_where_the_message_says(tmp_path, monkeypatch):
    """weights="file.pth" that is not a file here is looked for in torch.hub's checkpoint folder,
    where the error message (and the README) say to put it."""
    tv, _ = detector_pair("mask")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    name = "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    torch.save(released_format(tv.state_dict()), tmp_path / "hub" / "checkpoints" / name)
    monkeypatch.chdir(tmp_path)  # not in the working directory
    model = roiops.models.maskrcnn_resnet50_fpn(weights=name, **SMALL_DETECTOR)
    ours, ref = model.state_dict(), tv.state_dict()
    assert all(torch.equal(ours[k], ref[k]) for k in ours)


def test_import_roiops_is_enough_for_roiops_models():
    """`import roiops` then roiops.models.X, as the README writes it (loaded on first use)."""
    code = "import roiops\nprint(roiops.models.maskrcnn_resnet50_fpn.__name__, roiops.deploy)"
    result = run_fresh_python(code, timeout=120)
    assert result.returncode == 0 and "maskrcnn_resnet50_fpn" in result.stdout, result.stderr


def test_a_mismatched_state_dict_is_refused():
    tv, _ = detector_pair("faster")
    model = roiops.models.maskrcnn_resnet50_fpn(**SMALL_DETECTOR)
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_state_dict(tv.state_dict())
    with pytest.raises(TypeError, match="unknown detector arguments"):
        roiops.models.maskrcnn_resnet50_fpn(box_treshold=0.3)


# --- bad input ------------------------------------------------------------------------------------


def test_bad_images_give_clear_errors(mask_pair):
    _, model = mask_pair
    with pytest.raises(ValueError, match="non-empty list"):
        model([])
    with pytest.raises(ValueError, match=r"images\[0\] must be a Tensor\[3, H, W\]"):
        model([torch.rand(1, 3, 64, 64)])
    with pytest.raises(ValueError, match=r"images\[1\] has 1 channels"):
        model([torch.rand(3, 64, 64), torch.rand(1, 64, 64)])
    with pytest.raises(TypeError, match=r"images\[0\] must be floating"):
        model([torch.zeros(3, 64, 64, dtype=torch.uint8)])
    with pytest.raises(ValueError, match="resizes to nothing"):
        model([torch.rand(3, 1, 2000)])


@pytest.mark.parametrize("image_device", ["meta"] + (["cuda"] if torch.cuda.is_available() else []))
@pytest.mark.parametrize("training", [False, True])
def test_images_not_on_the_models_device_are_refused(mask_pair, image_device, training):
    """As after wrapping a CPU model in DistributedDataParallel and moving the wrapper (or never
    moving the model): the error names both devices and the fix, not a convolution's complaint."""
    model = roiops.models.maskrcnn_resnet50_fpn(**SMALL_DETECTOR).train(training)
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64, device=image_device)]
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    message = rf"images\[1\] is on {image_device}(:0)? but the model's parameters are on cpu: "
    with pytest.raises(ValueError, match=message + r"move the model with model.to\(device\)"):
        model(images, targets if training else None)


@torch.no_grad()
def test_an_image_smaller_than_one_stride_works_like_torchvision(mask_pair):
    tv, ours = mask_pair
    images = [torch.rand(3, 10, 13, generator=torch.Generator().manual_seed(0))]
    got, ref = ours(images), tv(images)
    assert_same_detections(got, ref)
    assert got[0]["masks"].shape[-2:] == (10, 13)


def test_bad_targets_give_clear_errors():
    _, model = detector_pair("mask")
    model.train()
    images, targets = detection_batch(seed=10, with_targets=True)
    degenerate = [dict(t) for t in targets]
    degenerate[1]["boxes"] = degenerate[1]["boxes"].clone()
    degenerate[1]["boxes"][0, 2] = degenerate[1]["boxes"][0, 0]
    with pytest.raises(AssertionError, match="positive height and width.*index 1"):
        model(images, degenerate)  # torchvision asserts the same
    with pytest.raises(ValueError, match="targets are needed"):
        model(images)
    no_masks = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
    with pytest.raises(ValueError, match=r"targets\[0\] has no \['masks'\]"):
        model(images, no_masks)
    too_large = [dict(t, labels=t["labels"] + 7) for t in targets]
    with pytest.raises(ValueError, match=r"labels'\] must be in \[0, 7\) \(num_classes\)"):
        model(images, too_large)
    float_labels = [dict(t, labels=t["labels"].float()) for t in targets]
    with pytest.raises(TypeError, match="labels'\\] must be int64"):
        model(images, float_labels)
