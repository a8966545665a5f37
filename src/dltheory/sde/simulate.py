"""Euler-Maruyama simulation of Ito SDEs, vmapped over sample paths, and the SDEs of the part.

:func:`sde_simulate` integrates ``dX = b(X, t) dt + sigma(X, t) dW`` with the
Euler-Maruyama scheme ``X <- X + b dt + sigma sqrt(dt) z``, ``z ~ N(0, I)``, for many
independent paths at once (one ``vmap`` inside one ``lax.scan`` under ``jit``).

The drifts and diffusions of the part, for the noisy quadratic
``L(x) = sum_i lambda_i x_i^2 / 2`` with gradient oracle ``g = grad L + sigma s * z``
(noise covariance ``Sigma = diag(s^2)``):

- :func:`sgd_sde`: ``dX = -grad L dt + (eta Sigma)^{1/2} dW``, time ``t = k eta``
  (Li, Tai, E 2017; Li, Malladi, Arora 2021).
- :func:`rmsprop_sde`: with ``sigma_0 = sigma eta``, ``eps_0 = eps eta``,
  ``c_2 = (1 - beta) / eta^2`` and time ``t = k eta^2``,
  ``dtheta = -P^{-1} (grad L dt + sigma_0 Sigma^{1/2} dW)``, ``du = c_2 (diag Sigma - u) dt``,
  ``P = sigma_0 diag(u)^{1/2} + eps_0 I`` (Malladi et al. 2022).
- :func:`adam_sde`: adds ``dm = c_1 (grad L - m) dt + sigma_0 c_1 Sigma^{1/2} dW`` and the
  bias corrections ``gamma_i(t) = 1 - exp(-c_i t)``:
  ``dtheta = -(sqrt(gamma_2) / gamma_1) P^{-1} m dt``,
  ``P = sigma_0 diag(u)^{1/2} + eps_0 sqrt(gamma_2) I`` (same paper).

On this quadratic the second moments of the adaptive SDEs solve small linear ODEs
(:mod:`dltheory.sde.moments`): a reference with no sampling error to measure RMSprop and
Adam against.

The adaptive SDEs hold in the noise-dominated regime the paper assumes,
``sigma ~ 1 / eta``: the second-moment estimate ``v`` then tracks ``sigma^2 diag Sigma``
and the ``(grad L)^2`` part of ``E g^2`` is neglected.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dltheory import validation as V
from dltheory.sde import _checks as C
from dltheory._jit import jit

__all__ = ["SDEPaths", "sde_simulate", "sgd_sde", "rmsprop_sde", "adam_sde"]


@dataclasses.dataclass(frozen=True)
class SDEPaths:
    """Sample paths of an SDE.

    Attributes:
      times: the logged times, shape ``(n_log,)`` (``0, log_every dt, ...``).
      x: the states, shape ``(paths, n_log, d)``.
    """

    times: np.ndarray
    x: np.ndarray

    def mean_sq_norm(self, dims: slice | None = None) -> np.ndarray:
        """``E |X_t|^2`` over paths at each logged time (of coordinates ``dims``)."""
        x = self.x if dims is None else self.x[..., dims]
        return (x**2).sum(-1).mean(0)


@functools.lru_cache(maxsize=64)
def _integrator(drift: Callable, diffusion: Callable, log_every: int, n_log: int):
    def path(x0, key, params, dt):
        def step(carry, _):
            x, t, k = carry
            k, sub = jax.random.split(k)
            sig = diffusion(x, t, params)
            z = jax.random.normal(sub, (sig.shape[1],), x.dtype)
            x = x + drift(x, t, params) * dt + sig @ z * jnp.sqrt(dt)
            return (x, t + dt, k), None

        def interval(carry, _):
            carry, _ = jax.lax.scan(step, carry, None, length=log_every)
            return carry, carry[0]

        t0 = jnp.zeros((), x0.dtype)
        _, xs = jax.lax.scan(interval, (x0, t0, key), None, length=n_log - 1)
        return jnp.concatenate([x0[None], xs], 0)

    return jit(jax.vmap(path, in_axes=(None, 0, None, None)))


def sde_simulate(drift: Callable[[jax.Array, jax.Array, Any], jax.Array],
                 diffusion: Callable[[jax.Array, jax.Array, Any], jax.Array], x0: Any, *,
                 dt: float, steps: int, paths: int, key: int = 0, log_every: int = 1,
                 params: Any = None) -> SDEPaths:
    """Euler-Maruyama paths of ``dX = drift(X, t) dt + diffusion(X, t) dW``.

    Args:
      drift: ``drift(x, t, params) -> (d,)``.
      diffusion: ``diffusion(x, t, params) -> (d, m)`` (``m`` Brownian motions).
      x0: the start, shape ``(d,)`` (the same for every path).
      dt: the time step ``> 0``.
      steps: number of steps, a multiple of ``log_every``.
      paths: number of independent paths (vmapped).
      key: seed of the Brownian increments.
      log_every: record the state every this many steps.
      params: a pytree passed to ``drift`` and ``diffusion`` (traced: new values reuse
        the compiled code). Pass module-level functions as ``drift``/``diffusion``.

    Returns:
      :class:`SDEPaths` with ``times`` of shape ``(steps / log_every + 1,)``.

    References:
      Kloeden, Platen (1992), Numerical Solution of SDEs, Section 9.1 (Euler-Maruyama,
      weak order 1).
    """
    C.function("drift", drift)
    C.function("diffusion", diffusion)
    dt = V.check_positive("dt", dt)
    steps, log_every = V.check_steps(steps, log_every)
    paths = V.check_int("paths", paths, minimum=1)
    key = V.check_int("key", key, minimum=0)
    x0 = jnp.asarray(C.vector("x0", x0), jnp.float32)
    n_log = steps // log_every + 1
    keys = jax.random.split(jax.random.key(key), paths)
    xs = _integrator(drift, diffusion, log_every, n_log)(x0, keys, params, jnp.float32(dt))
    return SDEPaths(np.arange(n_log) * log_every * dt, np.asarray(xs))


# --------------------------------------------------------------------------------------
# The SDEs of the noisy quadratic (params: dicts of arrays, so they are traced)
# --------------------------------------------------------------------------------------


def _sgd_drift(x, t, p):
    return -p["lam"] * x


def _sgd_diffusion(x, t, p):
    return jnp.diag(jnp.sqrt(p["eta"]) * p["s"])


def _quadratic(lam: Any, s: Any) -> tuple[np.ndarray, np.ndarray]:
    lam = C.vector("lam", lam, positive=True)
    return lam, C.vector("s", s, nonnegative=True, size=lam.size)


def sgd_sde(lam: Any, s: Any, eta: float) -> tuple[Callable, Callable, dict]:
    """``(drift, diffusion, params)`` of the SGD SDE on the noisy quadratic.

    ``dX = -diag(lam) X dt + sqrt(eta) diag(s) dW`` in time ``t = k eta``, where one
    minibatch gradient is ``lam * x + s * z`` with ``z ~ N(0, I)``.

    Args:
      lam: the curvatures ``lambda_i > 0``, shape ``(d,)``.
      s: the noise scales ``s_i >= 0``, shape ``(d,)``.
      eta: the learning rate ``> 0``.

    References:
      Li, Tai, E (2017), Stochastic Modified Equations and Adaptive Stochastic Gradient
      Algorithms, ICML 2017, arXiv:1511.06251; Li, Malladi, Arora (2021), arXiv:2102.12470.
    """
    lam, s = _quadratic(lam, s)
    eta = V.check_positive("eta", eta)
    p = {"lam": jnp.asarray(lam, jnp.float32), "s": jnp.asarray(s, jnp.float32),
         "eta": jnp.float32(eta)}
    return _sgd_drift, _sgd_diffusion, p


def _rms_split(y):
    d = y.shape[0] // 2
    return y[:d], jnp.maximum(y[d:], 0.0)


def _rms_drift(y, t, p):
    theta, u = _rms_split(y)
    P = p["sigma0"] * jnp.sqrt(u) + p["eps0"]
    return jnp.concatenate([-p["lam"] * theta / P, p["c2"] * (p["s"] ** 2 - u)])


def _rms_diffusion(y, t, p):
    theta, u = _rms_split(y)
    P = p["sigma0"] * jnp.sqrt(u) + p["eps0"]
    top = jnp.diag(-p["sigma0"] * p["s"] / P)
    return jnp.concatenate([top, jnp.zeros_like(top)], 0)


def _constants(lam, s, sigma, eta, eps, **betas) -> dict:
    """The adaptive SDEs' constants, every argument checked first: ``lam``, ``s``,
    ``sigma_0 = sigma eta``, ``eps_0 = eps eta`` and ``c_i = (1 - beta_i) / eta^2``."""
    lam, s = _quadratic(lam, s)
    sigma = V.check_positive("sigma", sigma)
    eta = V.check_positive("eta", eta)
    eps = V.check_nonnegative("eps", eps)
    out = {"lam": lam, "s": s, "sigma0": sigma * eta, "eps0": eps * eta}
    for name, (c, beta) in betas.items():
        beta = V.check_in_range(name, beta, 0.0, 1.0, high_inclusive=False)
        out[c] = (1.0 - beta) / eta**2
    return out


def _traced(consts: dict) -> dict:
    return {k: jnp.asarray(v, jnp.float32) for k, v in consts.items()}


def rmsprop_sde(lam: Any, s: Any, *, sigma: float, eta: float, beta: float,
                eps: float) -> tuple[Callable, Callable, dict]:
    """``(drift, diffusion, params)`` of the RMSprop SDE on the noisy quadratic.

    State ``y = (theta, u)`` (``2 d`` entries) in time ``t = k eta^2``, where RMSprop's
    second moment is ``v = sigma^2 u``; start it at ``u_0 = v_0 / sigma^2``.

    Args:
      lam, s: the curvatures (``> 0``) and noise shape (``>= 0``), shape ``(d,)``.
      sigma: the noise scale ``> 0`` (a minibatch gradient is ``lam x + sigma s z``).
      eta: the learning rate ``> 0``.
      beta: the decay of the second moment, in ``[0, 1)``.
      eps: the ``eps`` of RMSprop, ``>= 0``.

    References:
      Malladi, Lyu, Panigrahi, Arora (2022), arXiv:2205.10287 (the RMSprop
      SDE, with ``sigma_0 = sigma eta``, ``eps_0 = eps eta``, ``c_2 = (1 - beta) / eta^2``).
    """
    return _rms_drift, _rms_diffusion, _traced(
        _constants(lam, s, sigma, eta, eps, beta=("c2", beta)))


def _adam_split(y):
    d = y.shape[0] // 3
    return y[:d], y[d:2 * d], jnp.maximum(y[2 * d:], 0.0)


def _adam_gammas(t, p):
    g1 = -jnp.expm1(-p["c1"] * t)
    g2 = -jnp.expm1(-p["c2"] * t)
    return jnp.maximum(g1, 1e-12), jnp.maximum(g2, 1e-12)


def _adam_drift(y, t, p):
    theta, m, u = _adam_split(y)
    g1, g2 = _adam_gammas(t, p)
    P = p["sigma0"] * jnp.sqrt(u) + p["eps0"] * jnp.sqrt(g2)
    dtheta = -(jnp.sqrt(g2) / g1) * m / P
    dm = p["c1"] * (p["lam"] * theta - m)
    du = p["c2"] * (p["s"] ** 2 - u)
    return jnp.concatenate([dtheta, dm, du])


def _adam_diffusion(y, t, p):
    d = y.shape[0] // 3
    zero = jnp.zeros((d, d), y.dtype)
    mid = jnp.diag(p["sigma0"] * p["c1"] * p["s"])
    return jnp.concatenate([zero, mid, zero], 0)


def adam_sde(lam: Any, s: Any, *, sigma: float, eta: float, b1: float, b2: float,
             eps: float) -> tuple[Callable, Callable, dict]:
    """``(drift, diffusion, params)`` of the Adam SDE on the noisy quadratic.

    State ``y = (theta, m, u)`` (``3 d`` entries) in time ``t = k eta^2``, started at
    ``m_0 = 0``, ``u_0 = 0`` like Adam's moments; the bias corrections
    ``gamma_i(t) = 1 - exp(-c_i t)`` make the start well defined.

    Args:
      lam, s: the curvatures (``> 0``) and noise shape (``>= 0``), shape ``(d,)``.
      sigma: the noise scale ``> 0``.
      eta: the learning rate ``> 0``.
      b1, b2: Adam's decays ``beta_1``, ``beta_2``, in ``[0, 1)``.
      eps: Adam's ``eps``, ``>= 0``.

    References:
      Malladi, Lyu, Panigrahi, Arora (2022), arXiv:2205.10287 (the Adam SDE,
      ``c_1 = (1 - beta_1) / eta^2``, ``c_2 = (1 - beta_2) / eta^2``).
    """
    return _adam_drift, _adam_diffusion, _traced(
        _constants(lam, s, sigma, eta, eps, b1=("c1", b1), b2=("c2", b2)))
