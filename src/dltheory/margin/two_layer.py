"""Chapter "Two-layer Leaky ReLU nets": experiments, figures and the widget.

References:
  Lyu, Li, Wang, Arora (2021), Gradient Descent on Two-layer Nets: Margin Maximization
  and Simplicity Bias, NeurIPS, arXiv:2110.13905.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import jax
import numpy as np

from dltheory import validation as V
from dltheory.config import Preset, log_interval
from dltheory.margin.core import max_margin_linear, symmetric_separable_data
from dltheory.margin.leaky import (
    alignment_with_mu,
    is_linear_on,
    leaky_apply,
    leaky_init,
    linear_part,
    max_normalized_margin,
)
from dltheory.margin.train import (
    MarginRun,
    constant_lr,
    loss_based_lr,
    train_margin_grid,
)

__all__ = [
    "LRSizes",
    "ManipulationResult",
    "SymmetricResult",
    "alignment_figure",
    "manipulation_experiment",
    "neuron_explorer",
    "neuron_figure",
    "neuron_grid",
    "symmetric_experiment",
]


@dataclasses.dataclass(frozen=True)
class LRSizes(Preset):
    """Sizes: data ``n`` points in ``d`` dimensions, ``width`` neurons, ``steps``;
    ``frag_seeds`` data sets of the fragility experiment, each trained ``frag_steps``."""

    n: int
    d: int
    width: int
    steps: int
    log_every: int
    widget_steps: int
    frag_seeds: int = 8
    frag_steps: int = 20_000

    @classmethod
    def quick(cls) -> LRSizes:
        return cls(n=40, d=5, width=50, steps=3000, log_every=10, widget_steps=600,
                   frag_seeds=8, frag_steps=20_000)

    @classmethod
    def paper(cls) -> LRSizes:
        return cls(n=400, d=20, width=500, steps=40_000, log_every=50, widget_steps=4000,
                   frag_seeds=32, frag_steps=200_000)


@dataclasses.dataclass(frozen=True)
class SymmetricResult:
    """GD from a small init on symmetric data, constant lr and loss-based schedule.

    Attributes:
      constant, loss_based: the runs (parameters recorded at every log point).
      x, y, mu: the data and ``mu = sum_n y_n x_n``.
      svm_direction, svm_margin: the linear max-margin classifier.
      max_margin: ``((1 + alpha) / 4) gamma*``, the global max normalized margin.
      cos_svm: ``cos(sum_k a_k w_k, u*)`` per log point, shape ``(2, n_log)``.
      margin_ratio: normalized margin / max margin per log point, ``(2, n_log)``.
      alignment: mean ``|cos(w_k, mu)|`` per log point, ``(2, n_log)``.
      half_step: first logged step of the constant-lr run with loss <= half the initial.
      alignment_before_half: the constant-lr run's alignment at the last log point before.
    """

    constant: MarginRun
    loss_based: MarginRun
    x: np.ndarray
    y: np.ndarray
    mu: np.ndarray
    alpha: float
    svm_direction: np.ndarray
    svm_margin: float
    max_margin: float
    cos_svm: np.ndarray
    margin_ratio: np.ndarray
    alignment: np.ndarray
    half_step: int
    alignment_before_half: float


def _check_sizes(sizes: Any) -> LRSizes:
    if sizes is None:
        return LRSizes.current()
    return V.check_instance("sizes", sizes, LRSizes, "LRSizes preset or None")


def _check_leak_and_scale(alpha: Any, init_scale: Any) -> None:
    V.check_in_range("alpha", alpha, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    V.check_positive("init_scale", init_scale)


def _series(run: MarginRun, u, mu, gmax):
    w, a = run.params["w"], run.params["a"]
    v = np.einsum("tk,tkd->td", a, w)
    cos = v @ u / np.maximum(np.linalg.norm(v, axis=1), 1e-300)
    return cos, run.normalized / gmax, alignment_with_mu(w, mu)


def symmetric_experiment(sizes: LRSizes | None = None, *, alpha: float = 0.2,
                         init_scale: float = 1e-4, lr: float = 1.0, alpha0: float = 0.5,
                         seed: int = 0) -> SymmetricResult:
    """Symmetric separable data; one vmapped call runs constant-lr GD and the loss-based
    schedule from the same small initialization.

    References:
      Lyu, Li, Wang, Arora (2021), arXiv:2110.13905 (symmetric data: convergence to the
      global max margin, a linear classifier; early phase: alignment with mu).
    """
    sizes = _check_sizes(sizes)
    _check_leak_and_scale(alpha, init_scale)
    schedules = [constant_lr(lr), loss_based_lr(alpha0)]
    V.check_seed("seed", seed)
    x, y = symmetric_separable_data(sizes.n, sizes.d, gap=0.1, key=seed)
    svm = max_margin_linear(x, y)
    gmax = max_normalized_margin(svm.margin, alpha)
    mu = (y[:, None] * x).sum(0)
    p0 = leaky_init(jax.random.key(seed), sizes.d, sizes.width, init_scale)
    stacked = jax.tree.map(lambda a: np.stack([np.asarray(a)] * 2), p0)
    runs = train_margin_grid(leaky_apply, stacked, {"x": x, "alpha": alpha}, y, order=2,
                             schedules=schedules,
                             steps=sizes.steps, log_every=sizes.log_every,
                             record_params=True)
    const, lb = runs.member(0), runs.member(1)
    s = [_series(r, svm.direction, mu, gmax) for r in (const, lb)]
    cos, ratio, align = (np.stack([a[i] for a in s]) for i in range(3))
    loss = np.exp(const.log_loss)
    half = int(np.argmax(loss <= loss[0] / 2)) if np.any(loss <= loss[0] / 2) else len(loss)
    before = align[0, max(half - 1, 0)]
    return SymmetricResult(const, lb, x, y, mu, alpha, svm.direction, svm.margin, gmax, cos,
                           ratio, align, int(const.steps[min(half, len(loss) - 1)]),
                           float(before))


# --------------------------------------------------------------------------------------
# The widget: 2-D data, neurons drawn as directions
# --------------------------------------------------------------------------------------

WIDGET_ALPHAS = (0.05, 0.2, 0.5)
WIDGET_INITS = (1e-4, 0.3)
WIDGET_WIDTHS = (4, 20)
WIDGET_DATA = ("symmetric", "not symmetric")


def _widget_data(n=16, seed=3):
    x, y = symmetric_separable_data(n, 2, gap=0.15, key=seed, teacher=[1.0, 0.6])
    # not symmetric: the same set with half of the points replaced by their mirror images
    # is still symmetric as a set of pairs only if both members stay; here we drop the
    # symmetry by replacing the second half by fresh points of the same distribution
    x2, y2 = symmetric_separable_data(n, 2, gap=0.15, key=seed + 100, symmetric=False,
                                      teacher=[1.0, 0.6])
    return (x, y), (x2, y2)


def neuron_grid(steps: int, *, lr: float = 0.5, seed: int = 0) -> dict:
    """Every widget setting (alpha x init scale x width x data) as one vmapped call of
    constant-lr gradient descent; widths share one shape (unused neurons are zero)."""
    steps = V.check_int("steps", steps, minimum=1)
    schedule = constant_lr(lr)
    seed = V.check_seed("seed", seed)
    (xs, ys), (xn, yn) = _widget_data()
    wmax = max(WIDGET_WIDTHS)
    settings = list(itertools.product(WIDGET_ALPHAS, WIDGET_INITS, WIDGET_WIDTHS, WIDGET_DATA))
    params, xx, yy, al = [], [], [], []
    for k, (alpha, init, width, data) in enumerate(settings):
        p = leaky_init(jax.random.key(seed), 2, wmax, init, active=width)
        params.append(p)
        x, y = (xs, ys) if data == "symmetric" else (xn, yn)
        xx.append(x)
        yy.append(y)
        al.append(alpha)
    stacked = jax.tree.map(lambda *a: np.stack([np.asarray(v) for v in a]), *params)
    runs = train_margin_grid(leaky_apply, stacked,
                             {"x": np.stack(xx), "alpha": np.asarray(al)}, np.stack(yy),
                             order=2, schedules=[schedule] * len(settings),
                             steps=steps, log_every=log_interval(steps, 60), data_axis=0,
                             record_params=True)
    return {"settings": settings, "runs": runs, "x": np.stack(xx), "y": np.stack(yy)}


def _setting(grid: Any, alpha: Any, init_scale: Any, width: Any, data: Any) -> int:
    """The index of a setting of :func:`neuron_grid`'s grid, each value checked."""
    if not isinstance(grid, dict) or "settings" not in grid or "runs" not in grid:
        raise TypeError(f"argument `grid` must be the dict of runs from neuron_grid; got "
                        f"{V._describe(grid)}")
    settings = list(grid["settings"])
    values = {"alpha": alpha, "init_scale": init_scale, "width": width, "data": data}
    for j, (name, v) in enumerate(values.items()):
        offered = sorted({s[j] for s in settings}, key=str)
        if name == "data":
            V.check_choice(name, v, offered)
        elif name == "width":
            V.check_int(name, v, minimum=1)
        else:
            V.check_positive(name, v)
        if v not in offered:
            raise ValueError(f"argument `{name}` must be one of the grid's values {offered}; "
                             f"got {v!r}")
    return settings.index(tuple(values.values()))


def neuron_figure(grid: dict, alpha: float, init_scale: float, width: int, data: str,
                  fig: Any = None):
    """Left: the data, the neurons ``w_k`` (arrows, scaled, colored by the sign of
    ``a_k``), ``mu`` and the max-margin direction. Right: alignment with ``mu`` and
    ``cos(sum a_k w_k, u*)`` over training, and the normalized margin over its linear
    maximum ``(1 + alpha) gamma* / 4`` (a true bound only on symmetric data)."""
    from dltheory import plotting

    i = _setting(grid, alpha, init_scale, width, data)
    if fig is not None:
        plotting._check_figure(fig)
    run = grid["runs"].member(i)
    x, y = grid["x"][i], grid["y"][i]
    svm = max_margin_linear(x, y)
    mu = (y[:, None] * x).sum(0)
    w, a = run.params["w"][:, :width], run.params["a"][:, :width]
    fig, (ax, bx) = plotting.figure(2, width=9.5, height=4.3,
                                    reuse="detached" if fig is None else fig)
    ax.scatter(x[:, 0], x[:, 1], c=np.where(y > 0, "#1f5aa6", "#d1495b"), s=22, zorder=3)
    wf = w[-1]
    scale = 1.2 / max(np.linalg.norm(wf, axis=1).max(), 1e-300)
    for k in range(width):
        c = "#2a9d8f" if a[-1, k] > 0 else "#e9c46a"
        ax.annotate("", xy=scale * wf[k], xytext=(0, 0),
                    arrowprops={"arrowstyle": "->", "color": c, "lw": 1.4})
    m = mu / np.linalg.norm(mu)
    ax.plot([0, 1.4 * m[0]], [0, 1.4 * m[1]], "k--", lw=1, label="μ direction")
    u = svm.direction
    ax.plot([-1.5 * u[1], 1.5 * u[1]], [1.5 * u[0], -1.5 * u[0]], color="0.4", lw=1,
            label="max-margin boundary")
    ax.set(xlim=(-1.6, 1.6), ylim=(-1.6, 1.6), aspect="equal", xlabel="$x_1$",
           ylabel="$x_2$", title="final neurons (teal: $a_k > 0$, amber: $a_k < 0$)")
    ax.legend(loc="lower left", fontsize=9, frameon=True)
    gmax = max_normalized_margin(svm.margin, alpha)
    v = np.einsum("tk,tkd->td", a, w)
    cos = v @ u / np.maximum(np.linalg.norm(v, axis=1), 1e-300)
    bx.plot(run.steps, alignment_with_mu(w, mu), label="mean |cos(w_k, μ)|")
    bx.plot(run.steps, cos, label=r"$\cos(\sum_k a_k w_k,\, u^*)$")
    bx.plot(run.steps, np.clip(run.normalized / gmax, -0.2, 1.5),
            label="margin / ((1+α)γ*/4)")
    bx.axhline(1.0, color="0.6", lw=0.8)
    bx.set(xlabel="GD step", ylim=(-0.25, 1.55), title="alignment and margin")
    bx.legend(loc="lower right", fontsize=9, frameon=False)
    lin = is_linear_on(jax.tree.map(lambda t: t[-1], run.params), x, alpha)
    fig.suptitle(f"α = {alpha:g}, init {init_scale:g}, width {width}, {data} data: "
                 f"final margin ratio {run.normalized[-1] / gmax:.3f}, distance from linear "
                 f"{lin:.2g}", fontsize=11)
    return fig


def alignment_figure(grid: dict, alpha: float = 0.2, init_scale: float = 1e-4,
                     width: int = 20, data: str = "symmetric"):
    """Neurons as arrows at three moments: initialization, when the alignment with ``mu``
    first exceeds 0.95 (loss still near ``ln 2``), and the end of the run.

    Three small multiples sized for the book's text width, with one legend for the
    colours (teal/amber: sign of ``a_k``; blue/red: label of the data; dashed: ``mu``)."""
    from matplotlib.lines import Line2D

    from dltheory import plotting

    i = _setting(grid, alpha, init_scale, width, data)
    run = grid["runs"].member(i)
    x, y = grid["x"][i], grid["y"][i]
    mu = (y[:, None] * x).sum(0)
    w, a = run.params["w"][:, :width], run.params["a"][:, :width]
    align = alignment_with_mu(w, mu)
    k = int(np.argmax(align > 0.95)) if np.any(align > 0.95) else len(align) // 2
    fig, axes = plotting.figure(3, width=7.5, height=3.5)
    m = mu / np.linalg.norm(mu)
    for ax, t in zip(axes, (0, k, len(run.steps) - 1)):
        ax.scatter(x[:, 0], x[:, 1], c=np.where(y > 0, "#1f5aa6", "#d1495b"), s=16, zorder=3)
        wt = w[t]
        scale = 1.2 / max(np.linalg.norm(wt, axis=1).max(), 1e-300)
        for j in range(width):
            c = "#2a9d8f" if a[t, j] > 0 else "#e9c46a"
            ax.annotate("", xy=scale * wt[j], xytext=(0, 0),
                        arrowprops={"arrowstyle": "->", "color": c, "lw": 1.3})
        ax.plot([-1.4 * m[0], 1.4 * m[0]], [-1.4 * m[1], 1.4 * m[1]], "k--", lw=0.9)
        ax.set(xlim=(-1.5, 1.5), ylim=(-1.5, 1.5), aspect="equal", xlabel="$x_1$",
               xticks=(-1, 0, 1), yticks=(-1, 0, 1))
        ax.set_title(f"step {run.steps[t]}\nloss {np.exp(run.log_loss[t]):.3f}\n"
                     f"mean $|\\cos(w_k, \\mu)|$ = {align[t]:.2f}", fontsize=10)
    axes[0].set_ylabel("$x_2$")
    handles = [Line2D([], [], color="#2a9d8f", lw=2, label="$w_k$, $a_k > 0$"),
               Line2D([], [], color="#e9c46a", lw=2, label="$w_k$, $a_k < 0$"),
               Line2D([], [], color="k", ls="--", lw=0.9, label=r"$\pm\mu$"),
               Line2D([], [], color="#1f5aa6", marker="o", ls="none", label="$y = +1$"),
               Line2D([], [], color="#d1495b", marker="o", ls="none", label="$y = -1$")]
    fig.legend(handles=handles, loc="outside lower center", ncols=5, frameon=False,
               fontsize=9, handlelength=1.5, columnspacing=1.0)
    return fig, {"align_step": int(run.steps[k]), "align_loss": float(np.exp(run.log_loss[k])),
                 "loss0": float(np.exp(run.log_loss[0])), "align": float(align[k])}


def neuron_explorer(steps: int | None = None, grid: dict | None = None):
    """The chapter's widget: leak alpha, init scale, width, symmetry of the data.

    ``grid`` is a precomputed :func:`neuron_grid` (else it is computed here, one call)."""
    from dltheory.widgets import choice, explore

    if grid is None:
        steps = LRSizes.current().widget_steps if steps is None else V.check_int(
            "steps", steps, minimum=1)
        grid = neuron_grid(steps)
    elif not isinstance(grid, dict) or "settings" not in grid or "runs" not in grid:
        raise TypeError(f"argument `grid` must be the dict of runs from neuron_grid, or None; "
                        f"got {V._describe(grid)}")
    return explore(lambda alpha, init_scale, width, data, fig=None:
                   neuron_figure(grid, alpha, init_scale, width, data, fig=fig),
                   title="Two-layer Leaky ReLU net on 2-D data",
                   alpha=choice(list(WIDGET_ALPHAS), default=0.2, label="leak α", fmt="{:g}"),
                   init_scale=choice(list(WIDGET_INITS), default=1e-4, label="init scale",
                                     fmt="{:g}"),
                   width=choice(list(WIDGET_WIDTHS), default=20, label="width"),
                   data=choice(list(WIDGET_DATA), default="symmetric", label="data"))


# --------------------------------------------------------------------------------------
# Where the picture breaks: manipulated data
# --------------------------------------------------------------------------------------


#: The data sets :func:`manipulation_experiment` can train on.
MANIPULATIONS = ("symmetric", "duplicated", "mirror dropped")


@dataclasses.dataclass(frozen=True)
class ManipulationResult:
    """The symmetric data set and manipulated versions, trained alike.

    Attributes:
      names: the data sets (``"symmetric"``, then the manipulations).
      ratio: final normalized margin over ``((1 + alpha) / 4) gamma*`` of that data set.
      cos: final ``cos(sum a_k w_k, u*)``.
      nonlinearity: relative distance of ``f`` on the data from a linear function.
      log10_loss: final loss.
    """

    names: tuple
    ratio: np.ndarray
    cos: np.ndarray
    nonlinearity: np.ndarray
    log10_loss: np.ndarray


def manipulation_experiment(sizes: LRSizes | None = None, *, alpha: float = 0.2,
                            init_scale: float = 1e-4, alpha0: float = 0.5,
                            seed: int = 1,
                            which: tuple = ("symmetric", "duplicated", "mirror dropped")
                            ) -> ManipulationResult:
    """Train on symmetric data and on two manipulations of it (one vmapped call each
    data set size): ``"duplicated"`` adds ten copies of one support vector (not of its
    mirror image), ``"mirror dropped"`` removes the mirror images of a quarter of the
    points. Both keep the data linearly separable.

    They probe the symmetry assumption of Lyu, Li, Wang, Arora (2021); they are not the
    paper's fragility construction (data on which gradient flow ends at a linear
    classifier with a suboptimal margin), which :func:`dltheory.margin.fragility_experiment`
    runs.
    """
    sizes = _check_sizes(sizes)
    _check_leak_and_scale(alpha, init_scale)
    schedule = loss_based_lr(alpha0)
    V.check_seed("seed", seed)
    if isinstance(which, (str, bytes)) or not isinstance(which, (tuple, list)) or not which:
        raise TypeError(f"argument `which` must be a non-empty tuple of data set names; got "
                        f"{which!r}")
    unknown = set(which) - set(MANIPULATIONS)
    if unknown:
        raise ValueError(f"argument `which` must be among {MANIPULATIONS}; got "
                         f"{sorted(unknown)}")
    x, y = symmetric_separable_data(sizes.n, sizes.d, gap=0.1, key=seed)
    svm0 = max_margin_linear(x, y)
    i = int(svm0.support[0])
    sets = {"symmetric": (x, y),
            "duplicated": (np.concatenate([x, np.repeat(x[i:i + 1], 10, 0)]),
                           np.concatenate([y, np.repeat(y[i:i + 1], 10)])),
            "mirror dropped": (x[: 3 * sizes.n // 4], y[: 3 * sizes.n // 4])}
    names, ratio, cos, lin, loss = [], [], [], [], []
    p0 = leaky_init(jax.random.key(0), sizes.d, sizes.width, init_scale)
    stacked = jax.tree.map(lambda a: np.asarray(a)[None], p0)
    for name in which:
        xx, yy = sets[name]
        svm = max_margin_linear(xx, yy)
        run = train_margin_grid(leaky_apply, stacked, {"x": xx, "alpha": alpha}, yy,
                                order=2, schedules=[schedule],
                                steps=sizes.steps, log_every=sizes.steps).member(0)
        p = run.final_params
        v = linear_part(p)
        names.append(name)
        ratio.append(run.normalized[-1] / max_normalized_margin(svm.margin, alpha))
        cos.append(v @ svm.direction / np.linalg.norm(v))
        lin.append(is_linear_on(p, xx, alpha))
        loss.append(run.log10_loss[-1])
    return ManipulationResult(tuple(names), np.asarray(ratio), np.asarray(cos),
                              np.asarray(lin), np.asarray(loss))
