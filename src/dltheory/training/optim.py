"""Optimizers whose numeric hyperparameters are data, not code.

:func:`optimizer` wraps an optax factory with ``optax.inject_hyperparams``, so a new
learning rate (a slider, a grid of a sweep) changes a value in the optimizer state and
reuses the compiled training loop.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import optax

__all__ = ["OptimizerSpec", "optimizer"]


def _is_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Number):
        return True
    return isinstance(value, (np.ndarray, jax.Array, np.generic))


@dataclasses.dataclass(frozen=True, eq=False)
class OptimizerSpec:
    """An optax optimizer factory with hyperparameters kept in the optimizer state.

    Build it with :func:`optimizer`. Numeric hyperparameters (learning rate, betas, eps,
    momentum, ...) are traced values: changing them reuses compiled code, and in a
    :func:`sweep` a 1-D array gives one value per grid member. Other arguments
    (booleans, schedules, strings) are static and part of the compiled program.
    """

    factory: Callable[..., optax.GradientTransformation]
    hyperparams: Mapping[str, Any]
    static: tuple[tuple[str, Any], ...]

    def __post_init__(self):
        if not callable(self.factory):
            raise TypeError(f"argument `factory` must be an optax optimizer factory such as "
                            f"optax.sgd; got {self.factory!r}")
        if not isinstance(self.hyperparams, Mapping):
            raise TypeError(f"argument `hyperparams` must be a mapping of name -> number or "
                            f"array; got {self.hyperparams!r}")
        for name, value in self.hyperparams.items():
            _check_numeric(name, value)
        if not isinstance(self.static, tuple) or not all(
                isinstance(kv, tuple) and len(kv) == 2 and isinstance(kv[0], str)
                for kv in self.static):
            raise TypeError(f"argument `static` must be a tuple of (name, value) pairs; got "
                            f"{self.static!r}")

    def grid_size(self) -> int | None:
        """Length of the swept hyperparameters (``None`` when every value is a scalar)."""
        sizes = {int(np.shape(v)[0]) for v in self.hyperparams.values() if np.ndim(v) >= 1}
        if len(sizes) > 1:
            raise ValueError("argument `optimizer` has swept hyperparameters of different "
                             f"lengths {sorted(sizes)}; give every swept value the same length")
        return sizes.pop() if sizes else None

    def transformation(self, **values: Any) -> optax.GradientTransformation:
        """The optax transformation for the given numeric values (default: this spec's)."""
        return _inject(self.factory, self.static, {**self.hyperparams, **values})

    @property
    def update_fn(self) -> Callable:
        """The update function, shared by all specs with the same factory and arguments."""
        return _cached_update(self.factory, tuple(sorted(self.hyperparams)), self.static)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in {**self.hyperparams, **dict(self.static)}.items())
        name = getattr(self.factory, "__name__", repr(self.factory))
        return f"optimizer({name}, {args})"


def _inject(factory: Callable, static: tuple, hyperparams: Mapping[str, Any]):
    """``factory`` with numeric ``hyperparams`` injected into its state, ``static`` fixed."""
    return optax.inject_hyperparams(factory, static_args=tuple(n for n, _ in static))(
        **hyperparams, **dict(static))


@functools.lru_cache(maxsize=256)
def _cached_update(factory, names, static):
    # the values are placeholders: the update reads them from the optimizer state
    return _inject(factory, static, {name: 0.0 for name in names}).update


#: Hyperparameters that are rates: numbers (or schedules) > 0.
_RATES = ("learning_rate", "lr")
#: Hyperparameters that must be numbers (or schedules), never other static values.
_NUMERIC = _RATES + ("momentum", "b1", "b2", "eps", "eps_root", "weight_decay", "decay",
                     "initial_scale")


def _check_numeric(name: str, value: Any) -> None:
    """A numeric hyperparameter: a finite scalar or a 1-D sweep; a rate is > 0."""
    arr = np.asarray(value)
    if arr.ndim > 1:
        raise ValueError(f"hyperparameter `{name}` must be a scalar or a 1-D sweep; "
                         f"got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or (arr.size and not np.all(np.isfinite(arr))):
        raise ValueError(f"hyperparameter `{name}` must be finite; got {value!r}")
    if name in _RATES and arr.size and not np.all(arr > 0):
        raise ValueError(f"hyperparameter `{name}` must be > 0 (every value of a sweep); "
                         f"got {value!r}")


def optimizer(factory: Callable[..., optax.GradientTransformation], /,
              **hyperparams: Any) -> OptimizerSpec:
    """Describe an optax optimizer whose numeric hyperparameters stay out of compiled code.

    Args:
      factory: an optax optimizer factory such as ``optax.sgd`` or ``optax.adam``.
      **hyperparams: its arguments. Numbers and arrays are injected into the optimizer
        state (a 1-D array sweeps them in :func:`sweep`); anything else is static.

    Returns:
      An :class:`OptimizerSpec` accepted by :func:`train` and :func:`sweep`.

    Example::

        opt = optimizer(optax.adam, learning_rate=1e-3)
        grid = optimizer(optax.sgd, learning_rate=jnp.array([0.1, 0.2, 0.4]))
    """
    if not callable(factory):
        raise TypeError(f"argument `factory` must be an optax optimizer factory such as "
                        f"optax.sgd; got {factory!r}")
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins and some extensions have no signature
        params = None
    if params is not None and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        for name in hyperparams:
            if name not in params:
                raise TypeError(f"hyperparameter `{name}` must be an argument of "
                                f"{getattr(factory, '__name__', factory)}, one of "
                                f"{sorted(params)}; got {name}={hyperparams[name]!r}")
    numeric, static = {}, []
    for name, value in hyperparams.items():
        if name in _NUMERIC and value is not None and not _is_numeric(value) and \
                not callable(value):
            raise TypeError(f"hyperparameter `{name}` must be a number, a 1-D array or a "
                            f"schedule; got {value!r}")
        if _is_numeric(value):
            _check_numeric(name, value)
            # optax's inject_hyperparams takes NumPy scalars for static arguments
            numeric[name] = value.item() if isinstance(value, np.generic) else value
        else:
            try:
                hash(value)
            except TypeError:
                raise TypeError(f"hyperparameter `{name}` must be a number, an array or a "
                                f"hashable object; got {type(value).__name__}") from None
            static.append((name, value))
    spec = OptimizerSpec(factory, numeric, tuple(sorted(static, key=lambda kv: kv[0])))
    spec.grid_size()  # validates consistent sweep lengths
    return spec


@dataclasses.dataclass(frozen=True)
class _SpecInit:
    """``init(params, hparams)`` of a spec's transformation; hashable, so jit can cache it."""

    factory: Callable
    static: tuple

    def __call__(self, params, hparams):
        return _inject(self.factory, self.static, hparams).init(params)


@dataclasses.dataclass(frozen=True)
class _PlainInit:
    init: Callable

    def __call__(self, params, hparams):
        return self.init(params)


def _as_spec_parts(opt: Any) -> tuple[Callable, Callable[[Any, Mapping], Any], Mapping]:
    """(update_fn, init(params, hparams), numeric hyperparams) for a spec or a transformation."""
    if isinstance(opt, OptimizerSpec):
        return opt.update_fn, _SpecInit(opt.factory, opt.static), opt.hyperparams
    if isinstance(opt, optax.GradientTransformation):
        return opt.update, _PlainInit(opt.init), {}
    raise TypeError("argument `optimizer` must be an optax GradientTransformation or "
                    f"dltheory.training.optimizer(...); got {type(opt).__name__}")


