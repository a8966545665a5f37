"""Full-batch GD on the digits: progressive sharpening and the edge of stability of a
tanh MLP, and the spherical sharpness of a normalized MLP with and without weight decay.

References:
  Cohen, Kaur, Li, Kolter, Talwalkar (2021), Gradient Descent on Neural Networks
  Typically Occurs at the Edge of Stability, ICLR, arXiv:2103.00065;
  Lyu, Li, Arora (2022), Understanding the Generalization Benefit of Normalization
  Layers: Sharpness Reduction, NeurIPS, arXiv:2206.07085.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dltheory import curvature, data, models, training
from dltheory import validation as V
from dltheory.config import Preset
from dltheory.normalization import core as N
from dltheory.sharpness.edge_of_stability.toy import _first

__all__ = ["DigitsSizes", "DigitsResult", "digits_experiment", "NormSizes", "NormResult",
           "normalized_experiment"]


# --------------------------------------------------------------------------------------
# Digits: progressive sharpening and the edge (tanh MLP, square loss, full batch)
# --------------------------------------------------------------------------------------


def _batch(n: int) -> dict:
    """The first ``n`` training digits, pixels scaled to ``[0, 1]``, integer labels."""
    ds = data.digits(standardize=False)
    n = V.check_int("n_train", n, minimum=2, maximum=int(ds.x_train.shape[0]))
    return {"x": ds.x_train[:n] / 16.0, "y": ds.y_train[:n]}


def _mse(model, batch):
    """Half the squared error to one-hot targets, summed over classes, mean over examples."""
    out = model(batch["x"])
    return 0.5 * jnp.mean(jnp.sum((out - jax.nn.one_hot(batch["y"], out.shape[-1])) ** 2, -1))


def _sharp(model, batch):
    return {"sharpness": curvature.sharpness(_mse, model, batch, iters=20),
            "sq_norm": jnp.sum(N.group_sq_norms(nnx.state(model, nnx.Param)))}


@dataclasses.dataclass(frozen=True)
class DigitsSizes(Preset):
    """Full-batch GD on ``n_train`` digits with a tanh MLP ``64 -> width -> 10`` at the
    step sizes ``lrs`` (the first one small), ``steps`` steps, the sharpness every
    ``log_every`` steps; the loss is compared over windows of ``window`` steps."""

    n_train: int
    width: int
    steps: int
    log_every: int
    window: int
    lrs: tuple[float, ...]

    @classmethod
    def quick(cls) -> "DigitsSizes":
        return cls(n_train=500, width=64, steps=4000, log_every=25, window=500,
                   lrs=(0.01, 0.07, 0.085))

    @classmethod
    def paper(cls) -> "DigitsSizes":
        return cls(n_train=1000, width=64, steps=20_000, log_every=25, window=1000,
                   lrs=(0.01, 0.07, 0.085))


@dataclasses.dataclass(frozen=True)
class DigitsResult:
    """Full-batch GD on digits at ``lrs`` (first: the small step size).

    Attributes:
      steps: logged steps; loss, sharpness: shape ``(len(lrs), n_log)``.
      crossing: the first logged step with ``sharpness >= 2 / eta``, or -1, per step size.
      band_low, band_high: min and max of ``eta * sharpness`` from the crossing on.
      window_ratio: after the crossing, the largest ratio of the mean loss over a window of
        ``window`` steps to the mean over the window before it (< 1: it falls over
        windows).
      rises: logged steps after the crossing at which the loss went up.
      small_rise: the small step size's final sharpness over its minimum along the run;
        small_peak: its largest ``eta * sharpness``.
      status: ``"finished N steps"`` or ``"diverged at step k"`` per step size.
    """

    lrs: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    sharpness: np.ndarray
    crossing: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    window_ratio: np.ndarray
    rises: np.ndarray
    small_rise: float
    small_peak: float
    n_train: int
    width: int
    status: tuple[str, ...]


def digits_experiment(sizes: DigitsSizes | None = None, *, seed: int = 0) -> DigitsResult:
    """Full-batch GD on digits at every step size of ``sizes``, one vmapped call.

    References:
      Cohen et al. (2021), arXiv:2103.00065 (progressive sharpening, then the sharpness
      at or just above ``2 / eta`` while the loss falls over long times).
    """
    s = DigitsSizes.current() if sizes is None else V.check_instance("sizes", sizes,
                                                                     DigitsSizes)
    seed = V.check_seed("seed", seed)
    V.check_steps(s.steps, s.log_every)
    if s.window % s.log_every:
        raise ValueError(f"argument `sizes.window` must be a multiple of log_every "
                         f"({s.log_every}); got {s.window}")
    batch = _batch(s.n_train)
    lrs = np.asarray(s.lrs, np.float64)
    model = models.MLP((64, s.width, 10), rngs=nnx.Rngs(seed), activation="tanh")
    res = training.sweep(_mse, model, training.optimizer(
        optax.sgd, learning_rate=jnp.asarray(lrs, jnp.float32)), steps=s.steps,
        batches=batch, log_every=s.log_every, metrics=_sharp, eval_data=batch)
    loss, sharp = res["loss"], res["sharpness"]
    ratio = lrs[:, None] * sharp
    cross = np.array([_first(r >= 2) for r in ratio])
    w = s.window // s.log_every
    low, high, win, rises = (np.full(len(lrs), np.nan) for _ in range(4))
    for i, c in enumerate(cross):
        if c < 0:
            continue
        low[i], high[i] = ratio[i, c:].min(), ratio[i, c:].max()
        seg = loss[i, c:]
        m = len(seg) // w                   # consecutive windows of `window` steps
        if m >= 2:
            means = seg[:m * w].reshape(m, w).mean(1)
            win[i] = float(np.max(means[1:] / means[:-1]))
        rises[i] = int(np.sum(np.diff(seg) > 0))
    small = sharp[0]
    return DigitsResult(lrs=lrs, steps=res.steps, loss=loss, sharpness=sharp,
                        crossing=np.where(cross >= 0, res.steps[cross], -1), band_low=low,
                        band_high=high, window_ratio=win, rises=rises,
                        small_rise=float(small[-1] / small.min()),
                        small_peak=float(ratio[0].max()), n_train=s.n_train, width=s.width,
                        status=tuple(f"diverged at step {d}" if d >= 0 else
                                     f"finished {s.steps} steps" for d in res.diverged_at))


# --------------------------------------------------------------------------------------
# A normalized digits net with weight decay: the spherical sharpness along training
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NormSizes(Preset):
    """Full-batch GD with weight decay ``wd`` (and without) on the scale-invariant MLP
    ``64 -> width -> 10`` (layer norm, fixed head) at step size ``lr``."""

    n_train: int
    width: int
    steps: int
    log_every: int
    lr: float
    wd: float

    @classmethod
    def quick(cls) -> "NormSizes":
        return cls(n_train=500, width=64, steps=4000, log_every=25, lr=0.05, wd=0.02)

    @classmethod
    def paper(cls) -> "NormSizes":
        return cls(n_train=1437, width=256, steps=20_000, log_every=50, lr=0.05, wd=0.02)


@dataclasses.dataclass(frozen=True)
class NormResult:
    """GD on the normalized digits net, with weight decay (row 0) and without (row 1).

    Attributes:
      steps: logged steps; loss, sharpness (``lambda_max``), sq_norm (``|W|^2``) and
        spherical (``|W|^2 lambda_max``, the sharpness at ``W / |W|``): ``(2, n_log)``.
      entry: the first logged step with ``lr * sharpness >= 2`` per row, or -1.
      at_entry, at_end: spherical sharpness at the entry (row 0) and at the end, per row;
        for the row without weight decay ``at_entry`` is taken at row 0's entry step.
      band_low, band_high: min and max of ``lr * sharpness`` from row 0's entry on.
      status: ``"finished N steps"`` or ``"diverged at step k"`` per row.
    """

    steps: np.ndarray
    loss: np.ndarray
    sharpness: np.ndarray
    sq_norm: np.ndarray
    spherical: np.ndarray
    entry: np.ndarray
    at_entry: np.ndarray
    at_end: np.ndarray
    band_low: float
    band_high: float
    lr: float
    wd: float
    status: tuple[str, ...]


def normalized_experiment(sizes: NormSizes | None = None, *, seed: int = 0) -> NormResult:
    """GD with and without weight decay on :func:`dltheory.normalization.scale_invariant_mlp`
    with one trainable matrix (so the loss is scale invariant in all of its parameters),
    square loss on digits, one vmapped call; logs the spherical sharpness.

    References:
      Lyu, Li, Arora (2022), arXiv:2206.07085 (with normalization and weight decay, GD at
      the edge of stability reduces the spherical sharpness).
    """
    s = NormSizes.current() if sizes is None else V.check_instance("sizes", sizes, NormSizes)
    seed = V.check_seed("seed", seed)
    V.check_steps(s.steps, s.log_every)
    batch = _batch(s.n_train)
    model = N.scale_invariant_mlp((64, s.width, 10), seed=seed, dtype=jnp.float32)
    res = training.sweep(_mse, model, training.optimizer(
        N.sgd_wd, learning_rate=s.lr, weight_decay=jnp.asarray([s.wd, 0.0], jnp.float32)),
        steps=s.steps, batches=batch, log_every=s.log_every, metrics=_sharp, eval_data=batch)
    sharp, sq = res["sharpness"], res["sq_norm"]
    sph = sharp * sq
    entry = np.array([_first(s.lr * r >= 2) for r in sharp])
    e = max(int(entry[0]), 0)
    return NormResult(steps=res.steps, loss=res["loss"], sharpness=sharp, sq_norm=sq,
                      spherical=sph, entry=np.where(entry >= 0, res.steps[entry], -1),
                      at_entry=sph[:, e], at_end=sph[:, -1],
                      band_low=float(s.lr * sharp[0, e:].min()),
                      band_high=float(s.lr * sharp[0, e:].max()), lr=s.lr, wd=s.wd,
                      status=tuple(f"diverged at step {d}" if d >= 0 else
                                   f"finished {s.steps} steps" for d in res.diverged_at))
