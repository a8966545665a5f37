"""The training engine every chapter uses: jit + ``lax.scan`` chunks, sweeps, divergence.

:func:`train` runs one optimization; :func:`sweep` runs a grid of seeds or hyperparameters
as one vmapped, compiled call whose grid axis is sharded over ``jax.devices()``.

How a run is laid out:

- the loss is ``loss_fn(params, batch) -> scalar`` on a parameter pytree, or
  ``loss_fn(model, batch)`` on a ``flax.nnx`` module (split into graphdef and state);
- a batch source gives the batch of step ``k`` as ``batches.sample(key, k)`` on device
  (see :mod:`dltheory.data`); any other pytree is used as the full batch at every step.
  A source may also prepare a whole chunk at once (``plan``/``take``, see
  :func:`dltheory.data.plan_batches`): minibatches draw each epoch's permutation once;
- the steps run as ``lax.scan`` loops under ``jit``, in chunks: Python only sees chunk
  boundaries, where it updates the progress bar and checks for divergence;
- every ``log_every`` steps the loss (and ``metrics(params, eval_data)``) is recorded on
  device; records are at steps ``0, k, 2k, ..., steps``;
- a non-finite loss at step ``k`` freezes the run, which reports ``diverged at step k``.

Hyperparameters that should change without recompiling (a learning rate under a
slider, a grid in a sweep) go through :func:`optimizer`, which stores them in the
optimizer state with ``optax.inject_hyperparams``. Compiled code is cached on the loss
function, the optimizer's factory and the sizes: calling :func:`train` again with new
numbers of the same shapes reuses it. Pass module-level functions (not fresh lambdas)
as ``loss_fn`` and ``metrics`` to get that reuse.

The package holds four small modules: ``optim`` (optimizer specs), ``loop`` (the
compiled chunks, divergence, progress, compilation counting), ``run`` (:func:`train` and
:func:`sweep`) and ``results`` (what they return).

References:
  The conventions follow optax (pure transformations over pytrees) and flax.nnx's
  functional API (``nnx.split`` / ``nnx.merge``).
"""

from dltheory.training.loop import (DEFAULT_CHUNK_STEPS, PROGRESS_AFTER_SECONDS,
                                    PROGRESS_ENV_VAR, DivergenceWarning, count_compilations)
from dltheory.training.optim import OptimizerSpec, optimizer
from dltheory.training.results import RunResult, SweepResult
from dltheory.training.run import sweep, train

__all__ = [
    "OptimizerSpec",
    "optimizer",
    "train",
    "sweep",
    "RunResult",
    "SweepResult",
    "DivergenceWarning",
    "count_compilations",
    "PROGRESS_AFTER_SECONDS",
    "PROGRESS_ENV_VAR",
    "DEFAULT_CHUNK_STEPS",
]
