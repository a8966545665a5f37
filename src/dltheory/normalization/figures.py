"""The widgets of Part IV: precomputed grids (one vmapped call each), redrawn on demand.

The whole grid of settings is one :func:`~dltheory.normalization.run_configs` call (one
vmapped, compiled run), computed once and cached; moving a control only redraws.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dltheory import validation as V
from dltheory.config import log_interval
from dltheory.normalization.experiments import (
    Config,
    EquilibriumResult,
    equilibrium_sweep,
)

__all__ = [
    "GROWTH_ETAS",
    "WIDGET_ETAS",
    "WIDGET_INIT",
    "WIDGET_WDS",
    "equilibrium_explorer",
    "equilibrium_figure",
    "growth_explorer",
    "growth_figure",
    "growth_grid",
    "widget_grid",
]

WIDGET_ETAS = (0.1, 0.3, 1.0)
WIDGET_WDS = (0.01, 0.03, 0.1)
WIDGET_INIT = (1.0, 10.0)


@functools.lru_cache(maxsize=4)
def widget_grid(steps: int, batch_size: int = 32, width: int = 64,
                log_every: int | None = None) -> EquilibriumResult:
    """Every (eta, lambda, initial norm) of the widget: one sweep, cached; logged every
    ``log_every`` steps (by default 20, or about 20 times when 20 does not divide
    ``steps``)."""
    steps = V.check_int("steps", steps, minimum=1)
    batch_size = V.check_int("batch_size", batch_size, minimum=1)
    width = V.check_int("width", width, minimum=2)
    if log_every is None:
        log_every = log_interval(steps, 20, prefer=20)
    configs = [Config(e, w, init_scale=c) for e in WIDGET_ETAS for w in WIDGET_WDS
               for c in WIDGET_INIT]
    return equilibrium_sweep(configs, steps, seeds=(0,), batch_size=batch_size, width=width,
                             log_every=log_every, progress=False)


def equilibrium_figure(res: EquilibriumResult, index: int, fig: Any = None):
    """Effective LR, angular update, squared weight norm and test accuracy of run
    ``index`` of ``res``, as a 2 x 2 grid sized for the book's text width.

    The dashed lines are the predictions: the angular update ``sqrt(2 eta lambda)``
    (exactly ``arctan(sqrt(eta lambda (2 - eta lambda)) / (1 - eta lambda))``).
    """
    from dltheory import plotting

    V.check_instance("res", res, EquilibriumResult, "EquilibriumResult (from equilibrium_sweep)")
    index = V.check_int("index", index, minimum=0, maximum=len(res.configs) - 1)
    cfg = res.configs[index]
    fig, ((a, b), (n, c)) = plotting.figure(2, 2, width=7.5, height=6.2,
                                            reuse="detached" if fig is None else fig)
    steps = res.steps
    for g in range(res.effective_lr.shape[-1]):
        a.semilogy(steps, res.effective_lr[index, 0, :, g], label=f"layer {g + 1}")
        b.plot(steps[1:], res.angular[index, 0, :, g], label=f"layer {g + 1}")
        n.semilogy(steps, cfg.eta / res.effective_lr[index, 0, :, g], label=f"layer {g + 1}")
    x = cfg.product
    pred = np.arctan(np.sqrt(x * (2 - x)) / (1 - x))
    b.axhline(pred, color="k", ls="--", lw=1, label="√(2ηλ) (prediction)")
    tau = 1 / x
    for ax in (a, b, n, c):
        if tau < steps[-1]:
            ax.axvline(tau, color="0.6", lw=0.8, ls=":")
    n.set(xlabel="step", ylabel="|w|²", title="squared weight norm")
    a.set(xlabel="step", ylabel="effective LR η/|w|²", title="effective learning rate")
    b.set(xlabel="step", ylabel="angle per step (rad)", title="angular update",
          ylim=(0, max(2.2 * pred, 0.05)))
    c.plot(steps, 100 * res.test_accuracy[index, 0], color="#1f5aa6")
    c.set(xlabel="step", ylabel="test accuracy (%)", title="test accuracy", ylim=(0, 100))
    a.legend(frameon=False, fontsize=9)
    b.legend(frameon=False, fontsize=9, loc="upper right")
    fig.suptitle(f"η = {cfg.eta:g}, λ = {cfg.wd:g}, initial norm ×{cfg.init_scale:g}: "
                 f"ηλ = {x:g}, 1/(ηλ) = {tau:.0f} steps (dotted)", fontsize=11)
    return fig


def equilibrium_explorer(steps: int | None = None):
    """The chapter's widget: learning rate, weight decay and initial norm."""
    from dltheory.normalization.experiments import NormSizes
    from dltheory.widgets import choice, explore

    steps = NormSizes.current().widget_steps if steps is None else steps
    res = widget_grid(steps)
    index = {(c.eta, c.wd, c.init_scale): i for i, c in enumerate(res.configs)}

    def draw(eta, wd, init, fig=None):
        return equilibrium_figure(res, index[(eta, wd, init)], fig=fig)

    return explore(
        draw, title="SGD with weight decay on a normalized network",
        eta=choice(WIDGET_ETAS, default=0.3, label="learning rate η", fmt="{:g}"),
        wd=choice(WIDGET_WDS, default=0.03, label="weight decay λ", fmt="{:g}"),
        init=choice(WIDGET_INIT, default=1.0, label="initial norm ×", fmt="{:g}"),
    )


# --------------------------------------------------------------------------------------
# Chapter 1: auto rate-tuning under a learning-rate slider
# --------------------------------------------------------------------------------------

GROWTH_ETAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


@functools.lru_cache(maxsize=4)
def growth_grid(steps: int, width: int = 32, examples: int = 128):
    """GD without weight decay for every (eta, initial norm) of the widget: one sweep.

    Starting from ``c w_0`` with learning rate ``eta`` is, by scale invariance, ``c``
    times the run from ``w_0`` with ``eta / c^2``; so one sweep over ``eta / c^2`` covers
    the whole grid (norms are reported back in the original coordinates).
    """
    from dltheory.normalization.experiments import norm_growth

    steps = V.check_int("steps", steps, minimum=1)
    width = V.check_int("width", width, minimum=2)
    examples = V.check_int("examples", examples, minimum=2, maximum=1437)
    pairs = [(e, c) for e in GROWTH_ETAS for c in WIDGET_INIT]
    res = norm_growth([e / c ** 2 for e, c in pairs], steps, width=width, examples=examples)
    return pairs, res


def growth_figure(pairs, res, index: int, fig: Any = None):
    """Squared norm, effective learning rate, loss and training accuracy of GD run
    ``index`` (no weight decay), as a 2 x 2 grid sized for the book's text width.

    Args:
      pairs: the ``(eta, initial norm)`` of each run of ``res`` (from
        :func:`growth_grid`), or ``None`` for runs from the default initialization.
      res: a :class:`~dltheory.normalization.NormGrowthResult`.
      index: the run to draw.
    """
    from dltheory import plotting
    from dltheory.normalization.experiments import NormGrowthResult

    V.check_instance("res", res, NormGrowthResult, "NormGrowthResult (from growth_grid)")
    n = len(res.etas)
    if pairs is None:
        pairs = [(float(e), 1.0) for e in res.etas]
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, (list, tuple)) or \
            len(pairs) != n or not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
        raise TypeError(f"argument `pairs` must be a list of {n} (eta, initial norm) tuples "
                        f"(from growth_grid), or None; got {pairs!r}")
    index = V.check_int("index", index, minimum=0, maximum=n - 1)
    eta, c = pairs[index]
    fig, ((a, b), (d, e)) = plotting.figure(2, 2, width=7.5, height=5.8,
                                            reuse="detached" if fig is None else fig)
    steps = res.steps
    sq = res.sq_norm[index] * c ** 2
    for g in range(sq.shape[-1]):
        a.semilogy(steps, sq[:, g], label=f"layer {g + 1}")
        b.loglog(steps[1:], eta / sq[1:, g], label=f"layer {g + 1}")
    d.semilogy(steps, res.loss[index], color="#1f5aa6")
    a.set(xlabel="step", ylabel="|w|²", title="the norm only grows")
    b.set(xlabel="step", ylabel="effective LR η/|w|²", title="effective learning rate")
    d.set(xlabel="step", ylabel="training loss", title="loss (full-batch GD)")
    e.plot(steps, 100 * res.accuracy[index], color="#1f5aa6")
    e.set(xlabel="step", ylabel="training accuracy (%)", title="training accuracy",
          ylim=(0, 100))
    a.legend(frameon=False, fontsize=9)
    fig.suptitle(f"GD without weight decay, η = {eta:g}, initial norm ×{c:g}", fontsize=11)
    return fig


def growth_explorer(steps: int | None = None):
    """The scale-invariance chapter's widget: learning rate and initial norm, no decay."""
    from dltheory.normalization.experiments import NormSizes
    from dltheory.widgets import choice, explore, slider

    steps = NormSizes.current().gd_steps if steps is None else steps
    pairs, res = growth_grid(steps)
    index = {p: i for i, p in enumerate(pairs)}
    return explore(
        lambda eta, init, fig=None: growth_figure(pairs, res, index[(eta, init)], fig=fig),
        title="Auto rate-tuning: GD on a normalized network",
        eta=slider(0, 0, values=GROWTH_ETAS, default=1.0, label="learning rate η",
                   fmt="{:g}"),
        init=choice(WIDGET_INIT, default=1.0, label="initial norm ×", fmt="{:g}"),
    )
