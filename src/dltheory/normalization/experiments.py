"""The experiments of Part IV, each one call into the engine returning a small result.

* :func:`gradient_scaling`: ``<grad L, w> = 0`` and ``|grad L(c w)| = |grad L(w)| / c``;
* :func:`norm_growth`: GD without weight decay; ``|w|^2`` grows by ``eta^2 |grad L|^2``;
* :func:`wd_vs_exponential`: weight decay against the exponential learning rate schedule;
* :func:`equilibrium_sweep`: SGD with weight decay on digits for a grid of learning
  rates, weight decays, initial norms and schedules (one vmapped call), with the
  effective learning rate, the angular update and the test accuracy over time;
* :func:`equilibrium_time`: the documented detection rule for "the effective learning
  rate has settled", and :func:`fast_equilibrium`, its scaling with ``1 / (eta lambda)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dltheory.compat import enable_x64
from dltheory import data as D
from dltheory import validation as V
from dltheory.config import Preset
from dltheory.models import accuracy, cross_entropy
from dltheory.normalization.core import (
    ScaleInvariantMLP,
    check_lr_wd,
    exp_lr_momentum_root,
    group_sq_norms,
    scale_invariant_mlp,
    sgd_exponential_lr,
    sgd_wd,
)
from dltheory.training import optimizer, sweep, train
from dltheory._jit import jit

__all__ = [
    "Config",
    "EquilibriumResult",
    "ExpLRResult",
    "FastEquilibriumResult",
    "GradientScalingResult",
    "NormGrowthResult",
    "NormSizes",
    "equilibrium_sweep",
    "equilibrium_time",
    "fast_equilibrium",
    "moving_average",
    "gradient_scaling",
    "norm_growth",
    "run_configs",
    "wd_vs_exponential",
    "xent",
]

#: The digits network of the chapters: 64 pixels, two normalized hidden layers, 10 classes.
SIZES = (64, 128, 128, 10)


@dataclasses.dataclass(frozen=True)
class NormSizes(Preset):
    """Sizes of the Part's experiments.

    Attributes:
      gd_steps: full-batch GD steps of the norm-growth experiment.
      gd_examples: training examples used by it (float64, full batch).
      exp_steps: steps of the weight decay vs exponential schedule comparison.
      eq_steps: SGD steps of the equilibrium experiment (>= 5 / (eta lambda) for its
        smallest product).
      eq_seeds: seeds per configuration (all configurations x seeds: one vmapped call).
      fast_steps: SGD steps of the fast-equilibrium runs.
      fast_products: the products ``eta lambda`` of the fast-equilibrium fit.
      fast_log_every: logging interval of those runs (the time resolution).
      widget_steps: SGD steps of the precomputed widget grid.
      batch_size: SGD minibatch size.
      width: hidden width of the digits network.
      log_every: logging interval of the SGD runs.
      rate_steps: SGD steps of the convergence-rate experiment
        (:func:`~dltheory.normalization.sgd_rate`).
      rate_seeds: seeds per learning rate there.
      rate_log_every: its logging interval (each record is a full-batch gradient).
      mom_steps: SGD steps of the angular update with momentum
        (:func:`~dltheory.normalization.momentum_angular_update`).
      mom_seeds: seeds per momentum there.
      mom_log_every: the block of steps its angles are averaged over.
    """

    gd_steps: int
    gd_examples: int
    exp_steps: int
    eq_steps: int
    eq_seeds: int
    fast_steps: int
    fast_products: tuple[float, ...]
    fast_log_every: int
    widget_steps: int
    batch_size: int
    width: int
    log_every: int
    rate_steps: int
    rate_seeds: int
    rate_log_every: int
    mom_steps: int
    mom_seeds: int
    mom_log_every: int

    @classmethod
    def quick(cls) -> NormSizes:
        return cls(gd_steps=150, gd_examples=256, exp_steps=500, eq_steps=1000, eq_seeds=2,
                   fast_steps=1600, fast_products=(0.005, 0.01, 0.02, 0.04), fast_log_every=5,
                   widget_steps=400, batch_size=32, width=64, log_every=10, rate_steps=3000,
                   rate_seeds=3, rate_log_every=10, mom_steps=1500, mom_seeds=3,
                   mom_log_every=50)

    @classmethod
    def paper(cls) -> NormSizes:
        return cls(gd_steps=2000, gd_examples=1437, exp_steps=2000, eq_steps=10000,
                   eq_seeds=16, fast_steps=32000,
                   fast_products=(0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032),
                   fast_log_every=5, widget_steps=4000, batch_size=32, width=256,
                   log_every=10, rate_steps=30000, rate_seeds=8, rate_log_every=50,
                   mom_steps=5000, mom_seeds=8, mom_log_every=50)


def xent(model: nnx.Module, batch: dict) -> jax.Array:
    """Cross-entropy of ``model`` on ``{"x", "y"}`` (the loss every experiment trains).

    Raises:
      TypeError: unless ``model`` is a flax.nnx module and ``batch`` a mapping with the
        keys ``"x"`` (inputs) and ``"y"`` (integer labels).
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"argument `model` must be a flax.nnx module; got {model!r} of type "
                        f"{type(model).__name__}")
    if not isinstance(batch, Mapping) or "x" not in batch or "y" not in batch:
        raise TypeError(f"argument `batch` must be a mapping with keys 'x' (inputs) and 'y' "
                        f"(labels); got {batch!r} of type {type(batch).__name__}")
    return cross_entropy(model(batch["x"]), batch["y"])


def _check_width(width: Any) -> int:
    """A hidden width: an integer >= 2 (layer normalization of one unit is undefined)."""
    return V.check_int("width", width, minimum=2)


def _check_seeds(seeds: Any) -> list[int]:
    """A non-empty sequence of integer seeds."""
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"argument `seeds` must be a sequence of integer seeds; got {seeds!r}")
    out = [V.check_seed("seeds[i]", s) for s in seeds]
    if not out:
        raise ValueError(f"argument `seeds` must name at least one seed; got {seeds!r}")
    return out


def _check_configs(configs: Any) -> tuple:
    """A non-empty sequence of :class:`Config`."""
    if isinstance(configs, (str, bytes, Config)) or not isinstance(configs, Sequence):
        raise TypeError(f"argument `configs` must be a non-empty sequence of "
                        f"dltheory.normalization.Config; got {configs!r}")
    configs = tuple(configs)
    if not configs:
        raise ValueError(f"argument `configs` must be a non-empty sequence of "
                         f"dltheory.normalization.Config; got {configs!r}")
    for c in configs:
        if not isinstance(c, Config):
            raise TypeError(f"argument `configs` must hold dltheory.normalization.Config "
                            f"objects; got an element {c!r} of type {type(c).__name__}")
    return configs


def _grads(model: nnx.Module, batch: dict) -> Any:
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return jax.grad(lambda p: xent(nnx.merge(graphdef, p, rest), batch))(params)


# --------------------------------------------------------------------------------------
# Gradient orthogonality and the 1/c scaling
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GradientScalingResult:
    """The loss and gradient of one network at scaled copies ``c w`` of its weights.

    Attributes:
      scales: the factors ``c``, shape ``(n,)``.
      loss: ``L(c w)``, shape ``(n,)``.
      grad_norm: ``|grad_g L(c w)|`` per group, shape ``(n, n_groups)``.
      cosine: ``<grad_g L, w_g> / (|grad_g L| |w_g|)``, shape ``(n, n_groups)``.
      slope: fitted slope of ``log |grad L|`` against ``log c`` per group (theory: -1).
    """

    scales: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    cosine: np.ndarray
    slope: np.ndarray


def gradient_scaling(scales: Sequence[float] = tuple(np.geomspace(0.1, 100, 13)), *,
                     seed: int = 0, examples: int = 256, width: int = 128) -> GradientScalingResult:
    """Scale all weights of a fresh digits network by ``c`` and measure ``L`` and ``grad L``.

    Computed in float64 (inside a scoped ``dltheory.compat.enable_x64``), so deviations from the
    theory are at the level of float64 rounding.

    References:
      Arora, Li, Lyu (2019), arXiv:1812.03981 (scale invariance gives
      ``<grad L(w), w> = 0`` and ``grad L(c w) = grad L(w) / c``).
    """
    scales = V.check_array("scales", scales, ndim=1, positive=True)
    seed = V.check_seed("seed", seed)
    examples = V.check_int("examples", examples, minimum=2, maximum=1437)
    width = _check_width(width)
    with enable_x64(True):
        ds = D.digits()
        batch = {"x": jnp.asarray(ds.x_train[:examples], jnp.float64),
                 "y": ds.y_train[:examples]}
        model = scale_invariant_mlp((64, width, width, 10), seed=seed, dtype=jnp.float64)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        @jit
        def at(c):
            p = jax.tree.map(lambda w: c * w, params)
            loss, g = jax.value_and_grad(lambda q: xent(nnx.merge(graphdef, q, rest), batch))(p)
            gn = jnp.stack([jnp.linalg.norm(x) for x in jax.tree.leaves(g)])
            cos = jnp.stack([jnp.vdot(x, w) / (jnp.linalg.norm(x) * jnp.linalg.norm(w))
                             for x, w in zip(jax.tree.leaves(g), jax.tree.leaves(p))])
            return loss, gn, cos

        loss, gn, cos = jax.vmap(at)(jnp.asarray(scales))
        loss, gn, cos = np.asarray(loss), np.asarray(gn), np.asarray(cos)
    slope = np.array([np.polyfit(np.log(scales), np.log(gn[:, g]), 1)[0]
                      for g in range(gn.shape[1])])
    return GradientScalingResult(scales, loss, gn, cos, slope)


# --------------------------------------------------------------------------------------
# Auto rate-tuning: GD without weight decay
# --------------------------------------------------------------------------------------


def _gd_metrics(model, batch):
    g = _grads(model, batch)
    return {"sq_norm": group_sq_norms(model),
            "grad_sq": jnp.stack([jnp.sum(jnp.square(x)) for x in jax.tree.leaves(g)]),
            "accuracy": accuracy(model(batch["x"]), batch["y"])}


@dataclasses.dataclass(frozen=True)
class NormGrowthResult:
    """Full-batch GD without weight decay at several learning rates (float64).

    Attributes:
      etas: learning rates, shape ``(n,)``.
      steps: the steps ``0..T``.
      loss: training loss, shape ``(n, T + 1)``.
      accuracy: training accuracy, shape ``(n, T + 1)``.
      sq_norm: ``|w_g|^2``, shape ``(n, T + 1, n_groups)``.
      grad_sq: ``|grad_g L(w_t)|^2``, shape ``(n, T + 1, n_groups)``.
      residual: ``max_t | |w_{t+1}|^2 - |w_t|^2 - eta^2 |grad L(w_t)|^2 |`` per learning
        rate, over all steps and groups (theory: 0).
      relative_residual: the same divided by ``|w_{t+1}|^2``.
    """

    etas: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    sq_norm: np.ndarray
    grad_sq: np.ndarray
    residual: np.ndarray
    relative_residual: np.ndarray

    @property
    def effective_lr(self) -> np.ndarray:
        """``eta / |w_g|^2``, shape ``(n, T + 1, n_groups)``."""
        return self.etas[:, None, None] / self.sq_norm


def norm_growth(etas: Sequence[float], steps: int, *, examples: int = 512, seed: int = 0,
                width: int = 128) -> NormGrowthResult:
    """Full-batch GD *without* weight decay on digits, one vmapped call over ``etas``.

    Runs in float64 (scoped ``dltheory.compat.enable_x64``) and logs every step, so the identity
    ``|w_{t+1}|^2 = |w_t|^2 + eta^2 |grad L(w_t)|^2`` can be checked at every step.

    References:
      Arora, Li, Lyu (2019), arXiv:1812.03981 (the norm identity, and the
      convergence of GD with any fixed learning rate on scale-invariant weights).
    """
    etas = V.check_array("etas", etas, ndim=1, positive=True)
    steps = V.check_int("steps", steps, minimum=1)
    examples = V.check_int("examples", examples, minimum=2, maximum=1437)
    seed = V.check_seed("seed", seed)
    width = _check_width(width)
    with enable_x64(True):
        ds = D.digits()
        batch = {"x": jnp.asarray(ds.x_train[:examples], jnp.float64),
                 "y": ds.y_train[:examples]}
        model = scale_invariant_mlp((64, width, width, 10), seed=seed, dtype=jnp.float64)
        res = sweep(xent, model, optimizer(sgd_wd, learning_rate=jnp.asarray(etas),
                                           weight_decay=0.0),
                    steps=steps, batches=batch, metrics=_gd_metrics, eval_data=batch,
                    progress=False)
    sq, gsq = res["sq_norm"], res["grad_sq"]
    gap = np.abs(sq[:, 1:] - sq[:, :-1] - etas[:, None, None] ** 2 * gsq[:, :-1])
    return NormGrowthResult(etas, res.steps, res["loss"], res["accuracy"], sq, gsq,
                            np.nanmax(gap, axis=(1, 2)),
                            np.nanmax(gap / sq[:, 1:], axis=(1, 2)))


# --------------------------------------------------------------------------------------
# Weight decay versus the exponential learning-rate schedule
# --------------------------------------------------------------------------------------


def _probe_metrics(model, probe):
    return {"logits": model(probe), "sq_norm": group_sq_norms(model)}


@dataclasses.dataclass(frozen=True)
class ExpLRResult:
    """Two SGD runs on the same batches: weight decay, and the exponential schedule.

    Attributes:
      eta, wd, momentum: the weight-decay run's hyperparameters; ``alpha`` the root.
      steps: logged steps.
      logits_wd, logits_exp: network outputs on a probe batch, shape ``(n_log, m, 10)``.
      sq_norm_wd, sq_norm_exp: ``|w_g|^2`` of both runs, shape ``(n_log, n_groups)``.
      output_gap: ``max |f_wd - f_exp|`` over the probe batch per logged step.
      norm_ratio: ``|w~_t| / |w_t|`` per step and group (theory: ``alpha^(-t)``).
      lr_exp: the exponential schedule's learning rate at each logged step.
    """

    eta: float
    wd: float
    momentum: float
    alpha: float
    steps: np.ndarray
    logits_wd: np.ndarray
    logits_exp: np.ndarray
    sq_norm_wd: np.ndarray
    sq_norm_exp: np.ndarray
    lr_exp: np.ndarray

    @property
    def output_gap(self) -> np.ndarray:
        return np.abs(self.logits_wd - self.logits_exp).max(axis=(1, 2))

    @property
    def norm_ratio(self) -> np.ndarray:
        return np.sqrt(self.sq_norm_exp / self.sq_norm_wd)

    @property
    def predicted_ratio(self) -> np.ndarray:
        return self.alpha ** (-self.steps.astype(np.float64))


def wd_vs_exponential(eta: float, wd: float, steps: int = 500, *, momentum: float = 0.0,
                      correct_momentum: bool = True, batch_size: int = 64, seed: int = 0,
                      probe: int = 128, width: int = 128, log_every: int = 1,
                      float64: bool = True) -> ExpLRResult:
    """Train the digits network twice on the same minibatches and compare the outputs.

    Run A: SGD with learning rate ``eta``, weight decay ``wd`` (and momentum). Run B: SGD
    without weight decay under ``eta_t = eta alpha^(-2t-1)``. The theorem says
    ``w_B(t) = alpha^(-t) w_A(t)``, so the networks compute the same function.

    Args:
      eta, wd: learning rate and weight decay of run A (``eta * wd < 1``).
      steps: number of SGD steps.
      momentum: heavy-ball momentum of both runs.
      correct_momentum: start run B's momentum buffer where the equivalence needs it
        (see :func:`~dltheory.normalization.sgd_exponential_lr`).
      batch_size, seed: the minibatches (the same sequence for both runs).
      probe: number of test images the outputs are compared on.
      float64: run in float64 (scoped ``dltheory.compat.enable_x64``), as the 1e-8 claim needs.

    References:
      Li, Arora (2020), arXiv:1910.07454 (the main theorem on the exponential
      learning rate).
    """
    eta, wd = check_lr_wd(eta, wd)
    alpha = exp_lr_momentum_root(eta, wd, momentum)
    steps, log_every = V.check_steps(steps, log_every)
    for name, flag in (("correct_momentum", correct_momentum), ("float64", float64)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"argument `{name}` must be True or False; got {flag!r}")
    seed = V.check_seed("seed", seed)
    width = _check_width(width)
    dtype = jnp.float64 if float64 else jnp.float32
    with enable_x64(bool(float64)):
        ds = D.digits()
        batch_size = V.check_int("batch_size", batch_size, minimum=1,
                                 maximum=int(ds.x_train.shape[0]))
        probe = V.check_int("probe", probe, minimum=1, maximum=int(ds.x_test.shape[0]))
        train_data = {"x": jnp.asarray(ds.x_train, dtype), "y": ds.y_train}
        probe_x = jnp.asarray(ds.x_test[:probe], dtype)
        model = scale_invariant_mlp((64, width, width, 10), seed=seed, dtype=dtype)
        batches = D.Minibatches.of(train_data, batch_size)
        kw = {"steps": steps, "batches": batches, "key": seed, "log_every": log_every,
              "metrics": _probe_metrics, "eval_data": probe_x, "progress": False}
        a = train(xent, model, optimizer(sgd_wd, learning_rate=eta, weight_decay=wd,
                                         momentum=momentum), **kw)
        b = train(xent, model, optimizer(sgd_exponential_lr, learning_rate=eta,
                                         weight_decay=wd, momentum=momentum,
                                         correct_momentum=bool(correct_momentum)), **kw)
    lr_exp = eta * alpha ** (-(2 * a.steps.astype(np.float64) + 1))
    return ExpLRResult(eta, wd, float(momentum), alpha, a.steps, a["logits"], b["logits"],
                       a["sq_norm"], b["sq_norm"], lr_exp)


# --------------------------------------------------------------------------------------
# SGD with weight decay: the equilibrium
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    """One training configuration of :func:`equilibrium_sweep`.

    Attributes:
      eta, wd: learning rate and weight decay (after the first phase).
      init_scale: the initial weights are ``init_scale`` times the default ones.
      phase_factor, phase_steps: for the first ``phase_steps`` steps the learning rate is
        ``phase_factor * eta`` and the weight decay ``wd / phase_factor`` (same product).
      label: a name for plots.
    """

    eta: float
    wd: float
    init_scale: float = 1.0
    phase_factor: float = 1.0
    phase_steps: int = 0
    label: str = ""

    def __post_init__(self):
        check_lr_wd(self.eta, self.wd)
        V.check_positive("init_scale", self.init_scale)
        V.check_positive("phase_factor", self.phase_factor)
        V.check_int("phase_steps", self.phase_steps, minimum=0)
        check_lr_wd(self.eta * self.phase_factor, self.wd / self.phase_factor)

    @property
    def product(self) -> float:
        """The intrinsic learning rate ``eta * wd``."""
        return self.eta * self.wd

    def name(self) -> str:
        if self.label:
            return self.label
        s = f"η={self.eta:g}, λ={self.wd:g}"
        if self.init_scale != 1:
            s += f", |w₀|×{self.init_scale:g}"
        if self.phase_steps:
            s += f", η×{self.phase_factor:g} for {self.phase_steps} steps"
        return s


@functools.lru_cache(maxsize=16)
def _init_fn(sizes: tuple[int, ...]):
    def init(key):
        return ScaleInvariantMLP(sizes, rngs=nnx.Rngs(params=key))
    return init


def _eq_metrics(model, test):
    logits = model(test["x"])
    return {"sq_norm": group_sq_norms(model), "test_accuracy": accuracy(logits, test["y"]),
            "test_loss": cross_entropy(logits, test["y"])}


@dataclasses.dataclass(frozen=True)
class EquilibriumResult:
    """SGD with weight decay on digits for configurations x seeds (one vmapped call).

    Arrays have leading axes ``(n_configs, n_seeds)``.

    Attributes:
      configs: the :class:`Config` of each row.
      steps: logged steps, shape ``(n_log,)``.
      sq_norm: ``|w_g|^2`` in the configuration's own coordinates, ``(..., n_log, n_groups)``.
      effective_lr: ``eta_t / |w_g|^2`` with ``eta_t`` the learning rate in force,
        ``(..., n_log, n_groups)``.
      angular: root-mean-square angle turned per step over each logging interval,
        ``(..., n_log - 1, n_groups)``, from the exact norm recursion (orthogonality
        makes ``|w|^2`` alone determine it; no momentum).
      test_accuracy, test_loss, train_loss: ``(..., n_log)``.
      diverged_at: ``(n_configs, n_seeds)``.
    """

    configs: tuple[Config, ...]
    steps: np.ndarray
    sq_norm: np.ndarray
    effective_lr: np.ndarray
    angular: np.ndarray
    test_accuracy: np.ndarray
    test_loss: np.ndarray
    train_loss: np.ndarray
    diverged_at: np.ndarray

    def late(self, values: np.ndarray, fraction: float = 0.25) -> np.ndarray:
        """Mean over the last ``fraction`` of the logged points (axis ``2``)."""
        values = np.asarray(values)
        if values.ndim < 3:
            raise ValueError(f"argument `values` must have axes (n_configs, n_seeds, n_log, "
                             f"...); got shape {values.shape}")
        V.check_in_range("fraction", fraction, 0.0, 1.0, low_inclusive=False)
        n = values.shape[2]
        k = max(1, round(fraction * n))
        return values[:, :, n - k:].mean(axis=2)

    def equilibrium_time(self, **kwargs) -> np.ndarray:
        """:func:`equilibrium_time` of every run, shape ``(n_configs, n_seeds)``."""
        return equilibrium_time(self.steps, self.effective_lr, **kwargs)

    def geometric_mean_effective_lr(self, layer: int | None = 0) -> np.ndarray:
        """The effective learning rate averaged over seeds geometrically.

        ``exp(mean_seeds log(eta_t / |w_g|^2))``: the effective learning rate spans
        decades, so the mean of its logarithm is the typical trajectory (and what
        :func:`fast_equilibrium` fits).

        Args:
          layer: the group ``g`` (``0``: the first hidden layer), or ``None`` for all.

        Returns:
          Shape ``(n_configs, n_log)``, or ``(n_configs, n_log, n_groups)`` when
          ``layer`` is ``None``.
        """
        if layer is None:
            return np.exp(np.log(self.effective_lr).mean(axis=1))
        n_groups = self.effective_lr.shape[-1]
        layer = V.check_int("layer", layer, minimum=0, maximum=n_groups - 1)
        return np.exp(np.log(self.effective_lr[:, :, :, layer]).mean(axis=1))

    def settled_from(self, product: float, multiple: float = 5.0) -> float:
        """The step from which a run with ``eta lambda = product`` counts as settled,
        ``multiple / product`` (the fast-equilibrium time scale), or the last logged step
        when the run is shorter than that (a step-capped run)."""
        product = V.check_positive("product", product)
        multiple = V.check_positive("multiple", multiple)
        return min(multiple / product, float(self.steps[-1]))

    def mean_after(self, values: np.ndarray, start: float) -> np.ndarray:
        """Seed mean of the time average over the logged steps ``>= start``.

        Args:
          values: a per-run array with axes ``(n_configs, n_seeds, n_log, ...)``, e.g.
            ``effective_lr`` or ``test_accuracy``.
          start: the first step counted (e.g. ``5 / (eta lambda)``, once equilibrium
            has been reached).

        Returns:
          Shape ``(n_configs, ...)``.
        """
        values = np.asarray(values)
        if values.ndim < 3 or values.shape[2] != len(self.steps):
            raise ValueError(f"argument `values` must have shape (n_configs, n_seeds, "
                             f"{len(self.steps)}, ...); got {values.shape}")
        keep = self.steps >= V.check_finite("start", start)
        if not keep.any():
            raise ValueError(f"argument `start` must be at most the last logged step "
                             f"{int(self.steps[-1])}; got {start!r}")
        return values[:, :, keep].mean(axis=2).mean(axis=1)

    def effective_lr_gap(self, start: float, reference: int = 0) -> np.ndarray:
        """How far each configuration's equilibrium is from ``reference``'s.

        ``max_g |v_i,g / v_ref,g - 1|`` with ``v`` the :meth:`mean_after` ``start`` of
        the effective learning rate: the relative gap of the worst layer, shape
        ``(n_configs,)`` (``0`` at ``reference``). Same ``eta lambda``, same equilibrium:
        the theory says small for configurations that share the reference's product.
        """
        reference = V.check_int("reference", reference, minimum=0,
                                maximum=len(self.configs) - 1)
        eff = self.mean_after(self.effective_lr, start)
        return np.max(np.abs(eff / eff[reference] - 1), axis=1)


def equilibrium_sweep(configs: Sequence[Config], steps: int, *, seeds: Sequence[int] = (0,),
                      batch_size: int = 64, width: int = 128, log_every: int = 10,
                      progress: bool | None = None) -> EquilibriumResult:
    """SGD with weight decay on digits: every configuration x seed in one vmapped call.

    A seed fixes the initialization *and* the minibatch order, so configurations with the
    same seed see the same data in the same order.

    Initial norms are varied exactly, without building new networks: because the loss is
    scale invariant, SGD from ``c w_0`` with ``(eta, lambda)`` is ``c`` times SGD from
    ``w_0`` with ``(eta / c^2, lambda c^2)`` (induction on
    ``c w_{t+1} = (1 - eta lambda) c w_t - eta grad L(c w_t)`` and
    ``grad L(c w) = grad L(w) / c``). The sweep runs the latter and reports norms in the
    original coordinates; the effective learning rate is the same in both.

    Returns:
      An :class:`EquilibriumResult`.

    References:
      Li, Lyu, Arora (2020), arXiv:2010.02916 (equilibrium of norm and angular update;
      same ``eta lambda``, same equilibrium).
    """
    configs = _check_configs(configs)
    width = _check_width(width)
    ds = D.digits()
    return run_configs(configs, steps, init=_init_fn((64, width, width, 10)),
                       train_data=ds.train, test_data=ds.test, seeds=seeds,
                       batch_size=batch_size, log_every=log_every, progress=progress)


def _norm_metrics(model, test):
    return {"sq_norm": group_sq_norms(model)}


def run_configs(configs: Sequence[Config], steps: int, *, init: Any, train_data: Any,
                test_data: Any, seeds: Sequence[int] = (0,), batch_size: int = 64,
                log_every: int = 10, evaluate: bool = True,
                progress: bool | None = None) -> EquilibriumResult:
    """:func:`equilibrium_sweep` on any scale-invariant model and data.

    Args:
      configs: the :class:`Config` grid.
      steps: SGD steps.
      init: ``init(key) -> nnx model`` whose trainable weights are all scale invariant.
      train_data, test_data: ``{"x", "y"}`` batches.
      seeds: seeds per configuration (initialization and minibatch order).
      evaluate: record test accuracy and loss (else only the norms: cheaper).
    """
    configs = _check_configs(configs)
    seeds = _check_seeds(seeds)
    steps, log_every = V.check_steps(steps, log_every)
    for name, d in (("train_data", train_data), ("test_data", test_data)):
        if not isinstance(d, Mapping) or "x" not in d or "y" not in d:
            raise TypeError(f"argument `{name}` must be a mapping with keys 'x' and 'y'; got "
                            f"{d!r} of type {type(d).__name__}")
    n_train = int(np.shape(train_data["x"])[0])
    batch_size = V.check_int("batch_size", batch_size, minimum=1, maximum=n_train)
    V.check_callable("init", init)
    if not isinstance(evaluate, (bool, np.bool_)):
        raise TypeError(f"argument `evaluate` must be True or False; got {evaluate!r}")
    nc, ns = len(configs), len(seeds)
    c2 = np.array([c.init_scale ** 2 for c in configs])
    eta = np.array([c.eta for c in configs]) / c2
    wd = np.array([c.wd for c in configs]) * c2
    rep = lambda a: np.repeat(np.asarray(a, np.float32), ns)
    opt = optimizer(sgd_wd, learning_rate=rep(eta), weight_decay=rep(wd),
                    phase_factor=rep([c.phase_factor for c in configs]),
                    phase_steps=np.repeat(np.array([c.phase_steps for c in configs],
                                                   np.int32), ns))
    res = sweep(xent, init, opt, steps=steps, seeds=[s for _ in configs for s in seeds],
                batches=D.Minibatches.of(train_data, batch_size), log_every=log_every,
                metrics=_eq_metrics if evaluate else _norm_metrics, eval_data=test_data,
                progress=progress)
    shape = (nc, ns)
    r = lambda k: res[k].astype(np.float64).reshape(shape + res[k].shape[1:])
    sq = r("sq_norm")
    # the hyperparameters in force at each logged step, in the configs' own coordinates
    st = res.steps[None, :]
    fac = np.array([c.phase_factor for c in configs])[:, None]
    ph = np.array([c.phase_steps for c in configs])[:, None]
    lr_t = np.array([c.eta for c in configs])[:, None] * np.where(st < ph, fac, 1.0)
    wd_t = np.array([c.wd for c in configs])[:, None] / np.where(st < ph, fac, 1.0)
    sq_orig = sq * c2[:, None, None, None]
    eff = lr_t[:, None, :, None] / sq_orig
    ang = _angular_intervals(sq_orig, lr_t, wd_t, log_every)
    nan = np.full(shape + (len(res.steps),), np.nan)
    return EquilibriumResult(configs, res.steps, sq_orig, eff, ang,
                             r("test_accuracy") if evaluate else nan,
                             r("test_loss") if evaluate else nan, r("loss"),
                             res.diverged_at.reshape(shape))


def _angular_intervals(sq, lr_t, wd_t, k):
    """RMS angle per step over intervals of ``k`` steps, from ``|w|^2`` alone.

    Without momentum and with ``<g, w> = 0``, ``|w_{t+1}|^2 = q |w_t|^2 + eta^2 |g_t|^2``
    with ``q = (1 - eta lambda)^2``, so over ``k`` steps
    ``|w_{t+k}|^2 - q^k |w_t|^2 = sum_j q^(k-1-j) eta^2 |g_{t+j}|^2``; dividing by
    ``sum_j q^j`` gives the (weighted) mean of ``eta^2 |g|^2``, and the angle per step is
    ``arctan(eta |g| / ((1 - eta lambda) |w|))``. (Assumes the hyperparameters are constant
    within each interval: true away from a phase boundary.)
    """
    eta = lr_t[:, None, :-1, None]
    wd = wd_t[:, None, :-1, None]
    q = (1 - eta * wd) ** 2
    qk = q ** k
    denom = (1 - qk) / (1 - q)
    step_sq = np.maximum(sq[:, :, 1:, :] - qk * sq[:, :, :-1, :], 0.0) / denom
    return np.arctan(np.sqrt(step_sq) / (np.sqrt(sq[:, :, :-1, :]) * (1 - eta * wd)))


# --------------------------------------------------------------------------------------
# When has the effective learning rate settled?
# --------------------------------------------------------------------------------------


def moving_average(values: Any, window: int) -> np.ndarray:
    """The mean of each ``window`` consecutive logged points along the last axis, centred
    (``np.convolve(v, ones(window), "same")`` divided by the number of points it covers,
    so the ends average the points that exist).

    Args:
      values: a 1-D sequence, or a 2-D array of rows (e.g. one per seed), averaged along
        its last axis.
      window: the number of logged points averaged, an integer >= 1.

    Raises:
      ValueError, TypeError: if ``values`` is not a 1-D or 2-D array of numbers or
        ``window`` is not a positive integer.
    """
    v = V.check_array("values", values, ndim=(1, 2), finite=False)
    window = V.check_int("window", window, minimum=1)
    return _moving_average(v, window)


def _moving_average(v: np.ndarray, window: int) -> np.ndarray:
    """:func:`moving_average` along the last axis of an array of any rank."""
    n = v.shape[-1]
    c = np.concatenate([np.zeros(v.shape[:-1] + (1,)), np.cumsum(v, axis=-1)], axis=-1)
    i = np.arange(n)
    lo = np.maximum(0, i - window // 2)
    hi = np.minimum(n, i + (window - 1) // 2 + 1)
    return (c[..., hi] - c[..., lo]) / (hi - lo)


def equilibrium_time(steps: Any, effective_lr: Any, *, rtol: float = 0.1,
                     window: int = 5, tail: float = 0.25) -> np.ndarray:
    """Steps until the effective learning rate reaches equilibrium: the book's rule.

    The rule, for one run and one group:

    1. the *equilibrium value* ``v*`` is the median of the effective learning rate over
       the last ``tail`` fraction of the logged points;
    2. the trajectory is smoothed by a centred running mean of ``log v`` over ``window``
       logged points (at the edges, over the points available);
    3. the *equilibrium time* is the first logged step at which the smoothed trajectory
       is within a factor ``1 + rtol`` of ``v*``, ``|log v - log v*| <= log(1 + rtol)``
       (a rise time: the first entry into the band).

    Why first entry and not "stays in the band for good": at equilibrium SGD keeps the
    effective learning rate fluctuating (by 10-20% at batch size 32 on digits), so the
    last exit from a 10% band measures the noise and the run length, not the
    transient. A run settles when all its groups have: the time is the maximum over
    groups. A run with a non-finite value (diverged) gets NaN, and so does a run whose
    smoothed trajectory never enters the band. The rule cannot see an equilibrium the
    run never reached: make the run several times ``1 / (eta lambda)`` long so that its
    tail is in equilibrium.

    Args:
      steps: logged steps, shape ``(n_log,)``.
      effective_lr: shape ``(..., n_log)`` or ``(..., n_log, n_groups)`` (the last axis
        is taken as groups when it differs in size from ``steps``).
      rtol: the tolerance band (0.1: within 10%).
      window: smoothing window in logged points.
      tail: fraction of the run that defines ``v*``.

    Returns:
      Equilibrium steps, shape ``(...)`` (float, NaN where undefined).

    References:
      Li, Lyu, Arora (2020), arXiv:2010.02916 (the Fast Equilibrium Conjecture: this
      time scales like ``1 / (eta lambda)``).
    """
    steps = V.check_array("steps", steps, ndim=1)
    v = V.check_array("effective_lr", effective_lr, finite=False)
    n = steps.shape[0]
    if v.shape[-1] != n:
        if v.ndim < 2 or v.shape[-2] != n:
            raise ValueError(f"argument `effective_lr` must have shape (..., {n}) or "
                             f"(..., {n}, n_groups); got {v.shape}")
        v = np.moveaxis(v, -1, 0)  # groups first
        out = equilibrium_time(steps, v, rtol=rtol, window=window, tail=tail)
        return np.max(out, axis=0)  # NaN (a group that never settled) propagates
    V.check_positive("rtol", rtol)
    window = V.check_int("window", window, minimum=1, maximum=n)
    V.check_in_range("tail", tail, 0.0, 1.0, low_inclusive=False)
    k = max(1, round(tail * n))
    with np.errstate(invalid="ignore", divide="ignore"):
        logv = np.log(v)
    bad = ~np.all(np.isfinite(logv), axis=-1)
    logv = np.where(np.isfinite(logv), logv, 0.0)
    target = np.median(logv[..., n - k:], axis=-1, keepdims=True)
    smooth = _moving_average(logv, window)
    inside = np.abs(smooth - target) <= math.log1p(rtol)
    first = np.argmax(inside, axis=-1)
    bad = bad | ~inside.any(-1)
    t = steps[first]
    return np.where(bad, np.nan, t)


@dataclasses.dataclass(frozen=True)
class FastEquilibriumResult:
    """Equilibrium time against ``1 / (eta lambda)``.

    Attributes:
      products: the ``eta lambda`` values, shape ``(n,)``.
      eta: the common learning rate (``lambda = product / eta``).
      times: equilibrium time per product and seed, shape ``(n, n_seeds)``.
      mean_times: equilibrium time of the seed-averaged (geometric mean) trajectory,
        shape ``(n,)``: what the fit uses.
      slope, intercept: least-squares fit of ``log mean_times`` on
        ``log (1 / (eta lambda))`` (the conjecture: slope 1).
      sweep: the underlying :class:`EquilibriumResult`.
    """

    products: np.ndarray
    eta: float
    times: np.ndarray
    mean_times: np.ndarray
    slope: float
    intercept: float
    sweep: EquilibriumResult


def fast_equilibrium(products: Sequence[float], steps: int, *, eta: float = 0.1,
                     init_scale: float = 1.0, seeds: Sequence[int] = (0, 1),
                     batch_size: int = 64, width: int = 128, log_every: int = 10,
                     rtol: float = 0.1, progress: bool | None = None) -> FastEquilibriumResult:
    """Time to equilibrium for several ``eta lambda`` (one sweep) and its log-log slope.

    The learning rate is fixed and the weight decay is ``product / eta``. The time is
    measured by :func:`equilibrium_time` on the effective learning rate, per seed; the
    fit uses the mean over seeds.

    References:
      Li, Lyu, Arora (2020), arXiv:2010.02916, the Fast Equilibrium Conjecture
      (equilibrium in ``O~(1 / (eta lambda))`` steps).
    """
    products = V.check_array("products", products, ndim=1, positive=True)
    if products.size < 2:
        raise ValueError(f"argument `products` needs at least two values; got "
                         f"{products.tolist()!r}")
    if np.any(products >= 1):
        raise ValueError(f"argument `products` must lie in (0, 1) (eta * wd < 1); got "
                         f"{products.tolist()!r}")
    eta = V.check_positive("eta", eta)
    V.check_positive("init_scale", init_scale)
    V.check_positive("rtol", rtol)
    width = _check_width(width)
    configs = [Config(eta, float(p) / eta, init_scale=init_scale) for p in products]
    ds = D.digits()
    res = run_configs(configs, steps, init=_init_fn((64, width, width, 10)),
                      train_data=ds.train, test_data=ds.test, seeds=seeds,
                      batch_size=batch_size, log_every=log_every, evaluate=False,
                      progress=progress)
    times = res.equilibrium_time(rtol=rtol)
    # the fit uses the seed-averaged trajectory (geometric mean), which is less noisy
    mean = equilibrium_time(res.steps, res.geometric_mean_effective_lr(None), rtol=rtol)
    ok = np.isfinite(mean) & (mean > 0)
    if ok.sum() < 2:
        raise ValueError("fewer than two products reached a measurable equilibrium; "
                         "run longer or use larger products")
    slope, intercept = np.polyfit(np.log(1 / products[ok]), np.log(mean[ok]), 1)
    return FastEquilibriumResult(products, eta, times, mean, float(slope), float(intercept),
                                 res)
