"""Argument checks shared by every public function of the package.

Each helper returns the (possibly converted) value when it is acceptable and raises
``ValueError`` (or ``TypeError`` for a wrong kind of object) naming the argument, the
value received and what is allowed. Call them at the top of a public function so bad
input is rejected at the boundary, before anything is compiled or computed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "check_finite",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_steps",
    "check_in_range",
    "check_choice",
    "check_probability",
    "check_shape",
    "check_seed",
    "check_key",
    "check_array",
    "check_instance",
    "check_callable",
]


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _real(name: str, value: Any) -> float:
    if not _is_real(value):
        # numpy / jax scalars (0-d arrays) are accepted as real numbers
        try:
            if getattr(value, "shape", None) == () and not isinstance(value, bool):
                return float(value)
        except (TypeError, ValueError):
            pass
        raise TypeError(f"argument `{name}` must be a real number; got {value!r} "
                        f"of type {type(value).__name__}")
    return float(value)


def check_finite(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite real number."""
    x = _real(name, value)
    if not math.isfinite(x):
        raise ValueError(f"argument `{name}` must be finite; got {value!r}")
    return x


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is finite and > 0."""
    x = _real(name, value)
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"argument `{name}` must be a finite number > 0; got {value!r}")
    return x


def check_nonnegative(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is finite and >= 0."""
    x = _real(name, value)
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(f"argument `{name}` must be a finite number >= 0; got {value!r}")
    return x


def check_int(name: str, value: Any, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """Return ``value`` if it is an integer within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"argument `{name}` must be an integer; got {value!r} "
                        f"of type {type(value).__name__}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"argument `{name}` must be an integer >= {minimum}; got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"argument `{name}` must be an integer <= {maximum}; got {v}")
    return v


def check_steps(steps: Any, log_every: Any) -> tuple[int, int]:
    """``steps`` and ``log_every`` as positive integers, ``steps`` a multiple of
    ``log_every`` (every logged interval, and so every compiled chunk, has one shape)."""
    steps = check_int("steps", steps, minimum=1)
    log_every = check_int("log_every", log_every, minimum=1)
    if steps % log_every:
        raise ValueError(f"argument `steps` ({steps}) must be a multiple of `log_every` "
                         f"({log_every})")
    return steps, log_every


def check_in_range(name: str, value: Any, low: float, high: float, *,
                   low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Return ``value`` as a float if it lies in the interval between ``low`` and ``high``."""
    x = _real(name, value)
    ok_low = x >= low if low_inclusive else x > low
    ok_high = x <= high if high_inclusive else x < high
    if not (math.isfinite(x) and ok_low and ok_high):
        interval = f"{'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
        raise ValueError(f"argument `{name}` must lie in {interval}; got {value!r}")
    return x


def check_probability(name: str, value: Any) -> float:
    """Return ``value`` if it is a probability in [0, 1]."""
    return check_in_range(name, value, 0.0, 1.0)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``."""
    options = tuple(choices)
    if value not in options:
        allowed = ", ".join(repr(c) for c in options)
        raise ValueError(f"argument `{name}` must be one of {allowed}; got {value!r}")
    return value


def check_shape(name: str, array: Any, shape: Sequence[int | None]) -> Any:
    """Return ``array`` if its shape matches ``shape`` (``None`` matches any size)."""
    actual = getattr(array, "shape", None)
    if actual is None:
        raise TypeError(f"argument `{name}` must be an array; got {type(array).__name__}")
    if len(actual) != len(shape) or any(s is not None and s != a for s, a in zip(shape, actual)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"argument `{name}` must have shape {want}; got {tuple(actual)}")
    return array


def _describe(value: Any, limit: int = 60) -> str:
    """``repr`` of a value for a message, shortened (an array by its shape and dtype)."""
    shape = getattr(value, "shape", None)
    if shape is not None and getattr(value, "dtype", None) is not None and len(shape) > 0:
        return f"an array of shape {tuple(shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_seed(name: str, value: Any) -> int:
    """Return ``value`` if it is an integer seed in ``[0, 2**32 - 1]``."""
    return check_int(name, value, minimum=0, maximum=2**32 - 1)


def check_key(name: str, value: Any) -> Any:
    """A JAX PRNG key from ``value``: an integer seed (see :func:`check_seed`), a typed key
    (``jax.random.key``, also traced) or a raw ``uint32`` key of shape ``(2,)``."""
    import jax
    import jax.numpy as jnp

    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return jax.random.key(check_seed(name, value))
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(value, "shape", None) is not None:
        if jnp.issubdtype(dtype, jax.dtypes.prng_key):
            return value
        if tuple(value.shape) == (2,) and dtype == jnp.uint32:
            return jax.random.wrap_key_data(value)
        if tuple(value.shape) == () and jnp.issubdtype(dtype, jnp.integer):
            if isinstance(value, jax.core.Tracer):  # a traced seed: its value is unknown
                return jax.random.key(value)
            return jax.random.key(check_seed(name, int(value)))
    raise TypeError(f"argument `{name}` must be an int seed or a jax PRNG key (an integer "
                    f">= 0, or jax.random.key(...)); got {_describe(value)}")


def check_array(name: str, value: Any, *, ndim: int | Sequence[int] | None = None,
                finite: bool = True, positive: bool = False, nonnegative: bool = False,
                nonempty: bool = True) -> np.ndarray:
    """``value`` as a float64 NumPy array, if it is an array of real numbers.

    Args:
      name: the argument's name, for the message.
      value: an array, a sequence of numbers or a number.
      ndim: the allowed number(s) of dimensions (``None``: any).
      finite: every entry must be finite.
      positive, nonnegative: every entry must be ``> 0`` (``>= 0``).
      nonempty: the array must have at least one entry.

    Raises:
      TypeError: if ``value`` is not made of real numbers.
      ValueError: if it breaks one of the conditions.
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"argument `{name}` must be an array of real numbers; got "
                        f"{_describe(value)}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"argument `{name}` must be an array of real numbers; got "
                        f"{_describe(value)}") from None
    dims = (ndim,) if isinstance(ndim, int) else (None if ndim is None else tuple(ndim))
    sign = " > 0" if positive else (" >= 0" if nonnegative else "")
    what = (f"{'non-empty ' if nonempty else ''}"
            f"{' or '.join(f'{d}-D' for d in dims) + ' ' if dims else ''}"
            f"{'sequence' if dims and max(dims) == 1 else 'array'} of "
            f"{'finite ' if finite else ''}numbers{sign}")
    got = repr(value) if arr.ndim == 0 else _describe(value)
    if arr.ndim and arr.size <= 6:
        got = f"{arr.tolist()!r} (shape {arr.shape})"
    if (dims is not None and arr.ndim not in dims) or (nonempty and arr.size == 0):
        raise ValueError(f"argument `{name}` must be a {what}; got {got}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"argument `{name}` must be finite (a {what}); got {got}")
    if (positive and not np.all(arr > 0)) or (nonnegative and not np.all(arr >= 0)):
        raise ValueError(f"argument `{name}` must be{sign} (a {what}); got {got}")
    return arr


def check_instance(name: str, value: Any, types: type | tuple[type, ...],
                   what: str | None = None) -> Any:
    """Return ``value`` if it is an instance of ``types`` (``what`` describes them)."""
    allowed = types if isinstance(types, tuple) else (types,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in allowed)
    if not ok:
        if what is None:
            names = types if isinstance(types, tuple) else (types,)
            what = " or ".join(t.__name__ for t in names)
        article = "an" if what[:1].lower() in "aeiou" else "a"
        raise TypeError(f"argument `{name}` must be {article} {what}; got {_describe(value)} of "
                        f"type {type(value).__name__}")
    return value


def check_callable(name: str, value: Any) -> Any:
    """Return ``value`` if it is callable."""
    if not callable(value):
        raise TypeError(f"argument `{name}` must be callable; got {_describe(value)} of type "
                        f"{type(value).__name__}")
    return value
