"""Curvature of a loss: the sharpness (top Hessian eigenvalue) by power iteration.

The Hessian is never formed: each iteration is one Hessian-vector product, computed as a
forward-mode derivative of the gradient (``jax.jvp`` of ``jax.grad``), so the cost is a
few gradient evaluations. The functions are pure and jit-compatible, so the sharpness can
be logged as a metric by the training engine.

References:
  Pearlmutter (1994), Fast Exact Multiplication by the Hessian, Neural Computation 6(1);
  Cohen et al. (2021), arXiv:2103.00065, who track the sharpness during training this way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.flatten_util import ravel_pytree

from dltheory import validation as V

__all__ = ["hvp", "sharpness"]


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
    if isinstance(params, nnx.Module):
        graphdef, p, rest = nnx.split(params, nnx.Param, ...)
        fn = lambda q, b: loss_fn(nnx.merge(graphdef, q, rest), b)  # noqa: E731
    else:
        p, fn = params, loss_fn
    flat, unravel = ravel_pytree(p)
    if flat.size == 0:
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
