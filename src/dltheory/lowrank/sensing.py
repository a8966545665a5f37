"""Incremental learning in matrix sensing: plateau times and the under-parameterized end.

Near ``U = 0`` the flow of ``f(U U^T) = |U U^T - M|_F^2 / 2`` (the isotropic limit of
sensing) is ``dU/dt ~ 2 M U``, so the component of ``U`` along the ``s``-th eigenvector
of ``M`` grows like ``alpha exp(2 lambda_s t)`` until it is learned. Direction ``s``
therefore appears after about ``ln(1/alpha) / (2 lambda_s)`` time, i.e.
``ln(1/alpha) / (2 eta lambda_s)`` gradient steps: plateau times are linear in
``ln(1/alpha)`` with that slope (Jin, Li, Lyu, Du, Lee 2023, main theorems and
experiments).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dltheory import validation as V
from dltheory.config import log_interval
from dltheory.lowrank.flow import FlowResult, _check_problem, _check_run, gradient_flow
from dltheory.lowrank.glrl import glrl
from dltheory.lowrank.problems import LowRankProblem

__all__ = [
    "PlateauResult",
    "UnderParamResult",
    "incremental_learning",
    "plateau_times",
    "under_parameterized",
]


def plateau_times(flow: FlowResult, eigenvalues: Any, *, threshold: float = 0.5) -> np.ndarray:
    """The step at which the ``s``-th singular value of ``W`` first reaches
    ``threshold * lambda_s``, for each run and each ``s``.

    Between two logged steps the crossing is interpolated linearly in ``log sigma_s``
    (the growth there is exponential).

    Args:
      flow: a :class:`~dltheory.lowrank.FlowResult` (its ``spectrum`` is read).
      eigenvalues: the target's eigenvalues ``lambda_1 >= lambda_2 >= ...``.
      threshold: fraction of ``lambda_s`` that counts as learned, in ``(0, 1)``.

    Returns:
      Array ``(n_runs, S)`` of (fractional) steps; NaN where the run never got there.

    References:
      Jin, Li, Lyu, Du, Lee (2023), arXiv:2301.11500 (the plateaus of its experiments
      and their ``log(1/alpha)`` dependence).
    """
    V.check_instance("flow", flow, FlowResult, "FlowResult (from gradient_flow)")
    lam = V.check_array("eigenvalues", eigenvalues, ndim=1, positive=True)
    threshold = V.check_in_range("threshold", threshold, 0.0, 1.0, low_inclusive=False,
                                 high_inclusive=False)
    sv = flow.spectrum
    if lam.size > sv.shape[-1]:
        raise ValueError(f"argument `eigenvalues` must hold at most {sv.shape[-1]} values (W "
                         f"has {sv.shape[-1]} singular values); got {lam.size}")
    out = np.full((sv.shape[0], lam.size), np.nan)
    steps = flow.steps.astype(np.float64)
    for s, level in enumerate(threshold * lam):
        above = sv[:, :, s] >= level
        for i in range(sv.shape[0]):
            if not above[i].any():
                continue
            j = int(np.argmax(above[i]))
            if j == 0:
                out[i, s] = 0.0
                continue
            lo = np.log(max(sv[i, j - 1, s], 1e-300))
            hi = np.log(sv[i, j, s])
            frac = (np.log(level) - lo) / (hi - lo) if hi > lo else 1.0
            out[i, s] = steps[j - 1] + frac * (steps[j] - steps[j - 1])
    return out


@dataclasses.dataclass(frozen=True)
class PlateauResult:
    """Plateau times of a sweep over init scales (and seeds), with their linear fits.

    Attributes:
      flow: the sweep (one vmapped call).
      eigenvalues: ``lambda_s`` of the target.
      times: plateau times in steps, shape ``(n_runs, S)``.
      log_inv_alpha: ``ln(1/alpha)`` per run.
      slope, intercept, r2: least-squares fit of ``times[:, s]`` against
        ``ln(1/alpha)``, per ``s``.
      predicted_slope: ``1 / (2 eta lambda_s)`` steps per unit of ``ln(1/alpha)``.
      to_best: ``min_t |W(t) - M_s|_F / |M_s|_F`` for the best rank-``s`` approximations
        ``M_s`` of the target (the plateaus), shape ``(n_runs, S)``.
      discrete_slope: ``1 / ln(1 + 2 eta lambda_s)``, the slope of the discrete-time
        linearization (gradient descent multiplies the growing component by
        ``1 + 2 eta lambda_s`` per step); ``None`` when not computed.
    """

    flow: FlowResult
    eigenvalues: np.ndarray
    times: np.ndarray
    log_inv_alpha: np.ndarray
    slope: np.ndarray
    intercept: np.ndarray
    r2: np.ndarray
    predicted_slope: np.ndarray
    to_best: np.ndarray
    discrete_slope: np.ndarray | None = None

    @property
    def slope_ratio(self) -> np.ndarray:
        """measured slope / predicted slope, per ``s``."""
        return self.slope / self.predicted_slope

    @property
    def max_slope_ratio_deviation(self) -> float:
        """``max_s |slope_s / predicted_s - 1|``: how far the worst direction's fitted
        plateau slope is from the theory's ``1 / (2 eta lambda_s)``, as a fraction (NaN
        when a direction has no fit)."""
        return float(np.abs(self.slope_ratio - 1).max())

    @property
    def discrete_ratio(self) -> np.ndarray:
        """measured slope / discrete-time slope ``1 / ln(1 + 2 eta lambda_s)``, per ``s``."""
        if self.discrete_slope is None:
            raise ValueError("this PlateauResult has no discrete_slope")
        return self.slope / self.discrete_slope

    @property
    def max_discrete_ratio_deviation(self) -> float:
        """``max_s |slope_s / discrete_s - 1|``, the worst direction's distance from the
        discrete-time prediction, as a fraction."""
        return float(np.abs(self.discrete_ratio - 1).max())

    @property
    def closer_prediction(self) -> str:
        """``"discrete"`` when the fitted slopes are closer (in the worst direction) to
        ``1 / ln(1 + 2 eta lambda_s)`` than to ``1 / (2 eta lambda_s)``, else
        ``"continuous"``."""
        d, c = self.max_discrete_ratio_deviation, self.max_slope_ratio_deviation
        return "discrete" if d < c else "continuous"


def incremental_learning(problem: LowRankProblem, init_scales: Any, *, seeds: Any = 0,
                         lr: float = 0.02, steps: int = 2000, log_every: int = 5,
                         width: int | None = None, threshold: float = 0.5) -> PlateauResult:
    """Gradient descent from many init scales (and seeds) in one call; fit the plateaus.

    Returns:
      A :class:`PlateauResult`. Runs where a direction never reached its threshold are
      left out of that direction's fit (and give NaN times).

    References:
      Jin, Li, Lyu, Du, Lee (2023), arXiv:2301.11500 (the incremental-learning theorems).
    """
    lr = V.check_positive("lr", lr)
    threshold = V.check_in_range("threshold", threshold, 0.0, 1.0, low_inclusive=False,
                                 high_inclusive=False)
    _check_run(problem, init_scales=init_scales, seeds=seeds, lrs=lr, depth=2, symmetric=None,
               width=width, steps=steps, log_every=log_every, references=None,
               keep_trajectory=False)
    w = problem.d if width is None else width
    k = min(problem.rank, w)
    best = np.stack([problem.best_rank(s + 1) for s in range(k)])
    flow = gradient_flow(problem, init_scales=init_scales, seeds=seeds, lrs=lr, steps=steps,
                         log_every=log_every, width=width, references=best)
    lam = problem.eigenvalues[:k]
    times = plateau_times(flow, lam, threshold=threshold)
    x = np.log(1.0 / flow.init_scales)
    slope, icpt, r2 = (np.full(k, np.nan) for _ in range(3))
    for s in range(k):
        ok = np.isfinite(times[:, s])
        if ok.sum() >= 3 and np.ptp(x[ok]) > 0:
            b, a = np.polyfit(x[ok], times[ok, s], 1)
            pred = a + b * x[ok]
            ss = np.sum((times[ok, s] - times[ok, s].mean()) ** 2)
            slope[s], icpt[s] = b, a
            r2[s] = 1 - np.sum((times[ok, s] - pred) ** 2) / ss if ss > 0 else np.nan
    return PlateauResult(flow, lam, times, x, slope, icpt, r2, 1.0 / (2 * lr * lam),
                         flow.ref_min, 1.0 / np.log1p(2 * lr * lam))


@dataclasses.dataclass(frozen=True)
class UnderParamResult:
    """Width-``r`` gradient descent on a target of larger rank.

    Attributes:
      flow: the runs (one vmapped call over seeds).
      width: ``r``.
      best: the best rank-``r`` approximation ``M_r`` of the target.
      to_best: ``|W_T - M_r|_F / |M_r|_F`` at the end of each run.
      glrl_end: the GLRL iterate ``W_r`` (GLRL stopped at rank ``r``): the minimizer
        of ``f`` over rank ``r`` that the flow should reach.
      to_glrl: ``|W_T - W_r|_F / |W_r|_F`` at the end of each run.
      glrl_to_best: ``|W_r - M_r|_F / |M_r|_F``: how far the measurement operator moves
        the rank-``r`` minimizer from ``M_r`` (zero for exactly isotropic measurements).
    """

    flow: FlowResult
    width: int
    best: np.ndarray
    to_best: np.ndarray
    glrl_end: np.ndarray
    to_glrl: np.ndarray
    glrl_to_best: float


def under_parameterized(problem: LowRankProblem, width: int, *, init_scale: float = 1e-6,
                        seeds: Any = (0, 1, 2, 3), lr: float = 0.02,
                        steps: int = 3000) -> UnderParamResult:
    """Run width-``r`` gradient descent (``r`` below the target's rank) from small init.

    The paper's prediction: gradient descent ends at the best rank-``r`` solution, which
    for near-isotropic measurements is close to the best rank-``r`` approximation
    ``M_r`` of the target.

    References:
      Jin, Li, Lyu, Du, Lee (2023), arXiv:2301.11500 (the under-parameterized case).
    """
    width = V.check_int("width", width, minimum=1, maximum=_check_problem(problem).d)
    V.check_positive("lr", lr)
    log_every = log_interval(V.check_int("steps", steps, minimum=1), 200)
    V.check_positive("init_scale", init_scale)
    _check_run(problem, init_scales=init_scale, seeds=seeds, lrs=lr, depth=2, symmetric=None,
               width=width, steps=steps, log_every=log_every, references=None,
               keep_trajectory=False)
    flow = gradient_flow(problem, init_scales=init_scale, seeds=seeds, lrs=lr, steps=steps,
                         log_every=log_every, width=width)
    best = problem.best_rank(width)
    g = glrl(problem, max_rank=width)
    w_r = g.iterates[-1]
    nb, ng = np.linalg.norm(best), np.linalg.norm(w_r)
    to_best = np.array([np.linalg.norm(w - best) / nb for w in flow.final])
    to_glrl = np.array([np.linalg.norm(w - w_r) / ng for w in flow.final])
    return UnderParamResult(flow, width, best, to_best, w_r, to_glrl,
                            float(np.linalg.norm(w_r - best) / nb))
