"""The one place for API differences between the JAX / Flax versions the book supports.

The book runs on two stacks: the versions of its lock file and the ones Google Colab
ships (older: jax 0.7, flax 0.11). Code elsewhere in the package imports the names below
instead of reaching for an API that moved between those versions.

* :func:`enable_x64` -- a context manager that switches 64-bit floats on (or off) inside
  its scope only. ``jax.enable_x64`` from jax 0.8 on; ``jax.experimental.enable_x64`` /
  ``disable_x64`` before.
* :func:`x64_enabled` -- whether 64-bit floats are on here (inside such a scope or
  globally).
* :data:`ModuleList` -- the container for a list of submodules: ``nnx.List`` from flax
  0.12 on (which requires it), a plain list before.
* :func:`variance_scaling` -- ``nnx.initializers.variance_scaling``, one function object
  per set of arguments. Flax 0.11 keeps a layer's initializer in the model's static
  graph definition, so a fresh (unequal) initializer per model made every new model a
  new program for ``jit``: a recompilation per model, per seed of a sweep, per widget
  setting. Reusing the same object keeps equal models' graph definitions equal. Its
  ``"normal"`` initializer draws through :func:`dltheory._jit.random_normal`: flax's
  weights bit for bit, compiled faster when a model is built outside ``jit``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
from flax import nnx

from dltheory._jit import random_normal

__all__ = ["enable_x64", "x64_enabled", "ModuleList", "variance_scaling", "JAX_VERSION"]

#: jax's version as a tuple of ints, e.g. ``(0, 7, 2)``.
JAX_VERSION: tuple[int, ...] = tuple(
    int(part) for part in jax.__version__.split(".")[:3] if part.isdigit())


def _scoped_x64():
    """jax's own scoped switch: ``jax.enable_x64`` (>= 0.8) or the experimental pair."""
    native = getattr(jax, "enable_x64", None)
    if native is not None and callable(native):
        return lambda on: native(bool(on))
    from jax import experimental as jex  # jax < 0.8

    return lambda on: jex.enable_x64() if on else jex.disable_x64()


_SWITCH = _scoped_x64()


def enable_x64(on: bool = True) -> contextlib.AbstractContextManager[None]:
    """Turn 64-bit floats on (``on=True``) or off inside a ``with`` block only.

    Arrays created and functions traced inside the block use float64 where they would
    otherwise use float32; the process-wide default is restored on exit.

    Args:
      on: True for float64 inside the scope, False for float32.

    Example::

        from dltheory.compat import enable_x64
        with enable_x64():
            x = jnp.ones(3)      # float64
    """
    if not (isinstance(on, bool) or (isinstance(on, int) and on in (0, 1))):
        raise TypeError(f"argument `on` must be a bool; got {on!r} of type {type(on).__name__}")
    return _scope(bool(on))


@contextlib.contextmanager
def _scope(on: bool) -> Iterator[None]:
    with _SWITCH(on):
        yield


def x64_enabled() -> bool:
    """True when 64-bit floats are on at this point (in a scope or globally)."""
    import numpy as np

    return jax.dtypes.canonicalize_dtype(np.float64) == np.float64


#: ``nnx.List`` where flax has it (0.12 and later need it for lists of submodules).
ModuleList = getattr(nnx, "List", list)


@functools.lru_cache(maxsize=None)
def variance_scaling(scale: float, mode: str = "fan_in",
                     distribution: str = "normal") -> Callable:
    """``nnx.initializers.variance_scaling(scale, mode, distribution)``, one object per
    set of arguments, so that equal models have equal graph definitions on every flax.

    Args:
      scale: the variance's scale factor (e.g. 2.0 for He initialization).
      mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
      distribution: ``"normal"``, ``"truncated_normal"`` or ``"uniform"``.
    """
    from dltheory import validation as V

    V.check_positive("scale", scale)
    V.check_choice("mode", mode, ("fan_in", "fan_out", "fan_avg"))
    V.check_choice("distribution", distribution, ("normal", "truncated_normal", "uniform"))
    init = nnx.initializers.variance_scaling(float(scale), mode, distribution)
    return _ScaledNormal(float(scale), mode, init) if distribution == "normal" else init


class _ScaledNormal:
    """flax's ``variance_scaling(scale, mode, "normal")``, the same weights bit for bit, with
    the normal draw made by :func:`dltheory._jit.random_normal` (a model built eagerly
    compiles its draws about three times faster on the CPU)."""

    def __init__(self, scale: float, mode: str, flax_init: Callable):
        self.scale, self.mode, self._flax = scale, mode, flax_init

    def __call__(self, key, shape, dtype=None, **kwargs):
        if kwargs or dtype is None or len(shape) < 2:
            return self._flax(key, shape, *(() if dtype is None else (dtype,)), **kwargs)
        shape = tuple(int(n) for n in shape)
        field = math.prod(shape) / shape[-2] / shape[-1]      # a kernel's receptive field
        fan_in, fan_out = shape[-2] * field, shape[-1] * field
        denominator = {"fan_in": fan_in, "fan_out": fan_out,
                       "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = jnp.array(self.scale / denominator, dtype=dtype)
        return random_normal(key, shape, dtype) * jnp.sqrt(variance)
