"""Two-layer Leaky ReLU nets: the model, its linear part, and its early alignment.

``f(x) = sum_k a_k phi(w_k . x)`` with ``phi(z) = max(z, alpha z)``, ``0 < alpha < 1``,
trained on the logistic loss from a small initialization (Lyu, Li, Wang, Arora 2021).
The model is 2-homogeneous in ``theta = (a, W)``.

The linear classifier realized by the net. Since ``phi(z) - phi(-z) = (1 + alpha) z``,
the odd part of ``f`` is linear,
``(f(x) - f(-x)) / 2 = ((1 + alpha) / 2) v . x`` with ``v = sum_k a_k w_k``.
On symmetric data ``min_n y_n f(x_n) <= min_n y_n (f(x_n) - f(-x_n)) / 2`` and
``|v| <= sum_k |a_k| |w_k| <= |theta|^2 / 2``, hence for every ``theta``

    gamma(theta) = min_n y_n f(x_n) / |theta|^2 <= ((1 + alpha) / 4) gamma*,

with ``gamma*`` the margin of the linear max-margin (SVM) direction ``u*``; equality
holds for the two-neuron net ``a = (1, -1)``, ``w_1 = u*``, ``w_2 = -u*``. So
``((1 + alpha) / 4) gamma*`` is the global max normalized margin on symmetric data, and
it is attained exactly by nets whose ``v`` points along ``u*`` with all neurons
balanced and (anti)parallel to ``u*``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dltheory import validation as V

__all__ = [
    "TwoLayerLeakyReLU",
    "alignment_with_mu",
    "is_linear_on",
    "leaky_apply",
    "leaky_init",
    "linear_part",
    "max_normalized_margin",
    "two_layer_leaky_relu",
]


class TwoLayerLeakyReLU(nnx.Module):
    """``f(x) = sum_k a_k max(w_k . x, alpha w_k . x)``: bias-free, 2-homogeneous.

    Attributes:
      w: ``nnx.Param`` of shape ``(width, d)``, the first layer.
      a: ``nnx.Param`` of shape ``(width,)``, the second layer.
      alpha: the Leaky ReLU slope on the negative side (a constant, not trained).
    """

    def __init__(self, d: int, width: int, *, rngs: nnx.Rngs, alpha: float = 0.2,
                 init_scale: float = 1e-4):
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"argument `rngs` must be a flax.nnx.Rngs (e.g. nnx.Rngs(0)); got "
                            f"{rngs!r}")
        d = V.check_int("d", d, minimum=1)
        width = V.check_int("width", width, minimum=1)
        self.alpha = V.check_in_range("alpha", alpha, 0.0, 1.0, low_inclusive=False,
                                      high_inclusive=False)
        init_scale = V.check_positive("init_scale", init_scale)
        key_w, key_a = rngs.params(), rngs.params()
        self.w = nnx.Param(init_scale * jax.random.normal(key_w, (width, d)) / np.sqrt(d))
        self.a = nnx.Param(init_scale * jax.random.normal(key_a, (width,)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return leaky_apply({"w": self.w[...], "a": self.a[...]}, {"x": x, "alpha": self.alpha})


def two_layer_leaky_relu(d: int, width: int, *, alpha: float = 0.2, init_scale: float = 1e-4,
                         seed: int = 0) -> TwoLayerLeakyReLU:
    """A :class:`TwoLayerLeakyReLU` with i.i.d. Gaussian weights of scale ``init_scale``.

    ``w_k ~ N(0, init_scale^2 I / d)`` and ``a_k ~ N(0, init_scale^2)``: a small random
    initialization in the sense of Lyu, Li, Wang, Arora (2021) (their theorem takes the
    initialization scale to zero; the exact scaling with ``d`` here is ours).

    References:
      Lyu, Li, Wang, Arora (2021), Gradient Descent on Two-layer Nets: Margin
      Maximization and Simplicity Bias, NeurIPS, arXiv:2110.13905.
    """
    return TwoLayerLeakyReLU(d, width, rngs=nnx.Rngs(V.check_seed("seed", seed)),
                             alpha=alpha, init_scale=init_scale)


def leaky_init(key: jax.Array, d: int, width: int, init_scale: float, active: int | None = None
               ) -> dict[str, jax.Array]:
    """Functional parameters ``{"w": (width, d), "a": (width,)}``; neurons past ``active``
    are exactly zero (they stay zero under gradient descent: their gradients vanish), so
    nets of different widths share one shape.

    Args:
      key: a JAX PRNG key or an integer seed.
      d, width: input dimension and number of neurons (>= 1).
      init_scale: the scale of the weights (> 0).
      active: how many neurons are non-zero (1 to ``width``; default all).
    """
    key = V.check_key("key", key)
    d = V.check_int("d", d, minimum=1)
    width = V.check_int("width", width, minimum=1)
    init_scale = V.check_positive("init_scale", init_scale)
    if active is not None:
        active = V.check_int("active", active, minimum=1, maximum=width)
    kw, ka = jax.random.split(key)
    w = init_scale * jax.random.normal(kw, (width, d)) / np.sqrt(d)
    a = init_scale * jax.random.normal(ka, (width,))
    if active is not None:
        mask = (jnp.arange(width) < active).astype(w.dtype)
        w, a = w * mask[:, None], a * mask
    return {"w": w, "a": a}


def leaky_apply(params: dict, data: dict) -> jax.Array:
    """``f(x)`` for ``params = {"w", "a"}`` and ``data = {"x": (N, d), "alpha": slope}``.

    Checks the shapes (and a concrete ``alpha``) only, so it can be traced under ``jit``
    and ``vmap``.
    """
    w_shape, a_shape = _net_shapes(params)
    if not isinstance(data, dict) or "x" not in data or "alpha" not in data:
        raise TypeError(f"argument `data` must be a dict {{'x': (N, d), 'alpha': slope}}; "
                        f"got {V._describe(data)}")
    if jnp.ndim(data["x"]) != 2 or jnp.shape(data["x"])[1] != w_shape[1]:
        raise ValueError(f"argument `data` must hold x of shape (N, {w_shape[1]}) (the "
                         f"width of `params['w']`); got {jnp.shape(data['x'])}")
    alpha = data["alpha"]
    if not isinstance(alpha, jax.core.Tracer) and np.ndim(alpha) == 0:
        V.check_in_range("data['alpha']", alpha, 0.0, 1.0, low_inclusive=False,
                         high_inclusive=False)
    z = data["x"] @ params["w"].T
    return jnp.maximum(z, data["alpha"] * z) @ params["a"]


def linear_part(params: dict) -> np.ndarray:
    """``v = sum_k a_k w_k``; the odd part of ``f`` is ``((1 + alpha)/2) v . x``."""
    _net_shapes(params)
    return np.asarray(params["a"]) @ np.asarray(params["w"])


def max_normalized_margin(svm_margin: float, alpha: float) -> float:
    """The global max normalized margin ``((1 + alpha) / 4) gamma*`` on symmetric data.

    See the module docstring for the derivation (upper bound from the odd part of ``f``
    and ``|v| <= |theta|^2 / 2``; attained by two balanced neurons along ``+-u*``).

    References:
      Lyu, Li, Wang, Arora (2021), arXiv:2110.13905 (their main theorem for symmetric
      data: gradient flow reaches a global max-margin solution, which is linear).
    """
    svm_margin = V.check_positive("svm_margin", svm_margin)
    alpha = V.check_in_range("alpha", alpha, 0.0, 1.0, low_inclusive=False,
                             high_inclusive=False)
    return (1.0 + alpha) / 4.0 * svm_margin


def alignment_with_mu(w: np.ndarray, mu: np.ndarray, active: int | None = None) -> np.ndarray:
    """Mean over neurons of ``|cos(w_k, mu)|``, for ``w`` of shape ``(..., width, d)``."""
    w = V.check_array("w", w, ndim=tuple(range(2, 8)))
    mu = V.check_array("mu", mu, ndim=1)
    if mu.shape != w.shape[-1:]:
        raise ValueError(f"argument `mu` must be a vector of the width of `w`'s rows "
                         f"({w.shape[-1]}); got shape {mu.shape}")
    if not np.linalg.norm(mu) > 0:
        raise ValueError(f"argument `mu` must be a non-zero vector; got {mu.tolist()!r}")
    if active is not None:
        w = w[..., :V.check_int("active", active, minimum=1, maximum=w.shape[-2]), :]
    mu = mu / np.linalg.norm(mu)
    cos = np.abs(w @ mu) / np.maximum(np.linalg.norm(w, axis=-1), 1e-300)
    return cos.mean(axis=-1)


def _net_shapes(params: Any) -> tuple[tuple, tuple]:
    """The shapes of ``params = {"w": (width, d), "a": (width,)}`` (static: works traced)."""
    if not isinstance(params, dict) or "w" not in params or "a" not in params:
        raise TypeError(f"argument `params` must be a dict {{'w': (width, d), 'a': (width,)}}; "
                        f"got {V._describe(params)}")
    w_shape, a_shape = jnp.shape(params["w"]), jnp.shape(params["a"])
    if len(w_shape) != 2 or a_shape != w_shape[:1]:
        raise ValueError(f"argument `params` must hold w of shape (width, d) and a of shape "
                         f"(width,); got {w_shape} and {a_shape}")
    return w_shape, a_shape


def is_linear_on(params: dict, x: np.ndarray, alpha: float, tol: float = 1e-6) -> float:
    """Relative distance of ``f`` on the points ``x`` from the best linear function.

    Returns ``min_v |f(X) - X v| / |f(X)|``: 0 when the net is a linear classifier on the
    data (up to ``tol``-level rounding).
    """
    w_shape, _ = _net_shapes(params)
    x = V.check_array("x", x, ndim=2)
    if x.shape[1] != w_shape[1]:
        raise ValueError(f"argument `x` must have {w_shape[1]} columns (the width of "
                         f"`params['w']`); got shape {x.shape}")
    alpha = V.check_in_range("alpha", alpha, 0.0, 1.0, low_inclusive=False,
                             high_inclusive=False)
    V.check_nonnegative("tol", tol)
    f = np.asarray(leaky_apply(jax.tree.map(np.asarray, params), {"x": x, "alpha": alpha}))
    if not np.linalg.norm(f) > 0:
        raise ValueError("argument `params` must describe a net that is not zero on `x` (the "
                         "distance is relative to |f(X)|)")
    v, *_ = np.linalg.lstsq(x, f, rcond=None)
    return float(np.linalg.norm(f - x @ v) / np.linalg.norm(f))
