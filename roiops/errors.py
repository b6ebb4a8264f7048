"""The exceptions roiops raises for a bad argument.

roiops' convention is a ValueError for a bad shape or value and a TypeError for a bad dtype, with a
message that names the argument and what was expected. torchvision raises RuntimeError for the same
mistakes (its C++ checks) or AssertionError (its Python shape checks). The classes below are both,
so code written to catch either library's exceptions catches roiops'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class ArgumentError(RuntimeError, AssertionError):
    """A bad argument to a roiops op or function."""


class ArgumentValueError(ArgumentError, ValueError):
    """A bad shape or value; also a RuntimeError and an AssertionError, as torchvision's are."""


class ArgumentTypeError(ArgumentError, TypeError):
    """A bad dtype or Python type; also a RuntimeError and an AssertionError, as torchvision's
    are."""


def call_op(op: Callable[..., Any], *args: Any) -> Any:
    """Calls ``op(*args)`` (a ``torch.ops.roiops`` op), raising its argument errors -- ValueError
    and TypeError from the C++ checks -- as ArgumentValueError / ArgumentTypeError. Eager mode
    only: the public functions call ops directly when scripted (TorchScript raises torch.jit.Error
    anyway), and under torch.compile the errors come from the fake kernels at trace time."""
    if torch.compiler.is_compiling():
        return op(*args)
    try:
        return op(*args)
    except ArgumentError:
        raise
    except ValueError as err:
        raise ArgumentValueError(str(err)) from None
    except TypeError as err:
        raise ArgumentTypeError(str(err)) from None
