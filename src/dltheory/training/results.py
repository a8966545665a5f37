"""What a run returns: :class:`RunResult` for one run, :class:`SweepResult` for a grid."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from flax import nnx

from dltheory import validation as V

__all__ = ["RunResult", "SweepResult"]


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One run: logged metrics, final parameters, and whether and where it diverged.

    Attributes:
      steps: the logged steps, shape ``(n_log,)``: ``0, log_every, ..., steps``.
      metrics: name -> values at the logged steps (``"loss"`` always; NaN from the step
        where the run diverged on).
      params: final parameters (a pytree), or the trained model for an nnx input (the
        last finite state if the run diverged).
      opt_state: the final optimizer state.
      diverged_at: the step whose loss was non-finite, or ``None``.
      total_steps: the number of steps asked for.
    """

    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    params: Any
    opt_state: Any
    diverged_at: int | None
    total_steps: int

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def status(self) -> str:
        """``"diverged at step k"`` or ``"finished N steps"``."""
        if self.diverged:
            return f"diverged at step {self.diverged_at}"
        return f"finished {self.total_steps} steps"

    def __getitem__(self, name: str) -> np.ndarray:
        return self.metrics[name]

    def final(self, name: str = "loss") -> float:
        """The last logged finite value of a metric (NaN if there is none)."""
        values = self.metrics[name]
        finite = np.isfinite(values)
        return float(values[finite][-1]) if finite.any() else float("nan")


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """A grid of runs; every array has the grid as its leading axis.

    Attributes:
      steps: the logged steps, shape ``(n_log,)``.
      metrics: name -> array of shape ``(grid, n_log)``.
      params: final parameters stacked on a leading grid axis (an nnx input gives the
        stacked state; :meth:`member` merges one back into a model).
      opt_state: final optimizer states, stacked.
      diverged_at: shape ``(grid,)``: the step each run diverged at, or -1.
      total_steps: the number of steps asked for.
    """

    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    params: Any
    opt_state: Any
    diverged_at: np.ndarray
    total_steps: int
    _graphdef: Any = dataclasses.field(default=None, repr=False)
    _aux: Any = dataclasses.field(default=None, repr=False)

    @property
    def size(self) -> int:
        return int(self.diverged_at.shape[0])

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, name: str) -> np.ndarray:
        return self.metrics[name]

    @property
    def diverged(self) -> np.ndarray:
        return self.diverged_at >= 0

    def member(self, i: int) -> RunResult:
        """Grid member ``i`` as a :class:`RunResult`."""
        i = V.check_int("i", i, minimum=-self.size, maximum=self.size - 1)
        params = jax.tree.map(lambda a: a[i], self.params)
        if self._graphdef is not None:
            params = nnx.merge(self._graphdef, params, self._aux)
        d = int(self.diverged_at[i])
        return RunResult(self.steps, {k: v[i] for k, v in self.metrics.items()}, params,
                         jax.tree.map(lambda a: a[i], self.opt_state),
                         None if d < 0 else d, self.total_steps)


