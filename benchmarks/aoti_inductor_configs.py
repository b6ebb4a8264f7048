"""The AOTInductor package of `roiops export` (R50-FPN StaticMaskRCNN, random weights, one
800x1067 image, CPU) compiled with inductor's defaults, with `freezing`, and with `freezing` +
`max_autotune`, in float32 and bfloat16: medians of rounds interleaved with torchvision's eager
model. (2026-12-07, 2-core EPYC: neither option gains; `roiops export` keeps the defaults.)

    python benchmarks/aoti_inductor_configs.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from roiops.bench.model_cases import deployed_model

CONFIGS = {
    "defaults": {},
    "freezing": {"freezing": True},
    "freezing + max_autotune": {"freezing": True, "max_autotune": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    compile_package = torch._inductor.aoti_compile_and_package
    variants, torchvision = {}, None
    for precision in ["float32", "bfloat16"]:
        for name, extra in CONFIGS.items():

            def with_configs(program, package_path=None, inductor_configs=None, extra=extra):
                configs = {**(inductor_configs or {}), **extra}
                return compile_package(program, package_path=package_path, inductor_configs=configs)

            torch._inductor.aoti_compile_and_package = with_configs  # export's writer calls it
            try:
                start = time.perf_counter()
                prepared = deployed_model(
                    torch.device("cpu"), torch.float32, count=1, format="aoti", precision=precision
                )
            finally:
                torch._inductor.aoti_compile_and_package = compile_package
            print(f"{precision}, {name}: {time.perf_counter() - start:.0f} s to build", flush=True)
            variants[f"{precision}, {name}"] = prepared.ours
            torchvision = prepared.theirs
    variants["torchvision eager, float32"] = torchvision
    names = list(variants)
    for run in variants.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["torchvision eager, float32"])
    print("| AOTInductor package | ms | vs torchvision eager float32 |\n|---|---|---|")
    for name, measured in times.items():
        median = statistics.median(measured)
        print(f"| {name} | {median * 1e3:.0f} | {base / median:.2f}x |")


if __name__ == "__main__":
    main()
