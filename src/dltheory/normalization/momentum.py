"""The angular update of SGD with momentum and weight decay on a normalized network.

With heavy-ball momentum the update is no longer orthogonal to the weights, so the norm
alone no longer determines the angle a step turns (the chapters' norm-based measurement
needs ``gamma = 0``). :func:`sgd_wd_angles` is :func:`~dltheory.normalization.sgd_wd`
that also measures, at every step and for every group, the angle between ``w_t`` and
``w_{t+1}``, and accumulates it in its optimizer state per block of steps, so the
training engine needs no per-step logging. :func:`momentum_angular_update` runs it for
several momenta in one vmapped call and compares the equilibrium angle per step with the
prediction of Wan et al. (2021), ``sqrt(2 eta lambda / (1 + gamma))``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dltheory import data as D
from dltheory import validation as V
from dltheory.normalization.core import ScaleInvariantMLP, check_lr_wd, sgd_wd
from dltheory.training import optimizer, sweep

__all__ = ["MomentumAngleResult", "angular_update_momentum",
           "momentum_angular_update", "sgd_wd_angles"]


def angular_update_momentum(eta: Any, wd: Any, momentum: Any = 0.0) -> np.ndarray:
    """The equilibrium angle per step of SGD with momentum and weight decay,
    ``sqrt(2 eta lambda / (1 + gamma))`` (radians).

    Args:
      eta, wd: learning rate and weight decay (``eta * wd < 1``).
      momentum: heavy-ball momentum ``gamma`` in ``[0, 1)`` (PyTorch convention:
        ``m_t = gamma m_{t-1} + grad + lambda w``, ``w_{t+1} = w_t - eta m_t``); a number
        or an array of them.

    Returns:
      The predicted angle, shape of ``momentum``.

    References:
      Wan, Zhu, Zhang, Sun (2021), Spherical Motion Dynamics, NeurIPS,
      arXiv:2006.08419 (the theoretical value of the angular update with momentum).
    """
    eta, wd = check_lr_wd(eta, wd)
    g = V.check_array("momentum", momentum)
    if np.any(g < 0) or np.any(g >= 1):
        raise ValueError(f"argument `momentum` must lie in [0, 1); got {momentum!r}")
    return np.sqrt(2 * eta * wd / (1 + g))


class AngleTrackerState(NamedTuple):
    """Optimizer state of :func:`sgd_wd_angles`.

    Attributes:
      inner: the state of :func:`~dltheory.normalization.sgd_wd`.
      count: steps taken.
      sums: sum of the per-step angles in each block, shape ``(n_blocks, n_groups)``.
      sq_sums: sum of their squares, same shape.
    """

    inner: Any
    count: jax.Array
    sums: jax.Array
    sq_sums: jax.Array


def _angle(w: jax.Array, v: jax.Array) -> jax.Array:
    a = w / jnp.linalg.norm(w)
    b = v / jnp.linalg.norm(v)
    return 2 * jnp.arcsin(jnp.minimum(jnp.linalg.norm(a - b) / 2, 1.0))


def sgd_wd_angles(learning_rate: Any, weight_decay: Any, momentum: Any = 0.0,
                  blocks: tuple[int, int] = (1, 1)) -> optax.GradientTransformation:
    """:func:`~dltheory.normalization.sgd_wd` that records the angle each step turns.

    At every step ``t`` and for every weight array ``g`` it computes
    ``angle(w_t, w_{t+1}) = 2 arcsin(|w_t/|w_t| - w_{t+1}/|w_{t+1}|| / 2)`` and adds it
    (and its square) to block ``min(t // block_steps, n_blocks - 1)`` of the state: the
    mean angle per step over each block of ``block_steps`` steps is
    ``state.sums / block_steps``. Use it through the engine with
    ``dltheory.training.optimizer(sgd_wd_angles, ..., blocks=(n_blocks, block_steps))``
    (a tuple is a static argument) and read the final optimizer state.

    Args:
      learning_rate, weight_decay, momentum: as in :func:`~dltheory.normalization.sgd_wd`.
      blocks: ``(n_blocks, block_steps)``, positive integers.

    References:
      Wan, Zhu, Zhang, Sun (2021), arXiv:2006.08419 (the angular update as the measure
      of how fast a normalized network moves).
    """
    if not (isinstance(blocks, tuple) and len(blocks) == 2):
        raise TypeError(f"argument `blocks` must be a tuple (n_blocks, block_steps) of "
                        f"positive integers; got {blocks!r}")
    n_blocks = V.check_int("blocks[0]", blocks[0], minimum=1)
    block_steps = V.check_int("blocks[1]", blocks[1], minimum=1)
    inner = sgd_wd(learning_rate, weight_decay, momentum)

    def init(params):
        n = len(jax.tree.leaves(params))
        z = jnp.zeros((n_blocks, n), jnp.float32)
        return AngleTrackerState(inner.init(params), jnp.zeros([], jnp.int32), z, z)

    def update(grads, state, params):
        updates, inner_state = inner.update(grads, state.inner, params)
        new = optax.apply_updates(params, updates)
        ang = jnp.stack([_angle(w, v).astype(jnp.float32) for w, v in
                         zip(jax.tree.leaves(params), jax.tree.leaves(new))])
        b = jnp.minimum(state.count // block_steps, n_blocks - 1)
        return updates, AngleTrackerState(inner_state, state.count + 1,
                                          state.sums.at[b].add(ang),
                                          state.sq_sums.at[b].add(ang * ang))

    return optax.GradientTransformation(init, update)


@dataclasses.dataclass(frozen=True)
class MomentumAngleResult:
    """SGD with weight decay and momentum on digits: the measured angle per step.

    Attributes:
      momenta: the momenta ``gamma``, shape ``(n,)``.
      eta, wd: learning rate and weight decay (the same for every momentum).
      block_steps: steps per block; ``block_start`` the first step of each block,
        shape ``(n_blocks,)``.
      mean_angle: mean angle per step in each block, ``(n, n_seeds, n_blocks, n_groups)``.
      rms_angle: root-mean-square angle per step in each block, same shape.
      settle: the first step counted as equilibrium.
      diverged_at: ``(n, n_seeds)``, -1 where a run finished.
    """

    momenta: np.ndarray
    eta: float
    wd: float
    block_steps: int
    block_start: np.ndarray
    mean_angle: np.ndarray
    rms_angle: np.ndarray
    settle: int
    diverged_at: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        """``sqrt(2 eta lambda / (1 + gamma))`` per momentum."""
        return angular_update_momentum(self.eta, self.wd, self.momenta)

    @property
    def predicted_no_momentum(self) -> float:
        """``sqrt(2 eta lambda)``: the momentum-free formula, the same for every momentum."""
        return float(np.sqrt(2 * self.eta * self.wd))

    def equilibrium(self, rms: bool = False) -> np.ndarray:
        """The measured angle per step from ``settle`` on, averaged over the blocks,
        the seeds and the groups, per momentum, shape ``(n,)``.

        Args:
          rms: use the root-mean-square angle per block instead of the mean.
        """
        a = self.rms_angle if rms else self.mean_angle
        keep = self.block_start >= self.settle
        return a[:, :, keep].mean(axis=(1, 2, 3))

    def spread(self, rms: bool = False) -> np.ndarray:
        """The relative spread of the equilibrium over seeds and groups: the standard
        deviation of the per-(seed, group) time averages divided by their mean, shape
        ``(n,)``."""
        a = self.rms_angle if rms else self.mean_angle
        keep = self.block_start >= self.settle
        per = a[:, :, keep].mean(axis=2).reshape(len(self.momenta), -1)
        return per.std(axis=1) / per.mean(axis=1)

    def relative_error(self, rms: bool = False) -> np.ndarray:
        """``measured / sqrt(2 eta lambda / (1 + gamma)) - 1`` per momentum."""
        return self.equilibrium(rms) / self.predicted - 1

    def relative_error_no_momentum(self, rms: bool = False) -> np.ndarray:
        """``measured / sqrt(2 eta lambda) - 1`` per momentum (the formula that ignores
        momentum)."""
        return self.equilibrium(rms) / self.predicted_no_momentum - 1


@functools.lru_cache(maxsize=8)
def _init_fn(sizes: tuple[int, ...]):
    def init(key):
        return ScaleInvariantMLP(sizes, rngs=nnx.Rngs(params=key))
    return init


def _xent(model, batch):
    from dltheory.models import cross_entropy

    return cross_entropy(model(batch["x"]), batch["y"])


def momentum_angular_update(momenta: Sequence[float] = (0.0, 0.5, 0.9), *, eta: float = 0.1,
                            wd: float = 0.1, steps: int = 1000, settle: int | None = None,
                            seeds: Sequence[int] = (0, 1), batch_size: int = 32,
                            width: int = 64, block_steps: int = 50,
                            progress: bool | None = None) -> MomentumAngleResult:
    """Measure the equilibrium angle per step of SGD with momentum and weight decay.

    The chapters' normalized digits network is trained with
    ``m_t = gamma m_{t-1} + grad L_B(w_t) + lambda w_t``, ``w_{t+1} = w_t - eta m_t`` for
    every momentum and seed in one vmapped call (a seed fixes the initialization and the
    minibatch order), and the angle between consecutive iterates is measured at every
    step by :func:`sgd_wd_angles`.

    Args:
      momenta: the momenta ``gamma``, each in ``[0, 1)``.
      eta, wd: learning rate and weight decay, the same for every momentum
        (``eta * wd < 1``).
      steps: SGD steps, a multiple of ``block_steps``.
      settle: the first step of the equilibrium average (default: half of ``steps``,
        rounded down to a block); at least ``5 / (eta wd)`` is safe for every momentum.
      seeds: seeds per momentum.
      batch_size, width: minibatch size and hidden width (>= 2).
      block_steps: the angle is averaged over blocks of this many steps.

    Returns:
      A :class:`MomentumAngleResult`.

    References:
      Wan, Zhu, Zhang, Sun (2021), Spherical Motion Dynamics, NeurIPS,
      arXiv:2006.08419 (the equilibrium angular update ``sqrt(2 eta lambda / (1 +
      gamma))``); Li, Lyu, Arora (2020), arXiv:2010.02916 (its momentum-free form).
    """
    momenta = V.check_array("momenta", momenta, ndim=1, nonnegative=True)
    if np.any(momenta >= 1):
        raise ValueError(f"argument `momenta` must lie in [0, 1); got {momenta.tolist()!r}")
    eta, wd = check_lr_wd(eta, wd)
    steps, block_steps = V.check_steps(steps, block_steps)
    n_blocks = steps // block_steps
    if settle is None:
        settle = (n_blocks // 2) * block_steps
    settle = V.check_int("settle", settle, minimum=0, maximum=steps - block_steps)
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"argument `seeds` must be a sequence of integer seeds; got {seeds!r}")
    seeds = [V.check_seed("seeds[i]", s) for s in seeds]
    if not seeds:
        raise ValueError("argument `seeds` must name at least one seed; got an empty sequence")
    ds = D.digits()
    batch_size = V.check_int("batch_size", batch_size, minimum=1,
                             maximum=int(ds.x_train.shape[0]))
    width = V.check_int("width", width, minimum=2)

    nm, ns = len(momenta), len(seeds)
    opt = optimizer(sgd_wd_angles, learning_rate=eta, weight_decay=wd,
                    momentum=np.repeat(momenta.astype(np.float32), ns),
                    blocks=(n_blocks, block_steps))
    res = sweep(_xent, _init_fn((int(ds.x_train.shape[1]), width, width, 10)), opt,
                steps=steps, seeds=[s for _ in range(nm) for s in seeds],
                batches=D.Minibatches.of(ds.train, batch_size), log_every=block_steps,
                progress=progress)
    state = res.opt_state.inner_state          # optax.inject_hyperparams wraps the tracker
    sums = np.asarray(state.sums, np.float64)[: nm * ns]
    sq = np.asarray(state.sq_sums, np.float64)[: nm * ns]
    shape = (nm, ns) + sums.shape[1:]
    mean = (sums / block_steps).reshape(shape)
    rms = np.sqrt(sq / block_steps).reshape(shape)
    return MomentumAngleResult(momenta, eta, wd, block_steps,
                               np.arange(n_blocks) * block_steps, mean, rms, settle,
                               res.diverged_at.reshape(nm, ns))

