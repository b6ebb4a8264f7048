"""The demo trained data-parallel: `python -m roiops demo --nproc N` and `torchrun ... -m roiops
demo`. The split of every batch across the processes, a whole two-process run by each launcher
(rank 0 alone reports and writes), the processes' agreement on the time budget when their clocks
disagree, and bad use refused before any work. The gradient arithmetic of DistributedDataParallel
over roiops' models is tests/test_distributed.py's; the two-process demo's metrics against one
process's are a recorded measurement (README)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from roiops.__main__ import main
from roiops.demo import train
from roiops.demo.command import BATCH_SIZE
from roiops.demo.distributed import Process

TORCHRUN_ENVIRONMENT = {
    "RANK": "0",
    "LOCAL_RANK": "0",
    "WORLD_SIZE": "2",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29500",
}


@pytest.mark.parametrize("world_size", [2, 4])
def test_the_processes_together_see_the_batches_of_one_process(world_size):
    one = list(train.batches(seed=3, steps=2, batch_size=8, process=Process()))
    shares = [
        list(train.batches(seed=3, steps=2, batch_size=8, process=Process(rank, world_size)))
        for rank in range(world_size)
    ]
    for step, (images, targets) in enumerate(one):
        assert len(images) == 8
        for k in range(8):
            # image k of the batch is rank (k mod N)'s image k // N of that step
            share_images, share_targets = shares[k % world_size][step]
            assert len(share_images) == 8 // world_size
            assert torch.equal(share_images[k // world_size], images[k])
            assert torch.equal(share_targets[k // world_size]["boxes"], targets[k]["boxes"])
    assert all(len(share) == 2 for share in shares)


def _demo_command(launcher: str, out) -> list[str]:
    demo = ["demo", "--steps", "2", "--seed", "1", "--out", str(out)]
    if launcher == "--nproc":
        return [sys.executable, "-P", "-m", "roiops", *demo, "--nproc", "2"]
    # --standalone: a rendezvous on this machine on a free port
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    return [*torchrun, "2", "-m", "roiops", *demo]


@pytest.mark.parametrize("launcher", ["--nproc", "torchrun"])
def test_two_processes_train_and_rank_0_alone_reports(launcher, tmp_path):
    """~15 s each: two interpreters train two steps of 4 images each, rank 0 evaluates."""
    out = tmp_path / "demo"
    done = subprocess.run(
        _demo_command(launcher, out), cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["steps"] == 2 and metrics["device"] == "cpu"
    assert (out / "detections.png").exists()
    err = done.stderr
    assert "2 processes (DistributedDataParallel, gloo)" in err
    # one progress bar and one report: rank 1 trains silently and writes nothing
    assert err.count("] 2/2 loss") == 1 and err.count("held-out images: box AP") == 1
    written = sorted(p.name for p in out.iterdir())
    assert written == ["detections.png", "images", "metrics.json", "model.pt"]


AGREEMENT = """
import functools, itertools, json, io, sys, time, torch
from roiops.demo import distributed, model, train

def work(folder, process):
    # Rank 1's clock runs four times as fast as rank 0's: alone, rank 0 would spend the 90
    # "seconds" in 46 steps and rank 1 in 23 -- and rank 0 would wait for rank 1 in DDP's
    # all-reduce for ever. Together they decide from their mean time: 31 steps.
    ticks = itertools.count(0, 1 + 3 * process.rank)
    time.perf_counter = lambda: float(next(ticks))
    torch.manual_seed(0)
    history, _, _ = train.train(
        model.small_maskrcnn(), 100, 2, seed=0, stream=io.StringIO(), seconds=90, process=process
    )
    report = {"steps": len(history), "last": history[-1]}
    with open(f"{folder}/rank{process.rank}.json", "w") as file:
        json.dump(report, file)

if __name__ == "__main__":
    distributed.run(functools.partial(work, sys.argv[1]), 2, "cpu")
"""


def test_the_processes_agree_on_the_time_budget(tmp_path):
    """Rank 0 reads its clock twice a step (training and progress bar), rank 1 once, 4 units on:
    after n steps rank 0 has spent 2n - 1 units, rank 1 4n; their mean, 3n - 0.5, reaches the
    budget of 90 units at n = 31, where both stop (alone: 46 and 23)."""
    script = tmp_path / "agreement.py"
    script.write_text(textwrap.dedent(AGREEMENT))
    done = subprocess.run(
        [sys.executable, "-P", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["steps"] == rank1["steps"] == 31
    assert rank0["last"] == rank1["last"]  # the loss of the step, averaged over both


FAILING_RANK = """
import io
from roiops.demo import distributed, model, train

def work(process):
    if process.rank == 1:
        raise RuntimeError("rank 1 cannot go on")
    train.train(model.small_maskrcnn(), 3, 2, seed=0, stream=io.StringIO(), process=process)

if __name__ == "__main__":
    distributed.run(work, 2, "cpu")
"""


def test_a_failing_process_ends_the_run_with_its_error(tmp_path):
    """Rank 0 waits in DDP's first all-reduce for a rank that died: the launcher must end it and
    report rank 1's error, within seconds, not after gloo's 30-minute timeout."""
    script = tmp_path / "failing.py"
    script.write_text(textwrap.dedent(FAILING_RANK))
    done = subprocess.run(
        [sys.executable, "-P", str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "RuntimeError: rank 1 cannot go on" in done.stderr


@pytest.mark.parametrize(
    "args, environment, message",
    [
        (
            ["--nproc", "3"],
            {},
            "--nproc 3: the demo splits each batch of 8 images evenly across "
            "its processes, so their number must divide 8 (1, 2, 4, 8)",
        ),
        (["--nproc", "0"], {}, "--nproc must be >= 1, got 0"),
        (["--device", "tpu"], {}, "argument --device: invalid choice: 'tpu'"),
        (
            ["--nproc", "2"],
            TORCHRUN_ENVIRONMENT,
            "--nproc 2: this process is one of those "
            "torchrun started (WORLD_SIZE=2), and each would start 2 more; leave --nproc out",
        ),
        (
            [],
            {"WORLD_SIZE": "2"},
            "WORLD_SIZE is set but RANK, LOCAL_RANK, MASTER_ADDR, "
            "MASTER_PORT not: start the demo's processes with torchrun",
        ),
        (
            [],
            dict(TORCHRUN_ENVIRONMENT, WORLD_SIZE="3"),
            "torchrun's WORLD_SIZE 3: the demo splits each batch of 8 images evenly",
        ),
    ],
)
def test_bad_use_is_refused_before_any_work(
    args, environment, message, tmp_path, monkeypatch, capsys
):
    for name in TORCHRUN_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(tmp_path), "--steps", "1", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()
    assert BATCH_SIZE == 8  # the messages above spell it


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="checks the refusal without 2 GPUs")
def test_more_cuda_processes_than_gpus_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "--device", "cuda", "--nproc", "2"])
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert (
        f"--device cuda: 2 process(es) on this machine need one GPU each, and this machine has "
        f"{gpus}" in capsys.readouterr().err
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_demo_trains_on_a_gpu(tmp_path):
    """One process on cuda:0 (nccl needs a GPU per process: a 2-GPU machine runs --nproc 2)."""
    nproc = "2" if torch.cuda.device_count() >= 2 else "1"
    out = tmp_path / "demo"
    command = [sys.executable, "-P", "-m", "roiops", "demo", "--steps", "3", "--device", "cuda"]
    done = subprocess.run(
        command + ["--nproc", nproc, "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"] == "cuda" and metrics["processes"] == int(nproc)
    assert metrics["steps"] == 3
