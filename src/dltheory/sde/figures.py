"""Figures and widgets of Part I, drawn from the result objects of :mod:`.experiments`.

The widgets index into results computed once (one sweep per setting, done before the
widget is shown), so moving a control redraws and never recompiles or retrains.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from dltheory import validation as V
from dltheory.sde import _checks as C
from dltheory.sde.digits import RULES, RuleResult
from dltheory.sde.quadratic import SVAGQuadraticResult

__all__ = ["svag_figure", "svag_explorer", "rules_figure", "rules_explorer"]

RULE_NAMES = {"none": "no rescaling", "linear": "linear rule", "sqrt": "square-root rule"}


def _index(name: str, value: Any, options: Any) -> int:
    """The position of ``value`` in ``options`` (numbers; ``value`` must equal one)."""
    opts = [int(v) for v in options]
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value in opts
    if not ok:
        raise ValueError(f"argument `{name}` must be one of {opts}; got {value!r}")
    return opts.index(int(value))


def svag_figure(res: SVAGQuadraticResult, l: int, fig: Any = None, *,
                inline: bool = False):
    """``E |x_t|^2`` of SVAG at level ``l`` against the SDE (left) and the final gap to the
    SDE at every level with the ``1 / l`` reference (right).

    Args:
      res: the result of :func:`~dltheory.sde.quadratic.svag_quadratic`.
      l: the highlighted SVAG level, one of ``res.ls``.
      fig: a figure from a previous call to draw into again (what the widget does), or
        ``None`` for a new one.
      inline: with ``fig=None``, make the new figure a pyplot figure, which a notebook
        shows below the cell like any other; otherwise it is a detached figure, shown
        only where it is displayed (the widget's views).

    Returns:
      The figure.
    """
    from dltheory import plotting

    C.instance("res", res, SVAGQuadraticResult, "an SVAGQuadraticResult (from svag_quadratic)")
    i = _index("l", l, res.ls)
    inline = C.flag("inline", inline)
    reuse = fig if fig is not None else (None if inline else "detached")
    fig, (a, b) = plotting.figure(2, width=7.5, height=3.9, reuse=reuse)
    a.plot(res.times, res.sde_exact, "k-", lw=2.5, alpha=0.35, label="SDE, exact")
    a.plot(res.times, res.em, "k--", lw=1.2, label="SDE, Euler-Maruyama")
    for j in range(len(res.ls)):
        if j != i:
            a.plot(res.times, res.svag[j], color="0.8", lw=1)
    a.plot(res.times, res.svag[i], "o-", color="#d1495b", ms=4,
           label=f"SVAG, l = {res.ls[i]}" + (" (SGD)" if res.ls[i] == 1 else ""))
    a.set(xlabel=r"SDE time $t = k\eta$", ylabel=r"$\mathbb{E}\,|x_t|^2$",
          title=f"{res.paths} paths per curve")
    a.legend(frameon=False)
    err = np.abs(res.final - res.sde_exact[-1])
    b.loglog(res.ls, err, "o-", label=r"$|\mathbb{E}|x_T|^2 - $ SDE$|$")
    b.loglog(res.ls, err[0] / res.ls, "--", color="0.5", label=r"$\propto 1/l$")
    b.loglog([res.ls[i]], [err[i]], "o", ms=11, mfc="none", color="#d1495b")
    b.axhline(2 * res.svag_se.mean(), color="0.6", lw=0.8, ls=":",
              label="2 standard errors")
    b.set(xlabel="SVAG level $l$", ylabel="gap to the SDE at $T$", title="order-1 convergence")
    b.legend(frameon=False)
    return fig


def svag_explorer(res: SVAGQuadraticResult):
    """Widget: the SVAG level ``l`` on the noisy quadratic (precomputed)."""
    from dltheory.widgets import choice, explore

    C.instance("res", res, SVAGQuadraticResult, "an SVAGQuadraticResult (from svag_quadratic)")
    return explore(lambda l, fig=None: svag_figure(res, l, fig=fig),
                   title="SVAG on the noisy quadratic",
                   l=choice([int(v) for v in res.ls], default=int(res.ls[-1]),
                            label="SVAG level l"))


def rules_figure(res: RuleResult, kappa: int, rule: str, fig: Any = None):
    """Train loss against epochs at batch ``kappa B`` under ``rule``, with the
    ``kappa = 1`` reference, and the configuration used."""
    from dltheory import plotting

    C.instance("res", res, RuleResult, "a RuleResult (from scaling_rules_digits)")
    V.check_choice("rule", rule, RULES)
    ks = [int(k) for k in res.kappas]
    i = 1 + _index("kappa", kappa, ks[1:])
    c = res.curves[rule]
    cfg = res.configs[rule][i]
    fig, ax = plotting.figure(width=7.5, height=4.0, reuse="detached" if fig is None else fig)
    ax.semilogy(c.x, c.train_loss[0], "k-", lw=2.2, label=f"reference: B = {res.configs[rule][0].batch_size}")
    for j in range(1, len(ks)):
        if j != i:
            ax.semilogy(c.x, c.train_loss[j], color="0.8", lw=1)
    gap = c.max_log_gap(reference=0, setting=i)
    ax.semilogy(c.x, c.train_loss[i], "o-", color="#d1495b", ms=4,
                label=f"B = {cfg.batch_size}: lr {cfg.lr:.2g}, b1 {cfg.b1:.3g}, "
                      f"b2 {cfg.b2:.4g}, eps {cfg.eps:.2g}")
    ax.set(xlabel="epoch", ylabel="training loss",
           title=f"{RULE_NAMES[rule]}, batch x{kappa}: max |log-loss gap| = {gap:.2f}")
    ax.legend(frameon=False)
    return fig


def rules_explorer(res: RuleResult):
    """Widget: the batch-size factor and the scaling rule (precomputed runs)."""
    from dltheory.widgets import choice, explore

    C.instance("res", res, RuleResult, "a RuleResult (from scaling_rules_digits)")
    ks = [int(k) for k in res.kappas[1:]]
    return explore(lambda kappa, rule, fig=None: rules_figure(res, kappa, rule, fig=fig),
                   title="Adam across batch sizes",
                   kappa=choice(ks, default=ks[-1], label="batch factor κ"),
                   rule=choice(list(RULES), default="sqrt", label="rule"))
