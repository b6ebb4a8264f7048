"""Acting when another package's module is first imported, without importing it ourselves (each of
these would cost seconds at `import roiops`, for users who never touch them)."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from typing import Any


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs the callbacks of module `name` right after it is first imported."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.callbacks: list[Callable[[Any], None]] = []

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # the real finders find the module
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            for callback in self.callbacks:
                callback(module)

        spec.loader.exec_module = exec_module
        return spec


def after_import(name: str, callback: Callable[[Any], None]) -> None:
    """callback(module) once module `name` is imported: now if it already is."""
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
        return
    for finder in sys.meta_path:
        if isinstance(finder, _AfterImport) and finder.name == name:
            finder.callbacks.append(callback)
            return
    finder = _AfterImport(name)
    finder.callbacks.append(callback)
    sys.meta_path.insert(0, finder)


def subclass_when_imported(cls: type, module: str, base: str) -> None:
    """Makes `cls` a subclass of `module.base` once that module is imported, so that code checking
    isinstance(x, module.base) takes roiops' drop-in `cls` (torchvision's detectors check their
    poolers' and anchor generator's classes). cls derives from base's own base (nn.Module) and
    calls its __init__ directly, so that putting `base` between them changes no behaviour: cls
    defines everything its instances use."""

    def rebase(loaded: Any) -> None:
        cls.__bases__ = (getattr(loaded, base),)

    after_import(module, rebase)
