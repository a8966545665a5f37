"""Minimum-nuclear-norm matrix completion by ADMM, with a dual certificate of optimality.

The convex program (Gunasekar et al. 2017's conjectured limit of gradient flow) is

    minimize |W|_*   subject to   W_ij = M_ij for (i, j) in Omega,

or, with ``psd=True``, ``minimize trace(W)`` over PSD ``W`` with the same constraints
(for PSD matrices the nuclear norm is the trace; this is the form the conjecture takes
for ``W = U U^T``). ADMM splits ``W = Z``: the ``W``-step projects onto the observation
constraints, the ``Z``-step is singular value (or eigenvalue) soft thresholding.

Optimality is not taken on trust: the scaled ADMM multiplier gives a dual point ``Y``
supported on ``Omega``. Weak duality says every ``Y`` with ``|Y|_op <= 1`` (for
``psd=True``: ``I - Y`` PSD) bounds the optimum from below by ``<Y, M>``; the result
reports that bound and the duality gap ``|W|_* - <Y, M>``, so a small gap *certifies*
that ``W`` is optimal up to the gap.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dltheory import validation as V

__all__ = ["NuclearNormResult", "min_nuclear_norm_completion", "nuclear_norm"]


def nuclear_norm(w: Any) -> float:
    """``|W|_*``: the sum of the singular values.

    Raises:
      TypeError, ValueError: if ``w`` is not a finite 2-D array (a matrix).
    """
    w = V.check_array("w", w, ndim=2)
    return float(np.linalg.svd(w, compute_uv=False).sum())


@dataclasses.dataclass(frozen=True)
class NuclearNormResult:
    """A minimum-nuclear-norm completion and its certificate.

    Attributes:
      w: the completion, shape ``(d1, d2)``.
      value: its nuclear norm (its trace when ``psd``).
      dual: the dual point ``Y`` (supported on ``Omega``, scaled to be feasible).
      lower_bound: ``<Y, M>``, a lower bound on the optimal value.
      gap: ``value - lower_bound`` (>= 0 up to the constraint residual).
      residual: ``max |W_ij - M_ij|`` over observed entries.
      iterations: ADMM iterations used.
      psd: whether the PSD (trace) form was solved.
    """

    w: np.ndarray
    value: float
    dual: np.ndarray
    lower_bound: float
    gap: float
    residual: float
    iterations: int
    psd: bool

    @property
    def relative_gap(self) -> float:
        return self.gap / max(abs(self.value), 1e-300)


def _prox(v: np.ndarray, t: float, psd: bool) -> np.ndarray:
    if psd:
        lam, q = np.linalg.eigh(0.5 * (v + v.T))
        lam = np.maximum(lam - t, 0.0)
        return (q * lam) @ q.T
    u, s, vt = np.linalg.svd(v, full_matrices=False)
    return (u * np.maximum(s - t, 0.0)) @ vt


def min_nuclear_norm_completion(target: Any, mask: Any, *, psd: bool = False,
                                rho: float = 1.0, max_iter: int = 20_000,
                                tol: float = 1e-9) -> NuclearNormResult:
    """Solve ``min |W|_* s.t. P_Omega(W) = P_Omega(M)`` (or its PSD trace form) by ADMM.

    Args:
      target: ``M``; only its entries on ``Omega`` are read. Shape ``(d1, d2)``.
      mask: ``Omega`` as a 0/1 array of the same shape.
      psd: minimize the trace over PSD matrices instead (needs a square, symmetric
        mask and target).
      rho: ADMM penalty ``> 0``.
      max_iter: iteration budget.
      tol: stop when the primal and dual residuals are below ``tol`` (relative to the
        scale of ``M``).

    Returns:
      A :class:`NuclearNormResult` with the completion, the dual certificate and the
      duality gap.

    References:
      Boyd et al. (2011), Distributed Optimization and Statistical Learning via ADMM,
      Section 3; Cai, Candes, Shen (2010), singular value thresholding; Recht, Fazel,
      Parrilo (2010) for the dual norm; Gunasekar et al. (2017) for the conjecture.
    """
    m = V.check_array("target", target, ndim=2, finite=False)
    omega = V.check_array("mask", mask, nonempty=False)
    if omega.shape != m.shape:
        raise ValueError(f"argument `mask` must have the shape of `target` {m.shape}; got "
                         f"{omega.shape}")
    if not np.all((omega == 0) | (omega == 1)):
        raise ValueError("argument `mask` must hold only 0 and 1")
    omega = omega.astype(bool)
    if not np.all(np.isfinite(m[omega])):
        raise ValueError("argument `target` must be finite on the observed entries")
    if not isinstance(psd, bool):
        raise TypeError(f"argument `psd` must be a bool; got {psd!r}")
    if psd and (m.shape[0] != m.shape[1] or not np.array_equal(omega, omega.T)
                or not np.allclose(m[omega], m.T[omega])):
        raise ValueError("argument `psd=True` needs a square target that is symmetric on a "
                         "symmetric mask")
    rho = V.check_positive("rho", rho)
    max_iter = V.check_int("max_iter", max_iter, minimum=1)
    tol = V.check_positive("tol", tol)

    scale = max(1.0, float(np.abs(m[omega]).max(initial=0.0)))
    obs = np.where(omega, m, 0.0)
    z = obs.copy()
    u = np.zeros_like(m)
    it = 0
    for it in range(1, max_iter + 1):
        w = np.where(omega, m, z - u)          # projection onto the constraints
        z_old = z
        z = _prox(w + u, 1.0 / rho, psd)        # soft thresholding of the spectrum
        u = u + w - z
        primal = np.abs(w - z).max()
        dual = rho * np.abs(z - z_old).max()
        if primal < tol * scale and dual < tol * scale:
            break
    w = np.where(omega, m, z)
    # dual certificate: rho * u is a subgradient at z; keep its part on Omega
    y = np.where(omega, rho * u, 0.0)
    if psd:
        y = 0.5 * (y + y.T)
        top = float(np.linalg.eigvalsh(y)[-1])
        value = float(np.trace(w))
    else:
        top = float(np.linalg.svd(y, compute_uv=False)[0])
        value = nuclear_norm(w)
    if top > 1.0:
        y = y / top                            # now dual feasible
    lower = float(np.sum(y * obs))
    residual = float(np.abs(np.where(omega, z - m, 0.0)).max())
    return NuclearNormResult(w, value, y, lower, value - lower, residual, it, psd)
