"""The two problems of Part I: a noisy quadratic with known noise, and digits with an MLP.

:class:`NoisyQuadratic` has ``L(x) = sum_i lambda_i x_i^2 / 2`` and a minibatch gradient
``g = lambda * x + sigma s * z`` with ``z ~ N(0, I)``: the noise covariance
``sigma^2 diag(s^2)`` is known exactly, so the SDE's moments have closed forms to test
against. Its "batch" is the noise draw ``z`` (:class:`GaussianNoise`).

The digits problem is scikit-learn's 8x8 digits (:func:`dltheory.data.digits`) with a
ReLU MLP (:class:`dltheory.models.MLP`) and the cross-entropy loss.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dltheory import data as D
from dltheory import validation as V
from dltheory.sde import _checks as C
from dltheory.models import MLP, accuracy, cross_entropy

__all__ = ["GaussianNoise", "NoisyQuadratic", "quadratic_loss", "digits_problem",
           "DigitsProblem", "xent_loss", "digits_metrics"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GaussianNoise:
    """Batch source of the noisy quadratic: ``{"lam", "s", "z"}`` with fresh ``z ~ N(0, I)``
    at every step (``lam`` and ``s`` ride along as data, so new values reuse compiled code)."""

    lam: jax.Array
    s: jax.Array

    def __post_init__(self):
        # checked when built from concrete values (jax also rebuilds it from tracers and
        # placeholders when it maps over the dataclass: those pass through)
        concrete = (str, bytes, list, tuple, np.ndarray)
        lam, s = self.lam, self.s
        if isinstance(lam, concrete) or (isinstance(lam, jax.Array)
                                         and not isinstance(lam, jax.core.Tracer)):
            lam = C.vector("lam", lam, positive=True)
            if isinstance(s, concrete) or (isinstance(s, jax.Array)
                                           and not isinstance(s, jax.core.Tracer)):
                C.vector("s", s, nonnegative=True, size=lam.size)

    def sample(self, key: jax.Array, step: jax.Array) -> dict[str, jax.Array]:
        z = jax.random.normal(jax.random.fold_in(key, step), self.lam.shape, self.lam.dtype)
        return {"lam": self.lam, "s": self.s, "z": z}


def quadratic_loss(x: jax.Array, batch: dict[str, jax.Array]) -> jax.Array:
    """``sum(lam x^2) / 2 + sum(s z x)``: its gradient is ``lam x + s z``.

    Args:
      x: the point, shape ``(d,)``.
      batch: ``{"lam", "s", "z"}``, each of shape ``(d,)`` (from :class:`GaussianNoise`).
    """
    C.batch("batch", batch, ("lam", "s", "z"))
    if not isinstance(x, (jax.Array, np.ndarray, list, tuple)):
        raise TypeError(f"argument `x` must be an array of shape (d,); got {C.show(x)} of "
                        f"type {type(x).__name__}")
    shape = tuple(jnp.shape(x))
    want = tuple(jnp.shape(batch["lam"]))
    if shape != want:
        raise ValueError(f"argument `x` must have the shape of the batch's `lam`, {want}; "
                         f"got shape {shape}")
    return 0.5 * jnp.sum(batch["lam"] * x**2) + jnp.sum(batch["s"] * batch["z"] * x)


def _sq_norm(x: jax.Array, _eval: Any) -> dict[str, jax.Array]:
    return {"sq": jnp.sum(x**2)}


@dataclasses.dataclass(frozen=True)
class NoisyQuadratic:
    """``L(x) = sum lambda_i x_i^2 / 2`` with gradient noise ``sigma s * z``.

    Attributes:
      lam: the Hessian's eigenvalues ``lambda_i > 0`` (the Hessian is diagonal).
      s: per-coordinate noise scales ``s_i >= 0`` (``Sigma^{1/2} = diag(s)``).
      sigma: the overall noise scale (``sigma ~ 1 / eta`` is the adaptive SDEs' regime).
      x0: the start.
    """

    lam: tuple[float, ...]
    s: tuple[float, ...]
    sigma: float = 1.0
    x0: tuple[float, ...] | None = None

    def __post_init__(self):
        for name in ("lam", "s", "x0"):
            value = getattr(self, name)
            if value is None and name == "x0":
                continue
            try:
                if isinstance(value, (str, bytes)):
                    raise TypeError
                np.asarray(value, np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"argument `{name}` must be a sequence of real numbers; got "
                                f"{C.show(value)} of type {type(value).__name__}") from None
        lam = np.asarray(self.lam, np.float64)
        s = np.asarray(self.s, np.float64)
        if lam.ndim != 1 or lam.size == 0 or np.any(~np.isfinite(lam)) or np.any(lam <= 0):
            raise ValueError(f"argument `lam` must be a non-empty 1-D sequence of positive "
                             f"eigenvalues; got {self.lam!r}")
        if s.shape != lam.shape or np.any(~np.isfinite(s)) or np.any(s < 0):
            raise ValueError(f"argument `s` must have shape {lam.shape} with entries >= 0; "
                             f"got {self.s!r}")
        V.check_positive("sigma", self.sigma)
        x0 = np.ones_like(lam) if self.x0 is None else np.asarray(self.x0, np.float64)
        if x0.shape != lam.shape or np.any(~np.isfinite(x0)):
            raise ValueError(f"argument `x0` must be finite with shape {lam.shape}; "
                             f"got {self.x0!r}")
        object.__setattr__(self, "lam", tuple(float(v) for v in lam))
        object.__setattr__(self, "s", tuple(float(v) for v in s))
        object.__setattr__(self, "x0", tuple(float(v) for v in x0))

    @property
    def dim(self) -> int:
        return len(self.lam)

    def source(self) -> GaussianNoise:
        """The batch source (its ``s`` includes ``sigma``)."""
        return GaussianNoise(jnp.asarray(self.lam, jnp.float32),
                             jnp.asarray(self.sigma * np.asarray(self.s), jnp.float32))

    def noise_cov_diag(self) -> np.ndarray:
        """The diagonal of the gradient-noise covariance ``sigma^2 s^2``."""
        return self.sigma**2 * np.asarray(self.s) ** 2

    def sde_second_moment(self, eta: float, t: Any) -> np.ndarray:
        """``E |X_t|^2`` of the SGD SDE ``dX = -lam X dt + sqrt(eta) sigma s dW``, exactly:
        ``sum_i x0_i^2 e^{-2 lam_i t} + eta sigma^2 s_i^2 (1 - e^{-2 lam_i t}) / (2 lam_i)``."""
        eta = V.check_positive("eta", eta)
        t = np.asarray(t, np.float64)[..., None]
        lam, x0 = np.asarray(self.lam), np.asarray(self.x0)
        decay = np.exp(-2 * lam * t)
        return (x0**2 * decay + eta * self.noise_cov_diag() * (1 - decay) / (2 * lam)).sum(-1)

    def svag_second_moment(self, eta: float, l: float, steps: int) -> np.ndarray:
        """``E |x_k|^2`` of SVAG (``l = 1``: SGD) after ``k = 0..steps`` steps, exactly.

        Per coordinate ``x <- (1 - a lam) x - a sqrt(l) sigma s z`` with ``a = eta / l``, so
        ``m_{k+1} = (1 - a lam)^2 m_k + a^2 l sigma^2 s^2``.
        """
        eta = V.check_positive("eta", eta)
        l = V.check_finite("l", l)
        if l < 1:
            raise ValueError(f"argument `l` must be a finite number >= 1; got {l!r}")
        steps = V.check_int("steps", steps, minimum=0)
        a = eta / l
        lam, x0 = np.asarray(self.lam), np.asarray(self.x0)
        r = (1 - a * lam) ** 2
        k = np.arange(steps + 1)[:, None]
        stat = a * a * l * self.noise_cov_diag() / (1 - r)
        return (stat + (x0**2 - stat) * r**k).sum(-1)


# --------------------------------------------------------------------------------------
# Digits
# --------------------------------------------------------------------------------------


def xent_loss(model: MLP, batch: dict[str, jax.Array]) -> jax.Array:
    """Mean cross-entropy of the model's logits on a batch ``{"x", "y"}``."""
    C.function("model", model)
    C.batch("batch", batch, ("x", "y"))
    return cross_entropy(model(batch["x"]), batch["y"])


def digits_metrics(model: MLP, data: dict[str, dict[str, jax.Array]]) -> dict[str, jax.Array]:
    """Full training loss and test accuracy (``data = {"train": ..., "test": ...}``)."""
    C.function("model", model)
    C.batch("data", data, ("train", "test"))
    return {"train_loss": xent_loss(model, data["train"]),
            "test_acc": accuracy(model(data["test"]["x"]), data["test"]["y"])}


@dataclasses.dataclass(frozen=True, eq=False)
class DigitsProblem:
    """Digits with a ReLU MLP ``64 -> width -> 10``.

    Attributes:
      dataset: the :class:`dltheory.data.Dataset`.
      width: hidden width.
    """

    dataset: D.Dataset
    width: int

    @property
    def n_train(self) -> int:
        return int(self.dataset.x_train.shape[0])

    def init(self, key: jax.Array) -> MLP:
        """A fresh model from ``key`` (the engine's per-seed initializer)."""
        return MLP((64, self.width, 10), rngs=nnx.Rngs(params=key))

    @property
    def eval_data(self) -> dict[str, dict[str, jax.Array]]:
        return {"train": self.dataset.train, "test": self.dataset.test}

    def minibatches(self, batch_size: int) -> D.Minibatches:
        return D.Minibatches.of(self.dataset.train, batch_size)


_PROBLEMS: dict[tuple[int, float], Any] = {}


def digits_problem(width: int = 64, label_noise: float = 0.0) -> DigitsProblem:
    """The digits problem with hidden width ``width`` (cached, so its initializer, and with
    it the engine's compiled code, is reused).

    ``label_noise`` replaces that fraction of the training labels by uniformly random
    ones (fixed seed): it keeps the gradient noise large, the regime of the SDEs.
    """
    width = V.check_int("width", width, minimum=1)
    label_noise = V.check_probability("label_noise", label_noise)
    k = (width, float(label_noise))
    if k not in _PROBLEMS:
        ds = D.digits()
        if label_noise > 0:
            rng = np.random.default_rng(0)
            y = np.asarray(ds.y_train).copy()
            flip = rng.random(y.shape) < label_noise
            y[flip] = rng.integers(0, 10, flip.sum())
            ds = ds._replace(y_train=jnp.asarray(y, jnp.int32))
        _PROBLEMS[k] = DigitsProblem(ds, width)
    return _PROBLEMS[k]
