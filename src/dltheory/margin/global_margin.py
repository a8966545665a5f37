"""The global max normalized margin of two-layer Leaky ReLU nets, and nets on one line.

For ``f(x) = sum_k a_k phi(w_k . x)`` with ``phi(z) = max(z, alpha z)``, write each neuron
as a mass ``c_k = |a_k| |w_k|``, a sign ``s_k = sign(a_k)`` and a unit direction
``u_k = w_k / |w_k|``. Then ``f(x) = sum_k c_k s_k phi(u_k . x)`` and ``|theta|^2 =
sum_k a_k^2 + |w_k|^2 >= 2 sum_k c_k``, with equality for balanced neurons
(``|a_k| = |w_k|``). So the best normalized margin over nets of any width is::

    gamma_2 = (1/2) max_p min_n y_n sum_j p_j s_j phi(u_j . x_n),

the maximum over probability weights ``p`` on (direction, sign) pairs. That is a convex
problem (a linear program once the directions are fixed): the margin of the best
non-negative combination of neuron features.

In 2-D the directions are angles. :func:`max_margin_two_layer` solves the linear program
on a fine grid of angles, then certifies it: any weights ``lambda`` on the data (a
probability vector; the LP's dual) give the upper bound
``max_{u, s} sum_n lambda_n y_n s phi(u . x_n)`` (weak duality), and on the circle that
maximum is exact, because between two consecutive angles where some ``u . x_n`` changes
sign the feature is linear in ``u``. The maximizing direction joins the grid and the LP is
solved again until the two bounds agree.

References:
  Lyu, Li, Wang, Arora (2021), Gradient Descent on Two-layer Nets: Margin Maximization
  and Simplicity Bias, NeurIPS, arXiv:2110.13905.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dltheory import validation as V
from dltheory.margin.core import check_binary_labels

__all__ = [
    "TwoLayerMaxMargin",
    "line_margin",
    "max_margin_two_layer",
    "off_line",
]


# --------------------------------------------------------------------------------------
# The global max normalized margin of two-layer Leaky ReLU nets in 2-D
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TwoLayerMaxMargin:
    """The global max normalized margin of two-layer Leaky ReLU nets on 2-D data.

    Attributes:
      value: the normalized margin ``min_n y_n f(x_n) / |theta|^2`` of the net
        ``params()`` (a lower bound on the maximum, attained).
      upper: a certified upper bound on the maximum over nets of every width (from the
        dual weights ``dual``); ``upper - value`` is the remaining gap.
      directions: unit neuron directions ``u_j`` of the optimal net, shape ``(J, 2)``.
      signs: the signs ``s_j`` of their output weights, ``(J,)``.
      weights: the masses ``p_j > 0``, summing to 1, ``(J,)``.
      dual: weights ``lambda_n >= 0`` on the data, summing to 1, ``(N,)``: the examples
        that hold the margin down.
      alpha: the leak of the Leaky ReLU.
      rounds: LP solves used (the first on the grid, then one per added direction set).
    """

    value: float
    upper: float
    directions: np.ndarray
    signs: np.ndarray
    weights: np.ndarray
    dual: np.ndarray
    alpha: float
    rounds: int

    def params(self) -> dict[str, np.ndarray]:
        """A net attaining :attr:`value`: ``w_j = sqrt(p_j) u_j``, ``a_j = s_j
        sqrt(p_j)`` (balanced neurons, ``|theta|^2 = 2``)."""
        r = np.sqrt(self.weights)
        return {"w": r[:, None] * self.directions, "a": self.signs * r}


def _phi(z: np.ndarray, alpha: float) -> np.ndarray:
    return np.maximum(z, alpha * z)


def _unit(angles: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def _best_direction(x: np.ndarray, y: np.ndarray, lam: np.ndarray, alpha: float
                    ) -> tuple[float, float, float]:
    """``max_{u, s} s sum_n lam_n y_n phi(u . x_n)`` over unit ``u`` and ``s = +-1``,
    exactly: returns (value, angle of u, s)."""
    theta = np.arctan2(x[:, 1], x[:, 0])
    cuts = np.unique(np.mod(np.concatenate([theta + np.pi / 2, theta - np.pi / 2]),
                            2 * np.pi))
    lo = cuts
    hi = np.append(cuts[1:], cuts[0] + 2 * np.pi)
    mid = (lo + hi) / 2
    slope = np.where(_unit(mid) @ x.T > 0, 1.0, alpha)          # (arcs, N)
    g = (slope * (lam * y)) @ x                                  # h(u) = g . u on the arc
    best = (-np.inf, 0.0, 1.0)
    for s in (1.0, -1.0):
        gs = s * g
        ang = np.arctan2(gs[:, 1], gs[:, 0])
        inside = np.mod(ang - lo, 2 * np.pi) <= hi - lo
        ends = np.maximum(np.sum(gs * _unit(lo), 1), np.sum(gs * _unit(hi), 1))
        vals = np.where(inside, np.linalg.norm(gs, axis=1), ends)
        k = int(np.argmax(vals))
        if vals[k] > best[0]:
            at = ang[k] if inside[k] else (lo[k] if gs[k] @ _unit(lo[k]) >= gs[k] @ _unit(hi[k])
                                           else hi[k])
            best = (float(vals[k]), float(at), s)
    return best


def max_margin_two_layer(x: Any, y: Any, alpha: float, *, grid: int = 720,
                         tol: float = 1e-7, max_rounds: int = 50) -> TwoLayerMaxMargin:
    """The global max normalized margin of two-layer Leaky ReLU nets on 2-D data.

    Maximizes ``min_n y_n f(x_n) / |theta|^2`` over ``f(x) = sum_k a_k phi(w_k . x)`` of
    every width (bias-free, ``phi(z) = max(z, alpha z)``). Equivalently (balanced
    neurons) ``(1/2) max_p min_n y_n sum_j p_j s_j phi(u_j . x_n)`` over probability
    weights on neuron directions and signs: a linear program once the directions are a
    finite set. It is solved (scipy's HiGHS) on ``grid`` equally spaced angles plus the
    angles perpendicular to the data; the LP's dual weights on the examples then give an
    upper bound, maximized exactly over the whole circle, and the maximizing direction is
    added until upper and lower bounds agree to ``tol`` (relative).

    Args:
      x: inputs, shape ``(N, 2)``, no zero rows.
      y: labels in {-1, +1}, shape ``(N,)``.
      alpha: the leak, ``0 < alpha < 1``.
      grid: number of equally spaced neuron angles to start from (>= 8).
      tol: relative gap between the certified upper bound and the attained value at
        which to stop.
      max_rounds: most LP solves.

    Returns:
      A :class:`TwoLayerMaxMargin` (``value``, certified ``upper``, the optimal net).

    Raises:
      ValueError: on bad arguments, or if no two-layer net classifies every example
        correctly (the maximum is not positive).

    References:
      Lyu, Li, Wang, Arora (2021), arXiv:2110.13905 (the normalized margin of two-layer
      Leaky ReLU nets, and its global maximum); the reduction to a convex problem over
      neuron directions is the standard one for two-layer homogeneous nets of unbounded
      width.
    """
    from scipy.optimize import linprog

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"argument `x` must be a finite array of shape (N, 2) (the exact "
                         f"maximum is computed in 2-D); got shape {x.shape}")
    if np.any(np.linalg.norm(x, axis=1) == 0):
        raise ValueError("argument `x` must have no zero rows (a bias-free net outputs 0 "
                         "there, so no margin is positive)")
    y = check_binary_labels(y)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"argument `y` must have one label per row of `x` "
                         f"({x.shape[0]}); got {y.shape[0]}")
    alpha = V.check_in_range("alpha", alpha, 0.0, 1.0, low_inclusive=False,
                             high_inclusive=False)
    grid = V.check_int("grid", grid, minimum=8)
    tol = V.check_positive("tol", tol)
    max_rounds = V.check_int("max_rounds", max_rounds, minimum=1)

    theta = np.arctan2(x[:, 1], x[:, 0])
    angles = np.concatenate([np.linspace(0, 2 * np.pi, grid, endpoint=False),
                             theta + np.pi / 2, theta - np.pi / 2])
    angles = np.unique(np.round(np.mod(angles, 2 * np.pi), 15))
    signs = np.concatenate([np.ones(angles.size), -np.ones(angles.size)])
    angles = np.concatenate([angles, angles])
    n = x.shape[0]
    for rounds in range(1, max_rounds + 1):
        feats = y[:, None] * signs * _phi(x @ _unit(angles).T, alpha)   # (N, J)
        j = feats.shape[1]
        c = np.zeros(j + 1)
        c[-1] = -1.0
        res = linprog(c, A_ub=np.hstack([-feats, np.ones((n, 1))]), b_ub=np.zeros(n),
                      A_eq=np.append(np.ones(j), 0.0)[None], b_eq=[1.0],
                      bounds=[(0, None)] * j + [(None, None)], method="highs",
                      options={"primal_feasibility_tolerance": 1e-10,
                               "dual_feasibility_tolerance": 1e-10})
        if res.status != 0:  # pragma: no cover - the LP is always feasible and bounded
            raise RuntimeError(f"the linear program failed: {res.message}")
        p = np.where(res.x[:j] > 1e-12, res.x[:j], 0.0)
        p /= p.sum()
        t = float(np.min(feats @ p))
        lam = np.maximum(-np.asarray(res.ineqlin.marginals), 0.0)
        lam = lam / lam.sum() if lam.sum() > 0 else np.full(n, 1.0 / n)
        up, at, s = _best_direction(x, y, lam, alpha)
        used = (angles, signs)
        if up - t <= tol * max(abs(t), 1e-300):
            break
        angles = np.append(angles, at)
        signs = np.append(signs, s)
    angles, signs = used
    if not t > 0:
        raise ValueError("no two-layer Leaky ReLU net through the origin classifies every "
                         "example of (x, y) correctly (the max margin is not positive)")
    keep = p > 0
    return TwoLayerMaxMargin(t / 2.0, max(up, t) / 2.0, _unit(angles[keep]), signs[keep],
                             p[keep], lam, alpha, rounds)


# --------------------------------------------------------------------------------------
# Nets whose neurons lie on one line
# --------------------------------------------------------------------------------------


def off_line(params: dict, direction: Any) -> float:
    """How far a net's neurons are from the line spanned by ``direction``.

    The mass-weighted mean ``sum_k c_k |sin angle(w_k, u)| / sum_k c_k`` with
    ``c_k = |a_k| |w_k|`` (each neuron's share of the output) and ``u`` the unit vector
    along ``direction``: 0 exactly when every neuron points along ``+u`` or ``-u``, so
    that ``f(x) = A phi(u . x) - B phi(-u . x)`` and the decision boundary is the line
    ``u . x = 0`` (a linear classifier).

    Args:
      params: ``{"w": (width, d), "a": (width,)}``.
      direction: the vector ``u``, shape ``(d,)``, non-zero.
    """
    w, a = _check_net(params)
    u = V.check_array("direction", direction)
    if w.ndim != 2 or a.shape != (w.shape[0],):
        raise ValueError(f"argument `params` must hold w of shape (width, d) and a of shape "
                         f"(width,); got {w.shape} and {a.shape}")
    if u.shape != (w.shape[1],) or not np.linalg.norm(u) > 0:
        raise ValueError(f"argument `direction` must be a non-zero vector of shape "
                         f"({w.shape[1]},); got {u.shape}")
    u = u / np.linalg.norm(u)
    norms = np.linalg.norm(w, axis=1)
    mass = np.abs(a) * norms
    if not mass.sum() > 0:
        raise ValueError("argument `params` must describe a non-zero net")
    cos = np.abs(w @ u) / np.maximum(norms, 1e-300)
    sin = np.sqrt(np.clip(1.0 - cos**2, 0.0, None))
    return float(mass @ sin / mass.sum())


def _check_net(params: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(w, a)`` of a two-layer net ``{"w": (width, d), "a": (width,)}``."""
    if not isinstance(params, dict) or "w" not in params or "a" not in params:
        raise TypeError(f"argument `params` must be a dict {{'w': (width, d), 'a': (width,)}} "
                        f"of a two-layer net; got {V._describe(params)}")
    w = V.check_array("params['w']", params["w"], ndim=2)
    a = V.check_array("params['a']", params["a"], ndim=1)
    if a.shape != (w.shape[0],):
        raise ValueError(f"argument `params` must hold w of shape (width, d) and a of shape "
                         f"(width,); got {w.shape} and {a.shape}")
    return w, a


def line_margin(x: Any, y: Any, alpha: float, direction: Any) -> float:
    """The best normalized margin of a net whose neurons all lie on the line of
    ``direction``.

    Such a net is ``f(x) = A phi(u . x) - B phi(-u . x)`` up to neurons that cancel; the
    maximum of ``min_n y_n f(x_n) / |theta|^2`` over ``A, B`` (balanced neurons,
    ``|theta|^2 = 2 (|A| + |B|)``) is a four-column linear program. On symmetric data
    with ``u = u*`` it is ``((1 + alpha) / 4) gamma*``; it is the ceiling of every linear
    classifier with boundary ``u . x = 0`` that a two-layer Leaky ReLU net represents.

    Args:
      x: inputs ``(N, d)``; y: labels in {-1, +1}; alpha: the leak in (0, 1);
      direction: the vector ``u``, shape ``(d,)``.
    """
    from scipy.optimize import linprog

    x = V.check_array("x", x, ndim=2)
    y = check_binary_labels(y)
    alpha = V.check_in_range("alpha", alpha, 0.0, 1.0, low_inclusive=False,
                             high_inclusive=False)
    u = V.check_array("direction", direction)
    if x.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"arguments `x` (N, d) and `y` (N,) must match; got {x.shape} and "
                         f"{y.shape}")
    if u.shape != (x.shape[1],) or not np.linalg.norm(u) > 0:
        raise ValueError(f"argument `direction` must be a non-zero vector of shape "
                         f"({x.shape[1]},); got {u.shape}")
    z = x @ (u / np.linalg.norm(u))
    base = np.stack([_phi(z, alpha), _phi(-z, alpha)], axis=1)
    feats = y[:, None] * np.hstack([base, -base])
    n = x.shape[0]
    res = linprog(np.r_[np.zeros(4), -1.0], A_ub=np.hstack([-feats, np.ones((n, 1))]),
                  b_ub=np.zeros(n), A_eq=np.r_[np.ones(4), 0.0][None], b_eq=[1.0],
                  bounds=[(0, None)] * 4 + [(None, None)], method="highs")
    p = np.maximum(res.x[:4], 0.0)
    return float(np.min(feats @ (p / p.sum())) / 2.0)
