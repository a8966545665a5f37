"""The chapters' experiments: each returns a small result object the notebook plots.

Sizes come from :class:`GreedySizes` and :class:`SensingSizes` (``quick`` by default,
``paper`` when ``DLTHEORY_SCALE=paper``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dltheory import validation as V
from dltheory.config import Preset, log_interval
from dltheory.lowrank.convex import (
    NuclearNormResult,
    min_nuclear_norm_completion,
    nuclear_norm,
)
from dltheory.lowrank.flow import FlowResult, _check_run, gradient_flow
from dltheory.lowrank.glrl import GLRLResult, distance_to_glrl, glrl
from dltheory.lowrank.problems import (
    LowRankProblem,
    counterexample_problem,
    matrix_completion_problem,
)

__all__ = [
    "CounterexampleResult",
    "DepthResult",
    "GreedyResult",
    "GreedySizes",
    "SensingSizes",
    "counterexample_experiment",
    "depth_comparison",
    "greedy_experiment",
]


@dataclasses.dataclass(frozen=True)
class GreedySizes(Preset):
    """Sizes of the GLRL chapter.

    Attributes:
      d: dimension of the completion problem.
      eigenvalues: the target's spectrum (well separated).
      steps, lr, log_every: the depth-2 runs (time ``steps * lr``).
      seeds: seeds per init scale.
      depth_steps: steps of the depth comparison runs.
      depths: depths compared.
      widget_steps: steps of each precomputed widget run.
    """

    d: int
    eigenvalues: tuple[float, ...]
    steps: int
    lr: float
    log_every: int
    seeds: int
    depth_steps: int
    depths: tuple[int, ...]
    widget_steps: int

    @classmethod
    def quick(cls) -> GreedySizes:
        return cls(d=20, eigenvalues=(8.0, 2.0, 0.5), steps=8000, lr=0.05, log_every=20,
                   seeds=2, depth_steps=5000, depths=(2, 3), widget_steps=3000)

    @classmethod
    def paper(cls) -> GreedySizes:
        return cls(d=100, eigenvalues=(8.0, 4.0, 2.0, 1.0, 0.5), steps=40000, lr=0.02,
                   log_every=40, seeds=8, depth_steps=40000, depths=(2, 3, 4),
                   widget_steps=20000)


@dataclasses.dataclass(frozen=True)
class SensingSizes(Preset):
    """Sizes of the matrix-sensing chapter.

    Attributes:
      d: dimension; measurements: ``m``.
      eigenvalues: the target's spectrum.
      lr: the step size ``eta``; steps, log_every: each run.
      num_alpha, seeds: the plateau sweep is ``num_alpha x seeds`` runs in one call.
      under_steps: steps of the under-parameterized runs.
      widget_steps: steps of each precomputed widget run.
    """

    d: int
    measurements: int
    eigenvalues: tuple[float, ...]
    lr: float
    steps: int
    log_every: int
    num_alpha: int
    seeds: int
    under_steps: int
    widget_steps: int

    @classmethod
    def quick(cls) -> SensingSizes:
        return cls(d=10, measurements=5000, eigenvalues=(4.0, 2.0, 1.0), lr=0.02, steps=2000,
                   log_every=5, num_alpha=8, seeds=4, under_steps=3000, widget_steps=2000)

    @classmethod
    def paper(cls) -> SensingSizes:
        return cls(d=40, measurements=16000, eigenvalues=(4.0, 3.0, 2.0, 1.5, 1.0),
                   lr=0.01, steps=8000, log_every=5, num_alpha=16, seeds=16,
                   under_steps=12000, widget_steps=8000)


# --------------------------------------------------------------------------------------
# GLRL chapter
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GreedyResult:
    """Depth-2 gradient flow from several init scales against the GLRL iterates.

    Attributes:
      problem: the completion problem.
      glrl: the GLRL run.
      flow: the runs (``init_scales x seeds``, one call), tracking the GLRL iterates.
      init_scales: the distinct init scales, shape ``(A,)``.
      distances: ``min_t |W(t) - W_r| / |W_r|``, shape ``(A, seeds, R)``.
    """

    problem: LowRankProblem
    glrl: GLRLResult
    flow: FlowResult
    init_scales: np.ndarray
    distances: np.ndarray

    @property
    def worst(self) -> np.ndarray:
        """The largest distance over seeds, shape ``(A, R)``."""
        return self.distances.max(axis=1)

    @property
    def monotone(self) -> bool:
        """Whether ``worst`` grows with the init scale for every ``r``."""
        order = np.argsort(self.init_scales)
        return bool(np.all(np.diff(self.worst[order], axis=0) > 0))

    @property
    def alpha_exponent(self) -> np.ndarray:
        """Per GLRL iterate ``r``, the exponent ``p_r`` of a least-squares fit
        ``worst ~ C alpha^{p_r}`` over the init scales (log-log slope), shape ``(R,)``:
        how fast the trajectory's distance to ``W_r`` shrinks with ``alpha``. NaN with
        fewer than two init scales."""
        if len(self.init_scales) < 2:
            return np.full(self.worst.shape[1], np.nan)
        x = np.log(self.init_scales)
        return np.array([np.polyfit(x, np.log(self.worst[:, r]), 1)[0]
                         for r in range(self.worst.shape[1])])

    @property
    def farthest_iterate(self) -> int:
        """The ``r`` (1-based) of the GLRL iterate that the trajectory from the smallest
        init scale approaches least closely (largest worst-seed distance)."""
        return int(np.argmax(self.worst[int(np.argmin(self.init_scales))])) + 1


def greedy_experiment(problem: LowRankProblem, init_scales: Any, *, seeds: int = 2,
                      lr: float = 0.05, steps: int = 8000, log_every: int = 20,
                      depth: int = 2) -> GreedyResult:
    """GLRL on ``problem``, then gradient flow from each init scale (one vmapped call).

    References:
      Li, Luo, Lyu (2021), arXiv:2012.09839 (depth-2 equivalence with GLRL).
    """
    seeds = V.check_int("seeds", seeds, minimum=1)
    V.check_positive("lr", lr)
    c = _check_run(problem, init_scales=init_scales, seeds=0, lrs=lr, depth=depth,
                   symmetric=None, width=None, steps=steps, log_every=log_every,
                   references=None, keep_trajectory=False)
    alphas = np.sort(c["init_scales"])
    g = glrl(problem)
    flow = gradient_flow(problem, init_scales=alphas, seeds=np.arange(seeds), lrs=lr,
                         steps=steps, log_every=log_every, references=g.iterates,
                         depth=depth)
    dist = distance_to_glrl(flow, g).reshape(len(alphas), seeds, len(g))
    return GreedyResult(problem, g, flow, alphas, dist)


@dataclasses.dataclass(frozen=True)
class CounterexampleResult:
    """Gradient flow on the counterexample beside the minimum-nuclear-norm completions.

    Attributes:
      problem: the 3 x 3 instance.
      glrl: its GLRL run (one phase fits every observation).
      flow: depth-2 gradient flow from each init scale.
      nuclear: ``|W_T|_*`` of each run's end point.
      fit: ``max |W_ij - M_ij|`` over the observed entries at the end of each run.
      psd: the minimum-trace PSD completion (the conjecture's form), certified.
      general: the minimum-nuclear-norm completion over all matrices, certified.
    """

    problem: LowRankProblem
    glrl: GLRLResult
    flow: FlowResult
    nuclear: np.ndarray
    fit: np.ndarray
    psd: NuclearNormResult
    general: NuclearNormResult

    @property
    def margin(self) -> float:
        """``|W_T|_*`` at the smallest init scale minus the minimum PSD trace."""
        return float(self.nuclear[np.argmin(self.flow.init_scales)] - self.psd.value)


def counterexample_experiment(epsilon: float = 0.25, init_scales: Any = (1e-6, 1e-3, 0.1),
                              *, lr: float = 0.02, steps: int = 20000) -> CounterexampleResult:
    """Run depth-2 gradient flow and the convex solver on :func:`counterexample_problem`.

    References:
      Li, Luo, Lyu (2021), arXiv:2012.09839 (counter-examples); Gunasekar et al. (2017).
    """
    p = counterexample_problem(epsilon)
    V.check_positive("lr", lr)
    _check_run(p, init_scales=init_scales, seeds=0, lrs=lr, depth=2, symmetric=None,
               width=None, steps=steps, log_every=100, references=None, keep_trajectory=False)
    flow = gradient_flow(p, init_scales=init_scales, seeds=0, lrs=lr, steps=steps,
                         log_every=100)
    nuc = np.array([nuclear_norm(w) for w in flow.final])
    fit = np.array([np.abs(p.mask * (w - p.target)).max() for w in flow.final])
    return CounterexampleResult(p, glrl(p), flow, nuc, fit,
                                min_nuclear_norm_completion(p.target, p.mask, psd=True),
                                min_nuclear_norm_completion(p.target, p.mask, psd=False))


@dataclasses.dataclass(frozen=True)
class DepthResult:
    """Distance to the GLRL iterates for several depths at the same per-factor init scale.

    Attributes:
      depths: the depths, ``(D,)``; init_scales: ``(A,)``.
      distances: ``min_t |W(t) - W_r| / |W_r|``, shape ``(D, A, R)``.
      final_loss: ``f(W_T)``, shape ``(D, A)``.
      flows: one :class:`FlowResult` per depth.
    """

    depths: np.ndarray
    init_scales: np.ndarray
    distances: np.ndarray
    final_loss: np.ndarray
    flows: tuple[FlowResult, ...]


def depth_comparison(problem: LowRankProblem, depths: Any = (2, 3),
                     init_scales: Any = (3e-2, 1e-2), *, lr: float = 0.05,
                     steps: int = 6000, glrl_result: GLRLResult | None = None) -> DepthResult:
    """Gradient flow on ``W = U_1 ... U_L`` (asymmetric factors, each started at scale
    ``alpha``) for each depth, one vmapped call per depth, against the GLRL iterates.

    References:
      Li, Luo, Lyu (2021), arXiv:2012.09839 (deep factorizations: depth makes the
      greedy behaviour appear at practical init scales).
    """
    if isinstance(depths, (str, bytes)) or not hasattr(depths, "__iter__"):
        raise TypeError(f"argument `depths` must be a sequence of depths >= 2; got {depths!r}")
    depths = tuple(V.check_int("depths[i]", x, minimum=2, maximum=16) for x in depths)
    if not depths:
        raise ValueError("argument `depths` must name at least one depth; got ()")
    steps = V.check_int("steps", steps, minimum=1)
    log_every = log_interval(steps, 100)
    V.check_positive("lr", lr)
    c = _check_run(problem, init_scales=init_scales, seeds=0, lrs=lr, depth=2, symmetric=None,
                   width=None, steps=steps, log_every=log_every, references=None,
                   keep_trajectory=False)
    alphas = c["init_scales"]
    if glrl_result is not None:
        V.check_instance("glrl_result", glrl_result, GLRLResult, "GLRLResult (from glrl) or None")
    g = glrl(problem) if glrl_result is None else glrl_result
    flows = tuple(gradient_flow(problem, init_scales=alphas, seeds=0, lrs=lr, steps=steps,
                                log_every=log_every, references=g.iterates, depth=L,
                                symmetric=False)
                  for L in depths)
    dist = np.stack([distance_to_glrl(f, g) for f in flows])
    loss = np.stack([f.loss[:, -1] for f in flows])
    return DepthResult(np.asarray(depths), alphas, dist, loss, flows)


def default_completion(sizes: GreedySizes | None = None, *, seed: int = 0) -> LowRankProblem:
    """The chapter's completion problem: ``d`` from the preset, half the entries observed."""
    sizes = GreedySizes.current() if sizes is None else V.check_instance(
        "sizes", sizes, GreedySizes, "GreedySizes preset or None")
    return matrix_completion_problem(sizes.d, sizes.eigenvalues, fraction=0.5, seed=seed)
