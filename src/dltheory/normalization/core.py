"""Scale-invariant networks and the quantities the theory is about.

A loss is *scale invariant* in a group of weights ``w`` when ``L(c w) = L(w)`` for every
``c > 0``. Normalization without affine parameters after a linear layer makes that
layer's weight matrix such a group. Differentiating the identity gives the two facts the
whole Part rests on (Arora, Li, Lyu 2019):

* ``<grad L(w), w> = 0``: the gradient is orthogonal to the weights;
* ``grad L(c w) = grad L(w) / c``: the gradient shrinks as the weights grow.

So a gradient step never shrinks ``|w|`` (Pythagoras), and what matters for the function
is the direction ``w / |w|``, which moves by about ``eta |grad L(w)| / |w| = (eta / |w|^2)
|grad L(w / |w|)|``: the *effective learning rate* is ``eta / |w|^2``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dltheory.compat import ModuleList, x64_enabled
from dltheory import validation as V
from dltheory.models import NORMALIZATIONS, Frozen, normalize
from dltheory._jit import jit, random_normal

__all__ = [
    "EquilibriumPrediction",
    "Fixed",
    "ScaleInvariantMLP",
    "angular_update",
    "check_lr_wd",
    "check_scale_invariance",
    "effective_lr",
    "equilibrium_norm_prediction",
    "exp_lr_momentum_root",
    "exponential_lr_schedule",
    "group_sq_norms",
    "groups",
    "intrinsic_lr",
    "scale_invariant_mlp",
    "sgd_exponential_lr",
    "sgd_wd",
]

_HIDDEN_NORMALIZATIONS = tuple(n for n in NORMALIZATIONS if n)

#: The fixed (untrained) last layer: the shared ``dltheory.models.Frozen`` variable.
Fixed = Frozen


class ScaleInvariantMLP(nnx.Module):
    """``x -> relu(N(x W_1)) -> ... -> relu(N(h W_k)) -> h V`` with ``V`` fixed.

    ``N`` is layer (or batch) normalization without affine parameters and the layers have
    no biases, so the loss is invariant to rescaling each trainable matrix ``W_i`` by its
    own factor ``c_i > 0`` (exactly when ``norm_eps = 0``). The output matrix ``V`` is a
    :class:`Fixed` variable: the engine, which trains ``nnx.Param`` only, leaves it alone.

    Build it with :func:`scale_invariant_mlp`.
    """

    def __init__(self, sizes: Sequence[int], *, rngs: nnx.Rngs, normalization: str = "layer",
                 norm_eps: float = 0.0, init_scale: float = 1.0, head_scale: float = 1.0,
                 dtype: Any = jnp.float32):
        sizes = _check_sizes(sizes, normalization)
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"argument `rngs` must be a flax.nnx.Rngs (e.g. nnx.Rngs(0)); got "
                            f"{rngs!r} of type {type(rngs).__name__}")
        norm_eps = V.check_nonnegative("norm_eps", norm_eps)
        init_scale = V.check_positive("init_scale", init_scale)
        head_scale = V.check_positive("head_scale", head_scale)
        dtype = _check_float_dtype(dtype)
        self.sizes = sizes
        self.normalization = normalization
        self.norm_eps = float(norm_eps)
        kernels = []
        for a, b in zip(self.sizes[:-2], self.sizes[1:-1]):
            w = random_normal(rngs.params(), (a, b), dtype) * (init_scale / math.sqrt(a))
            kernels.append(nnx.Param(w))
        self.kernels = ModuleList(kernels)
        a, b = self.sizes[-2], self.sizes[-1]
        self.head = Fixed(random_normal(rngs.params(), (a, b), dtype)
                          * (head_scale / math.sqrt(a)))

    def features(self, x: jax.Array) -> jax.Array:
        for w in self.kernels:
            x = jax.nn.relu(normalize(x @ w[...], self.normalization, self.norm_eps))
        return x

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.features(x) @ self.head[...]


def scale_invariant_mlp(sizes: Sequence[int] = (64, 128, 128, 10), *, seed: int = 0,
                        normalization: str = "layer", norm_eps: float = 0.0,
                        init_scale: float = 1.0, head_scale: float = 1.0,
                        dtype: Any = None) -> ScaleInvariantMLP:
    """A bias-free MLP with affine-free normalization and a fixed last layer.

    Args:
      sizes: widths ``(d_in, h_1, ..., h_k, n_classes)``, at least one hidden layer.
      seed: initialization seed.
      normalization: ``"layer"`` (per example, over features) or ``"batch"`` (per
        feature, over the batch; batch statistics always).
      norm_eps: the ``eps`` in ``(z - mean) / sqrt(var + eps)``. The loss is exactly
        scale invariant only for ``eps = 0`` (the default); with ``eps > 0`` invariance
        fails at weights so small that ``var`` is comparable to ``eps``.
      init_scale: multiplies every trainable matrix (LeCun normal at 1): the initial norm.
      head_scale: multiplies the fixed output matrix (it sets how confident the network
        can become, and so the floor of the cross-entropy).
      dtype: parameter dtype; default float64 when x64 is enabled, else float32.

    Returns:
      A :class:`ScaleInvariantMLP`; its trainable groups are the hidden matrices.

    References:
      Li, Lyu, Arora (2020), arXiv:2010.02916; Li, Arora (2020), arXiv:1910.07454
      (normalized nets with the last layer fixed, so every trained weight is scale
      invariant).
    """
    sizes = _check_sizes(sizes, normalization)
    V.check_nonnegative("norm_eps", norm_eps)
    V.check_positive("init_scale", init_scale)
    V.check_positive("head_scale", head_scale)
    seed = V.check_seed("seed", seed)
    if dtype is None:
        dtype = jnp.float64 if x64_enabled() else jnp.float32
    dtype = _check_float_dtype(dtype)
    return ScaleInvariantMLP(sizes, rngs=nnx.Rngs(seed), normalization=normalization,
                             norm_eps=norm_eps, init_scale=init_scale, head_scale=head_scale,
                             dtype=dtype)


def _check_sizes(sizes: Any, normalization: Any) -> tuple[int, ...]:
    """``sizes`` as a tuple of widths (input, hidden..., output) for ``normalization``."""
    V.check_choice("normalization", normalization, _HIDDEN_NORMALIZATIONS)
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise TypeError(f"argument `sizes` must be a sequence of integer widths (input, "
                        f"hidden..., output), e.g. (64, 128, 128, 10); got {sizes!r}")
    sizes = tuple(sizes)
    if len(sizes) < 3:
        raise ValueError(f"argument `sizes` needs an input, at least one hidden and an output "
                         f"width; got {sizes!r}")
    for s in sizes:
        V.check_int("sizes[i]", s, minimum=1)
    if min(sizes[1:-1]) < 2 and normalization == "layer":
        raise ValueError(f"argument `sizes`: layer normalization needs hidden widths >= 2; "
                         f"got {sizes!r}")
    return tuple(int(s) for s in sizes)


def _check_float_dtype(dtype: Any) -> Any:
    """``dtype`` as a floating-point numpy dtype (float32 or float64)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise TypeError(f"argument `dtype` must be a floating-point dtype such as "
                        f"jnp.float32 or jnp.float64; got {dtype!r}")
    return dt.type


def _hyper(name: str, value: Any, *, low: float | None = None, low_open: bool = False,
           high: float | None = None, high_open: bool = False,
           integer: bool = False) -> Any:
    """Check a hyperparameter of an optax factory when its value is known.

    Under ``jit``/``vmap`` (a sweep injects its hyperparameters as traced values) the value
    is passed through unchecked: the sweep's values were checked where they were given.
    A concrete value (a number or an array of numbers) must be finite and lie in the
    interval; ``integer`` asks for whole numbers.
    """
    if isinstance(value, jax.core.Tracer):
        return value
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise TypeError(f"argument `{name}` must be a number; got {value!r} of type "
                        f"{type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"argument `{name}` must be a number; got {value!r} of type "
                        f"{type(value).__name__}") from None
    if arr.dtype.kind not in "iuf" or arr.ndim > 1:
        raise TypeError(f"argument `{name}` must be a number; got {value!r} of type "
                        f"{type(value).__name__}")
    x = arr.astype(np.float64)
    if integer and not (arr.dtype.kind in "iu" or np.all(np.isfinite(x) & (x == np.round(x)))):
        raise ValueError(f"argument `{name}` must be an integer; got {value!r}")
    what = "an integer" if integer else "a finite number"
    if not np.all(np.isfinite(x)):
        raise ValueError(f"argument `{name}` must be {what}; got {value!r}")
    if low is not None and not np.all(x > low if low_open else x >= low):
        raise ValueError(f"argument `{name}` must be {what} {'>' if low_open else '>='} "
                         f"{low:g}; got {value!r}")
    if high is not None and not np.all(x < high if high_open else x <= high):
        raise ValueError(f"argument `{name}` must be {what} {'<' if high_open else '<='} "
                         f"{high:g}; got {value!r}")
    return value


def _check_tree(name: str, params: Any) -> list[jax.Array]:
    """The array leaves of ``params`` (an nnx module or a pytree of arrays), at least one."""
    if isinstance(params, nnx.Module):
        params = nnx.state(params, nnx.Param)
    if isinstance(params, (str, bytes)) or params is None:
        raise TypeError(f"argument `{name}` must be an nnx module or a pytree of arrays; got "
                        f"{params!r}")
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError(f"argument `{name}` must hold at least one weight array (an nnx "
                         f"module with nnx.Param weights or a non-empty pytree); got {params!r}")
    for leaf in leaves:
        if not isinstance(leaf, (jax.Array, np.ndarray)) or \
                not jnp.issubdtype(leaf.dtype, jnp.inexact):
            raise TypeError(f"argument `{name}` must be an nnx module or a pytree of "
                            f"floating-point arrays; got a leaf {leaf!r} of type "
                            f"{type(leaf).__name__}")
    return [jnp.asarray(x) for x in leaves]


# --------------------------------------------------------------------------------------
# Groups, norms, invariance
# --------------------------------------------------------------------------------------


def groups(params: Any) -> list[jax.Array]:
    """The scale-invariant groups: one array per trainable weight matrix.

    ``params`` is an nnx module (its ``nnx.Param`` state is used) or a parameter pytree.

    Raises:
      TypeError, ValueError: unless ``params`` holds at least one floating-point array.
    """
    return _check_tree("params", params)


def group_sq_norms(params: Any) -> jax.Array:
    """``|w_g|^2`` per group, shape ``(n_groups,)`` (works under ``jit`` and ``vmap``)."""
    return jnp.stack([jnp.sum(jnp.square(w)) for w in _check_tree("params", params)])


def check_scale_invariance(loss_fn: Callable[[nnx.Module, Any], jax.Array], model: nnx.Module,
                           batch: Any, *, scales: Sequence[float] = (0.1, 0.5, 3.0, 20.0),
                           rtol: float = 1e-4, atol: float = 1e-6) -> float:
    """Verify ``L(c w) = L(w)`` for each trainable group separately and for all together.

    For every scale ``c`` in ``scales`` and every group ``g`` the loss is evaluated with
    ``w_g`` replaced by ``c w_g`` (the other groups unchanged), and once with every group
    scaled by ``c``.

    Args:
      loss_fn: ``loss_fn(model, batch) -> scalar``.
      model: an nnx module; its ``nnx.Param`` leaves are the groups.
      batch: the data the loss is evaluated on.
      scales: positive factors to try.
      rtol, atol: allowed deviation ``|L(c w) - L(w)| <= atol + rtol |L(w)|``
        (float32 rounding needs about 1e-5; float64 passes 1e-10).

    Returns:
      The largest deviation ``|L(c w) - L(w)|`` found.

    Raises:
      ValueError: naming the group and the scale if the loss is not invariant (a bias,
        an affine normalization, a trained last layer, or ``eps`` too large all do it).

    References:
      Arora, Li, Lyu (2019), arXiv:1812.03981 (definition of scale invariance).
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"argument `model` must be a flax.nnx module; got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"argument `loss_fn` must be callable; got {loss_fn!r}")
    scales = [float(c) for c in V.check_array("scales", scales, ndim=1, positive=True)]
    V.check_nonnegative("rtol", rtol)
    V.check_nonnegative("atol", atol)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    leaves, treedef = jax.tree.flatten(params)
    n = len(leaves)
    if n == 0:
        raise ValueError("argument `model` has no trainable (nnx.Param) weights")

    @jit
    def losses(factors):  # (n_trials, n) -> (n_trials,): one compiled call for all trials
        def one(f):
            p = jax.tree.unflatten(treedef, [w * f[i].astype(w.dtype)
                                             for i, w in enumerate(leaves)])
            return loss_fn(nnx.merge(graphdef, p, rest), batch)
        return jax.vmap(one)(factors)

    trials, names = [], []
    for c in scales:
        for g in range(n):
            trials.append([c if i == g else 1.0 for i in range(n)])
            names.append((f"group {g}", c))
        trials.append([c] * n)
        names.append(("all groups", c))
    values = np.asarray(losses(jnp.asarray([[1.0] * n] + trials)), np.float64)
    base, values = float(values[0]), values[1:]
    worst = 0.0
    for (what, c), value in zip(names, values):
        dev = abs(float(value) - base)
        worst = max(worst, dev)
        if not dev <= atol + rtol * abs(base):
            raise ValueError(
                f"the loss is not scale invariant: scaling {what} by c = {c:g} changes "
                f"it from {base:.10g} to {value:.10g} (|difference| {dev:.3g} > "
                f"atol + rtol |L| = {atol + rtol * abs(base):.3g}). Scale invariance "
                "needs every trained weight followed by a normalization without affine "
                "parameters, no biases, a fixed last layer and eps -> 0.")
    return worst


# --------------------------------------------------------------------------------------
# Learning rates: effective, angular, intrinsic, exponential
# --------------------------------------------------------------------------------------


def effective_lr(eta: Any, params: Any) -> jax.Array:
    """``eta / |w_g|^2`` per scale-invariant group, shape ``(n_groups,)``.

    On a scale-invariant group a step of learning rate ``eta`` at ``w`` moves the
    direction ``w / |w|`` exactly as a step of ``eta / |w|^2`` at the unit vector would.

    Args:
      eta: the learning rate (scalar).
      params: an nnx module or a parameter pytree (its leaves are the groups).

    Raises:
      ValueError, TypeError: unless ``eta`` is a finite number > 0 and ``params`` holds
        floating-point arrays.

    References:
      Arora, Li, Lyu (2019), arXiv:1812.03981; Li, Lyu, Arora (2020),
      arXiv:2010.02916 ("effective learning rate").
    """
    eta = _hyper("eta", eta, low=0.0, low_open=True)
    return jnp.asarray(eta) / group_sq_norms(params)


def angular_update(before: Any, after: Any) -> jax.Array:
    """The angle (radians) each group turned by between two parameter sets.

    ``angle(w, w') = 2 arcsin(|w/|w| - w'/|w'|| / 2)``, stable for tiny angles.

    Returns:
      Shape ``(n_groups,)``.

    References:
      Li, Lyu, Arora (2020), arXiv:2010.02916 (angular update at equilibrium); the value
      ``sqrt(2 eta lambda)`` is :func:`equilibrium_norm_prediction`.
    """
    a, b = _check_tree("before", before), _check_tree("after", after)
    sa = jax.tree.structure(nnx.state(before, nnx.Param) if isinstance(before, nnx.Module)
                            else before)
    sb = jax.tree.structure(nnx.state(after, nnx.Param) if isinstance(after, nnx.Module)
                            else after)
    if sa != sb or len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        raise ValueError(f"arguments `before` and `after` must have the same groups and "
                         f"shapes; got {[tuple(x.shape) for x in a]} and "
                         f"{[tuple(y.shape) for y in b]} (tree structures {sa} and {sb})")
    for name, ws in (("before", a), ("after", b)):
        for w in ws:
            if not isinstance(w, jax.core.Tracer) and not bool(jnp.any(w != 0)):
                raise ValueError(f"argument `{name}` must have non-zero groups (the angle of "
                                 f"a zero vector is undefined); got a group of shape "
                                 f"{tuple(w.shape)} that is all zeros")
    out = []
    for x, y in zip(a, b):
        d = x / jnp.linalg.norm(x) - y / jnp.linalg.norm(y)
        out.append(2 * jnp.arcsin(jnp.minimum(jnp.linalg.norm(d) / 2, 1.0)))
    return jnp.stack(out)


def check_lr_wd(eta: Any, wd: Any, *, allow_zero_wd: bool = False) -> tuple[float, float]:
    """Validate a learning rate and a weight decay: positive, finite, ``eta * wd < 1``.

    Returns:
      ``(eta, wd)`` as floats.
    """
    eta = V.check_positive("eta", eta)
    wd = V.check_nonnegative("wd", wd) if allow_zero_wd else V.check_positive("wd", wd)
    if not eta * wd < 1:
        raise ValueError(f"arguments `eta` and `wd` must satisfy eta * wd < 1 (else weight "
                         f"decay flips or zeroes the weights); got eta = {eta:g}, wd = {wd:g}, "
                         f"eta * wd = {eta * wd:g}")
    return eta, wd


def intrinsic_lr(eta: Any, wd: Any) -> float:
    """The intrinsic learning rate ``lambda_e = eta * lambda`` of SGD with weight decay.

    For a scale-invariant loss the equilibrium (norm, effective learning rate, angular
    update, the distribution the network samples from) depends on ``eta`` and the weight
    decay ``lambda`` only through their product.

    Raises:
      ValueError: unless ``eta > 0``, ``wd > 0`` and ``eta * wd < 1``.

    References:
      Li, Lyu, Arora (2020), arXiv:2010.02916 (the intrinsic LR, defined in the
      introduction, and the SDE analysis it governs).
    """
    eta, wd = check_lr_wd(eta, wd)
    return eta * wd


def exp_lr_momentum_root(eta: float, wd: float, momentum: float = 0.0) -> float:
    """The root ``alpha`` of ``x^2 - (1 + gamma - eta lambda) x + gamma = 0``.

    The larger root (it equals ``1 - eta lambda`` when ``gamma = 0``, and lies in
    ``(0, 1)``). Requires the discriminant to be non-negative, ``(1 + gamma - eta
    lambda)^2 >= 4 gamma``, which holds for the small ``eta lambda`` used in practice.

    References:
      Li, Arora (2020), arXiv:1910.07454 (the main theorem: weight decay and
      momentum are equivalent to an exponentially growing learning rate).
    """
    eta, wd = check_lr_wd(eta, wd)
    gamma = V.check_in_range("momentum", momentum, 0.0, 1.0, high_inclusive=False)
    b = 1 + gamma - eta * wd
    disc = b * b - 4 * gamma
    if disc < 0:
        raise ValueError(f"no real root: (1 + momentum - eta wd)^2 < 4 momentum for eta = "
                         f"{eta:g}, wd = {wd:g}, momentum = {gamma:g}; lower eta * wd")
    return (b + math.sqrt(disc)) / 2


def exponential_lr_schedule(eta: float, wd: float, momentum: float = 0.0
                            ) -> Callable[[Any], jax.Array]:
    """The learning rate schedule without weight decay that reproduces weight decay.

    ``eta_t = eta * alpha^(-2t - 1)`` with ``alpha = 1 - eta lambda`` (no momentum) or
    the root :func:`exp_lr_momentum_root` (heavy-ball momentum ``gamma``). On a
    scale-invariant loss, SGD without weight decay under this schedule produces
    ``w~_t = alpha^(-t) w_t``, where ``w_t`` are the iterates of SGD with learning rate
    ``eta`` and weight decay ``lambda`` on the same batches: the same direction, so the
    same network function, at every step. (With momentum, the exponential run's
    momentum buffer must start at ``(alpha - 1) / (eta alpha) * w_0`` instead of zero;
    see :func:`sgd_exponential_lr`.)

    Returns:
      ``schedule(t)``, usable as an optax schedule (``t`` the step count).

    References:
      Li, Arora (2020), arXiv:1910.07454 (the main theorem on the exponential
      learning rate, and its warm-up case without momentum).
    """
    alpha = exp_lr_momentum_root(eta, wd, momentum)
    log_alpha = math.log(alpha)

    def schedule(t):
        t = jnp.asarray(t)
        return eta * jnp.exp(-(2 * t + 1) * log_alpha)

    return schedule


class SgdState(NamedTuple):
    count: jax.Array
    trace: Any


def sgd_wd(learning_rate: Any, weight_decay: Any, momentum: Any = 0.0,
           phase_factor: Any = 1.0, phase_steps: Any = 0) -> optax.GradientTransformation:
    """SGD with (coupled, L2) weight decay and heavy-ball momentum, as in PyTorch.

    ``m_t = gamma m_{t-1} + grad L(w_t) + lambda w_t``, ``w_{t+1} = w_t - eta m_t``.
    For the first ``phase_steps`` steps the learning rate is multiplied by
    ``phase_factor`` and the weight decay divided by it: a schedule whose intrinsic
    learning rate ``eta * lambda`` never changes. Every argument is numeric, so all of
    them can be swept by :func:`dltheory.training.sweep`.

    Args:
      learning_rate: ``eta > 0``.
      weight_decay: ``lambda >= 0``.
      momentum: ``gamma`` in ``[0, 1)``.
      phase_factor: ``> 0``; phase_steps: an integer ``>= 0``.

    Raises:
      ValueError, TypeError: for values outside those ranges (checked when the values are
        known; a sweep's traced values were checked where the sweep was built).

    References:
      Li, Arora (2020), arXiv:1910.07454 and Li, Lyu, Arora (2020), arXiv:2010.02916
      (SGD with weight decay and momentum, in the PyTorch convention).
    """
    _hyper("learning_rate", learning_rate, low=0.0, low_open=True)
    _hyper("weight_decay", weight_decay, low=0.0)
    _hyper("momentum", momentum, low=0.0, high=1.0, high_open=True)
    _hyper("phase_factor", phase_factor, low=0.0, low_open=True)
    _hyper("phase_steps", phase_steps, low=0.0, integer=True)

    def init(params):
        return SgdState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params):
        f = jnp.where(state.count < phase_steps, phase_factor, 1.0)
        lr, wd = learning_rate * f, weight_decay / f
        trace = jax.tree.map(lambda m, g, w: (momentum * m + g + wd * w).astype(w.dtype),
                             state.trace, grads, params)
        updates = jax.tree.map(lambda m: (-lr * m).astype(m.dtype), trace)
        return updates, SgdState(state.count + 1, trace)

    return optax.GradientTransformation(init, update)


def sgd_exponential_lr(learning_rate: Any, weight_decay: Any, momentum: Any = 0.0,
                       correct_momentum: bool = True) -> optax.GradientTransformation:
    """SGD *without* weight decay under :func:`exponential_lr_schedule`.

    The step ``t`` uses ``eta alpha^(-2t-1)``; ``weight_decay`` only enters through
    ``alpha``. With momentum, the two runs match exactly only if the momentum buffer of
    this one starts at ``(alpha - 1) / (eta alpha) w_0`` (``correct_momentum=True``):
    then ``w~_{-1} = alpha w_{-1}`` holds for the virtual step before the start, as the
    induction in the proof of the equivalence needs. With a zero buffer the runs differ
    from the first step on.

    Works under ``jit``/``vmap`` with traced hyperparameters (the root ``alpha`` is
    computed with ``jnp``).

    Raises:
      ValueError, TypeError: unless ``learning_rate > 0``, ``weight_decay >= 0`` and
        ``momentum`` in ``[0, 1)`` (checked when the values are known).

    References:
      Li, Arora (2020), arXiv:1910.07454 (the main theorem on the exponential
      learning rate).
    """
    _hyper("learning_rate", learning_rate, low=0.0, low_open=True)
    _hyper("weight_decay", weight_decay, low=0.0)
    _hyper("momentum", momentum, low=0.0, high=1.0, high_open=True)
    if not isinstance(correct_momentum, (bool, np.bool_)):
        raise TypeError(f"argument `correct_momentum` must be True or False; got "
                        f"{correct_momentum!r}")

    def _alpha():
        b = 1 + momentum - learning_rate * weight_decay
        return (b + jnp.sqrt(b * b - 4 * momentum)) / 2

    def init(params):
        alpha = _alpha()
        c = (alpha - 1) / (learning_rate * alpha) if correct_momentum else 0.0
        # with momentum = 0 the buffer is multiplied by 0 at the first step: no effect
        return SgdState(jnp.zeros([], jnp.int32),
                        jax.tree.map(lambda w: (c * w).astype(w.dtype), params))

    def update(grads, state, params):
        alpha = _alpha()
        lr = learning_rate * jnp.exp(-(2 * state.count + 1) * jnp.log(alpha))
        trace = jax.tree.map(lambda m, g, w: (momentum * m + g).astype(w.dtype),
                             state.trace, grads, params)
        updates = jax.tree.map(lambda m: (-lr * m).astype(m.dtype), trace)
        return updates, SgdState(state.count + 1, trace)

    return optax.GradientTransformation(init, update)


# --------------------------------------------------------------------------------------
# The equilibrium
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EquilibriumPrediction:
    """The fixed point of the norm recursion with a constant gradient size.

    Attributes:
      sq_norm: ``|w*|^2 = sqrt(eta G / (lambda (2 - eta lambda)))``.
      effective_lr: ``eta / |w*|^2``, about ``sqrt(2 eta lambda / G)``.
      angular_update: the angle per step, ``arctan(sqrt(eta lambda (2 - eta lambda))
        / (1 - eta lambda))``, about ``sqrt(2 eta lambda)``: it does not depend on ``G``.
    """

    sq_norm: np.ndarray
    effective_lr: np.ndarray
    angular_update: np.ndarray


def equilibrium_norm_prediction(eta: Any, wd: Any, grad_sq_unit: Any) -> EquilibriumPrediction:
    """Predict the equilibrium of SGD with weight decay on a scale-invariant group.

    Without momentum and with the gradient orthogonal to ``w``,
    ``|w_{t+1}|^2 = (1 - eta lambda)^2 |w_t|^2 + eta^2 |grad L(w_t)|^2`` exactly, and
    ``|grad L(w)|^2 = G / |w|^2`` with ``G = |grad L(w / |w|)|^2`` the squared gradient
    at unit norm. If ``G`` stays (on average) constant, the norm settles where the two
    terms balance: ``|w*|^4 = eta G / (lambda (2 - eta lambda))``.

    Args:
      eta, wd: learning rate and weight decay (``eta * wd < 1``).
      grad_sq_unit: ``G`` (array-like, e.g. one per group; the mean squared *stochastic*
        gradient at unit norm for SGD).

    References:
      Li, Lyu, Arora (2020), arXiv:2010.02916 (the equilibrium of norm and effective LR
      under SGD with weight decay); Wan, Zhu, Zhang, Sun (2021), "Spherical Motion
      Dynamics", NeurIPS 2021, for the same fixed point (with momentum).
    """
    eta, wd = check_lr_wd(eta, wd)
    g = V.check_array("grad_sq_unit", grad_sq_unit, positive=True)
    x = np.sqrt(eta * g / (wd * (2 - eta * wd)))
    ang = np.arctan(np.sqrt(eta * wd * (2 - eta * wd)) / (1 - eta * wd)) * np.ones_like(g)
    return EquilibriumPrediction(x, eta / x, ang)
