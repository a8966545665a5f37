"""Robust training of scale-invariant nets: SGD with weight decay and relative clipping.

Li, Bhojanapalli, Zaheer, Reddi, Kumar (2022) proposed a recipe for training that does
not care about the scale of the initial weights or of the loss: make the architecture
scale invariant, train with SGD and weight decay, and optionally clip the global gradient
norm at ``sqrt(2 C lambda / eta) |w|``. Here:

* :func:`relative_clip` is that clipping as an optax transformation (it counts the steps
  it clips), and :func:`robust_sgd` the recipe: loss scale, clipping, SGD with weight
  decay, every number in the optimizer state so a grid is one vmapped call;
* :func:`lemma_scalings` checks the paper's Lemma 2.4 (two rescalings that leave the
  iterates unchanged) on logistic regression on ``w / |w|`` in float64;
* :func:`robust_grid` trains the normalized digits MLP from many initial scales and loss
  scales, with and without weight decay and clipping, in one call; :func:`robust_explorer`
  is its widget.

References:
  Li, Bhojanapalli, Zaheer, Reddi, Kumar (2022), Robust Training of Neural Networks
  using Scale Invariant Architectures, ICML, arXiv:2202.00980 (Lemma 2.4; the recipe and
  its clipping rule, Algorithm 1).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dltheory import data as D
from dltheory import validation as V
from dltheory.compat import enable_x64
from dltheory.config import Preset
from dltheory.models import accuracy
from dltheory.normalization.core import _hyper, group_sq_norms, sgd_wd
from dltheory.normalization.experiments import _init_fn, xent
from dltheory.training import optimizer, sweep, train

__all__ = ["clip_ratio", "relative_clip", "robust_sgd", "clipped_steps", "recovery_steps",
           "toy_data", "toy_loss", "LemmaResult", "lemma_scalings", "RobustSizes",
           "Setting", "RobustResult", "robust_grid", "robust_figure", "robust_explorer",
           "INIT_SCALES", "LOSS_SCALES"]


def clip_ratio(eta: float, wd: float, c: float = 4.0) -> float:
    """The clipping ratio ``sqrt(2 C lambda / eta)`` of the recipe (``C = 4``: the paper's
    default ``sqrt(C) = 2``). At equilibrium the mean squared step balances the weight
    decay, ``eta^2 E|g|^2 = 2 eta lambda |w|^2``, so the ratio is ``sqrt(C)`` times the
    typical ``|g| / |w|`` there: clipping acts only on unusually large gradients."""
    return math.sqrt(2 * V.check_positive("c", c) * V.check_positive("wd", wd)
                     / V.check_positive("eta", eta))


class ClipState(NamedTuple):
    """The state of :func:`relative_clip`: how many steps it has clipped."""

    clipped: jax.Array


def _norm(tree: Any) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def relative_clip(ratio: Any) -> optax.GradientTransformation:
    """Clip the global gradient norm at ``ratio * |params|`` (``ratio = 0``: no clipping).

    ``g <- g * min(1, ratio |w| / |g|)`` with both norms over all parameters. The state
    counts the clipped steps (:func:`clipped_steps`).

    References:
      Li et al. (2022), arXiv:2202.00980, Algorithm 1 (with ``ratio`` from
      :func:`clip_ratio`).
    """
    _hyper("ratio", ratio, low=0.0)

    def init(params):
        return ClipState(jnp.zeros([], jnp.int32))

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("relative_clip's update needs `params` (the clip is relative)")
        gn, limit = _norm(grads), ratio * _norm(params)
        clip = (ratio > 0) & (gn > limit)
        f = jnp.where(clip, limit / jnp.maximum(gn, jnp.finfo(gn.dtype).tiny), 1.0)
        return (jax.tree.map(lambda g: (f * g).astype(g.dtype), grads),
                ClipState(state.clipped + clip.astype(jnp.int32)))

    return optax.GradientTransformation(init, update)


def robust_sgd(learning_rate: Any, weight_decay: Any = 0.0, clip_ratio: Any = 0.0,
               loss_scale: Any = 1.0) -> optax.GradientTransformation:
    """The recipe: gradient of ``loss_scale * L``, :func:`relative_clip`, SGD with weight
    decay (:func:`~dltheory.normalization.sgd_wd`, no momentum).

    Multiplying the gradient by ``loss_scale`` is multiplying the loss. With
    ``dltheory.training.optimizer(robust_sgd, ...)`` every argument can be swept.

    References:
      Li et al. (2022), arXiv:2202.00980 (SGD + weight decay + relative clipping).
    """
    _hyper("loss_scale", loss_scale, low=0.0, low_open=True)
    _hyper("clip_ratio", clip_ratio, low=0.0)
    return optax.chain(optax.scale(loss_scale), relative_clip(clip_ratio),
                       sgd_wd(learning_rate, weight_decay))


def clipped_steps(opt_state: Any) -> np.ndarray:
    """The number of clipped steps recorded in an optimizer state (stacked for a grid)."""
    found = [s.clipped for s in jax.tree.leaves(
        opt_state, is_leaf=lambda s: isinstance(s, ClipState)) if isinstance(s, ClipState)]
    if len(found) != 1:
        raise ValueError(f"argument `opt_state` must hold one relative_clip state; found "
                         f"{len(found)} in {V._describe(opt_state)}")
    return np.asarray(found[0])


def recovery_steps(c: float, eta: float, wd: float) -> float:
    """Steps for weight decay alone to shrink a norm ``c`` times too large back:
    ``ln c / -ln(1 - eta lambda)``, about ``ln c / (eta lambda)`` (``0`` for ``c <= 1``).

    References:
      Li et al. (2022), arXiv:2202.00980 (the ``log`` of the initial norm in the rates).
    """
    c = V.check_positive("c", c)
    eta, wd = V.check_positive("eta", eta), V.check_positive("wd", wd)
    if not eta * wd < 1:
        raise ValueError(f"arguments `eta` and `wd` must satisfy eta * wd < 1; got {eta * wd:g}")
    return max(math.log(c), 0.0) / -math.log1p(-eta * wd)


# --------------------------------------------------------------------------------------
# Lemma 2.4 on logistic regression on w / |w|
# --------------------------------------------------------------------------------------


def toy_data(n: int = 200, d: int = 20, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Gaussian inputs ``(n, d)``, labels ``+-1`` of a random direction with 10% flipped,
    and ``k = 1`` (the per-example loss multiplier of :func:`toy_loss`), in float64."""
    n, d = V.check_int("n", n, minimum=2), V.check_int("d", d, minimum=2)
    rng = np.random.default_rng(V.check_seed("seed", seed))
    x = rng.standard_normal((n, d))
    y = np.sign(x @ rng.standard_normal(d)) * np.where(rng.random(n) < 0.1, -1.0, 1.0)
    return {"x": x, "y": y, "k": np.ones(n)}


def toy_loss(w: jax.Array, batch: dict) -> jax.Array:
    """``mean_n k_n log(1 + exp(-4 y_n <x_n, w> / |w|))``: scale invariant in ``w``."""
    if not isinstance(batch, dict) or not {"x", "y", "k"} <= set(batch):
        raise TypeError(f"argument `batch` must be a dict with keys 'x', 'y', 'k'; got "
                        f"{V._describe(batch)}")
    margin = batch["y"] * (batch["x"] @ w) / jnp.linalg.norm(w)
    return jnp.mean(batch["k"] * jax.nn.softplus(-4.0 * margin))


def _iterate(w, _):
    return {"w": w}


@dataclasses.dataclass(frozen=True)
class LemmaResult:
    """The largest relative gap between iterates that Lemma 2.4 says are equal.

    Attributes:
      gap_loss: ``(c L, eta / c, c lambda)`` against ``(L, eta, lambda)``: ``max_t
        |w'_t - w_t| / |w_t|``, per clipping setting ``(off, on)``.
      gap_init: ``(L, c^2 eta, lambda / c^2, c w_0)``: ``max_t |w'_t / c - w_t| / |w_t|``.
      c: the factor; steps: SGD steps; clipped: clipped steps of the base run (off, on).
    """

    gap_loss: np.ndarray
    gap_init: np.ndarray
    c: float
    steps: int
    clipped: np.ndarray


def lemma_scalings(steps: int = 300, *, c: float = 100.0, eta: float = 0.5,
                   wd: float = 0.01, batch_size: int = 20, seed: int = 0) -> LemmaResult:
    """Run SGD + weight decay (without and with clipping) on :func:`toy_loss` three ways,
    in float64, with the same minibatches, and measure how far Lemma 2.4's pairs differ.

    References:
      Li et al. (2022), arXiv:2202.00980, Lemma 2.4.
    """
    steps = V.check_int("steps", steps, minimum=1)
    c, eta, wd = (V.check_positive(k, v) for k, v in (("c", c), ("eta", eta), ("wd", wd)))
    batch_size = V.check_int("batch_size", batch_size, minimum=1, maximum=200)
    with enable_x64(True):
        base = toy_data(seed=seed)
        # a small start: the first gradients are large, so the clipped runs do clip
        w0 = jnp.asarray(0.05 * np.random.default_rng(seed + 1).standard_normal(20))
        gaps, clipped = [], []
        for r in (0.0, clip_ratio(eta, wd)):
            def run(k, e, lam, ratio, w):
                data = {**base, "k": k * base["k"]}
                opt = optimizer(robust_sgd, learning_rate=e, weight_decay=lam,
                                clip_ratio=ratio)
                res = train(toy_loss, w, opt, steps=steps, key=seed,
                            batches=D.Minibatches.of(data, batch_size), metrics=_iterate)
                return res["w"], clipped_steps(res.opt_state)
            w, n = run(1.0, eta, wd, r, w0)
            wa, _ = run(c, eta / c, wd * c, r * c, w0)
            wb, _ = run(1.0, eta * c * c, wd / (c * c), r / (c * c), c * w0)
            size = np.linalg.norm(w, axis=-1)
            gaps.append((np.max(np.linalg.norm(wa - w, axis=-1) / size),
                         np.max(np.linalg.norm(wb / c - w, axis=-1) / size)))
            clipped.append(int(n))
    g = np.array(gaps)
    return LemmaResult(g[:, 0], g[:, 1], c, steps, np.array(clipped))


# --------------------------------------------------------------------------------------
# The digits MLP from many scales
# --------------------------------------------------------------------------------------

#: Initial scales of the grid (and the widget), and the loss scales it tries.
INIT_SCALES = (0.01, 0.1, 1.0, 10.0, 100.0)
LOSS_SCALES = (1e4, 1e8)


@dataclasses.dataclass(frozen=True)
class RobustSizes(Preset):
    """Sizes of :func:`robust_grid`: SGD steps, logging, seeds, the net, and the
    hyperparameters ``eta`` and ``wd`` (``eta * wd`` sets the time scale)."""

    steps: int
    log_every: int
    seeds: int
    width: int
    batch_size: int
    eta: float
    wd: float

    @classmethod
    def quick(cls) -> "RobustSizes":
        return cls(steps=3000, log_every=25, seeds=3, width=64, batch_size=32, eta=0.1,
                   wd=0.05)

    @classmethod
    def paper(cls) -> "RobustSizes":
        return cls(steps=30000, log_every=100, seeds=4, width=256, batch_size=32, eta=0.1,
                   wd=0.005)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One run of the grid: initial scale, weight decay and clipping on or off, loss scale."""

    init_scale: float
    weight_decay: bool
    clip: bool
    loss_scale: float = 1.0

    def __post_init__(self):
        V.check_positive("init_scale", self.init_scale)
        V.check_positive("loss_scale", self.loss_scale)

    def name(self) -> str:
        algo = "SGD" + (" + WD" if self.weight_decay else "") + (" + clip" if self.clip else "")
        extra = f", loss × {self.loss_scale:g}" if self.loss_scale != 1 else ""
        return f"{algo}, c = {self.init_scale:g}{extra}"


def _settings() -> tuple[Setting, ...]:
    grid = [Setting(c, w, k) for c in INIT_SCALES for w in (False, True) for k in (False, True)]
    grid += [Setting(1.0, w, k, s) for s in LOSS_SCALES
             for w, k in ((False, False), (True, False), (True, True))]
    return tuple(grid)


def _metrics(model, test):
    return {"sq_norm": jnp.sum(group_sq_norms(model)),
            "test_accuracy": accuracy(model(test["x"]), test["y"])}


@dataclasses.dataclass(frozen=True)
class RobustResult:
    """Every :class:`Setting` x seed of :func:`robust_grid` (arrays: ``(runs, seeds, ...)``).

    Attributes:
      settings: the runs; steps: logged steps ``(n_log,)``.
      accuracy: test accuracy; norm: ``|w|`` (all trained weights) in the run's own scale.
      clipped_fraction: the fraction of steps clipped, ``(runs, seeds)``.
      diverged_at: ``(runs, seeds)``, -1 where the run finished.
      eta, wd: the hyperparameters (``wd`` also sets the clip when weight decay is off).
    """

    settings: tuple[Setting, ...]
    steps: np.ndarray
    accuracy: np.ndarray
    norm: np.ndarray
    clipped_fraction: np.ndarray
    diverged_at: np.ndarray
    eta: float
    wd: float

    def index(self, init_scale: float, weight_decay: bool, clip: bool,
              loss_scale: float = 1.0) -> int:
        """The row of a setting of the grid."""
        s = Setting(float(init_scale), bool(weight_decay), bool(clip), float(loss_scale))
        if s not in self.settings:
            raise ValueError(f"the grid has no run {s.name()}; its initial scales are "
                             f"{INIT_SCALES} and its loss scales {(1.0,) + LOSS_SCALES}")
        return self.settings.index(s)

    def final_accuracy(self, i: int, fraction: float = 0.25) -> float:
        """Test accuracy averaged over the seeds and the last ``fraction`` of the run."""
        k = max(1, round(V.check_in_range("fraction", fraction, 0.0, 1.0) * len(self.steps)))
        return float(self.accuracy[i, :, -k:].mean())

    def time_to(self, i: int, target: float, window: int = 5) -> float:
        """The first logged step at which the seed-mean accuracy, averaged over the last
        ``window`` records (all of them when there are fewer), reaches ``target`` (``inf``
        if it never does)."""
        a = self.accuracy[i].mean(axis=0)
        window = min(V.check_int("window", window, minimum=1), len(a))
        avg = np.convolve(a, np.ones(window) / window, mode="valid")
        hit = np.nonzero(avg >= V.check_finite("target", target))[0]
        return float(self.steps[hit[0] + window - 1]) if hit.size else math.inf


def robust_grid(sizes: RobustSizes | None = None, *,
                progress: bool | None = None) -> RobustResult:
    """Train the normalized digits MLP for every :class:`Setting` x seed, one vmapped call.

    The initial scale is applied with Lemma 2.4 instead of building new networks: from
    ``c w_0`` with ``(eta, lambda, ratio)`` the iterates are ``c`` times those from
    ``w_0`` with ``(eta / c^2, lambda c^2, ratio c^2)``, which is what runs; norms are
    reported in the original scale.

    References:
      Li et al. (2022), arXiv:2202.00980 (Lemma 2.4; the recipe).
    """
    s = RobustSizes.current() if sizes is None else V.check_instance("sizes", sizes,
                                                                      RobustSizes)
    if not s.eta * s.wd < 1:
        raise ValueError(f"argument `sizes` must have eta * wd < 1; got {s.eta * s.wd:g}")
    steps, log_every = V.check_steps(s.steps, s.log_every)
    settings, ds, r = _settings(), D.digits(), clip_ratio(s.eta, s.wd)
    c2 = np.repeat([st.init_scale ** 2 for st in settings], s.seeds)
    col = lambda f: np.repeat([f(st) for st in settings], s.seeds).astype(np.float32)
    opt = optimizer(robust_sgd, learning_rate=(s.eta / c2).astype(np.float32),
                    weight_decay=col(lambda st: s.wd * st.weight_decay) * c2,
                    clip_ratio=col(lambda st: r * st.clip) * c2,
                    loss_scale=col(lambda st: st.loss_scale))
    res = sweep(xent, _init_fn((64, s.width, s.width, 10)), opt, steps=steps,
                seeds=list(range(s.seeds)) * len(settings),
                batches=D.Minibatches.of(ds.train, s.batch_size), log_every=log_every,
                metrics=_metrics, eval_data=ds.test, progress=progress)
    shape = (len(settings), s.seeds)
    norm = np.sqrt(res["sq_norm"].astype(np.float64) * c2[:, None]).reshape(shape + (-1,))
    return RobustResult(settings, res.steps,
                        res["test_accuracy"].astype(np.float64).reshape(shape + (-1,)), norm,
                        clipped_steps(res.opt_state).reshape(shape) / steps,
                        res.diverged_at.reshape(shape), s.eta, s.wd)


def robust_figure(res: RobustResult, init_scale: float, weight_decay: bool, clip: bool,
                  fig: Any = None):
    """Two panels for one setting: test accuracy and ``|w|`` against the step, with the
    run of SGD + WD from scale 1 as the reference."""
    from dltheory import plotting

    V.check_instance("res", res, RobustResult, "RobustResult from robust_grid")
    V.check_choice("init_scale", init_scale, INIT_SCALES)
    if fig is not None:
        from matplotlib.figure import Figure

        V.check_instance("fig", fig, Figure, "matplotlib figure (or None)")
    i = res.index(init_scale, weight_decay, clip)
    ref = res.index(1.0, True, False)
    fig, (ax, bx) = plotting.figure(2, width=7.5, height=3.3,
                                    reuse="detached" if fig is None else fig)
    t = res.steps / 1000
    for j, color, label in ((ref, "0.6", "SGD + WD, c = 1"), (i, "#1f5aa6",
                                                              res.settings[i].name())):
        ax.plot(t, res.accuracy[j].mean(0), color=color, label=label)
        bx.plot(t, res.norm[j].mean(0), color=color)
    ax.set(xlabel="step (thousands)", ylabel="test accuracy", ylim=(0, 1.02),
           title="test accuracy")
    ax.legend(loc="lower right", frameon=False, fontsize=9)
    note = f"clipped on {100 * res.clipped_fraction[i].mean():.1f}% of steps" if clip else ""
    d = int(res.diverged_at[i].max())
    note = f"diverged at step {d}" if d >= 0 else note
    bx.set(yscale="log", ylim=(0.5, 3e3), xlabel="step (thousands)", ylabel="$|w|$",
           title="weight norm")
    bx.text(0.97, 0.95, note, transform=bx.transAxes, ha="right", va="top", fontsize=9)
    return fig


def robust_explorer(res: RobustResult | None = None):
    """The chapter's widget: initial scale, weight decay on or off, clipping on or off."""
    from dltheory.widgets import choice, explore, slider

    res = robust_grid() if res is None else V.check_instance(
        "res", res, RobustResult, "RobustResult from robust_grid, or None")
    return explore(lambda c, weight_decay, clipping, fig=None: robust_figure(
                       res, c, weight_decay == "on", clipping == "on", fig=fig),
                   title="SGD on a scale-invariant net",
                   c=slider(0, 0, values=INIT_SCALES, default=100.0,
                            label="initial scale c", fmt="{:g}"),
                   weight_decay=choice(["on", "off"], label="weight decay"),
                   clipping=choice(["off", "on"], label="clipping"))
