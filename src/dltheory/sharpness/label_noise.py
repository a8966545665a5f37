"""Label-noise SGD after zero loss: the trace of the Hessian and sparse regression.

The model is the quadratically parameterized linear model of Woodworth et al. (2020),

    f(theta; x) = <u * u - v * v, x>,   theta = (u, v) in R^d x R^d,

trained on the square loss ``L(theta) = mean_n (f(theta; x_n) - y_n)^2`` with inputs
``x_n`` in ``{-1, +1}^d`` and labels from a ``kappa``-sparse target ``w*``. Every
``theta`` with ``X (u*u - v*v) = y`` is a global minimizer: when ``N < d`` they form a
manifold ``Gamma`` of dimension ``2d - N``.

Label-noise SGD draws ``B`` examples per step and adds fresh noise ``sigma * xi``
(``xi = +-1``) to their labels. Near ``Gamma`` its gradient noise has covariance
``2 sigma^2 / B`` times the Hessian, and over ``tau = eta^2 k`` it follows the flow

    d theta / d tau = -(sigma^2 / (2 B)) grad_Gamma tr(Hessian of L)(theta)

on ``Gamma`` (Li, Wang, Arora 2022). For this model the trace is exactly
``(8 / N) sum_n sum_j x_nj^2 (u_j^2 + v_j^2)`` (``8 |theta|^2`` for +-1 inputs), whose
minimum over ``Gamma`` sits at the minimum-l1 interpolant: label-noise SGD solves basis
pursuit and recovers ``w*`` from ``O(kappa ln d)`` examples, while gradient descent from
the same large initialization stays near its start (the kernel regime) and needs
``Omega(d)``.

Everything trains through :mod:`dltheory.training`. Several independent problems
("members") are trained as one: their parameters are stacked on a leading axis, the loss
is the sum of the members' losses (each times a weight), so plain SGD moves every member
exactly as its own run with learning rate ``lr * weight`` would. Problems of different
sizes are padded with zero rows (masked) and zero columns (which never move and count
for nothing).

References:
  Li, Wang, Arora (2022), What Happens after SGD Reaches Zero Loss? A Mathematical
  Framework, ICLR, arXiv:2110.06914. Blanc, Gupta, Valiant, Valiant (2020), COLT,
  arXiv:1904.09080. Damian, Ma, Lee (2021), NeurIPS, arXiv:2106.06530. Woodworth et al.
  (2020), Kernel and Rich Regimes in Overparametrized Models, COLT, arXiv:2002.09277.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dltheory import validation as V
from dltheory.config import Preset, log_interval
from dltheory.training import optimizer, sweep, train
from dltheory._jit import jit

__all__ = [
    "LabelNoise", "LabelNoiseSizes", "SparseProblem", "FlowResult", "ToyResult",
    "TimeScaleResult", "SampleComplexityResult", "sparse_problem", "init_params",
    "weights", "predict", "loss", "hessian_trace", "test_mse", "min_l1_interpolant",
    "limiting_flow", "toy_experiment", "time_scale_experiment",
    "sample_complexity_experiment", "explorer_grid", "explorer_run", "explorer_figure",
    "explorer", "METRICS", "NOISES",
]

NOISES = ("rademacher", "gaussian")


# --------------------------------------------------------------------------------------
# The problem and the model
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SparseProblem:
    """A sparse regression problem: ``N`` inputs ``x`` in ``{-1, +1}^d`` (rows of
    ``x``), labels ``y = x @ w_star`` without noise, and ``w_star`` with ``kappa``
    entries equal to 1 and the rest 0."""

    x: np.ndarray
    y: np.ndarray
    w_star: np.ndarray

    def __post_init__(self):
        x = V.check_array("x", self.x, ndim=2)
        y = V.check_array("y", self.y, ndim=1)
        w = V.check_array("w_star", self.w_star, ndim=1)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"argument `y` must have one label per row of `x` ({x.shape[0]}); "
                             f"got {y.shape[0]}")
        if w.shape[0] != x.shape[1]:
            raise ValueError(f"argument `w_star` must have one entry per column of `x` "
                             f"({x.shape[1]}); got {w.shape[0]}")

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def d(self) -> int:
        return int(self.x.shape[1])

    @property
    def kappa(self) -> int:
        return int(np.count_nonzero(self.w_star))

    @property
    def target_trace(self) -> float:
        """``8 |w*|_1``: the trace of the Hessian at the sparsest interpolating point."""
        return float(8 * np.abs(self.w_star).sum())


def sparse_problem(n: int, d: int, kappa: int = 2, *, seed: int = 0) -> SparseProblem:
    """``n`` examples with i.i.d. uniform +-1 inputs in ``d`` dimensions and a target with
    ``kappa`` ones on a random support (NumPy's generator seeded with ``seed``).

    Args:
      n: number of examples ``N``.
      d: input dimension.
      kappa: sparsity of ``w*``, ``1 <= kappa <= d``.
      seed: integer seed.
    """
    n = V.check_int("n", n, minimum=1)
    d = V.check_int("d", d, minimum=1)
    kappa = V.check_int("kappa", kappa, minimum=1, maximum=d)
    rng = np.random.default_rng(V.check_seed("seed", seed))
    x = rng.choice(np.array([-1.0, 1.0], np.float32), size=(n, d))
    w = np.zeros(d, np.float32)
    w[rng.choice(d, size=kappa, replace=False)] = 1.0
    return SparseProblem(x, x @ w, w)


def _is_traced(a: Any) -> bool:
    return isinstance(a, jax.core.Tracer)


def _array(name: str, value: Any, min_ndim: int = 0) -> Any:
    """``value`` as an array (a JAX or NumPy array is kept, tracers included) with at
    least ``min_ndim`` dimensions; concrete values must be finite."""
    if isinstance(value, (str, bytes, dict)) or value is None or isinstance(value, bool):
        raise TypeError(f"argument `{name}` must be an array of real numbers; got "
                        f"{V._describe(value)}")
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        try:
            value = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise TypeError(f"argument `{name}` must be an array of real numbers; got "
                            f"{V._describe(value)}") from None
    if value.ndim < min_ndim:
        raise ValueError(f"argument `{name}` must be an array with at least {min_ndim} "
                         f"dimension(s); got shape {tuple(value.shape)}")
    if not _is_traced(value):
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise ValueError(f"argument `{name}` must be an array of finite real numbers; "
                             f"got {V._describe(value)} with non-finite entries")
    return value


def _params(params: Any, name: str = "params") -> tuple[Any, Any]:
    """``(u, v)`` of a parameter dict: arrays of one shape with at least one axis."""
    if not isinstance(params, dict) or "u" not in params or "v" not in params:
        raise TypeError(f"argument `{name}` must be a dict with arrays 'u' and 'v' (the two "
                        f"halves of theta); got {V._describe(params)}")
    u = _array(f"{name}['u']", params["u"], 1)
    v = _array(f"{name}['v']", params["v"], 1)
    if u.shape != v.shape:
        raise ValueError(f"arguments `{name}['u']` and `{name}['v']` must have one shape; got "
                         f"{tuple(u.shape)} and {tuple(v.shape)}")
    return u, v


def _inputs(name: str, x: Any, d: int) -> Any:
    """Inputs of shape ``(..., N, d)``."""
    x = _array(name, x, 2)
    if x.shape[-1] != d:
        raise ValueError(f"argument `{name}` must have shape (..., N, {d}) (d = {d} as in "
                         f"`params`); got {tuple(x.shape)}")
    return x


def _examples(name: str, value: Any, shape: tuple) -> Any:
    """One value per example: an array of shape ``shape`` (or one that broadcasts to it)."""
    value = _array(name, value)
    try:
        ok = np.broadcast_shapes(tuple(value.shape), tuple(shape)) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"argument `{name}` must have shape {tuple(shape)} (one value per "
                         f"example of `x`); got {tuple(value.shape)}")
    return value


def init_params(d: int, scale: float = 1.0, members: int | None = None) -> dict:
    """``u = v = scale * 1``: the model is zero at initialization. With ``members``, the
    arrays have a leading axis of that length."""
    d = V.check_int("d", d, minimum=1)
    scale = V.check_positive("scale", scale)
    shape = (d,) if members is None else (V.check_int("members", members, minimum=1), d)
    return {"u": jnp.full(shape, scale, jnp.float32), "v": jnp.full(shape, scale, jnp.float32)}


def weights(params: dict) -> jax.Array:
    """The linear predictor ``w = u * u - v * v`` (any leading axes)."""
    u, v = _params(params)
    return u ** 2 - v ** 2


def predict(params: dict, x: jax.Array) -> jax.Array:
    """``f(theta; x_n) = <w, x_n>`` for inputs ``x`` of shape ``(..., N, d)``."""
    w = weights(params)
    x = _inputs("x", x, w.shape[-1])
    return jnp.einsum("...nd,...d->...n", x, w)


def _mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
    if mask is None:
        return jnp.mean(values, axis=-1)
    return jnp.sum(mask * values, axis=-1) / jnp.maximum(jnp.sum(mask, axis=-1), 1.0)


def loss(params: dict, batch: dict) -> jax.Array:
    """The square loss ``mean_n (f(theta; x_n) - y_n)^2``, summed over stacked members.

    ``batch`` holds ``x`` ``(..., N, d)`` and ``y`` ``(..., N)``, optionally ``mask``
    ``(..., N)`` (1 for the examples in use) and ``weight`` ``(...)`` (each member's loss
    is multiplied by it: with SGD, a learning-rate factor).
    """
    if not isinstance(batch, dict) or "x" not in batch or "y" not in batch:
        raise TypeError(f"argument `batch` must be a dict with arrays 'x' and 'y' (and "
                        f"optionally 'mask', 'weight'); got {V._describe(batch)}")
    w = weights(params)
    f = jnp.einsum("...nd,...d->...n", _inputs("batch['x']", batch["x"], w.shape[-1]), w)
    y = _examples("batch['y']", batch["y"], f.shape)
    mask = batch.get("mask")
    if mask is not None:
        mask = _examples("batch['mask']", mask, f.shape)
    per_member = _mean((f - y) ** 2, mask)
    if batch.get("weight") is not None:
        per_member = per_member * _examples("batch['weight']", batch["weight"],
                                            per_member.shape)
    return jnp.sum(per_member)


def hessian_trace(params: dict, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The exact trace of the Hessian of :func:`loss` (one member, weight 1).

    ``tr = (2/N) sum_n |grad f(x_n)|^2 + (2/N) sum_n r_n tr(Hess f(x_n))``; the second sum
    vanishes because ``Hess f(x_n) = diag(2 x_n, -2 x_n)`` has zero trace, and
    ``|grad f(x_n)|^2 = 4 sum_j x_nj^2 (u_j^2 + v_j^2)``. So the trace is
    ``(8/N) sum_n sum_j x_nj^2 (u_j^2 + v_j^2)`` at every ``theta``, on the manifold or
    off it: ``8 |theta|^2`` for +-1 inputs.

    Args:
      params: ``{"u", "v"}`` of shape ``(..., d)``.
      x: inputs ``(..., N, d)``.
      mask: optional ``(..., N)``, 1 for the examples in use.

    Returns:
      The trace per member, shape ``(...)``.
    """
    u, v = _params(params)
    x = _inputs("x", x, u.shape[-1])
    per_example = jnp.einsum("...nd,...d->...n", x ** 2, u ** 2 + v ** 2)
    if mask is not None:
        mask = _examples("mask", mask, per_example.shape)
    return 8.0 * _mean(per_example, mask)


def test_mse(params: dict, w_star: jax.Array) -> jax.Array:
    """The test error ``E_x (f(theta; x) - <w*, x>)^2 = |w - w*|^2`` for inputs with
    i.i.d. uniform +-1 entries (exact, no test sample needed)."""
    w = weights(params)
    w_star = _array("w_star", w_star, 1)
    if w_star.shape[-1] != w.shape[-1]:
        raise ValueError(f"argument `w_star` must have {w.shape[-1]} entries per member (d "
                         f"of `params`); got shape {tuple(w_star.shape)}")
    return jnp.sum((w - w_star) ** 2, axis=-1)


def min_l1_interpolant(x: Any, y: Any) -> np.ndarray:
    """Basis pursuit: ``argmin |w|_1`` subject to ``x @ w = y``, a linear program
    (scipy's HiGHS) in ``w = p - q`` with ``p, q >= 0``.

    On the manifold of minimizers ``|w|_1 <= |u|^2 + |v|^2 = tr / 8`` with equality when
    ``u_j v_j = 0``, so this is where the trace is smallest.
    """
    from scipy.optimize import linprog

    x = V.check_array("x", x, ndim=2)
    y = V.check_array("y", y, ndim=1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"arguments `x` and `y` must have as many rows; got {x.shape[0]} "
                         f"and {y.shape[0]}")
    d = x.shape[1]
    res = linprog(np.ones(2 * d), A_eq=np.hstack([x, -x]), b_eq=y, bounds=(0, None),
                  method="highs")
    if res.status != 0:
        raise ValueError(f"arguments `x` and `y` must admit a w with x @ w = y; the linear "
                         f"program says: {res.message}")
    return res.x[:d] - res.x[d:]


# --------------------------------------------------------------------------------------
# Label noise as a batch source
# --------------------------------------------------------------------------------------


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["x", "y", "size", "sigma", "weight"],
                   meta_fields=["batch_size", "noise"])
@dataclasses.dataclass(frozen=True)
class LabelNoise:
    """Batches of label-noise SGD for stacked members, drawn on device.

    At step ``k`` each member draws ``batch_size`` of its first ``size`` examples
    (uniformly, with replacement) and adds ``sigma * xi`` to their labels, ``xi``
    uniform on ``{-1, +1}`` (``noise="rademacher"``) or standard normal
    (``"gaussian"``). Indices and noise come from ``fold_in(key, k)``: fresh at every
    step, and the same key gives the same batches. ``sigma = 0`` is plain SGD.

    The numeric fields are data, so a new ``sigma`` (same shapes) reuses the compiled
    training loop. Build it with :meth:`of`.

    Attributes:
      x: inputs ``(M, N, d)``; y: labels ``(M, N)``.
      size: examples in use per member ``(M,)`` (rows beyond are padding).
      sigma: label-noise level per member ``(M,)``.
      weight: loss weight per member ``(M,)`` (a learning-rate factor under SGD).
    """

    x: Any
    y: Any
    size: Any
    sigma: Any
    weight: Any
    batch_size: int = 1
    noise: str = "rademacher"

    def __post_init__(self):
        V.check_int("batch_size", self.batch_size, minimum=1)
        V.check_choice("noise", self.noise, NOISES)
        # the data only when it is concrete: JAX rebuilds the pytree with tracers or
        # placeholders as leaves
        leaves = (self.x, self.y, self.size, self.sigma, self.weight)
        if all(isinstance(a, (np.ndarray, jax.Array)) and not _is_traced(a) for a in leaves):
            x = np.asarray(self.x)
            if x.ndim != 3:
                raise ValueError(f"argument `x` must have shape (M, N, d); got {x.shape} "
                                 f"(LabelNoise.of also takes one problem of shape (N, d))")
            m, n = x.shape[:2]
            for name, shape in (("y", (m, n)), ("size", (m,)), ("sigma", (m,)),
                                ("weight", (m,))):
                if np.shape(getattr(self, name)) != shape:
                    raise ValueError(f"argument `{name}` must have shape {shape}; got "
                                     f"{np.shape(getattr(self, name))}")
            V.check_array("sigma", self.sigma, nonnegative=True)
            V.check_array("weight", self.weight, positive=True)
            size = np.asarray(self.size)
            if np.any(size < 1) or np.any(size > n):
                raise ValueError(f"argument `size` must be whole numbers of examples in "
                                 f"[1, {n}]; got {size.tolist()}")

    @classmethod
    def of(cls, x: Any, y: Any, *, sigma: Any = 1.0, batch_size: int = 1,
           size: Any = None, weight: Any = None, noise: str = "rademacher") -> "LabelNoise":
        """Label-noise batches for one problem (``x`` of shape ``(N, d)``) or stacked
        members (``(M, N, d)``); ``sigma``, ``size`` and ``weight`` are numbers or one
        per member."""
        xa = V.check_array("x", x, ndim=(2, 3))
        ya = V.check_array("y", y, ndim=(1, 2))
        if xa.ndim == 2:
            xa, ya = xa[None], ya[None]
        if ya.shape != xa.shape[:2]:
            raise ValueError(f"argument `y` must have shape {xa.shape[:2]} (one label per "
                             f"row of `x`); got {ya.shape}")
        m, n = xa.shape[:2]
        sigma = _per_member("sigma", sigma, m, nonnegative=True)
        size = np.full(m, n) if size is None else _per_member("size", size, m, positive=True)
        if np.any(size != np.round(size)) or np.any(size > n):
            raise ValueError(f"argument `size` must be whole numbers of examples in [1, {n}]; "
                             f"got {size.tolist()}")
        weight = np.ones(m) if weight is None else _per_member("weight", weight, m,
                                                                positive=True)
        batch_size = V.check_int("batch_size", batch_size, minimum=1)
        V.check_choice("noise", noise, NOISES)
        return cls(jnp.asarray(xa, jnp.float32), jnp.asarray(ya, jnp.float32),
                   jnp.asarray(size, jnp.int32), jnp.asarray(sigma, jnp.float32),
                   jnp.asarray(weight, jnp.float32), batch_size, noise)

    def sample(self, key: jax.Array, step: jax.Array) -> dict:
        """The batch of step ``step``: ``x`` ``(M, B, d)``, noisy ``y`` ``(M, B)``,
        ``weight`` ``(M,)``."""
        k_idx, k_noise = jax.random.split(jax.random.fold_in(key, step))
        m = self.y.shape[0]
        idx = jax.random.randint(k_idx, (m, self.batch_size), 0, self.size[:, None])
        if self.noise == "rademacher":
            xi = jax.random.rademacher(k_noise, (m, self.batch_size), dtype=self.y.dtype)
        else:
            xi = jax.random.normal(k_noise, (m, self.batch_size), dtype=self.y.dtype)
        return {"x": jnp.take_along_axis(self.x, idx[..., None], axis=1),
                "y": jnp.take_along_axis(self.y, idx, axis=1) + self.sigma[:, None] * xi,
                "weight": self.weight}


def _per_member(name: str, value: Any, m: int, **checks: bool) -> np.ndarray:
    """A number, or one per member, as an array of shape ``(m,)``."""
    arr = V.check_array(name, value, ndim=(0, 1), **checks)
    if arr.ndim == 1 and arr.shape[0] != m:
        raise ValueError(f"argument `{name}` must be a number or one value per member "
                         f"({m}); got {arr.shape[0]} values")
    return np.broadcast_to(arr, (m,))


def _metrics(params: dict, data: dict) -> dict:
    """Per member: the test error, the trace of the Hessian and the training loss."""
    return {"test_mse": test_mse(params, data["w_star"]),
            "trace": hessian_trace(params, data["x"], data["mask"]),
            "train_mse": _mean((predict(params, data["x"]) - data["y"]) ** 2, data["mask"])}


@dataclasses.dataclass(frozen=True)
class _Stack:
    """Problems padded to one shape: ``x`` ``(M, N, d)``, ``y``, ``mask``, ``w_star``."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    w_star: np.ndarray

    @classmethod
    def of(cls, problems: list[SparseProblem], n: int | None = None,
           d: int | None = None) -> "_Stack":
        n = max(p.n for p in problems) if n is None else n
        d = max(p.d for p in problems) if d is None else d
        x = np.zeros((len(problems), n, d), np.float32)
        y = np.zeros((len(problems), n), np.float32)
        mask = np.zeros((len(problems), n), np.float32)
        w = np.zeros((len(problems), d), np.float32)
        for i, p in enumerate(problems):
            x[i, :p.n, :p.d], y[i, :p.n], mask[i, :p.n], w[i, :p.d] = p.x, p.y, 1.0, p.w_star
        return cls(x, y, mask, w)

    @property
    def eval_data(self) -> dict:
        return {"x": jnp.asarray(self.x), "y": jnp.asarray(self.y),
                "mask": jnp.asarray(self.mask), "w_star": jnp.asarray(self.w_star)}

    def full_batch(self, weight: np.ndarray | None = None) -> dict:
        w = np.ones(len(self.x)) if weight is None else weight
        return {**self.eval_data, "weight": jnp.asarray(w, jnp.float32)}


def _status(diverged_at: Any) -> str:
    d = int(diverged_at) if diverged_at is not None else -1
    return f"diverged at step {d}" if d >= 0 else "finished"


# --------------------------------------------------------------------------------------
# The limiting flow on the manifold
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FlowResult:
    """The limiting flow: ``s`` (flow time, ``sigma^2 eta^2 k / B``), the trace of the
    Hessian along it, the training residual (distance from the manifold, in loss) and the
    final parameters and predictor ``w``."""

    s: np.ndarray
    trace: np.ndarray
    train_mse: np.ndarray
    params: dict
    w: np.ndarray


@functools.partial(jit, static_argnames=("num", "newton"))
def _flow(theta, x, y, ds, *, num: int, newton: int = 3):
    d = x.shape[1]

    def jac(th):  # rows: grad_theta f(x_n)
        return jnp.concatenate([2 * x * th[:d], -2 * x * th[d:]], axis=1)

    def residual(th):
        return x @ (th[:d] ** 2 - th[d:] ** 2) - y

    def retract(th):  # Gauss-Newton steps back onto {residual = 0}
        for _ in range(newton):
            j = jac(th)
            th = th - j.T @ jnp.linalg.solve(j @ j.T, residual(th))
        return th

    trace_grad = jax.grad(lambda th: hessian_trace({"u": th[:d], "v": th[d:]}, x))

    def step(th, _):
        g = trace_grad(th)
        j = jac(th)
        tangent = g - j.T @ jnp.linalg.solve(j @ j.T, j @ g)
        th = retract(th - ds * 0.5 * tangent)
        return th, (hessian_trace({"u": th[:d], "v": th[d:]}, x), jnp.mean(residual(th) ** 2))

    th0 = retract(theta)
    th, (tr, mse) = jax.lax.scan(step, th0, None, length=num)
    first = (hessian_trace({"u": th0[:d], "v": th0[d:]}, x), jnp.mean(residual(th0) ** 2))
    return th, jnp.concatenate([first[0][None], tr]), jnp.concatenate([first[1][None], mse])


def limiting_flow(problem: SparseProblem, params: dict, *, s_max: float,
                  num: int = 1000) -> FlowResult:
    """Integrate the label-noise flow ``d theta / ds = -(1/2) grad_Gamma tr(Hessian)``
    from ``params`` (first moved onto the manifold by Gauss-Newton steps) for flow time
    ``s`` in ``[0, s_max]``, ``s = sigma^2 eta^2 k / B``.

    ``grad_Gamma`` is the gradient projected on the tangent space of
    ``Gamma = {theta : X w(theta) = y}``; each Euler step is followed by Gauss-Newton
    steps back onto ``Gamma``. Start it at the limit of gradient flow from the
    initialization (``Phi(theta_0)``, for example the end of a GD run) to get the
    prediction for label-noise SGD from that initialization.

    References:
      Li, Wang, Arora (2022), the limiting flow of label-noise SGD, written for this
      module's loss (noise covariance ``(2 sigma^2 / B)`` times the Hessian on Gamma).
    """
    V.check_instance("problem", problem, SparseProblem)
    if problem.n >= problem.d:
        raise ValueError(f"argument `problem` must have fewer examples than dimensions (for a "
                         f"manifold of minimizers); got N = {problem.n}, d = {problem.d}")
    s_max = V.check_positive("s_max", s_max)
    num = V.check_int("num", num, minimum=1)
    u, v = (np.asarray(a, np.float64) for a in _params(params))
    if u.shape != (problem.d,):
        raise ValueError(f"arguments `params['u']`, `params['v']` must have shape "
                         f"({problem.d},); got {u.shape} and {v.shape}")
    theta = jnp.asarray(np.concatenate([u, v]), jnp.float32)
    th, tr, mse = _flow(theta, jnp.asarray(problem.x), jnp.asarray(problem.y),
                        jnp.float32(s_max / num), num=num)
    th = np.asarray(th)
    p = {"u": th[:problem.d], "v": th[problem.d:]}
    return FlowResult(np.linspace(0.0, s_max, num + 1), np.asarray(tr), np.asarray(mse), p,
                      p["u"] ** 2 - p["v"] ** 2)


# --------------------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LabelNoiseSizes(Preset):
    """Sizes of the chapter's experiments.

    The toy: ``n`` examples in ``d`` dimensions, ``kappa``-sparse target, initialization
    ``u = v = init_scale``, label-noise SGD (batch 1, ``lr``, ``sigma``) for ``steps`` in
    ``replicas`` independent copies, GD for ``gd_steps``. The time scale: the learning
    rates ``ts_lrs`` at ``ts_sigma`` for ``ts_steps`` (``ts_replicas`` copies each). The
    widget: ``widget_sigmas`` (plus 0) by ``widget_lrs`` for ``widget_steps``. The sample
    complexity: dimensions ``sc_dims``, label-noise runs on ``sc_sizes`` examples, GD on
    ``sc_fractions`` of ``d`` examples, ``sc_seeds`` problems each, for ``sc_steps`` and
    ``sc_gd_steps``, and basis pursuit on ``sc_bp_seeds`` problems of each size (the
    label-noise ones first); "needed" means a median test error below ``sc_threshold``.
    """

    n: int = 20
    d: int = 50
    kappa: int = 2
    init_scale: float = 1.0
    lr: float = 0.002
    sigma: float = 1.0
    steps: int = 200_000
    replicas: int = 4
    gd_steps: int = 5000
    ts_lrs: tuple[float, ...] = (0.0005, 0.000707, 0.001)
    ts_sigma: float = 2.0
    ts_steps: int = 150_000
    ts_replicas: int = 4
    widget_sigmas: tuple[float, ...] = (0.5, 1.0, 2.0)
    widget_lrs: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.004, 0.005)
    widget_steps: int = 100_000
    sc_dims: tuple[int, ...] = (16, 32, 64, 128)
    sc_sizes: tuple[int, ...] = (6, 8, 10, 12, 14, 16, 20, 24)
    sc_fractions: tuple[float, ...] = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    sc_seeds: int = 3
    sc_bp_seeds: int = 12
    sc_steps: int = 150_000
    sc_gd_steps: int = 4000
    sc_threshold: float = 0.2
    sc_base_dim: int = 32
    sc_stability: float = 0.8

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()
        for name in ("init_scale", "lr", "sigma", "ts_sigma", "sc_threshold"):
            V.check_positive(name, getattr(self, name))
        for name in ("ts_lrs", "widget_sigmas", "widget_lrs", "sc_fractions"):
            V.check_array(name, getattr(self, name), ndim=1, positive=True)
        V.check_int("kappa", self.kappa, minimum=1, maximum=self.d)
        V.check_int("n", self.n, minimum=1, maximum=self.d - 1)
        V.check_in_range("sc_stability", self.sc_stability, 0.0, 1.0, low_inclusive=False)
        if min(self.sc_dims) <= self.kappa:
            raise ValueError(f"argument `sc_dims` must exceed `kappa` ({self.kappa}); got "
                             f"{self.sc_dims}")

    @classmethod
    def quick(cls) -> "LabelNoiseSizes":
        return cls()

    @classmethod
    def paper(cls) -> "LabelNoiseSizes":
        return cls(steps=400_000, replicas=16, gd_steps=20_000,
                   ts_lrs=(0.00025, 0.000354, 0.0005), ts_steps=600_000, ts_replicas=16,
                   widget_steps=400_000, sc_dims=(32, 64, 128, 256, 512),
                   sc_sizes=(8, 10, 12, 14, 16, 18, 20, 24, 28, 32, 40), sc_seeds=8, sc_bp_seeds=50,
                   sc_steps=400_000, sc_gd_steps=20_000, sc_base_dim=64)


def _check_sizes(sizes: Any) -> LabelNoiseSizes:
    if sizes is None:
        return LabelNoiseSizes.current()
    return V.check_instance("sizes", sizes, LabelNoiseSizes, "LabelNoiseSizes preset or None")


def _sgd(lr: Any):
    return optimizer(optax.sgd, learning_rate=lr)


def _gd_run(problem: SparseProblem, s: LabelNoiseSizes):
    """Full-batch GD at ``s.lr`` from ``u = v = s.init_scale`` for ``s.gd_steps``."""
    one = _Stack.of([problem])
    return train(loss, init_params(problem.d, s.init_scale, 1), _sgd(s.lr), steps=s.gd_steps,
                 batches=one.full_batch(), log_every=log_interval(s.gd_steps, 200),
                 metrics=_metrics, eval_data=one.eval_data, warn=False)


def _first(params: dict) -> dict:
    return {k: np.asarray(a)[0] for k, a in params.items()}


# --------------------------------------------------------------------------------------
# The toy: label-noise SGD finds the sparse solution
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ToyResult:
    """Label-noise SGD, plain SGD and GD on one sparse problem, from the same init.

    Attributes:
      problem: the data and target.
      steps: logged steps of the SGD runs; ``ln_test``, ``ln_trace``: ``(replicas,
        n_log)`` for label-noise SGD; ``sgd_test``, ``sgd_trace``: ``(n_log,)`` for SGD
        without label noise (same learning rate, batch 1).
      gd_steps, gd_test, gd_trace: full-batch GD at the same learning rate.
      ln_w: final predictors of the label-noise replicas ``(replicas, d)``; gd_w: GD's.
      l1_w: the minimum-l1 interpolant (basis pursuit).
      gd_params: GD's final parameters (the start of the limiting flow).
      ln_test_final: mean final test error of the replicas; ln_test_worst: the largest.
      sgd_test_final, gd_test_final: final test errors without label noise.
      ln_trace_final: mean final trace; trace_ratio: it over ``8 |w*|_1``.
      l1_distance: mean ``|w - w_l1|`` of the replicas at the end.
      status: ``"finished"`` or ``"diverged at step k"``.
    """

    problem: SparseProblem
    lr: float
    sigma: float
    steps: np.ndarray
    ln_test: np.ndarray
    ln_trace: np.ndarray
    sgd_test: np.ndarray
    sgd_trace: np.ndarray
    gd_steps: np.ndarray
    gd_test: np.ndarray
    gd_trace: np.ndarray
    ln_w: np.ndarray
    gd_w: np.ndarray
    l1_w: np.ndarray
    gd_params: dict
    ln_test_final: float
    ln_test_worst: float
    sgd_test_final: float
    gd_test_final: float
    ln_trace_final: float
    trace_ratio: float
    l1_distance: float
    status: str


def toy_experiment(sizes: LabelNoiseSizes | None = None, *, key: int = 0) -> ToyResult:
    """The toy of the chapter: label-noise SGD (``sizes.replicas`` copies with independent
    noise) and plain SGD in one stacked run, and GD, all from ``u = v = init_scale``.

    The problem is ``sparse_problem(n, d, kappa, seed=key)``; the noise key is ``key + 1``.

    References:
      Li, Wang, Arora (2022): label-noise SGD recovers the sparse target; GD from a large
      initialization does not (Woodworth et al. 2020).
    """
    s = _check_sizes(sizes)
    key = V.check_seed("key", key)
    problem = sparse_problem(s.n, s.d, s.kappa, seed=key)
    r = s.replicas
    stack = _Stack.of([problem] * (r + 1))
    source = LabelNoise.of(stack.x, stack.y, sigma=[s.sigma] * r + [0.0])
    every = log_interval(s.steps, 200)
    run = train(loss, init_params(s.d, s.init_scale, r + 1), _sgd(s.lr), steps=s.steps,
                batches=source, key=key + 1, log_every=every, metrics=_metrics,
                eval_data=stack.eval_data, warn=False)
    gd = _gd_run(problem, s)
    test, trace = run["test_mse"], run["trace"]
    ln_w = np.asarray(weights(run.params))[:r]
    l1_w = min_l1_interpolant(problem.x, problem.y)
    status = _status(run.diverged_at if run.diverged else gd.diverged_at)
    return ToyResult(
        problem, s.lr, s.sigma, run.steps, test[:, :r].T, trace[:, :r].T, test[:, r],
        trace[:, r], gd.steps, gd["test_mse"][:, 0], gd["trace"][:, 0], ln_w,
        np.asarray(weights(gd.params))[0], l1_w,
        _first(gd.params), float(np.mean(test[-1, :r])), float(np.max(test[-1, :r])), float(test[-1, r]),
        float(gd["test_mse"][-1, 0]), float(np.mean(trace[-1, :r])),
        float(np.mean(trace[-1, :r]) / problem.target_trace),
        float(np.mean(np.abs(ln_w - l1_w).sum(axis=1))), status)


# --------------------------------------------------------------------------------------
# The time scale eta^2 k
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TimeScaleResult:
    """Label-noise SGD at several learning rates, and the limiting flow.

    Attributes:
      lrs: the learning rates ``(L,)``; sigma: the label noise.
      steps: logged steps; trace: mean trace over the replicas ``(L, n_log)``.
      flow: the limiting flow from GD's end point (flow time ``s = sigma^2 tau``).
      levels: the trace levels (the fractions ``fractions`` of the way from the initial
        trace to ``8 |w*|_1``); level_tau, level_steps: ``(levels, L)``, the first
        ``tau = eta^2 k`` (and step ``k``) at which each run's trace is below each level.
      spread_tau, spread_steps: the largest relative spread ``(max - min) / mean`` over the
        learning rates of ``level_tau`` and of ``level_steps``.
      flow_deviation: ``(L,)``, mean relative deviation of each run's trace from the flow's
        at the same ``tau``; deviation_slope and deviation_at_zero: the line through them
        against ``lr`` (its value at ``lr = 0``).
      status: one string per learning rate.
    """

    lrs: np.ndarray
    sigma: float
    steps: np.ndarray
    trace: np.ndarray
    flow: FlowResult
    fractions: np.ndarray
    levels: np.ndarray
    level_tau: np.ndarray
    level_steps: np.ndarray
    spread_tau: float
    spread_steps: float
    flow_deviation: np.ndarray
    deviation_slope: float
    deviation_at_zero: float
    status: tuple


def _spread(a: np.ndarray) -> float:
    return float(np.max((a.max(axis=1) - a.min(axis=1)) / a.mean(axis=1)))


def time_scale_experiment(sizes: LabelNoiseSizes | None = None, *, key: int = 0,
                          fractions: tuple = (0.5, 0.25, 0.125)) -> TimeScaleResult:
    """Label-noise SGD on the toy at the learning rates ``sizes.ts_lrs`` (one sweep over
    the learning rates, ``ts_replicas`` stacked copies each, all from the same key), and
    the limiting flow from the point GD reaches.

    The theory predicts that the trace depends on ``tau = eta^2 k`` alone, and follows the
    flow's ``s = sigma^2 tau``, as ``eta -> 0``: the level crossings agree in ``tau``
    (``spread_tau`` small) and not in steps, and the deviation from the flow shrinks with
    ``eta`` (``deviation_at_zero`` near 0).
    """
    s = _check_sizes(sizes)
    key = V.check_seed("key", key)
    fractions = np.asarray(V.check_array("fractions", fractions, ndim=1, positive=True))
    problem = sparse_problem(s.n, s.d, s.kappa, seed=key)
    r = s.ts_replicas
    stack = _Stack.of([problem] * r)
    lrs = np.asarray(s.ts_lrs, np.float64)
    res = sweep(loss, init_params(s.d, s.init_scale, r), _sgd(jnp.asarray(lrs, jnp.float32)),
                steps=s.ts_steps, batches=LabelNoise.of(stack.x, stack.y, sigma=s.ts_sigma),
                key=jax.random.key(key + 1), log_every=log_interval(s.ts_steps, 400),
                metrics=_metrics, eval_data=stack.eval_data)
    trace = res["trace"].mean(axis=-1)                              # (L, n_log)
    gd = _gd_run(problem, s)
    tau = lrs[:, None] ** 2 * res.steps[None, :]
    flow = limiting_flow(problem, _first(gd.params),
                         s_max=s.ts_sigma ** 2 * float(tau[:, -1].min()))
    start, end = float(np.nanmean(trace[:, 0])), problem.target_trace
    levels = end + fractions * (start - end)
    k_cross = np.full((len(levels), len(lrs)), np.nan)
    for i, level in enumerate(levels):
        for j in range(len(lrs)):
            below = np.flatnonzero(trace[j] < level)
            if below.size:
                k_cross[i, j] = res.steps[below[0]]
    t_cross = k_cross * lrs[None, :] ** 2
    deviation = np.full(len(lrs), np.nan)
    for j in range(len(lrs)):
        pred = np.interp(s.ts_sigma ** 2 * tau[j], flow.s, flow.trace, right=np.nan)
        ok = np.isfinite(pred) & np.isfinite(trace[j]) & (tau[j] >= 0.1 * tau[:, -1].min())
        if ok.any():
            deviation[j] = float(np.mean(trace[j][ok] / pred[ok] - 1))
    if np.all(np.isfinite(deviation)) and len(lrs) >= 2:
        slope, intercept = np.polyfit(lrs, deviation, 1)
    else:
        slope = intercept = float("nan")
    return TimeScaleResult(
        lrs, float(s.ts_sigma), res.steps, trace, flow, fractions, levels, t_cross, k_cross,
        _spread(t_cross), _spread(k_cross), deviation, float(slope), float(intercept),
        tuple(_status(dv) for dv in res.diverged_at))


# --------------------------------------------------------------------------------------
# Sample complexity: ln d against d
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SampleComplexityResult:
    """How many examples label-noise SGD and GD need, across dimensions.

    Attributes:
      dims: the dimensions ``(D,)``; sizes: the example counts of the label-noise runs
        ``(S,)``; gd_sizes: those of the GD runs ``(D, F)``.
      ln_error: final test errors ``(D, S, seeds)`` of label-noise SGD (NaN where
        ``N >= d``); bp_error: ``(D, S, bp_seeds)`` of basis pursuit, on the same problems
        and more; gd_error: ``(D, F, seeds)`` of GD.
      lrs, sigmas: the label-noise runs' learning rate and noise per dimension.
      threshold: the test error "needed" refers to.
      n_ln, n_bp, n_gd: examples needed per dimension (first crossing of the median
        error below the threshold, interpolated linearly; NaN if never).
      exponent_ln, exponent_gd, exponent_bp: slopes of ``ln n`` against ``ln d``.
      log_fit: ``(a, b)`` of ``n_ln = a + b ln d``.
      status: ``"finished"`` or where the label-noise or GD run diverged.
    """

    dims: np.ndarray
    sizes: np.ndarray
    gd_sizes: np.ndarray
    ln_error: np.ndarray
    bp_error: np.ndarray
    gd_error: np.ndarray
    lrs: np.ndarray
    sigmas: np.ndarray
    threshold: float
    n_ln: np.ndarray
    n_bp: np.ndarray
    n_gd: np.ndarray
    exponent_ln: float
    exponent_gd: float
    exponent_bp: float
    log_fit: tuple
    status: str


def _needed(sizes: np.ndarray, errors: np.ndarray, threshold: float) -> float:
    """First ``n`` where the median error is below ``threshold`` (linear interpolation
    from the previous size)."""
    med = np.array([np.median(row[np.isfinite(row)]) if np.isfinite(row).any() else np.nan
                    for row in errors])
    for i, (n, e) in enumerate(zip(sizes, med)):
        if np.isfinite(e) and e < threshold:
            if i == 0 or not np.isfinite(med[i - 1]):
                return float(n)
            return float(sizes[i - 1] + (n - sizes[i - 1]) * (med[i - 1] - threshold)
                         / (med[i - 1] - e))
    return float("nan")


def _slope(dims: np.ndarray, n: np.ndarray) -> float:
    ok = np.isfinite(n)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(dims[ok]), np.log(n[ok]), 1)[0])


def sample_complexity_experiment(sizes: LabelNoiseSizes | None = None
                                 ) -> SampleComplexityResult:
    """Test error against the number of examples, for label-noise SGD, basis pursuit and
    GD, at each dimension of ``sizes.sc_dims``; one stacked run for all label-noise
    problems and one for all GD problems.

    Initialization ``u = v = init_scale``. Learning rates are a fraction
    ``sc_stability`` of the largest stable one at initialization: ``2 / tr`` for batch-1
    SGD (each step's Hessian has rank one and eigenvalue ``tr``) and ``2 / lambda_max``
    for GD. The label noise grows with ``d``, ``sigma_d = sigma d / sc_base_dim``, so that
    ``eta_d sigma_d`` and with it the flow time ``sigma^2 eta^2 k`` of a run are the same
    for every dimension.
    """
    s = _check_sizes(sizes)
    dims = np.asarray(s.sc_dims)
    seeds = range(s.sc_seeds)
    sizes_ln = np.asarray(s.sc_sizes)
    # label-noise SGD: every (d, N < d, seed) problem, padded to the largest shapes
    probs, meta = [], []
    for di, d in enumerate(dims):
        for si, n in enumerate(sizes_ln):
            if n < d:
                for k in seeds:
                    probs.append(sparse_problem(int(n), int(d), s.kappa,
                                                seed=int(1000 * d + 17 * n + k)))
                    meta.append((di, si, k))
    stack = _Stack.of(probs)
    dd = np.array([p.d for p in probs], np.float64)
    trace0 = 16.0 * s.init_scale ** 2 * dd
    lr = 2 * s.sc_stability / trace0
    sigma = s.sigma * dd / s.sc_base_dim
    base = float(lr.min())
    every = log_interval(s.sc_steps, 10)
    run = train(loss, init_params(stack.x.shape[2], s.init_scale, len(probs)), _sgd(base),
                steps=s.sc_steps, batches=LabelNoise.of(stack.x, stack.y, sigma=sigma,
                                                        size=stack.mask.sum(1),
                                                        weight=lr / base),
                key=1, log_every=every, metrics=_metrics, eval_data=stack.eval_data,
                warn=False)
    ln_error = np.full((len(dims), len(sizes_ln), s.sc_seeds), np.nan)
    final = run["test_mse"][-1]
    for m, (di, si, k) in enumerate(meta):
        ln_error[di, si, k] = final[m]
    bp_seeds = max(s.sc_bp_seeds, s.sc_seeds)
    bp_error = np.full((len(dims), len(sizes_ln), bp_seeds), np.nan)
    for di, d in enumerate(dims):
        for si, n in enumerate(sizes_ln):
            if n < d:
                for k in range(bp_seeds):
                    p = sparse_problem(int(n), int(d), s.kappa, seed=int(1000 * d + 17 * n + k))
                    bp_error[di, si, k] = float(np.sum((min_l1_interpolant(p.x, p.y)
                                                        - p.w_star) ** 2))
    # GD on fractions of d examples
    gd_sizes = np.array([[max(1, int(round(f * d))) for f in s.sc_fractions] for d in dims])
    gprobs, gmeta = [], []
    for di, d in enumerate(dims):
        for fi, n in enumerate(gd_sizes[di]):
            for k in seeds:
                gprobs.append(sparse_problem(int(n), int(d), s.kappa,
                                             seed=int(1000 * d + 17 * n + k)))
                gmeta.append((di, fi, k))
    gstack = _Stack.of(gprobs)
    lam = np.array([2.0 / p.n * np.linalg.eigvalsh(8 * s.init_scale ** 2 * p.x @ p.x.T).max()
                    for p in gprobs])
    glr = s.sc_stability * 2 / lam
    gbase = float(glr.min())
    gd = train(loss, init_params(gstack.x.shape[2], s.init_scale, len(gprobs)), _sgd(gbase),
               steps=s.sc_gd_steps, batches=gstack.full_batch(glr / gbase),
               log_every=log_interval(s.sc_gd_steps, 10), metrics=_metrics,
               eval_data=gstack.eval_data, warn=False)
    gd_error = np.full((len(dims), len(s.sc_fractions), s.sc_seeds), np.nan)
    for m, (di, fi, k) in enumerate(gmeta):
        gd_error[di, fi, k] = gd["test_mse"][-1, m]
    th = s.sc_threshold
    n_ln = np.array([_needed(sizes_ln, ln_error[i], th) for i in range(len(dims))])
    n_bp = np.array([_needed(sizes_ln, bp_error[i], th) for i in range(len(dims))])
    n_gd = np.array([_needed(gd_sizes[i], gd_error[i], th) for i in range(len(dims))])
    ok = np.isfinite(n_ln)
    log_fit = tuple(np.polyfit(np.log(dims[ok]), n_ln[ok], 1)[::-1]) if ok.sum() >= 2 \
        else (float("nan"), float("nan"))
    status = ("finished" if not (run.diverged or gd.diverged) else
              f"label-noise SGD {_status(run.diverged_at)}; GD {_status(gd.diverged_at)}")
    per_dim = [np.flatnonzero(dd == d) for d in dims]
    return SampleComplexityResult(
        dims, sizes_ln, gd_sizes, ln_error, bp_error, gd_error,
        np.array([lr[i[0]] for i in per_dim]), np.array([sigma[i[0]] for i in per_dim]),
        float(th), n_ln, n_bp, n_gd, _slope(dims, n_ln), _slope(dims, n_gd),
        _slope(dims, n_bp), (float(log_fit[0]), float(log_fit[1])), status)


# --------------------------------------------------------------------------------------
# The widget: label noise x learning rate
# --------------------------------------------------------------------------------------


def explorer_grid(sizes: LabelNoiseSizes | None = None, *, key: int = 0,
                  toy: ToyResult | None = None, replicas: int = 2) -> dict:
    """Every setting of the widget on the toy, in one sweep: the learning rates
    ``sizes.widget_lrs`` are the members of the sweep, and within each member the noise
    levels ``(0,) + sizes.widget_sigmas`` are stacked problems, ``replicas`` each, with
    independent noise. The noise level is data of the batch source, so other levels reuse
    the compiled program. Stacked problems stop together: a divergence (which, at the
    start, depends on ``eta`` through ``eta tr(Hessian)`` and not on ``sigma``) stops every
    noise level of that learning rate.

    Also the limiting flow from GD's end point (from ``toy``, or a GD run here), in flow
    time up to the largest ``sigma^2 eta^2 k`` of the grid.

    Returns:
      a dict with ``sigmas``, ``lrs``, ``runs`` (the SweepResult: metrics of shape
      ``(lrs, n_log, sigmas * replicas)``), ``replicas``, ``flow``, ``gd_test`` (GD's
      final test error), ``trace0``, ``target`` and ``steps``.
    """
    s = _check_sizes(sizes)
    key = V.check_seed("key", key)
    replicas = V.check_int("replicas", replicas, minimum=1)
    problem = sparse_problem(s.n, s.d, s.kappa, seed=key)
    if toy is None:
        gd = _gd_run(problem, s)
        gd_params, gd_test, trace0 = (_first(gd.params), float(gd["test_mse"][-1, 0]),
                                      float(gd["trace"][0, 0]))
    else:
        V.check_instance("toy", toy, ToyResult)
        gd_params, gd_test, trace0 = toy.gd_params, toy.gd_test_final, float(toy.gd_trace[0])
    lrs = tuple(float(v) for v in s.widget_lrs)
    sigmas = (0.0,) + tuple(float(v) for v in s.widget_sigmas)
    m = len(sigmas) * replicas
    stack = _Stack.of([problem] * m)
    runs = sweep(loss, init_params(s.d, s.init_scale, m), _sgd(jnp.asarray(lrs, jnp.float32)),
                 steps=s.widget_steps,
                 batches=LabelNoise.of(stack.x, stack.y, sigma=np.repeat(sigmas, replicas)),
                 key=jax.random.key(key + 1), log_every=log_interval(s.widget_steps, 100),
                 metrics=_metrics, eval_data=stack.eval_data)
    # the flow has reached 8 |w*|_1 long before s = 2 (and stays): no need to go further
    s_max = min(2.0, max(sigmas) ** 2 * max(lrs) ** 2 * s.widget_steps)
    flow = limiting_flow(problem, gd_params, s_max=s_max)
    return {"sigmas": sigmas, "lrs": lrs, "runs": runs, "replicas": replicas, "flow": flow,
            "gd_test": gd_test, "trace0": trace0, "target": problem.target_trace,
            "steps": s.widget_steps}


_GRID_KEYS = ("sigmas", "lrs", "runs", "replicas", "flow", "gd_test", "trace0", "target",
              "steps")
#: The metrics :func:`explorer_run` can read.
METRICS = ("trace", "test_mse", "train_mse", "loss")


def _check_grid(grid: Any) -> dict:
    if not isinstance(grid, dict) or any(k not in grid for k in _GRID_KEYS):
        raise TypeError(f"argument `grid` must be the dict from explorer_grid (keys "
                        f"{', '.join(_GRID_KEYS)}); got {V._describe(grid)}")
    return grid


def _setting(grid: dict, sigma: Any, lr: Any) -> tuple[int, int]:
    """Indices of a setting of the grid (``sigma`` and ``lr`` must be among its values)."""
    sigma = V.check_choice("sigma", V.check_finite("sigma", sigma), grid["sigmas"])
    lr = V.check_choice("lr", V.check_finite("lr", lr), grid["lrs"])
    return grid["sigmas"].index(sigma), grid["lrs"].index(lr)


def explorer_run(grid: dict, sigma: float, lr: float, name: str) -> tuple:
    """``(steps, values, diverged_at)`` of metric ``name`` (one of :data:`METRICS`) for one
    setting of :func:`explorer_grid`, the mean over its replicas."""
    grid = _check_grid(grid)
    j, i = _setting(grid, sigma, lr)
    V.check_choice("name", name, METRICS)
    r = grid["replicas"]
    run = grid["runs"]
    values = run[name][i]
    if values.ndim == 2:          # per-member metrics: the replicas of this noise level
        values = values[:, j * r:(j + 1) * r].mean(axis=1)
    d = int(run.diverged_at[i])
    return run.steps, values, (None if d < 0 else d)


def explorer_figure(grid: dict, sigma: float, lr: float, fig: Any = None):
    """One setting of the widget: the trace of the Hessian (with the limiting flow's
    prediction for this ``sigma`` and ``lr``) and the test error against steps.

    ``fig`` is the figure of the previous setting to draw into again (or ``None``)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    from dltheory import plotting

    _setting(_check_grid(grid), sigma, lr)
    if fig is not None and not isinstance(fig, Figure):
        raise TypeError(f"argument `fig` must be None or the figure this function returned; "
                        f"got {V._describe(fig)}")
    k, tr, d = explorer_run(grid, sigma, lr, "trace")
    te = explorer_run(grid, sigma, lr, "test_mse")[1]
    sigma, lr = float(sigma), float(lr)
    fig, (ax, bx) = plotting.figure(2, width=7.5, height=3.5,
                                    reuse="detached" if fig is None else fig)
    for a in (ax, bx):
        a.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v else "0"))
    plotting.curves(ax, k, tr, label="label-noise SGD", diverged_at=d, color="#1f5aa6")
    flow = grid["flow"]
    if sigma > 0:
        plotting.curves(ax, k, np.interp(sigma ** 2 * lr ** 2 * k, flow.s, flow.trace),
                        label="limiting flow", color="0.3", ls="--", lw=1.2)
    ax.axhline(grid["target"], color="#2a9d8f", lw=1, ls=":", label=r"$8\,\|w^*\|_1$")
    ax.set(xlabel="step $k$", ylabel=r"tr $\nabla^2\mathcal{L}$", ylim=(8, 2 * grid["trace0"]),
           title="trace of the Hessian")
    ax.legend(loc="lower left", fontsize=9, frameon=False)
    plotting.curves(bx, k, te, label="label-noise SGD", diverged_at=d, color="#1f5aa6")
    bx.axhline(grid["gd_test"], color="#d1495b", lw=1, ls="--", label="GD (end)")
    bx.set(xlabel="step $k$", ylabel="test error", ylim=(1e-4, 10), title="test error")
    bx.legend(loc="lower left", fontsize=9, frameon=False)
    flow_time = sigma ** 2 * lr ** 2 * grid["steps"]
    state = (f"diverged at step {d}" if d is not None
             else f"flow time σ²η²k = {flow_time:.3g} at the end")
    fig.suptitle(f"σ = {sigma:g}, η = {lr:g}, η·tr∇²L(θ₀) = {lr * grid['trace0']:.2f}: "
                 f"{state}", fontsize=10)
    return fig


def explorer(grid: dict | None = None, sizes: LabelNoiseSizes | None = None):
    """The chapter's widget: label noise ``sigma`` by learning rate ``eta`` on the toy.

    ``grid`` is a precomputed :func:`explorer_grid` (else it is computed here)."""
    from dltheory.widgets import choice, explore

    if sizes is not None:
        V.check_instance("sizes", sizes, LabelNoiseSizes, "LabelNoiseSizes preset or None")
    grid = explorer_grid(sizes) if grid is None else _check_grid(grid)
    sig_default = 1.0 if 1.0 in grid["sigmas"] else grid["sigmas"][-1]
    lr_default = 0.002 if 0.002 in grid["lrs"] else grid["lrs"][len(grid["lrs"]) // 2]
    return explore(lambda sigma, lr, fig=None: explorer_figure(grid, sigma, lr, fig=fig),
                   title="Label-noise SGD on the sparse toy",
                   sigma=choice(list(grid["sigmas"]), default=sig_default,
                                label="label noise σ", fmt="{:g}"),
                   lr=choice(list(grid["lrs"]), default=lr_default,
                             label="learning rate η", fmt="{:g}"))
