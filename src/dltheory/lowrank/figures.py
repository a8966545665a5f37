"""Figures and widgets of the two low-rank chapters.

Each widget precomputes its whole grid with one vmapped call per shape (depth, width,
target), so moving a control only redraws: no gradient descent, no compilation.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dltheory import validation as V
from dltheory.config import log_interval
from dltheory.lowrank.experiments import GreedySizes, SensingSizes
from dltheory.lowrank.flow import FlowResult, gradient_flow
from dltheory.lowrank.glrl import distance_to_glrl, glrl
from dltheory.lowrank.problems import matrix_completion_problem, matrix_sensing_problem
from dltheory.lowrank.sensing import plateau_times

__all__ = [
    "TARGETS",
    "WIDGET_INIT_SCALES",
    "glrl_explorer",
    "plot_spectrum",
    "sensing_explorer",
    "widget_distances",
]

#: Target spectra offered by the widgets: well separated, and close.
TARGETS = {"separated (8, 2, 0.5)": (8.0, 2.0, 0.5), "close (3, 2, 1)": (3.0, 2.0, 1.0)}
SENSING_TARGETS = {"separated (4, 2, 1)": (4.0, 2.0, 1.0), "close (4, 3.5, 3)": (4.0, 3.5, 3.0)}
#: Init scales offered by the widgets.
WIDGET_INIT_SCALES = (1e-6, 1e-4, 1e-2, 1e-1)
_COLORS = ("#1f5aa6", "#d1495b", "#2a9d8f", "#e9a03b", "#6a4c93", "#555555")


def plot_spectrum(ax, flow: FlowResult, run: int, *, k: int = 4,
                  levels: Any = None, time: bool = True, log: bool = True,
                  logx: bool = False) -> None:
    """Draw the top ``k`` singular values of ``W(t)`` of one run against time (or steps).

    ``levels`` (optional) are horizontal reference lines, e.g. the target's eigenvalues;
    ``logx`` puts time on a log axis (the first record, at ``t = 0``, is dropped).
    """
    from dltheory import plotting

    plotting._check_axes("ax", ax)
    V.check_instance("flow", flow, FlowResult, "FlowResult (from gradient_flow)")
    run = V.check_int("run", run, minimum=0, maximum=len(flow) - 1)
    k = V.check_int("k", k, minimum=1)
    if levels is not None:
        levels = V.check_array("levels", levels, ndim=(0, 1))
    x = flow.times[run] if time else flow.steps
    sv = flow.spectrum[run]
    if logx:
        x, sv = x[1:], sv[1:]
        ax.set_xscale("log")
    for s in range(min(k, sv.shape[1])):
        ax.plot(x, sv[:, s], color=_COLORS[s % len(_COLORS)], lw=1.6,
                label=rf"$\sigma_{s + 1}(W)$")
    if levels is not None:
        for s, lv in enumerate(np.atleast_1d(levels)[:k]):
            ax.axhline(lv, color=_COLORS[s % len(_COLORS)], ls=":", lw=1)
    if log:
        ax.set_yscale("log")
        top = max(float(np.max(sv[:, 0])), float(np.max(levels)) if levels is not None else 0)
        ax.set_ylim(1e-6, 2 * top)
    ax.set(xlabel="time $t = k\\eta$" if time else "step $k$", ylabel="singular value")


# --------------------------------------------------------------------------------------
# GLRL chapter widget: init scale, depth, target spectrum
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _glrl_grid(d: int, steps: int, lr: float, depths: tuple[int, ...]):
    out = {}
    for name, eig in TARGETS.items():
        p = matrix_completion_problem(d, eig, fraction=0.5, seed=0)
        g = glrl(p)
        for L in depths:
            f = gradient_flow(p, init_scales=WIDGET_INIT_SCALES, seeds=0, lrs=lr, steps=steps,
                              log_every=log_interval(steps, 100), references=g.iterates, depth=L,
                              symmetric=(L == 2))
            out[name, L] = (p, g, f, distance_to_glrl(f, g))
    return out


def widget_distances(sizes: GreedySizes, target: str, depth: int = 2):
    """``(init_scales, distances)`` of the GLRL widget's precomputed runs for one target
    and depth (distances: ``(A, R)``); reuses the widget's cache."""
    V.check_instance("sizes", sizes, GreedySizes, "GreedySizes preset")
    V.check_choice("target", target, tuple(TARGETS))
    V.check_choice("depth", depth, tuple(sizes.depths))
    grid = _glrl_grid(sizes.d, sizes.widget_steps, sizes.lr, tuple(sizes.depths))
    _, _, f, dist = grid[target, depth]
    return f.init_scales, dist


def glrl_figure(init_scale: float, depth: int, target: str, *, sizes: GreedySizes,
                fig: Any = None):
    """The GLRL widget's figure: the singular values of ``W(t)`` and the distances."""
    from dltheory import plotting

    grid = _glrl_grid(sizes.d, sizes.widget_steps, sizes.lr, tuple(sizes.depths))
    _p, g, f, dist = grid[target, depth]
    i = int(np.argmin(np.abs(np.log(f.init_scales / init_scale))))
    fig, (a, b) = plotting.figure(2, width=9.5, height=4.0,
                                  reuse="detached" if fig is None else fig)
    plot_spectrum(a, f, i, k=4, levels=[np.linalg.svd(w, compute_uv=False)[r]
                                        for r, w in enumerate(g.iterates)][:4])
    a.legend(loc="lower right", fontsize=9, frameon=False)
    a.set_title("singular values of W(t) (dotted: GLRL's)", fontsize=10)
    if f.spectrum[i, :, 0].max() < 1e-6:
        a.text(0.5, 0.5, f"W(t) stays below 1e-6: from α = {f.init_scales[i]:.0e} a depth-{depth}\n"
               f"flow needs far longer than this run to leave the origin", ha="center",
               va="center", transform=a.transAxes, fontsize=9)
    r = np.arange(1, dist.shape[1] + 1)
    for j, alpha in enumerate(f.init_scales):
        b.semilogy(r, dist[j], "o-", color=plotting.colors(len(f.init_scales))[j],
                   alpha=1.0 if j == i else 0.35, lw=2.2 if j == i else 1,
                   label=f"α = {alpha:.0e}")
    b.set(xlabel="GLRL rank r", ylabel="min_t |W(t) - W_r| / |W_r|", xticks=r)
    b.legend(fontsize=9, frameon=False)
    b.set_title("distance to the GLRL iterates", fontsize=10)
    fig.suptitle(f"depth {depth}, target {target}, init α = {f.init_scales[i]:.0e}: "
                 f"final loss {f.loss[i, -1]:.2e}", fontsize=11)
    return fig


def glrl_explorer(sizes: GreedySizes | None = None):
    """The GLRL chapter's widget: init scale, depth and the target's spectrum.

    Every setting is precomputed by one vmapped call per (target, depth).
    """
    from dltheory.widgets import choice, explore, slider

    sizes = GreedySizes.current() if sizes is None else V.check_instance(
        "sizes", sizes, GreedySizes, "GreedySizes preset or None")
    return explore(
        lambda init_scale, depth, target, fig=None: glrl_figure(
            init_scale, depth, target, sizes=sizes, fig=fig),
        title="Gradient flow from small initialization against GLRL",
        init_scale=slider(0, 0, values=WIDGET_INIT_SCALES, default=1e-4,
                          label="init scale α", fmt="{:.0e}"),
        depth=choice(tuple(sizes.depths), default=2, label="depth L"),
        target=choice(tuple(TARGETS), label="target spectrum"),
    )


# --------------------------------------------------------------------------------------
# Sensing chapter widget: init scale, step size, width
# --------------------------------------------------------------------------------------

SENSING_LRS = (0.01, 0.02)
SENSING_INIT_SCALES = (1e-8, 1e-5, 1e-2)
SENSING_WIDTHS = (2, 10)


@functools.lru_cache(maxsize=4)
def _sensing_grid(d: int, m: int, steps: int):
    out = {}
    for name, eig in SENSING_TARGETS.items():
        p = matrix_sensing_problem(d, eig, measurements=m, seed=0)
        for w in SENSING_WIDTHS:
            f = gradient_flow(p, init_scales=SENSING_INIT_SCALES, seeds=0, lrs=SENSING_LRS,
                              steps=steps, log_every=log_interval(steps, 200), width=min(w, d))
            out[name, w] = (p, f)
    return out


def sensing_figure(init_scale: float, lr: float, width: int, target: str, *,
                   sizes: SensingSizes, fig: Any = None):
    """The sensing widget's figure: singular values against steps, predicted plateaus."""
    from dltheory import plotting

    grid = _sensing_grid(sizes.d, sizes.measurements, sizes.widget_steps)
    p, f = grid[target, width]
    match = np.isclose(f.init_scales, init_scale, rtol=1e-6) & np.isclose(f.lrs, lr, rtol=1e-9)
    i = int(np.argmax(match))
    fig, ax = plotting.figure(width=8, height=4.2, reuse="detached" if fig is None else fig)
    plot_spectrum(ax, f, i, k=3, levels=p.eigenvalues, time=False)
    lam = p.eigenvalues
    times = plateau_times(f, lam[:min(len(lam), f.width)])[i]
    for s, lv in enumerate(lam[:min(len(lam), f.width)]):
        pred = np.log(1 / f.init_scales[i]) / (2 * f.lrs[i] * lv)
        ax.axvline(pred, color=_COLORS[s], ls="--", lw=1)
        if np.isfinite(times[s]):
            ax.plot([times[s]], [lv / 2], "o", color=_COLORS[s], ms=5)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    last = np.log(1 / f.init_scales[i]) / (2 * f.lrs[i] * lam[min(len(lam), f.width) - 1])
    ax.set_xlim(0, min(float(f.steps[-1]), 2.5 * last + 50))
    fig.suptitle(f"width {width}, η = {lr:g}, α = {f.init_scales[i]:.0e}, target {target}  "
                 f"(dashed: ln(1/α)/(2ηλ_s); dots: measured plateau ends)", fontsize=10)
    return fig


def sensing_explorer(sizes: SensingSizes | None = None):
    """The sensing chapter's widget: init scale, step size, width and target spectrum."""
    from dltheory.widgets import choice, explore, slider

    sizes = SensingSizes.current() if sizes is None else V.check_instance(
        "sizes", sizes, SensingSizes, "SensingSizes preset or None")
    return explore(
        lambda init_scale, lr, width, target, fig=None: sensing_figure(
            init_scale, lr, width, target, sizes=sizes, fig=fig),
        title="Incremental learning in matrix sensing",
        init_scale=slider(0, 0, values=SENSING_INIT_SCALES, default=1e-5,
                          label="init scale α", fmt="{:.0e}"),
        lr=choice(SENSING_LRS, default=0.02, label="step size η"),
        width=choice(SENSING_WIDTHS, default=SENSING_WIDTHS[-1], label="width r"),
        target=choice(tuple(SENSING_TARGETS), label="target spectrum"),
    )
