"""Greedy Low-Rank Learning (GLRL) and the distance of gradient flow to its iterates.

GLRL (Li, Luo, Lyu 2021, the GLRL algorithm) on a loss ``f`` of symmetric matrices:

1. ``W_0 = 0``, ``U_0`` an empty ``d x 0`` matrix;
2. at step ``r``, take the top eigenpair ``(lambda_r, u_r)`` of ``-grad f(W_{r-1})``;
3. if ``lambda_r <= tol``, stop and return ``W_{r-1}``;
4. append ``sqrt(epsilon) u_r`` as a new column: ``U = [U_{r-1}, sqrt(epsilon) u_r]``;
5. run gradient flow on ``f(U U^T)`` from there to convergence; ``W_r = U_r U_r^T``.

The paper's depth-2 theorem (with ``epsilon -> 0``) says that depth-2 gradient flow from an
initialization of scale ``alpha -> 0`` passes arbitrarily close to every ``W_r``.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from dltheory.compat import enable_x64
from dltheory import validation as V
from dltheory.lowrank.flow import FlowResult, _apply, _check_problem
from dltheory.lowrank.problems import LowRankProblem
from dltheory._jit import jit

__all__ = ["GLRLResult", "distance_to_glrl", "glrl"]


@dataclasses.dataclass(frozen=True)
class GLRLResult:
    """The iterates of Greedy Low-Rank Learning.

    Attributes:
      iterates: ``W_1, ..., W_R``, shape ``(R, d, d)`` (``W_r`` has rank ``r``).
      eigenvalues: the ``lambda_r`` of step 2 that started each phase, shape ``(R,)``.
      losses: ``f(W_r)``, shape ``(R,)``.
      steps: gradient steps each phase took, shape ``(R,)``.
      grad_norms: ``|grad L(U_r)|_F`` at the end of each phase, shape ``(R,)``.
      stopped: why the algorithm stopped: ``"tolerance"`` (``lambda <= tol``) or
        ``"max_rank"``.
      final_eigenvalue: the top eigenvalue of ``-grad f`` at the last iterate.
    """

    iterates: np.ndarray
    eigenvalues: np.ndarray
    losses: np.ndarray
    steps: np.ndarray
    grad_norms: np.ndarray
    stopped: str
    final_eigenvalue: float

    def __len__(self) -> int:
        return len(self.iterates)


@functools.partial(jit, static_argnames=("kind",))
def _phase(data, target, u0, lr, max_steps, grad_tol, *, kind):
    def loss_fn(u):
        e = u @ u.T - target
        return 0.5 * jnp.sum(e * _apply(kind, data, e))

    grad = jax.grad(loss_fn)

    def cond(state):
        _u, g, k = state
        return (k < max_steps) & (jnp.sqrt(jnp.sum(g**2)) > grad_tol)

    def body(state):
        u, g, k = state
        u = u - lr * g
        return u, grad(u), k + 1

    u, g, k = jax.lax.while_loop(cond, body, (u0, grad(u0), jnp.int32(0)))
    return u, jnp.sqrt(jnp.sum(g**2)), k


def glrl(problem: LowRankProblem, *, epsilon: float = 1e-10, tol: float = 1e-6,
         max_rank: int | None = None, lr: float | None = None, max_steps: int = 400_000,
         grad_tol: float = 1e-10) -> GLRLResult:
    """Run Greedy Low-Rank Learning (Li, Luo, Lyu 2021, the GLRL algorithm) in float64.

    Each phase's "gradient flow to convergence" is gradient descent with step ``lr``
    until ``|grad L(U)|_F <= grad_tol`` (or ``max_steps``).

    Args:
      problem: the loss ``f`` (completion or sensing).
      epsilon: squared length of each new column (the paper's ``epsilon -> 0``).
      tol: stop when the top eigenvalue of ``-grad f(W_r)`` is at most this.
      max_rank: at most this many phases (default ``d``); the under-parameterized
        flow of width ``r`` is compared with the GLRL run stopped at ``max_rank=r``.
      lr: step of the inner gradient descent (default ``0.1 / (1 + |M|_2)``, stable).
      max_steps: step budget of one phase.
      grad_tol: convergence threshold of one phase.

    Returns:
      A :class:`GLRLResult` with every rank-``r`` iterate.

    A phase that does not reach ``grad_tol`` within ``max_steps`` gives a
    ``RuntimeWarning``; its ``grad_norms`` entry shows how far it got.

    References:
      Li, Luo, Lyu (2021), arXiv:2012.09839 (the GLRL algorithm and the depth-2
      equivalence theorem for depth-2 factorizations).
    """
    d = _check_problem(problem).d
    epsilon = V.check_positive("epsilon", epsilon)
    tol = V.check_nonnegative("tol", tol)
    max_rank = d if max_rank is None else V.check_int("max_rank", max_rank, minimum=1,
                                                      maximum=d)
    if lr is None:
        lr = 0.1 / (1.0 + float(np.linalg.norm(problem.target, 2)))
    lr = V.check_positive("lr", lr)
    max_steps = V.check_int("max_steps", max_steps, minimum=1)
    grad_tol = V.check_positive("grad_tol", grad_tol)

    u = np.zeros((d, 0))
    iterates, lams, losses, nsteps, gnorms = [], [], [], [], []
    stopped = "max_rank"
    w = np.zeros((d, d))
    with enable_x64(True):
        data = jnp.asarray(problem.data(), jnp.float64)
        target = jnp.asarray(problem.target, jnp.float64)
        for _ in range(max_rank):
            lam, vec = np.linalg.eigh(-problem.gradient(w))
            if lam[-1] <= tol:
                stopped = "tolerance"
                break
            u0 = np.concatenate([u, np.sqrt(epsilon) * vec[:, -1:]], axis=1)
            out, gnorm, k = _phase(data, target, jnp.asarray(u0), lr, max_steps, grad_tol,
                                   kind=problem.kind)
            u, gnorm, k = np.asarray(out), float(gnorm), int(k)
            if gnorm > grad_tol:
                warnings.warn(f"GLRL phase {len(iterates) + 1} did not converge in "
                              f"{max_steps} steps (|grad| = {gnorm:.3g} > {grad_tol:g}); its "
                              f"iterate is the last one reached (raise `max_steps` or `lr`)",
                              RuntimeWarning, stacklevel=2)
            w = u @ u.T
            iterates.append(w)
            lams.append(float(lam[-1]))
            losses.append(problem.loss(w))
            nsteps.append(k)
            gnorms.append(gnorm)
    final = float(np.linalg.eigvalsh(-problem.gradient(w))[-1])
    if stopped == "max_rank" and final <= tol:
        stopped = "tolerance"
    return GLRLResult(np.asarray(iterates).reshape(-1, d, d), np.asarray(lams),
                      np.asarray(losses), np.asarray(nsteps), np.asarray(gnorms), stopped,
                      final)


def distance_to_glrl(flow: FlowResult, iterates: GLRLResult | np.ndarray) -> np.ndarray:
    """``min_t |W(t) - W_r|_F / |W_r|_F`` for each run of ``flow`` and each GLRL ``W_r``.

    If ``flow`` tracked these iterates as its ``references`` the minimum is over every
    step of the run; otherwise it is over the logged trajectory (``flow`` must then
    have been run with ``keep_trajectory=True``).

    Returns:
      Array of shape ``(n_runs, R)``.

    References:
      Li, Luo, Lyu (2021), arXiv:2012.09839, the depth-2 theorem (this distance
      shrinks as the initialization does).
    """
    V.check_instance("flow", flow, FlowResult, "FlowResult (from gradient_flow)")
    w_r = iterates.iterates if isinstance(iterates, GLRLResult) else \
        V.check_array("iterates", iterates, ndim=3)
    d = flow.final.shape[-1]
    V.check_shape("iterates", w_r, (None, d, d))
    if np.any(np.linalg.norm(w_r, axis=(-2, -1)) == 0):
        raise ValueError("argument `iterates` must not contain a zero matrix (the distances "
                         "are relative to it)")
    if flow.references is not None and flow.references.shape == w_r.shape and np.allclose(
            flow.references, w_r, rtol=0, atol=0):
        return flow.ref_min
    if flow.trajectory is None:
        raise ValueError("argument `flow` neither tracked these iterates (pass them as "
                         "`references`) nor kept its trajectory (`keep_trajectory=True`)")
    diff = flow.trajectory[:, :, None] - w_r[None, None]
    dist = np.linalg.norm(diff, axis=(-2, -1)) / np.linalg.norm(w_r, axis=(-2, -1))
    return dist.min(axis=1)
