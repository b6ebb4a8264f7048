"""ONNX export of roiops' ops, with both of torch's exporters, after nothing more than
``import roiops``.

Each op's lowering to standard ONNX ops lives beside its Python API (``roiops/ops/*.py``), written
once in onnxscript's builder style and registered with ``@lowering("op_name")``::

    @lowering("roi_align")
    def _roi_align_onnx(input, rois, spatial_scale, pooled_height, ...):
        return op.RoiAlign(input, ..., output_height=pooled_height, ...)

Its arguments are the op's schema arguments: ONNX values for tensors (a list of them for Tensor[],
None for an absent Tensor?), Python numbers, lists and strings for the rest. This module makes
``op`` build nodes for whichever exporter runs:

- ``torch.onnx.export(..., dynamo=True)`` (the default): torch.export records ``roiops::*`` nodes
  (their fake kernels give the shapes, NMS's data-dependent size included); the exporter translates
  each node with the function registered for it in its registry, as it does torchvision's ops with
  the translations onnxscript ships. roiops adds its lowerings to every registry the exporter
  builds, once the exporter's registry module is imported (see ``install_dynamo_translations``;
  importing onnxscript at ``import roiops`` would cost seconds). ``op`` is onnxscript's opset 18.
- ``dynamo=False`` (the TorchScript exporter): the lowerings are symbolic functions registered with
  ``torch.onnx.register_custom_op_symbolic`` at import; ``op.X(...)`` becomes ``g.op("X", ...)``.
  RoiAlign's coordinate_transformation_mode needs opset 16, the oldest opset accepted.

Sizes given to an op as Python ints (SymInt arguments) are constants in the ONNX graph: an image
size or a mask size is fixed at export; batch sizes and box counts, which flow in tensors, stay
dynamic.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Optional

import torch

from ._imports import after_import
from .errors import ArgumentValueError

MIN_OPSET = 16  # RoiAlign's coordinate_transformation_mode (torchvision's `aligned`)

_LOWERINGS: dict[str, Callable[..., Any]] = {}
_torchscript_graphs: list[Any] = []  # the TorchScript exporter's GraphContext while a lowering runs

# Outputs of the ONNX ops the lowerings use that return more than one (the TorchScript exporter
# must be told; onnxscript knows from the op's schema).
_OUTPUT_COUNTS = {"TopK": 2, "Unique": 4}


def lowering(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers the ONNX lowering of op ``roiops::<name>``: at once as the TorchScript
    exporter's symbolic function, and for the dynamo exporter's next registry."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        _LOWERINGS[name] = function
        # Registered at opset 1, so that an older opset gets roiops' message, not "unsupported".
        torch.onnx.register_custom_op_symbolic(
            f"roiops::{name}", _symbolic_function(name, function), 1
        )
        return function

    return register


class _OnnxOps:
    """``op.Name(*inputs, **attributes)``: an ONNX node (default domain) in the graph being built.

    The same conventions for both exporters (onnxscript's): attributes without type suffixes,
    tensor attributes as torch tensors, Python ints and lists of ints as int64 inputs, None for an
    absent optional input."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if _torchscript_graphs:
            return functools.partial(_torchscript_node, _torchscript_graphs[-1], name)
        return functools.partial(_onnxscript_node, name)


op = _OnnxOps()


def _onnxscript_node(name: str, *inputs: Any, **attributes: Any) -> Any:
    import onnx_ir
    from onnxscript import opset18

    for key, value in attributes.items():
        if isinstance(value, torch.Tensor):
            attributes[key] = onnx_ir.tensor(value)
    return getattr(opset18, name)(*inputs, **attributes)


def _torchscript_node(g: Any, name: str, *inputs: Any, **attributes: Any) -> Any:
    from torch.onnx import symbolic_helper

    suffixed = {}
    for key, value in attributes.items():
        sample = value[0] if isinstance(value, (list, tuple)) and value else value
        if isinstance(value, torch.Tensor):
            suffixed[f"{key}_t"] = value
        elif isinstance(sample, str):
            suffixed[f"{key}_s"] = value
        elif isinstance(sample, float):
            suffixed[f"{key}_f"] = value
        elif isinstance(value, (list, tuple)):
            suffixed[f"{key}_i"] = [int(v) for v in value]
        else:  # int or bool
            suffixed[f"{key}_i"] = int(value)
    values = list(inputs)
    while values and values[-1] is None:  # trailing absent inputs are simply left out
        values.pop()
    for i, value in enumerate(values):
        if value is None:
            values[i] = symbolic_helper._optional_input_placeholder_tensor(g)
        elif isinstance(value, (int, list, tuple)):
            values[i] = g.op("Constant", value_t=torch.tensor(value, dtype=torch.int64))
    return g.op(name, *values, outputs=_OUTPUT_COUNTS.get(name, 1), **suffixed)


def constant(values: Any, dtype: torch.dtype) -> Any:
    """An ONNX constant of ``dtype`` holding ``values``: Python floats round to float32 as the C++
    kernels round their double arguments to float."""
    return op.Constant(value=torch.tensor(values, dtype=dtype))


# ONNX's TensorProto data types (Cast's `to`) of the torch dtypes the lowerings meet.
_ONNX_TYPES = {
    torch.float32: 1,
    torch.uint8: 2,
    torch.int8: 3,
    torch.int16: 5,
    torch.int32: 6,
    torch.int64: 7,
    torch.bool: 9,
    torch.float16: 10,
    torch.float64: 11,
    torch.bfloat16: 16,
}
_TORCH_DTYPES = {code: dtype for dtype, code in _ONNX_TYPES.items()}


def cast(value: Any, dtype: torch.dtype) -> Any:
    return op.Cast(value, to=_ONNX_TYPES[dtype])


def dtype_of(value: Any) -> torch.dtype:
    """The torch dtype of an ONNX value of either exporter."""
    if _torchscript_graphs:
        return value.type().dtype()
    return _TORCH_DTYPES[int(value.dtype)]


# --- TorchScript exporter --------------------------------------------------------------------


def _parse_torchscript_argument(value: Any, argument: Any) -> Any:
    """A symbolic function's argument (a TorchScript value) as the lowering takes it."""
    from torch.onnx import symbolic_helper

    kind = str(argument.type)
    if kind == "Tensor":
        return value
    if kind == "Optional[Tensor]":
        return None if symbolic_helper._is_none(value) else value
    if kind == "List[Tensor]":
        return symbolic_helper._unpack_list(value)
    # (torch's Python schema calls a SymInt "int")
    descriptors = {"float": "f", "int": "i", "bool": "b", "str": "s", "List[float]": "fs"}
    descriptor = descriptors.get(kind, "is")  # List[int]
    return symbolic_helper._get_const(value, descriptor, argument.name)


def _symbolic_function(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    schema = getattr(torch.ops.roiops, name).default._schema

    def symbolic(g: Any, *values: Any) -> Any:
        if g.opset < MIN_OPSET:
            raise ArgumentValueError(
                f"roiops::{name}: ONNX export needs opset_version {MIN_OPSET} or newer (RoiAlign's "
                f"coordinate_transformation_mode), got {g.opset}"
            )
        arguments = [_parse_torchscript_argument(v, a) for v, a in zip(values, schema.arguments)]
        _torchscript_graphs.append(g)
        try:
            return function(*arguments)
        finally:
            _torchscript_graphs.pop()

    return symbolic


# --- dynamo exporter ---------------------------------------------------------------------------


def _translation_function(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The lowering with the op's schema as its Python signature: the exporter binds a node's
    arguments by name and tells ONNX attributes (annotated int, float, ...) from inputs by the
    annotations."""
    from onnxscript import onnx_types

    schema = getattr(torch.ops.roiops, name).default._schema
    annotations = {
        "float": float,
        "int": int,  # SymInt too: torch's Python schema calls both "int"
        "bool": bool,
        "str": str,
        "List[float]": Sequence[float],
        "List[int]": Sequence[int],
        "List[Tensor]": Sequence[onnx_types.TensorType],
    }
    parameters = []
    for argument in schema.arguments:
        kind = str(argument.type)
        default = inspect.Parameter.empty
        if argument.has_default_value():
            default = argument.default_value
        annotation = annotations.get(kind, inspect.Parameter.empty)
        if kind == "Optional[Tensor]":
            annotation = Optional[onnx_types.TensorType]  # noqa: UP045 (a typing object is needed)
        parameters.append(
            inspect.Parameter(
                argument.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=default,
                annotation=annotation,
            )
        )
    signature = inspect.Signature(parameters)
    integers = [a.name for a in schema.arguments if str(a.type) in ("int", "List[int]")]

    def translate(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        for integer in integers:  # a SymInt of a dynamic dimension arrives as an ONNX value
            value = bound.arguments[integer]
            if not all(isinstance(v, int) for v in (value if isinstance(value, list) else [value])):
                raise ArgumentValueError(
                    f"roiops::{name}: {integer} changes with the inputs (a dynamic shape), but "
                    "roiops' ONNX graph takes it as a constant: export with that dimension static"
                )
        return function(*bound.args)

    translate.__name__ = f"roiops_{name}"
    translate.__qualname__ = translate.__name__
    translate.__signature__ = signature
    translate.__annotations__ = {
        p.name: p.annotation for p in parameters if p.annotation is not inspect.Parameter.empty
    }
    return translate


def onnx_translations() -> dict[Any, Callable[..., Any]]:
    """roiops' ops and their ONNX translations, as ``torch.onnx.export(...,
    custom_translation_table=roiops.onnx_translations())`` takes them.

    ``import roiops`` already adds them to the dynamo exporter's registry; this is for a torch
    whose exporter roiops cannot reach that way (export then fails at roiops' ops)."""
    return {
        getattr(torch.ops.roiops, name).default: _translation_function(name, function)
        for name, function in _LOWERINGS.items()
    }


# The private torch API this relies on (roiops/_private_torch.py lists it, and its test resolves it
# on every torch CI runs): the module the dynamo exporter builds its registries in, and the
# classmethod that builds one.
_DYNAMO_REGISTRATION = "torch.onnx._internal.exporter._registration"
_MOVED = (
    "roiops cannot add its ONNX translations to this torch's dynamo exporter ({what}): "
    "torch.onnx.export(dynamo=True) will fail at roiops' ops unless given "
    "custom_translation_table=roiops.onnx_translations()"
)


def _add_translations(registration: Any) -> None:
    """Wraps ONNXRegistry.from_torchlib, with which torch.onnx.export(dynamo=True) builds each
    export's registry, to register roiops' translations in it (as a custom_translation_table
    would; a user's own table, registered after, takes precedence). Where a torch has moved it,
    a RuntimeWarning says so at once and names the public fallback."""
    import warnings

    registry_class = getattr(registration, "ONNXRegistry", None)
    build = getattr(getattr(registry_class, "from_torchlib", None), "__func__", None)
    if build is None:
        what = f"{_DYNAMO_REGISTRATION}.ONNXRegistry.from_torchlib is gone"
        warnings.warn(_MOVED.format(what=what), RuntimeWarning, stacklevel=2)
        return
    if getattr(build, "_roiops", False):
        return

    def from_torchlib(cls, *args, **kwargs):
        registry = build(cls, *args, **kwargs)
        for target, translation in onnx_translations().items():
            registry.register_op(target, translation)
        return registry

    from_torchlib._roiops = True
    registry_class.from_torchlib = classmethod(from_torchlib)


def install_dynamo_translations() -> None:
    """Called once by ``import roiops``: the translations go in when torch loads its exporter's
    registry module (importing it here would cost seconds)."""
    after_import(_DYNAMO_REGISTRATION, _add_translations)
