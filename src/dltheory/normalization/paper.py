"""The ``paper`` preset of Part IV: a normalized ResNet on CIFAR-10.

Li, Lyu, Arora (2020) train PreResNet-32 on CIFAR-10 with batch normalization, the last
layer fixed, learning rate 0.1 and weight decay 5e-4, and show that schedules with the
same product ``eta lambda`` reach the same equilibrium. :func:`cifar_equilibrium` runs
that comparison with the book's post-activation ``dltheory.models.ResNet`` (every
convolution followed by affine-free batch normalization, head frozen) through the same
:func:`~dltheory.normalization.run_configs` as the digits experiments: all pairs and
seeds in one vmapped call.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from flax import nnx

from dltheory import data as D
from dltheory.config import Preset
from dltheory.normalization.experiments import (Config, EquilibriumResult, _check_configs,
                                                run_configs)

__all__ = ["PAPER_CONFIGS", "CifarSizes", "cifar_equilibrium"]

#: The paper's setting (eta 0.1, lambda 5e-4), two other splits of the same product, the
#: same with a 10x initial norm, and a 10x larger product.
PAPER_CONFIGS = (
    Config(0.1, 5e-4, label="η=0.1, λ=5e-4 (paper)"),
    Config(0.4, 1.25e-4, label="η=0.4, λ=1.25e-4"),
    Config(0.025, 2e-3, label="η=0.025, λ=2e-3"),
    Config(0.1, 5e-4, init_scale=10.0, label="η=0.1, λ=5e-4, |w₀|×10"),
    Config(0.1, 5e-3, label="η=0.1, λ=5e-3 (10x product)"),
)


@dataclasses.dataclass(frozen=True)
class CifarSizes(Preset):
    """Sizes of the CIFAR-10 run.

    Attributes:
      stage_sizes, width: the ResNet (``(5, 5, 5)``, 16 is ResNet-32).
      steps: SGD steps (the paper: 5 / (eta lambda) = 100,000 steps at 5e-5 and beyond).
      batch_size, seeds, log_every: as in :func:`~dltheory.normalization.run_configs`.
      limit: use only this many training images (``None``: all 50,000).
      test_limit: evaluate on this many test images.
    """

    stage_sizes: tuple[int, ...]
    width: int
    steps: int
    batch_size: int
    seeds: int
    log_every: int
    limit: int | None
    test_limit: int

    @classmethod
    def quick(cls) -> CifarSizes:
        # a smoke-sized run that checks the pipeline on CPU (not an experiment)
        return cls(stage_sizes=(1,), width=4, steps=4, batch_size=8, seeds=1, log_every=2,
                   limit=64, test_limit=32)

    @classmethod
    def paper(cls) -> CifarSizes:
        return cls(stage_sizes=(5, 5, 5), width=16, steps=120_000, batch_size=128, seeds=1,
                   log_every=500, limit=None, test_limit=2000)


@functools.lru_cache(maxsize=8)
def _resnet_init(stage_sizes: tuple[int, ...], width: int):
    from dltheory.models import ResNet

    def init(key):
        return ResNet(rngs=nnx.Rngs(params=key), stage_sizes=stage_sizes, width=width,
                      normalization="batch", train_last_layer=False, norm_eps=0.0)
    return init


def cifar_equilibrium(sizes: CifarSizes | None = None, *, configs: Any = PAPER_CONFIGS,
                      root: Any = None, progress: bool | None = None) -> EquilibriumResult:
    """SGD with weight decay on CIFAR-10 for the paper's (eta, lambda) pairs.

    Args:
      sizes: a :class:`CifarSizes` (default: the current scale's preset).
      configs: the :class:`~dltheory.normalization.Config` grid.
      root: folder holding ``cifar-10-batches-py`` (see ``dltheory.data.cifar10``; never
        downloads).

    Returns:
      An :class:`~dltheory.normalization.EquilibriumResult`.

    References:
      Li, Lyu, Arora (2020), arXiv:2010.02916, experiments (CIFAR-10, PreResNet-32,
      lr 0.1, wd 5e-4; same intrinsic LR, same equilibrium).
    """
    sizes = CifarSizes.current() if sizes is None else sizes
    if not isinstance(sizes, CifarSizes):
        raise TypeError(f"argument `sizes` must be a CifarSizes; got {sizes!r} of type "
                        f"{type(sizes).__name__}")
    configs = _check_configs(configs)
    ds = D.cifar10(root, limit=sizes.limit)
    test = {"x": ds.x_test[:sizes.test_limit], "y": ds.y_test[:sizes.test_limit]}
    return run_configs(configs, sizes.steps, init=_resnet_init(tuple(sizes.stage_sizes),
                                                               sizes.width),
                       train_data=ds.train, test_data=test, seeds=tuple(range(sizes.seeds)),
                       batch_size=sizes.batch_size, log_every=sizes.log_every,
                       progress=progress)
