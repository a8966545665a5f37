"""Part I on the noisy quadratic: SVAG against the SGD SDE, adaptive SVAG against the
RMSprop SDE (Adam against its SDE is in :mod:`dltheory.sde.adam`). Seeds are one vmapped
sweep per level."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from dltheory import validation as V
from dltheory.sde import _checks as C
from dltheory.sde import rules as R
from dltheory.sde.problems import NoisyQuadratic, _sq_norm, quadratic_loss
from dltheory.sde.moments import rmsprop_sde_second_moment
from dltheory.sde.simulate import rmsprop_sde, sde_simulate, sgd_sde
from dltheory.sde.svag import TwoBatches, adaptive_svag, svag
from dltheory.training import sweep

__all__ = ["CHAPTER_QUADRATIC", "ADAPTIVE_QUADRATIC", "RMSPROP_QUADRATIC",
           "SVAGQuadraticResult", "svag_quadratic", "AdaptiveSVAGResult",
           "rmsprop_svag_quadratic"]


#: The noisy quadratic of the chapter: 16 curvatures from 0.5 to 2.5, unit noise, x0 = 0.5.
CHAPTER_QUADRATIC = NoisyQuadratic(lam=tuple(np.linspace(0.5, 2.5, 16)), s=(1.0,) * 16,
                                   x0=(0.5,) * 16)


def _check_levels(ls: Sequence[float], name: str = "ls") -> np.ndarray:
    return C.levels(name, ls)


def _check_problem(problem: Any) -> NoisyQuadratic:
    return C.instance("problem", problem, NoisyQuadratic, "a NoisyQuadratic")


def _x2(x: jnp.ndarray, _eval: Any) -> dict[str, jnp.ndarray]:
    return {"x2": x**2}


def _loss_of(x2: np.ndarray, lam: Any) -> np.ndarray:
    """``L(theta) = sum_i lam_i theta_i^2 / 2`` from the squared coordinates (last axis)."""
    return 0.5 * (np.asarray(x2, np.float64) * np.asarray(lam, np.float64)).sum(-1)


# --------------------------------------------------------------------------------------
# SVAG on the noisy quadratic
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SVAGQuadraticResult:
    """SVAG at several ``l`` on the noisy quadratic, with the SDE it converges to.

    Attributes:
      ls: the SVAG levels.
      eta: the SGD learning rate; SDE time is ``t = k eta`` (``k l`` SVAG steps).
      times: the logged SDE times, shape ``(n_log,)``.
      svag: ``E |x_t|^2`` per level (mean over paths), shape ``(len(ls), n_log)``.
      svag_se: its standard error at the final time, per level.
      svag_exact: the exact ``E |x_t|^2`` of SVAG per level (closed form), same shape.
      em: the Euler-Maruyama estimate of the SDE's ``E |X_t|^2``, shape ``(n_log,)``.
      em_se: its standard error at the final time.
      sde_exact: the SDE's exact ``E |X_t|^2``, shape ``(n_log,)``.
      paths: the number of paths per estimate.
    """

    ls: np.ndarray
    eta: float
    times: np.ndarray
    svag: np.ndarray
    svag_se: np.ndarray
    svag_exact: np.ndarray
    em: np.ndarray
    em_se: float
    sde_exact: np.ndarray
    paths: int

    @property
    def final(self) -> np.ndarray:
        """``E |x_T|^2`` per level."""
        return self.svag[:, -1]

    @property
    def gaps(self) -> np.ndarray:
        """``|E|x_T|^2(l_{i+1}) - E|x_T|^2(l_i)|`` between consecutive levels."""
        return np.abs(np.diff(self.final))

    @property
    def gap_slope(self) -> float:
        """Fitted slope of ``log gap`` against ``log l`` (``-1`` for gaps ``~ 1 / l``),
        over the gaps from the second level on (the asymptotic regime)."""
        ls = self.ls[1:-1] if len(self.ls) > 3 else self.ls[:-1]
        g = self.gaps[1:] if len(self.ls) > 3 else self.gaps
        return float(np.polyfit(np.log(ls), np.log(g), 1)[0])

    @property
    def em_relative_gap(self) -> float:
        """``|SVAG(l_max) - EM| / EM`` at the final time."""
        return float(abs(self.final[-1] - self.em[-1]) / self.em[-1])


def svag_quadratic(ls: Sequence[int] = (1, 2, 4, 8, 16), *, eta: float = 0.4,
                   horizon: float = 2.0, paths: int = 8192, em_substeps: int = 32,
                   problem: NoisyQuadratic = CHAPTER_QUADRATIC, log_points: int = 5,
                   key: int = 0) -> SVAGQuadraticResult:
    """SVAG with levels ``ls`` on the noisy quadratic against its SDE.

    Each level runs ``l * horizon / eta`` steps of SGD on the SVAG loss with learning rate
    ``eta / l`` through the engine, ``paths`` seeds in one vmapped sweep. The SDE
    ``dX = -lam X dt + sqrt(eta) sigma s dW`` is simulated by Euler-Maruyama with
    ``dt = eta / em_substeps`` on as many paths, and also given in closed form.

    Args:
      ls: SVAG levels (integers ``>= 1``; ``1`` is SGD).
      eta: the SGD learning rate.
      horizon: the SDE time ``T``; ``horizon / eta`` must be divisible by ``log_points``.
      paths: sample paths per estimate.
      em_substeps: Euler-Maruyama steps per SGD step.
      problem: the noisy quadratic.
      log_points: records along the run (besides time 0).

    References:
      Li, Malladi, Arora (2021), arXiv:2102.12470 (SVAG, and the theorem that it is an
      order-1 weak approximation of the SDE of SGD: the error in ``E g(X_T)`` is ``O(1 / l)``).
    """
    ls = _check_levels(ls)
    eta = V.check_positive("eta", eta)
    horizon = V.check_positive("horizon", horizon)
    paths = V.check_int("paths", paths, minimum=2)
    em_substeps = V.check_int("em_substeps", em_substeps, minimum=1)
    log_points = V.check_int("log_points", log_points, minimum=1)
    problem = _check_problem(problem)
    key = V.check_int("key", key, minimum=0)
    n = horizon / eta
    if abs(n - round(n)) > 1e-9 or round(n) < 1 or round(n) % log_points:
        raise ValueError(f"argument `horizon`: horizon / eta = {n:g} must be an integer "
                         f"number of SGD steps divisible by log_points = {log_points}")
    n = int(round(n))
    x0 = jnp.asarray(problem.x0, jnp.float32)
    seeds = list(range(key * paths, (key + 1) * paths))
    source = TwoBatches(problem.source())
    means, ses, exact = [], [], []
    for l in ls:
        steps = int(l) * n
        cfg = R.svag_config(R.sgd_config(eta, 1), float(l))
        res = sweep(svag(quadratic_loss, float(l)), x0, cfg.spec(), steps=steps, seeds=seeds,
                    batches=source, log_every=steps // log_points, metrics=_sq_norm)
        sq = res["sq"]
        means.append(sq.mean(0))
        ses.append(sq[:, -1].std(ddof=1) / np.sqrt(paths))
        exact.append(problem.svag_second_moment(eta, float(l), steps)[:: steps // log_points])
    drift, diffusion, params = sgd_sde(problem.lam, problem.sigma * np.asarray(problem.s), eta)
    em_steps = n * em_substeps
    em = sde_simulate(drift, diffusion, problem.x0, dt=eta / em_substeps, steps=em_steps,
                      paths=paths, key=key + 1, log_every=em_steps // log_points,
                      params=params)
    sq = (em.x**2).sum(-1)
    times = np.arange(log_points + 1) * horizon / log_points
    return SVAGQuadraticResult(ls, eta, times, np.asarray(means), np.asarray(ses),
                               np.asarray(exact), sq.mean(0),
                               float(sq[:, -1].std(ddof=1) / np.sqrt(paths)),
                               problem.sde_second_moment(eta, times), paths)


# --------------------------------------------------------------------------------------
# Adaptive SVAG against the RMSprop SDE on the noisy quadratic
# --------------------------------------------------------------------------------------

#: The adaptive chapter's quadratic: four curvatures, unit noise shape, sigma = 5, x0 = 1.
ADAPTIVE_QUADRATIC = NoisyQuadratic(lam=(0.5, 1.0, 2.0, 4.0), s=(1.0,) * 4, sigma=5.0,
                                    x0=(1.0,) * 4)

#: The same quadratic at half the noise scale, sigma = 2.5: RMSprop at ``eta = 0.4`` on it
#: has the SDE of RMSprop at ``eta = 0.2`` on :data:`ADAPTIVE_QUADRATIC`
#: (``sigma_0 = sigma eta = 1``), but its noise does not yet dominate the gradient.
RMSPROP_QUADRATIC = NoisyQuadratic(lam=(0.5, 1.0, 2.0, 4.0), s=(1.0,) * 4, sigma=2.5,
                                   x0=(1.0,) * 4)


@dataclasses.dataclass(frozen=True)
class AdaptiveSVAGResult:
    """Adaptive SVAG for RMSprop at several ``l`` against the RMSprop SDE.

    The measured quantity is the expected loss ``E L(theta_t)``,
    ``L(theta) = sum_i lam_i theta_i^2 / 2``.

    Attributes:
      ls: the levels.
      times: logged SDE times ``t = k eta^2``.
      svag: ``E L(theta_t)`` per level, shape ``(len(ls), n_log)``.
      svag_se: its standard errors, same shape.
      sde: the SDE's ``E L(theta_t)``, exact (:func:`~dltheory.sde.rmsprop_sde_second_moment`),
        shape ``(n_log,)``.
      em: the Euler-Maruyama estimate of the same, shape ``(n_log,)``.
      em_se: its standard errors, shape ``(n_log,)``.
      u_em: mean of the SDE's ``u`` (first coordinate) over time, showing its relaxation.
      paths: sample paths per level (and of the Euler-Maruyama estimate).
    """

    ls: np.ndarray
    times: np.ndarray
    svag: np.ndarray
    svag_se: np.ndarray
    sde: np.ndarray
    em: np.ndarray
    em_se: np.ndarray
    u_em: np.ndarray
    paths: int

    @property
    def gaps(self) -> np.ndarray:
        """``SVAG_l(T) - SDE(T)`` per level (signed; the SDE value is exact)."""
        return self.svag[:, -1] - self.sde[-1]

    @property
    def gaps_in_se(self) -> np.ndarray:
        """``|SVAG_l(T) - SDE(T)|`` per level in standard errors of the SVAG estimate."""
        return np.abs(self.gaps) / self.svag_se[:, -1]

    @property
    def relative_gaps(self) -> np.ndarray:
        """``|SVAG_l(T) - SDE(T)| / SDE(T)`` per level."""
        return np.abs(self.gaps) / self.sde[-1]

    @property
    def em_gap_in_se(self) -> float:
        """``|EM(T) - SDE(T)|`` in standard errors of the Euler-Maruyama estimate."""
        return float(abs(self.em[-1] - self.sde[-1]) / self.em_se[-1])


def rmsprop_svag_quadratic(ls: Sequence[int] = (1, 2, 4), *, eta: float = 0.4,
                           beta: float = 0.96, eps: float = 1e-8, horizon: float = 1.6,
                           v0_factor: float = 4.0, paths: int = 32768, em_substeps: int = 16,
                           problem: NoisyQuadratic = RMSPROP_QUADRATIC, log_points: int = 5,
                           key: int = 0) -> AdaptiveSVAGResult:
    """RMSprop with adaptive SVAG at levels ``ls`` against the RMSprop SDE.

    RMSprop starts with ``v_0 = v0_factor * sigma^2 s^2`` (optax's ``initial_scale``; the
    SDE's ``u_0 = v0_factor * s^2``), so the second-moment process has to relax, at rate
    ``c_2 = (1 - beta) / eta^2``, while ``theta`` moves. Level ``l`` runs
    ``l^2 horizon / eta^2`` steps with the hyperparameters of
    :func:`~dltheory.sde.adaptive_svag_config` through the engine. The SDE's expected loss
    is exact (:func:`~dltheory.sde.rmsprop_sde_second_moment`) and also estimated by
    Euler-Maruyama with ``dt = eta^2 / em_substeps`` on as many paths.

    With the defaults (``sigma = 2.5``, ``eta = 0.4``, ``beta = 0.96``: ``sigma_0 = 1``,
    ``c_2 = 0.25``) the gradient ``lam theta`` of the stiffest coordinate starts above
    the noise scale, so plain RMSprop (``l = 1``) is measurably off its SDE, while
    adaptive SVAG multiplies the noise scale by ``l`` and closes the gap.

    Args:
      ls: the levels (integers ``>= 1``; ``1`` is RMSprop).
      eta, beta, eps: RMSprop's hyperparameters at ``l = 1``.
      horizon: the SDE time ``T``; ``horizon / eta^2`` must be an integer divisible by
        ``log_points``.
      v0_factor: RMSprop's initial second moment in units of ``sigma^2 s^2`` (``> 0``).
      paths: sample paths per level.
      em_substeps: Euler-Maruyama steps per RMSprop step.
      problem: the noisy quadratic (an isotropic noise shape ``s``).
      log_points: records along the run (besides time 0).
      key: the seed offset (paths use seeds ``key * paths ...``).

    References:
      Malladi, Lyu, Panigrahi, Arora (2022), arXiv:2205.10287 (the RMSprop SDE) and
      the adaptive SVAG used to test it.
    """
    ls = _check_levels(ls)
    eta = V.check_positive("eta", eta)
    beta = V.check_in_range("beta", beta, 0.0, 1.0, high_inclusive=False)
    eps = V.check_nonnegative("eps", eps)
    horizon = V.check_positive("horizon", horizon)
    v0_factor = V.check_positive("v0_factor", v0_factor)
    paths = V.check_int("paths", paths, minimum=2)
    em_substeps = V.check_int("em_substeps", em_substeps, minimum=1)
    problem = _check_problem(problem)
    log_points = V.check_int("log_points", log_points, minimum=1)
    key = V.check_int("key", key, minimum=0)
    if len(set(problem.s)) != 1:
        raise ValueError("argument `problem` must have an isotropic noise shape `s` "
                         f"(optax's initial_scale is a scalar); got s = {problem.s!r}")
    n = C.steps_of("horizon", horizon, eta**2, log_points, "horizon / eta^2")
    s2 = problem.s[0] ** 2
    base = R.rmsprop_config(eta, 1, beta=beta, eps=eps,
                            initial_scale=v0_factor * problem.sigma**2 * s2)
    x0 = jnp.asarray(problem.x0, jnp.float32)
    seeds = list(range(key * paths, (key + 1) * paths))
    source = TwoBatches(problem.source())
    means, ses = [], []
    for l in ls:
        steps = int(l) ** 2 * n
        cfg = R.adaptive_svag_config(base, float(l))
        res = sweep(adaptive_svag(quadratic_loss, float(l)), x0, cfg.spec(), steps=steps,
                    seeds=seeds, batches=source, log_every=steps // log_points, metrics=_x2)
        loss = _loss_of(res["x2"], problem.lam)
        means.append(loss.mean(0))
        ses.append(loss.std(0, ddof=1) / np.sqrt(paths))
    times = np.arange(log_points + 1) * horizon / log_points
    consts = dict(sigma=problem.sigma, eta=eta, beta=beta, eps=eps)
    exact = rmsprop_sde_second_moment(problem.lam, problem.s, problem.x0, times,
                                      u0=v0_factor * s2, **consts)
    drift, diffusion, params = rmsprop_sde(problem.lam, problem.s, **consts)
    y0 = np.concatenate([problem.x0, np.full(problem.dim, v0_factor * s2)])
    em_steps = n * em_substeps
    em = sde_simulate(drift, diffusion, y0, dt=eta**2 / em_substeps, steps=em_steps,
                      paths=paths, key=key + 1, log_every=em_steps // log_points,
                      params=params)
    em_loss = _loss_of(em.x[..., :problem.dim] ** 2, problem.lam)
    return AdaptiveSVAGResult(ls, times, np.asarray(means), np.asarray(ses),
                              _loss_of(exact, problem.lam), em_loss.mean(0),
                              em_loss.std(0, ddof=1) / np.sqrt(paths),
                              em.x[:, :, problem.dim].mean(0), paths)
