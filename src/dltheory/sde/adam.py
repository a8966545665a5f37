"""Adam against the Adam SDE on the noisy quadratic: the weak error as the learning rate
shrinks along the family of runs that share one SDE.

Malladi, Lyu, Panigrahi, Arora (2022) show that in the noise-dominated regime the Adam
SDE is an order-1 weak approximation of Adam: for a smooth test function ``g`` the gap
``|E g(theta_k) - E g(Theta_{k eta^2})|`` is ``O(eta)`` when ``sigma_0 = sigma eta``,
``eps_0 = eps eta`` and ``c_i = (1 - beta_i) / eta^2`` are held fixed.
:func:`adam_sde_weak_error` measures that gap for ``g = L`` at several ``eta`` against the
SDE's exact expected loss.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from dltheory import validation as V
from dltheory.sde import _checks as C
from dltheory.sde import rules as R
from dltheory.sde.problems import NoisyQuadratic, quadratic_loss
from dltheory.sde.quadratic import ADAPTIVE_QUADRATIC, _check_problem, _loss_of, _x2
from dltheory.sde.moments import adam_sde_second_moment, rmsprop_sde_second_moment
from dltheory.sde.simulate import adam_sde, sde_simulate
from dltheory.training import sweep

__all__ = ["AdamWeakErrorResult", "adam_sde_weak_error"]


@dataclasses.dataclass(frozen=True)
class AdamWeakErrorResult:
    """Adam at several learning rates, all with one SDE, against that SDE.

    The measured quantity is the expected loss ``E L(theta_t)``,
    ``L(theta) = sum_i lam_i theta_i^2 / 2``, at SDE times ``t = k eta^2``.

    Attributes:
      etas: the learning rates, largest first.
      times: the logged SDE times, shape ``(n_log,)``.
      adam: ``E L(theta_t)`` of Adam per learning rate, shape ``(len(etas), n_log)``.
      adam_se: its standard errors, same shape.
      sde: the Adam SDE's ``E L(theta_t)``, exact
        (:func:`~dltheory.sde.adam_sde_second_moment`), shape ``(n_log,)``.
      rmsprop_sde: ``E L(theta_t)`` of the RMSprop SDE with the same ``sigma_0, eps_0``
        and ``u`` at its equilibrium (what the Adam SDE becomes without its momentum
        process), exact, shape ``(n_log,)``.
      em: the Euler-Maruyama estimate of the Adam SDE's ``E L(theta_t)``, ``(n_log,)``.
      em_se: its standard errors, ``(n_log,)``.
      paths: sample paths per learning rate.
    """

    etas: np.ndarray
    times: np.ndarray
    adam: np.ndarray
    adam_se: np.ndarray
    sde: np.ndarray
    rmsprop_sde: np.ndarray
    em: np.ndarray
    em_se: np.ndarray
    paths: int

    @property
    def errors(self) -> np.ndarray:
        """The weak error at the final time, ``E L(theta_T) - E L(Theta_T)``, per eta
        (signed; the SDE value is exact, so its uncertainty is :attr:`errors_se`)."""
        return self.adam[:, -1] - self.sde[-1]

    @property
    def errors_se(self) -> np.ndarray:
        """The standard errors of :attr:`errors` (Adam's sampling error alone)."""
        return self.adam_se[:, -1]

    def _fit(self) -> tuple[float, float]:
        x = np.log(self.etas)
        y = np.log(np.abs(self.errors))
        w = (np.abs(self.errors) / self.errors_se) ** 2   # 1 / var(log |error|)
        xm = np.sum(w * x) / np.sum(w)
        sxx = np.sum(w * (x - xm) ** 2)
        slope = np.sum(w * (x - xm) * y) / sxx
        return float(slope), float(1.0 / np.sqrt(sxx))

    @property
    def slope(self) -> float:
        """The fitted order ``p`` of ``|error| ~ eta^p`` (weighted least squares of
        ``log |error|`` on ``log eta``; the theorem's bound is ``p >= 1``)."""
        return self._fit()[0]

    @property
    def slope_se(self) -> float:
        """The standard error of :attr:`slope` (from the errors' standard errors)."""
        return self._fit()[1]

    @property
    def ratio(self) -> float:
        """``|error|`` at the largest eta over ``|error|`` at the smallest."""
        return float(abs(self.errors[0]) / abs(self.errors[-1]))

    def order_against_one(self, k: float = 2.0) -> str:
        """``"faster"``, ``"as fast"`` or ``"slower"``: how the fitted order compares with
        the order 1 the theorem guarantees, where "as fast" means 1 lies within ``k``
        standard errors of :attr:`slope`."""
        slope, se = self._fit()
        if slope - k * se > 1:
            return "faster"
        return "as fast" if slope + k * se >= 1 else "slower"

    @property
    def errors_in_se(self) -> np.ndarray:
        """``|error|`` per eta in standard errors."""
        return np.abs(self.errors) / self.errors_se


def _check_etas(etas: Any) -> np.ndarray:
    e = C.vector("etas", etas, positive=True)
    if e.size < 2 or np.any(np.diff(e) >= 0):
        raise ValueError(f"argument `etas` must hold at least two learning rates, strictly "
                         f"decreasing; got {C.show(etas)}")
    return e


def adam_sde_weak_error(etas: Sequence[float] = (0.2, 0.2 / math.sqrt(2), 0.1), *,
                        b1: float = 0.9, b2: float = 0.99, eps: float = 1e-8,
                        horizon: float = 1.0, paths: int = 32768, em_paths: int | None = None,
                        em_substeps: int = 16, problem: NoisyQuadratic = ADAPTIVE_QUADRATIC,
                        log_points: int = 5, key: int = 0) -> AdamWeakErrorResult:
    """The weak error of the Adam SDE: Adam at shrinking ``eta`` against the one SDE.

    ``b1``, ``b2``, ``eps`` and ``problem.sigma`` are Adam's hyperparameters and noise
    scale at ``eta_1 = etas[0]``. At ``eta = eta_1 / l`` Adam runs with noise scale
    ``sigma l``, ``1 - beta_i -> (1 - beta_i) / l^2`` and ``eps l`` (the rescaling of
    adaptive SVAG, :func:`~dltheory.sde.adaptive_svag_config`; on this Gaussian-noise
    problem amplifying the noise directly is the same in distribution as SVAG's two-batch
    loss), which keeps ``sigma_0 = sigma eta``, ``eps_0 = eps eta`` and
    ``c_i = (1 - beta_i) / eta^2``, hence the SDE, fixed: the noise-dominated family the
    theorem is about (``sigma ~ 1 / eta``; a batch size shrinking like ``eta^2``). Each
    ``eta`` runs ``horizon / eta^2`` steps of ``optax.adam`` through the engine,
    ``paths`` seeds in one vmapped sweep, from ``problem.x0``.

    The reference is the SDE's exact ``E L(theta_T)``
    (:func:`~dltheory.sde.adam_sde_second_moment`), so each error carries only Adam's
    standard error; an Euler-Maruyama simulation of :func:`~dltheory.sde.adam_sde`
    (``dt = eta_1^2 / em_substeps``, ``em_paths`` paths) is returned beside it.

    Args:
      etas: learning rates, strictly decreasing, each with ``horizon / eta^2`` an integer
        divisible by ``log_points``.
      b1, b2, eps: Adam's hyperparameters at ``etas[0]``.
      horizon: the SDE time ``T``.
      paths: sample paths per learning rate (``>= 2``).
      em_paths: paths of the Euler-Maruyama estimate (default ``paths``).
      em_substeps: Euler-Maruyama steps per Adam step at ``etas[0]``.
      problem: the noisy quadratic, its ``sigma`` the noise scale at ``etas[0]``.
      log_points: records along the run (besides time 0).
      key: the seed offset.

    Returns:
      An :class:`AdamWeakErrorResult`; its ``errors``, ``slope`` and ``ratio`` are the
      weak error at ``T`` and how it shrinks with ``eta``.

    References:
      Malladi, Lyu, Panigrahi, Arora (2022), arXiv:2205.10287 (the Adam SDE, an order-1
      weak approximation of Adam in the noise-dominated regime: the error in
      ``E g(theta_T)`` is ``O(eta)``).
    """
    etas = _check_etas(etas)
    b1 = V.check_in_range("b1", b1, 0.0, 1.0, high_inclusive=False)
    b2 = V.check_in_range("b2", b2, 0.0, 1.0, high_inclusive=False)
    eps = V.check_nonnegative("eps", eps)
    horizon = V.check_positive("horizon", horizon)
    paths = V.check_int("paths", paths, minimum=2)
    em_paths = paths if em_paths is None else V.check_int("em_paths", em_paths, minimum=2)
    em_substeps = V.check_int("em_substeps", em_substeps, minimum=1)
    problem = _check_problem(problem)
    log_points = V.check_int("log_points", log_points, minimum=1)
    key = V.check_int("key", key, minimum=0)
    ns = [C.steps_of("etas", horizon, e**2, log_points, f"horizon / eta^2 at eta = {e:g}")
          for e in etas]
    base = R.adam_config(float(etas[0]), 1, b1=b1, b2=b2, eps=eps)
    x0 = jnp.asarray(problem.x0, jnp.float32)
    seeds = list(range(key * paths, (key + 1) * paths))
    means, ses = [], []
    for eta, steps in zip(etas, ns):
        l = float(etas[0] / eta)
        cfg = R.adaptive_svag_config(base, l)
        noisy = dataclasses.replace(problem, sigma=problem.sigma * l)
        res = sweep(quadratic_loss, x0, cfg.spec(), steps=steps, seeds=seeds,
                    batches=noisy.source(), log_every=steps // log_points, metrics=_x2)
        loss = _loss_of(res["x2"], problem.lam)
        means.append(loss.mean(0))
        ses.append(loss.std(0, ddof=1) / np.sqrt(paths))
    times = np.arange(log_points + 1) * horizon / log_points
    consts = dict(sigma=problem.sigma, eta=float(etas[0]), eps=eps)
    exact = adam_sde_second_moment(problem.lam, problem.s, problem.x0, times, b1=b1, **consts)
    s2 = np.asarray(problem.s) ** 2
    no_momentum = rmsprop_sde_second_moment(problem.lam, problem.s, problem.x0, times,
                                            beta=b2, u0=s2, **consts)
    drift, diffusion, params = adam_sde(problem.lam, problem.s, b1=b1, b2=b2, **consts)
    y0 = np.concatenate([problem.x0, np.zeros(2 * problem.dim)])
    em_steps = ns[0] * em_substeps
    em = sde_simulate(drift, diffusion, y0, dt=float(etas[0]) ** 2 / em_substeps,
                      steps=em_steps, paths=em_paths, key=key + 1,
                      log_every=em_steps // log_points, params=params)
    em_loss = _loss_of(em.x[..., :problem.dim] ** 2, problem.lam)
    return AdamWeakErrorResult(etas, times, np.asarray(means), np.asarray(ses),
                               _loss_of(exact, problem.lam), _loss_of(no_momentum, problem.lam),
                               em_loss.mean(0), em_loss.std(0, ddof=1) / np.sqrt(em_paths),
                               paths)
