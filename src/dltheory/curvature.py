"""Curvature of a loss: the sharpness (top Hessian eigenvalue) by power iteration, and
the trace of the Hessian by Hutchinson's estimator.

The Hessian is never formed: each iteration is one Hessian-vector product, computed as a
forward-mode derivative of the gradient (``jax.jvp`` of ``jax.grad``), so the cost is a
few gradient evaluations. The functions are pure and jit-compatible, so the sharpness and
the trace can be logged as metrics by the training engine and ``vmap``-ped over a grid of
parameters.

References:
  Pearlmutter (1994), Fast Exact Multiplication by the Hessian, Neural Computation 6(1);
  Cohen et al. (2021), arXiv:2103.00065, who track the sharpness during training this way;
  Hutchinson (1989), A Stochastic Estimator of the Trace of the Influence Matrix for
  Laplacian Smoothing Splines, Communications in Statistics - Simulation and Computation
  18(3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.flatten_util import ravel_pytree

from dltheory import validation as V

__all__ = ["hvp", "sharpness", "TraceEstimate", "hessian_trace"]


def hvp(loss_fn: Callable[[Any, Any], jax.Array], params: Any, batch: Any, v: Any) -> Any:
    """The Hessian of ``loss_fn(., batch)`` at ``params`` applied to ``v`` (same pytree).

    Raises:
      TypeError: if ``loss_fn`` is not callable.
      ValueError: if ``v`` is not a pytree of the structure and shapes of ``params``.
    """
    V.check_callable("loss_fn", loss_fn)
    p_leaves, p_def = jax.tree.flatten(params)
    v_leaves, v_def = jax.tree.flatten(v)
    if p_def != v_def or [jnp.shape(a) for a in p_leaves] != [jnp.shape(a) for a in v_leaves]:
        raise ValueError(f"argument `v` must be a pytree of the structure and shapes of "
                         f"`params` ({p_def} with shapes {[jnp.shape(a) for a in p_leaves]}); "
                         f"got {V._describe(v)} ({v_def} with shapes "
                         f"{[jnp.shape(a) for a in v_leaves]})")
    return jax.jvp(lambda p: jax.grad(loss_fn)(p, batch), (params,), (v,))[1]


def sharpness(loss_fn: Callable[[Any, Any], jax.Array], params: Any, batch: Any, *,
              iters: int = 20, key: jax.Array | int = 0) -> jax.Array:
    """The largest-magnitude eigenvalue of the Hessian of ``loss_fn(., batch)`` at ``params``.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, or ``loss_fn(model, batch)`` when
        ``params`` is an nnx module (its ``nnx.Param`` variables are differentiated).
      params: a pytree of arrays or an nnx module.
      batch: the data the loss is evaluated on.
      iters: power iterations (each one Hessian-vector product). The estimate
        converges at the rate ``|lambda_2 / lambda_1|`` per iteration.
      key: seed or key of the random start.

    Returns:
      A scalar: the Rayleigh quotient ``v^T H v`` of the final unit vector. Near a
      minimum, where the Hessian is close to positive semi-definite, this is the
      sharpness ``lambda_max``.
    """
    V.check_callable("loss_fn", loss_fn)
    iters = V.check_int("iters", iters, minimum=1)
    key = V.check_key("key", key)
    p, fn = _split_params(loss_fn, params)
    flat, unravel = ravel_pytree(p)
    if not jax.tree_util.tree_leaves(p) or flat.size == 0:
        raise ValueError(f"argument `params` must hold at least one parameter; got {params!r}")
    v0 = jax.random.normal(key, flat.shape, flat.dtype)
    v0 = v0 / jnp.linalg.norm(v0)

    def matvec(v):
        return ravel_pytree(hvp(fn, p, batch, unravel(v)))[0]

    def body(_, v):
        w = matvec(v)
        return w / (jnp.linalg.norm(w) + jnp.finfo(flat.dtype).tiny)

    v = jax.lax.fori_loop(0, iters - 1, body, v0)
    return v @ matvec(v)


class TraceEstimate(NamedTuple):
    """Hutchinson's estimate of ``tr(H)`` (a pytree: ``vmap`` stacks both fields).

    ``estimate`` is the mean of ``z^T H z`` over the probes, and ``stderr`` its standard
    error: the sample standard deviation of ``z^T H z`` over the probes divided by the
    square root of their number.
    """

    estimate: jax.Array
    stderr: jax.Array


def _split_params(loss_fn: Callable, params: Any) -> tuple[Any, Callable]:
    """The differentiated pytree and a loss on it (an nnx module's ``nnx.Param`` state)."""
    if isinstance(params, nnx.Module):
        graphdef, p, rest = nnx.split(params, nnx.Param, ...)
        return p, lambda q, b: loss_fn(nnx.merge(graphdef, q, rest), b)
    return params, loss_fn


def hessian_trace(loss_fn: Callable[[Any, Any], jax.Array], params: Any, batch: Any, *,
                  probes: int | jax.Array = 64, key: jax.Array | int = 0) -> TraceEstimate:
    """The trace of the Hessian of ``loss_fn(., batch)`` at ``params``, by Hutchinson.

    For a probe ``z`` with independent entries ``+-1`` (Rademacher), ``E[z^T H z] =
    tr(H)`` exactly, and ``Var[z^T H z] = 2 sum_{i != j} H_ij^2``: the estimate is
    unbiased, and its error falls like ``1 / sqrt(probes)``. Each probe costs one
    Hessian-vector product (``jax.jvp`` of ``jax.grad``); the probes run as one ``vmap``.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, or ``loss_fn(model, batch)`` when
        ``params`` is an nnx module (its ``nnx.Param`` variables are differentiated).
      params: a pytree of arrays or an nnx module.
      batch: the data the loss is evaluated on.
      probes: the number of Rademacher probes (at least 2, for a standard error), or the
        probes themselves, an array of shape ``(P, D)`` with ``D`` the number of
        parameters (in the order of ``jax.flatten_util.ravel_pytree``).
      key: seed or key of the probes (unused when the probes are given).

    Returns:
      A :class:`TraceEstimate` ``(estimate, stderr)`` of scalars.

    Raises:
      TypeError: if ``loss_fn`` is not callable or ``key`` is not a seed or key.
      ValueError: if ``probes`` is not an integer >= 2 or an array of shape ``(P, D)``
        with ``P >= 2``, or ``params`` holds no parameter.

    Example::

        tr, se = hessian_trace(lambda x, h: 0.5 * x @ h @ x, x0, h, probes=128)

    References:
      Hutchinson (1989), Communications in Statistics - Simulation and Computation 18(3);
      Avron, Toledo (2011), Randomized algorithms for estimating the trace of an implicit
      symmetric positive semi-definite matrix, J. ACM 58(2) (the variance of the
      Rademacher probes).
    """
    V.check_callable("loss_fn", loss_fn)
    p, fn = _split_params(loss_fn, params)
    flat, unravel = ravel_pytree(p)
    if not jax.tree_util.tree_leaves(p) or flat.size == 0:
        raise ValueError(f"argument `params` must hold at least one parameter; got {params!r}")
    if isinstance(probes, (int, np.integer)) and not isinstance(probes, bool):
        n = V.check_int("probes", probes, minimum=2)
        z = jax.random.rademacher(V.check_key("key", key), (n, flat.size), flat.dtype)
    elif hasattr(probes, "shape") and hasattr(probes, "dtype"):
        if probes.ndim != 2 or probes.shape[0] < 2 or probes.shape[1] != flat.size:
            raise ValueError(f"argument `probes` must be an integer >= 2 or an array of "
                             f"shape (P >= 2, {flat.size}) (one probe per row, one column "
                             f"per parameter); got shape {tuple(probes.shape)}")
        z = jnp.asarray(probes, flat.dtype)
    else:
        raise ValueError(f"argument `probes` must be an integer >= 2 or an array of shape "
                         f"(P, {flat.size}); got {probes!r}")

    def quad(v):
        return v @ ravel_pytree(hvp(fn, p, batch, unravel(v)))[0]

    q = jax.vmap(quad)(z)
    return TraceEstimate(q.mean(), q.std(ddof=1) / jnp.sqrt(q.shape[0]))
