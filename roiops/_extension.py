"""Loads the compiled extension, whose static initialisers register the torch.ops.roiops.* ops."""

from __future__ import annotations

import importlib

import torch

_REBUILD = "pip install --no-build-isolation --force-reinstall --no-deps ."


def _release(version: str) -> str:
    return version.split("+")[0]


def load() -> None:
    try:
        importlib.import_module("roiops._C")
    except ModuleNotFoundError as err:
        if err.name != "roiops._C":
            raise
        raise ImportError(
            "roiops' compiled extension (roiops._C) is missing: this roiops was imported from a "
            "source tree that has not been built; install it with `pip install .` (or "
            "`pip install -e .` for development)."
        ) from None
    except (ImportError, OSError) as err:
        raise ImportError(
            f"roiops' compiled extension failed to load with torch {torch.__version__} ({err}); it "
            f"was most likely built against another torch: rebuild it with `{_REBUILD}`."
        ) from err
    built_with = build_info()["torch"]
    if _release(built_with) != _release(torch.__version__):
        raise ImportError(
            f"roiops was built against torch {built_with} but torch {torch.__version__} is "
            f"installed; rebuild it with `{_REBUILD}`."
        )


def build_info() -> dict:
    """How the loaded extension was built: {"torch": version, "cuda": bool}."""
    fields = dict(item.split("=", 1) for item in torch.ops.roiops._build_info().split(";"))
    return {"torch": fields["torch"], "cuda": fields["cuda"] == "1"}
