"""Argument checks of Part I that :mod:`dltheory.validation` does not have: vectors of
numbers, SVAG levels, batches of the noisy quadratic, and objects of a given kind.

Each returns the checked (converted) value or raises ``ValueError`` / ``TypeError`` naming
the argument, the value received and what is allowed.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from dltheory import validation as V



def show(value: Any, limit: int = 60) -> str:
    """``repr`` of a value for a message, shortened; a large array by its shape."""
    shape = getattr(value, "shape", None)
    if shape is not None and getattr(value, "dtype", None) is not None and len(shape) > 0:
        size = int(np.prod(shape))
        if size > 6:
            return f"an array of shape {tuple(shape)}"
        try:
            return f"{np.asarray(value).tolist()!r} (shape {tuple(shape)})"
        except Exception:  # noqa: BLE001 - a tracer: its shape is all there is
            return f"an array of shape {tuple(shape)}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def vector(name: str, value: Any, *, positive: bool = False, nonnegative: bool = False,
           size: int | None = None) -> np.ndarray:
    """``value`` as a float64 1-D array: non-empty, finite, and ``> 0`` / ``>= 0`` if asked,
    with ``size`` entries if given."""
    if isinstance(value, (str, bytes, bool)) or value is None or isinstance(value, Mapping):
        raise TypeError(f"argument `{name}` must be a 1-D sequence of real numbers; got "
                        f"{show(value)} of type {type(value).__name__}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"argument `{name}` must be a 1-D sequence of real numbers; got "
                        f"{show(value)} of type {type(value).__name__}") from None
    what = "a non-empty 1-D sequence of finite numbers"
    if positive:
        what += " > 0"
    elif nonnegative:
        what += " >= 0"
    if size is not None:
        what += f" with {size} entries"
    ok = (arr.ndim == 1 and arr.size > 0 and bool(np.all(np.isfinite(arr)))
          and (not positive or bool(np.all(arr > 0)))
          and (not nonnegative or bool(np.all(arr >= 0)))
          and (size is None or arr.size == size))
    if not ok:
        raise ValueError(f"argument `{name}` must be {what}; got {show(value)}")
    return arr


def levels(name: str, value: Any) -> np.ndarray:
    """``value`` as a 1-D integer array of SVAG levels (or batch factors) ``>= 1``."""
    if isinstance(value, (str, bytes, bool, numbers.Number)) or value is None \
            or isinstance(value, Mapping):
        raise TypeError(f"argument `{name}` must be a 1-D sequence of integers >= 1; got "
                        f"{show(value)} of type {type(value).__name__}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"argument `{name}` must be a 1-D sequence of integers >= 1; got "
                        f"{show(value)}") from None
    if arr.ndim != 1 or arr.size < 1 or not np.all(np.isfinite(arr)) or np.any(arr < 1) \
            or np.any(arr != np.round(arr)):
        raise ValueError(f"argument `{name}` must be a 1-D sequence of integers >= 1; "
                         f"got {show(value)}")
    return arr.astype(int)


def instance(name: str, value: Any, types: type | tuple[type, ...], what: str) -> Any:
    """``value`` if it is an instance of ``types`` (described as ``what``)."""
    if not isinstance(value, types):
        raise TypeError(f"argument `{name}` must be {what}; got {show(value)} of type "
                        f"{type(value).__name__}")
    return value


def function(name: str, value: Any) -> Any:
    """``value`` if it is callable (:func:`dltheory.validation.check_callable`)."""
    return V.check_callable(name, value)


def batch(name: str, value: Any, keys: tuple[str, ...]) -> Mapping:
    """``value`` if it is a mapping with (at least) the entries ``keys``."""
    if not isinstance(value, Mapping):
        raise TypeError(f"argument `{name}` must be a dict with entries "
                        f"{', '.join(repr(k) for k in keys)}; got {show(value)} of type "
                        f"{type(value).__name__}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise ValueError(f"argument `{name}` must be a dict with entries "
                         f"{', '.join(repr(k) for k in keys)}; got {show(value)} (missing "
                         f"{', '.join(repr(k) for k in missing)})")
    return value


def flag(name: str, value: Any) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"argument `{name}` must be True or False; got {show(value)} of type "
                        f"{type(value).__name__}")
    return bool(value)


def steps_of(name: str, horizon: float, step_time: float, log_points: int,
             what: str) -> int:
    """The number of steps ``horizon / step_time``: an integer divisible by ``log_points``
    (``what`` names the step, for the message)."""
    n = horizon / step_time
    if abs(n - round(n)) > 1e-6 * max(1.0, n) or round(n) < 1 or round(n) % log_points:
        raise ValueError(f"argument `{name}` must make {what} = {n:g} an integer number of "
                         f"steps divisible by log_points = {log_points}")
    return int(round(n))

