"""Full-batch gradient descent on homogeneous models in float64, with margins logged.

The book's engine (:mod:`dltheory.training`) runs in float32 with the loss itself in
linear space, which stops making sense once the loss is below ``1e-38``. Margin
maximization happens exactly there, so this module has its own small loop with the same
structure (one ``jit``-compiled ``lax.scan``, grids as one ``vmap``): it works on the log
of the loss, so losses like ``1e-300`` (and far below) are ordinary numbers.

Two step-size rules (Lyu & Li 2020, Section 6, "loss-based learning rate"):

- :func:`constant_lr`: ``theta <- theta - eta grad L`` with ``L`` the mean loss;
- :func:`loss_based_lr`: ``theta <- theta - (alpha_t / L(theta)) grad L``, i.e. a step of
  ``alpha_t`` along ``grad log L``. After a step that does not increase the loss,
  ``alpha`` is multiplied by ``r_up`` (``2^{1/5}`` in the paper's code); a step that
  increases it is undone (rollback) and ``alpha`` divided by ``r_down``
  (``2^{1/10}``). This is ``LossBasedLRv1`` of the official repository
  ``vfleaking/max-margin`` (``models/lr_schedulers.py``) applied once per full-batch step.

All computation happens inside ``dltheory.compat.enable_x64()`` scopes; the global flag is left
as it was.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dltheory.compat import enable_x64
from dltheory import validation as V
from dltheory.margin.core import LOSSES, log_loss
from dltheory._jit import jit

__all__ = [
    "MarginRun",
    "Schedule",
    "binary_margins",
    "constant_lr",
    "loss_based_lr",
    "multiclass_margins",
    "train_margin",
    "train_margin_grid",
]


#: Runs stop moving once the log of the mean loss is below this (a loss of about
#: 10^-43429): the parameter norm is then about (1e5 / gamma)^(1/L), far from overflowing.
FLOOR = -1e5


class _ScheduleFields(NamedTuple):
    kind: str
    lr: float
    r_up: float = 1.0
    r_down: float = 1.0


class Schedule(_ScheduleFields):
    """A step-size rule: ``kind`` is ``"constant"`` or ``"loss_based"``.

    For ``"constant"``, ``lr`` is the learning rate ``eta``; for ``"loss_based"`` it is
    the initial ``alpha_0`` (the learning rate is ``alpha_t / L``), which grows by
    ``r_up >= 1`` after an accepted step and shrinks by ``r_down >= 1`` after a rejected
    one. Build it with :func:`constant_lr` or :func:`loss_based_lr`.
    """

    __slots__ = ()

    def __new__(cls, kind: str, lr: float, r_up: float = 1.0, r_down: float = 1.0):
        V.check_choice("kind", kind, ("constant", "loss_based"))
        lr = V.check_positive("lr", lr)
        r_up = V.check_finite("r_up", r_up)
        r_down = V.check_finite("r_down", r_down)
        if r_up < 1 or r_down < 1:
            raise ValueError(f"arguments `r_up` and `r_down` must be >= 1 (the factors by "
                             f"which alpha grows and shrinks); got r_up={r_up}, "
                             f"r_down={r_down}")
        return super().__new__(cls, kind, lr, r_up, r_down)

    def as_arrays(self) -> dict[str, float]:
        return {"mode": 1.0 if self.kind == "loss_based" else 0.0, "lr": self.lr,
                "r_up": self.r_up, "r_down": self.r_down}


def constant_lr(lr: float) -> Schedule:
    """Gradient descent with the constant learning rate ``lr`` on the mean loss."""
    return Schedule("constant", V.check_positive("lr", lr))


def loss_based_lr(alpha0: float = 0.1, r_up: float = 2 ** (1 / 5),
                  r_down: float = 2 ** (1 / 10)) -> Schedule:
    """The loss-based schedule of Lyu & Li (2020): learning rate ``alpha_t / L(theta_t)``.

    Args:
      alpha0: the initial ``alpha`` (the paper's code uses ``0.1 * ln 10`` with the loss
        of 10 classes; any value works since ``alpha`` adapts).
      r_up: factor by which ``alpha`` grows after an accepted step (``2^{1/5}``).
      r_down: factor by which ``alpha`` shrinks after a rejected (rolled-back) step
        (``2^{1/10}``).

    Returns:
      A :class:`Schedule` for :func:`train_margin`.

    References:
      Lyu, Li (2020), arXiv:1906.05890, Section 6 ("loss-based learning rate
      scheduling"); official code ``vfleaking/max-margin``, ``LossBasedLRv1``.
    """
    alpha0 = V.check_positive("alpha0", alpha0)
    r_up = V.check_finite("r_up", r_up)
    r_down = V.check_finite("r_down", r_down)
    if r_up < 1 or r_down <= 1:
        raise ValueError(f"arguments `r_up` >= 1 and `r_down` > 1 are required (alpha grows "
                         f"after a good step and shrinks after a rollback); got r_up={r_up}, "
                         f"r_down={r_down}")
    return Schedule("loss_based", alpha0, r_up, r_down)


def binary_margins(out: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(``q`` for the loss, ``q`` for the margin) of a binary model: both ``y f``."""
    o, t = jnp.shape(out), jnp.shape(y)
    if len(t) != 1:
        raise ValueError(f"argument `y` must be a 1-D array of labels; got shape {t}")
    if o not in ((t[0],), (t[0], 1)):
        raise ValueError(f"argument `out` must have shape ({t[0]},) or ({t[0]}, 1), one "
                         f"output per label of `y`; got {o}")
    q = y * out.reshape(out.shape[0])
    return q, q


def multiclass_margins(logits: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(soft gap for the cross-entropy, hard logit gap ``f_y - max_{j != y} f_j``).

    The cross-entropy is ``softplus(-q~)`` with ``q~ = -logsumexp_{j != y}(f_j - f_y)``,
    so the same log-space loss as the binary case applies.
    """
    if jnp.ndim(logits) != 2:
        raise ValueError(f"argument `logits` must have shape (N, classes); got "
                         f"{jnp.shape(logits)}")
    if jnp.shape(y) != jnp.shape(logits)[:1]:
        raise ValueError(f"argument `y` must have shape ({jnp.shape(logits)[0]},), one class "
                         f"index per row of `logits`; got {jnp.shape(y)}")
    if not jnp.issubdtype(jnp.result_type(y), jnp.integer):
        raise TypeError(f"argument `y` must hold integer class indices; got dtype "
                        f"{jnp.result_type(y)}")
    true = jnp.take_along_axis(logits, y[:, None], axis=1)
    diff = logits - true
    mask = jax.nn.one_hot(y, logits.shape[1], dtype=bool)
    diff = jnp.where(mask, -jnp.inf, diff)
    return -jax.nn.logsumexp(diff, axis=1), -diff.max(axis=1)


@dataclasses.dataclass(frozen=True)
class MarginRun:
    """What :func:`train_margin` records every ``log_every`` steps (leading grid axis for
    :func:`train_margin_grid`).

    Attributes:
      steps: logged steps, ``(n_log,)``.
      log_loss: natural log of the mean loss.
      norm: ``|theta|``.
      qmin: ``min_n q_n``.
      normalized: ``qmin / |theta|^L``.
      smoothed: the smoothed margin (NaN while it is undefined, loss above ``ln 2 / N``
        for the summed logistic loss).
      log_lr: natural log of the learning rate ``eta`` in effect (``alpha / L`` for the
        loss-based rule, which overflows float64 long before the run ends).
      rejected: number of rolled-back steps up to each log point.
      params: the parameters at each log point (if recorded), else ``None``.
      final_params: the parameters at the end.
      order, n, loss: the homogeneity order, number of examples, loss name.
    """

    steps: np.ndarray
    log_loss: np.ndarray
    norm: np.ndarray
    qmin: np.ndarray
    normalized: np.ndarray
    smoothed: np.ndarray
    log_lr: np.ndarray
    rejected: np.ndarray
    params: Any
    final_params: Any
    order: int
    n: int
    loss: str

    def member(self, i: int) -> MarginRun:
        """The ``i``-th run of a grid."""
        take = lambda a: None if a is None else jax.tree.map(lambda v: np.asarray(v)[i], a)
        return dataclasses.replace(
            self, log_loss=self.log_loss[i], norm=self.norm[i], qmin=self.qmin[i],
            normalized=self.normalized[i], smoothed=self.smoothed[i], log_lr=self.log_lr[i],
            rejected=self.rejected[i], params=take(self.params),
            final_params=take(self.final_params))

    @property
    def log10_loss(self) -> np.ndarray:
        return self.log_loss / np.log(10)

    @property
    def smallest_smoothed_increment(self) -> float:
        """The smallest change of the smoothed margin between consecutive log points
        where it is defined (negative if it ever decreased), or NaN if it is defined at
        fewer than two log points (a run too short to leave the loss level ``ln 2 / N``).
        """
        s = np.asarray(self.smoothed, dtype=np.float64)
        s = s[np.isfinite(s)]
        return float(np.diff(s).min()) if s.size >= 2 else float("nan")


def _norm(params):
    return jnp.sqrt(sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params)))


@functools.lru_cache(maxsize=64)
def _program(apply: Callable, margins: Callable, loss: str, order: int, n_int: int,
             log_every: int, record: bool, vmapped: bool, data_axis: int | None):
    """The compiled run: ``(params, x, y, hp) -> (records, final params)``."""

    def logl(params, x, y):
        q_loss, _ = margins(apply(params, x), y)
        return log_loss(q_loss, loss)

    def one_step(carry, x, y, hp):
        params, alpha, cur, rejected = carry
        val, g = jax.value_and_grad(logl)(params, x, y)
        # constant: eta grad L = eta L grad log L ; loss-based: alpha grad log L
        step = jnp.where(hp["mode"] > 0, alpha, hp["lr"] * jnp.exp(val))
        step = jnp.where(cur > FLOOR, step, 0.0)  # stop below the floor (no overflow)
        new = jax.tree.map(lambda p, gi: p - step * gi, params, g)
        new_val = logl(new, x, y)
        # compare with the carried loss of the current point, computed by the same
        # function as new_val (value_and_grad may round differently in the last bit)
        ok = jnp.isfinite(new_val) & ((hp["mode"] <= 0) | (new_val <= cur) | (cur <= FLOOR))
        params = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, params)
        alpha = jnp.where(hp["mode"] > 0,
                          jnp.where(ok, alpha * hp["r_up"], alpha / hp["r_down"]), alpha)
        return (params, alpha, jnp.where(ok, new_val, cur), rejected + (~ok)), None

    def record(carry, x, y, hp):
        params, alpha, _, rejected = carry
        q_loss, q = margins(apply(params, x), y)
        val = log_loss(q_loss, loss)
        norm = _norm(params)
        lr = jnp.where(hp["mode"] > 0, jnp.log(alpha) - val, jnp.log(hp["lr"]))
        rec = {"log_loss": val, "norm": norm, "qmin": q.min(), "log_lr": lr,
               "rejected": rejected}
        if record:
            rec["params"] = params
        return rec

    def run(params, x, y, hp):
        carry0 = (params, hp["lr"], logl(params, x, y),
                  jnp.asarray(0, jnp.int32))

        def interval(carry, _):
            rec = record(carry, x, y, hp)
            carry, _ = jax.lax.scan(lambda c, _: one_step(c, x, y, hp), carry, None,
                                    length=log_every)
            return carry, rec

        carry, recs = jax.lax.scan(interval, carry0, None, length=n_int)
        last = record(carry, x, y, hp)
        recs = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]], axis=0), recs, last)
        return recs, carry[0]

    if vmapped:
        run = jax.vmap(run, in_axes=(0, data_axis, data_axis, 0))
    return jit(run)


def _to64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _finish(recs, final, order, n, loss, record, steps_arr):
    recs = {k: (np.asarray(v) if k != "params" else jax.tree.map(np.asarray, v))
            for k, v in recs.items()}
    norm = recs["norm"]
    normalized = recs["qmin"] / norm ** order
    from dltheory.margin.core import _smoothed

    log_total = recs["log_loss"] + np.log(n)
    defined = log_total < np.log(np.log(2.0)) if loss == "logistic" else log_total < 0
    with np.errstate(all="ignore"):
        sm = _smoothed(log_total, norm, order, loss)
    smoothed = np.where(defined, sm, np.nan)
    return MarginRun(steps_arr, recs["log_loss"], norm, recs["qmin"], normalized, smoothed,
                     recs["log_lr"], recs["rejected"], recs.get("params") if record else None,
                     jax.tree.map(np.asarray, final), order, n, loss)


def _check_common(apply, params, margins, order, steps, log_every, loss):
    V.check_callable("apply", apply)
    V.check_callable("margins", margins)
    if not jax.tree.leaves(params):
        raise ValueError(f"argument `params` must hold at least one parameter array; got "
                         f"{params!r}")
    order = V.check_int("order", order, minimum=1)
    steps, log_every = V.check_steps(steps, log_every)
    V.check_choice("loss", loss, LOSSES)
    return order, steps, log_every


def _check_data(x, y, binary: bool, stacked: bool):
    """Labels -1/+1 for binary margins, and one row of ``x`` per label (per member)."""
    if binary:
        from dltheory.margin.core import check_binary_labels

        check_binary_labels(np.reshape(y, -1) if stacked else y)
    n = np.shape(y)[-1] if np.ndim(y) else 0
    xs = x["x"] if isinstance(x, dict) and "x" in x else x
    if hasattr(xs, "shape") or isinstance(xs, (list, tuple)):
        rows = np.shape(xs)[1 if stacked else 0] if np.ndim(xs) > (1 if stacked else 0) else -1
        if rows != n:
            raise ValueError(f"arguments `x` and `y` must have one example per label; got "
                             f"x of shape {np.shape(xs)} and y of shape {np.shape(y)}")


def train_margin(apply: Callable, params: Any, x: Any, y: Any, *, order: int,
                 schedule: Schedule, steps: int, log_every: int = 1,
                 loss: str = "logistic", margins: Callable = binary_margins,
                 record_params: bool = False) -> MarginRun:
    """Full-batch gradient descent on a homogeneous model, in float64 and log space.

    Args:
      apply: ``apply(params, x) -> outputs`` (pure JAX; pass a module-level function so
        its compiled run is reused). Outputs ``(N,)`` for binary labels -1/+1 with
        ``margins=binary_margins``, or logits ``(N, C)`` with ``multiclass_margins``.
      params: initial parameters (pytree; converted to float64).
      x, y: the training data (full batch).
      order: the homogeneity order ``L`` of ``apply`` in ``params``.
      schedule: :func:`constant_lr` or :func:`loss_based_lr`.
      steps: gradient steps (a rolled-back step counts as a step).
      log_every: record every this many steps.
      loss: ``"logistic"`` (cross-entropy for multiclass) or ``"exponential"``.
      record_params: also record the parameters at every log point.

    Returns:
      A :class:`MarginRun`.

    References:
      Lyu, Li (2020), arXiv:1906.05890.
    """
    order, steps, log_every = _check_common(apply, params, margins, order, steps, log_every,
                                            loss)
    if not isinstance(schedule, Schedule):
        raise TypeError(f"argument `schedule` must be constant_lr(...) or loss_based_lr(...); "
                        f"got {schedule!r}")
    _check_data(x, y, margins is binary_margins, stacked=False)
    if margins is binary_margins:
        y = np.asarray(y, np.float64)
    with enable_x64(True):
        prog = _program(apply, margins, loss, order, steps // log_every, log_every,
                        bool(record_params), False, None)
        hp = {k: jnp.asarray(v, jnp.float64) for k, v in schedule.as_arrays().items()}
        yy = jnp.asarray(y) if margins is not binary_margins else jnp.asarray(y, jnp.float64)
        recs, final = prog(_to64(params), _to64(x), yy, hp)
        recs = jax.device_get(recs)
        final = jax.device_get(final)
    return _finish(recs, final, order, int(np.shape(y)[0]), loss, record_params,
                   np.arange(steps // log_every + 1) * log_every)


def train_margin_grid(apply: Callable, params: Any, x: Any, y: Any, *, order: int,
                      schedules: list[Schedule], steps: int, log_every: int = 1,
                      loss: str = "logistic", margins: Callable = binary_margins,
                      data_axis: int | None = None, record_params: bool = False) -> MarginRun:
    """:func:`train_margin` for a grid of runs as one vmapped, compiled call.

    Arguments not listed here are as in :func:`train_margin`.

    Args:
      params: initial parameters stacked on a leading grid axis of size ``G``.
      x, y: shared data, or stacked per member with ``data_axis=0``.
      schedules: ``G`` schedules (constant and loss-based may be mixed).

    Returns:
      A :class:`MarginRun` whose arrays have a leading axis ``G``; ``run.member(i)``
      gives one member.
    """
    order, steps, log_every = _check_common(apply, params, margins, order, steps, log_every,
                                            loss)
    if data_axis not in (None, 0):
        raise ValueError(f"argument `data_axis` must be None or 0; got {data_axis!r}")
    g = {int(np.shape(a)[0]) for a in jax.tree.leaves(params)}
    if len(g) != 1:
        raise ValueError(f"argument `params` must be stacked on one leading grid axis; "
                         f"got leading sizes {g}")
    g = g.pop()
    if not isinstance(schedules, (list, tuple)) or not all(
            isinstance(s, Schedule) for s in schedules):
        raise TypeError(f"argument `schedules` must be a list of constant_lr(...) or "
                        f"loss_based_lr(...); got {schedules!r}")
    if len(schedules) != g:
        raise ValueError(f"argument `schedules` must have one schedule per member ({g}); "
                         f"got {len(schedules)}")
    _check_data(x, y, margins is binary_margins, stacked=data_axis == 0)
    with enable_x64(True):
        prog = _program(apply, margins, loss, order, steps // log_every, log_every,
                        bool(record_params), True, data_axis)
        hp = {k: jnp.asarray([s.as_arrays()[k] for s in schedules], jnp.float64)
              for k in ("mode", "lr", "r_up", "r_down")}
        yy = jnp.asarray(y) if margins is not binary_margins else jnp.asarray(y, jnp.float64)
        recs, final = prog(_to64(params), _to64(x), yy, hp)
        recs = jax.device_get(recs)
        final = jax.device_get(final)
    n = int(np.shape(y)[-1])
    return _finish(recs, final, order, n, loss, record_params,
                   np.arange(steps // log_every + 1) * log_every)
