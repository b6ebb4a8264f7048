"""Where the time goes when OpenVINO runs a roiops ONNX graph: its per-layer counters, summed by
the model's stage (the line of StaticMaskRCNN.forward each ONNX node was traced from) and by
layer kind (the network's convolutions and fully connected layers, or the rest: roiops' RoIAlign,
NMS, mask pasting and the detection glue around them).

    python benchmarks/openvino_layers.py model.onnx [--precision bf16] [--batch 1] [--runs 3]

model.onnx: `python -m roiops export CHECKPOINT --format onnx ...` (roiops' dynamo export keeps
each node's stack trace, which names the stage). The IR (.xml) made from it has the same layer
names, so its profile is this one.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import torch

# StaticMaskRCNN.forward's steps (roiops/models/static.py), by the text of their line.
STAGES = [
    ("transform.batch_padded", "preprocess"),
    ("model.backbone", "backbone + FPN"),
    ("rpn.forward_padded", "RPN"),
    ("heads.detect_padded", "box branch"),
    ("heads.masks_padded", "mask branch"),
    ("postprocess_padded", "postprocess: boxes, mask paste"),
]
NETWORK_LAYERS = {"Convolution", "ConvolutionBackpropData", "FullyConnected", "GroupConvolution"}


def stage_of_nodes(onnx_path: str) -> dict[str, tuple[str, str]]:
    """ONNX node name -> (stage, the torch op it came from)."""
    import onnx

    model = onnx.load(onnx_path, load_external_data=False)
    stages = {}
    for node in model.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        trace = meta.get("pkg.torch.onnx.stack_trace", "")
        stage = next((name for key, name in STAGES if key in trace), "other")
        stages[node.name] = (stage, meta.get("namespace", "").split(": ")[-1])
    return stages


def main() -> None:
    from roiops.deploy.formats import RunOptions, open_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a roiops ONNX file")
    parser.add_argument("--precision", default="bf16", choices=["f32", "bf16", "default"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    options = RunOptions(runtime="openvino", precision=args.precision, profile=True)
    opened = open_model(args.model, options)
    info = opened.info
    images = torch.rand(args.batch, 3, info.image_height, info.image_width)
    opened.run(images)  # the first run allocates
    walls, totals = [], collections.Counter()
    for _ in range(args.runs):
        start = time.perf_counter()
        opened.run(images)
        walls.append(time.perf_counter() - start)
        for name, kind, ms in opened.layer_times():
            totals[name, kind] += ms / args.runs
    stages = stage_of_nodes(args.model)
    by_stage, by_op = collections.Counter(), collections.Counter()
    for (name, kind), ms in totals.items():
        # OpenVINO's own layers (reorders, precision conversions) carry names of their own
        stage, origin = stages.get(name, ("OpenVINO's conversions and reorders", ""))
        layer = "network layers" if kind in NETWORK_LAYERS else "the rest"
        by_stage[stage, layer] += ms
        by_op[stage, origin or name, kind] += ms
    summed = sum(totals.values())
    print(
        f"{args.model}: {opened.runs_as}, batch {args.batch}, median wall "
        f"{statistics.median(walls) * 1e3:.0f} ms; per-layer counters sum to {summed:.0f} ms "
        "(OpenVINO runs independent layers side by side, so they sum to more than the wall time)"
    )
    print("\n| stage | layers | ms | share |\n|---|---|---|---|")
    for (stage, layer), ms in by_stage.most_common():
        print(f"| {stage} | {layer} | {ms:.1f} | {ms / summed:.0%} |")
    print("\n| stage | from | OpenVINO layer | ms |\n|---|---|---|---|")
    for (stage, origin, kind), ms in by_op.most_common(20):
        print(f"| {stage} | {origin} | {kind} | {ms:.1f} |")


if __name__ == "__main__":
    main()
