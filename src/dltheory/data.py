"""Data the chapters train on: small real data offline, synthetic problems, batch sources.

Nothing here downloads anything. The real dataset is scikit-learn's bundled copy of the
UCI handwritten digits (1,797 images of 8x8 pixels, 10 classes), which ships inside the
scikit-learn wheel.

A *batch source* is a small pytree (its arrays are traced, its sizes are static) with a
method ``sample(key, step) -> batch`` that the training engine calls on device inside
its ``lax.scan``. :class:`FullBatch` returns the same data at every step;
:class:`Minibatches` draws shuffled minibatches epoch by epoch.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dltheory import validation as V

__all__ = [
    "Dataset",
    "digits",
    "FullBatch",
    "Minibatches",
    "is_batch_source",
    "quadratic",
    "linear_regression",
]


class Dataset(NamedTuple):
    """A train/test split: ``x_*`` of shape ``(n, d)`` float32, ``y_*`` of shape ``(n,)`` int32."""

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array

    @property
    def num_classes(self) -> int:
        return int(max(int(self.y_train.max()), int(self.y_test.max())) + 1)

    @property
    def train(self) -> dict[str, jax.Array]:
        """The training split as a batch: ``{"x": ..., "y": ...}``."""
        return {"x": self.x_train, "y": self.y_train}

    @property
    def test(self) -> dict[str, jax.Array]:
        """The test split as a batch: ``{"x": ..., "y": ...}``."""
        return {"x": self.x_test, "y": self.y_test}


def digits(*, test_fraction: float = 0.2, seed: int = 0, standardize: bool = True,
           classes: tuple[int, ...] | None = None) -> Dataset:
    """scikit-learn's bundled handwritten digits, split and standardized.

    Args:
      test_fraction: fraction of the examples held out for testing, in (0, 1).
      seed: seed of the stratified split.
      standardize: subtract the training mean and divide by the training standard
        deviation per pixel (constant pixels are left at zero).
      classes: keep only these digit classes, relabelled ``0..len(classes)-1``
        (for example ``(0, 1)`` for a binary task).

    Returns:
      A :class:`Dataset` (features 64-dimensional, float32; labels int32).

    References:
      Alpaydin, Kaynak (1998), Optical Recognition of Handwritten Digits, UCI ML
      Repository; scikit-learn's ``load_digits``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    V.check_in_range("test_fraction", test_fraction, 0.0, 1.0,
                     low_inclusive=False, high_inclusive=False)
    seed = V.check_int("seed", seed, minimum=0)
    x, y = load_digits(return_X_y=True)
    if classes is not None:
        classes = tuple(classes)
        for c in classes:
            V.check_int("classes[i]", c, minimum=0, maximum=9)
        if len(set(classes)) != len(classes) or len(classes) < 2:
            raise ValueError(f"argument `classes` must name at least two distinct digits; "
                             f"got {classes!r}")
        keep = np.isin(y, classes)
        x, y = x[keep], np.searchsorted(np.array(sorted(classes)), y[keep])
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction,
                                              random_state=seed, stratify=y)
    if standardize:
        mean, std = x_tr.mean(0), x_tr.std(0)
        std = np.where(std > 0, std, 1.0)
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    return Dataset(jnp.asarray(x_tr, jnp.float32), jnp.asarray(y_tr, jnp.int32),
                   jnp.asarray(x_te, jnp.float32), jnp.asarray(y_te, jnp.int32))


# --------------------------------------------------------------------------------------
# Batch sources
# --------------------------------------------------------------------------------------


def is_batch_source(obj: Any) -> bool:
    """Whether ``obj`` has a ``sample(key, step)`` method the engine can call."""
    return callable(getattr(obj, "sample", None))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FullBatch:
    """The same batch at every step (full-batch gradient descent)."""

    data: Any

    def sample(self, key: jax.Array, step: jax.Array) -> Any:
        return self.data


def _leading_size(data: Any) -> int:
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("argument `data` must hold at least one array")
    sizes = {int(np.shape(leaf)[0]) if np.ndim(leaf) else -1 for leaf in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"argument `data` must be arrays with one common leading size; "
                         f"got leading sizes {sorted(sizes)}")
    return sizes.pop()


@functools.partial(jax.tree_util.register_dataclass, data_fields=["data"],
                   meta_fields=["batch_size", "size"])
@dataclasses.dataclass(frozen=True)
class Minibatches:
    """Shuffled minibatches, epoch by epoch, drawn on device.

    Step ``k`` belongs to epoch ``k // (size // batch_size)``; each epoch uses a fresh
    permutation of the examples (from ``fold_in(key, epoch)``) and the ``size %
    batch_size`` examples left over at its end are skipped, so every batch has the same
    shape. Build it with :meth:`of`.
    """

    data: Any
    batch_size: int
    size: int

    @classmethod
    def of(cls, data: Any, batch_size: int) -> "Minibatches":
        """Minibatches of ``batch_size`` from ``data`` (arrays sharing a leading axis)."""
        n = _leading_size(data)
        batch_size = V.check_int("batch_size", batch_size, minimum=1, maximum=n)
        return cls(data, batch_size, n)

    @property
    def steps_per_epoch(self) -> int:
        return self.size // self.batch_size

    def sample(self, key: jax.Array, step: jax.Array) -> Any:
        per_epoch = self.steps_per_epoch
        epoch, within = step // per_epoch, step % per_epoch
        perm = jax.random.permutation(jax.random.fold_in(key, epoch), self.size)
        idx = jax.lax.dynamic_slice(perm, (within * self.batch_size,), (self.batch_size,))
        return jax.tree.map(lambda a: jnp.take(a, idx, axis=0), self.data)


# --------------------------------------------------------------------------------------
# Synthetic problems
# --------------------------------------------------------------------------------------


def quadratic(eigenvalues: Any, *, rotate: bool = False, key: int | jax.Array = 0,
              dtype: Any = jnp.float32) -> jax.Array:
    """The symmetric matrix ``H = Q diag(eigenvalues) Q^T`` of a quadratic loss.

    The loss ``L(x) = x^T H x / 2`` has gradient ``H x`` and Hessian ``H``.

    Args:
      eigenvalues: 1-D sequence of finite eigenvalues (any sign).
      rotate: if ``True``, ``Q`` is a random orthogonal matrix (from ``key``);
        otherwise ``Q = I`` and ``H`` is diagonal.
      key: seed or PRNG key for the rotation.
      dtype: floating dtype of the result.

    Returns:
      ``H`` of shape ``(d, d)``.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if lam.ndim != 1 or lam.size == 0:
        raise ValueError(f"argument `eigenvalues` must be a non-empty 1-D sequence; "
                         f"got shape {lam.shape}")
    if not np.all(np.isfinite(lam)):
        raise ValueError(f"argument `eigenvalues` must be finite; got {eigenvalues!r}")
    h = np.diag(lam)
    if rotate:
        k = jax.random.key(key) if isinstance(key, int) else key
        q, r = np.linalg.qr(np.asarray(jax.random.normal(k, (lam.size, lam.size))))
        q = q * np.sign(np.diag(r))
        h = q @ h @ q.T
        h = (h + h.T) / 2
    return jnp.asarray(h, dtype)


def linear_regression(n: int, d: int, *, noise: float = 0.0, key: int | jax.Array = 0,
                      dtype: Any = jnp.float32) -> dict[str, jax.Array]:
    """Gaussian inputs with targets from a random linear teacher.

    ``x ~ N(0, I_d)``, ``w* ~ N(0, I_d / d)``, ``y = x . w* + noise * N(0, 1)``.

    Returns:
      ``{"x": (n, d), "y": (n,), "w_star": (d,)}``.
    """
    n = V.check_int("n", n, minimum=1)
    d = V.check_int("d", d, minimum=1)
    noise = V.check_nonnegative("noise", noise)
    k = jax.random.key(key) if isinstance(key, int) else key
    kx, kw, ke = jax.random.split(k, 3)
    x = jax.random.normal(kx, (n, d), dtype)
    w = jax.random.normal(kw, (d,), dtype) / np.sqrt(d)
    y = x @ w + noise * jax.random.normal(ke, (n,), dtype)
    return {"x": x, "y": y, "w_star": w}
