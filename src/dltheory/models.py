"""flax.nnx models shared across chapters.

:class:`MLP` covers the variants the book needs: with or without biases, the activation
(ReLU, Leaky ReLU, tanh, linear), the initialization scale, and normalization layers
without affine parameters. A bias-free MLP with a positively homogeneous activation and
no normalization is ``L``-homogeneous in its parameters, ``f(c theta; x) = c^L f(theta; x)``
with ``L`` its number of layers; :func:`homogeneity_order` returns ``L`` or explains why
a model is not homogeneous.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from dltheory import validation as V

__all__ = ["ACTIVATIONS", "NORMALIZATIONS", "MLP", "homogeneity_order", "normalize",
           "cross_entropy", "accuracy", "param_norm"]

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "linear")
NORMALIZATIONS = (None, "layer", "batch")
_HOMOGENEOUS = ("relu", "leaky_relu", "linear")
# flax >= 0.12 wants lists of submodules wrapped in nnx.List; older nnx took plain lists
# (Colab may ship an older flax than the lock file).
_ModuleList = getattr(nnx, "List", list)


def normalize(x: jax.Array, kind: str | None, eps: float = 1e-5) -> jax.Array:
    """Normalize features without affine parameters.

    ``"layer"`` standardizes each example over its features; ``"batch"`` standardizes
    each feature over the batch (batch statistics always, no running averages).
    """
    if kind is None:
        return x
    axis = -1 if kind == "layer" else 0
    mean = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


class MLP(nnx.Module):
    """A multilayer perceptron ``sizes[0] -> ... -> sizes[-1]``.

    Args:
      sizes: layer widths including input and output, e.g. ``(64, 128, 10)``.
      rngs: ``nnx.Rngs`` for the initialization.
      activation: one of ``"relu"``, ``"leaky_relu"``, ``"tanh"``, ``"linear"``.
      alpha: the negative slope of the Leaky ReLU, in [0, 1).
      bias: whether the layers have biases (biases start at zero).
      init_scale: multiplies the default (LeCun normal) initial weights.
      normalization: ``None``, ``"layer"`` or ``"batch"``: parameter-free normalization
        after every hidden linear layer, before the activation.
      norm_eps: the ``eps`` added to the variance in the normalization. Scale invariance
        is exact only as ``eps -> 0``; make it tiny when a chapter needs it exactly.

    Example::

        model = MLP((64, 128, 10), rngs=nnx.Rngs(0))
        logits = model(x)   # (batch, 10)
    """

    def __init__(self, sizes: Sequence[int], *, rngs: nnx.Rngs, activation: str = "relu",
                 alpha: float = 0.1, bias: bool = True, init_scale: float = 1.0,
                 normalization: str | None = None, norm_eps: float = 1e-5):
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ValueError(f"argument `sizes` needs at least an input and an output width; "
                             f"got {sizes!r}")
        for s in sizes:
            V.check_int("sizes[i]", s, minimum=1)
        V.check_choice("activation", activation, ACTIVATIONS)
        V.check_in_range("alpha", alpha, 0.0, 1.0, high_inclusive=False)
        V.check_positive("init_scale", init_scale)
        V.check_choice("normalization", normalization, NORMALIZATIONS)
        V.check_nonnegative("norm_eps", norm_eps)
        self.sizes = sizes
        self.activation = activation
        self.alpha = float(alpha)
        self.bias = bool(bias)
        self.init_scale = float(init_scale)
        self.normalization = normalization
        self.norm_eps = float(norm_eps)
        init = nnx.initializers.variance_scaling(init_scale ** 2, "fan_in", "normal")
        self.layers = _ModuleList([
            nnx.Linear(a, b, use_bias=bias, kernel_init=init, rngs=rngs)
            for a, b in zip(sizes[:-1], sizes[1:])
        ])

    def act(self, z: jax.Array) -> jax.Array:
        if self.activation == "relu":
            return jax.nn.relu(z)
        if self.activation == "leaky_relu":
            return jnp.maximum(z, self.alpha * z)
        if self.activation == "tanh":
            return jnp.tanh(z)
        return z

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = self.act(normalize(layer(x), self.normalization, self.norm_eps))
        return self.layers[-1](x)


def homogeneity_order(model: MLP) -> int:
    """The order ``L`` with ``f(c theta) = c^L f(theta)`` for all ``c > 0``.

    Raises:
      ValueError: if the model has biases, a normalization layer (which makes it
        scale invariant, order 0, in the normalized layers instead), or an activation
        that is not positively homogeneous.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"argument `model` must be a dltheory.models.MLP; "
                        f"got {type(model).__name__}")
    reasons = []
    if model.bias:
        reasons.append("it has biases (use bias=False)")
    if model.normalization is not None:
        reasons.append(f"it has {model.normalization} normalization")
    if model.activation not in _HOMOGENEOUS:
        reasons.append(f"activation {model.activation!r} is not positively homogeneous "
                       f"(use one of {', '.join(_HOMOGENEOUS)})")
    if reasons:
        raise ValueError("argument `model` is not homogeneous: " + "; ".join(reasons))
    return len(model.layers)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of integer ``labels`` under ``logits``."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(logp, labels[:, None], axis=1).mean()


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of examples whose largest logit is the label."""
    return (logits.argmax(-1) == labels).mean()


def param_norm(params: Any) -> jax.Array:
    """Euclidean norm of all parameters (a pytree or an nnx module's ``nnx.Param`` state)."""
    if isinstance(params, nnx.Module):
        params = nnx.state(params, nnx.Param)
    return jnp.sqrt(sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params)))
