"""The deployment formats, one record each: its file, what it needs, the dtypes and devices it is
exported for, how it is written from a StaticMaskRCNN and opened again as one callable. `export`,
`predict` and the benchmark know formats only through FORMATS: a new format is one entry here.

    pt2       torch.export's ExportedProgram (.pt2): the eager kernels, bit for bit
    aoti      an AOTInductor package (.aoti.pt2): compiled C++, for Python or examples/cpp
    onnx      ONNX (.onnx), run by ONNX Runtime's CPU provider, or OpenVINO (--runtime openvino)
    openvino  OpenVINO's IR (.xml + .bin), made from the ONNX graph; float32, bfloat16 (its
              inference precision, chosen when the file is opened) or int8 (NNCF's post-training
              quantization, calibrated on the user's images)
"""

from __future__ import annotations

import functools
import importlib.util
import json
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ArgumentValueError
from .model_files import ModelInfo, OpenedModel, info_of

DTYPES = ("float32", "bfloat16", "int8")
RUNTIMES = ("onnxruntime", "openvino")  # what runs an .onnx file
PRECISIONS = ("f32", "bf16", "default")  # OpenVINO's inference precision ("default": its own)


@dataclass
class Exporting:
    """What every format is written from: the float32 StaticMaskRCNN (what ONNX carries: its
    runtimes choose their precision when they run it), the model torch.export records (the same,
    or it under autocast for bfloat16), an example batch, the batch range, the facts the file
    carries, and the calibration images of an int8 export. The ExportedProgram and the ONNX graph
    are made once, when a format first asks for them; `timings` says how long each took."""

    static: torch.nn.Module
    traced: torch.nn.Module
    example: torch.Tensor
    batch: tuple[int, int]
    info: ModelInfo
    calibration: list[torch.Tensor] = field(default_factory=list)  # [1, 3, H, W] each
    timings: dict[str, float] = field(default_factory=dict)

    def dynamic_shapes(self):
        low, high = self.batch
        if low == high:
            return None
        return ({0: torch.export.Dim("batch", min=low, max=high)},)

    @functools.cached_property
    def program(self) -> torch.export.ExportedProgram:
        start = time.perf_counter()
        with torch.no_grad():
            program = torch.export.export(
                self.traced, (self.example,), dynamic_shapes=self.dynamic_shapes()
            )
        self.timings["torch.export"] = time.perf_counter() - start
        return program

    @functools.cached_property
    def onnx_model(self):
        """The onnx.ModelProto, its inputs and outputs named, the facts in its metadata."""
        start = time.perf_counter()
        with torch.no_grad():
            program = torch.onnx.export(
                self.static,
                (self.example,),
                dynamic_shapes=self.dynamic_shapes(),
                input_names=["images"],
                output_names=self.info.outputs,
                verbose=False,
            )
        model = program.model_proto
        for key, value in self.info.to_strings().items():
            model.metadata_props.add(key=key, value=value)
        self.timings["torch.onnx.export"] = time.perf_counter() - start
        return model


@dataclass(frozen=True)
class RunOptions:
    """How to open a file: where it runs and, for OpenVINO, at which precision."""

    device: str | None = None  # default: where it was exported for (a checkpoint: the CPU)
    image_size: tuple[int, int] | None = None  # a checkpoint's input size
    runtime: str | None = None  # an .onnx file's: onnxruntime (default) or openvino
    precision: str | None = None  # OpenVINO's: f32, bf16 or default; by default the file's dtype
    profile: bool = False  # OpenVINO: time each layer (OpenedModel.layer_times)


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    summary: str
    write: Callable[[Exporting, Path], None]
    open: Callable[[Path, RunOptions], OpenedModel]
    recognizes: Callable[[Path], bool]
    needs: tuple[str, ...] = ()  # modules to write and verify it (the extra installs them)
    extra: str = ""
    dtypes: tuple[str, ...] = ("float32",)
    exact: bool = False  # runs the eager kernels: verified bit for bit

    def path(self, folder: Path, name: str) -> Path:
        return folder / f"{name}{self.suffix}"

    def files(self, path: Path) -> list[Path]:
        """Every file it consists of (OpenVINO's weights lie beside its graph)."""
        return [path, path.with_suffix(".bin")] if self.name == "openvino" else [path]

    def missing(self) -> list[str]:
        return _absent(*self.needs)


def refuse_missing(what: str, modules: list[str], extra: str) -> None:
    if modules:
        raise ArgumentValueError(
            f"{what} needs {' and '.join(modules)}: pip install 'roiops[{extra}]'"
        )


# --- pt2: torch.export ----------------------------------------------------------------------


def _write_pt2(exporting: Exporting, path: Path) -> None:
    extra = {"roiops.json": json.dumps(exporting.info.to_strings())}
    torch.export.save(exporting.program, str(path), extra_files=extra)


def _open_pt2(path: Path, options: RunOptions) -> OpenedModel:
    extra = {"roiops.json": ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as err:
        raise ArgumentValueError(
            f"{path} cannot be loaded by torch.export.load ({type(err).__name__}: {err}); a roiops "
            "file needs roiops imported first, and the torch it was exported with or newer"
        ) from None
    info = ModelInfo.from_strings(json.loads(extra["roiops.json"] or "{}"), path)
    device = _placed(path, info, options, movable=True)
    return OpenedModel(info, _no_grad(program.module().to(device)), "pt2", device,
                       f"PyTorch (ExportedProgram), {info.dtype}")  # fmt: skip


def _zip_names(path: Path) -> list[str]:
    if path.suffix != ".pt2" or not zipfile.is_zipfile(path):
        return []
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def _is_pt2(path: Path) -> bool:
    return any(n.endswith(".json") and "/models/" in n for n in _zip_names(path))


# --- aoti: an AOTInductor package -----------------------------------------------------------


def _write_aoti(exporting: Exporting, path: Path) -> None:
    torch._inductor.aoti_compile_and_package(  # documented AOTInductor API (roiops/_torch_api.py)
        exporting.program,
        package_path=str(path),
        inductor_configs={"aot_inductor.metadata": exporting.info.to_strings()},
    )


def _open_aoti(path: Path, options: RunOptions) -> OpenedModel:
    package = torch._inductor.aoti_load_package(str(path))
    info = ModelInfo.from_strings(package.get_metadata(), path)
    device = _placed(path, info, options, movable=False)
    return OpenedModel(info, lambda images: package(images), "aoti", device,
                       f"AOTInductor, {info.dtype}")  # fmt: skip


def _is_aoti(path: Path) -> bool:
    return any("/aotinductor/" in n for n in _zip_names(path))


# --- onnx ------------------------------------------------------------------------------------


def _write_onnx(exporting: Exporting, path: Path) -> None:
    import onnx

    onnx.save(exporting.onnx_model, str(path))


def _open_onnx(path: Path, options: RunOptions) -> OpenedModel:
    runtime = options.runtime or "onnxruntime"
    if runtime == "openvino":
        return _open_openvino(path, options)
    refuse_missing(f"{path} (ONNX Runtime)", _absent("onnx", "onnxruntime"), "onnx")
    import onnx
    import onnxruntime

    proto = onnx.load(str(path), load_external_data=False)
    info = ModelInfo.from_strings({e.key: e.value for e in proto.metadata_props}, path)
    _placed(path, info, options, movable=False, runs_on="cpu")
    settings = onnxruntime.SessionOptions()
    settings.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), settings, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name

    def run(images: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = session.run(None, {input_name: images.cpu().numpy()})
        return {name: torch.from_numpy(out) for name, out in zip(names, outputs)}

    return OpenedModel(info, run, "onnx", "cpu", "ONNX Runtime, float32")


# --- openvino: OpenVINO's IR, made from the ONNX graph ---------------------------------------


def openvino_from_onnx(onnx_model):
    """An ONNX graph of roiops (a path, or its bytes) as an OpenVINO model, as roiops runs every
    ONNX graph there. OpenVINO's ONNX reader keeps the graph's names and metadata. One change:
    OpenVINO's NonMaxSuppression suppresses a box whose IoU with a kept one is >= the threshold,
    where ONNX's (and roiops') suppresses at > threshold. roiops' lowering writes the largest
    float32 not above the threshold t, right for >; the next float32 up is the smallest float32
    above t, right for >=: with it OpenVINO suppresses exactly the boxes roiops does, IoUs exactly
    at t included (tests/test_onnx.py)."""
    import numpy as np
    import openvino

    model = openvino.Core().read_model(onnx_model)
    for node in model.get_ordered_ops():
        if node.get_type_name() != "NonMaxSuppression":
            continue
        threshold = node.input(3).get_source_output().get_node()
        if threshold.get_type_name() != "Constant":
            raise ArgumentValueError(
                f"{node.get_friendly_name()}: an iou_threshold that is not a constant; roiops' "
                "ONNX graphs have constant thresholds"
            )
        above = np.nextafter(threshold.get_data().astype(np.float32), np.float32(np.inf))
        node.input(3).replace_source_output(openvino.opset13.constant(above).output(0))
    return model


def _write_openvino(exporting: Exporting, path: Path) -> None:
    """ONNX -> OpenVINO (openvino_from_onnx), quantized by NNCF for int8, saved with float32
    weights (OpenVINO would halve them to float16 by default)."""
    import openvino

    with tempfile.TemporaryDirectory() as folder:
        onnx_path = Path(folder) / "model.onnx"
        _write_onnx(exporting, onnx_path)
        model = openvino_from_onnx(str(onnx_path))
    if exporting.info.dtype == "int8":
        size = exporting.info.batch_min  # the batch every calibration sample must have
        samples = exporting.calibration
        batches = [
            torch.cat(samples[i : i + size]) for i in range(0, len(samples) - size + 1, size)
        ]
        model = _quantize(model, batches)
    for key, value in exporting.info.to_strings().items():
        model.set_rt_info(value, ["roiops", key.removeprefix("roiops.")])
    openvino.save_model(model, str(path), compress_to_fp16=False)


# The layers int8 serves: the convolutions and the fully connected layers, where the time is. NNCF
# would also quantize the inputs of the detection glue it finds quantizable (RoIAlign's and the
# mask paste's gathers and bilinear weights, the pyramid's scatter, the image resize): on the
# demo's model that cost 0.57 of its 0.68 mask AP. Everything else is left in floating point.
QUANTIZED_LAYERS = {"Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul"}


def _quantize(model, calibration: list[torch.Tensor]):
    """int8 weights and activations of QUANTIZED_LAYERS, their ranges measured on the
    calibration batches (NNCF's post-training quantization, its default preset)."""
    import logging

    import nncf

    others = {op.get_type_name() for op in model.get_ordered_ops()} - QUANTIZED_LAYERS
    dataset = nncf.Dataset([image.numpy() for image in calibration])
    log = logging.getLogger("nncf")  # a line for every layer left out: hundreds
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        return nncf.quantize(
            model,
            dataset,
            subset_size=len(calibration),
            ignored_scope=nncf.IgnoredScope(types=sorted(others), validate=False),
        )
    finally:
        log.setLevel(level)


def _openvino_info(model, path: Path) -> ModelInfo:
    """The facts an IR written here carries (its "roiops" section), or those of an ONNX file read
    by OpenVINO (which keeps ONNX's metadata in its "framework" section)."""
    if model.has_rt_info(["roiops"]):
        section = model.get_rt_info(["roiops"]).astype(dict)
        strings = {f"roiops.{k}": v.astype(str) for k, v in section.items()}
    elif model.has_rt_info(["framework"]):
        section = model.get_rt_info(["framework"]).astype(dict)
        strings = {k: v.astype(str) for k, v in section.items() if k.startswith("roiops.")}
    else:
        strings = {}
    return ModelInfo.from_strings(strings, path)


def openvino_precision(info: ModelInfo, asked: str | None) -> str | None:
    """OpenVINO's INFERENCE_PRECISION_HINT for a file: what was asked, else the file's dtype's
    (float32 -> f32, bfloat16 -> bf16); None leaves OpenVINO's default (an int8 file's: the
    layers it keeps in floating point run at OpenVINO's choice, bf16 on a CPU with bf16 units)."""
    if asked == "default":
        return None
    if asked is not None:
        return asked
    return {"float32": "f32", "bfloat16": "bf16"}.get(info.dtype)


def _open_openvino(path: Path, options: RunOptions) -> OpenedModel:
    refuse_missing(f"{path} (OpenVINO)", _absent("openvino"), "openvino")
    import openvino

    core = openvino.Core()
    model = core.read_model(str(path)) if path.suffix == ".xml" else openvino_from_onnx(str(path))
    info = _openvino_info(model, path)
    _placed(path, info, options, movable=False, runs_on="cpu")
    config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERF_COUNT": options.profile}
    hint = openvino_precision(info, options.precision)
    if hint is not None:
        config["INFERENCE_PRECISION_HINT"] = hint
    compiled = core.compile_model(model, "CPU", config)
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # "f32", "bf16"
    request = compiled.create_infer_request()
    names = [output.get_any_name() for output in compiled.outputs]

    def run(images: torch.Tensor) -> dict[str, torch.Tensor]:
        # The request's own output memory, copied once: the next run overwrites it (infer's
        # default would copy it too, and the pasted masks are N x 100 x H x W floats).
        results = request.infer({0: images.cpu().numpy()}, share_outputs=True)
        return {name: torch.from_numpy(results[i].copy()) for i, name in enumerate(names)}

    def layer_times() -> list[tuple[str, str, float]]:
        """The last run's time per layer (OpenVINO's performance counters)."""
        return [
            (layer.node_name, layer.node_type, layer.real_time.total_seconds() * 1e3)
            for layer in request.profiling_info
        ]

    weights = "int8 weights and activations, " if info.dtype == "int8" else ""
    runs_as = f"OpenVINO, {weights}{precision} inference precision"
    return OpenedModel(info, run, format_of(path).name, "cpu", runs_as,
                       layer_times if options.profile else None)  # fmt: skip


# --- shared ----------------------------------------------------------------------------------


def _absent(*modules: str) -> list[str]:
    """The modules that cannot be imported (found without importing them: nncf takes seconds)."""
    absent = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ValueError:  # sys.modules[module] is None: importing it fails
            found = False
        if not found:
            absent.append(module)
    return absent


def _placed(path: Path, info: ModelInfo, options: RunOptions, movable: bool,
            runs_on: str | None = None) -> str:  # fmt: skip
    """The device a file runs on: runs_on if it runs only there, else the one asked for (movable
    files: an ExportedProgram) or the one it was exported for; another is refused."""
    device = runs_on or info.device
    if movable and options.device is not None:
        device = options.device
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ArgumentValueError(f"{path} was exported for {device}: this torch sees no GPU")
    if options.device is not None and torch.device(options.device) != torch.device(device):
        kind = format_of(path).name
        hint = " and --format pt2 or aoti" if runs_on else ""
        raise ArgumentValueError(
            f"{path} runs on {device} only ({kind}), not on {options.device}: run it there, or "
            f"export it again with --device {options.device}{hint}"
        )
    return device


def _no_grad(function):
    def run(images):
        with torch.no_grad():
            return function(images)

    return run


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format(
            "pt2", ".pt2", "torch.export's ExportedProgram: the eager kernels, bit for bit",
            _write_pt2, _open_pt2, _is_pt2, dtypes=("float32", "bfloat16"), exact=True,
        ),
        Format(
            "aoti", ".aoti.pt2", "AOTInductor package: compiled, for Python or C++ (examples/cpp)",
            _write_aoti, _open_aoti, _is_aoti, dtypes=("float32", "bfloat16"),
        ),
        Format(
            "onnx", ".onnx", "ONNX: ONNX Runtime's CPU provider, or OpenVINO (--runtime openvino)",
            _write_onnx, _open_onnx, lambda p: p.suffix == ".onnx",
            needs=("onnx", "onnxscript", "onnxruntime"), extra="onnx",
        ),
        Format(
            "openvino", ".xml", "OpenVINO's IR (.xml + .bin): float32, bfloat16, int8 (NNCF)",
            _write_openvino, _open_openvino, lambda p: p.suffix == ".xml",
            needs=("onnx", "onnxscript", "openvino", "nncf"), extra="openvino",
            dtypes=DTYPES,
        ),
    ]
}  # fmt: skip


def format_of(path: Path) -> Format | None:
    """The format of a file, by its content where the suffix is shared (both .pt2 kinds are
    zips); None for anything else (a checkpoint)."""
    return next((f for f in FORMATS.values() if f.recognizes(path)), None)


def open_model(path, options: RunOptions | None = None) -> OpenedModel:
    """A file of any format, or a detector checkpoint (run eagerly as a StaticMaskRCNN of
    options.image_size, default (min_size, max_size) of its config), opened to run. It runs on
    options.device, by default where it was exported for (a checkpoint: the CPU); an AOTInductor
    package only there, an ONNX or OpenVINO file on the CPU."""
    options = options or RunOptions()
    path = Path(path)
    if not path.is_file():
        raise ArgumentValueError(f"model {str(path)!r} is not a file")
    if options.device is not None and torch.device(options.device).type == "cuda":
        if not torch.cuda.is_available():
            raise ArgumentValueError("--device cuda: this torch sees no GPU")
    kind = format_of(path)
    if kind is None:
        return _open_checkpoint(path, options)
    if options.image_size is not None:
        raise ArgumentValueError(
            f"--image-size is a checkpoint's: {path} ({kind.name}) takes the size it was exported "
            "for, and predict letterboxes other images to it"
        )
    if options.runtime is not None and kind.name != "onnx":
        raise ArgumentValueError(
            f"--runtime chooses what runs an .onnx file; {path} ({kind.name}) has one runtime"
        )
    runs_openvino = kind.name == "openvino" or options.runtime == "openvino"
    if options.precision is not None and not runs_openvino:
        raise ArgumentValueError(
            f"--precision is OpenVINO's (an .xml file, or .onnx with --runtime openvino); {path} "
            f"({kind.name}) runs at the precision it was exported in"
        )
    return kind.open(path, options)


def _open_checkpoint(path: Path, options: RunOptions) -> OpenedModel:
    from ..models import StaticMaskRCNN
    from ..models.checkpoints import load_detector

    for option, value in [("--runtime", options.runtime), ("--precision", options.precision)]:
        if value is not None:
            raise ArgumentValueError(f"{option} is for exported files; {path} is a checkpoint")
    device = options.device or "cpu"
    detector = load_detector(path)
    cfg = detector.model.roi_heads.cfg
    image_size = options.image_size
    if image_size is None:
        min_size = cfg.min_size[-1] if isinstance(cfg.min_size, tuple) else cfg.min_size
        image_size = (min_size, cfg.max_size)
    static = StaticMaskRCNN(detector.model.to(device), cfg.box_detections_per_img).eval()
    info = info_of(static, image_size, (1, 2**31 - 1), detector.architecture, detector.classes,
                   device, "float32")  # fmt: skip
    return OpenedModel(info, _no_grad(static), "checkpoint", device, "PyTorch (eager), float32")
