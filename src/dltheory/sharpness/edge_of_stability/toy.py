"""The scale-invariant toy ``L(w) = a(phi) (w3 / |w|)^2``: GD with weight decay enters the
edge of stability after about ``ln(2 / s) / (2 eta lambda)`` steps and then drifts to
minimizers of smaller spherical sharpness on the time scale ``1 / (eta lambda)``.

References:
  Lyu, Li, Arora (2022), Understanding the Generalization Benefit of Normalization
  Layers: Sharpness Reduction, NeurIPS, arXiv:2206.07085.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dltheory import curvature, training
from dltheory import validation as V
from dltheory.config import Preset

__all__ = ["toy_loss", "toy_a", "entry_steps", "toy_prediction", "ToySizes", "ToyResult",
           "toy_experiment", "toy_grid", "toy_figure", "toy_explorer"]


# --------------------------------------------------------------------------------------
# The toy: L(w) = a(phi) (w3 / |w|)^2, a = 1 + cos(phi) / 2
# --------------------------------------------------------------------------------------


def toy_a(phi: Any) -> Any:
    """``a(phi) = 1 + cos(phi) / 2``: half the spherical sharpness of the toy's minimizer
    at angle ``phi`` (numbers or arrays)."""
    if isinstance(phi, (str, bytes, bool)) or phi is None:
        raise TypeError(f"argument `phi` must be a number or an array; got {phi!r}")
    return 1 + 0.5 * np.cos(phi) if not isinstance(phi, jax.Array) else 1 + 0.5 * jnp.cos(phi)


def toy_loss(w: jax.Array, batch: Any = None) -> jax.Array:
    """``L(w) = a(phi) (w3 / |w|)^2`` with ``phi`` the angle of ``(w1, w2)``.

    Scale invariant (``L(c w) = L(w)``); its minimizers are the plane ``w3 = 0``, where
    the Hessian has the single non-zero eigenvalue ``2 a(phi) / |w|^2``: the spherical
    sharpness ``|w|^2 lambda_max`` of a minimizer is ``2 a(phi)``, from 3 at ``phi = 0``
    down to 1 at ``phi = pi``. ``batch`` is ignored (the engine passes one).
    """
    if isinstance(w, (str, bytes)) or jnp.shape(w) != (3,):
        raise ValueError(f"argument `w` must be an array of shape (3,); got {V._describe(w)}")
    phi = jnp.arctan2(w[1], w[0])
    return toy_a(phi) * w[2] ** 2 / jnp.sum(w ** 2)


def entry_steps(start: float, eta: float, wd: float) -> float:
    """Steps until GD with weight decay reaches the edge on the toy, from a minimizer
    where ``eta lambda_max = start`` (< 2): on the minimizers the gradient vanishes, so
    ``|w|^2`` shrinks by ``(1 - eta wd)^2`` a step and ``lambda_max`` grows by the inverse;
    it is ``ln(2 / start) / (-2 ln(1 - eta wd))``, about ``ln(2 / start) / (2 eta wd)``."""
    start = V.check_in_range("start", start, 0.0, 2.0, low_inclusive=False)
    eta, wd = V.check_positive("eta", eta), V.check_positive("wd", wd)
    if eta * wd >= 1:
        raise ValueError(f"arguments `eta` and `wd` need eta * wd < 1; got {eta * wd!r}")
    return math.log(2 / start) / (-2 * math.log1p(-eta * wd))


def toy_prediction(times: Any, *, start: float, phi0: float) -> np.ndarray:
    """The spherical sharpness ``2 a(phi)`` predicted at times ``t = eta lambda k``.

    Until ``t_0 = ln(2 / start) / 2`` GD sits at the minimizer it started on; then, at the
    edge, balancing the norm that weight decay removes against the norm the oscillation
    adds gives the drift ``dphi/dt = -2 u / (4 + u^2)``, ``u = a'(phi) / a(phi)`` (the
    chapter's derivation; for small ``u`` it is the gradient flow of ``-ln a / 2``).

    Args:
      times: increasing times ``eta lambda k`` (>= 0), a 1-D array.
      start: ``eta lambda_max`` at the start, in (0, 2).
      phi0: the starting angle.
    """
    t = V.check_array("times", times, ndim=1, nonnegative=True)
    start = V.check_in_range("start", start, 0.0, 2.0, low_inclusive=False)
    phi0 = V.check_finite("phi0", phi0)
    t0 = math.log(2 / start) / 2
    grid = np.linspace(0.0, max(float(t.max(initial=0.0)) - t0, 0.0), 20_001)
    phi, out = phi0, np.empty_like(grid)
    h = grid[1] - grid[0]

    def f(p):
        u = -0.5 * math.sin(p) / (1 + 0.5 * math.cos(p))
        return -2 * u / (4 + u * u)

    for i in range(len(grid)):               # classical Runge-Kutta on a fine grid
        out[i] = phi
        k1 = f(phi)
        k2 = f(phi + h * k1 / 2)
        k3 = f(phi + h * k2 / 2)
        k4 = f(phi + h * k3)
        phi = phi + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
    return 2 * toy_a(np.interp(t - t0, grid, out, left=phi0))


class _NoisyState(NamedTuple):
    count: jax.Array


def _gd_wd_noise(learning_rate, weight_decay, noise):
    """GD with (coupled) weight decay on the toy, plus ``noise * N(0, 1)`` on ``w3`` each
    step (without it ``w3`` would underflow to 0 and the instability could not start)."""

    def update(grads, state, params):
        z = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(0), state.count))
        upd = -learning_rate * (grads + weight_decay * params)
        return upd.at[2].add(noise * z).astype(params.dtype), _NoisyState(state.count + 1)

    return optax.GradientTransformation(lambda p: _NoisyState(jnp.zeros([], jnp.int32)),
                                        update)


def _toy_metrics(w, _):
    return {"w": w, "lam": curvature.sharpness(toy_loss, w, None, iters=30)}


def _toy_runs(products: np.ndarray, steps: int, log_every: int, start: float, phi0: float,
              noise: float) -> dict:
    """Runs at the given ``eta lambda``, in units where the start has ``|w| = 1``.

    By scale invariance, GD from ``w0`` with ``(eta, lambda)`` is GD from ``w0 / |w0|``
    with ``(eta / |w0|^2, lambda |w0|^2)``, scaled back by ``|w0|``; with
    ``eta lambda_max(w0) = start`` the new step size is ``start / (2 a(phi0))`` for every
    run, and only ``eta lambda`` is left: one vmapped call covers any grid.
    """
    lr = start / (2 * float(toy_a(phi0)))
    w0 = jnp.asarray([np.cos(phi0), np.sin(phi0), 0.0], jnp.float32)
    opt = training.optimizer(_gd_wd_noise, learning_rate=lr,
                             weight_decay=jnp.asarray(products / lr, jnp.float32),
                             noise=jnp.full(len(products), noise, jnp.float32))
    res = training.sweep(toy_loss, w0, opt, steps=steps, log_every=log_every,
                         metrics=_toy_metrics)
    w = res["w"]
    r2 = np.sum(w.astype(np.float64) ** 2, -1)
    return {"steps": res.steps, "eta_lam": lr * res["lam"], "spherical": r2 * res["lam"],
            "minimizer": 2 * toy_a(np.arctan2(w[..., 1], w[..., 0])),
            "diverged_at": res.diverged_at}


@dataclasses.dataclass(frozen=True)
class ToySizes(Preset):
    """The toy's runs: GD with step size ``etas[i]`` and weight decay ``wds[i]`` for
    ``steps`` steps, logged every ``log_every``; the widget's grid of ``widget_etas`` x
    ``widget_wds`` for ``widget_steps``. Every run starts on the minimizer at angle
    ``phi0`` with ``eta lambda_max = start`` (< 2), with ``noise`` (relative to the
    starting norm) added to ``w3`` at each step; ``target`` is the spherical sharpness
    whose crossing times the drift."""

    steps: int
    log_every: int
    widget_steps: int
    etas: tuple[float, ...]
    wds: tuple[float, ...]
    widget_etas: tuple[float, ...]
    widget_wds: tuple[float, ...]
    start: float = 2 * math.exp(-2)
    phi0: float = math.acos(0.96)
    noise: float = 1e-10
    target: float = 1.1

    def __post_init__(self):
        super().__post_init__()
        V.check_steps(self.steps, self.log_every)
        V.check_steps(self.widget_steps, self.log_every)
        if len(self.etas) != len(self.wds):
            raise ValueError(f"arguments `etas` and `wds` must have the same length (one "
                             f"pair per run); got {len(self.etas)} and {len(self.wds)}")
        V.check_in_range("start", self.start, 0.0, 2.0, low_inclusive=False,
                         high_inclusive=False)
        V.check_in_range("target", self.target, 1.0, 2 * float(toy_a(self.phi0)),
                         low_inclusive=False, high_inclusive=False)

    @property
    def pairs(self) -> tuple[tuple[float, float], ...]:
        """The ``(eta, lambda)`` of each run."""
        return tuple(zip(self.etas, self.wds))

    @classmethod
    def quick(cls) -> "ToySizes":
        return cls(steps=60_000, log_every=20, widget_steps=40_000, etas=(0.1, 0.05, 0.1),
                   wds=(0.006, 0.006, 0.003), widget_etas=(0.03, 0.05, 0.1),
                   widget_wds=(0.003, 0.006, 0.012))

    @classmethod
    def paper(cls) -> "ToySizes":
        return cls(steps=400_000, log_every=50, widget_steps=200_000, etas=(0.1, 0.05, 0.1),
                   wds=(0.002, 0.002, 0.001), widget_etas=(0.01, 0.03, 0.05, 0.1),
                   widget_wds=(0.001, 0.003, 0.006, 0.012))


@dataclasses.dataclass(frozen=True)
class ToyResult:
    """GD with weight decay on the toy at a few ``(eta, lambda)`` pairs.

    Attributes:
      pairs: the ``(eta, lambda)`` pairs, shape ``(n, 2)``; products: ``eta lambda``.
      time: logged ``eta lambda k``, shape ``(n, n_log)``.
      eta_lam: ``eta lambda_max`` at the iterate; spherical: ``|w|^2 lambda_max``;
        minimizer: ``2 a(phi)``, the spherical sharpness of the minimizer below the
        iterate; predicted: :func:`toy_prediction` at ``time``. All ``(n, n_log)``.
      entry: ``eta lambda`` times the first step with ``eta lambda_max >= 2``, shape (n,).
      band_low, band_high: min and max of ``eta lambda_max`` from entry on, shape (n,).
      reduce_time: ``eta lambda`` times the first step with ``2 a(phi) < target``.
      predicted_time: the same from :func:`toy_prediction`; entry_predicted: from
        :func:`entry_steps`.
      status: ``"finished N steps"`` or ``"diverged at step k"`` per pair.
    """

    pairs: np.ndarray
    products: np.ndarray
    time: np.ndarray
    eta_lam: np.ndarray
    spherical: np.ndarray
    minimizer: np.ndarray
    predicted: np.ndarray
    entry: np.ndarray
    entry_predicted: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    reduce_time: np.ndarray
    predicted_time: float
    target: float
    status: tuple[str, ...]


def toy_experiment(sizes: ToySizes | None = None) -> ToyResult:
    """GD with weight decay on :func:`toy_loss` at ``sizes.pairs``, one vmapped call.

    References:
      Lyu, Li, Arora (2022), arXiv:2206.07085 (GD with weight decay on a scale-invariant
      loss enters the edge of stability and then reduces the spherical sharpness on the
      time scale ``1 / (eta lambda)``).
    """
    s = ToySizes.current() if sizes is None else V.check_instance("sizes", sizes, ToySizes)
    pairs = np.asarray(s.pairs, np.float64)
    prod = pairs[:, 0] * pairs[:, 1]
    r = _toy_runs(prod, s.steps, s.log_every, s.start, s.phi0, s.noise)
    time = prod[:, None] * r["steps"][None]
    entry = np.array([_first(e >= 2) for e in r["eta_lam"]])
    low = np.array([e[i:].min() if i >= 0 else np.nan for e, i in zip(r["eta_lam"], entry)])
    high = np.array([e[i:].max() if i >= 0 else np.nan for e, i in zip(r["eta_lam"], entry)])
    done = np.array([_first(m < s.target) for m in r["minimizer"]])
    fine = np.linspace(0, time.max(), 40_001)
    pred_fine = toy_prediction(fine, start=s.start, phi0=s.phi0)
    return ToyResult(
        pairs=pairs, products=prod, time=time, eta_lam=r["eta_lam"],
        spherical=r["spherical"], minimizer=r["minimizer"],
        predicted=np.stack([np.interp(t, fine, pred_fine) for t in time]),
        entry=np.where(entry >= 0, time[np.arange(len(prod)), entry], np.nan),
        entry_predicted=np.array([entry_steps(s.start, e, w) * e * w for e, w in pairs]),
        band_low=low, band_high=high,
        reduce_time=np.where(done >= 0, time[np.arange(len(prod)), done], np.nan),
        predicted_time=float(fine[_first(pred_fine < s.target)]) if (pred_fine < s.target).any()
        else float("nan"), target=s.target,
        status=tuple(f"diverged at step {d}" if d >= 0 else f"finished {s.steps} steps"
                     for d in r["diverged_at"]))


def toy_grid(sizes: ToySizes | None = None) -> dict:
    """Every ``(eta, lambda)`` of the widget, one vmapped call.

    Returns:
      ``{"etas", "wds", "time", "eta_lam", "spherical", "minimizer", "status"}`` with
      arrays of shape ``(len(etas), len(wds), n_log)`` (``status`` without the last
      axis: ``""`` or ``"diverged at step k"``), and the prediction ``"predicted"`` on
      the times ``"fine"``; the widget draws up to ``eta lambda k = t_max``.
    """
    s = ToySizes.current() if sizes is None else V.check_instance("sizes", sizes, ToySizes)
    etas, wds = np.asarray(s.widget_etas), np.asarray(s.widget_wds)
    prod = (etas[:, None] * wds[None]).ravel()
    r = _toy_runs(prod, s.widget_steps, s.log_every, s.start, s.phi0, s.noise)
    shape = (len(etas), len(wds), -1)
    time = (prod[:, None] * r["steps"][None]).reshape(shape)
    fine = np.linspace(0, time.max(), 20_001)
    pred = toy_prediction(fine, start=s.start, phi0=s.phi0)
    return {"etas": etas, "wds": wds, "time": time,
            **{k: r[k].reshape(shape) for k in ("eta_lam", "spherical", "minimizer")},
            "fine": fine, "predicted": pred, "t_max": 20.0,
            "status": np.array([f"diverged at step {d}" if d >= 0 else "" for d in
                                r["diverged_at"]]).reshape(shape[:2])}


def toy_figure(grid: dict, eta: float, wd: float, fig: Any = None):
    """Two panels for one ``(eta, lambda)``: ``eta lambda_max`` against ``eta lambda k``
    with the band ``[1.6, 2.4]``, and the spherical sharpness with the prediction."""
    from dltheory import plotting

    if not isinstance(grid, dict) or "eta_lam" not in grid:
        raise TypeError(f"argument `grid` must be the dict of runs from toy_grid; got "
                        f"{V._describe(grid)}")
    V.check_positive("eta", eta), V.check_positive("wd", wd)
    if fig is not None:
        from matplotlib.figure import Figure

        V.check_instance("fig", fig, Figure, "matplotlib figure (or None)")
    i = [j for j, v in enumerate(grid["etas"]) if np.isclose(v, eta)]
    k = [j for j, v in enumerate(grid["wds"]) if np.isclose(v, wd)]
    if not i:
        raise ValueError(f"argument `eta` must be one of {list(grid['etas'])}; got {eta!r}")
    if not k:
        raise ValueError(f"argument `wd` must be one of {list(grid['wds'])}; got {wd!r}")
    i, k = i[0], k[0]
    fig, (ax, bx) = plotting.figure(2, width=7.5, height=3.4,
                                    reuse="detached" if fig is None else fig)
    t, tmax = grid["time"][i, k], grid["t_max"]
    keep = t <= tmax
    ax.axhspan(1.6, 2.4, color="0.9", lw=0)
    ax.axhline(2, color="0.4", ls="--", lw=1)
    ax.plot(t[keep], grid["eta_lam"][i, k][keep], color="#1f5aa6", lw=0.6)
    ax.set(xlim=(0, tmax), ylim=(0, 3), xlabel=r"$\eta\lambda k$",
           ylabel=r"$\eta\,\lambda_{\max}$", title=rf"$\eta\lambda = {eta * wd:.2g}$: at the edge")
    bx.plot(t[keep], grid["spherical"][i, k][keep], color="#1f5aa6", lw=0.6, alpha=0.5,
            label=r"$|w|^2\lambda_{\max}$")
    bx.plot(t[keep], grid["minimizer"][i, k][keep], color="#d1495b",
            label=r"$2a(\varphi)$ (minimizer below)")
    f = grid["fine"] <= tmax
    bx.plot(grid["fine"][f], grid["predicted"][f], color="0.2", ls="--", lw=1.2,
            label="predicted drift")
    bx.set(xlim=(0, tmax), ylim=(0.5, 3.5), xlabel=r"$\eta\lambda k$",
           ylabel="spherical sharpness", title="the drift along the minimizers")
    bx.legend(loc="upper right", frameon=False, fontsize=9)
    status = str(grid["status"][i, k])
    if status:
        ax.text(0.5, 0.5, status, transform=ax.transAxes, ha="center", color="#d1495b")
    elif t[-1] < tmax:
        bx.text(0.97, 0.05, f"run ends at $\\eta\\lambda k = {t[-1]:.1f}$",
                transform=bx.transAxes, ha="right", fontsize=9)
    return fig


def toy_explorer(grid: dict | None = None):
    """The chapter's widget: the step size ``eta`` and the weight decay ``lambda``."""
    from dltheory.widgets import explore, slider

    grid = toy_grid() if grid is None else grid
    if not isinstance(grid, dict) or "eta_lam" not in grid:
        raise TypeError(f"argument `grid` must be the dict of runs from toy_grid, or None; "
                        f"got {V._describe(grid)}")
    return explore(lambda eta, wd, fig=None: toy_figure(grid, eta, wd, fig=fig),
                   title="GD with weight decay on the scale-invariant toy",
                   eta=slider(0, 0, values=tuple(grid["etas"]), default=grid["etas"][-1],
                              label="step size eta", fmt="{:g}"),
                   wd=slider(0, 0, values=tuple(grid["wds"]), default=grid["wds"][1],
                             label="weight decay lambda", fmt="{:g}"))


def _first(mask: np.ndarray) -> int:
    """The first index where ``mask`` holds, or -1."""
    return int(np.argmax(mask)) if mask.any() else -1
