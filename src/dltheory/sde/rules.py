"""Optimizer configurations and the rules that rescale them: LSR, square-root rule, SVAG.

An :class:`OptimizerConfig` is the set of numbers a scaling rule acts on (learning rate,
batch size, betas, eps); :meth:`OptimizerConfig.spec` turns it into an engine optimizer.

- Linear scaling rule (LSR; Krizhevsky 2014, Goyal et al. 2017, analysed by Li, Malladi,
  Arora 2021): batch ``kappa B``, learning rate ``kappa eta``, the same number of epochs.
- Square-root scaling rule for RMSprop and Adam (Malladi et al. 2022):
  batch ``kappa B``, ``eta -> sqrt(kappa) eta``, ``1 - beta_i -> kappa (1 - beta_i)``,
  ``eps -> eps / sqrt(kappa)``, the same number of epochs.
- SVAG (``eta -> eta / l``) and adaptive SVAG (``eta -> eta / l``,
  ``1 - beta_i -> (1 - beta_i) / l^2``, ``eps -> eps l``).

:func:`noise_to_signal` measures the quantities behind the LSR's validity: the squared
gradient norm ``G = |grad L|^2`` and the minibatch noise ``N = E |g_B - grad L|^2``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dltheory import validation as V
from dltheory.training import OptimizerSpec, optimizer

__all__ = ["OptimizerConfig", "sgd_config", "rmsprop_config", "adam_config",
           "linear_scaling_rule", "sqrt_scaling_rule", "svag_config", "adaptive_svag_config",
           "NoiseToSignal", "noise_to_signal", "noise_terms"]

ALGORITHMS = ("sgd", "rmsprop", "adam")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The hyperparameters a scaling rule acts on.

    Attributes:
      algorithm: ``"sgd"``, ``"rmsprop"`` or ``"adam"``.
      lr: learning rate ``eta > 0``.
      batch_size: minibatch size ``B`` (a positive integer).
      b1: Adam's first-moment decay ``beta_1`` in ``[0, 1)`` (Adam only).
      b2: the second-moment decay ``beta_2`` in ``[0, 1)`` (RMSprop's ``beta`` / optax's
        ``decay``; Adam's ``b2``).
      eps: the ``eps`` added to the square root of the second moment (``>= 0``).
      initial_scale: RMSprop's initial second moment ``v_0`` (``>= 0``).
    """

    algorithm: str
    lr: float
    batch_size: int
    b1: float | None = None
    b2: float | None = None
    eps: float | None = None
    initial_scale: float = 0.0

    def __post_init__(self):
        V.check_choice("algorithm", self.algorithm, ALGORITHMS)
        V.check_positive("lr", self.lr)
        V.check_int("batch_size", self.batch_size, minimum=1)
        V.check_nonnegative("initial_scale", self.initial_scale)
        needs = {"sgd": (), "rmsprop": ("b2", "eps"), "adam": ("b1", "b2", "eps")}[self.algorithm]
        for name in ("b1", "b2", "eps"):
            value = getattr(self, name)
            if name in needs and value is None:
                raise ValueError(f"argument `{name}` is required for {self.algorithm}")
            if name not in needs and value is not None:
                raise ValueError(f"argument `{name}` does not apply to {self.algorithm} and "
                                 f"must be None; got {value!r}")
        for name in ("b1", "b2"):
            value = getattr(self, name)
            if value is not None:
                V.check_in_range(name, value, 0.0, 1.0, high_inclusive=False)
        if self.eps is not None:
            V.check_nonnegative("eps", self.eps)

    def spec(self) -> OptimizerSpec:
        """The engine optimizer (``dltheory.training.optimizer``) of this configuration.

        RMSprop adds ``eps`` outside the square root, as in the paper:
        ``theta -= lr * g / (sqrt(v) + eps)``.
        """
        if self.algorithm == "sgd":
            return optimizer(optax.sgd, learning_rate=self.lr)
        if self.algorithm == "rmsprop":
            return optimizer(optax.rmsprop, learning_rate=self.lr, decay=self.b2, eps=self.eps,
                             initial_scale=self.initial_scale, eps_in_sqrt=False)
        return optimizer(optax.adam, learning_rate=self.lr, b1=self.b1, b2=self.b2,
                         eps=self.eps)

    def replace(self, **changes: Any) -> "OptimizerConfig":
        return dataclasses.replace(self, **changes)


def sgd_config(lr: float, batch_size: int) -> OptimizerConfig:
    """SGD with learning rate ``lr`` and batch size ``batch_size``."""
    return OptimizerConfig("sgd", lr, batch_size)


def rmsprop_config(lr: float, batch_size: int, *, beta: float = 0.999, eps: float = 1e-8,
                   initial_scale: float = 0.0) -> OptimizerConfig:
    """RMSprop ``v <- beta v + (1 - beta) g^2``, ``theta <- theta - lr g / (sqrt(v) + eps)``."""
    V.check_in_range("beta", beta, 0.0, 1.0, high_inclusive=False)
    return OptimizerConfig("rmsprop", lr, batch_size, b2=beta, eps=eps,
                           initial_scale=initial_scale)


def adam_config(lr: float, batch_size: int, *, b1: float = 0.9, b2: float = 0.999,
                eps: float = 1e-8) -> OptimizerConfig:
    """Adam (with bias corrections, as ``optax.adam``)."""
    return OptimizerConfig("adam", lr, batch_size, b1=b1, b2=b2, eps=eps)


def _check_config(config: Any) -> OptimizerConfig:
    if not isinstance(config, OptimizerConfig):
        raise TypeError(f"argument `config` must be an OptimizerConfig (see sgd_config, "
                        f"adam_config); got {type(config).__name__}")
    return config


def _scaled_batch(config: OptimizerConfig, kappa: float) -> int:
    b = config.batch_size * kappa
    if abs(b - round(b)) > 1e-9 * max(1.0, b) or round(b) < 1:
        raise ValueError(f"argument `kappa` must scale the batch size {config.batch_size} to a "
                         f"positive integer; got kappa = {kappa!r} (batch {b:g})")
    return int(round(b))


def _scaled_beta(name: str, beta: float, factor: float, rule: str) -> float:
    one_minus = factor * (1.0 - beta)
    if not 0.0 < one_minus <= 1.0:
        raise ValueError(f"the {rule} maps {name} = {beta!r} to 1 - {one_minus:g}, outside "
                         f"[0, 1); choose {name} closer to 1 or a smaller factor")
    return 1.0 - one_minus


def linear_scaling_rule(config: OptimizerConfig, kappa: float) -> OptimizerConfig:
    """The linear scaling rule: batch ``kappa B`` and learning rate ``kappa eta``.

    Run the result for the same number of epochs (``1 / kappa`` times the steps). For SGD
    this keeps the SDE ``dX = -grad L dt + (eta Sigma_B)^{1/2} dW`` unchanged, because the
    batch noise covariance scales as ``Sigma_{kappa B} = Sigma_B / kappa``. For RMSprop and
    Adam only the learning rate is rescaled (betas and eps stay): the rule practitioners
    often apply, which the square-root rule corrects.

    Args:
      config: the configuration at batch size ``B``.
      kappa: the batch-size factor ``> 0``; ``kappa B`` must be an integer.

    Raises:
      ValueError: for ``kappa <= 0`` or a batch that does not scale to an integer.

    References:
      Krizhevsky (2014), arXiv:1404.5997; Goyal et al. (2017), arXiv:1706.02677; Li,
      Malladi, Arora (2021), arXiv:2102.12470 (when the rule must fail).
    """
    config = _check_config(config)
    kappa = V.check_positive("kappa", kappa)
    return config.replace(lr=config.lr * kappa, batch_size=_scaled_batch(config, kappa))


def sqrt_scaling_rule(config: OptimizerConfig, kappa: float) -> OptimizerConfig:
    """The square-root scaling rule for RMSprop and Adam.

    Batch ``kappa B``, ``eta -> sqrt(kappa) eta``, ``1 - beta_i -> kappa (1 - beta_i)``,
    ``eps -> eps / sqrt(kappa)``; run for the same number of epochs. It keeps the RMSprop
    and Adam SDEs (their ``sigma_0 = sigma eta``, ``eps_0 = eps eta``,
    ``c_i = (1 - beta_i) / eta^2`` and time ``k eta^2``) unchanged.

    Raises:
      ValueError: for ``kappa <= 0``, a batch that does not scale to an integer, an SGD
        configuration, or a beta that would leave ``[0, 1)``.

    References:
      Malladi, Lyu, Panigrahi, Arora (2022), arXiv:2205.10287 (the square-root
      scaling rule, from the RMSprop and Adam SDEs).
    """
    config = _check_config(config)
    kappa = V.check_positive("kappa", kappa)
    if config.algorithm == "sgd":
        raise ValueError("the square-root scaling rule is for RMSprop and Adam; for SGD use "
                         "linear_scaling_rule")
    s = math.sqrt(kappa)
    changes = {"lr": config.lr * s, "batch_size": _scaled_batch(config, kappa),
               "eps": config.eps / s,
               "b2": _scaled_beta("b2", config.b2, kappa, "square-root rule")}
    if config.b1 is not None:
        changes["b1"] = _scaled_beta("b1", config.b1, kappa, "square-root rule")
    return config.replace(**changes)


def _check_l(l: float) -> float:
    l = V.check_finite("l", l)
    if l < 1:
        raise ValueError(f"argument `l` must be a finite number >= 1; got {l!r}")
    return l


def svag_config(config: OptimizerConfig, l: float) -> OptimizerConfig:
    """SVAG's learning rate ``eta / l`` (run ``l`` times as many steps with :func:`svag`).

    References:
      Li, Malladi, Arora (2021), arXiv:2102.12470 (SVAG).
    """
    config = _check_config(config)
    l = _check_l(l)
    if config.algorithm != "sgd":
        raise ValueError("svag_config is for SGD; use adaptive_svag_config for "
                         f"{config.algorithm}")
    return config.replace(lr=config.lr / l)


def adaptive_svag_config(config: OptimizerConfig, l: float) -> OptimizerConfig:
    """Adaptive SVAG's hyperparameters (run ``l^2`` times as many steps with
    :func:`adaptive_svag`): ``eta / l``, ``1 - beta_i -> (1 - beta_i) / l^2``, ``eps l``, and
    RMSprop's initial second moment times ``l^2`` (the noise variance grows by ``l^2``).

    References:
      Malladi, Lyu, Panigrahi, Arora (2022), arXiv:2205.10287 (SVAG for adaptive methods).
    """
    config = _check_config(config)
    l = _check_l(l)
    if config.algorithm == "sgd":
        raise ValueError("adaptive_svag_config is for RMSprop and Adam; use svag_config for SGD")
    changes = {"lr": config.lr / l, "eps": config.eps * l,
               "b2": 1.0 - (1.0 - config.b2) / l**2,
               "initial_scale": config.initial_scale * l**2}
    if config.b1 is not None:
        changes["b1"] = 1.0 - (1.0 - config.b1) / l**2
    return config.replace(**changes)


# --------------------------------------------------------------------------------------
# Noise and signal
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NoiseToSignal:
    """Gradient signal and minibatch noise at one point.

    Attributes:
      G: ``|grad L|^2``, the squared norm of the full-batch gradient.
      N1: ``mean_i |g_i - grad L|^2``, the per-example gradient variance (trace of the
        covariance of one example's gradient).
      n: the number of examples.
    """

    G: float
    N1: float
    n: int

    def N(self, batch_size: int) -> float:
        """``E |g_B - grad L|^2`` for a batch of ``batch_size`` drawn without replacement:
        ``N1 / B * (n - B) / (n - 1)``."""
        b = V.check_int("batch_size", batch_size, minimum=1, maximum=self.n)
        return self.N1 / b * (self.n - b) / max(self.n - 1, 1)

    def ratio(self, batch_size: int) -> float:
        """The noise-to-signal ratio ``N_B / G`` at batch size ``batch_size``."""
        return self.N(batch_size) / self.G


def _functional(loss_fn: Callable, params: Any) -> tuple[Callable, Any]:
    if isinstance(params, nnx.Module):
        graphdef, p, rest = nnx.split(params, nnx.Param, ...)
        return (lambda q, b: loss_fn(nnx.merge(graphdef, q, rest), b)), p
    return loss_fn, params


def _check_noise_args(loss_fn: Any, params: Any, data: Any) -> int:
    """Check the arguments of :func:`noise_terms`; the number of examples."""
    if not callable(loss_fn):
        raise TypeError(f"argument `loss_fn` must be callable; got {loss_fn!r} of type "
                        f"{type(loss_fn).__name__}")
    p = nnx.state(params, nnx.Param) if isinstance(params, nnx.Module) else params
    if not jax.tree.leaves(p):
        raise ValueError(f"argument `params` must hold at least one parameter array; "
                         f"got {params!r}")
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError(f"argument `data` must hold at least one array; got {data!r}")
    shapes = [np.shape(a) for a in leaves]
    if any(len(sh) == 0 for sh in shapes) or len({sh[0] for sh in shapes}) != 1:
        raise ValueError("argument `data` must hold arrays with one leading example axis "
                         f"of the same length; got shapes {shapes}")
    n = int(shapes[0][0])
    if n < 2:
        raise ValueError(f"argument `data` must hold at least two examples; got {n}")
    return n


def noise_terms(loss_fn: Callable[[Any, Any], jax.Array], params: Any,
                data: Any) -> tuple[jax.Array, jax.Array]:
    """``(G, N1)`` as traced scalars (usable inside the engine's ``metrics``).

    ``G = |grad L(data)|^2`` and ``N1 = mean_i |grad L(x_i) - grad L(data)|^2`` from exact
    per-example gradients (``vmap`` over the examples of ``data``).
    """
    _check_noise_args(loss_fn, params, data)
    fn, p = _functional(loss_fn, params)
    per = jax.vmap(lambda ex: jax.grad(fn)(p, jax.tree.map(lambda a: a[None], ex)))(data)
    mean = jax.tree.map(lambda g: g.mean(0), per)
    G = sum(jnp.sum(m**2) for m in jax.tree.leaves(mean))
    N1 = sum(jnp.sum((g - m[None]) ** 2) / g.shape[0]
             for g, m in zip(jax.tree.leaves(per), jax.tree.leaves(mean)))
    return G, N1


def noise_to_signal(loss_fn: Callable[[Any, Any], jax.Array], params: Any,
                    data: Any) -> NoiseToSignal:
    """Measure ``G_t = |grad L|^2`` and the noise ``N_t = E |g_B - grad L|^2`` at ``params``.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, the mean loss over a batch.
      params: a parameter pytree or an nnx module.
      data: the training set as a batch (arrays with a leading example axis).

    Returns:
      A :class:`NoiseToSignal`; ``result.ratio(B)`` is ``N_t / G_t`` at batch size ``B``.

    References:
      Li, Malladi, Arora (2021), arXiv:2102.12470: the LSR (and the SDE
      approximation) needs the noise to dominate the signal, ``N_t / G_t`` large.
    """
    n = _check_noise_args(loss_fn, params, data)
    G, N1 = noise_terms(loss_fn, params, data)
    return NoiseToSignal(float(G), float(N1), n)
