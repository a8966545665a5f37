"""Preliminaries: gradient descent versus gradient flow, and the stability threshold.

On the quadratic ``L(x) = x^T H x / 2`` gradient descent with learning rate ``eta`` is
``x_{k+1} = (I - eta H) x_k``, while gradient flow ``dx/dt = -H x`` gives
``x(t) = exp(-t H) x_0``. Along the eigenvector of eigenvalue ``lambda`` the two multiply
the coordinate by ``(1 - eta lambda)`` per step and by ``exp(-eta lambda)`` per unit
``eta`` of time. Gradient descent converges from every start exactly when
``|1 - eta lambda| < 1`` for all positive eigenvalues, that is ``eta < 2 / lambda_max``.

Everything here runs through :mod:`dltheory.training`: one run is
:func:`~dltheory.training.train`, a grid of learning rates is one
:func:`~dltheory.training.sweep`.

References:
  Nesterov (2018), Lectures on Convex Optimization, Section 1.2 (gradient method);
  Cohen, Kaur, Li, Kolter, Talwalkar (2021), Gradient Descent on Neural Networks
  Typically Occurs at the Edge of Stability, arXiv:2103.00065.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from flax import nnx

from dltheory import curvature
from dltheory import data as D
from dltheory import validation as V
from dltheory.config import Preset, log_interval
from dltheory.models import MLP
from dltheory.training import RunResult, optimizer, sweep, train

__all__ = [
    "GDSizes",
    "quadratic_loss",
    "gd_on_quadratic",
    "gd_grid",
    "flow_on_quadratic",
    "StabilityResult",
    "stability_sweep",
    "FlowGapResult",
    "gd_flow_gap",
    "EdgeOfStabilityResult",
    "edge_of_stability",
    "plot_run",
    "gd_verdict",
    "gd_figure",
    "gd_explorer",
]


@dataclasses.dataclass(frozen=True)
class GDSizes(Preset):
    """Sizes of the chapter's experiments.

    Attributes:
      steps: gradient descent steps of a single run (the widget, the trajectories).
      sweep_steps: steps of each run in the stability sweep.
      num_lr: learning rates in the stability sweep.
      eos_steps: full-batch GD steps of the edge-of-stability runs on digits.
      eos_width: width of the two hidden layers of their tanh MLP.
    """

    steps: int
    sweep_steps: int
    num_lr: int
    eos_steps: int
    eos_width: int

    @classmethod
    def quick(cls) -> "GDSizes":
        return cls(steps=60, sweep_steps=400, num_lr=64, eos_steps=2000, eos_width=64)

    @classmethod
    def paper(cls) -> "GDSizes":
        return cls(steps=200, sweep_steps=4000, num_lr=1024, eos_steps=20000, eos_width=256)


def quadratic_loss(x: jax.Array, h: jax.Array) -> jax.Array:
    """``x^T H x / 2``: the loss whose Hessian is ``H`` everywhere."""
    if jnp.ndim(x) != 1 or isinstance(x, (str, bytes)):
        raise ValueError(f"argument `x` must be a 1-D array (the iterate); got "
                         f"{V._describe(x)}")
    d = jnp.shape(x)[0]
    if jnp.shape(h) != (d, d):
        raise ValueError(f"argument `h` must be a ({d}, {d}) matrix, the size of `x`; got "
                         f"{V._describe(h)}")
    return 0.5 * x @ (h @ x)


def _iterate(x: jax.Array, h: jax.Array) -> dict[str, jax.Array]:
    # metrics(params, eval_data): record the iterate itself
    return {"x": x}


def _check_problem(eigenvalues: Any, x0: Any) -> tuple[np.ndarray, np.ndarray]:
    lam = V.check_array("eigenvalues", eigenvalues, ndim=1)
    if x0 is None:
        x0 = np.ones_like(lam)
    x0 = V.check_array("x0", x0)
    if x0.shape != lam.shape:
        raise ValueError(f"argument `x0` must have shape {lam.shape} (one entry per "
                         f"eigenvalue); got {x0.shape}")
    return lam, x0


def _check_lrs(lrs: Any, minimum: int = 1,
               rule: str = "a 1-D sequence of positive learning rates") -> np.ndarray:
    """At least ``minimum`` learning rates, each a finite number > 0."""
    return _check_1d("lrs", lrs, f"{rule} (finite, at least {minimum})",
                     lambda a: a.size >= minimum and bool(np.all(a > 0)))


def _check_1d(name: str, value: Any, rule: str, ok: Any) -> np.ndarray:
    """``value`` as a finite 1-D float array for which ``ok(array)`` holds."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"argument `{name}` must be {rule}; got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"argument `{name}` must be {rule}; got {value!r}") from None
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or not ok(arr):
        raise ValueError(f"argument `{name}` must be {rule}; got {value!r}")
    return arr


def gd_on_quadratic(eigenvalues: Any, lr: float, steps: int, *, x0: Any = None,
                    rotate: bool = False, key: int = 0, log_every: int = 1) -> RunResult:
    """Gradient descent on ``x^T H x / 2`` with ``H`` of the given eigenvalues.

    Args:
      eigenvalues: eigenvalues of ``H`` (its eigenvectors are the axes unless
        ``rotate``).
      lr: the learning rate ``eta > 0``.
      steps: number of steps (a multiple of ``log_every``).
      x0: the start (default all ones).
      rotate: use a random rotation of the eigenbasis (from ``key``).
      log_every: record every this many steps.

    Returns:
      A :class:`~dltheory.training.RunResult` with metrics ``"loss"`` and ``"x"`` (the
      iterates, shape ``(n_log, d)``). A learning rate above ``2 / lambda_max`` makes it
      diverge; the result then says at which step.
    """
    lam, x0 = _check_problem(eigenvalues, x0)
    lr = V.check_positive("lr", lr)
    V.check_steps(steps, log_every)
    h = D.quadratic(lam, rotate=rotate, key=key)
    opt = optimizer(optax.sgd, learning_rate=lr)
    return train(quadratic_loss, jnp.asarray(x0, h.dtype), opt, steps=steps, batches=h,
                 log_every=log_every, metrics=_iterate, eval_data=h, warn=False)


def gd_grid(eigenvalues: Any, lrs: Any, steps: int, *, x0: Any = None, rotate: bool = False,
            key: int = 0, log_every: int = 1) -> list[RunResult]:
    """:func:`gd_on_quadratic` at several learning rates, as one vmapped call.

    Returns:
      One :class:`~dltheory.training.RunResult` per learning rate, in order.
    """
    lam, x0 = _check_problem(eigenvalues, x0)
    lrs = _check_lrs(lrs)
    V.check_steps(steps, log_every)
    h = D.quadratic(lam, rotate=rotate, key=key)
    opt = optimizer(optax.sgd, learning_rate=jnp.asarray(lrs, h.dtype))
    res = sweep(quadratic_loss, jnp.asarray(x0, h.dtype), opt, steps=steps, batches=h,
                log_every=log_every, metrics=_iterate, eval_data=h)
    return [res.member(i) for i in range(len(lrs))]


def flow_on_quadratic(eigenvalues: Any, times: Any, *, x0: Any = None, rotate: bool = False,
                      key: int = 0) -> np.ndarray:
    """Gradient flow ``x(t) = exp(-t H) x0`` at the given times, in closed form (float64).

    Returns:
      Array of shape ``(len(times), d)``.
    """
    lam, x0 = _check_problem(eigenvalues, x0)
    t = _check_1d("times", times, "a 1-D sequence of finite times >= 0",
                  lambda a: bool(np.all(a >= 0)))
    h = np.asarray(D.quadratic(lam, rotate=rotate, key=key, dtype=jnp.float32), np.float64)
    w, q = np.linalg.eigh((h + h.T) / 2)
    coords = q.T @ x0
    return (np.exp(-np.outer(t, w)) * coords) @ q.T


@dataclasses.dataclass(frozen=True)
class StabilityResult:
    """A sweep of learning rates on one quadratic.

    Attributes:
      lrs: the learning rates, shape ``(n,)``.
      steps: logged steps.
      loss: loss curves, shape ``(n, n_log)`` (NaN after a divergence).
      diverged_at: step of divergence per learning rate, or -1.
      final_ratio: ``L(x_T) / L(x_0)`` per learning rate (inf if the run diverged).
      predicted: the predicted threshold ``2 / lambda_max``.
      measured_low, measured_high: the largest learning rate whose loss decreased and
        the smallest whose loss grew; the measured threshold lies between them.
    """

    lrs: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    diverged_at: np.ndarray
    final_ratio: np.ndarray
    predicted: float
    measured_low: float
    measured_high: float

    @property
    def measured(self) -> float:
        """The midpoint of the bracket ``[measured_low, measured_high]``."""
        return 0.5 * (self.measured_low + self.measured_high)

    @property
    def relative_error(self) -> float:
        """``|measured - predicted| / predicted``."""
        return abs(self.measured - self.predicted) / self.predicted


def stability_sweep(eigenvalues: Any, lrs: Any, steps: int, *, x0: Any = None,
                    rotate: bool = False, key: int = 0, log_every: int = 1) -> StabilityResult:
    """Gradient descent at every learning rate in ``lrs``, as one vmapped call.

    The measured threshold is bracketed by the largest learning rate whose loss after
    ``steps`` steps is below the initial loss and the smallest one whose loss is above
    it. The prediction is ``2 / lambda_max``.

    Raises:
      ValueError: if an eigenvalue is not positive (no threshold exists), or if the
        grid does not bracket the threshold.
    """
    lam, x0 = _check_problem(eigenvalues, x0)
    if np.any(lam <= 0):
        raise ValueError(f"argument `eigenvalues` must be > 0 for a stability threshold; "
                         f"got {eigenvalues!r}")
    lrs = np.sort(_check_lrs(lrs, 2, "a 1-D grid of at least two positive learning rates"))
    V.check_steps(steps, log_every)
    h = D.quadratic(lam, rotate=rotate, key=key)
    opt = optimizer(optax.sgd, learning_rate=jnp.asarray(lrs, h.dtype))
    res = sweep(quadratic_loss, jnp.asarray(x0, h.dtype), opt, steps=steps, batches=h,
                log_every=log_every)
    loss = res["loss"]
    final = loss[:, -1]
    ratio = np.where(res.diverged, np.inf, final / loss[:, 0])
    grows = ratio > 1
    if grows.all() or not grows.any():
        raise ValueError("argument `lrs` does not bracket the stability threshold: every "
                         f"run {'grew' if grows.all() else 'decreased'}; widen the grid "
                         f"around 2 / lambda_max = {2 / lam.max():.4g}")
    first_bad = int(np.argmax(grows))
    low = float(lrs[:first_bad][~grows[:first_bad]].max()) if first_bad else float("nan")
    return StabilityResult(lrs, res.steps, loss, res.diverged_at, ratio,
                           float(2 / lam.max()), low, float(lrs[first_bad]))


@dataclasses.dataclass(frozen=True)
class FlowGapResult:
    """How far gradient descent is from gradient flow over a fixed time horizon.

    Attributes:
      lrs: learning rates compared, shape ``(n,)``.
      horizon: the time ``T = steps * lr`` each run covers (the same for all).
      gap: ``max_k |x_k - x(k lr)|`` over the horizon, per learning rate.
      bound: the theorem's bound ``T lambda_max^2 lr |x0| / 2`` per learning rate (valid
        for ``lr lambda_max <= 1``).
      order: the fitted slope of ``log gap`` against ``log lr`` (1 for a first-order
        method such as gradient descent, the forward Euler scheme of gradient flow).
    """

    lrs: np.ndarray
    horizon: float
    gap: np.ndarray
    bound: np.ndarray
    order: float


def gd_flow_gap(eigenvalues: Any, lrs: Any, horizon: float, *, x0: Any = None,
                rotate: bool = False, key: int = 0) -> FlowGapResult:
    """Compare gradient descent (run by the engine) with the exact gradient flow.

    Each learning rate runs ``horizon / lr`` steps (an integer, up to 1e-9), so every
    run covers the same time ``T = horizon``; the gap is the largest distance between
    the iterate ``x_k`` and the flow ``x(k lr)`` over the run. Keep the gaps well above
    float32 rounding (about 1e-6 relative), which the engine's iterates carry.
    """
    lam, x0 = _check_problem(eigenvalues, x0)
    horizon = V.check_positive("horizon", horizon)
    lrs = _check_lrs(lrs, 2, "at least two positive learning rates")
    V.check_key("key", key)
    gaps = []
    for lr in lrs:
        n = horizon / lr
        if abs(n - round(n)) > 1e-9 * max(1.0, n):
            raise ValueError(f"horizon / lr must be an integer number of steps; "
                             f"got {horizon} / {lr} = {n}")
        run = gd_on_quadratic(lam, lr, int(round(n)), x0=x0, rotate=rotate, key=key)
        flow = flow_on_quadratic(lam, run.steps * lr, x0=x0, rotate=rotate, key=key)
        gaps.append(np.abs(run["x"] - flow).max())
    gaps = np.asarray(gaps)
    order = float(np.polyfit(np.log(lrs), np.log(gaps), 1)[0])
    bound = 0.5 * horizon * lam.max() ** 2 * lrs * np.linalg.norm(x0)
    return FlowGapResult(lrs, horizon, gaps, bound, order)


# --------------------------------------------------------------------------------------
# Where the picture breaks: the edge of stability on a real network
# --------------------------------------------------------------------------------------


def _mse(model, batch):
    """Half the squared error to one-hot targets, summed over classes, mean over examples."""
    out = model(batch["x"])
    return 0.5 * jnp.mean(jnp.sum((out - jax.nn.one_hot(batch["y"], out.shape[-1])) ** 2, -1))


def _sharpness_metric(model, batch):
    return {"sharpness": curvature.sharpness(_mse, model, batch, iters=20)}


@dataclasses.dataclass(frozen=True)
class EdgeOfStabilityResult:
    """Full-batch gradient descent on a tanh MLP on digits, with its sharpness tracked.

    Attributes:
      lrs: learning rates, shape ``(n,)``; ``thresholds = 2 / lrs``.
      steps: logged steps.
      loss: training loss, shape ``(n, n_log)``.
      sharpness: top Hessian eigenvalue of the training loss, shape ``(n, n_log)``.
      diverged_at: step of divergence per learning rate, or -1.
      late_ratio: mean sharpness over the last quarter of the run divided by ``2 / lr``.
    """

    lrs: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    sharpness: np.ndarray
    diverged_at: np.ndarray

    @property
    def thresholds(self) -> np.ndarray:
        return 2.0 / self.lrs

    @property
    def late_ratio(self) -> np.ndarray:
        q = max(1, len(self.steps) // 4)
        return self.sharpness[:, -q:].mean(axis=1) / self.thresholds


def edge_of_stability(lrs: Any, steps: int, *, width: int = 64,
                      log_every: int | None = None, seed: int = 0) -> EdgeOfStabilityResult:
    """Full-batch GD on digits at several learning rates, as one vmapped call.

    The model is a ``64-width-width-10`` tanh MLP trained on the squared loss to one-hot
    targets (the setting of Cohen et al., 2021, on a smaller dataset), from the same
    initialization for every learning rate. Every ``log_every`` steps the sharpness of
    the full training loss is measured by 20 power iterations; by default every 100
    steps, or about 20 times per run when 100 does not divide ``steps``.

    References:
      Cohen, Kaur, Li, Kolter, Talwalkar (2021), arXiv:2103.00065 (progressive
      sharpening and the edge of stability).
    """
    lrs = _check_lrs(lrs)
    width = V.check_int("width", width, minimum=1)
    steps = V.check_int("steps", steps, minimum=1)
    seed = V.check_seed("seed", seed)
    if log_every is None:
        log_every = log_interval(steps, 20, prefer=100)
    V.check_steps(steps, log_every)
    ds = D.digits()
    model = MLP((64, width, width, 10), rngs=nnx.Rngs(seed), activation="tanh")
    res = sweep(_mse, model, optimizer(optax.sgd, learning_rate=jnp.asarray(lrs, jnp.float32)),
                steps=steps, batches=ds.train, log_every=log_every,
                metrics=_sharpness_metric, eval_data=ds.train)
    return EdgeOfStabilityResult(lrs, res.steps, res["loss"], res["sharpness"],
                                 res.diverged_at)


# --------------------------------------------------------------------------------------
# Figures of the chapter (shared by the static figures and the widget)
# --------------------------------------------------------------------------------------

#: The smaller eigenvalue of the chapter's 2-D example.
LAMBDA_MIN = 0.5


def plot_run(ax_path, ax_loss, eigenvalues: Any, lr: float, run: RunResult, *,
             x0: Any = None, box: float = 1.6, show_flow: bool = True) -> None:
    """Draw a 2-D run on the level sets of the loss, and (if ``ax_loss``) its loss.

    The gradient-flow path (dashed) and its loss at times ``k lr`` are drawn for
    comparison. A diverged run is marked "diverged at step k" on the loss axes.
    """
    from dltheory import plotting

    plotting._check_axes("ax_path", ax_path)
    if ax_loss is not None:
        plotting._check_axes("ax_loss", ax_loss)
    lam, x0 = _check_problem(eigenvalues, x0)
    if lam.size != 2:
        raise ValueError(f"argument `eigenvalues` must hold two eigenvalues (plot_run draws "
                         f"2-D problems); got {lam.tolist()!r}")
    lr = V.check_positive("lr", lr)
    box = V.check_positive("box", box)
    V.check_instance("run", run, RunResult, "RunResult (from gd_on_quadratic)")
    g = np.linspace(-box, box, 161)
    xx, yy = np.meshgrid(g, g)
    zz = 0.5 * (lam[0] * xx**2 + lam[1] * yy**2)
    ax_path.contour(xx, yy, zz, levels=np.geomspace(0.01, zz.max(), 12), colors="0.75",
                    linewidths=0.8)
    xs = run["x"]
    ok = np.all(np.isfinite(xs), axis=1)
    ax_path.plot(xs[ok, 0], xs[ok, 1], "o-", ms=3, lw=1.2, color="#1f5aa6",
                 label="gradient descent")
    t = run.steps * lr
    flow = flow_on_quadratic(lam, t, x0=x0)
    if show_flow:
        dense = flow_on_quadratic(lam, np.linspace(0, t[-1], 400), x0=x0)
        ax_path.plot(dense[:, 0], dense[:, 1], "--", color="#d1495b", lw=1.5,
                     label="gradient flow")
    ax_path.plot(*x0, "k*", ms=9)
    ax_path.set(xlim=(-box, box), ylim=(-box, box), aspect="equal",
                xlabel=r"$x_1$ ($\lambda = %.3g$)" % lam[0],
                ylabel=r"$x_2$ ($\lambda = %.3g$)" % lam[1])
    ax_path.legend(loc="lower left", frameon=True)
    if ax_loss is None:
        return
    plotting.curves(ax_loss, run.steps, run["loss"], label="gradient descent",
                    diverged_at=run.diverged_at, color="#1f5aa6")
    if show_flow:
        flow_loss = 0.5 * (flow**2 * lam).sum(axis=1)
        plotting.curves(ax_loss, run.steps, flow_loss, label="gradient flow at $t = k\\eta$",
                        color="#d1495b", ls="--")
    low, high = ax_loss.get_ylim()
    ax_loss.set_ylim(max(low, 1e-12), max(high, 10.0))
    ax_loss.set(xlabel="step $k$", ylabel=r"loss $\mathcal{L}(x_k)$")
    ax_loss.legend(loc="best", frameon=False)


def gd_verdict(ratio: float) -> str:
    """What gradient descent does along the top eigenvector when ``eta lambda_max = ratio``.

    The coordinate is multiplied by ``1 - ratio`` per step (the theorem of the chapter):
    below 1 it shrinks without changing sign, between 1 and 2 it shrinks while flipping
    sign, at exactly 2 it flips sign with constant size (gradient descent neither
    converges nor diverges: the loss stops falling once the other directions have
    converged), above 2 it grows. Ratios
    within a relative ``1e-9`` of 1 or 2 count as equal to them, so that a grid value such
    as ``0.5 * 4.0`` lands on the boundary it names.

    Args:
      ratio: ``eta * lambda_max``, a finite number > 0.

    Returns:
      A short phrase for a figure title.
    """
    ratio = V.check_positive("ratio", ratio)
    if np.isclose(ratio, 2.0, rtol=1e-9, atol=0.0):
        return "on the threshold: neither converges nor diverges"
    if ratio > 2:
        return "diverges"
    if np.isclose(ratio, 1.0, rtol=1e-9, atol=0.0):
        return "converges, top direction in one step"
    if ratio > 1:
        return "oscillates, converges"
    return "converges monotonically"


def gd_figure(lr: float, curvature: float, steps: int = 60, fig: Any = None):
    """The widget's figure: GD at ``lr`` on eigenvalues ``(LAMBDA_MIN, curvature)``.

    Draws into ``fig`` (a detached figure from a previous call) when given, else into a
    new detached figure; returns the figure.
    """
    from dltheory import plotting

    lam = (LAMBDA_MIN, V.check_positive("curvature", curvature))
    lr = V.check_positive("lr", lr)
    steps = V.check_int("steps", steps, minimum=1)
    if fig is not None:
        plotting._check_figure(fig)
    run = gd_on_quadratic(lam, lr, steps, x0=(1.2, 1.2))
    fig, (a, b) = plotting.figure(2, width=7.5, height=4.2,
                                  reuse="detached" if fig is None else fig)
    plot_run(a, b, lam, lr, run, x0=(1.2, 1.2))
    ratio = lr * curvature
    verdict = gd_verdict(ratio)
    # Plain Unicode, not mathtext: a title that changes with every setting would be
    # parsed as new LaTeX on each redraw, which is most of a widget update's time.
    fig.suptitle(f"η = {lr:.3g}, λ_max = {curvature:.3g}: ηλ_max = {ratio:.3g} "
                 f"(threshold 2/λ_max = {2 / curvature:.3g})\n{verdict}")
    return fig


def gd_explorer(steps: int | None = None):
    """The chapter's widget: learning rate and curvature of the 2-D quadratic."""
    from dltheory.widgets import choice, explore, slider

    steps = GDSizes.current().steps if steps is None else V.check_int("steps", steps, minimum=1)
    return explore(
        lambda lr, curvature, fig=None: gd_figure(lr, curvature, steps, fig=fig),
        title="Gradient descent on a 2-D quadratic",
        lr=slider(0.1, 1.2, num=12, default=0.4, label="learning rate η"),
        curvature=choice([2.0, 3.0, 4.0], default=4.0, label="curvature λ_max",
                         fmt="{:g}"),
    )
