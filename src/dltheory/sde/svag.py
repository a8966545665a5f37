"""SVAG and adaptive SVAG: simulating the SDE of SGD (or of RMSprop/Adam) by amplifying noise.

SVAG (Stochastic Variance Amplified Gradient, Li, Malladi, Arora 2021) draws two
independent batches ``B1, B2`` per step and descends the combined loss

    L^l(x) = c1 L_B1(x) + c2 L_B2(x),    c1,2 = (1 +- sqrt(2 l - 1)) / 2,

with learning rate ``eta / l`` for ``l`` times as many steps. Since ``c1 + c2 = 1`` the mean
gradient is unchanged, and since ``c1^2 + c2^2 = l`` the noise covariance is multiplied by
``l``: the per-unit-time noise ``(eta / l) * (l Sigma) = eta Sigma`` is that of SGD while the
step shrinks, so SVAG converges to the Ito SDE of SGD as ``l`` grows (their main approximation theorem).

Adaptive SVAG (Malladi, Lyu, Panigrahi, Arora 2022) does the same for RMSprop and Adam with
``l^2`` in place of ``l``: ``c1,2 = (1 +- sqrt(2 l^2 - 1)) / 2`` (the noise *standard
deviation* grows by ``l``), ``eta -> eta / l``, ``1 - beta_i -> (1 - beta_i) / l^2``,
``eps -> eps l``, and ``l^2`` times as many steps.

Both are written as a loss wrapper (:class:`SVAGLoss`) plus a batch source that hands it two
independent batches per step (:class:`TwoBatches`), so they run through the book's one
engine, :mod:`dltheory.training`, with any optax optimizer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax

from dltheory import data
from dltheory import validation as V
from dltheory.sde import _checks as C

__all__ = ["svag_coefficients", "SVAGLoss", "svag", "adaptive_svag", "TwoBatches"]


def _check_l(l: Any) -> float:
    x = V.check_finite("l", l)
    if x < 1:
        raise ValueError(f"argument `l` must be a finite number >= 1; got {l!r}")
    return x


def svag_coefficients(l: float, *, adaptive: bool = False) -> tuple[float, float]:
    """The SVAG loss weights ``(c1, c2)``.

    Args:
      l: the amplification ``l >= 1`` (``l = 1`` gives ``(1, 0)``: plain SGD).
      adaptive: use ``2 l^2 - 1`` (adaptive SVAG for RMSprop/Adam) instead of ``2 l - 1``.

    Returns:
      ``(c1, c2)`` with ``c1 + c2 = 1`` and ``c1^2 + c2^2 = l`` (``l^2`` if adaptive).

    References:
      Li, Malladi, Arora (2021), arXiv:2102.12470; Malladi, Lyu, Panigrahi, Arora
      (2022), arXiv:2205.10287 (SVAG for adaptive algorithms).
    """
    l = _check_l(l)
    adaptive = C.flag("adaptive", adaptive)
    r = math.sqrt(2 * l * l - 1 if adaptive else 2 * l - 1)
    return (1 + r) / 2, (1 - r) / 2


@dataclasses.dataclass(frozen=True)
class SVAGLoss:
    """``c1 loss_fn(params, b1) + c2 loss_fn(params, b2)`` for a batch pair ``(b1, b2)``.

    Frozen and hashable, so the engine reuses compiled code for equal ``(loss_fn, c1, c2)``.
    Build it with :func:`svag` or :func:`adaptive_svag`; built directly, any finite
    weights are accepted (a variant with other weights is then a different algorithm).

    Attributes:
      loss_fn: the per-batch loss ``loss_fn(params, batch) -> scalar``.
      c1, c2: the weights of the two batches.
      l: the amplification the weights were made for.
      adaptive: whether they follow the adaptive (``l^2``) rule.
    """

    loss_fn: Callable[[Any, Any], jax.Array]
    c1: float
    c2: float
    l: float
    adaptive: bool = False

    def __post_init__(self):
        C.function("loss_fn", self.loss_fn)
        object.__setattr__(self, "c1", V.check_finite("c1", self.c1))
        object.__setattr__(self, "c2", V.check_finite("c2", self.c2))
        object.__setattr__(self, "l", _check_l(self.l))
        object.__setattr__(self, "adaptive", C.flag("adaptive", self.adaptive))

    def __call__(self, params: Any, batch: tuple[Any, Any]) -> jax.Array:
        b1, b2 = batch
        return self.c1 * self.loss_fn(params, b1) + self.c2 * self.loss_fn(params, b2)

    @property
    def steps_factor(self) -> int:
        """The factor by which SVAG multiplies the number of steps, ``l`` (``l^2`` if adaptive)."""
        f = self.l ** 2 if self.adaptive else self.l
        return int(round(f))


def _make(loss_fn, l, adaptive):
    C.function("loss_fn", loss_fn)
    c1, c2 = svag_coefficients(l, adaptive=adaptive)
    return SVAGLoss(loss_fn, c1, c2, float(l), adaptive)


def svag(loss_fn: Callable[[Any, Any], jax.Array], l: float) -> SVAGLoss:
    """The SVAG loss of ``loss_fn`` with amplification ``l`` (for SGD).

    Run it with learning rate ``lr / l`` for ``l`` times as many steps (see
    :func:`dltheory.sde.svag_config`), on batches from :class:`TwoBatches`. The gradient of
    the returned loss has the mean of one batch gradient and ``l`` times its covariance.

    Example::

        loss = svag(cross_entropy_loss, l=4)
        cfg = svag_config(sgd_config(lr=0.1, batch_size=32), l=4)
        train(loss, model, cfg.spec(), steps=4 * 1000, batches=TwoBatches(Minibatches.of(data, 32)))

    References:
      Li, Malladi, Arora (2021), arXiv:2102.12470 (SVAG and its convergence to the SDE).
    """
    return _make(loss_fn, l, False)


def adaptive_svag(loss_fn: Callable[[Any, Any], jax.Array], l: float) -> SVAGLoss:
    """The adaptive SVAG loss (weights with ``2 l^2 - 1``) for RMSprop and Adam.

    Run it with the hyperparameters of :func:`dltheory.sde.adaptive_svag_config`
    (``lr / l``, ``1 - beta -> (1 - beta) / l^2``, ``eps * l``) for ``l^2`` times as many
    steps. The gradient keeps its mean and its noise standard deviation grows by ``l``.

    References:
      Malladi, Lyu, Panigrahi, Arora (2022), arXiv:2205.10287 (SVAG for RMSprop and Adam,
      the experiments validating their SDEs).
    """
    return _make(loss_fn, l, True)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TwoBatches:
    """A batch source giving two independent batches of ``source`` per step.

    The two draws use independent keys split from the run's key, so the batches are
    independent (they may share examples, as two independent draws do).
    """

    source: Any

    def __post_init__(self):
        if not callable(getattr(self.source, "sample", None)):
            raise TypeError("argument `source` must be a batch source with a "
                            f"sample(key, step) method; got {type(self.source).__name__}")

    def sample(self, key: jax.Array, step: jax.Array) -> tuple[Any, Any]:
        k1, k2 = jax.random.split(key)
        return self.source.sample(k1, step), self.source.sample(k2, step)

    def plan(self, key: jax.Array, start: jax.Array, length: int) -> tuple[Any, Any]:
        """Both draws' plans for a chunk (see :func:`dltheory.data.plan_batches`)."""
        k1, k2 = jax.random.split(key)
        return (data.plan_batches(self.source, k1, start, length),
                data.plan_batches(self.source, k2, start, length))

    def take(self, key: jax.Array, item: tuple[Any, Any]) -> tuple[Any, Any]:
        k1, k2 = jax.random.split(key)
        return data.take_batch(self.source, k1, item[0]), data.take_batch(self.source, k2, item[1])
