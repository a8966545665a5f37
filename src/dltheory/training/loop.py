"""The compiled training loop: ``lax.scan`` chunks under ``jit``, divergence, progress.

Everything static about a run (the loss, the optimizer's update, the metrics, the sizes)
is a hashable :class:`_Program`; the compiled chunk is cached on it, so a second run with
new numbers of the same shapes reuses the compiled code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dltheory import data
from dltheory._jit import jit
from dltheory import validation as V

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
# Losses on pytrees or on nnx modules, as hashable static functions
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _PlainFn:
    fn: Callable

    def __call__(self, params, aux, *args):
        return self.fn(params, *args)


@dataclasses.dataclass(frozen=True)
class _NnxFn:
    fn: Callable
    graphdef: Any

    def __call__(self, params, aux, *args):
        return self.fn(nnx.merge(self.graphdef, params, aux), *args)


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


def _chunk(prog: _Program, carry, batches, aux, eval_data, key, total_steps, first):
    """Run ``prog.intervals`` logging intervals of ``prog.log_every`` steps from step
    ``first``; return the carry and the record taken at the start of each interval.

    An interval that starts at or after ``total_steps`` takes no step: it only records
    (the run's final record, at its last parameters, is the record of the first such
    interval). ``first`` and ``total_steps`` are the same for every run of a vmapped
    sweep, so the branch stays a branch under ``vmap``.
    """

    def one_step(carry, item):
        params, opt_state, step, diverged_at = carry
        batch = data.take_batch(batches, key, item)
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

    def steps(carry, items):
        if prog.log_every == 1:  # no inner loop: a length-1 scan costs a loop per step
            return one_step(carry, jax.tree.map(lambda a: a[0], items))
        carry, losses = jax.lax.scan(one_step, carry, items)
        return carry, losses[0]

    def past_the_end(carry, items):
        params, opt_state, step, diverged_at = carry
        batch = data.take_batch(batches, key, jax.tree.map(lambda a: a[0], items))
        loss = prog.loss(params, aux, batch)
        return (params, opt_state, step + prog.log_every, diverged_at), loss

    def interval(carry, xs):
        i, items = xs
        params, _, step, _ = carry
        rec = _record(prog, params, aux, eval_data)
        start = first + i * prog.log_every
        carry, loss = jax.lax.cond(start < total_steps, steps, past_the_end, carry, items)
        rec["loss"] = loss
        rec["step"] = step
        return carry, rec

    # what the batch source can prepare for the whole chunk at once (for minibatches: each
    # epoch's permutation, drawn once instead of at every step)
    plan = data.plan_batches(batches, key, carry[2], prog.intervals * prog.log_every)
    plan = jax.tree.map(lambda a: a.reshape(prog.intervals, prog.log_every, *a.shape[1:]),
                        plan)
    return jax.lax.scan(interval, carry, (jnp.arange(prog.intervals, dtype=jnp.int32), plan))


@functools.lru_cache(maxsize=128)
def _compiled(prog: _Program, vmapped: bool, batch_axis: int | None):
    chunk = functools.partial(_chunk, prog)
    if vmapped:
        chunk = jax.vmap(chunk, in_axes=(0, batch_axis, None, None, 0, None, None))
    return jit(chunk)


# --------------------------------------------------------------------------------------
# Compilation counting (tests and benchmarks)
# --------------------------------------------------------------------------------------

_COMPILES = [0]
#: The spans of time spent compiling, as disjoint (start, end) pairs in order, and their
#: total length.
_COMPILE_SPANS: list[tuple[float, float]] = []
_COMPILE_TOTAL = [0.0]
_now = time.perf_counter
_LISTENING = [False]
#: The events whose durations make up a program's compile time: tracing, lowering to MLIR
#: and XLA's backend compilation. Tracing nests (a jitted function traced inside another
#: reports its own event), so the events' time spans are merged, not summed.
_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")


def _on_event(event: str, duration: float = 0.0, *args: Any, **kwargs: Any) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1
    if event in _COMPILE_EVENTS:
        end = _now()  # the event is reported as it ends
        start = end - float(duration)
        spans = _COMPILE_SPANS
        # an event ends after every event it contains: merge it with the spans it covers
        while spans and spans[-1][1] >= start:
            s0, e0 = spans.pop()
            _COMPILE_TOTAL[0] -= e0 - s0
            start = min(start, s0)
        spans.append((start, end))
        _COMPILE_TOTAL[0] += end - start


def _listen() -> None:
    if not _LISTENING[0]:
        jax.monitoring.register_event_duration_secs_listener(_on_event)
        _LISTENING[0] = True


def compile_seconds() -> float:
    """Seconds this process has spent compiling (tracing, lowering and XLA compilation)
    since the first call of this function or of :func:`count_compilations`; take the
    difference of two calls to time a block's compiling."""
    _listen()
    return _COMPILE_TOTAL[0]


@contextlib.contextmanager
def count_compilations() -> Iterator[Callable[[], int]]:
    """Count XLA compilations inside the block.

    Example::

        with count_compilations() as compiled:
            train(...)
        print(compiled())   # number of XLA programs compiled in the block
    """
    _listen()
    start = _COMPILES[0]
    yield lambda: _COMPILES[0] - start


# --------------------------------------------------------------------------------------
# Driving the chunks from Python
# --------------------------------------------------------------------------------------


def _key(name: str, key: Any) -> jax.Array:
    return V.check_key(name, key)


def _check_sizes(steps: int, log_every: int, chunk_steps: int | None) -> tuple[int, int, int]:
    """``(n_int, per_chunk, n_chunks)``: the logging intervals of a run, and how many of
    them each compiled chunk holds and how many chunks run. The chunks hold at least
    ``n_int + 1`` intervals: the last record, at the final parameters, is taken by the
    first interval past the end."""
    steps, log_every = V.check_steps(steps, log_every)
    chunk_steps = DEFAULT_CHUNK_STEPS if chunk_steps is None else V.check_int(
        "chunk_steps", chunk_steps, minimum=1)
    n_int = steps // log_every
    records = n_int + 1
    per_chunk = max(1, min(records, chunk_steps // log_every))
    # spread the intervals evenly so the last chunk wastes as little as possible
    n_chunks = math.ceil(records / per_chunk)
    per_chunk = math.ceil(records / n_chunks)
    return n_int, per_chunk, n_chunks


def _auto_progress() -> bool:
    """Automatic progress bars are on unless ``DLTHEORY_PROGRESS=0`` (the book build)."""
    from dltheory.config import progress_bars

    return progress_bars()


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
    chunk_fn = _compiled(prog, vmapped, batch_axis)
    total = jnp.asarray(steps, jnp.int32)
    records = []
    bar = _Progress(steps, progress, desc)
    per = per_chunk * prog.log_every
    try:
        for c in range(n_chunks):
            first = jnp.asarray(c * per, jnp.int32)
            carry, rec = chunk_fn(carry, batches, aux, eval_data, keys, total, first)
            records.append(rec)
            diverged_at = np.asarray(carry[3])
            bar.update(max(0, min(per, steps - c * per)))
            if np.all(diverged_at >= 0):
                break
    finally:
        bar.close()
    axis = 1 if vmapped else 0  # the log axis of every record
    rec = {k: np.concatenate([np.asarray(r[k]) for r in records], axis=axis)
           for k in records[0] if k != "step"}
    # the chunks may run past the final record: keep the records that belong to the run
    rec = {k: np.take(v, np.arange(min(n_int + 1, v.shape[axis])), axis=axis)
           for k, v in rec.items()}
    log_steps = np.arange(n_int + 1) * prog.log_every
    diverged_at = np.asarray(carry[3])
    out = {}
    for k, v in rec.items():
        dtype = np.result_type(v, np.float32)
        missing = n_int + 1 - v.shape[axis]
        if missing:  # stopped early because every run diverged
            shape = list(v.shape)
            shape[axis] = missing
            v = np.concatenate([v.astype(dtype), np.full(shape, np.nan, dtype)], axis=axis)
        full = v.astype(dtype)
        # nothing after a divergence is a measurement: blank it out
        after = (diverged_at[..., None] >= 0) & (log_steps >= diverged_at[..., None])
        after = after.reshape(after.shape + (1,) * (full.ndim - after.ndim))
        out[k] = np.where(after, np.nan, full)
    return carry, log_steps, out, diverged_at


