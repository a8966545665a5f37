"""flax.nnx models shared across chapters.

:class:`MLP` covers the variants the book needs: with or without biases, the activation
(ReLU, Leaky ReLU, tanh, linear), the initialization scale, and normalization layers
without affine parameters. A bias-free MLP with a positively homogeneous activation and
no normalization is ``L``-homogeneous in its parameters, ``f(c theta; x) = c^L f(theta; x)``
with ``L`` its number of layers; :func:`homogeneity_order` returns ``L`` or explains why
a model is not homogeneous.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from dltheory import validation as V
from dltheory.compat import ModuleList, variance_scaling

__all__ = ["ACTIVATIONS", "NORMALIZATIONS", "MLP", "ConvNet", "ResNet", "Frozen",
           "homogeneity_order", "normalize", "cross_entropy", "accuracy", "param_norm"]

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "linear")
NORMALIZATIONS = (None, "layer", "batch")
_HOMOGENEOUS = ("relu", "leaky_relu", "linear")


def normalize(x: jax.Array, kind: str | None, eps: float = 1e-5) -> jax.Array:
    """Normalize features without affine parameters.

    ``"layer"`` standardizes each example over its features (for images ``(n, h, w, c)``:
    over ``h, w, c``); ``"batch"`` standardizes each feature (each channel) over the batch
    (and the pixels), with batch statistics always and no running averages.
    """
    V.check_choice("kind", kind, NORMALIZATIONS)
    V.check_nonnegative("eps", eps)
    if isinstance(x, (str, bytes)) or jnp.ndim(x) < 1:
        raise ValueError(f"argument `x` must be an array of features with at least one "
                         f"dimension; got {x!r}")
    if kind is None:
        return x
    if kind == "layer":
        axis = tuple(range(1, x.ndim)) if x.ndim > 2 else -1
    else:
        axis = tuple(range(x.ndim - 1)) if x.ndim > 2 else 0
    mean = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                          rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                          precision=None, **kwargs):
    """``jax.lax.conv_general_dilated`` for the convolutions of :class:`ConvNet` and
    :class:`ResNet` (passed to ``nnx.Conv``), the same values and gradients, with the
    gradient of a plain 2-d convolution written as two convolutions in the
    ``NHWC``/``HWIO`` layout.

    The gradient JAX derives for the kernel is a convolution whose batch and feature
    dimensions are swapped. Inside a loop (``lax.scan``, as every training run here is)
    XLA's CPU backend computes that convolution 10 to 30 times slower than the same one
    at the top level of a program; the layout below runs at the top-level speed on the
    CPU, with bit-identical results. Other backends take JAX's own gradient. Grouped or
    dilated convolutions, other layouts and extra arguments go to
    ``lax.conv_general_dilated`` unchanged.
    """
    plain = (jnp.ndim(lhs) == 4 and feature_group_count == 1 and precision is None
             and all(v is None for v in kwargs.values())
             and all(d is None or tuple(d) == (1, 1) for d in (lhs_dilation, rhs_dilation))
             and _is_nhwc(dimension_numbers, jnp.ndim(lhs)))
    if not plain:
        return jax.lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count, precision=precision, **kwargs)
    strides = tuple(int(s) for s in window_strides)
    if isinstance(padding, str):
        padding = jax.lax.padtype_to_pads(jnp.shape(lhs)[1:3], jnp.shape(rhs)[:2], strides,
                                          padding)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _conv2d(lhs, rhs, strides, pads)


def _is_nhwc(dimension_numbers, ndim: int) -> bool:
    if dimension_numbers is None or ndim != 4:
        return False
    dn = jax.lax.conv_dimension_numbers((1,) * ndim, (1,) * ndim, dimension_numbers)
    return dn == jax.lax.conv_dimension_numbers((1,) * ndim, (1,) * ndim, _NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv2d(x, k, strides, pads):
    return jax.lax.conv_general_dilated(x, k, strides, pads, dimension_numbers=_NHWC)


def _conv2d_fwd(x, k, strides, pads):
    # lax's convolution, not _conv2d: the forward pass stays differentiable in forward
    # mode, so jax.jvp of jax.grad (Hessian-vector products) works through it
    return jax.lax.conv_general_dilated(x, k, strides, pads, dimension_numbers=_NHWC), (x, k)


def _conv2d_vjp_jax(x, k, g, strides, pads):
    """JAX's own gradient of the convolution."""
    conv = lambda x, k: jax.lax.conv_general_dilated(x, k, strides, pads,
                                                     dimension_numbers=_NHWC)
    return jax.vjp(conv, x, k)[1](g)


def _conv2d_vjp_nhwc(x, k, g, strides, pads):
    """The same gradient as two ``NHWC``/``HWIO`` convolutions: the kernel's with the
    batch as the contracted feature (input and output gradients transposed), the input's
    with the flipped kernel over the stride-dilated output gradient."""
    (kh, kw), spatial, out = jnp.shape(k)[:2], jnp.shape(x)[1:3], jnp.shape(g)[1:3]
    dk = jax.lax.conv_general_dilated(jnp.transpose(x, (3, 1, 2, 0)),
                                      jnp.transpose(g, (1, 2, 0, 3)), (1, 1), pads,
                                      rhs_dilation=strides, dimension_numbers=_NHWC)
    dk = jnp.transpose(dk[:, :kh, :kw, :], (1, 2, 0, 3))
    dpads = []
    for n, size, s, o, (lo, _) in zip((kh, kw), spatial, strides, out, pads):
        before = n - lo - 1
        dpads.append((before, size + n - 1 - (s * (o - 1) + 1) - before))
    flipped = jnp.transpose(k[::-1, ::-1], (0, 1, 3, 2))
    dx = jax.lax.conv_general_dilated(g, flipped, (1, 1), dpads, lhs_dilation=strides,
                                      dimension_numbers=_NHWC)
    return dx, dk


def _conv2d_bwd(strides, pads, res, g):
    x, k = res
    return jax.lax.platform_dependent(
        x, k, g, cpu=functools.partial(_conv2d_vjp_nhwc, strides=strides, pads=pads),
        default=functools.partial(_conv2d_vjp_jax, strides=strides, pads=pads))


_conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


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
        sizes = _ints("sizes", sizes)
        _check_rngs(rngs)
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
        init = variance_scaling(init_scale ** 2, "fan_in", "normal")
        self.layers = ModuleList([
            nnx.Linear(a, b, use_bias=bias, kernel_init=init, rngs=rngs)
            for a, b in zip(sizes[:-1], sizes[1:])
        ])

    def act(self, z: jax.Array) -> jax.Array:
        return _activate(z, self.activation, self.alpha)

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = self.act(normalize(layer(x), self.normalization, self.norm_eps))
        return self.layers[-1](x)


class Frozen(nnx.Variable):
    """A weight that is part of the model but not trained.

    The engine trains ``nnx.Param`` variables only, so a ``Frozen`` weight keeps its
    initial value (used for the fixed last layer of scale-invariant networks).
    """


def _ints(name: str, values: Any) -> tuple:
    """``values`` as a tuple (its entries are checked by the caller)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"argument `{name}` must be a sequence of integers; got {values!r}")
    return tuple(values)


def _check_rngs(rngs: Any) -> None:
    if not isinstance(rngs, nnx.Rngs):
        raise TypeError(f"argument `rngs` must be a flax.nnx.Rngs (e.g. nnx.Rngs(0)); got "
                        f"{rngs!r}")


def _activate(z: jax.Array, activation: str, alpha: float) -> jax.Array:
    if activation == "relu":
        return jax.nn.relu(z)
    if activation == "leaky_relu":
        return jnp.maximum(z, alpha * z)
    if activation == "tanh":
        return jnp.tanh(z)
    return z


def _freeze(layer: nnx.Module) -> None:
    """Turn every ``nnx.Param`` of ``layer`` into a :class:`Frozen` variable."""
    for name in ("kernel", "bias"):
        value = getattr(layer, name, None)
        if isinstance(value, nnx.Param):
            setattr(layer, name, Frozen(value[...]))


class ConvNet(nnx.Module):
    """A small convolutional network for ``(n, h, w, c)`` images.

    Each stage is a 3x3 convolution, the activation and a 2x2 max pooling; global
    average pooling and a linear layer give the logits. Without biases and with a
    positively homogeneous activation, the network is ``L``-homogeneous in its
    parameters with ``L = len(channels) + 1`` (max and average pooling are positively
    homogeneous of degree 1), the setting of Lyu and Li (2020).

    Args:
      rngs: ``nnx.Rngs`` for the initialization.
      in_channels: channels of the input images (3 for CIFAR-10).
      channels: output channels of the convolutional stages.
      num_classes: number of logits.
      activation: ``"relu"``, ``"leaky_relu"``, ``"tanh"`` or ``"linear"``.
      alpha: negative slope of the Leaky ReLU, in [0, 1).
      bias: whether convolutions and the last layer have biases.
      init_scale: multiplies the default (He normal for ReLU) initial weights.

    References:
      Lyu, Li (2020), Gradient Descent Maximizes the Margin of Homogeneous Neural
      Networks, ICLR, arXiv:1906.05890 (Section 2: homogeneous networks).
    """

    def __init__(self, *, rngs: nnx.Rngs, in_channels: int = 3,
                 channels: Sequence[int] = (32, 64), num_classes: int = 10,
                 activation: str = "relu", alpha: float = 0.1, bias: bool = False,
                 init_scale: float = 1.0):
        _check_rngs(rngs)
        V.check_int("in_channels", in_channels, minimum=1)
        channels = _ints("channels", channels)
        if not channels:
            raise ValueError("argument `channels` needs at least one stage; got ()")
        for c in channels:
            V.check_int("channels[i]", c, minimum=1)
        V.check_int("num_classes", num_classes, minimum=1)
        V.check_choice("activation", activation, ACTIVATIONS)
        V.check_in_range("alpha", alpha, 0.0, 1.0, high_inclusive=False)
        V.check_positive("init_scale", init_scale)
        self.channels = channels
        self.activation = activation
        self.alpha = float(alpha)
        self.bias = bool(bias)
        self.normalization = None
        init = variance_scaling(2.0 * init_scale ** 2, "fan_in", "normal")
        widths = (in_channels,) + channels
        self.convs = ModuleList([
            nnx.Conv(a, b, kernel_size=(3, 3), use_bias=bias, kernel_init=init, rngs=rngs,
                     conv_general_dilated=_conv_general_dilated)
            for a, b in zip(widths[:-1], widths[1:])
        ])
        head_init = variance_scaling(init_scale ** 2, "fan_in", "normal")
        self.head = nnx.Linear(channels[-1], num_classes, use_bias=bias,
                               kernel_init=head_init, rngs=rngs)

    @property
    def num_layers(self) -> int:
        return len(self.convs) + 1

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"ConvNet expects images of shape (n, h, w, c); got {x.shape}")
        for conv in self.convs:
            x = _activate(conv(x), self.activation, self.alpha)
            if x.shape[1] >= 2 and x.shape[2] >= 2:
                x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))
        return self.head(x.mean(axis=(1, 2)))


class _ResBlock(nnx.Module):
    """conv-norm-act-conv-norm plus the shortcut, then the activation (post-activation)."""

    def __init__(self, c_in: int, c_out: int, stride: int, *, rngs: nnx.Rngs, bias: bool,
                 init: Any):
        self.conv1 = nnx.Conv(c_in, c_out, (3, 3), strides=(stride, stride), use_bias=bias,
                              kernel_init=init, rngs=rngs,
                              conv_general_dilated=_conv_general_dilated)
        self.conv2 = nnx.Conv(c_out, c_out, (3, 3), use_bias=bias, kernel_init=init,
                              rngs=rngs, conv_general_dilated=_conv_general_dilated)
        self.project = stride != 1 or c_in != c_out
        if self.project:
            self.shortcut = nnx.Conv(c_in, c_out, (1, 1), strides=(stride, stride),
                                     use_bias=bias, kernel_init=init, rngs=rngs,
                                     conv_general_dilated=_conv_general_dilated)

    def __call__(self, x: jax.Array, norm: Any) -> jax.Array:
        h = jax.nn.relu(norm(self.conv1(x)))
        h = norm(self.conv2(h))
        s = norm(self.shortcut(x)) if self.project else x
        return jax.nn.relu(h + s)


class ResNet(nnx.Module):
    """A CIFAR-style residual network (He et al. 2016) for ``(n, 32, 32, 3)`` images.

    A 3x3 stem convolution, then ``len(stage_sizes)`` stages of residual blocks whose
    widths double (``width, 2 width, ...``) while the resolution halves, global average
    pooling and a linear head. ``stage_sizes=(3, 3, 3)`` is ResNet-20 and ``(5, 5, 5)``
    ResNet-32. Every convolution (shortcuts included) is followed by an affine-free
    normalization, so with ``normalization`` set the loss is invariant to scaling any one
    convolution's weights; with ``train_last_layer=False`` the head is :class:`Frozen`,
    the setting of the scale-invariance papers (Arora, Li, Lyu 2019; Li, Arora 2020).

    Args:
      rngs: ``nnx.Rngs`` for the initialization.
      stage_sizes: number of residual blocks per stage.
      width: channels of the first stage.
      num_classes: number of logits.
      normalization: ``"batch"``, ``"layer"`` or ``None`` (no normalization).
      bias: whether convolutions have biases (a bias before a normalization is redundant).
      init_scale: multiplies the default (He normal) initial weights.
      train_last_layer: train the linear head (``False`` freezes it at initialization).
      norm_eps: the ``eps`` of the normalization.

    References:
      He, Zhang, Ren, Sun (2016), Deep Residual Learning for Image Recognition, CVPR
      (Section 4.2, the CIFAR-10 networks); Li, Arora (2020), An Exponential Learning
      Rate Schedule for Deep Learning, ICLR, arXiv:1910.07454 (fixed last layer).
    """

    def __init__(self, *, rngs: nnx.Rngs, stage_sizes: Sequence[int] = (3, 3, 3),
                 width: int = 16, num_classes: int = 10, normalization: str | None = "batch",
                 bias: bool = False, init_scale: float = 1.0, train_last_layer: bool = True,
                 norm_eps: float = 1e-5, in_channels: int = 3):
        _check_rngs(rngs)
        stage_sizes = _ints("stage_sizes", stage_sizes)
        if not stage_sizes:
            raise ValueError("argument `stage_sizes` needs at least one stage; got ()")
        for n in stage_sizes:
            V.check_int("stage_sizes[i]", n, minimum=1)
        V.check_int("width", width, minimum=1)
        V.check_int("num_classes", num_classes, minimum=1)
        V.check_int("in_channels", in_channels, minimum=1)
        V.check_choice("normalization", normalization, NORMALIZATIONS)
        V.check_positive("init_scale", init_scale)
        V.check_nonnegative("norm_eps", norm_eps)
        self.stage_sizes = stage_sizes
        self.normalization = normalization
        self.norm_eps = float(norm_eps)
        self.bias = bool(bias)
        self.train_last_layer = bool(train_last_layer)
        init = variance_scaling(2.0 * init_scale ** 2, "fan_in", "normal")
        self.stem = nnx.Conv(in_channels, width, (3, 3), use_bias=bias, kernel_init=init,
                             rngs=rngs, conv_general_dilated=_conv_general_dilated)
        blocks = []
        c_in = width
        for i, n in enumerate(stage_sizes):
            c_out = width * 2 ** i
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(_ResBlock(c_in, c_out, stride, rngs=rngs, bias=bias, init=init))
                c_in = c_out
        self.blocks = ModuleList(blocks)
        head_init = variance_scaling(init_scale ** 2, "fan_in", "normal")
        self.head = nnx.Linear(c_in, num_classes, use_bias=self.train_last_layer,
                               kernel_init=head_init, rngs=rngs)
        if not train_last_layer:
            _freeze(self.head)

    def _norm(self, x: jax.Array) -> jax.Array:
        return normalize(x, self.normalization, self.norm_eps)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"ResNet expects images of shape (n, h, w, c); got {x.shape}")
        x = jax.nn.relu(self._norm(self.stem(x)))
        for block in self.blocks:
            x = block(x, self._norm)
        return self.head(x.mean(axis=(1, 2)))


def homogeneity_order(model: MLP | ConvNet) -> int:
    """The order ``L`` with ``f(c theta) = c^L f(theta)`` for all ``c > 0``.

    Accepts an :class:`MLP` or a :class:`ConvNet` (a :class:`ResNet` is never
    homogeneous: its skip connections add terms of different orders).

    Raises:
      ValueError: if the model has biases, a normalization layer (which makes it
        scale invariant, order 0, in the normalized layers instead), or an activation
        that is not positively homogeneous.
    """
    if not isinstance(model, (MLP, ConvNet)):
        extra = (" (a ResNet's skip connections make it non-homogeneous)"
                 if isinstance(model, ResNet) else "")
        raise TypeError(f"argument `model` must be a dltheory.models.MLP or ConvNet; "
                        f"got {type(model).__name__}{extra}")
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
    return model.num_layers if isinstance(model, ConvNet) else len(model.layers)


def _check_logits_labels(logits: Any, labels: Any) -> None:
    """``logits`` of shape ``(n, C)`` and integer ``labels`` of shape ``(n,)`` (static
    shapes and dtypes only, so this works under ``jit``)."""
    if not hasattr(logits, "shape") or jnp.ndim(logits) != 2:
        raise ValueError(f"argument `logits` must be an array of shape (n, classes); got "
                         f"{getattr(logits, 'shape', logits)!r}")
    if not hasattr(labels, "shape") or jnp.shape(labels) != jnp.shape(logits)[:1]:
        raise ValueError(f"argument `labels` must have shape ({jnp.shape(logits)[0]},), one "
                         f"label per row of `logits`; got {getattr(labels, 'shape', labels)!r}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"argument `labels` must hold integer class indices; got dtype "
                        f"{labels.dtype}")


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of integer ``labels`` under ``logits``."""
    _check_logits_labels(logits, labels)
    logp = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(logp, labels[:, None], axis=1).mean()


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of examples whose largest logit is the label."""
    _check_logits_labels(logits, labels)
    return (logits.argmax(-1) == labels).mean()


def param_norm(params: Any) -> jax.Array:
    """Euclidean norm of all parameters (a pytree or an nnx module's ``nnx.Param`` state)."""
    if isinstance(params, nnx.Module):
        params = nnx.state(params, nnx.Param)
    for leaf in jax.tree.leaves(params):
        try:
            ok = not isinstance(leaf, (str, bytes)) and jnp.issubdtype(jnp.result_type(leaf),
                                                                        jnp.number)
        except TypeError:
            ok = False
        if not ok:
            raise TypeError(f"argument `params` must be a pytree of numeric arrays; it holds "
                            f"{leaf!r}")
    return jnp.sqrt(sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params)))
