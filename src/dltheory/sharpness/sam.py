"""Sharpness-aware minimization (SAM): which sharpness it minimizes, on a toy and on a net.

SAM (Foret et al. 2021) replaces the gradient step by a step with the gradient taken at a
point pushed uphill by ``rho`` along the normalized gradient::

    x <- x - eta * grad L(x + rho * grad L(x) / |grad L(x)|).

Full-batch SAM uses the whole loss ``L = (1/M) sum_k L_k``; 1-SAM draws one example
``k`` per step and uses ``L_k`` in both gradients. Wen, Ma, Li (2023) showed that near a
manifold of minimizers the two regularize different notions of sharpness: full-batch SAM
follows the Riemannian gradient flow of the largest Hessian eigenvalue ``lambda_1``, and
1-SAM that of the trace ``tr(H)``.

Here SAM is an optax transformation (:func:`sam`) that runs through the training engine
as two engine steps per SAM step: an ascent pass that moves the parameters to the
perturbed point, and a descent pass that returns to the origin and takes the step with the
gradient found there. Its numbers (``learning_rate``, ``rho``) sit in the optimizer
state, so a grid of them is one vmapped, compiled call (:func:`run_sam`). A batch source
(:class:`PairedExamples`) gives both passes of a SAM step the same examples.

References:
  Foret, Kleiner, Mobahi, Neyshabur (2021), Sharpness-Aware Minimization for Efficiently
  Improving Generalization, ICLR, arXiv:2010.01412;
  Wen, Ma, Li (2023), How Does Sharpness-Aware Minimization Minimize Sharpness?, ICLR,
  arXiv:2211.05729 (Definition 4.1, Theorems 4.5, 4.8 and 5.4).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.flatten_util import ravel_pytree

from dltheory import curvature, data, models, training
from dltheory import validation as V
from dltheory.config import Preset
from dltheory._jit import jit

__all__ = [
    "sam", "sam_optimizer", "PairedExamples", "SAMRun", "run_sam",
    "TOY_X0", "TOY_DATA", "toy_F", "toy_loss", "toy_curvatures", "sam_residual",
    "ToySizes", "ToyResult", "toy_experiment", "toy_grid", "toy_figure", "toy_explorer",
    "toy_one_sam_limit", "EtaResult", "toy_eta_sweep", "X1_LAMBDA_MIN", "X1_TRACE_MIN",
    "WIDGET_RHOS", "parity_digits", "parity_loss", "example_curvatures", "DigitsSizes",
    "DigitsResult", "digits_experiment",
]


# --------------------------------------------------------------------------------------
# SAM as an optax transformation, and the batches of its two passes
# --------------------------------------------------------------------------------------


class _SAMState(NamedTuple):
    """The state of :func:`sam`: engine steps taken (two per SAM step) and the origin
    ``x_k`` of the current SAM step, kept during its descent pass."""

    count: jax.Array
    origin: Any


def sam(learning_rate: float, rho: float) -> optax.GradientTransformation:
    """SAM with step size ``learning_rate`` and radius ``rho``, as two passes.

    Even calls (the ascent pass) receive ``g = grad L(x)``, remember ``x`` and move the
    parameters to ``x + rho g / |g|``; odd calls (the descent pass) receive the gradient
    at that point and move the parameters to ``x - learning_rate * grad L(x + ...)``.
    One SAM step is therefore two steps of :func:`dltheory.training.train`, and both
    must see the same batch (:class:`PairedExamples`, or a full batch). With ``rho = 0``
    it is gradient descent (each gradient computed twice).

    Args:
      learning_rate: the step size ``eta`` (> 0).
      rho: the radius of the ascent step (>= 0).

    Returns:
      An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    References:
      Foret et al. (2021), arXiv:2010.01412, Eq. (2) and Algorithm 1 (here without the
      base optimizer: the descent pass is a plain gradient step).
    """
    for name, v in (("learning_rate", learning_rate), ("rho", rho)):
        if not hasattr(v, "dtype"):  # numbers are checked; arrays (the injected state) not
            (V.check_positive if name == "learning_rate" else V.check_nonnegative)(name, v)

    def init(params):
        return _SAMState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("sam's update needs `params` (the point of the ascent pass)")
        ascend = state.count % 2 == 0
        norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
        scale = rho / jnp.maximum(norm, jnp.finfo(norm.dtype).tiny)
        updates = jax.tree.map(
            lambda g, x, o: jnp.where(ascend, scale * g, o - x - learning_rate * g).astype(
                x.dtype), grads, params, state.origin)
        origin = jax.tree.map(lambda x, o: jnp.where(ascend, x, o), params, state.origin)
        return updates, _SAMState(state.count + 1, origin)

    return optax.GradientTransformation(init, update)


def _grid_values(name: str, value: Any, *, positive: bool) -> np.ndarray:
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise TypeError(f"argument `{name}` must be a number or a 1-D array of numbers; got "
                        f"{value!r}")
    arr = V.check_array(name, value, ndim=(0, 1), positive=positive, nonnegative=True)
    return arr.reshape(-1)


def sam_optimizer(learning_rate: Any, rho: Any) -> training.OptimizerSpec:
    """:func:`sam` for the engine, its numbers in the optimizer state (1-D arrays sweep).

    Args:
      learning_rate: ``eta`` > 0, a number or a 1-D array (one value per grid member).
      rho: the radius >= 0, a number or a 1-D array of the same length.
    """
    lr = _grid_values("learning_rate", learning_rate, positive=True)
    r = _grid_values("rho", rho, positive=False)
    if lr.size > 1 and r.size > 1 and lr.size != r.size:
        raise ValueError(f"arguments `learning_rate` and `rho` must have the same length when "
                         f"both are swept; got {lr.size} and {r.size}")

    def arg(given, a):
        return float(a[0]) if np.ndim(given) == 0 else jnp.asarray(a, jnp.float32)

    return training.optimizer(sam, learning_rate=arg(learning_rate, lr), rho=arg(rho, r))


@functools.partial(jax.tree_util.register_dataclass, data_fields=["data"],
                   meta_fields=["batch_size", "size"])
@dataclasses.dataclass(frozen=True)
class PairedExamples:
    """``batch_size`` examples drawn uniformly (with replacement) per SAM step, the same
    for its two engine steps (ascent and descent): engine steps ``2k`` and ``2k + 1``
    draw from ``fold_in(key, k)``. Build it with :meth:`of`."""

    data: Any
    batch_size: int
    size: int

    def __post_init__(self):
        V.check_int("size", self.size, minimum=1)
        V.check_int("batch_size", self.batch_size, minimum=1, maximum=self.size)

    @classmethod
    def of(cls, data_: Any, batch_size: int = 1) -> "PairedExamples":
        """Paired batches of ``batch_size`` from ``data_`` (arrays with one leading axis)."""
        n = data._leading_size(data_)
        return cls(data_, V.check_int("batch_size", batch_size, minimum=1, maximum=n), n)

    def sample(self, key: jax.Array, step: jax.Array) -> Any:
        idx = jax.random.randint(jax.random.fold_in(key, step // 2), (self.batch_size,), 0,
                                 self.size)
        return jax.tree.map(lambda a: jnp.take(a, idx, axis=0), self.data)


@dataclasses.dataclass(frozen=True)
class SAMRun:
    """A grid of SAM runs (:func:`run_sam`); steps count SAM steps.

    Attributes:
      steps: the logged SAM steps, shape ``(n_log,)``.
      metrics: name -> array of shape ``(grid, n_log, ...)`` (``"loss"`` is ``L(x_k)``).
      params: final parameters stacked on the grid axis (an nnx state for a model).
      diverged_at: shape ``(grid,)``: the SAM step whose loss was non-finite, or -1.
      total_steps: the SAM steps asked for.
      sweep: the engine's :class:`~dltheory.training.SweepResult` (engine steps).
    """

    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    params: Any
    diverged_at: np.ndarray
    total_steps: int
    sweep: training.SweepResult = dataclasses.field(repr=False)

    def status(self, i: int) -> str:
        """``"diverged at step k"`` (a SAM step) or ``"finished N steps"`` for member ``i``."""
        d = int(self.diverged_at[V.check_int("i", i, minimum=-len(self.diverged_at),
                                             maximum=len(self.diverged_at) - 1)])
        return f"diverged at step {d}" if d >= 0 else f"finished {self.total_steps} steps"

    def __getitem__(self, name: str) -> np.ndarray:
        return self.metrics[name]


def run_sam(loss_fn: Callable[[Any, Any], jax.Array], init: Any, data_: Any, *,
            learning_rate: Any, rho: Any, steps: int, batch_size: int | None = None,
            seeds: Sequence[int] | None = None, log_every: int = 1,
            metrics: Callable[[Any, Any], dict] | None = None, eval_data: Any = None,
            progress: bool | None = None) -> SAMRun:
    """Run SAM (full batch, or ``batch_size`` examples per step) for a grid of settings,
    as one vmapped, compiled call of :func:`dltheory.training.sweep`.

    The grid zips ``learning_rate``, ``rho`` and ``seeds`` (each a scalar, shared, or a
    1-D sequence of the grid's length). ``rho = 0`` is gradient descent (full batch) or
    SGD (one example).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, the mean loss over ``batch``
        (``loss_fn(model, batch)`` for an nnx module). A module-level function reuses
        the compiled program across calls.
      init: initial parameters shared by all members (a pytree or an nnx module), or
        ``init(key) -> params``.
      data_: the training set, arrays sharing a leading axis of examples.
      learning_rate, rho: ``eta > 0`` and ``rho >= 0``, numbers or 1-D arrays.
      steps: SAM steps (each is two engine steps), a multiple of ``log_every``.
      batch_size: ``None`` for full-batch SAM, else the examples per step (1: 1-SAM).
      seeds: seeds of the example draws (and of ``init(key)``), one per member.
      log_every: SAM steps between records.
      metrics, eval_data: as in :func:`dltheory.training.sweep`, recorded at ``x_k``.
      progress: as in :func:`dltheory.training.sweep`.

    Returns:
      A :class:`SAMRun`.

    Raises:
      ValueError: on a bad size, a negative ``rho``, a non-positive ``learning_rate`` or
        grid lengths that disagree.
    """
    V.check_callable("loss_fn", loss_fn)
    steps = V.check_int("steps", steps, minimum=1)
    log_every = V.check_int("log_every", log_every, minimum=1)
    V.check_steps(steps, log_every)
    lr = _grid_values("learning_rate", learning_rate, positive=True)
    r = _grid_values("rho", rho, positive=False)
    if seeds is not None:
        if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__"):
            raise TypeError(f"argument `seeds` must be a sequence of integer seeds; got "
                            f"{seeds!r}")
        seeds = [V.check_seed("seeds[i]", s) for s in seeds]
        if not seeds:
            raise ValueError("argument `seeds` must not be empty")
    sizes = {len(a) for a in (lr, r, seeds or [0]) if len(a) > 1}
    if len(sizes) > 1:
        raise ValueError(f"arguments `learning_rate`, `rho` and `seeds` must have one grid "
                         f"length (or length 1); got lengths {len(lr)}, {len(r)} and "
                         f"{len(seeds or [0])}")
    g = sizes.pop() if sizes else 1
    if batch_size is None:
        batches = data.FullBatch(data_)
    else:
        batches = PairedExamples.of(data_, batch_size)
    opt = sam_optimizer(np.broadcast_to(lr, g), np.broadcast_to(r, g))
    if seeds is not None and len(seeds) == 1 and g > 1:
        seeds = seeds * g
    res = training.sweep(loss_fn, init, opt, steps=2 * steps, batches=batches, seeds=seeds,
                         log_every=2 * log_every, metrics=metrics, eval_data=eval_data,
                         progress=progress)
    div = np.where(res.diverged_at >= 0, res.diverged_at // 2, -1)
    return SAMRun(res.steps // 2, res.metrics, res.params, div, steps, res)


# --------------------------------------------------------------------------------------
# The toy of the paper's first figure
# --------------------------------------------------------------------------------------

#: The toy's starting point ``(x1, x2, x3, x4)``.
TOY_X0 = (-1.0, 1.0, 1.0, 1.0)
#: The toy's two examples, ``k = 0`` for ``F1 x3^2`` and ``k = 1`` for ``F2 x4^2``.
TOY_DATA = {"k": np.arange(2, dtype=np.int32)}
#: Where the top eigenvalue and the trace are smallest on the manifold of minimizers.
X1_LAMBDA_MIN, X1_TRACE_MIN = 1.0, 1.0 / 3.0


def toy_F(x1: Any, x2: Any) -> tuple[Any, Any]:
    """``F1 = 4 + (x1 - 1)^2 + x2^2`` and ``F2 = 1 + (x1 + 1)^2 / 2 + x2^2 / 2`` (numbers or
    arrays, also traced)."""
    for name, v in (("x1", x1), ("x2", x2)):
        if isinstance(v, (str, bytes, bool)) or v is None:
            raise TypeError(f"argument `{name}` must be a number or an array; got {v!r}")
    return 4 + (x1 - 1) ** 2 + x2 ** 2, 1 + (x1 + 1) ** 2 / 2 + x2 ** 2 / 2


def toy_loss(x: jax.Array, batch: dict) -> jax.Array:
    """The mean over ``batch["k"]`` of the per-example losses ``L_0 = F1(x1, x2) x3^2`` and
    ``L_1 = F2(x1, x2) x4^2``; over both examples ``L = (F1 x3^2 + F2 x4^2) / 2``.

    Its minimizers are the plane ``x3 = x4 = 0``, where the Hessian is
    ``diag(0, 0, F1, F2)``: ``lambda_1 = F1`` (``F1 > F2`` near the minimizers the runs
    reach) is smallest at ``x1 = 1``, ``tr = F1 + F2`` at ``x1 = 1/3`` (both at ``x2 = 0``).
    Each ``L_k`` has a Hessian of rank one there, as in the setting of 1-SAM's theorem.
    """
    if jnp.shape(x) != (4,) or isinstance(x, (str, bytes)):
        raise ValueError(f"argument `x` must be an array of shape (4,); got "
                         f"{V._describe(x)}")
    if not isinstance(batch, dict) or "k" not in batch:
        raise TypeError(f"argument `batch` must be a dict with the example indices 'k' (as "
                        f"TOY_DATA); got {V._describe(batch)}")
    f1, f2 = toy_F(x[0], x[1])
    per = jnp.where(batch["k"] == 0, f1 * x[2] ** 2, f2 * x[3] ** 2)
    return per.mean()


def toy_curvatures(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(lambda_1, tr)`` of the Hessian at the minimizer below ``x`` (``x3 = x4 = 0``),
    for points ``x`` of shape ``(..., 4)``: ``max(F1, F2)`` and ``F1 + F2``."""
    x = V.check_array("x", x, nonempty=True)
    if x.shape[-1] != 4:
        raise ValueError(f"argument `x` must have shape (..., 4); got {x.shape}")
    f1, f2 = toy_F(x[..., 0], x[..., 1])
    return np.maximum(f1, f2), f1 + f2


def sam_residual(learning_rate: float, rho: float, lam: float) -> float:
    """``eta rho lambda / (2 - eta lambda)``: the distance from the minimizer of full-batch
    SAM's two-cycle along the top eigenvector of a quadratic with top eigenvalue ``lambda``.

    References:
      Wen, Ma, Li (2023), arXiv:2211.05729, Theorem 4.8.
    """
    eta, r, lam = (V.check_positive("learning_rate", learning_rate),
                   V.check_positive("rho", rho), V.check_positive("lam", lam))
    if eta * lam >= 2:
        raise ValueError(f"arguments `learning_rate` and `lam` need `learning_rate * lam` < 2 "
                         f"(a stable step); got learning_rate={learning_rate!r}, "
                         f"lam={lam!r} (product {eta * lam:g})")
    return eta * r * lam / (2 - eta * lam)


def _toy_metrics(x, _):
    return {"x": x}


@dataclasses.dataclass(frozen=True)
class ToySizes(Preset):
    """Sizes of the toy runs: SAM steps, 1-SAM seeds, logging, the widget's steps."""

    steps: int
    seeds: int
    log_every: int
    widget_steps: int
    widget_seeds: int

    @classmethod
    def quick(cls) -> "ToySizes":
        return cls(steps=60_000, seeds=8, log_every=500, widget_steps=30_000, widget_seeds=4)

    @classmethod
    def paper(cls) -> "ToySizes":
        return cls(steps=240_000, seeds=64, log_every=1000, widget_steps=120_000,
                   widget_seeds=16)


@dataclasses.dataclass(frozen=True)
class ToyResult:
    """Gradient descent, full-batch SAM and 1-SAM on the toy, from :data:`TOY_X0`.

    Attributes:
      steps: logged SAM steps, shape ``(n_log,)``.
      path_gd, path_full: the iterates of GD and full-batch SAM, shape ``(n_log, 4)``.
      paths_one: the iterates of 1-SAM, shape ``(seeds, n_log, 4)``.
      x1_gd, x1_full: final ``x1`` of GD and full-batch SAM.
      x1_one: 1-SAM's ``x1`` averaged over the seeds and the last quarter of the run.
      x1_one_sd: the spread (standard deviation) over seeds of that time average.
      x1_one_final: 1-SAM's final ``x1``, per seed.
      x1_one_predicted: :func:`toy_one_sam_limit` at this step size.
      residual: ``|x3|`` at the end of full-batch SAM (its two-cycle).
      predicted_residual: :func:`sam_residual` at ``lambda_1`` of the end point.
      lam1_full: ``lambda_1`` at the minimizer below the end of full-batch SAM.
      diverged: whether any run diverged; status: one line per run kind.
      learning_rate, rho: the settings.
    """

    steps: np.ndarray
    path_gd: np.ndarray
    path_full: np.ndarray
    paths_one: np.ndarray
    x1_gd: float
    x1_full: float
    x1_one: float
    x1_one_sd: float
    x1_one_final: np.ndarray
    x1_one_predicted: float
    residual: float
    predicted_residual: float
    lam1_full: float
    diverged: bool
    status: tuple[str, ...]
    learning_rate: float
    rho: float


def toy_experiment(sizes: ToySizes | None = None, *, learning_rate: float = 0.02,
                   rho: float = 0.1, x0: Sequence[float] = TOY_X0) -> ToyResult:
    """GD, full-batch SAM (one vmapped call) and 1-SAM over seeds (another) on the toy.

    Args:
      sizes: a :class:`ToySizes` (default: the current scale's).
      learning_rate, rho: SAM's ``eta`` and radius (the paper's figure: 0.02 and 0.1).
      x0: the starting point, 4 numbers.

    References:
      Wen, Ma, Li (2023), arXiv:2211.05729, Figure 1 (this family of losses) and
      Theorems 4.5, 4.8, 5.4.
    """
    sizes = ToySizes.current() if sizes is None else V.check_instance("sizes", sizes, ToySizes)
    lr = V.check_positive("learning_rate", learning_rate)
    r = V.check_positive("rho", rho)
    x0 = V.check_array("x0", x0, ndim=1)
    if x0.shape != (4,):
        raise ValueError(f"argument `x0` must hold 4 numbers; got shape {x0.shape}")
    x0 = jnp.asarray(x0, jnp.float32)
    full = run_sam(toy_loss, x0, TOY_DATA, learning_rate=lr, rho=[0.0, r], steps=sizes.steps,
                   log_every=sizes.log_every, metrics=_toy_metrics)
    one = run_sam(toy_loss, x0, TOY_DATA, learning_rate=lr, rho=r, steps=sizes.steps,
                  batch_size=1, seeds=range(sizes.seeds), log_every=sizes.log_every,
                  metrics=_toy_metrics)
    xs_full, xs_one = full["x"], one["x"]
    late = xs_one[:, -max(2, len(one.steps) // 4):, 0].mean(axis=1)
    end = np.asarray(full.params)[1]
    lam1 = float(toy_curvatures(end)[0])
    return ToyResult(
        steps=full.steps, path_gd=xs_full[0], path_full=xs_full[1], paths_one=xs_one,
        x1_gd=float(xs_full[0, -1, 0]), x1_full=float(end[0]), x1_one=float(late.mean()),
        x1_one_sd=float(late.std()), x1_one_final=xs_one[:, -1, 0],
        x1_one_predicted=toy_one_sam_limit(lr), residual=float(abs(end[2])),
        predicted_residual=sam_residual(lr, r, lam1), lam1_full=lam1,
        diverged=bool((full.diverged_at >= 0).any() or (one.diverged_at >= 0).any()),
        status=(f"GD: {full.status(0)}", f"SAM: {full.status(1)}",
                "1-SAM: " + "; ".join(sorted({one.status(i) for i in range(sizes.seeds)}))),
        learning_rate=lr, rho=r)


def toy_one_sam_limit(learning_rate: float) -> float:
    """Where 1-SAM's ``x1`` settles on the toy at step size ``eta`` (to first order in the
    distance from the minimizers, ``x2 = 0``): the root in ``(-1, 1)`` of

        dF1/dx1 / (1 - eta F1)^2 + dF2/dx1 / (1 - eta F2)^2 = 0.

    Example ``k``'s coordinate (``x3`` or ``x4``) sits on SAM's two-cycle at
    ``eta rho lambda_k / (2 - eta lambda_k)`` with ``lambda_k = 2 F_k``, so the ascent
    point is ``rho / (1 - eta F_k)`` away instead of ``rho``, and the drift of ``x1`` is
    ``-eta rho^2 dF_k/dx1 / (1 - eta F_k)^2``. At ``eta -> 0`` the root is ``1/3``, the
    minimizer of the trace; a derivation of this chapter, not of the paper.
    """
    eta = V.check_positive("learning_rate", learning_rate)
    if eta * toy_F(-1.0, 0.0)[0] >= 1:
        raise ValueError(f"argument `learning_rate` must be below 1/8 (eta F1 < 1 on "
                         f"[-1, 1]); got {learning_rate!r}")

    def drift(x1):
        f1, f2 = toy_F(x1, 0.0)
        return 2 * (x1 - 1) / (1 - eta * f1) ** 2 + (x1 + 1) / (1 - eta * f2) ** 2

    lo, hi = -1.0, 1.0  # drift(-1) < 0 < drift(1)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if drift(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


@dataclasses.dataclass(frozen=True)
class EtaResult:
    """1-SAM on the toy at several step sizes (one vmapped call).

    Attributes:
      etas: the step sizes.
      x1: ``x1`` averaged over the seeds and the last quarter of the run, per step size.
      x1_sd: the spread over seeds of that time average.
      predicted: :func:`toy_one_sam_limit` per step size.
      intercept, slope: the least-squares line ``x1 = intercept + slope * eta``; the
        intercept is the extrapolation to ``eta -> 0``.
      steps: SAM steps of every run (``eta k`` of the smallest step size equals that of
        the main run).
      rho: the radius.
    """

    etas: np.ndarray
    x1: np.ndarray
    x1_sd: np.ndarray
    predicted: np.ndarray
    intercept: float
    slope: float
    steps: int
    rho: float


def toy_eta_sweep(sizes: ToySizes | None = None, *, etas: Sequence[float] = (0.02, 0.01,
                                                                             0.005),
                  rho: float = 0.1) -> EtaResult:
    """1-SAM on the toy for each step size in ``etas`` and ``sizes.seeds`` seeds, one
    vmapped call; every run takes ``sizes.steps * 0.02 / min(etas)`` SAM steps."""
    sizes = ToySizes.current() if sizes is None else V.check_instance("sizes", sizes, ToySizes)
    etas = V.check_array("etas", etas, ndim=1, positive=True)
    if etas.size < 2:
        raise ValueError(f"argument `etas` needs at least two step sizes; got {etas.tolist()}")
    r = V.check_positive("rho", rho)
    steps = int(round(sizes.steps * 0.02 / etas.min() / sizes.log_every)) * sizes.log_every
    steps = max(steps, sizes.log_every)
    s = sizes.seeds
    run = run_sam(toy_loss, jnp.asarray(TOY_X0, jnp.float32), TOY_DATA,
                  learning_rate=np.repeat(etas, s), rho=r, steps=steps, batch_size=1,
                  seeds=list(range(s)) * len(etas), log_every=sizes.log_every,
                  metrics=_toy_metrics)
    x1 = run["x"][:, -max(2, len(run.steps) // 4):, 0].mean(axis=1).reshape(len(etas), s)
    slope, intercept = np.polyfit(etas, x1.mean(axis=1), 1)
    return EtaResult(etas=etas, x1=x1.mean(axis=1), x1_sd=x1.std(axis=1),
                     predicted=np.array([toy_one_sam_limit(e) for e in etas]),
                     intercept=float(intercept), slope=float(slope), steps=steps, rho=r)


#: The widget's radii.
WIDGET_RHOS = (0.02, 0.05, 0.1, 0.2)


def toy_grid(steps: int | None = None, *, seeds: int | None = None,
             rhos: Sequence[float] = WIDGET_RHOS, learning_rate: float = 0.02,
             log_every: int | None = None) -> dict:
    """Every setting of the widget: full-batch SAM for each radius (one vmapped call) and
    1-SAM for each radius and seed (another). Returns a dict of paths and settings."""
    sizes = ToySizes.current()
    steps = sizes.widget_steps if steps is None else V.check_int("steps", steps, minimum=2)
    seeds = sizes.widget_seeds if seeds is None else V.check_int("seeds", seeds, minimum=1)
    rhos = tuple(float(v) for v in V.check_array("rhos", rhos, ndim=1, positive=True))
    from dltheory.config import log_interval

    log_every = log_interval(steps, 100) if log_every is None else log_every
    x0 = jnp.asarray(TOY_X0, jnp.float32)
    full = run_sam(toy_loss, x0, TOY_DATA, learning_rate=learning_rate, rho=list(rhos),
                   steps=steps, log_every=log_every, metrics=_toy_metrics)
    one = run_sam(toy_loss, x0, TOY_DATA, learning_rate=learning_rate,
                  rho=np.repeat(rhos, seeds), steps=steps, batch_size=1,
                  seeds=list(range(seeds)) * len(rhos), log_every=log_every,
                  metrics=_toy_metrics)
    return {"steps": full.steps, "rhos": rhos, "learning_rate": learning_rate,
            "full": full["x"], "one": one["x"].reshape(len(rhos), seeds, -1, 4),
            "status_full": [full.status(i) for i in range(len(rhos))],
            "diverged_one": (one.diverged_at >= 0).reshape(len(rhos), seeds)}


def toy_figure(grid: dict, rho: float, batch: str = "full batch", fig: Any = None):
    """Two panels for one widget setting: the path in the ``(x1, x2)`` plane, and ``x1``
    against the step, with the minimizers of ``lambda_1`` and of the trace marked."""
    from dltheory import plotting

    if not isinstance(grid, dict) or "full" not in grid or "one" not in grid:
        raise TypeError(f"argument `grid` must be the dict of runs from toy_grid; got "
                        f"{V._describe(grid)}")
    V.check_choice("batch", batch, ("full batch", "one example"))
    V.check_finite("rho", rho)
    if fig is not None:
        from matplotlib.figure import Figure

        V.check_instance("fig", fig, Figure, "matplotlib figure (or None)")
    i = [j for j, v in enumerate(grid["rhos"]) if np.isclose(v, rho)]
    if not i:
        raise ValueError(f"argument `rho` must be one of {grid['rhos']}; got {rho!r}")
    i = i[0]
    fig, (ax, bx) = plotting.figure(2, width=7.5, height=3.4,
                                    reuse="detached" if fig is None else fig)
    steps = grid["steps"] / 1000
    col = "#1f5aa6" if batch == "full batch" else "#d1495b"
    for a in (ax, bx):
        a.axhline(X1_LAMBDA_MIN, color="0.35", ls="--", lw=1) if a is bx else None
        a.axhline(X1_TRACE_MIN, color="0.35", ls=":", lw=1) if a is bx else None
    ax.plot([X1_LAMBDA_MIN], [0], marker="*", ms=12, color="0.2", ls="none",
            label=r"argmin $\lambda_1$")
    ax.plot([X1_TRACE_MIN], [0], marker="P", ms=9, color="0.2", ls="none",
            label=r"argmin tr$\,H$")
    if batch == "full batch":
        p = grid["full"][i]
        ax.plot(p[:, 0], p[:, 1], color=col, label="path")
        bx.plot(steps, p[:, 0], color=col, label="full-batch SAM")
        status = grid["status_full"][i]
        if status.startswith("diverged"):
            bx.text(0.5, 0.5, status, transform=bx.transAxes, ha="center", color=col)
    else:
        ps = grid["one"][i]
        for p in ps:
            ax.plot(p[:, 0], p[:, 1], color=col, lw=0.8, alpha=0.6)
        ax.plot([], [], color=col, lw=0.8, label="paths (seeds)")
        x1 = ps[:, :, 0]
        bx.fill_between(steps, x1.min(0), x1.max(0), color=col, alpha=0.25, lw=0)
        bx.plot(steps, x1.mean(0), color=col, label="1-SAM (mean, range)")
    ax.set(xlim=(-1.2, 1.3), ylim=(-0.15, 1.1), xlabel="$x_1$", ylabel="$x_2$",
           title=r"path in the $(x_1, x_2)$ plane")
    ax.legend(loc="upper right", frameon=False)
    bx.plot([], [], color="0.35", ls="--", lw=1, label=r"argmin $\lambda_1$")
    bx.plot([], [], color="0.35", ls=":", lw=1, label=r"argmin tr$\,H$")
    bx.set(ylim=(-1.1, 2.0), yticks=[-1, -0.5, 0, 0.5, 1], xlabel="SAM step (thousands)",
           ylabel="$x_1$", title="$x_1$ over the run")
    bx.legend(loc="upper right", ncols=2, frameon=False, fontsize=9, handlelength=1.5,
              columnspacing=0.8)
    return fig


def toy_explorer(grid: dict | None = None):
    """The chapter's widget: the radius ``rho`` and full batch or one example per step."""
    from dltheory.widgets import choice, explore, slider

    grid = toy_grid() if grid is None else grid
    if not isinstance(grid, dict) or "full" not in grid or "one" not in grid:
        raise TypeError(f"argument `grid` must be the dict of runs from toy_grid, or None; "
                        f"got {V._describe(grid)}")
    return explore(lambda rho, batch, fig=None: toy_figure(grid, rho, batch, fig=fig),
                   title="SAM on the toy loss",
                   rho=slider(0, 0, values=grid["rhos"], default=grid["rhos"][-2],
                              label="radius rho", fmt="{:g}"),
                   batch=choice(["full batch", "one example"], label="examples per step"))


# --------------------------------------------------------------------------------------
# A real net: digits, scalar output, square loss
# --------------------------------------------------------------------------------------


def parity_digits(n: int, *, seed: int = 0) -> dict[str, jax.Array]:
    """The first ``n`` training images of :func:`dltheory.data.digits` with target ``+1``
    for an even digit and ``-1`` for an odd one: ``{"x": (n, 64), "y": (n,)}``."""
    n = V.check_int("n", n, minimum=2)
    ds = data.digits(seed=V.check_seed("seed", seed))
    n = V.check_int("n", n, minimum=2, maximum=int(ds.x_train.shape[0]))
    y = jnp.where(ds.y_train[:n] % 2 == 0, 1.0, -1.0).astype(jnp.float32)
    return {"x": ds.x_train[:n], "y": y}


def parity_loss(model: Any, batch: dict) -> jax.Array:
    """``mean_k (f(x_k) - y_k)^2 / 2`` for a model with one output."""
    V.check_callable("model", model)
    if not isinstance(batch, dict) or "x" not in batch or "y" not in batch:
        raise TypeError(f"argument `batch` must be a dict {{'x': (n, d), 'y': (n,)}}; got "
                        f"{V._describe(batch)}")
    return 0.5 * jnp.mean((model(batch["x"])[:, 0] - batch["y"]) ** 2)


def example_curvatures(model: nnx.Module, batch: dict) -> np.ndarray:
    """``|grad_theta f(x_k)|^2`` for each example: at zero loss the Hessian of the example's
    loss ``(f(x_k) - y_k)^2 / 2`` is ``grad f grad f^T``, of rank one with this eigenvalue,
    so one-example steps of size ``eta`` are stable on example ``k`` only if
    ``eta |grad f(x_k)|^2 < 2``."""
    V.check_instance("model", model, nnx.Module, "flax.nnx module")
    if not isinstance(batch, dict) or "x" not in batch:
        raise TypeError(f"argument `batch` must be a dict {{'x': (n, d), ...}}; got "
                        f"{V._describe(batch)}")
    graphdef, p, aux = nnx.split(model, nnx.Param, ...)

    def sq(x):
        g = jax.grad(lambda q: nnx.merge(graphdef, q, aux)(x[None])[0, 0])(p)
        return sum(jnp.sum(a ** 2) for a in jax.tree.leaves(g))

    return np.asarray(jit(jax.vmap(sq))(batch["x"]))


def _flat_params(model, _):
    """The engine's metric for the digits runs: the parameters as one vector."""
    return {"theta": ravel_pytree(nnx.state(model, nnx.Param))[0]}


def _curvature_fn(model: nnx.Module, iters: int, probes: int) -> Callable:
    """``f(thetas, batch) -> (lambda_1, tr, stderr)`` of ``parity_loss`` at a stack of
    flat parameter vectors (one compiled, vmapped program)."""
    graphdef, p, aux = nnx.split(model, nnx.Param, ...)
    unravel = ravel_pytree(p)[1]

    def one(theta, batch):
        fn = lambda q, b: parity_loss(nnx.merge(graphdef, q, aux), b)  # noqa: E731
        q = unravel(theta)
        lam = curvature.sharpness(fn, q, batch, iters=iters, key=2)
        tr = curvature.hessian_trace(fn, q, batch, probes=probes, key=3)
        return lam, tr.estimate, tr.stderr

    return jit(jax.vmap(one, in_axes=(0, None)))


@dataclasses.dataclass(frozen=True)
class DigitsSizes(Preset):
    """Sizes and step sizes of the digits comparison.

    Full-batch runs (GD, SAM) take ``steps`` steps of size ``lr``; one-example runs (SGD,
    1-SAM over ``seeds``) take ``one_steps`` of size ``one_lr``, the same ``eta k`` when
    ``lr * steps == one_lr * one_steps``. ``rho`` is full-batch SAM's radius.
    """

    n_train: int
    width: int
    fit_steps: int
    steps: int
    one_steps: int
    seeds: int
    log_every: int
    one_log_every: int
    iters: int
    probes: int
    final_iters: int
    final_probes: int
    lr: float
    one_lr: float
    rho: float

    @classmethod
    def quick(cls) -> "DigitsSizes":
        return cls(n_train=128, width=32, fit_steps=4000, steps=6000, one_steps=24_000,
                   seeds=2, log_every=750, one_log_every=3000, iters=20, probes=64,
                   final_iters=100, final_probes=256, lr=0.02, one_lr=0.005, rho=0.1)

    @classmethod
    def paper(cls) -> "DigitsSizes":
        return cls(n_train=1024, width=128, fit_steps=20_000, steps=40_000,
                   one_steps=400_000, seeds=8, log_every=2000, one_log_every=20_000,
                   iters=30, probes=32, final_iters=100, final_probes=128, lr=0.02,
                   one_lr=0.002, rho=0.1)


@dataclasses.dataclass(frozen=True)
class DigitsResult:
    """GD, full-batch SAM, one-example SGD and 1-SAM from one fitted net, compared by the
    curvature of the training loss.

    Attributes:
      names: ``("GD", "SAM", "SGD, one example", "1-SAM")``.
      time_full, time_one: ``eta k`` at the records of the full-batch and the one-example
        runs.
      lam1_full, trace_full: logged ``lambda_1`` and ``tr(H)`` of GD and SAM, shape
        ``(2, n_log)``; lam1_one, trace_one: of SGD (row 0) and 1-SAM (one row per seed).
      lam1_final, trace_final: at the end, shape ``(4,)`` in the order of ``names``
        (1-SAM: mean over seeds), with more power iterations and probes than the logs.
      trace_stderr: Hutchinson's standard error of ``trace_final``.
      lam1_seeds, trace_seeds: 1-SAM's final values per seed.
      loss_final: final training loss, shape ``(4,)``.
      fit_loss, lam1_start, trace_start: the fitted net all runs start from.
      rho_one: 1-SAM's radius, ``rho sqrt(lam1_start / trace_start)``: both penalties,
        ``rho^2 lambda_1 / 2`` and ``rho_one^2 tr / 2``, start equal.
      max_example_curvature: ``max_k |grad f(x_k)|^2`` at the start.
      diverged: whether any run diverged; status: one line per run kind.
      lr, one_lr, rho: the step sizes and full-batch SAM's radius.
    """

    names: tuple[str, ...]
    time_full: np.ndarray
    time_one: np.ndarray
    lam1_full: np.ndarray
    trace_full: np.ndarray
    lam1_one: np.ndarray
    trace_one: np.ndarray
    lam1_final: np.ndarray
    trace_final: np.ndarray
    trace_stderr: np.ndarray
    lam1_seeds: np.ndarray
    trace_seeds: np.ndarray
    loss_final: np.ndarray
    fit_loss: float
    lam1_start: float
    trace_start: float
    rho_one: float
    max_example_curvature: float
    diverged: bool
    status: tuple[str, ...]
    lr: float
    one_lr: float
    rho: float


def digits_experiment(sizes: DigitsSizes | None = None, *, seed: int = 0,
                      fit_learning_rate: float = 0.05) -> DigitsResult:
    """Fit a tanh MLP (64 -> width -> 1) to the parity of the digits with GD; from the
    fitted net run GD and full-batch SAM (one vmapped call), and one-example SGD and 1-SAM
    over seeds (another), logging ``lambda_1`` and ``tr(H)`` of the training loss.

    The one-example runs take smaller steps, so that every example's step is stable
    (``one_lr * max_k |grad f(x_k)|^2 < 2``; a larger step would let SGD's own
    instability cut the curvature), and as many more of them that ``eta k`` is the same.
    1-SAM's radius makes both penalties start equal (see :class:`DigitsResult`).

    Args:
      sizes: a :class:`DigitsSizes` (default: the current scale's).
      seed: the seed of the initialization.
      fit_learning_rate: the step size of the fitting run.

    References:
      Wen, Ma, Li (2023), arXiv:2211.05729 (Theorems 4.5 and 5.4: near a manifold of
      minimizers full-batch SAM lowers ``lambda_1``, 1-SAM the trace).
    """
    sizes = DigitsSizes.current() if sizes is None else V.check_instance("sizes", sizes,
                                                                         DigitsSizes)
    seed = V.check_seed("seed", seed)
    V.check_positive("fit_learning_rate", fit_learning_rate)
    batch = parity_digits(sizes.n_train)
    model = models.MLP((64, sizes.width, 1), rngs=nnx.Rngs(seed), activation="tanh")
    fit = training.train(parity_loss, model, training.optimizer(
        optax.sgd, learning_rate=fit_learning_rate), steps=sizes.fit_steps, batches=batch,
        log_every=sizes.fit_steps, warn=False)
    if fit.diverged:
        raise RuntimeError(f"the fitting run {fit.status}; lower `fit_learning_rate`")
    start = fit.params
    theta0 = ravel_pytree(nnx.state(start, nnx.Param))[0]
    final = _curvature_fn(start, sizes.final_iters, sizes.final_probes)
    lam0, tr0, _ = (float(v[0]) for v in final(theta0[None], batch))
    rho_one = sizes.rho * float(np.sqrt(lam0 / tr0))
    full = run_sam(parity_loss, start, batch, learning_rate=sizes.lr, rho=[0.0, sizes.rho],
                   steps=sizes.steps, log_every=sizes.log_every, metrics=_flat_params)
    one = run_sam(parity_loss, start, batch, learning_rate=sizes.one_lr,
                  rho=[0.0] + [rho_one] * sizes.seeds, steps=sizes.one_steps, batch_size=1,
                  seeds=[0] + list(range(sizes.seeds)), log_every=sizes.one_log_every,
                  metrics=_flat_params)
    # the curvature at every record, then (more precisely) at the end: two vmapped calls
    shots = np.concatenate([full["theta"], one["theta"]])       # (members, n_log, D)
    m, n_log = shots.shape[:2]
    logged = _curvature_fn(start, sizes.iters, sizes.probes)
    lam_log, tr_log, _ = (np.asarray(v).reshape(m, n_log)
                          for v in logged(jnp.asarray(shots.reshape(m * n_log, -1)), batch))
    lam, tr, se = (np.asarray(v) for v in final(jnp.asarray(shots[:, -1]), batch))
    loss = np.r_[full["loss"][:, -1], one["loss"][:, -1]]
    k = sizes.seeds
    return DigitsResult(
        names=("GD", "SAM", "SGD, one example", "1-SAM"),
        time_full=sizes.lr * full.steps, time_one=sizes.one_lr * one.steps,
        lam1_full=lam_log[:2], trace_full=tr_log[:2], lam1_one=lam_log[2:],
        trace_one=tr_log[2:],
        lam1_final=np.r_[lam[:3], lam[3:].mean()], trace_final=np.r_[tr[:3], tr[3:].mean()],
        trace_stderr=np.r_[se[:3], np.sqrt(np.sum(se[3:] ** 2)) / k],
        lam1_seeds=lam[3:], trace_seeds=tr[3:],
        loss_final=np.r_[loss[:3], loss[3:].mean()], fit_loss=fit.final("loss"),
        lam1_start=lam0, trace_start=tr0, rho_one=rho_one,
        max_example_curvature=float(example_curvatures(start, batch).max()),
        diverged=bool((full.diverged_at >= 0).any() or (one.diverged_at >= 0).any()),
        status=(f"GD: {full.status(0)}", f"SAM: {full.status(1)}",
                f"SGD: {one.status(0)}",
                "1-SAM: " + "; ".join(sorted({one.status(i) for i in range(1, k + 1)}))),
        lr=sizes.lr, one_lr=sizes.one_lr, rho=sizes.rho)
