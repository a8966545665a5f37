"""Chapter "Homogeneous nets maximize the margin": experiments, figures, widget.

A bias-free ReLU MLP (``dltheory.models.MLP(bias=False)``, ``L``-homogeneous with ``L``
its number of layers) is trained on two digit classes by full-batch gradient descent in
float64 with the logistic loss, once with a constant learning rate and once with the
loss-based schedule, from the same initialization (one vmapped call).

References:
  Lyu, Li (2020), Gradient Descent Maximizes the Margin of Homogeneous Neural Networks,
  ICLR, arXiv:1906.05890.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dltheory.compat import enable_x64
from dltheory import validation as V
from dltheory.config import Preset, log_interval
from dltheory._jit import jit
from dltheory.margin.core import kkt_residual, smoothed_gap_bound
from dltheory.margin.train import (
    MarginRun,
    Schedule,
    constant_lr,
    loss_based_lr,
    multiclass_margins,
    train_margin,
    train_margin_grid,
)

__all__ = [
    "HMSizes",
    "HomogeneousResult",
    "cnn_margin_run",
    "digits_binary",
    "homogeneous_experiment",
    "mlp_apply",
    "mlp_params",
    "robustness",
    "schedule_explorer",
    "schedule_figure",
    "schedule_grid",
]


@dataclasses.dataclass(frozen=True)
class HMSizes(Preset):
    """Sizes of the chapter.

    Attributes:
      width: hidden width of the bias-free ReLU MLP ``64-width-width-1`` (``L = 3``).
      steps: gradient steps of each run of the main experiment.
      log_every: logging interval.
      kkt_points: number of logged points at which the KKT residual is computed.
      widget_steps: steps of each run of the widget's grid.
      cnn_examples, cnn_steps: the paper preset's CIFAR-10 run (bias-free CNN, full
        batch in float64): 4,096 images keep its peak memory under 15 GB (a 16 GB GPU).
    """

    width: int
    steps: int
    log_every: int
    kkt_points: int
    widget_steps: int
    cnn_examples: int
    cnn_steps: int

    @classmethod
    def quick(cls) -> HMSizes:
        return cls(width=32, steps=2500, log_every=50, kkt_points=5, widget_steps=1000,
                   cnn_examples=256, cnn_steps=20)

    @classmethod
    def paper(cls) -> HMSizes:
        return cls(width=256, steps=100_000, log_every=500, kkt_points=40,
                   widget_steps=20_000, cnn_examples=4096, cnn_steps=10_000)


def digits_binary(classes: tuple[int, int] = (3, 5), *, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two digit classes as a binary task: ``(x_train, y_train, x_test, y_test)``,
    float64 inputs (standardized) and labels -1/+1."""
    from dltheory import data as D

    classes = _check_pair(classes)
    ds = D.digits(classes=classes, seed=seed)
    f = lambda a: np.asarray(a, np.float64)
    s = lambda a: 2.0 * np.asarray(a, np.float64) - 1.0
    return f(ds.x_train), s(ds.y_train), f(ds.x_test), s(ds.y_test)


def _check_pair(classes: Any) -> tuple[int, int]:
    """Two distinct digit classes (0 to 9)."""
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise TypeError(f"argument `classes` must be a pair of digit classes (0 to 9); got "
                        f"{classes!r}")
    classes = tuple(classes)
    if len(classes) != 2:
        raise ValueError(f"argument `classes` must be a pair of digit classes (a binary "
                         f"task); got {classes!r}")
    return classes


def mlp_params(sizes: tuple[int, ...], *, seed: int = 0, init_scale: float = 1.0,
               bias: bool = False
               ) -> tuple[list[np.ndarray], int]:
    """Kernels of a bias-free ReLU ``dltheory.models.MLP`` and its homogeneity order."""
    from dltheory.models import MLP, homogeneity_order

    model = MLP(sizes, rngs=nnx.Rngs(V.check_seed("seed", seed)), bias=bias, activation="relu",
                init_scale=init_scale)
    order = homogeneity_order(model)
    kernels = [np.asarray(layer.kernel[...], np.float64) for layer in model.layers]
    return kernels, order


def mlp_apply(params: list, x: jax.Array) -> jax.Array:
    """The bias-free ReLU MLP as a pure function of its kernels; output ``(N,)``."""
    _check_kernels(params, x)
    h = x
    for w in params[:-1]:
        h = jax.nn.relu(h @ w)
    return (h @ params[-1])[:, 0]


@jit
def _robust(params, x, y):
    norm = jnp.sqrt(sum(jnp.sum(w * w) for w in params))
    p = [w / norm for w in params]
    f = mlp_apply(p, x)
    g = jax.vmap(jax.grad(lambda xi: mlp_apply(p, xi[None])[0]))(x)
    dist = jnp.abs(f) / jnp.maximum(jnp.linalg.norm(g, axis=1), 1e-300)
    ok = jnp.sign(f) == y
    return jnp.nanmedian(jnp.where(ok, dist, jnp.nan))


def _check_kernels(params: Any, x: Any, stacked: bool = False) -> None:
    """``params``: a list of kernels ``(d, h1), (h1, h2), ..., (hk, 1)`` (each with a
    leading checkpoint axis if ``stacked``); ``x``: inputs ``(N, d)``. Static shapes only,
    so it works traced."""
    if not isinstance(params, (list, tuple)) or not params:
        raise TypeError(f"argument `params` must be a non-empty list of kernels (d, h1), ..., "
                        f"(hk, 1); got {V._describe(params)}")
    if isinstance(x, (str, bytes)) or jnp.ndim(x) != 2:
        raise ValueError(f"argument `x` must be an array of inputs (N, d); got "
                         f"{V._describe(x)}")
    shapes = [tuple(jnp.shape(w))[1:] if stacked else tuple(jnp.shape(w)) for w in params]
    dims = [jnp.shape(x)[1]] + [s[1] if len(s) == 2 else None for s in shapes]
    if any(len(s) != 2 or s[0] != d for s, d in zip(shapes, dims)) or shapes[-1][1] != 1:
        raise ValueError(f"argument `params` must be kernels whose shapes chain from the "
                         f"{jnp.shape(x)[1]} input features of `x` to one output; got {shapes}")


def robustness(params: list, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Median first-order L2 robustness ``|f(x_n)| / |grad_x f(x_n)|`` of the normalized
    net ``f(theta / |theta|)`` over correctly classified points (a DeepFool-style
    linearization of the distance to the decision boundary, in input space).

    ``params`` may carry a leading axis of checkpoints (as recorded by a run); the result
    then has one value per checkpoint.
    """
    from dltheory.margin.core import check_binary_labels

    stacked = isinstance(params, (list, tuple)) and bool(params) and np.ndim(params[0]) == 3
    x = V.check_array("x", x, ndim=2)
    _check_kernels(params, x, stacked=stacked)
    y = check_binary_labels(y)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"arguments `y` and `x` must have one label per row; got {y.shape[0]} "
                         f"labels and {x.shape[0]} rows")
    with enable_x64(True):
        p = [jnp.asarray(w, jnp.float64) for w in params]
        xx, yy = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
        if p[0].ndim == 3:
            return np.asarray(jax.vmap(_robust, in_axes=(0, None, None))(p, xx, yy))
        return np.asarray(_robust(p, xx, yy))


@dataclasses.dataclass(frozen=True)
class HomogeneousResult:
    """The main experiment of the chapter.

    Attributes:
      constant, loss_based: the two runs (:class:`MarginRun`, parameters recorded).
      order: homogeneity order ``L`` of the MLP.
      n: number of training examples.
      kkt_steps: steps at which the KKT residual was computed; ``kkt_constant`` and
        ``kkt_loss_based`` the residuals there (NaN before the data are fitted).
      robust_constant, robust_loss_based: first-order robustness at every log point.
      margin_ratio: final normalized margin, loss-based over constant.
      gap_bound: ``(log N + e^L - 1) / |theta|^L`` per log point of the loss-based run.
    """

    constant: MarginRun
    loss_based: MarginRun
    order: int
    n: int
    kkt_steps: np.ndarray
    kkt_constant: np.ndarray
    kkt_loss_based: np.ndarray
    robust_constant: np.ndarray
    robust_loss_based: np.ndarray

    @property
    def margin_ratio(self) -> float:
        return float(self.loss_based.normalized[-1] / self.constant.normalized[-1])


def _margins(params, x, y):
    return jnp.asarray(y) * mlp_apply(params, jnp.asarray(x))


def _kkt_series(run: MarginRun, x, y, idx, order) -> np.ndarray:
    out = []
    for i in idx:
        p = [np.asarray(w[i]) for w in run.params]
        if run.qmin[i] <= 0:
            out.append(np.nan)
            continue
        out.append(kkt_residual(functools.partial(_margins, x=x, y=y), p, order)["residual"])
    return np.asarray(out)


def homogeneous_experiment(sizes: HMSizes | None = None, *, classes=(3, 5), seed: int = 0,
                           lr: float = 0.5, alpha0: float = 0.5) -> HomogeneousResult:
    """Constant learning rate versus the loss-based schedule, same init, same budget.

    Args:
      sizes: the preset (default :meth:`HMSizes.current`).
      classes: the two digit classes.
      seed: initialization seed.
      lr: the constant learning rate (on the mean loss).
      alpha0: the initial ``alpha`` of the loss-based schedule.

    References:
      Lyu, Li (2020), arXiv:1906.05890, Section 6 and Figure 1 (constant versus
      loss-based learning rate on MNIST).
    """
    sizes = _check_sizes(sizes)
    schedules = [constant_lr(lr), loss_based_lr(alpha0)]
    V.check_seed("seed", seed)
    x, y, _, _ = digits_binary(classes)
    kernels, order = mlp_params((x.shape[1], sizes.width, sizes.width, 1), seed=seed)
    stacked = [np.stack([k, k]) for k in kernels]
    runs = train_margin_grid(mlp_apply, stacked, x, y, order=order, schedules=schedules,
                             steps=sizes.steps, log_every=sizes.log_every,
                             record_params=True)
    const, lb = runs.member(0), runs.member(1)
    idx = np.unique(np.linspace(0, len(lb.steps) - 1, sizes.kkt_points).astype(int))
    kc = _kkt_series(const, x, y, idx, order)
    kl = _kkt_series(lb, x, y, idx, order)
    rob = lambda run: robustness(run.params, x, y)
    return HomogeneousResult(const, lb, order, len(y), lb.steps[idx], kc, kl, rob(const),
                             rob(lb))


def _check_sizes(sizes: Any) -> HMSizes:
    if sizes is None:
        return HMSizes.current()
    return V.check_instance("sizes", sizes, HMSizes, "HMSizes preset or None")


def gap_bound(run: MarginRun) -> np.ndarray:
    """``(log N + e^L - 1) / |theta|^L`` at every log point of ``run``."""
    return smoothed_gap_bound(run.n, run.norm, run.order, run.log_loss + np.log(run.n))


# --------------------------------------------------------------------------------------
# The widget: schedule and its learning rate
# --------------------------------------------------------------------------------------

WIDGET_LRS = (0.1, 0.3, 1.0)
WIDGET_SCHEDULES = ("constant", "loss-based")
#: Hidden width of the widget's nets (narrower than the main experiment's, so that the
#: six runs of the grid compute in seconds).
WIDGET_WIDTH = 16


def schedule_grid(steps: int, *, width: int = WIDGET_WIDTH, classes=(3, 5), seed: int = 0,
                  log_every: int | None = None) -> dict[str, MarginRun]:
    """Every setting of the widget (schedule x learning rate) as one vmapped call, logged
    every ``log_every`` steps (by default every 50 steps, or about 20 times when
    ``steps`` is not a multiple of 50)."""
    steps = V.check_int("steps", steps, minimum=1)
    if log_every is None:
        log_every = log_interval(steps, 20, prefer=50)
    V.check_steps(steps, log_every)
    V.check_int("width", width, minimum=1)
    V.check_seed("seed", seed)
    x, y, _, _ = digits_binary(classes)
    kernels, order = mlp_params((x.shape[1], width, width, 1), seed=seed)
    scheds = [constant_lr(v) for v in WIDGET_LRS] + [loss_based_lr(v) for v in WIDGET_LRS]
    stacked = [np.stack([k] * len(scheds)) for k in kernels]
    runs = train_margin_grid(mlp_apply, stacked, x, y, order=order, schedules=scheds,
                             steps=steps, log_every=log_every)
    out = {}
    for i, (kind, lr) in enumerate([(s, v) for s in WIDGET_SCHEDULES for v in WIDGET_LRS]):
        out[f"{kind}/{lr:g}"] = runs.member(i)
    return out


def _pow10(log10_value: float) -> str:
    """``10^{k}`` in mathtext for a base-10 exponent (rounded), e.g. ``10^{-1389}``."""
    return f"10^{{{float(log10_value):.0f}}}"


def schedule_figure(grid: dict[str, MarginRun], schedule: str, lr: float, fig: Any = None):
    """Normalized margin and loss of one setting, against the other schedule's runs."""
    from dltheory import plotting

    if not isinstance(grid, dict) or not grid:
        raise TypeError(f"argument `grid` must be the dict of runs from schedule_grid; got "
                        f"{V._describe(grid)}")
    V.check_choice("schedule", schedule, WIDGET_SCHEDULES)
    lr = V.check_positive("lr", lr)
    if fig is not None:
        plotting._check_figure(fig)
    key = f"{schedule}/{lr:g}"
    if key not in grid:
        raise ValueError(f"argument `lr` must be one of the grid's rates for {schedule!r} "
                         f"({', '.join(k.split('/')[1] for k in grid if k.startswith(schedule))}); "
                         f"got {lr!r}")
    fig, (a, b) = plotting.figure(2, width=10, height=3.8,
                                  reuse="detached" if fig is None else fig)
    for k, run in grid.items():
        on = k == key
        kw = {"color": "#d1495b" if on else "0.75", "lw": 2.2 if on else 1.0, "zorder": 3 if on else 1}
        a.plot(run.steps, run.normalized, **kw)
        b.plot(run.steps, run.log10_loss, **kw)
    run = grid[key]
    a.set(xlabel="step", ylabel=r"normalized margin $\gamma(\theta)$", ylim=(0, None))
    b.set(xlabel="step", ylabel=r"$\log_{10}$ training loss")
    fig.suptitle(f"{schedule}, {'η' if schedule == 'constant' else 'α₀'} = {lr:g}: final "
                 f"margin {run.normalized[-1]:.3g}, loss ${_pow10(run.log10_loss[-1])}$ "
                 f"(grey: the other settings)", fontsize=11)
    return fig


def schedule_explorer(steps: int | None = None):
    """The chapter's widget: schedule (constant or loss-based) and its learning rate.

    All six runs are computed once, as one vmapped call; moving a control only redraws.
    """
    from dltheory.widgets import choice, explore

    steps = HMSizes.current().widget_steps if steps is None else V.check_int(
        "steps", steps, minimum=1)
    grid = schedule_grid(steps)
    return explore(lambda schedule, lr, fig=None: schedule_figure(grid, schedule, lr, fig=fig),
                   title="Constant learning rate versus the loss-based schedule",
                   schedule=choice(list(WIDGET_SCHEDULES), default="loss-based",
                                   label="schedule"),
                   lr=choice(list(WIDGET_LRS), default=0.3, label="η or α₀", fmt="{:g}"))


# --------------------------------------------------------------------------------------
# Paper scale: a bias-free CNN on CIFAR-10 with the loss-based schedule
# --------------------------------------------------------------------------------------


def cnn_margin_run(sizes: HMSizes | None = None, *, root: str | None = None,
                   schedule=None, seed: int = 0, channels: tuple = (32, 64),
                   download: bool = False) -> MarginRun:
    """The paper preset: a bias-free CNN (``dltheory.models.ConvNet(bias=False)``) on
    CIFAR-10 (``dltheory.data.cifar10``), full-batch, cross-entropy in log space, the
    loss-based schedule; the margin is the logit gap.

    Lyu & Li (2020) train a VGG-like net on CIFAR-10 with minibatches of 100; this is a
    full-batch version of that experiment on ``sizes.cnn_examples`` images, with the
    ConvNet's stages given by ``channels``. ``root`` is the folder holding
    ``cifar-10-batches-py`` (default ``$DLTHEORY_DATA`` or ``~/.cache/dltheory``);
    ``download=True`` fetches it when missing (Colab, GPU machines; never in tests).

    Raises:
      FileNotFoundError: if CIFAR-10 is not in ``root`` and ``download`` is False.
    """
    from dltheory import data as D
    from dltheory import models

    sizes = _check_sizes(sizes)
    if schedule is not None and not isinstance(schedule, Schedule):
        raise TypeError(f"argument `schedule` must be constant_lr(...), loss_based_lr(...) or "
                        f"None; got {schedule!r}")
    D._data_root(root)  # a bad `root` is rejected before the model is built
    model = models.ConvNet(rngs=nnx.Rngs(V.check_seed("seed", seed)), bias=False,
                           channels=channels)
    ds = D.cifar10(root, limit=sizes.cnn_examples, download=download)
    order = models.homogeneity_order(model)
    graphdef, params = nnx.split(model, nnx.Param)
    apply = _cnn_apply(graphdef)
    return train_margin(apply, params, np.asarray(ds.x_train), np.asarray(ds.y_train),
                        order=order, schedule=schedule or loss_based_lr(0.1),
                        steps=sizes.cnn_steps, log_every=log_interval(sizes.cnn_steps, 20),
                        margins=multiclass_margins)


_CNN_APPLY: dict = {}


def _cnn_apply(graphdef):
    key = id(graphdef)
    if key not in _CNN_APPLY:
        def apply(params, x):
            return nnx.merge(graphdef, params)(x)
        _CNN_APPLY[key] = apply
    return _CNN_APPLY[key]
