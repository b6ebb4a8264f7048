"""Large CPU outputs are advised into transparent huge pages (csrc/ops/output_memory.h): a fresh
341 MB mask canvas faults in 2 MB at a time instead of 4 KB (100 -> 14 ms on the project's CPU).

What the kernel does with the advice depends on the machine (THP mode, free memory), so the test
checks the advice itself: the mapping that holds the output carries Linux's "hg" flag
(VM_HUGEPAGE, set by madvise(MADV_HUGEPAGE) whatever the THP mode) in /proc/self/smaps."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

import roiops

THP = Path("/sys/kernel/mm/transparent_hugepage")
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not THP.is_dir(),
    reason="transparent huge pages are a Linux kernel feature, absent here",
)

HUGE_PAGE = 2 << 20


def mapping_flags(address: int) -> set[str] | None:
    """VmFlags of the mapping of this process that contains `address` (None: no mapping does)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):  # a mapping's header: start-end perms ...
            start, end = (int(part, 16) for part in head.split("-"))
            inside = start <= address < end
        elif inside and head == "VmFlags:":
            return set(line.split()[1:])
    return None


def advised(tensor: torch.Tensor) -> bool:
    """Whether the 2 MB block in the middle of tensor's memory is advised into huge pages."""
    return "hg" in (mapping_flags(middle_block(tensor)) or set())


def middle_block(tensor: torch.Tensor) -> int:
    return (tensor.data_ptr() + tensor.nbytes // 2) // HUGE_PAGE * HUGE_PAGE


def pasted_canvas() -> torch.Tensor:
    masks = torch.rand(12, 1, 28, 28)
    boxes = torch.tensor([[10.0, 20.0, 300.0, 400.0]]).repeat(12, 1)
    return roiops.paste_masks_in_image(masks, boxes, (1067, 800))  # 41 MB


def pooled_batch() -> torch.Tensor:
    x = torch.randn(1, 64, 50, 68)
    rois = torch.tensor([[0.0, 4.0, 8.0, 120.0, 150.0]]).repeat(300, 1)
    return roiops.roi_align(x, rois, 14, 0.25, 2)  # 15 MB


def map_gradient() -> torch.Tensor:
    x = torch.randn(1, 64, 200, 272, requires_grad=True)  # 14 MB
    rois = torch.tensor([[0.0, 4.0, 8.0, 120.0, 150.0]]).repeat(30, 1)
    roiops.roi_align(x, rois, 7, 0.25, 2).sum().backward()
    return x.grad


@pytest.mark.parametrize("make", [pasted_canvas, pooled_batch, map_gradient])
def test_large_cpu_outputs_are_advised_into_huge_pages(make):
    assert advised(make())


def test_the_advice_ends_with_the_tensor():
    """The buffer is a mapping of its own, unmapped when the tensor is freed: no advice is left on
    memory that later holds other allocations, and no mapping leaks."""
    canvas = pasted_canvas()
    block = middle_block(canvas)
    assert "hg" in mapping_flags(block)
    del canvas
    assert "hg" not in (mapping_flags(block) or set())


def test_the_flag_is_what_the_test_reads():
    """A plain torch allocation of the same size carries no advice (PyTorch advises only under
    THP_MEM_ALLOC_ENABLE=1): the flag the test reads is roiops' doing."""
    if os.environ.get("THP_MEM_ALLOC_ENABLE") == "1":
        pytest.skip("THP_MEM_ALLOC_ENABLE=1 makes torch advise every large allocation")
    assert not advised(torch.empty(12, 1, 1067, 800))
