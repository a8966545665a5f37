"""Fragility of the global-margin result for two-layer Leaky ReLU nets.

On symmetric data the global max normalized margin is the linear value
``((1 + alpha) / 4) gamma*`` and gradient flow from a small initialization reaches it.
:func:`fragile_data` builds non-symmetric data with a principal direction (most points
of label +1 near ``e_1``, a few points of label -1 far out near ``-e_1``) whose linear
support vectors both carry the label +1 and lie at wide angles. Gradient descent from a
small initialization then ends at a *linear* classifier: every neuron on the line of the
linear SVM direction, almost all with ``a_k > 0`` (a KKT point of the margin problem), at
normalized margin about ``gamma* / 2``, while a non-linear two-layer net does markedly
better (:func:`dltheory.margin.max_margin_two_layer` computes how much).

References:
  Lyu, Li, Wang, Arora (2021), Gradient Descent on Two-layer Nets: Margin Maximization
  and Simplicity Bias, NeurIPS, arXiv:2110.13905 (symmetric data: global max margin;
  non-symmetric data: convergence to a linear classifier of suboptimal margin).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from dltheory import validation as V
from dltheory.config import log_interval
from dltheory.margin.core import max_margin_linear, symmetric_separable_data
from dltheory.margin.global_margin import line_margin, max_margin_two_layer, off_line
from dltheory.margin.leaky import is_linear_on, leaky_apply, leaky_init
from dltheory.margin.train import MarginRun, constant_lr, train_margin_grid

__all__ = [
    "FragilityResult",
    "fragile_data",
    "fragility_experiment",
]


# --------------------------------------------------------------------------------------
# Data on which the linear bias is suboptimal
# --------------------------------------------------------------------------------------


def fragile_data(n: int = 20, *, n_negative: int = 3, alpha: float = 0.2, key: int = 0,
                 core: float = 25.0, wings: tuple[float, float] = (70.0, 78.0)
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Non-symmetric 2-D data with a principal direction and support vectors of label +1.

    ``n - n_negative`` points of label +1 on the unit circle: two *wings* at angles
    ``+b_1`` and ``-b_2`` with ``b_i`` uniform in ``wings`` (degrees), the rest uniform
    within ``core`` degrees of ``e_1``. ``n_negative`` points of label -1 at angles within
    ``core`` degrees of ``-e_1`` and radius ``r_0`` to ``1.25 r_0``, with
    ``r_0 = 1.5 cos(wings[0]) / (alpha cos(core))``: far enough that even a neuron's leak
    slope ``alpha`` leaves them off the margin.

    So ``y_n x_n`` all lie within 90 degrees of ``e_1`` (the principal direction), the
    linear max-margin classifier through the origin has the two wings as its only support
    vectors (both of label +1), and its margin ``gamma* <= cos(wings[0])`` is small because
    the wings are spread wide, which a non-linear net exploits (one neuron per wing).
    With the default angles every draw (``key``) satisfies these conditions: ``u*`` bisects
    the two wings, so it is within 4 degrees of ``e_1``, the core points have margin at
    least ``cos 29 deg > cos 70 deg``, and the points of label -1, at radius ``>= r_0``,
    have ``alpha |u* . x| >= 1.4 cos(wings[0])``. Only the positions vary.

    Args:
      n: number of points.
      n_negative: how many carry the label -1 (>= 1, and ``n - n_negative >= 3``).
      alpha: the leak of the Leaky ReLU the data are meant for, in (0, 1).
      key: seed.
      core: half-width in degrees of the clusters around ``+-e_1``, in [0, wings[0]).
      wings: the range ``(low, high)`` of the wings' angles in degrees,
        ``core < low <= high < 90``.

    Returns:
      ``(x, y)``: float64 arrays of shapes ``(n, 2)`` and ``(n,)`` (labels -1/+1).

    References:
      Lyu, Li, Wang, Arora (2021), arXiv:2110.13905 (the fragility of the global-margin
      result: non-symmetric data with a principal direction whose support vectors carry
      one label).
    """
    n = V.check_int("n", n, minimum=4)
    n_negative = V.check_int("n_negative", n_negative, minimum=1, maximum=n - 3)
    alpha = V.check_in_range("alpha", alpha, 0.0, 1.0, low_inclusive=False,
                             high_inclusive=False)
    core = V.check_in_range("core", core, 0.0, 90.0, high_inclusive=False)
    if (not isinstance(wings, (tuple, list)) or len(wings) != 2):
        raise TypeError(f"argument `wings` must be a pair (low, high) of angles in degrees; "
                        f"got {wings!r}")
    low = V.check_finite("wings[0]", wings[0])
    high = V.check_finite("wings[1]", wings[1])
    if not core < low <= high < 90.0:
        raise ValueError(f"argument `wings` must satisfy core < low <= high < 90 (degrees) "
                         f"with core = {core}; got {tuple(wings)}")
    rng = np.random.default_rng(V.check_seed("key", key))
    n_core = n - n_negative - 2
    ang = np.deg2rad(np.concatenate([[rng.uniform(low, high), -rng.uniform(low, high)],
                                     rng.uniform(-core, core, n_core)]))
    r0 = 1.5 * np.cos(np.deg2rad(low)) / (alpha * np.cos(np.deg2rad(core)))
    neg = np.pi + np.deg2rad(rng.uniform(-core, core, n_negative))
    rad = r0 * rng.uniform(1.0, 1.25, n_negative)
    unit = lambda t: np.stack([np.cos(t), np.sin(t)], axis=-1)
    x = np.concatenate([unit(ang), rad[:, None] * unit(neg)])
    y = np.concatenate([np.ones(n - n_negative), -np.ones(n_negative)])
    return x, y


# --------------------------------------------------------------------------------------
# The experiment: gradient descent on fragile and on symmetric data
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FragilityResult:
    """Gradient descent on ``S`` draws of :func:`fragile_data` and on ``S`` symmetric
    data sets of the same size, against each set's global max normalized margin.

    Arrays have a leading axis ``S`` (one entry per seed); ``sym_*`` are the symmetric
    data sets.

    Attributes:
      seeds: the data and initialization seeds.
      alpha: the leak.
      x, y, sym_x, sym_y: the data, ``(S, N, 2)`` and ``(S, N)``.
      runs: the ``2 S`` runs of one vmapped call (fragile first, then symmetric).
      optimum, sym_optimum: :class:`TwoLayerMaxMargin` per data set (the global maximum,
        certified, and a net attaining it).
      global_max, sym_global_max: their values.
      svm_direction, svm_margin: the linear max-margin direction ``u*`` and ``gamma*`` of
        the fragile sets.
      line_max: :func:`line_margin` along ``u*``: the best margin of a net with every
        neuron on the line of ``u*``.
      gd_margin, sym_gd_margin: the normalized margin at the end of gradient descent.
      ratio, sym_ratio: ``gd_margin / global_max``, and the same on symmetric data.
      off_line, sym_off_line: :func:`off_line` of the final net along ``u*``.
      sym_nonlinearity: :func:`dltheory.margin.is_linear_on` of the final nets on
        symmetric data (0: linear on the data).
      negative_mass: share of ``sum_k |a_k| |w_k|`` carried by neurons with ``a_k < 0``
        in the final nets on fragile data.
    """

    seeds: tuple
    alpha: float
    x: np.ndarray
    y: np.ndarray
    sym_x: np.ndarray
    sym_y: np.ndarray
    runs: MarginRun
    optimum: tuple
    sym_optimum: tuple
    global_max: np.ndarray
    sym_global_max: np.ndarray
    svm_direction: np.ndarray
    svm_margin: np.ndarray
    line_max: np.ndarray
    gd_margin: np.ndarray
    sym_gd_margin: np.ndarray
    ratio: np.ndarray
    sym_ratio: np.ndarray
    off_line: np.ndarray
    sym_off_line: np.ndarray
    sym_nonlinearity: np.ndarray
    negative_mass: np.ndarray

    def member(self, i: int, symmetric: bool = False) -> MarginRun:
        """The run on fragile data set ``i`` (or on symmetric set ``i``)."""
        return self.runs.member(i + (len(self.seeds) if symmetric else 0))


def fragility_experiment(sizes: Any = None, *, alpha: float = 0.2, init_scale: float = 1e-4,
                         lr: float = 1.0, n: int = 20) -> FragilityResult:
    """Constant-step gradient descent from a small initialization on ``sizes.frag_seeds``
    draws of :func:`fragile_data` and as many symmetric data sets, one vmapped call.

    Each data set has ``n`` points in 2-D; seed ``s`` draws the data and the net's
    initialization (width ``sizes.width``, scale ``init_scale``); every run takes
    ``sizes.frag_steps`` steps of size ``lr`` on the mean logistic loss (float64). Each
    final normalized margin is compared with the data set's global maximum
    (:func:`max_margin_two_layer`).

    Args:
      sizes: an ``LRSizes`` preset (default: the current scale's).
      alpha: the leak, in (0, 1).
      init_scale: scale of the random initialization (> 0).
      lr: the constant learning rate (> 0).
      n: points per data set (even, >= 6).

    Returns:
      A :class:`FragilityResult`.

    References:
      Lyu, Li, Wang, Arora (2021), arXiv:2110.13905 (symmetric data: the global maximum
      is reached; non-symmetric data with a principal direction: a linear classifier of
      suboptimal margin).
    """
    from dltheory.margin.two_layer import LRSizes

    sizes = LRSizes.current() if sizes is None else V.check_instance(
        "sizes", sizes, LRSizes, "LRSizes preset or None")
    alpha = V.check_in_range("alpha", alpha, 0.0, 1.0, low_inclusive=False,
                             high_inclusive=False)
    init_scale = V.check_positive("init_scale", init_scale)
    lr = V.check_positive("lr", lr)
    n = V.check_int("n", n, minimum=6)
    if n % 2:
        raise ValueError(f"argument `n` must be even (the symmetric sets pair each point "
                         f"with its mirror image); got {n}")
    seeds = tuple(range(V.check_int("sizes.frag_seeds", sizes.frag_seeds, minimum=1)))
    steps = V.check_int("sizes.frag_steps", sizes.frag_steps, minimum=1)
    frag = [fragile_data(n, alpha=alpha, key=s) for s in seeds]
    sym = [symmetric_separable_data(n, 2, gap=0.1, key=s) for s in seeds]
    xs = np.stack([d[0] for d in frag + sym])
    ys = np.stack([d[1] for d in frag + sym])
    inits = [leaky_init(jax.random.key(s), 2, sizes.width, init_scale) for s in seeds] * 2
    stacked = jax.tree.map(lambda *a: np.stack([np.asarray(v) for v in a]), *inits)
    runs = train_margin_grid(leaky_apply, stacked,
                             {"x": xs, "alpha": np.full(len(inits), alpha)}, ys, order=2,
                             schedules=[constant_lr(lr)] * len(inits), steps=steps,
                             log_every=log_interval(steps, 200), data_axis=0)
    k = len(seeds)
    final = [jax.tree.map(lambda a, i=i: np.asarray(a)[i], runs.final_params)
             for i in range(2 * k)]
    gd = np.asarray(runs.normalized)[:, -1]
    opt = tuple(max_margin_two_layer(xs[i], ys[i], alpha) for i in range(2 * k))
    gmax = np.array([o.value for o in opt])
    svms = [max_margin_linear(xs[i], ys[i]) for i in range(2 * k)]
    u = np.stack([s.direction for s in svms])

    mass = [np.abs(p["a"]) * np.linalg.norm(p["w"], axis=1) for p in final[:k]]
    return FragilityResult(
        seeds=seeds, alpha=alpha, x=xs[:k], y=ys[:k], sym_x=xs[k:], sym_y=ys[k:],
        runs=runs, optimum=opt[:k], sym_optimum=opt[k:], global_max=gmax[:k],
        sym_global_max=gmax[k:], svm_direction=u[:k],
        svm_margin=np.array([s.margin for s in svms[:k]]),
        line_max=np.array([line_margin(xs[i], ys[i], alpha, u[i]) for i in range(k)]),
        gd_margin=gd[:k], sym_gd_margin=gd[k:], ratio=gd[:k] / gmax[:k],
        sym_ratio=gd[k:] / gmax[k:],
        off_line=np.array([off_line(final[i], u[i]) for i in range(k)]),
        sym_off_line=np.array([off_line(final[i], u[i]) for i in range(k, 2 * k)]),
        sym_nonlinearity=np.array([is_linear_on(final[i], xs[i], alpha)
                                   for i in range(k, 2 * k)]),
        negative_mass=np.array([m[p["a"] < 0].sum() / m.sum()
                                for m, p in zip(mass, final[:k])]))
