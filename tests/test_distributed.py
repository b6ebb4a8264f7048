"""roiops' Mask R-CNN trained data-parallel: torch.distributed's DistributedDataParallel over two
processes (gloo, CPU, a file rendezvous), without find_unused_parameters.

Each rank trains on its own image; the samplers' random numbers are seeded per (step, rank), so a
single process can redo each rank's step. After the first step the all-reduced gradient of every
parameter must be the mean of the two single-image gradients, and after three steps (rank 1's second
image has no object at all: every parameter must still get a gradient, or DDP stops) the two ranks
must hold the same parameters, bit for bit. Takes ~40 s on two cores."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from inputs import detection_batch
from torch.testing import assert_close
from torchvision.models.detection import maskrcnn_resnet50_fpn

import roiops
import roiops.models

OPTIONS = dict(num_classes=3, min_size=128, max_size=160)
SIZES = ((128, 160), (120, 150))
STEPS = 3

WORKER = """
import sys, torch, torch.distributed as dist
import roiops.models

rank, folder = int(sys.argv[1]), sys.argv[2]
dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
data = torch.load(f"{folder}/data.pt")
model = roiops.models.maskrcnn_resnet50_fpn(**data["options"])
model.load_state_dict(data["state"])
model.train()
ddp = torch.nn.parallel.DistributedDataParallel(model)
optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.002)
for step in range(data["steps"]):
    torch.manual_seed(1000 * step + rank)  # the samplers' random numbers of this (step, rank)
    images, targets = data["batches"][step]
    losses = ddp([images[rank]], [targets[rank]])
    optimizer.zero_grad()
    sum(losses.values()).backward()
    if step == 0:
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        torch.save(grads, f"{folder}/grads{rank}.pt")
    optimizer.step()
torch.save(model.state_dict(), f"{folder}/state{rank}.pt")
dist.destroy_process_group()
"""


def batches():
    """Per step, two images with targets; rank 1's image of step 1 has no object."""
    out = []
    for step in range(STEPS):
        images, targets = detection_batch(
            seed=20 + step, with_targets=True, sizes=SIZES, num_classes=3
        )
        if step == 1:
            targets[1] = {
                "boxes": torch.zeros(0, 4),
                "labels": torch.zeros(0, dtype=torch.int64),
                "masks": torch.zeros(0, *SIZES[1], dtype=torch.uint8),
            }
        out.append((images, targets))
    return out


def test_data_parallel_training_is_the_mean_of_single_image_steps(tmp_path):
    torch.manual_seed(0)
    model = roiops.models.maskrcnn_resnet50_fpn(**OPTIONS)
    data = {"options": OPTIONS, "state": model.state_dict(), "steps": STEPS, "batches": batches()}
    torch.save(data, tmp_path / "data.pt")
    env = {**os.environ, "PYTHONPATH": str(Path(roiops.__file__).parent.parent)}
    script = textwrap.dedent(WORKER)
    workers = [
        subprocess.Popen(
            [sys.executable, "-P", "-c", script, str(rank), str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    for rank, (w, output) in enumerate(zip(workers, outputs)):
        assert w.returncode == 0, f"rank {rank} exited {w.returncode}:\n{output[-3000:]}"

    # The first step redone in this process, image by image, with each rank's random numbers.
    images, targets = data["batches"][0]
    single = []
    for rank in range(2):
        model.load_state_dict(data["state"])
        model.train().zero_grad()
        torch.manual_seed(rank)
        sum(model([images[rank]], [targets[rank]]).values()).backward()
        single.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    reduced = [torch.load(tmp_path / f"grads{rank}.pt") for rank in range(2)]
    assert list(reduced[0]) == list(single[0])
    for name in single[0]:
        mean = (single[0][name] + single[1][name]) / 2
        assert_close(reduced[0][name], mean, rtol=1e-6, atol=1e-9, msg=name)
        assert torch.equal(reduced[0][name], reduced[1][name]), name

    # The parameters; not the buffers: without pretrained weights the backbone's BatchNorm is a
    # plain (trainable) one, as torchvision's, and its running statistics follow each rank's own
    # images between DDP's broadcasts of rank 0's buffers (use SyncBatchNorm to share them).
    states = [torch.load(tmp_path / f"state{rank}.pt") for rank in range(2)]
    names = [n for n, _ in model.named_parameters()]
    assert all(torch.equal(states[0][n], states[1][n]) for n in names)
    assert any(not torch.equal(states[0][n], data["state"][n]) for n in names)  # it trained
    # Rank 0's checkpoint (the wrapped module's state_dict) loads into a one-process model and into
    # torchvision's.
    roiops.models.maskrcnn_resnet50_fpn(**OPTIONS).load_state_dict(states[0], strict=True)
    maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, **OPTIONS).load_state_dict(
        states[0], strict=True
    )
