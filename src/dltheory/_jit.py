"""The package's ``jit``: ``jax.jit`` with the compiler options it uses on the CPU.

Every compiled program of the package (the training engine's chunks and initializations,
the margin and low-rank flows, the SDE paths, the curvature programs) is made by
:func:`jit`. On the CPU it asks XLA for LLVM optimization level 2 instead of its default
3 (:data:`CPU_COMPILER_OPTIONS`); on a GPU or TPU it is ``jax.jit`` unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax

__all__ = ["jit", "random_normal", "CPU_COMPILER_OPTIONS", "XLA_DEFAULT_OPTIONS"]

#: The compiler options of the package's programs on the CPU. XLA's CPU backend hands its
#: code to LLVM at optimization level 3 unless told otherwise; at level 2 the training
#: programs compile in 50 to 85% of the time and run as fast, and random initializations
#: compile 3 to 6 times faster and are the same bit for bit (see benchmarks/NOTES.md).
#: Other backends keep their defaults.
CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 2}
#: XLA's own default of the option above, for a compilation that must be the one every
#: backend gets by default (the paper presets' cost estimates, :mod:`dltheory.paper`).
XLA_DEFAULT_OPTIONS = {"xla_backend_optimization_level": 3}


#: jax's error for compiler options on a jit that is traced inside another jit.
_NESTED = "can only be passed to top-level"


class _Jit:
    """A ``jax.jit`` made at its first use, once the backend is known (so that importing the
    package does not start one). Called inside another traced function (``jax.jit``,
    ``jax.eval_shape``, ``lax.scan``), where jax accepts no compiler options, it is the
    plain ``jax.jit``: the program it becomes part of is compiled with the options of the
    outermost one."""

    def __init__(self, fn: Callable, kwargs: dict):
        self._fn, self._kwargs = fn, kwargs
        functools.update_wrapper(self, fn)

    @functools.cached_property
    def _jitted(self) -> Callable:
        kwargs = dict(self._kwargs)
        if jax.default_backend() == "cpu":
            kwargs.setdefault("compiler_options", dict(CPU_COMPILER_OPTIONS))
        return jax.jit(self._fn, **kwargs)

    @functools.cached_property
    def _nested(self) -> Callable:
        return jax.jit(self._fn, **self._kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((args, kwargs))):
            return self._nested(*args, **kwargs)
        try:
            return self._jitted(*args, **kwargs)
        except ValueError as err:  # traced inside another function without traced inputs
            if _NESTED not in str(err):
                raise
            return self._nested(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # lower, trace, eval_shape, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._jitted, name)


def jit(fn: Callable | None = None, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` with :data:`CPU_COMPILER_OPTIONS` when JAX computes on the
    CPU; every compiled program of the package goes through here. Also a decorator, bare
    or with ``jax.jit``'s keyword arguments (``@jit(static_argnames=...)``)."""
    if fn is None:
        return functools.partial(jit, **kwargs)
    if not callable(fn):
        raise TypeError(f"argument `fn` must be callable; got {fn!r}")
    return _Jit(fn, kwargs)


@functools.partial(jit, static_argnums=(1, 2))
def _normal(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    return jax.random.normal(key, shape, dtype)


def random_normal(key: jax.Array, shape: tuple[int, ...], dtype: Any = float) -> jax.Array:
    """``jax.random.normal(key, shape, dtype)``, the same numbers bit for bit (``dtype`` as
    jax takes it: the default ``float`` is float32, or float64 with 64-bit floats on).

    Called eagerly (a model built outside ``jit``), jax compiles one program per shape;
    this one is compiled with the package's options, 2 to 4 times faster on the CPU.
    The models' initializers draw through it.
    """
    return _normal(key, tuple(int(n) for n in shape), dtype)
