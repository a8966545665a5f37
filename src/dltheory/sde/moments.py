"""Exact second moments of the RMSprop and Adam SDEs on the noisy quadratic.

With the constant noise covariance ``diag(s^2)`` of :class:`~dltheory.sde.NoisyQuadratic`
the second-moment process ``u`` of both SDEs (:func:`~dltheory.sde.rmsprop_sde`,
:func:`~dltheory.sde.adam_sde`) is deterministic, so ``theta`` (with Adam's ``m``) is a
linear SDE with time-dependent coefficients, and its second moments solve a small linear
ODE. Integrated to a relative tolerance of ``1e-10``, they are a reference without
sampling error: RMSprop's and Adam's distance to their SDEs is then measured with only
their own standard errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dltheory import validation as V
from dltheory.sde import _checks as C
from dltheory.sde.simulate import _constants

__all__ = ["rmsprop_sde_second_moment", "adam_sde_second_moment"]


def _times(times: Any) -> np.ndarray:
    t = C.vector("times", times, nonnegative=True)
    if np.any(np.diff(t) < 0):
        raise ValueError(f"argument `times` must be non-decreasing; got {C.show(times)}")
    return t


def _solve(rhs: Callable, y0: np.ndarray, t0: float, times: np.ndarray,
           start: np.ndarray) -> np.ndarray:
    """Integrate ``y' = rhs(t, y)`` from ``(t0, y0)``; the rows of ``y`` at ``times``
    (``start`` where ``times <= t0``)."""
    from scipy.integrate import solve_ivp

    out = np.tile(start, (times.size, 1))
    later = times > t0
    if np.any(later):
        sol = solve_ivp(rhs, (t0, float(times[-1])), y0, method="Radau", t_eval=times[later],
                        rtol=1e-10, atol=1e-12 * max(1.0, float(np.abs(y0).max())))
        if not sol.success:  # pragma: no cover - a smooth linear ODE
            raise RuntimeError(f"the moment equations could not be integrated: {sol.message}")
        out[later] = sol.y[: start.size].T
    return out


def rmsprop_sde_second_moment(lam: Any, s: Any, x0: Any, times: Any, *, sigma: float,
                              eta: float, beta: float, eps: float,
                              u0: Any = 1.0) -> np.ndarray:
    """``E[theta_i(t)^2]`` of the RMSprop SDE on the noisy quadratic, exactly.

    With a constant noise covariance ``diag(s^2)`` the second-moment process is
    deterministic, ``u(t) = s^2 + (u_0 - s^2) e^{-c_2 t}``, so ``theta`` is a linear SDE
    with time-dependent coefficients: with ``P(t) = sigma_0 sqrt(u(t)) + eps_0``, each
    coordinate's second moment ``A_i = E theta_i^2`` solves
    ``A' = -2 lam A / P + (sigma_0 s / P)^2``, integrated here to a relative tolerance of
    ``1e-10`` (no sampling error).

    Args:
      lam, s, x0: curvatures (``> 0``), noise shape (``>= 0``) and start, shape ``(d,)``.
      times: SDE times ``t = k eta^2`` (``>= 0``, non-decreasing), shape ``(n,)``.
      sigma, eta, beta, eps: as in :func:`rmsprop_sde`.
      u0: the start of ``u`` (RMSprop's ``v_0 / sigma^2``), a number or shape ``(d,)``,
        ``>= 0``; ``P`` must stay positive (``u_0 > 0`` and ``s > 0``, or ``eps > 0``).

    Returns:
      ``E theta_i(t)^2``, shape ``(n, d)``.

    References:
      Malladi, Lyu, Panigrahi, Arora (2022), arXiv:2205.10287 (the RMSprop SDE).
    """
    k = _constants(lam, s, sigma, eta, eps, beta=("c2", beta))
    lam, s = k["lam"], k["s"]
    x0 = C.vector("x0", x0, size=lam.size)
    times = _times(times)
    if np.ndim(u0) == 0:
        u0 = np.full(lam.size, V.check_nonnegative("u0", u0))
    else:
        u0 = C.vector("u0", u0, nonnegative=True, size=lam.size)
    if k["eps0"] == 0 and np.any(np.minimum(u0, s**2) == 0):
        raise ValueError("arguments `u0`, `s` and `eps`: the preconditioner "
                         "sigma_0 sqrt(u) + eps_0 must stay > 0; it needs u0 > 0 and s > 0 "
                         f"where eps = 0 (got u0 = {C.show(u0)}, s = {C.show(s)})")
    s2, sig0, c2 = s**2, k["sigma0"], k["c2"]

    def rhs(t, a):
        P = sig0 * np.sqrt(s2 + (u0 - s2) * np.exp(-c2 * t)) + k["eps0"]
        return -2 * lam * a / P + (sig0 * s / P) ** 2

    return _solve(rhs, x0**2, 0.0, times, x0**2)


def adam_sde_second_moment(lam: Any, s: Any, x0: Any, times: Any, *, sigma: float,
                           eta: float, b1: float, eps: float,
                           noise_scale: float = 1.0) -> np.ndarray:
    """``E[theta_i(t)^2]`` of the Adam SDE on the noisy quadratic, exactly.

    Started like Adam (``m_0 = 0``, ``u_0 = 0``) with a constant noise covariance
    ``diag(s^2)``, the second-moment process is deterministic,
    ``u(t) = s^2 gamma_2(t)``, so ``P = sqrt(gamma_2) (sigma_0 s + eps_0)`` and the
    bias corrections combine into ``d theta = -m / (gamma_1(t) Q) dt`` with
    ``Q = sigma_0 s + eps_0``: the result does not depend on ``beta_2``. ``(theta, m)`` is
    then a linear SDE, and the second moments ``A = E theta^2``, ``B = E theta m``,
    ``C = E m^2`` of each coordinate solve, with ``a(t) = 1 / (gamma_1(t) Q)``,

        A' = -2 a B,   B' = -a C + c_1 (lam A - B),
        C' = 2 c_1 (lam B - C) + (sigma_0 c_1 s)^2,

    integrated (implicit Runge-Kutta, relative tolerance ``1e-10``) from ``t_0 = 1e-9``,
    where ``A = x_0^2``, ``B = (c_1 lam x_0^2 - (sigma_0 s)^2 c_1 / Q) t_0`` and
    ``C = (sigma_0 c_1 s)^2 t_0`` to first order. There is no sampling error, so the weak error of Adam is measured against it
    with only Adam's own standard error.

    Args:
      lam, s, x0: curvatures (``> 0``), noise shape (``>= 0``) and start, shape ``(d,)``.
      times: SDE times ``t = k eta^2`` (``>= 0``, non-decreasing), shape ``(n,)``.
      sigma, eta, b1, eps: as in :func:`adam_sde` (``Q`` must be positive: ``s > 0`` or
        ``eps > 0``).
      noise_scale: multiplies the diffusion of ``m`` (``>= 0``; ``1`` is the Adam SDE).
        Other values keep the drift and change only the noise, which shows how much the
        second moment depends on the noise term.

    Returns:
      ``E theta_i(t)^2``, shape ``(n, d)``.

    References:
      Malladi, Lyu, Panigrahi, Arora (2022), arXiv:2205.10287 (the Adam SDE).
    """
    k = _constants(lam, s, sigma, eta, eps, b1=("c1", b1))
    lam, s = k["lam"], k["s"]
    x0 = C.vector("x0", x0, size=lam.size)
    times = _times(times)
    noise_scale = V.check_nonnegative("noise_scale", noise_scale)
    Q = k["sigma0"] * s + k["eps0"]
    if np.any(Q <= 0):
        raise ValueError("arguments `s` and `eps`: sigma_0 s + eps_0 must be > 0; it needs "
                         f"s > 0 where eps = 0 (got s = {C.show(s)}, eps = {eps!r})")
    c1 = k["c1"]
    q2 = (noise_scale * k["sigma0"] * c1 * s) ** 2
    d = lam.size

    def rhs(t, y):
        A, B, Cm = y[:d], y[d:2 * d], y[2 * d:]
        a = 1.0 / (Q * -np.expm1(-c1 * t))
        return np.concatenate([-2 * a * B, -a * Cm + c1 * (lam * A - B),
                               2 * c1 * (lam * B - Cm) + q2])

    t0 = 1e-9
    y0 = np.concatenate([x0**2, (c1 * lam * x0**2 - q2 / (c1 * Q)) * t0, q2 * t0])
    return _solve(rhs, y0, t0, times, x0**2)
