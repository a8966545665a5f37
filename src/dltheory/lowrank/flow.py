"""Gradient flow on factorized matrices: small-step gradient descent, one compiled call.

The matrix ``W`` is a product of factors:

- ``depth=2, symmetric=True``: ``W = U U^T`` with ``U`` of shape ``(d, width)``;
- ``depth=2, symmetric=False``: ``W = U V^T``;
- ``depth=L >= 3``: ``W = U_1 U_2 ... U_L`` with shapes ``(d, w), (w, w), ..., (w, d)``.

Every factor starts at ``alpha * G`` with ``G`` i.i.d. standard normal, so the end-to-end
matrix starts at size ``alpha^L``. Gradient flow on ``L(U) = f(W(U))`` is approximated
by gradient descent with a small step ``lr`` (time ``t = k lr`` after ``k`` steps). The
runs of a grid of init scales, seeds and step sizes are one vmapped, jitted
``lax.scan`` in float64 (``dltheory.compat.enable_x64`` is switched on only inside the call), so a
sweep of 32 points is one compiled program and a second sweep of the same shapes
compiles nothing.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dltheory.compat import enable_x64
from dltheory import validation as V
from dltheory.lowrank.problems import LowRankProblem
from dltheory._jit import jit

__all__ = ["FlowResult", "end_to_end", "gradient_flow", "init_noise"]


@dataclasses.dataclass(frozen=True)
class FlowResult:
    """Runs of gradient descent with a small step on a factorized matrix.

    Attributes:
      init_scales, seeds, lrs: the grid, one entry per run, shape ``(n,)``.
      depth, width, symmetric: the factorization.
      steps: logged steps ``0, k, 2k, ..., steps``, shape ``(n_log,)``.
      loss: ``f(W)`` at the logged steps, shape ``(n, n_log)``.
      spectrum: singular values of ``W`` (decreasing), shape ``(n, n_log, d)``.
      final: ``W`` after the last step, shape ``(n, d, d)``.
      trajectory: ``W`` at the logged steps ``(n, n_log, d, d)``, or ``None``.
      references: matrices tracked at every step, ``(K, d, d)``, or ``None``.
      ref_min: ``min_k |W_k - R| / |R|`` over every step, per run and reference,
        shape ``(n, K)``.
      ref_argmin: the step of that minimum, shape ``(n, K)``.
      diverged_at: the step whose update stopped being finite, or -1, shape ``(n,)``;
        such a run is frozen at its last finite iterate.
    """

    init_scales: np.ndarray
    seeds: np.ndarray
    lrs: np.ndarray
    depth: int
    width: int
    symmetric: bool
    steps: np.ndarray
    loss: np.ndarray
    spectrum: np.ndarray
    final: np.ndarray
    trajectory: np.ndarray | None
    references: np.ndarray | None
    ref_min: np.ndarray
    ref_argmin: np.ndarray
    diverged_at: np.ndarray

    @property
    def times(self) -> np.ndarray:
        """Continuous time ``t = k lr`` of the logged steps, shape ``(n, n_log)``."""
        return self.lrs[:, None] * self.steps[None, :]

    def __len__(self) -> int:
        return len(self.init_scales)


def _shapes(d: int, width: int, depth: int, symmetric: bool) -> list[tuple[int, int]]:
    if symmetric:
        return [(d, width)]
    return [(d, width)] + [(width, width)] * (depth - 2) + [(width, d)]


def end_to_end(factors: Any, symmetric: bool) -> Any:
    """``W`` from its factors: ``U U^T`` if ``symmetric``, else ``U_1 U_2 ... U_L``."""
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"argument `symmetric` must be a bool; got {symmetric!r}")
    if not isinstance(factors, (tuple, list)) or not factors:
        raise ValueError(f"argument `factors` must be a non-empty sequence of matrices; got "
                         f"{V._describe(factors)}")
    shapes = [jnp.shape(f) for f in factors]
    if symmetric and len(factors) != 1:
        raise ValueError(f"argument `factors` must hold one matrix U when `symmetric` (W = U "
                         f"U^T); got {len(factors)} of shapes {shapes}")
    if any(len(sh) != 2 for sh in shapes) or any(
            a[1] != b[0] for a, b in zip(shapes[:-1], shapes[1:])):
        raise ValueError(f"argument `factors` must be matrices whose shapes chain "
                         f"((d, w), (w, w), ..., (w, d)); got {shapes}")
    if symmetric:
        (u,) = factors
        return u @ u.T
    return functools.reduce(lambda a, b: a @ b, factors)


def _apply(kind: str, data: Any, e: Any) -> Any:
    if kind == "completion":
        return data * e
    return (data @ e.reshape(-1)).reshape(e.shape)


@functools.partial(jit, static_argnames=("kind", "shapes", "symmetric", "n_log",
                                             "log_every", "keep"))
def _run(data, target, refs, alphas, noise, lrs, *, kind, shapes, symmetric, n_log,
         log_every, keep):
    ref_norm = jnp.sqrt(jnp.sum(refs**2, axis=(1, 2)))

    def loss_fn(factors):
        e = end_to_end(factors, symmetric) - target
        return 0.5 * jnp.sum(e * _apply(kind, data, e))

    def distances(factors):
        w = end_to_end(factors, symmetric)
        return jnp.sqrt(jnp.sum((w[None] - refs) ** 2, axis=(1, 2))) / ref_norm

    def one(alpha, g, lr):
        factors = tuple(alpha * gi for gi in g)

        def step(carry, _):
            factors, best, arg, k, div = carry
            dist = distances(factors)
            better = dist < best
            best = jnp.where(better, dist, best)
            arg = jnp.where(better, k, arg)
            loss, grads = jax.value_and_grad(loss_fn)(factors)
            new = tuple(f - lr * g for f, g in zip(factors, grads))
            w_new = end_to_end(new, symmetric)
            finite = jnp.isfinite(loss) & jnp.isfinite(jnp.sum(w_new * w_new))
            div = jnp.where(~finite & (div < 0), k, div)
            # a diverging run stays at its last finite iterate
            frozen = div >= 0
            factors = tuple(jnp.where(frozen, f, n) for f, n in zip(factors, new))
            return (factors, best, arg, k + 1, div), None

        def record(factors):
            w = end_to_end(factors, symmetric)
            # singular values as square roots of eig(W^T W): eigvalsh compiles and runs
            # much faster than an SVD on CPU (accurate down to sqrt(eps) |W|)
            ev = jnp.linalg.eigvalsh(w.T @ w)[::-1]
            out = {"loss": loss_fn(factors), "sv": jnp.sqrt(jnp.maximum(ev, 0.0))}
            if keep:
                out["w"] = w
            return out

        def block(carry, _):
            carry, _ = jax.lax.scan(step, carry, None, length=log_every)
            return carry, record(carry[0])

        k_refs = refs.shape[0]
        carry = (factors, jnp.full((k_refs,), jnp.inf, target.dtype),
                 jnp.zeros((k_refs,), jnp.int32), jnp.int32(0), jnp.int32(-1))
        first = record(factors)
        carry, logs = jax.lax.scan(block, carry, None, length=n_log)
        logs = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, logs)
        factors, best, arg, _, div = carry
        # the last iterate is also a candidate for the minimum
        dist = distances(factors)
        better = dist < best
        best = jnp.where(better, dist, best)
        arg = jnp.where(better, n_log * log_every, arg)
        return logs, end_to_end(factors, symmetric), best, arg, div

    return jax.vmap(one)(alphas, noise, lrs)


def init_noise(seed: int, shapes: Any) -> tuple[np.ndarray, ...]:
    """The unit-scale initial factors ``G`` of one run: i.i.d. ``N(0, 1)`` from numpy's
    ``default_rng(seed)``, one array per shape (drawn in numpy: compiling JAX's
    float64 random number generator costs seconds on CPU)."""
    rng = np.random.default_rng(V.check_seed("seed", seed))
    if isinstance(shapes, (str, bytes)) or not hasattr(shapes, "__iter__"):
        raise TypeError(f"argument `shapes` must be a sequence of shapes; got {shapes!r}")
    shapes = tuple(shapes)
    for s in shapes:
        if not isinstance(s, (tuple, list)) or not all(
                isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0
                for n in s):
            raise ValueError(f"argument `shapes` must hold tuples of integers >= 0; got "
                             f"{shapes!r}")
    return tuple(rng.standard_normal(s) for s in shapes)


def _as_1d(name: str, value: Any, kind: type, positive: bool = True) -> np.ndarray:
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"argument `{name}` must be a number or a non-empty 1-D sequence of "
                        f"numbers; got {value!r}")
    arr = np.atleast_1d(np.asarray(value))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"argument `{name}` must be a number or a non-empty 1-D sequence; "
                         f"got {value!r}")
    if kind is int:
        if not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 0):
            raise ValueError(f"argument `{name}` must hold integers >= 0; got {value!r}")
        return arr.astype(np.int64)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"argument `{name}` must hold numbers; got {value!r}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)) or (positive and np.any(arr <= 0)):
        raise ValueError(f"argument `{name}` must hold finite numbers > 0; got {value!r}")
    return arr


def _check_problem(problem: Any) -> LowRankProblem:
    if not isinstance(problem, LowRankProblem):
        raise TypeError(f"argument `problem` must be a LowRankProblem (see "
                        f"matrix_completion_problem); got {type(problem).__name__}")
    return problem


def _check_run(problem: Any, *, init_scales: Any, seeds: Any, lrs: Any, depth: Any,
               symmetric: Any, width: Any, steps: Any, log_every: Any, references: Any,
               keep_trajectory: Any) -> dict[str, Any]:
    """Every argument of :func:`gradient_flow` checked (nothing is computed)."""
    d = _check_problem(problem).d
    depth = V.check_int("depth", depth, minimum=2, maximum=16)
    if symmetric is None:
        symmetric = depth == 2
    if not isinstance(symmetric, bool):
        raise TypeError(f"argument `symmetric` must be a bool or None; got {symmetric!r}")
    if symmetric and depth != 2:
        raise ValueError(f"argument `symmetric=True` needs depth 2 (W = U U^T); got "
                         f"depth={depth}")
    width = d if width is None else V.check_int("width", width, minimum=1, maximum=4 * d)
    steps, log_every = V.check_steps(steps, log_every)
    if not isinstance(keep_trajectory, (bool, np.bool_)):
        raise TypeError(f"argument `keep_trajectory` must be a bool; got {keep_trajectory!r}")
    if references is None:
        refs = None
    else:
        refs = V.check_array("references", references, ndim=(2, 3))
        if refs.ndim == 2:
            refs = refs[None]
        V.check_shape("references", refs, (None, d, d))
        if np.any(np.linalg.norm(refs, axis=(1, 2)) == 0):
            raise ValueError("argument `references` must not contain a zero matrix (the "
                             "distances are relative to it)")
    return {"init_scales": _as_1d("init_scales", init_scales, float),
            "seeds": _as_1d("seeds", seeds, int), "lrs": _as_1d("lrs", lrs, float),
            "depth": depth, "symmetric": symmetric, "width": width, "steps": steps,
            "log_every": log_every, "references": refs}


def gradient_flow(problem: LowRankProblem, *, init_scales: Any = 1e-3, seeds: Any = 0,
                  lrs: Any = 0.02, depth: int = 2, symmetric: bool | None = None,
                  width: int | None = None, steps: int = 2000, log_every: int = 10,
                  references: Any = None, keep_trajectory: bool = False) -> FlowResult:
    """Small-step gradient descent on ``f(W)`` with ``W`` a depth-``L`` factorization.

    The grid is the product ``init_scales x seeds x lrs`` (init scale slowest), run as
    one vmapped, compiled call in float64.

    Args:
      problem: a :class:`~dltheory.lowrank.LowRankProblem`.
      init_scales: ``alpha > 0``: every factor starts at ``alpha G`` with ``G`` i.i.d.
        ``N(0, 1)``; a number or a 1-D sequence.
      seeds: integer seed(s) of ``G``.
      lrs: step size(s) ``eta > 0``; the run approximates gradient flow up to time
        ``steps * eta``.
      depth: number of factors ``L >= 2``.
      symmetric: ``W = U U^T`` (needs ``depth == 2``); default: ``True`` for depth 2.
      width: inner dimension ``w >= 1`` (default ``d``). A width below the target's
        rank is allowed: the under-parameterized case.
      steps: number of steps, a multiple of ``log_every``.
      log_every: record loss and singular values every this many steps.
      references: optional matrices ``(K, d, d)`` (e.g. the GLRL iterates); the
        relative distance ``|W - R| / |R|`` to each is minimized over *every* step.
      keep_trajectory: also return ``W`` at the logged steps.

    Returns:
      A :class:`FlowResult`. A run whose loss stops being finite is frozen and
      reports the step in ``diverged_at``.

    References:
      Li, Luo, Lyu (2021), arXiv:2012.09839 (depth 2 and deep factorizations);
      Jin, Li, Lyu, Du, Lee (2023), arXiv:2301.11500 (GD from small init).
    """
    c = _check_run(problem, init_scales=init_scales, seeds=seeds, lrs=lrs, depth=depth,
                   symmetric=symmetric, width=width, steps=steps, log_every=log_every,
                   references=references, keep_trajectory=keep_trajectory)
    d = problem.d
    depth, symmetric, width = c["depth"], c["symmetric"], c["width"]
    steps, log_every = c["steps"], c["log_every"]
    seed_arr = c["seeds"]
    a, s, l = np.meshgrid(c["init_scales"], seed_arr, c["lrs"], indexing="ij")
    a, s, l = a.ravel(), s.ravel(), l.ravel()
    refs = np.zeros((0, d, d)) if c["references"] is None else c["references"]
    shapes = tuple(_shapes(d, width, depth, symmetric))
    per_seed = {int(k): init_noise(int(k), shapes) for k in seed_arr}
    noise = tuple(np.stack([per_seed[int(k)][i] for k in s]) for i in range(len(shapes)))
    with enable_x64(True):
        logs, final, best, arg, div = _run(
            jnp.asarray(problem.data(), jnp.float64), jnp.asarray(problem.target, jnp.float64),
            jnp.asarray(refs, jnp.float64), jnp.asarray(a, jnp.float64),
            tuple(jnp.asarray(g, jnp.float64) for g in noise), jnp.asarray(l, jnp.float64),
            kind=problem.kind,
            shapes=shapes, symmetric=symmetric, n_log=steps // log_every,
            log_every=log_every, keep=bool(keep_trajectory))
        logs = jax.tree.map(np.asarray, logs)
        final, best, arg, div = (np.asarray(x) for x in (final, best, arg, div))
    return FlowResult(
        init_scales=a, seeds=s, lrs=l, depth=depth, width=width, symmetric=symmetric,
        steps=np.arange(0, steps + 1, log_every), loss=logs["loss"], spectrum=logs["sv"],
        final=final, trajectory=logs.get("w"), references=None if references is None else refs,
        ref_min=best, ref_argmin=arg.astype(np.int64), diverged_at=div.astype(np.int64))
