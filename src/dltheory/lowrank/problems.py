"""Low-rank recovery problems: matrix completion and matrix sensing with a PSD target.

Both are losses ``f(W)`` on a symmetric ``d x d`` matrix ``W``, quadratic in the
residual ``E = W - M``:

- completion: ``f(W) = 1/2 sum_{(i,j) in Omega} (W_ij - M_ij)^2`` (Li, Luo, Lyu 2021,
  with their ``f(W) = 1/2 |P_Omega(W - M)|_F^2``);
- sensing: ``f(W) = 1/(2m) sum_i (<A_i, W> - y_i)^2`` with Gaussian ``A_i`` and
  ``y_i = <A_i, M>`` (Jin, Li, Lyu, Du, Lee 2023). The ``1/m`` makes the
  operator near-isotropic: ``f(W) ~ |W - M|_F^2 / 2`` for large ``m``.

A problem is stored by what the compiled code needs: the observation mask for
completion, the ``d^2 x d^2`` Gram matrix ``(1/m) sum_i vec(A_i) vec(A_i)^T`` for
sensing (so one gradient step costs ``d^4`` flops, independent of ``m``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dltheory import validation as V

__all__ = [
    "LowRankProblem",
    "counterexample_problem",
    "matrix_completion_problem",
    "matrix_sensing_problem",
    "psd_target",
]


@dataclasses.dataclass(frozen=True, eq=False)
class LowRankProblem:
    """A loss ``f(W)`` on symmetric ``d x d`` matrices with a known PSD target.

    Attributes:
      kind: ``"completion"`` or ``"sensing"``.
      target: the ground truth ``M``, shape ``(d, d)``, symmetric PSD (float64).
      mask: completion only: 0/1 observation pattern ``Omega``, symmetric, ``(d, d)``.
      gram: sensing only: ``(1/m) sum_i vec(A_i) vec(A_i)^T``, shape ``(d*d, d*d)``.
      num_measurements: ``|Omega|`` for completion, ``m`` for sensing.
      eigenvalues: the target's nonzero eigenvalues, in decreasing order.
      name: a short label for figures.
    """

    kind: str
    target: np.ndarray
    mask: np.ndarray | None = None
    gram: np.ndarray | None = None
    num_measurements: int = 0
    eigenvalues: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    name: str = ""

    def __post_init__(self):
        V.check_choice("kind", self.kind, ("completion", "sensing"))
        target = V.check_array("target", self.target, ndim=2)
        d = target.shape[0]
        V.check_shape("target", target, (d, d))
        if self.kind == "completion":
            if self.mask is None:
                raise ValueError("argument `mask` is required for a completion problem (0/1 "
                                 "array of the observed entries); got None")
            mask = V.check_array("mask", self.mask, ndim=2)
            V.check_shape("mask", mask, (d, d))
            if not np.all((mask == 0) | (mask == 1)):
                raise ValueError("argument `mask` must hold only 0 and 1")
        else:
            if self.gram is None:
                raise ValueError("argument `gram` is required for a sensing problem (the "
                                 "(d*d, d*d) Gram matrix of the measurements); got None")
            V.check_shape("gram", V.check_array("gram", self.gram, ndim=2), (d * d, d * d))
        V.check_int("num_measurements", self.num_measurements, minimum=0)
        V.check_array("eigenvalues", self.eigenvalues, ndim=1, positive=True, nonempty=False)
        if not isinstance(self.name, str):
            raise TypeError(f"argument `name` must be a string; got {self.name!r}")

    @property
    def d(self) -> int:
        return int(self.target.shape[0])

    @property
    def rank(self) -> int:
        return len(self.eigenvalues)

    def operator(self, e: np.ndarray) -> np.ndarray:
        """The gradient ``grad f(W)`` at residual ``e = W - M`` (numpy, float64)."""
        e = np.asarray(e, np.float64)
        if self.kind == "completion":
            return self.mask * e
        g = (self.gram @ e.reshape(-1)).reshape(e.shape)
        return g

    def loss(self, w: np.ndarray) -> float:
        """``f(W)``."""
        e = np.asarray(w, np.float64) - self.target
        return 0.5 * float(np.sum(e * self.operator(e)))

    def gradient(self, w: np.ndarray) -> np.ndarray:
        """``grad f(W)``, symmetrized (the gradient on symmetric matrices)."""
        g = self.operator(np.asarray(w, np.float64) - self.target)
        return 0.5 * (g + g.T)

    def best_rank(self, r: int) -> np.ndarray:
        """The best rank-``r`` approximation of the target (Eckart-Young)."""
        r = V.check_int("r", r, minimum=0)
        lam, q = np.linalg.eigh(self.target)
        idx = np.argsort(lam)[::-1][:r]
        return (q[:, idx] * lam[idx]) @ q[:, idx].T

    def data(self) -> Any:
        """The array the compiled loss reads: the mask or the Gram matrix."""
        return self.mask if self.kind == "completion" else self.gram


def _check_eigenvalues(eigenvalues: Any, d: int) -> np.ndarray:
    lam = V.check_array("eigenvalues", eigenvalues, ndim=1, positive=True)
    if lam.size > d:
        raise ValueError(f"argument `eigenvalues` must have at most d = {d} entries (the "
                         f"dimension); got {lam.size}")
    return np.sort(lam)[::-1]


def psd_target(d: int, eigenvalues: Any, *, seed: int = 0) -> np.ndarray:
    """``M = Q diag(eigenvalues) Q^T`` with a uniformly random orthonormal ``Q`` (d x r).

    Args:
      d: dimension.
      eigenvalues: the ``r <= d`` positive eigenvalues.
      seed: numpy seed of the random eigenvectors.
    """
    d = V.check_int("d", d, minimum=1)
    lam = _check_eigenvalues(eigenvalues, d)
    rng = np.random.default_rng(V.check_seed("seed", seed))
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    q = q[:, : lam.size]
    m = (q * lam) @ q.T
    return 0.5 * (m + m.T)


def matrix_completion_problem(d: int = 20, eigenvalues: Any = (8.0, 2.0, 0.5), *,
                              fraction: float = 0.5, seed: int = 0) -> LowRankProblem:
    """Symmetric matrix completion of a random PSD matrix from a random half of its entries.

    Each entry ``(i, j)`` with ``i <= j`` is observed with probability ``fraction``
    (its mirror ``(j, i)`` with it), so the mask is symmetric.

    Args:
      d: dimension.
      eigenvalues: nonzero eigenvalues of the target (well separated for the greedy
        picture: the chapter uses 8, 2, 0.5).
      fraction: probability that an entry is observed, in ``(0, 1]``.
      seed: numpy seed for the target and the mask.

    Returns:
      A :class:`LowRankProblem` of kind ``"completion"``.

    References:
      Li, Luo, Lyu (2021), arXiv:2012.09839 (matrix completion experiments).
    """
    d = V.check_int("d", d, minimum=2)
    lam = _check_eigenvalues(eigenvalues, d)
    fraction = V.check_in_range("fraction", fraction, 0.0, 1.0, low_inclusive=False)
    seed = V.check_int("seed", seed, minimum=0)
    target = psd_target(d, lam, seed=seed)
    rng = np.random.default_rng(seed + 1_000_003)
    upper = np.triu(rng.random((d, d)) < fraction)
    mask = (upper | upper.T).astype(np.float64)
    return LowRankProblem("completion", target, mask=mask, num_measurements=int(mask.sum()),
                          eigenvalues=lam, name=f"completion d={d}, {fraction:.0%} observed")


def matrix_sensing_problem(d: int = 10, eigenvalues: Any = (4.0, 2.0, 1.0), *,
                           measurements: int | None = None, seed: int = 0) -> LowRankProblem:
    """Symmetric matrix sensing with ``m`` Gaussian measurements ``y_i = <A_i, M>``.

    ``A_i`` has i.i.d. standard normal entries, so ``E[(1/m) sum_i <A_i, X>^2] =
    |X|_F^2``: for ``m`` large compared with ``d r`` the operator satisfies the
    restricted isometry property with a small constant ``delta``.

    Args:
      d: dimension.
      eigenvalues: nonzero eigenvalues of the PSD target.
      measurements: ``m`` (default ``10 d^2``).
      seed: numpy seed for the target and the measurements.

    Returns:
      A :class:`LowRankProblem` of kind ``"sensing"`` holding the Gram matrix
      ``(1/m) sum_i vec(A_i) vec(A_i)^T``.

    References:
      Jin, Li, Lyu, Du, Lee (2023), arXiv:2301.11500 (the loss, with
      ``1/(2m)`` in place of their ``1/(4m)`` so that ``dU/dt ~ 2 (M - UU^T) U``).
    """
    d = V.check_int("d", d, minimum=2)
    lam = _check_eigenvalues(eigenvalues, d)
    m = 10 * d * d if measurements is None else V.check_int("measurements", measurements,
                                                             minimum=1)
    seed = V.check_int("seed", seed, minimum=0)
    target = psd_target(d, lam, seed=seed)
    rng = np.random.default_rng(seed + 2_000_003)
    gram = np.zeros((d * d, d * d))
    for start in range(0, m, 4096):  # bounded memory for large m
        a = rng.standard_normal((min(4096, m - start), d * d))
        gram += a.T @ a
    gram /= m
    return LowRankProblem("sensing", target, gram=gram, num_measurements=m, eigenvalues=lam,
                          name=f"sensing d={d}, m={m}")


def counterexample_problem(epsilon: float = 0.25) -> LowRankProblem:
    """A 3 x 3 completion problem on which depth-2 gradient flow misses the nuclear norm.

    Only the off-diagonal entries are observed: ``W_12 = W_13 = 1`` and
    ``W_23 = epsilon``. The rank-one fit ``u u^T`` with ``u = (1/sqrt(eps), sqrt(eps),
    sqrt(eps))`` has nuclear norm ``1/eps + 2 eps``, while the PSD completion
    ``[[2, 1, 1], [1, 1-eps, eps], [1, eps, 1-eps]]`` has trace ``4 - 2 eps``, smaller for
    every ``eps < 1/2`` (4.5 against 3.5 at the default). Gradient flow from small
    initialization follows GLRL, whose first phase already fits every observation
    with the rank-one matrix, so it stops there.

    The instance follows the paper's recipe for counter-examples (an exact rank-one
    fit reached by GLRL whose trace exceeds the minimum); it is a small instance of
    that recipe, not a copy of the paper's numbers.

    References:
      Li, Luo, Lyu (2021), arXiv:2012.09839 (counter-examples to the
      conjecture of Gunasekar et al., 2017).
    """
    eps = V.check_in_range("epsilon", epsilon, 0.0, 0.5, low_inclusive=False,
                           high_inclusive=False)
    u = np.array([1 / np.sqrt(eps), np.sqrt(eps), np.sqrt(eps)])
    target = np.outer(u, u)
    mask = 1.0 - np.eye(3)
    return LowRankProblem("completion", target, mask=mask, num_measurements=6,
                          eigenvalues=np.array([float(u @ u)]),
                          name=f"counterexample, eps={eps:g}")
