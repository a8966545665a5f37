"""Auto rate-tuning under SGD: how fast a fixed learning rate finds a stationary point.

For a loss that is scale invariant in every trained group, Arora, Li and Lyu (2019) prove
that gradient descent with a *fixed* learning rate, chosen without knowing the smoothness
of the loss, still approaches a stationary point at the rate of a well-tuned one:
``min_{t < T} |grad L(w_t)|`` shrinks like ``T^(-1/2)`` for full-batch GD, and
``min_{t < T} E |grad L(w_t)|^2`` like ``T^(-1/2)`` up to logarithms for SGD, i.e. the
smallest gradient *norm* like ``T^(-1/4)``. The mechanism is the norm identity: a step
that is too large makes ``|w|`` grow, which lowers the effective learning rate
``eta / |w|^2`` until it suits the curvature.

:func:`sgd_rate` measures it: SGD without weight decay at several fixed learning rates
(one vmapped call over learning rates and seeds), the full-batch gradient every
``log_every`` steps, and the log-log slope of ``min_{t <= T}`` of its seed-averaged
square against ``T``. The same call on an ordinary MLP (biases, trained last layer, no
normalization) shows what the theorem rules out: at a learning rate far above
``2 / lambda_max`` that network diverges or stalls.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dltheory import data as D
from dltheory import validation as V
from dltheory.normalization.core import ScaleInvariantMLP, group_sq_norms, sgd_wd
from dltheory.training import optimizer, sweep

__all__ = ["RATE_MODELS", "SgdRateResult", "sgd_rate"]

#: The models :func:`sgd_rate` trains: the scale-invariant MLP of the chapters, and an
#: ordinary MLP of the same widths (biases, trained last layer, no normalization).
RATE_MODELS = ("scale_invariant", "plain")


@dataclasses.dataclass(frozen=True)
class SgdRateResult:
    """SGD at fixed learning rates, no weight decay: the gradient norm over time.

    Arrays have leading axes ``(n_etas, n_seeds)``.

    Attributes:
      etas: the learning rates, shape ``(n_etas,)``.
      model: ``"scale_invariant"`` or ``"plain"`` (see ``RATE_MODELS``).
      batch_size: the SGD minibatch size (``None``: full-batch GD).
      steps: logged steps ``0, k, 2k, ..., T``, shape ``(n_log,)``.
      loss: full training loss at the logged steps, ``(..., n_log)``.
      grad_sq: ``|grad L(w_t)|^2`` of the full training loss at the weights SGD holds,
        summed over all trained weights, ``(..., n_log)``.
      grad_sq_unit: the same at the weights with every group rescaled to unit norm,
        ``sum_g |w_g|^2 |grad_g L(w_t)|^2`` (scale-invariant model only, NaN otherwise):
        the gradient with the norm growth divided out.
      sq_norm: ``|w_g|^2`` per trained array, ``(..., n_log, n_groups)``.
      diverged_at: the step at which a run's loss became non-finite, or -1,
        shape ``(n_etas, n_seeds)``.
      fit_from: the first ``T`` of the slope fit.
      sharpness: the top Hessian eigenvalue of the full training loss at the first seed's
        initialization (power iteration; NaN when not computed). ``2 / sharpness`` is the
        largest learning rate the classical smooth analysis allows there.
    """

    etas: np.ndarray
    model: str
    batch_size: int | None
    steps: np.ndarray
    loss: np.ndarray
    grad_sq: np.ndarray
    grad_sq_unit: np.ndarray
    sq_norm: np.ndarray
    diverged_at: np.ndarray
    fit_from: int
    sharpness: float

    def min_grad_norm(self, unit: bool = False) -> np.ndarray:
        """``sqrt(min_{t <= T} mean_seeds |grad L(w_t)|^2)`` at every logged ``T``.

        The seed mean estimates the expectation of the theorem, and the running minimum
        is its ``min_{t <= T}``. A learning rate with a diverged seed gives NaN from the
        first logged step at or after the divergence.

        Args:
          unit: use the gradient at unit-norm groups (``grad_sq_unit``).

        Returns:
          Shape ``(n_etas, n_log)``.
        """
        if not isinstance(unit, (bool, np.bool_)):
            raise TypeError(f"argument `unit` must be True or False; got {unit!r}")
        g = self.grad_sq_unit if unit else self.grad_sq
        with np.errstate(invalid="ignore"):
            mean = g.mean(axis=1)
            bad = ~np.isfinite(mean)
            run = np.minimum.accumulate(np.where(bad, np.inf, mean), axis=-1)
            run = np.where(np.logical_or.accumulate(bad, axis=-1), np.nan, run)
        return np.sqrt(run)

    def fitted_slope(self, unit: bool = False) -> np.ndarray:
        """Least-squares slope of ``log min_{t <= T} |grad L|`` against ``log T`` over the
        logged ``T >= fit_from``, per learning rate (NaN where a seed diverged). The
        theorem's bound for SGD is ``-1/4``, for GD ``-1/2``: a measured slope at or
        below it means at least that fast."""
        m = self.min_grad_norm(unit)
        keep = self.steps >= self.fit_from
        out = np.full(len(self.etas), np.nan)
        for i in range(len(self.etas)):
            y = m[i, keep]
            if keep.sum() >= 2 and np.all(np.isfinite(y)) and np.all(y > 0):
                out[i] = np.polyfit(np.log(self.steps[keep]), np.log(y), 1)[0]
        return out

    @property
    def slope(self) -> np.ndarray:
        """:meth:`fitted_slope` of the gradient at the weights SGD holds."""
        return self.fitted_slope(False)

    @property
    def slope_unit(self) -> np.ndarray:
        """:meth:`fitted_slope` of the gradient at unit-norm groups."""
        return self.fitted_slope(True)

    @property
    def norm_growth(self) -> np.ndarray:
        """``sum_g |w_g(T)|^2 / sum_g |w_g(0)|^2``, seed mean, per learning rate (NaN for a
        diverged learning rate)."""
        total = self.sq_norm.sum(-1)
        with np.errstate(invalid="ignore"):
            return (total[:, :, -1] / total[:, :, 0]).mean(axis=1)

    @property
    def diverged(self) -> np.ndarray:
        """Whether any seed of each learning rate diverged, shape ``(n_etas,)``."""
        return (self.diverged_at >= 0).any(axis=1)


@functools.lru_cache(maxsize=8)
def _rate_init(model: str, sizes: tuple[int, ...]):
    if model == "scale_invariant":
        def init(key):
            return ScaleInvariantMLP(sizes, rngs=nnx.Rngs(params=key))
    else:
        from dltheory.models import MLP

        def init(key):
            return MLP(sizes, rngs=nnx.Rngs(params=key))
    return init


def _xent(model, batch):
    from dltheory.models import cross_entropy

    return cross_entropy(model(batch["x"]), batch["y"])


def _rate_metrics(model, batch):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    loss, g = jax.value_and_grad(lambda p: _xent(nnx.merge(graphdef, p, rest), batch))(params)
    gsq = jnp.stack([jnp.sum(jnp.square(x)) for x in jax.tree.leaves(g)])
    sq = group_sq_norms(params)
    return {"full_loss": loss, "grad_sq": gsq, "sq_norm": sq}


def sgd_rate(etas: Sequence[float], steps: int, *, model: str = "scale_invariant",
             seeds: Sequence[int] = (0, 1), batch_size: int | None = 32, width: int = 64,
             log_every: int = 10, fit_from: int = 100, sharpness_iters: int = 20,
             progress: bool | None = None) -> SgdRateResult:
    """SGD without weight decay at fixed learning rates on digits; the gradient over time.

    Every learning rate x seed is one member of one vmapped call of the engine; a seed
    fixes the initialization and the minibatch order. Every ``log_every`` steps the
    full-batch loss and gradient on the 1,437 training images are recorded.

    Args:
      etas: the fixed learning rates (each > 0), e.g. ``(0.1, 1, 10, 100)``.
      steps: SGD steps ``T``, a multiple of ``log_every``.
      model: ``"scale_invariant"`` (two normalized hidden layers, no biases, last layer
        fixed: every trained weight is scale invariant) or ``"plain"`` (the same widths
        as an ordinary MLP: biases, trained last layer, no normalization).
      seeds: seeds per learning rate.
      batch_size: SGD minibatch size, or ``None`` for full-batch gradient descent.
      width: hidden width (>= 2).
      log_every: logging interval (the time resolution of the minimum).
      fit_from: the first logged ``T`` the slope fit uses (it skips the first steps,
        where a large learning rate is still growing the norm).
      sharpness_iters: power iterations for ``SgdRateResult.sharpness`` (0: skip).

    Returns:
      An :class:`SgdRateResult`; ``result.slope`` are the fitted exponents.

    References:
      Arora, Li, Lyu (2019), Theoretical Analysis of Auto Rate-Tuning by Batch
      Normalization, ICLR, arXiv:1812.03981: the convergence theorems for GD (rate
      ``T^(-1/2)``) and SGD (``T^(-1/4)`` for the gradient norm) with the learning rate
      of the scale-invariant weights fixed.
    """
    etas = V.check_array("etas", etas, ndim=1, positive=True)
    steps, log_every = V.check_steps(steps, log_every)
    V.check_choice("model", model, RATE_MODELS)
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"argument `seeds` must be a sequence of integer seeds; got {seeds!r}")
    seeds = [V.check_seed("seeds[i]", s) for s in seeds]
    if not seeds:
        raise ValueError("argument `seeds` must name at least one seed; got an empty sequence")
    ds = D.digits()
    n_train = int(ds.x_train.shape[0])
    if batch_size is not None:
        batch_size = V.check_int("batch_size", batch_size, minimum=1, maximum=n_train)
    width = V.check_int("width", width, minimum=2)
    fit_from = V.check_int("fit_from", fit_from, minimum=1, maximum=steps)
    sharpness_iters = V.check_int("sharpness_iters", sharpness_iters, minimum=0)

    sizes = (int(ds.x_train.shape[1]), width, width, 10)
    init = _rate_init(model, sizes)
    ne, ns = len(etas), len(seeds)
    opt = optimizer(sgd_wd, learning_rate=np.repeat(etas.astype(np.float32), ns),
                    weight_decay=0.0)
    batches = ds.train if batch_size is None else D.Minibatches.of(ds.train, batch_size)
    res = sweep(_xent, init, opt, steps=steps, seeds=[s for _ in range(ne) for s in seeds],
                batches=batches, log_every=log_every, metrics=_rate_metrics,
                eval_data=ds.train, progress=progress)
    shape = (ne, ns)
    r = lambda k: np.asarray(res[k], np.float64).reshape(shape + res[k].shape[1:])  # noqa: E731
    gsq, sq = r("grad_sq"), r("sq_norm")
    unit = (gsq * sq).sum(-1) if model == "scale_invariant" else np.full(gsq.shape[:-1], np.nan)
    diverged = res.diverged_at.reshape(shape)
    full = r("full_loss")
    # from the divergence on, the engine freezes the weights: mark those records as missing
    stopped = (diverged[..., None] >= 0) & (res.steps[None, None, :] >= diverged[..., None])

    def nan(a):
        return np.where(stopped.reshape(stopped.shape + (1,) * (a.ndim - 3)), np.nan, a)

    sharp = float("nan")
    if sharpness_iters:
        from dltheory.curvature import sharpness

        sharp = float(sharpness(_xent, init(jax.random.key(seeds[0])), ds.train,
                                iters=sharpness_iters))
    return SgdRateResult(etas, model, batch_size, np.asarray(res.steps), nan(full),
                         nan(gsq.sum(-1)), nan(unit), nan(sq), diverged, fit_from, sharp)
