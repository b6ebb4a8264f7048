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
from inputs import run_fresh_python

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
    masks = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(0))
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


def cached_bytes() -> int:
    return torch.ops.roiops._cached_output_bytes()


def test_a_freed_output_is_kept_and_given_to_the_next_one():
    """A freed output's mapping is kept and reused by the next output of its size (no page faults
    in a loop); the op still writes every element of it: a reused canvas full of NaN gives the
    first call's bits."""
    roiops.release_cached_memory()
    first = pasted_canvas()
    expected, address = first.clone(), first.data_ptr()
    first.fill_(float("nan"))
    del first
    assert cached_bytes() >= expected.nbytes
    again = pasted_canvas()
    assert again.data_ptr() == address and advised(again)
    assert torch.equal(again, expected)
    assert cached_bytes() == 0


def test_release_cached_memory_unmaps_what_is_kept():
    roiops.release_cached_memory()
    canvas = pasted_canvas()
    block, nbytes = middle_block(canvas), canvas.nbytes
    del canvas
    assert "hg" in mapping_flags(block)  # kept
    assert roiops.release_cached_memory() >= nbytes
    assert cached_bytes() == 0
    assert "hg" not in (mapping_flags(block) or set())  # unmapped


CACHE_LIMIT = """
import torch, roiops
masks = torch.rand(12, 1, 28, 28)
boxes = torch.tensor([[10.0, 20.0, 300.0, 400.0]]).repeat(12, 1)
canvas = roiops.paste_masks_in_image(masks, boxes, (1067, 800))  # 41 MB
address = canvas.data_ptr() + canvas.nbytes // 2
del canvas
maps = open("/proc/self/maps").read().splitlines()
mapped = any(int(a, 16) <= address < int(b, 16) for a, b in (m.split()[0].split("-") for m in maps))
print("kept", torch.ops.roiops._cached_output_bytes(), mapped)
"""


@pytest.mark.parametrize(("limit", "kept"), [("8", "kept 0 False"), ("64", "kept 41943040 True")])
def test_the_kept_memory_has_a_limit(limit, kept):
    """ROIOPS_CPU_CACHE_MB bounds what is kept: a freed output larger than it is unmapped."""
    result = run_fresh_python(CACHE_LIMIT, timeout=120, env={"ROIOPS_CPU_CACHE_MB": limit})
    assert result.returncode == 0, result.stderr[-2000:]
    assert kept in result.stdout, result.stdout


def test_a_bad_limit_is_a_clear_error():
    result = run_fresh_python(CACHE_LIMIT, timeout=120, env={"ROIOPS_CPU_CACHE_MB": "lots"})
    assert result.returncode != 0
    assert "ROIOPS_CPU_CACHE_MB: expected a number of megabytes" in result.stderr


def test_the_flag_is_what_the_test_reads():
    """A plain torch allocation of the same size carries no advice (PyTorch advises only under
    THP_MEM_ALLOC_ENABLE=1): the flag the test reads is roiops' doing."""
    if os.environ.get("THP_MEM_ALLOC_ENABLE") == "1":
        pytest.skip("THP_MEM_ALLOC_ENABLE=1 makes torch advise every large allocation")
    assert not advised(torch.empty(12, 1, 1067, 800))
