"""The engine's two entry points: :func:`train` (one run) and :func:`sweep` (a grid)."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dltheory import validation as V
from dltheory.data import FullBatch, is_batch_source
from dltheory.training.loop import (DivergenceWarning, _check_sizes, _drive, _key, _Program,
                                    _split, _wrap)
from dltheory._jit import jit
from dltheory.training.optim import OptimizerSpec, _as_spec_parts
from dltheory.training.results import RunResult, SweepResult

__all__ = ["train", "sweep"]


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
    key = _key("key", key)
    update, init, hparams = _as_spec_parts(optimizer)
    if any(np.ndim(v) for v in hparams.values()):
        raise ValueError("argument `optimizer` sweeps hyperparameters (1-D values); "
                         "use dltheory.training.sweep for a grid")
    graphdef, p, aux = _split(params)
    _check_params("params", p)
    batches = batches if is_batch_source(batches) else FullBatch(batches)
    prog = _Program(_wrap(loss_fn, graphdef), update, _wrap(metrics, graphdef), log_every,
                    per_chunk)
    carry = (p, init(p, hparams), jnp.asarray(0, jnp.int32), jnp.asarray(-1, jnp.int32))
    carry, log_steps, out, div = _drive(prog, False, None, carry, batches, aux, eval_data,
                                        key, steps, n_int, per_chunk, n_chunks,
                                        progress, "train")
    d = int(div)
    final_params = carry[0] if graphdef is None else nnx.merge(graphdef, carry[0], aux)
    result = RunResult(log_steps, out, final_params, carry[1], None if d < 0 else d, steps)
    if result.diverged and warn:
        warnings.warn(f"loss became non-finite: {result.status}", DivergenceWarning,
                      stacklevel=2)
    return result


def _check_params(name: str, params: Any) -> None:
    """Trainable parameters: at least one array, every leaf a floating array."""
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError(f"argument `{name}` must hold at least one parameter array to train; "
                         f"got {params!r}")
    for leaf in leaves:
        try:
            ok = not isinstance(leaf, (str, bytes, bool)) and jnp.issubdtype(
                jnp.result_type(leaf), jnp.inexact)
        except TypeError:
            ok = False
        if not ok:
            raise TypeError(f"argument `{name}` must be a pytree of floating arrays (or an "
                            f"nnx module); it holds {leaf!r}")


_keys_from_seeds = jit(jax.vmap(jax.random.key))


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
        return jit(jax.vmap(init_opt))

    def make(keys, hp):
        params = jax.vmap(lambda k: _split(init(k))[1])(keys)
        return params, jax.vmap(init_opt)(params, hp)

    return jit(make)


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
    if metrics is not None and not callable(metrics):
        raise TypeError(f"argument `metrics` must be callable or None; got {metrics!r}")
    if batch_axis not in (None, 0):
        raise ValueError(f"argument `batch_axis` must be None or 0; got {batch_axis!r}")
    if seeds is not None:
        if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
            raise TypeError(f"argument `seeds` must be a sequence of integer seeds; got "
                            f"{seeds!r}")
        seeds = [V.check_seed("seeds[i]", s) for s in seeds]
        if not seeds:
            raise ValueError("argument `seeds` must not be empty")
    n_int, per_chunk, n_chunks = _check_sizes(steps, log_every, chunk_steps)
    key = _key("key", key)
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
        keys = jnp.broadcast_to(key, (g,))
    hp = {k: jnp.broadcast_to(jnp.asarray(v), (g,)) for k, v in hparams.items()}

    if not callable(init) or isinstance(init, nnx.Module):
        _check_params("init", _split(init)[1])
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
