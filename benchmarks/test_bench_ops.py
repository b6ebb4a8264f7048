"""pytest-benchmark timings of roiops and torchvision on the cases of roiops/bench/cases.py.

    pytest benchmarks/ --benchmark-group-by=group          # CPU, and CUDA when present
Results are grouped per case so each group shows roiops beside torchvision; the CLI prints the
ratio table (`python -m roiops bench`) from the same cases.
"""

from __future__ import annotations

import pytest
import torch

from roiops.bench.cases import CASES

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("impl", ["roiops", "torchvision"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_benchmark(benchmark, case, device, impl):
    if device not in case.devices:
        pytest.skip(f"{case.name} is measured on {', '.join(case.devices)} only")
    prepared = case.prepare(torch.device(device), torch.float32)
    fn = prepared.ours if impl == "roiops" else prepared.theirs

    def call():
        fn()
        if device == "cuda":
            torch.cuda.synchronize()

    benchmark.group = f"{case.name} [{device}]"
    benchmark.extra_info["bytes_moved"] = prepared.bytes_moved
    benchmark.pedantic(call, rounds=3 if device == "cpu" else 50, warmup_rounds=1)
