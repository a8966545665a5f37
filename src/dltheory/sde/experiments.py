"""The experiments of Part I's chapters: each returns a small result object to plot and quote.

Every run goes through :mod:`dltheory.training`; seeds are one vmapped :func:`sweep` call.
"""

from __future__ import annotations

import dataclasses

from dltheory import validation as V
from dltheory.config import Preset
from dltheory.sde.adam import AdamWeakErrorResult, adam_sde_weak_error
from dltheory.sde.digits import (RULES, DigitsCurves, LSRResult, RuleResult, lsr_digits,
                                 scaling_rules_digits, svag_digits)
from dltheory.sde.problems import digits_problem
from dltheory.sde.quadratic import (ADAPTIVE_QUADRATIC, CHAPTER_QUADRATIC, RMSPROP_QUADRATIC,
                                    AdaptiveSVAGResult, SVAGQuadraticResult,
                                    rmsprop_svag_quadratic, svag_quadratic)

__all__ = ["SDESizes", "AdaptiveSizes", "CHAPTER_QUADRATIC", "ADAPTIVE_QUADRATIC",
           "RMSPROP_QUADRATIC", "SVAGQuadraticResult", "svag_quadratic", "AdaptiveSVAGResult",
           "rmsprop_svag_quadratic", "AdamWeakErrorResult", "adam_sde_weak_error",
           "DigitsCurves", "svag_digits", "LSRResult", "lsr_digits", "RULES", "RuleResult",
           "scaling_rules_digits", "digits_problem"]


def _check_counts(preset: Preset) -> None:
    """Every field of a preset of Part I is a count: an integer >= 1."""
    for f in dataclasses.fields(preset):
        V.check_int(f.name, getattr(preset, f.name), minimum=1)


@dataclasses.dataclass(frozen=True)
class SDESizes(Preset):
    """Sizes of the SGD-SDE chapter.

    Attributes:
      quad_paths: sample paths (vmapped seeds) per SVAG level on the noisy quadratic.
      em_substeps: Euler-Maruyama steps per SGD step (``dt = eta / em_substeps``).
      digits_steps: SGD steps of the digits SVAG runs at ``l = 1`` (``l`` times as many
        at level ``l``).
      digits_seeds: seeds per run on digits.
      width: hidden width of the digits MLP.
      lsr_epochs: epochs of the linear-scaling-rule runs.
    """

    quad_paths: int
    em_substeps: int
    digits_steps: int
    digits_seeds: int
    width: int
    lsr_epochs: int

    def __post_init__(self):
        _check_counts(self)

    @classmethod
    def quick(cls) -> "SDESizes":
        return cls(quad_paths=4096, em_substeps=32, digits_steps=200, digits_seeds=2,
                   width=32, lsr_epochs=4)

    @classmethod
    def paper(cls) -> "SDESizes":
        return cls(quad_paths=262144, em_substeps=256, digits_steps=4000, digits_seeds=32,
                   width=256, lsr_epochs=40)


@dataclasses.dataclass(frozen=True)
class AdaptiveSizes(Preset):
    """Sizes of the adaptive-SDE chapter.

    Attributes:
      quad_paths: sample paths per adaptive-SVAG level (RMSprop) and per learning rate
        (Adam) on the noisy quadratic.
      em_substeps: Euler-Maruyama steps per RMSprop (Adam) step.
      epochs: epochs of the scaling-rule runs on digits.
      seeds: seeds per run on digits.
      width: hidden width of the digits MLP.
    """

    quad_paths: int
    em_substeps: int
    epochs: int
    seeds: int
    width: int

    def __post_init__(self):
        _check_counts(self)

    @classmethod
    def quick(cls) -> "AdaptiveSizes":
        return cls(quad_paths=32768, em_substeps=16, epochs=6, seeds=2, width=32)

    @classmethod
    def paper(cls) -> "AdaptiveSizes":
        return cls(quad_paths=131072, em_substeps=64, epochs=40, seeds=32, width=256)
