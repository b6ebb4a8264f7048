"""`python -m roiops demo` and `python -m roiops bench`: their outputs on a short run, the synthetic
dataset's targets, the interleaved timing, and bad arguments refused before any work. The
full-length demo and the benchmark table are recorded measurements (README), not tests."""

from __future__ import annotations

import io
import json
import sys
import time
import types

import numpy as np
import pytest
import torch
from PIL import Image

from roiops.__main__ import main
from roiops.bench import timing
from roiops.demo import shapes


def test_shapes_targets_match_their_masks():
    for seed in range(20):
        image, target = shapes.sample(np.random.default_rng(seed))
        assert image.shape == (3, shapes.IMAGE_SIZE, shapes.IMAGE_SIZE)
        assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
        boxes, labels, masks = target["boxes"], target["labels"], target["masks"]
        assert len(boxes) == len(labels) == len(masks)
        assert set(labels.tolist()) <= {1, 2, 3}
        for box, mask in zip(boxes.tolist(), masks):
            ys, xs = torch.where(mask.bool())
            # the tight box of the visible pixels, in pixel-edge coordinates
            assert box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        # later shapes occlude earlier ones: no pixel belongs to two instances
        assert masks.sum(0).max() <= 1
    again = shapes.sample(np.random.default_rng(3))
    first = shapes.sample(np.random.default_rng(3))
    assert torch.equal(again[0], first[0]) and torch.equal(again[1]["masks"], first[1]["masks"])


def test_demo_training_uses_its_whole_time_budget(monkeypatch):
    """The learning rate decays with the time spent as well as the steps: on a machine busy at
    first (3 s a step for 20 steps, then 0.5 s), training goes on until the budget is spent -- not
    stopping at the step count the first steps' speed predicted -- and ends on a decayed
    learning rate; with no budget, the schedule is the steps'."""
    from roiops.demo import model, train

    clock = iter([0.0] + [3.0 * k for k in range(1, 21)] + [60 + 0.5 * k for k in range(1, 10**4)])
    # train's own clock only (the progress bar reads the real one)
    monkeypatch.setattr(train, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    torch.manual_seed(0)
    budget = 100.0
    timed = train.train(model.small_maskrcnn(), 400, 1, 0, stream=io.StringIO(), seconds=budget)
    steps = len(timed.losses)
    # 20 slow steps took 60 s; the remaining 40 s at 0.5 s a step: 80 more steps
    assert steps == timed.scheduled_steps == 100  # the first steps' speed predicted 33
    assert timed.learning_rates[-1] < 0.01 * train.LEARNING_RATE  # decayed by the end
    after_warmup = timed.learning_rates[train.WARMUP_STEPS :]
    assert all(a >= b for a, b in zip(after_warmup, after_warmup[1:]))
    spent = train.train(model.small_maskrcnn(), 100, 1, 0, stream=io.StringIO(), seconds=0.1)
    assert len(spent.losses) == 1  # a budget spent after the first step stops there
    rates = [train.learning_rate(s, train.progress_after_warmup(s, 80, 0.0, None, None))
             for s in range(80)]  # fmt: skip
    assert rates[train.WARMUP_STEPS - 1] == train.LEARNING_RATE and rates[-1] < rates[51]


def test_demo_writes_metrics_and_picture(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--steps", "3", "--seed", "1"]) == 0
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    for key in ("box_AP", "box_AP50", "box_AP75", "mask_AP", "mask_AP50", "mask_AP75"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["steps"] == metrics["planned_steps"] == metrics["scheduled_steps"] == 3
    assert metrics["seed"] == 1
    assert metrics["minutes"] == 4.6  # the default budget, which 3 steps stay far within
    assert np.isfinite(metrics["final_loss"])
    picture = Image.open(tmp_path / "demo" / "detections.png")
    assert picture.format == "PNG" and picture.width > 1000 and picture.height > 700
    err = capsys.readouterr().err
    assert "3/3" in err and "it/s" in err and "mask AP" in err


def test_coco_metrics_of_the_ground_truth_are_perfect():
    from roiops.demo.evaluate import coco_metrics

    images, targets = shapes.as_lists(list(shapes.ShapesDataset(seed=0, part=1, length=8)))
    outputs = [
        {
            "boxes": t["boxes"],
            "labels": t["labels"],
            "scores": torch.ones(len(t["labels"])),
            "masks": t["masks"][:, None].float(),
        }
        for t in targets
    ]
    metrics = coco_metrics(targets, outputs)
    assert all(value == pytest.approx(1.0) for value in metrics.values()), metrics
    outputs[0] = {k: v[:0] for k, v in outputs[0].items()}  # an image with nothing found
    assert coco_metrics(targets, outputs)["mask_AP50"] < 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "--steps", "-1"], "argument --steps: must be >= 0, got -1"),
        (["demo", "--steps", "ten"], "argument --steps: expected a whole number, got 'ten'"),
        (["demo", "--seed", "-2"], "argument --seed: must be >= 0"),
        (["demo", "--minutes", "0"], "argument --minutes: must be a positive number, got 0"),
        (["demo", "--minutes", "soon"], "argument --minutes: expected a number, got 'soon'"),
        (["bench", "--dtypes", "float64"], "--dtypes 'float64': expected some of float32"),
        (["bench", "--min-run-time", "0"], "--min-run-time must be > 0 seconds"),
        (["bench", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["demo", "bench"])
def test_an_unwritable_out_is_refused(command, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit):
        main([command, "--out", str(blocker / "results")])
    assert f"--out {blocker / 'results'} is not a writable folder" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine with no GPU")
def test_bench_on_cuda_without_a_gpu_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--device", "cuda"])
    assert "--device cuda: this torch sees no GPU" in capsys.readouterr().err


def test_bench_writes_report_results_and_chart(tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--filter", "decode|roi_align fwd, mask", "--min-run-time", "0.05", "--out",
            str(out)]  # fmt: skip
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    pooling, row = results["rows"]
    assert row["case"].startswith("decode") and row["speedup"] > 0 and row["roiops_ms"] > 0
    assert results["header"]["torchvision"] and results["header"]["date"]
    # the roofline: the copy bandwidth measured in the run, each row's share of it, RoIAlign's taps
    copy = results["header"]["copy_GBps"]
    assert copy > 0 and row["percent_of_copy"] == pytest.approx(
        100 * row["roiops_GBps"] / copy, rel=1e-2
    )
    taps = 100 * 256 * 14 * 14 * 2**2 * 4  # RoIs x channels x bins x samples x corners
    assert pooling["roiops_Gtaps"] == pytest.approx(taps / pooling["roiops_ms"] / 1e6)
    report = (out / "report.md").read_text()
    assert "decode 268569 anchors" in report and f"{row['speedup']:.2f}x" in report
    assert Image.open(out / "speedup.png").format == "PNG"


def test_time_pair_interleaves_the_two_sides():
    calls = []
    prepared = timing.Prepared(lambda: calls.append("ours"), lambda: calls.append("theirs"), 0)
    ours, theirs = timing.time_pair(prepared, min_run_time=0.01, rounds=3)
    assert ours > 0 and theirs > 0
    # one call of each side, then 3 rounds of a run of ours followed by a run of theirs
    runs = [side for k, side in enumerate(calls) if k == 0 or calls[k - 1] != side]
    assert runs == ["ours", "theirs"] * 4


def test_time_pair_times_a_call_longer_than_a_round_once_per_round():
    """A side whose call outlasts a round's share of min_run_time runs once per round (no untimed
    block-size estimate beside it); the other keeps blocked_autorange's many calls."""
    calls = []

    def slow():
        calls.append("slow")
        time.sleep(0.02)

    prepared = timing.Prepared(slow, lambda: calls.append("fast"), 0)
    slow_seconds, fast_seconds = timing.time_pair(prepared, min_run_time=0.03, rounds=3)
    assert calls.count("slow") == 2 + 3  # the untimed first call, the deciding call, 3 rounds
    assert calls.count("fast") > 3 * 10
    assert 0.02 <= slow_seconds < 1.0 and fast_seconds < 0.001


def test_bench_selects_the_extended_cases_only_with_all(tmp_path):
    import argparse

    from roiops.bench.cases import CASES
    from roiops.bench.command import Options, select

    def chosen(
        everything: bool, dtypes: str = "float32,float16", filter: str = ""
    ) -> list[tuple[str, str]]:
        args = argparse.Namespace(
            device="cpu",
            dtypes=dtypes,
            out=str(tmp_path),
            filter=filter,
            all=everything,
            min_run_time=None,
        )
        return [(case.name, dtype) for case, dtype in select(CASES, Options.from_args(args))]

    default, everything = chosen(False), chosen(True)
    assert set(default) < set(everything)
    assert not any("StaticMaskRCNN eager" in name for name, _ in default)
    assert ("StaticMaskRCNN in ONNX Runtime, 1 image (800x1067)", "float32") in default
    assert ("StaticMaskRCNN in ONNX Runtime, 2 images (800x1067)", "float32") not in default
    assert ("StaticMaskRCNN compiled, 2 images (800x1067)", "float32") in everything
    assert ("Mask R-CNN stage: paste masks (2 images)", "float32") in everything
    assert ("Mask R-CNN stage: paste masks (2 images)", "float32") not in default
    assert ("Mask R-CNN inference, 1 image (800x1067)", "float32") in default
    # whole-model cases run in float32 only; op cases in every asked dtype, float32 first
    assert ("Mask R-CNN inference, 1 image (800x1067)", "float16") not in default
    assert default[0] == ("roi_align fwd, box head (1000 RoIs, 7x7, P2)", "float32")
    assert ("roi_align fwd, box head (1000 RoIs, 7x7, P2)", "float16") in default
    # the deployed rows: OpenVINO bf16 and ONNX Runtime by default, the rest with --all
    assert ("StaticMaskRCNN in OpenVINO, bf16, 1 image (800x1067)", "float32") in default
    assert ("StaticMaskRCNN in OpenVINO, int8, 1 image (800x1067)", "float32") in everything
    assert ("StaticMaskRCNN in OpenVINO, int8, 1 image (800x1067)", "float32") not in default
    # --filter A|B: the cases matching either
    either = chosen(True, "float32", "decode|OpenVINO, f32")
    assert [name for name, _ in either] == [
        "decode 268569 anchors (RPN, 1 image)",
        "StaticMaskRCNN in OpenVINO, f32, 1 image (800x1067)",
    ]


def test_demo_without_its_extra_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # as if not installed
    with pytest.raises(SystemExit, match=r"the demo needs pycocotools: pip install pycocotools"):
        main(["demo", "--out", str(tmp_path), "--steps", "1"])
    assert not (tmp_path / "metrics.json").exists()
