"""Paper scale for Part I: SVAG and the scaling rules on CIFAR-10 with a ResNet (GPU).

The papers' setups (Li, Malladi, Arora 2021: PreResNet-32 on CIFAR-10, SGD at
``lr = 0.8``, batch 128, weight decay 5e-4, SVAG up to ``l = 32``; Malladi et al. 2022:
ResNet on CIFAR-10, RMSprop/Adam at batch 256 rescaled by the square-root rule) as one
function, :func:`cifar_run`, that trains ``dltheory.models.ResNet`` on
``dltheory.data.cifar10`` through the engine, with optional SVAG and a scaling rule.

Nothing here downloads data: :func:`dltheory.data.cifar10` reads the standard
``cifar-10-batches-py`` files (``download=True`` only on Colab), and the tests run it on
the small stand-in written by ``dltheory.data.write_cifar10_standin``.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dltheory import validation as V
from dltheory.config import Preset
from dltheory.models import accuracy, cross_entropy
from dltheory.sde import _checks as C
from dltheory.sde import rules as R
from dltheory.sde.svag import TwoBatches, adaptive_svag, svag
from dltheory.training import sweep

__all__ = ["CifarSizes", "cifar_preset", "CifarRun", "cifar_run"]


@dataclasses.dataclass(frozen=True)
class CifarSizes(Preset):
    """Sizes of the CIFAR-10 runs.

    Attributes:
      stage_sizes: ResNet blocks per stage (``(5, 5, 5)`` is ResNet-32).
      width: channels of the first stage.
      epochs: training epochs at ``l = 1`` / ``kappa = 1``.
      seeds: seeds per run (one vmapped sweep).
      limit: use only this many training images (``None``: all 50,000).
      eval_size: images of the training and test sets used for the logged metrics.
    """

    stage_sizes: tuple[int, ...]
    width: int
    epochs: int
    seeds: int
    limit: int | None
    eval_size: int

    def __post_init__(self):
        st = self.stage_sizes
        if not isinstance(st, tuple) or not st or any(
                isinstance(b, bool) or not isinstance(b, numbers.Integral) or b < 1 for b in st):
            raise ValueError(f"argument `stage_sizes` must be a non-empty tuple of integers "
                             f">= 1; got {st!r}")
        for name in ("width", "epochs", "seeds", "eval_size"):
            V.check_int(name, getattr(self, name), minimum=1)
        if self.limit is not None:
            V.check_int("limit", self.limit, minimum=1)

    @classmethod
    def quick(cls) -> "CifarSizes":
        return cls(stage_sizes=(1, 1, 1), width=8, epochs=1, seeds=1, limit=256, eval_size=64)

    @classmethod
    def paper(cls) -> "CifarSizes":
        return cls(stage_sizes=(5, 5, 5), width=16, epochs=160, seeds=2, limit=None,
                   eval_size=2000)


def cifar_preset(which: str | None = None) -> dict[str, Any]:
    """The paper-scale configurations: sizes and the base optimizers of both papers.

    Returns:
      ``{"sizes": CifarSizes, "sgd": OptimizerConfig (lr 0.8, batch 128),
      "rmsprop": OptimizerConfig (lr 1e-3, beta 0.999, eps 1e-8, batch 256),
      "svag_levels": (1, 2, 4, 8, 16, 32), "kappas": (1, 2, 4, 8)}``.
    """
    return {"sizes": CifarSizes.for_scale(which),
            "sgd": R.sgd_config(0.8, 128),
            "rmsprop": R.rmsprop_config(1e-3, 256, beta=0.999, eps=1e-8),
            "svag_levels": (1, 2, 4, 8, 16, 32), "kappas": (1, 2, 4, 8)}


def _loss(model, batch):
    return cross_entropy(model(batch["x"]), batch["y"])


def _metrics(model, data):
    return {"train_loss": _loss(model, data["train"]),
            "test_acc": accuracy(model(data["test"]["x"]), data["test"]["y"])}


@dataclasses.dataclass(frozen=True)
class CifarRun:
    """One CIFAR-10 configuration: metrics per epoch, averaged over seeds."""

    config: R.OptimizerConfig
    l: float
    epochs: np.ndarray
    train_loss: np.ndarray
    test_acc: np.ndarray
    diverged: bool


class _Init:
    def __init__(self, sizes: CifarSizes):
        self.sizes = sizes

    def __call__(self, key):
        from dltheory.models import ResNet

        return ResNet(rngs=nnx.Rngs(params=key), stage_sizes=self.sizes.stage_sizes,
                      width=self.sizes.width)

    def __hash__(self):
        return hash(self.sizes)

    def __eq__(self, other):
        return isinstance(other, _Init) and other.sizes == self.sizes


def cifar_run(config: R.OptimizerConfig, *, l: float = 1.0, sizes: CifarSizes | None = None,
              root: str | None = None, weight_decay: float = 0.0) -> CifarRun:
    """Train a ResNet on CIFAR-10 with ``config`` (SVAG level ``l``), logging every epoch.

    ``l > 1`` runs SVAG (SGD) or adaptive SVAG (RMSprop/Adam) with ``l`` (``l^2``) times
    as many steps; epochs are counted in SDE time. ``weight_decay`` adds
    ``weight_decay / 2 |theta|^2`` to the loss (the papers use 5e-4 and 1e-4).

    References:
      Li, Malladi, Arora (2021), arXiv:2102.12470; Malladi, Lyu, Panigrahi,
      Arora (2022), arXiv:2205.10287 (CIFAR-10 experiments).
    """
    from dltheory import data as D

    C.instance("config", config, R.OptimizerConfig, "an OptimizerConfig (see sgd_config)")
    l = V.check_finite("l", l)
    if l < 1:
        raise ValueError(f"argument `l` must be a finite number >= 1; got {l!r}")
    sizes = CifarSizes.current() if sizes is None else C.instance(
        "sizes", sizes, CifarSizes, "a CifarSizes (or None for the current scale)")
    if root is not None:
        C.instance("root", root, (str, os.PathLike), "a folder path (str) or None")
    V.check_nonnegative("weight_decay", weight_decay)
    if not hasattr(D, "cifar10"):
        raise RuntimeError("dltheory.data.cifar10 is not available in this version")
    ds = D.cifar10(root, limit=sizes.limit)
    per_epoch = int(ds.x_train.shape[0]) // config.batch_size
    if per_epoch < 1:
        raise ValueError(f"batch size {config.batch_size} exceeds the training set "
                         f"({ds.x_train.shape[0]} images)")
    if config.algorithm == "sgd":
        loss = svag(_loss, l)
        cfg = R.svag_config(config, l)
    else:
        loss = adaptive_svag(_loss, l)
        cfg = R.adaptive_svag_config(config, l)
    factor = loss.steps_factor
    if weight_decay:
        base_loss = loss

        def loss(model, batch):  # noqa: F811 - the loss with weight decay
            p = nnx.state(model, nnx.Param)
            reg = sum(jnp.sum(a**2) for a in jax.tree.leaves(p))
            return base_loss(model, batch) + 0.5 * weight_decay * reg
    steps = sizes.epochs * per_epoch * factor
    e = sizes.eval_size
    eval_data = {"train": {"x": ds.x_train[:e], "y": ds.y_train[:e]},
                 "test": {"x": ds.x_test[:e], "y": ds.y_test[:e]}}
    res = sweep(loss, _Init(sizes), cfg.spec(), steps=steps, seeds=list(range(sizes.seeds)),
                batches=TwoBatches(D.Minibatches.of(ds.train, config.batch_size)),
                log_every=per_epoch * factor, metrics=_metrics, eval_data=eval_data)
    return CifarRun(config, float(l), np.arange(sizes.epochs + 1), res["train_loss"].mean(0),
                    res["test_acc"].mean(0), bool(res.diverged.any()))
