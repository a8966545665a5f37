"""The training engine every chapter uses: jit + ``lax.scan`` chunks, sweeps, divergence.

:func:`train` runs one optimization; :func:`sweep` runs a grid of seeds or hyperparameters
as one vmapped, compiled call whose grid axis is sharded over ``jax.devices()``.

How a run is laid out:

- the loss is ``loss_fn(params, batch) -> scalar`` on a parameter pytree, or
  ``loss_fn(model, batch)`` on a ``flax.nnx`` module (split into graphdef and state);
- a batch source gives the batch of step ``k`` as ``batches.sample(key, k)`` on device
  (see :mod:`dltheory.data`); any other pytree is used as the full batch at every step;
- the steps run as ``lax.scan`` loops under ``jit``, in chunks: Python only sees chunk
  boundaries, where it updates the progress bar and checks for divergence;
- every ``log_every`` steps the loss (and ``metrics(params, eval_data)``) is recorded on
  device; records are at steps ``0, k, 2k, ..., steps``;
- a non-finite loss at step ``k`` freezes the run, which reports ``diverged at step k``.

Hyperparameters that should change without recompiling (a learning rate under a
slider, a grid in a sweep) go through :func:`optimizer`, which stores them in the
optimizer state with ``optax.inject_hyperparams``. Compiled code is cached on the loss
function, the optimizer's factory and the sizes: calling :func:`train` again with new
numbers of the same shapes reuses it. Pass module-level functions (not fresh lambdas)
as ``loss_fn`` and ``metrics`` to get that reuse.

References:
  The conventions follow optax (pure transformations over pytrees) and flax.nnx's
  functional API (``nnx.split`` / ``nnx.merge``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import numbers
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dltheory import validation as V
from dltheory.data import FullBatch, is_batch_source

__all__ = [
    "OptimizerSpec",
    "optimizer",
    "train",
    "sweep",
    "RunResult",
    "SweepResult",
    "DivergenceWarning",
    "count_compilations",
    "PROGRESS_AFTER_SECONDS",
]

#: A run shows a progress bar (``progress=None``) once it has taken this many seconds.
PROGRESS_AFTER_SECONDS = 2.0
#: ``DLTHEORY_PROGRESS=0`` turns automatic progress bars off (set by the book build, where
#: a bar would end up as text in the static pages); ``progress=True`` still shows one.
PROGRESS_ENV_VAR = "DLTHEORY_PROGRESS"
#: Default number of optimization steps per compiled chunk.
DEFAULT_CHUNK_STEPS = 2000


class DivergenceWarning(RuntimeWarning):
    """Issued when a run's loss becomes non-finite; the run stops at that step."""


# --------------------------------------------------------------------------------------
# Optimizers whose numeric hyperparameters are data, not code
# --------------------------------------------------------------------------------------


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

    def grid_size(self) -> int | None:
        """Length of the swept hyperparameters (``None`` when every value is a scalar)."""
        sizes = {int(np.shape(v)[0]) for v in self.hyperparams.values() if np.ndim(v) >= 1}
        if len(sizes) > 1:
            raise ValueError("argument `optimizer` has swept hyperparameters of different "
                             f"lengths {sorted(sizes)}; give every swept value the same length")
        return sizes.pop() if sizes else None

    def transformation(self, **values: Any) -> optax.GradientTransformation:
        """The optax transformation for the given numeric values (default: this spec's)."""
        hp = dict(self.hyperparams)
        hp.update(values)
        return optax.inject_hyperparams(self.factory, static_args=self._static_names)(
            **hp, **dict(self.static))

    @property
    def _static_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.static)

    @property
    def update_fn(self) -> Callable:
        """The update function, shared by all specs with the same factory and arguments."""
        return _cached_update(self.factory, tuple(sorted(self.hyperparams)), self.static)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in {**self.hyperparams, **dict(self.static)}.items())
        name = getattr(self.factory, "__name__", repr(self.factory))
        return f"optimizer({name}, {args})"


@functools.lru_cache(maxsize=256)
def _cached_update(factory, names, static):
    placeholders = {name: 0.0 for name in names}
    return optax.inject_hyperparams(factory, static_args=tuple(n for n, _ in static))(
        **placeholders, **dict(static)).update


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
    numeric, static = {}, []
    for name, value in hyperparams.items():
        if _is_numeric(value):
            arr = np.asarray(value)
            if arr.ndim > 1:
                raise ValueError(f"hyperparameter `{name}` must be a scalar or a 1-D sweep; "
                                 f"got shape {arr.shape}")
            if arr.size and not np.all(np.isfinite(arr)):
                raise ValueError(f"hyperparameter `{name}` must be finite; got {value!r}")
            numeric[name] = value
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
        return optax.inject_hyperparams(self.factory, static_args=tuple(n for n, _ in self.static))(
            **hparams, **dict(self.static)).init(params)


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


# --------------------------------------------------------------------------------------
# Losses on pytrees or on nnx modules, as hashable static functions
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _PlainFn:
    fn: Callable

    def __call__(self, params, aux, *args):
        return self.fn(params, *args)

    def output(self, params, aux):
        return params


@dataclasses.dataclass(frozen=True)
class _NnxFn:
    fn: Callable
    graphdef: Any

    def __call__(self, params, aux, *args):
        return self.fn(nnx.merge(self.graphdef, params, aux), *args)

    def output(self, params, aux):
        return nnx.merge(self.graphdef, params, aux)


def _split(model_or_params: Any) -> tuple[Any, Any, Any]:
    """(graphdef or None, trainable params, the rest of the state)."""
    if isinstance(model_or_params, nnx.Module):
        graphdef, params, rest = nnx.split(model_or_params, nnx.Param, ...)
        return graphdef, params, rest
    return None, model_or_params, None


def _wrap(fn: Callable | None, graphdef: Any) -> Callable | None:
    if fn is None:
        return None
    return _PlainFn(fn) if graphdef is None else _NnxFn(fn, graphdef)


# --------------------------------------------------------------------------------------
# The compiled program
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Program:
    """Everything static about a run: the compiled chunk is cached on it."""

    loss: Callable
    update: Callable
    metrics: Callable | None
    log_every: int
    intervals: int  # log intervals per chunk


def _tree_where(cond, new, old):
    return jax.tree.map(lambda a, b: jnp.where(cond, a, b), new, old)


def _record(prog: _Program, params, aux, eval_data) -> dict:
    if prog.metrics is None:
        return {}
    out = prog.metrics(params, aux, eval_data)
    if not isinstance(out, Mapping):
        raise TypeError(f"`metrics` must return a dict of scalars; got {type(out).__name__}")
    return {str(k): jnp.asarray(v) for k, v in out.items()}


def _chunk(prog: _Program, carry, batches, aux, eval_data, key, total_steps):
    """Run ``prog.intervals * prog.log_every`` steps; return the carry and the records."""

    def one_step(carry, _):
        params, opt_state, step, diverged_at = carry
        batch = batches.sample(key, step)
        loss, grads = jax.value_and_grad(prog.loss)(params, aux, batch)
        updates, new_opt_state = prog.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        active = (step < total_steps) & (diverged_at < 0)
        bad = ~jnp.isfinite(loss)
        diverged_at = jnp.where(active & bad, step, diverged_at)
        keep = active & ~bad
        params = _tree_where(keep, new_params, params)
        opt_state = _tree_where(keep, new_opt_state, opt_state)
        return (params, opt_state, step + 1, diverged_at), loss

    def interval(carry, _):
        params, _, step, _ = carry
        rec = _record(prog, params, aux, eval_data)
        if prog.log_every == 1:  # no inner loop: a length-1 scan costs a loop per step
            carry, loss = one_step(carry, None)
        else:
            carry, losses = jax.lax.scan(one_step, carry, None, length=prog.log_every)
            loss = losses[0]
        rec["loss"] = loss
        rec["step"] = step
        return carry, rec

    return jax.lax.scan(interval, carry, None, length=prog.intervals)


def _final(prog: _Program, params, batches, aux, eval_data, key, step):
    rec = _record(prog, params, aux, eval_data)
    rec["loss"] = prog.loss(params, aux, batches.sample(key, step))
    return rec


@functools.lru_cache(maxsize=128)
def _compiled(prog: _Program, vmapped: bool, batch_axis: int | None):
    chunk = functools.partial(_chunk, prog)
    final = functools.partial(_final, prog)
    if vmapped:
        chunk = jax.vmap(chunk, in_axes=(0, batch_axis, None, None, 0, None))
        final = jax.vmap(final, in_axes=(0, batch_axis, None, None, 0, None))
    return jax.jit(chunk), jax.jit(final)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One run: logged metrics, final parameters, and whether and where it diverged.

    Attributes:
      steps: the logged steps, shape ``(n_log,)``: ``0, log_every, ..., steps``.
      metrics: name -> values at the logged steps (``"loss"`` always; NaN from the step
        where the run diverged on).
      params: final parameters (a pytree), or the trained model for an nnx input (the
        last finite state if the run diverged).
      opt_state: the final optimizer state.
      diverged_at: the step whose loss was non-finite, or ``None``.
      total_steps: the number of steps asked for.
    """

    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    params: Any
    opt_state: Any
    diverged_at: int | None
    total_steps: int

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def status(self) -> str:
        """``"diverged at step k"`` or ``"finished N steps"``."""
        if self.diverged:
            return f"diverged at step {self.diverged_at}"
        return f"finished {self.total_steps} steps"

    def __getitem__(self, name: str) -> np.ndarray:
        return self.metrics[name]

    def final(self, name: str = "loss") -> float:
        """The last logged finite value of a metric (NaN if there is none)."""
        values = self.metrics[name]
        finite = np.isfinite(values)
        return float(values[finite][-1]) if finite.any() else float("nan")


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """A grid of runs; every array has the grid as its leading axis.

    Attributes:
      steps: the logged steps, shape ``(n_log,)``.
      metrics: name -> array of shape ``(grid, n_log)``.
      params: final parameters stacked on a leading grid axis (an nnx input gives the
        stacked state; :meth:`member` merges one back into a model).
      opt_state: final optimizer states, stacked.
      diverged_at: shape ``(grid,)``: the step each run diverged at, or -1.
      total_steps: the number of steps asked for.
    """

    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    params: Any
    opt_state: Any
    diverged_at: np.ndarray
    total_steps: int
    _graphdef: Any = dataclasses.field(default=None, repr=False)
    _aux: Any = dataclasses.field(default=None, repr=False)

    @property
    def size(self) -> int:
        return int(self.diverged_at.shape[0])

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, name: str) -> np.ndarray:
        return self.metrics[name]

    @property
    def diverged(self) -> np.ndarray:
        return self.diverged_at >= 0

    def member(self, i: int) -> RunResult:
        """Grid member ``i`` as a :class:`RunResult`."""
        i = V.check_int("i", i, minimum=-self.size, maximum=self.size - 1)
        params = jax.tree.map(lambda a: a[i], self.params)
        if self._graphdef is not None:
            params = nnx.merge(self._graphdef, params, self._aux)
        d = int(self.diverged_at[i])
        return RunResult(self.steps, {k: v[i] for k, v in self.metrics.items()}, params,
                         jax.tree.map(lambda a: a[i], self.opt_state),
                         None if d < 0 else d, self.total_steps)


# --------------------------------------------------------------------------------------
# Compilation counting (tests and benchmarks)
# --------------------------------------------------------------------------------------

_COMPILES = [0]
_LISTENING = [False]


def _on_event(event: str, *args: Any, **kwargs: Any) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


@contextlib.contextmanager
def count_compilations() -> Iterator[Callable[[], int]]:
    """Count XLA compilations inside the block.

    Example::

        with count_compilations() as compiled:
            train(...)
        print(compiled())   # number of XLA programs compiled in the block
    """
    if not _LISTENING[0]:
        jax.monitoring.register_event_duration_secs_listener(_on_event)
        _LISTENING[0] = True
    start = _COMPILES[0]
    yield lambda: _COMPILES[0] - start


# --------------------------------------------------------------------------------------
# Driving the chunks from Python
# --------------------------------------------------------------------------------------


def _key(name: str, key: Any) -> jax.Array:
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            return key
        if key.shape == (2,) and key.dtype == jnp.uint32:
            return jax.random.wrap_key_data(key)
    raise TypeError(f"argument `{name}` must be an int seed or a jax PRNG key; got {key!r}")


def _check_sizes(steps: int, log_every: int, chunk_steps: int | None) -> tuple[int, int, int]:
    steps = V.check_int("steps", steps, minimum=1)
    log_every = V.check_int("log_every", log_every, minimum=1)
    if steps % log_every:
        raise ValueError(f"argument `steps` ({steps}) must be a multiple of `log_every` "
                         f"({log_every}) so every chunk has the same shape")
    chunk_steps = DEFAULT_CHUNK_STEPS if chunk_steps is None else V.check_int(
        "chunk_steps", chunk_steps, minimum=1)
    n_int = steps // log_every
    per_chunk = max(1, min(n_int, chunk_steps // log_every))
    # spread the intervals evenly so the last chunk wastes as little as possible
    n_chunks = math.ceil(n_int / per_chunk)
    per_chunk = math.ceil(n_int / n_chunks)
    return n_int, per_chunk, n_chunks


def _auto_progress() -> bool:
    """Automatic progress bars are on unless ``DLTHEORY_PROGRESS=0`` (the book build)."""
    return os.environ.get(PROGRESS_ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


class _Progress:
    """A tqdm bar that appears only once a run has lasted ``PROGRESS_AFTER_SECONDS``."""

    def __init__(self, total: int, mode: bool | None, desc: str):
        self.total, self.mode, self.desc = total, mode, desc
        self.start = time.perf_counter()
        self.bar = None
        self.done = 0

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is None and self.done < self.total and (
                self.mode is True or (self.mode is None and _auto_progress() and
                                      time.perf_counter() - self.start >= PROGRESS_AFTER_SECONDS)):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit="step", file=sys.stderr,
                            initial=self.done - n)
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _drive(prog, vmapped, batch_axis, carry, batches, aux, eval_data, keys, steps,
           n_int, per_chunk, n_chunks, progress, desc):
    chunk_fn, final_fn = _compiled(prog, vmapped, batch_axis)
    total = jnp.asarray(steps, jnp.int32)
    records = []
    bar = _Progress(steps, progress, desc)
    try:
        for _ in range(n_chunks):
            carry, rec = chunk_fn(carry, batches, aux, eval_data, keys, total)
            records.append(rec)
            diverged_at = np.asarray(carry[3])
            bar.update(min(per_chunk * prog.log_every, steps - (len(records) - 1) *
                           per_chunk * prog.log_every))
            if np.all(diverged_at >= 0):
                break
        final = final_fn(carry[0], batches, aux, eval_data, keys, total)
    finally:
        bar.close()
    axis = 1 if vmapped else 0  # the log axis of every record
    rec = {k: np.concatenate([np.asarray(r[k]) for r in records], axis=axis)
           for k in records[0] if k != "step"}
    # the last chunk may run past `steps`: keep the intervals that belong to the run
    rec = {k: np.take(v, np.arange(min(n_int, v.shape[axis])), axis=axis)
           for k, v in rec.items()}
    log_steps = np.arange(n_int + 1) * prog.log_every
    diverged_at = np.asarray(carry[3])
    out = {}
    for k, v in rec.items():
        dtype = np.result_type(v, np.float32)
        fin = np.expand_dims(np.asarray(final[k]), axis).astype(dtype)
        missing = n_int - v.shape[axis]
        if missing:  # stopped early because every run diverged
            shape = list(v.shape)
            shape[axis] = missing
            v = np.concatenate([v.astype(dtype), np.full(shape, np.nan, dtype)], axis=axis)
        full = np.concatenate([v.astype(dtype), fin], axis=axis)
        # nothing after a divergence is a measurement: blank it out
        after = (diverged_at[..., None] >= 0) & (log_steps >= diverged_at[..., None])
        after = after.reshape(after.shape + (1,) * (full.ndim - after.ndim))
        out[k] = np.where(after, np.nan, full)
    return carry, log_steps, out, diverged_at


def train(loss_fn: Callable[[Any, Any], jax.Array], params: Any,
          optimizer: OptimizerSpec | optax.GradientTransformation, *, steps: int,
          batches: Any = None, key: int | jax.Array = 0, log_every: int = 1,
          metrics: Callable[[Any, Any], Mapping[str, jax.Array]] | None = None,
          eval_data: Any = None, chunk_steps: int | None = None,
          progress: bool | None = None, warn: bool = True) -> RunResult:
    """Minimize ``loss_fn`` for ``steps`` steps with an optax optimizer.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` (``params`` is the pytree, or the
        nnx model when ``params`` is an ``nnx.Module``).
      params: initial parameters: a pytree of arrays or a ``flax.nnx`` module (its
        ``nnx.Param`` variables are trained; the module passed in is not modified).
      optimizer: ``dltheory.training.optimizer(optax.adam, learning_rate=...)`` (numeric
        hyperparameters change without recompiling) or any optax transformation.
      steps: number of optimization steps, a multiple of ``log_every``.
      batches: a batch source from :mod:`dltheory.data` (``sample(key, step)``), or a
        pytree used as the full batch at every step, or ``None`` (``batch=None``).
      key: seed or PRNG key for the batch source.
      log_every: record metrics every this many steps (records at 0, k, ..., steps).
      metrics: optional ``metrics(params, eval_data) -> {name: array}`` recorded with
        the loss (for example test accuracy, the parameter norm, or a small vector such
        as the iterate itself); a metric of shape ``s`` is logged as ``(n_log, *s)``.
      eval_data: pytree passed to ``metrics`` (traced: new values do not recompile).
      chunk_steps: steps per compiled chunk (progress and divergence checks happen
        between chunks). Default 2000.
      progress: ``True`` always shows a progress bar, ``False`` never; ``None`` (default)
        shows one when the run lasts longer than ``PROGRESS_AFTER_SECONDS``, unless the
        environment sets ``DLTHEORY_PROGRESS=0``.
      warn: issue a :class:`DivergenceWarning` when the run diverges.

    Returns:
      A :class:`RunResult`. ``result.status`` is ``"diverged at step k"`` when the loss
      became non-finite at step ``k``; the run stops there.

    Example::

        opt = optimizer(optax.sgd, learning_rate=0.1)
        result = train(lambda x, H: 0.5 * x @ H @ x, x0, opt, steps=100, batches=H)
    """
    if not callable(loss_fn):
        raise TypeError(f"argument `loss_fn` must be callable; got {loss_fn!r}")
    if metrics is not None and not callable(metrics):
        raise TypeError(f"argument `metrics` must be callable or None; got {metrics!r}")
    n_int, per_chunk, n_chunks = _check_sizes(steps, log_every, chunk_steps)
    update, init, hparams = _as_spec_parts(optimizer)
    if any(np.ndim(v) for v in hparams.values()):
        raise ValueError("argument `optimizer` sweeps hyperparameters (1-D values); "
                         "use dltheory.training.sweep for a grid")
    graphdef, p, aux = _split(params)
    batches = batches if is_batch_source(batches) else FullBatch(batches)
    prog = _Program(_wrap(loss_fn, graphdef), update, _wrap(metrics, graphdef), log_every,
                    per_chunk)
    carry = (p, init(p, hparams), jnp.asarray(0, jnp.int32), jnp.asarray(-1, jnp.int32))
    carry, log_steps, out, div = _drive(prog, False, None, carry, batches, aux, eval_data,
                                        _key("key", key), steps, n_int, per_chunk, n_chunks,
                                        progress, "train")
    d = int(div)
    final_params = carry[0] if graphdef is None else nnx.merge(graphdef, carry[0], aux)
    result = RunResult(log_steps, out, final_params, carry[1], None if d < 0 else d, steps)
    if result.diverged and warn:
        warnings.warn(f"loss became non-finite: {result.status}", DivergenceWarning,
                      stacklevel=2)
    return result


_keys_from_seeds = jax.jit(jax.vmap(jax.random.key))


@functools.lru_cache(maxsize=128)
def _probe(init: Callable) -> tuple[Any, Any]:
    """(graphdef, non-parameter state) of what ``init`` builds, from one eager call."""
    graphdef, _, aux = _split(init(jax.random.key(0)))
    return graphdef, aux


@functools.lru_cache(maxsize=128)
def _grid_init(init: Callable | None, init_opt: Callable) -> Callable:
    """Compiled initialization of a grid: parameters per key (if ``init``) and optimizer
    states per member. Cached on the functions, so a repeated sweep does not re-trace."""
    if init is None:
        return jax.jit(jax.vmap(init_opt))

    def make(keys, hp):
        params = jax.vmap(lambda k: _split(init(k))[1])(keys)
        return params, jax.vmap(init_opt)(params, hp)

    return jax.jit(make)


def _grid_size(seeds, spec_size, batches, batch_axis) -> int:
    sizes = {}
    if seeds is not None:
        sizes["seeds"] = len(seeds)
    if spec_size is not None:
        sizes["optimizer hyperparameters"] = spec_size
    if batch_axis is not None:
        leaves = jax.tree.leaves(batches)
        if not leaves:
            raise ValueError("argument `batch_axis` is 0 but `batches` holds no arrays")
        lens = {int(np.shape(leaf)[0]) for leaf in leaves}
        if len(lens) != 1:
            raise ValueError(f"argument `batches` must have one leading grid size; got {lens}")
        sizes["batches"] = lens.pop()
    if not sizes:
        raise ValueError("a sweep needs a grid: give `seeds`, a 1-D optimizer "
                         "hyperparameter, or `batches` stacked with `batch_axis=0`")
    if len(set(sizes.values())) != 1:
        detail = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        raise ValueError(f"the grid sizes disagree ({detail}); they must all be equal")
    return next(iter(sizes.values()))


def _pad(tree: Any, size: int) -> Any:
    """Pad the leading axis to ``size`` by repeating the last member."""
    def pad(a):
        n = a.shape[0]
        if n == size:
            return a
        reps = jnp.repeat(a[-1:], size - n, axis=0)
        return jnp.concatenate([a, reps], axis=0)
    return jax.tree.map(pad, tree)


def sweep(loss_fn: Callable[[Any, Any], jax.Array], init: Any,
          optimizer: OptimizerSpec | optax.GradientTransformation, *, steps: int,
          seeds: Sequence[int] | None = None, batches: Any = None,
          batch_axis: int | None = None, key: int | jax.Array = 0, log_every: int = 1,
          metrics: Callable[[Any, Any], Mapping[str, jax.Array]] | None = None,
          eval_data: Any = None, chunk_steps: int | None = None,
          progress: bool | None = None,
          devices: Sequence[jax.Device] | None = None) -> SweepResult:
    """Run a grid of trainings as one vmapped, compiled call.

    The grid is given by any of: ``seeds`` (one run per seed: its key initializes the
    parameters and drives the batch source), 1-D hyperparameters in
    ``optimizer(...)`` (one run per value), and ``batches`` stacked on a leading axis
    with ``batch_axis=0`` (one problem per member). Given together they must have the
    same length and are zipped, not crossed. Without ``seeds`` every member uses ``key``.

    The grid axis is sharded over ``devices`` (default ``jax.devices()``), padded to a
    multiple of their number; one device or many gives the same numbers.

    Args:
      loss_fn: as in :func:`train`.
      init: ``init(key) -> params`` (a pytree or an nnx module), called per member, or
        initial parameters shared by all members. Like any jitted function, ``init`` is
        traced once and the compiled version reused on later sweeps with the same
        ``init``: pass a new function if it reads globals that changed.
      optimizer: as in :func:`train`; 1-D numeric hyperparameters are swept.
      steps, log_every, metrics, eval_data, chunk_steps, progress: as in :func:`train`.
      seeds: integer seeds, one per member.
      batches: a batch source, a full-batch pytree, or (``batch_axis=0``) a pytree
        whose leaves are stacked per member.
      batch_axis: ``None`` (shared batches) or ``0`` (stacked per member).
      key: the key shared by all members when ``seeds`` is not given.
      devices: devices to shard the grid over.

    Returns:
      A :class:`SweepResult` with metrics of shape ``(grid, n_log)``.
    """
    if not callable(loss_fn):
        raise TypeError(f"argument `loss_fn` must be callable; got {loss_fn!r}")
    if batch_axis not in (None, 0):
        raise ValueError(f"argument `batch_axis` must be None or 0; got {batch_axis!r}")
    if seeds is not None:
        seeds = [V.check_int("seeds[i]", s, minimum=0, maximum=2**32 - 1) for s in seeds]
        if not seeds:
            raise ValueError("argument `seeds` must not be empty")
    n_int, per_chunk, n_chunks = _check_sizes(steps, log_every, chunk_steps)
    update, init_opt, hparams = _as_spec_parts(optimizer)
    spec_size = optimizer.grid_size() if isinstance(optimizer, OptimizerSpec) else None
    if batch_axis == 0 and is_batch_source(batches):
        raise ValueError("argument `batch_axis=0` stacks full batches; a batch source "
                         "is shared by all members (vary its key with `seeds`)")
    g = _grid_size(seeds, spec_size, batches, batch_axis)
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("argument `devices` must name at least one device")
    padded = math.ceil(g / len(devices)) * len(devices)

    if seeds is not None:  # one compiled call, not one dispatch per seed
        keys = _keys_from_seeds(np.asarray(seeds, dtype=np.uint32))
    else:
        keys = jnp.broadcast_to(_key("key", key), (g,))
    hp = {k: jnp.broadcast_to(jnp.asarray(v), (g,)) for k, v in hparams.items()}

    if callable(init) and not isinstance(init, nnx.Module):
        graphdef, aux = _probe(init)
        params, opt_state = _grid_init(init, init_opt)(keys, hp)
    else:
        graphdef, p, aux = _split(init)
        params = jax.tree.map(lambda a: jnp.broadcast_to(a, (g,) + jnp.shape(a)), p)
        opt_state = _grid_init(None, init_opt)(params, hp)

    batches = batches if is_batch_source(batches) else FullBatch(batches)
    stacked = (params, opt_state, keys, batches if batch_axis == 0 else None)
    if padded != g:
        stacked = _pad(stacked, padded)
    params, opt_state, keys, stacked_batches = stacked
    if batch_axis == 0:
        batches = stacked_batches
    carry = (params, opt_state, jnp.zeros((padded,), jnp.int32),
             jnp.full((padded,), -1, jnp.int32))

    if len(devices) > 1:
        mesh = jax.sharding.Mesh(np.array(devices), ("grid",))
        split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("grid"))
        same = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        carry, keys = jax.device_put((carry, keys), split)
        batches = jax.device_put(batches, split if batch_axis == 0 else same)
        aux, eval_data = jax.device_put((aux, eval_data), same)
    elif devices[0] != jax.devices()[0]:
        carry, keys, batches, aux, eval_data = jax.device_put(
            (carry, keys, batches, aux, eval_data), devices[0])

    prog = _Program(_wrap(loss_fn, graphdef), update, _wrap(metrics, graphdef), log_every,
                    per_chunk)
    carry, log_steps, out, div = _drive(prog, True, batch_axis, carry, batches, aux,
                                        eval_data, keys, steps, n_int, per_chunk, n_chunks,
                                        progress, f"sweep x{g}")
    out = {k: v[:g] for k, v in out.items()}
    params = jax.tree.map(lambda a: a[:g], carry[0])
    opt_state = jax.tree.map(lambda a: a[:g], carry[1])
    return SweepResult(log_steps, out, params, opt_state, np.asarray(div)[:g], steps,
                       graphdef, aux)
