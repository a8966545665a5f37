"""Every public function and class of dltheory rejects bad input with a clear error.

The package's rule (``DESIGN.md``, Interfaces): bad input raises ``ValueError`` or
``TypeError`` at the boundary, naming the argument, the value received and what is
allowed; never a foreign error from deep inside numpy, JAX or matplotlib, never a NaN
that travels on. This file checks it for every public callable at once:

- :func:`public_callables` finds every function and class of every module of the package
  (the names in the module's ``__all__``, or the public callables it defines);
- :data:`CASES` gives each one good arguments (tiny sizes) and a table of bad values, in
  part generated from the parameter names (:data:`AUTO`: a learning rate gets a negative
  number, zero, NaN, infinity and a string; a count gets -1, 0, 1.5 and a string; ...);
- :func:`test_bad_input_is_rejected` makes each bad call and asserts the error;
- :func:`test_every_public_callable_has_bad_input_rows` fails when a public callable has
  no row, so a new function gets its table when it is added (or a justified exemption).

Bad input is rejected before anything is compiled or computed, so the whole file runs in
seconds. Rows of modules whose fixes are pending are marked ``xfail(strict=True)``: they
turn into failures the moment the module is fixed, and the mark is then removed.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
import numbers
import pkgutil
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dltheory

NAN, INF = float("nan"), float("inf")

# --------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------


def _public_modules() -> list:
    names = ["dltheory"] + [m.name for m in pkgutil.walk_packages(dltheory.__path__, "dltheory.")
                            if not any(p.startswith("_") for p in m.name.split("."))]
    return [importlib.import_module(n) for n in sorted(names)]


def public_callables() -> dict[str, Any]:
    """Every public function and class of the package, by ``module.qualname`` of the module
    that defines it (re-exports are counted once; other libraries' objects not at all)."""
    out: dict[str, Any] = {}
    for mod in _public_modules():
        names = getattr(mod, "__all__", None)
        if names is None:
            names = [n for n, o in vars(mod).items() if not n.startswith("_") and callable(o)
                     and getattr(o, "__module__", None) == mod.__name__]
        for n in names:
            obj = getattr(mod, n)
            home = getattr(obj, "__module__", None) or ""
            if callable(obj) and home.startswith("dltheory"):
                out.setdefault(f"{home.removeprefix('dltheory.')}.{obj.__qualname__}", obj)
    return out


def _resolve(target: str) -> Any:
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(f"dltheory.{module}"), name)


def _parameters(obj: Any) -> list[str]:
    """The parameter names a bad value can be given to (``self`` and ``*args`` left out)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    params = list(sig.parameters.values())
    if inspect.isclass(obj) and all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        params = list(inspect.signature(obj.__init__).parameters.values())[1:]  # nnx modules
    return [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


# --------------------------------------------------------------------------------------
# Bad values by kind, and by parameter name (the part of each table built from signatures)
# --------------------------------------------------------------------------------------

POSITIVE = (-0.1, 0.0, NAN, INF, "0.1")        # learning rates, scales, step sizes: > 0
NONNEGATIVE = (-0.1, NAN, INF, "0.1")          # noise levels, tolerances, eps: >= 0
COUNT = (-1, 0, 1.5, "2")                      # steps, widths, sizes: integers >= 1
SEED = (-1, 1.5, "0")                          # seeds: integers >= 0
FRACTION = (-0.1, 1.5, NAN)                    # probabilities, fractions, betas: in [0, 1]
LEAK = (-0.1, 2.0, NAN)                        # the Leaky ReLU slope alpha: in (0, 1)
NOT_A = (3,)                                   # an object of the wrong kind entirely

#: Bad values generated for every parameter of these names (a case can override or skip).
AUTO: dict[str, tuple] = {
    **dict.fromkeys(("lr", "learning_rate", "eta", "base_lr", "alpha0", "init_scale",
                     "horizon", "dt", "rho", "grad_tol", "curvature", "ratio", "head_scale",
                     "sigma", "kappa", "epsilon", "scale", "dpi", "display_width", "min_px",
                     "font_pt", "natural_px", "displayed_px", "box", "height"), POSITIVE),
    **dict.fromkeys(("noise", "norm_eps", "eps", "tol", "rtol", "atol", "weight_decay",
                     "initial_scale"), NONNEGATIVE),
    **dict.fromkeys(("steps", "width", "n", "d", "iters", "num", "paths", "epochs",
                     "log_every", "batch_size", "max_iter", "max_steps", "max_rounds",
                     "em_substeps", "log_points", "examples", "n_train", "n_test", "ncols",
                     "nrows", "base_batch", "chunk_steps", "order", "measurements",
                     "max_rank", "n_negative", "window", "limit", "k", "probe"), COUNT),
    **dict.fromkeys(("seed", "key"), SEED),
    **dict.fromkeys(("threshold", "fraction", "test_fraction", "label_noise", "beta", "b1",
                     "b2", "momentum", "gap"), FRACTION),
    "alpha": LEAK,
    **dict.fromkeys(("sizes", "problem", "flow", "res", "config", "schedule", "loss_fn",
                     "fn", "apply", "margins", "margin_fn", "drift", "diffusion",
                     "optimizer", "factory", "metrics", "ax", "fig", "rngs", "model"),
                    NOT_A),
}

# --------------------------------------------------------------------------------------
# The rows
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One bad call: ``target(**base(), arg=value)`` (or with the environment variable
    ``arg`` set to ``value`` when ``env``), which must raise a clear error."""

    target: str
    arg: str
    value: Any
    base: Callable[[], dict]
    names: tuple[str, ...]
    call: Callable | None = None
    env: bool = False

    @property
    def id(self) -> str:
        return f"{self.target}:{self.arg}={_short(self.value)}"


def _short(value: Any, n: int = 24) -> str:
    if isinstance(value, np.ndarray):
        text = f"array{value.shape}"
    elif callable(value) and not isinstance(value, type):
        text = getattr(value, "__name__", type(value).__name__)
    else:
        text = repr(value)
    text = re.sub(r"\s+", "", text)
    return text if len(text) <= n else text[: n - 3] + "..."


ROWS: list = []                # pytest.param(Row, id=..., marks=...)
COVERED: set[str] = set()      # targets with at least one row


def case(target: str, base: Callable[[], dict] | dict | None = None,
         bad: dict[str, tuple] | None = None, *, auto: bool = True, skip: tuple = (),
         names: dict[str, tuple[str, ...]] | None = None, call: Callable | None = None,
         env: dict[str, tuple] | None = None, xfail: dict[str, str] | None = None) -> None:
    """Add the rows of one public callable.

    Args:
      target: ``module.name`` under ``dltheory`` (where it is defined).
      base: good keyword arguments (a dict, or a function making one: fixtures are built
        only when a row runs).
      bad: argument -> bad values, added to (and replacing) the generated ones.
      auto: generate rows from :data:`AUTO` for the parameters of the signature.
      skip: parameters left out of the generated rows (a name that means something else
        here; its bad values are then in ``bad``).
      names: argument -> words, one of which the message must contain (default: the
        argument's name).
      call: ``call(fn, kwargs)`` instead of ``fn(**kwargs)``.
      env: environment variable -> bad values (the callable reads its input there).
      xfail: row id suffix (``"arg"`` or ``"arg=value"``) -> reason: the module's owner
        fixes it; strict, so the mark must go when the row passes.
    """
    fn = _resolve(target)
    make_base = base if callable(base) else (lambda b=dict(base or {}): dict(b))
    table: dict[str, tuple] = {}
    if auto:
        for p in _parameters(fn):
            if p in AUTO and p not in skip:
                table[p] = AUTO[p]
    table.update(bad or {})
    names = names or {}
    xfail = {**PENDING.get(target, {}), **(xfail or {})}
    rows = [Row(target, arg, v, make_base, names.get(arg, (arg,)), call)
            for arg, values in table.items() for v in values]
    rows += [Row(target, var, v, make_base, names.get(var, (var,)), call, env=True)
             for var, values in (env or {}).items() for v in values]
    assert rows, f"{target}: no bad-input rows"
    for r in rows:
        suffix = r.id.split(":", 1)[1]
        reason = xfail.get(suffix) or xfail.get(r.arg)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        ROWS.append(pytest.param(r, id=r.id, marks=marks))
    COVERED.add(target)


# --------------------------------------------------------------------------------------
# Fixtures: tiny, built on first use
# --------------------------------------------------------------------------------------


@functools.cache
def completion():
    from dltheory.lowrank import matrix_completion_problem

    return matrix_completion_problem(3, (2.0, 1.0), seed=0)


@functools.cache
def sensing():
    from dltheory.lowrank import matrix_sensing_problem

    return matrix_sensing_problem(2, (1.0,), measurements=8, seed=0)


@functools.cache
def flow():
    from dltheory.lowrank import FlowResult

    w = np.diag([1.5, 0.6, 0.0])
    sv = np.array([[[1e-3, 1e-4, 1e-6], [0.5, 1e-3, 1e-6], [1.5, 0.6, 1e-6]]])
    return FlowResult(
        init_scales=np.array([1e-3]), seeds=np.array([0]), lrs=np.array([0.02]), depth=2,
        width=3, symmetric=True, steps=np.arange(3), loss=np.ones((1, 3)), spectrum=sv,
        final=w[None], trajectory=np.stack([0 * w, w / 2, w])[None], references=None,
        ref_min=np.zeros((1, 0)), ref_argmin=np.zeros((1, 0), np.int64),
        diverged_at=np.array([-1]))


@functools.cache
def glrl_result():
    from dltheory.lowrank import GLRLResult

    return GLRLResult(np.diag([2.0, 0.0, 0.0])[None], np.array([2.0]), np.zeros(1),
                      np.ones(1, int), np.zeros(1), "tolerance", 0.0)


def greedy_sizes():
    from dltheory.lowrank import GreedySizes

    return GreedySizes(d=3, eigenvalues=(2.0, 1.0), steps=2, lr=0.05, log_every=1, seeds=1,
                       depth_steps=2, depths=(2,), widget_steps=2)


def sensing_sizes():
    from dltheory.lowrank import SensingSizes

    return SensingSizes(d=2, measurements=8, eigenvalues=(1.0,), lr=0.02, steps=2,
                        log_every=1, num_alpha=1, seeds=1, under_steps=2, widget_steps=2)


def lr_sizes():
    from dltheory.margin.two_layer import LRSizes

    return LRSizes(n=4, d=2, width=2, steps=2, log_every=1, widget_steps=2, frag_seeds=1,
                   frag_steps=2)


def hm_sizes():
    from dltheory.margin.homogeneous import HMSizes

    return HMSizes(width=2, steps=2, log_every=1, kkt_points=1, widget_steps=2,
                   cnn_examples=2, cnn_steps=2)


@functools.cache
def mlp():
    from flax import nnx

    from dltheory.models import MLP

    return MLP((2, 1), rngs=nnx.Rngs(0), bias=False)


def rngs():
    from flax import nnx

    return nnx.Rngs(0)


def ax():
    import matplotlib.pyplot as plt

    return plt.figure().add_subplot()


def fig():
    import matplotlib.pyplot as plt

    return plt.figure()


def sq_loss(params, batch):
    return 0.5 * sum((p ** 2).sum() for p in __import__("jax").tree.leaves(params))


def sgd():
    import optax

    from dltheory.training import optimizer

    return optimizer(optax.sgd, learning_rate=0.1)


def margin_run():
    from dltheory.margin import MarginRun

    z = np.zeros(2)
    return MarginRun(np.arange(2), z, z + 1, z, z, z, z, z.astype(int), None, None, 1, 2,
                     "logistic")


def leaky_params():
    return {"w": np.array([[1.0, 0.0], [0.0, 1.0]]), "a": np.array([1.0, -1.0])}


def neuron_grid():
    return {"settings": [(0.2, 1e-4, 20, "symmetric")], "runs": None, "x": None, "y": None}


def sgd_config():
    from dltheory.sde.rules import sgd_config

    return sgd_config(0.1, 4)


def rmsprop_config():
    from dltheory.sde.rules import rmsprop_config

    return rmsprop_config(0.01, 4)


ARRAY_2D = ([1.0, 2.0], "abc")                 # a 2-D array expected: 1-D, not numbers
POSITIVE_1D = ([], [[1.0]], [-1.0], [0.0], [NAN], "abc")
FINITE_1D = ([], [[1.0]], [NAN], "abc")

# --------------------------------------------------------------------------------------
# Exemptions: callables that take no input that could be wrong. Keep this short.
# --------------------------------------------------------------------------------------

#: No parameters at all (the test checks it); the environment variables that some read
#: have rows of their own (``config.scale``, ``config.max_steps``, ...).
NO_INPUT = {
    "compat.x64_enabled", "config.backend", "notebook.glued", "notebook.elapsed",
    "notebook.start_clock", "plotting.use_style", "plotting.style",
    "plotting.style_smallest_font_pt", "widgets.in_kernel", "widgets.static_twins",
    "claims.chapters", "training.loop.count_compilations", "training.loop.compile_seconds",
    # the abstract base of the size presets: no fields (every subclass has rows)
    "config.Preset",
}
#: Every value is valid input.
ANY_INPUT = {
    "data.is_batch_source",   # a predicate: any object may be asked about
    "data.FullBatch",         # holds any pytree as the batch, None included (no data)
    "models.Frozen",          # flax's nnx.Variable constructor: holds any value
}
#: Exception and warning classes (they take a message).
EXCEPTIONS = {"claims.ClaimFailed", "training.loop.DivergenceWarning",
              "plotting.SmallTextWarning"}
#: Result records: frozen dataclasses or named tuples of computed arrays that the package
#: returns (the test checks that a public function's return annotation names each one); a
#: reader reads them and never builds one, and their fields may hold NaN by design (a
#: diverged run, an undefined smoothed margin). The functions that take them as input
#: check their type.
RECORDS = {
    "sharpness.label_noise.FlowResult", "sharpness.label_noise.ToyResult",
    "sharpness.label_noise.TimeScaleResult", "sharpness.label_noise.SampleComplexityResult",
    "claims.Ledger", "data.Dataset", "paper.Budget", "paper.Measurement", "paper.Measured",
    "lowrank.convex.NuclearNormResult", "lowrank.flow.FlowResult", "lowrank.glrl.GLRLResult",
    "lowrank.sensing.PlateauResult", "lowrank.sensing.UnderParamResult",
    "lowrank.experiments.GreedyResult", "lowrank.experiments.CounterexampleResult",
    "lowrank.experiments.DepthResult",
    "margin.core.MaxMarginResult", "margin.fragility.FragilityResult",
    "margin.global_margin.TwoLayerMaxMargin", "margin.homogeneous.HomogeneousResult",
    "margin.train.MarginRun", "margin.two_layer.SymmetricResult",
    "margin.two_layer.ManipulationResult",
    "normalization.core.EquilibriumPrediction",
    "normalization.experiments.GradientScalingResult",
    "normalization.experiments.NormGrowthResult", "normalization.experiments.ExpLRResult",
    "normalization.experiments.EquilibriumResult",
    "normalization.experiments.FastEquilibriumResult",
    "preliminaries.StabilityResult", "preliminaries.FlowGapResult",
    "preliminaries.EdgeOfStabilityResult",
    "sde.cifar.CifarRun", "sde.digits.DigitsCurves", "sde.digits.LSRResult",
    "sde.digits.RuleResult", "sde.quadratic.SVAGQuadraticResult",
    "sde.quadratic.AdaptiveSVAGResult", "sde.simulate.SDEPaths", "sde.rules.NoiseToSignal",
    "sde.problems.DigitsProblem", "sde.adam.AdamWeakErrorResult", "exercises.Verdict",
    "training.results.RunResult", "training.results.SweepResult",
}

# --------------------------------------------------------------------------------------
# Rows that fail until the owner of the module fixes it (xfail, strict: a row that passes
# fails the run, and its entry is then removed). Keys: ``"arg"`` (every bad value of the
# argument) or ``"arg=value"`` (one row); values: what goes wrong today.
# --------------------------------------------------------------------------------------

PENDING = {
}


NO_CIFAR = "/nonexistent/dltheory-test-no-cifar"   # a data folder that does not exist


def _preset(target: str, xfail: dict[str, str] | None = None) -> None:
    """Rows of a size preset: every field of its ``quick()`` preset made invalid."""
    cls = _resolve(target)
    good = cls.quick()
    bad: dict[str, tuple] = {}
    for f in dataclasses.fields(good):
        v = getattr(good, f.name)
        if isinstance(v, bool):
            continue
        if isinstance(v, numbers.Integral) or v is None:
            bad[f.name] = (-1, 0, 1.5)
        elif isinstance(v, float):
            bad[f.name] = (NAN, -1.0, "x")
        elif isinstance(v, tuple):
            bad[f.name] = ((), ("x",), (-1,))
    case(target, lambda: {f.name: getattr(good, f.name) for f in dataclasses.fields(good)},
         bad, auto=False, xfail=xfail)


# -- validation: the helpers themselves ------------------------------------------------
case("validation.check_finite", {"name": "lr", "value": 1.0},
     {"value": (NAN, INF, "x", None)}, names={"value": ("lr",)})
case("validation.check_positive", {"name": "lr", "value": 1.0},
     {"value": (-1.0, 0.0, NAN, "x")}, names={"value": ("lr",)})
case("validation.check_nonnegative", {"name": "lr", "value": 1.0},
     {"value": (-1.0, NAN, "x")}, names={"value": ("lr",)})
case("validation.check_int", {"name": "k", "value": 3, "minimum": 1, "maximum": 5},
     {"value": (0, 6, 1.5, "3", True)}, names={"value": ("k",)})
case("validation.check_steps", {"steps": 4, "log_every": 2}, {"steps": COUNT + (5,)})
case("validation.check_in_range", {"name": "b", "value": 0.5, "low": 0.0, "high": 1.0},
     {"value": (-1.0, 2.0, NAN, "x")}, names={"value": ("b",)})
case("validation.check_probability", {"name": "p", "value": 0.5},
     {"value": FRACTION}, names={"value": ("p",)})
case("validation.check_choice", {"name": "c", "value": "a", "choices": ("a", "b")},
     {"value": ("z", 3)}, names={"value": ("c",)})
case("validation.check_shape", {"name": "a", "array": np.ones((2, 3)), "shape": (None, 3)},
     {"array": (np.ones(3), np.ones((2, 2)), [1.0])}, names={"array": ("a",)})
case("validation.check_seed", {"name": "seed", "value": 0},
     {"value": SEED + (2**32,)}, names={"value": ("seed",)})
case("validation.check_key", {"name": "key", "value": 0},
     {"value": SEED + (np.zeros(3),)}, names={"value": ("key",)})
case("validation.check_array", {"name": "x", "value": [1.0]},
     {"value": ("abc", [NAN], [], None)}, names={"value": ("x",)})
case("validation.check_instance", {"name": "x", "value": 1, "types": int},
     {"value": ("1", None)}, names={"value": ("x",)})
case("validation.check_callable", {"name": "fn", "value": len}, {"value": (3, None)},
     names={"value": ("fn",)})

# -- config, compat, notebook ----------------------------------------------------------
case("config.scale", {}, env={"DLTHEORY_SCALE": ("bogus", "Paper!")})
case("config.max_steps", {}, env={"DLTHEORY_MAX_STEPS": ("-3", "0", "abc", "1.5")})
case("config.describe", {}, env={"DLTHEORY_SCALE": ("bogus",), "DLTHEORY_MAX_STEPS": ("abc",)})
case("config.progress_bars", {}, env={"DLTHEORY_PROGRESS": ("maybe", "2")})
case("widgets.prerender_enabled", {}, env={"DLTHEORY_PRERENDER": ("maybe", "2")})
case("config.accelerator_warning", {"on_colab": True, "gpus": ["GPU 0: T4"], "jax_backend": "cpu"},
     {"on_colab": ("yes", 1), "gpus": (3, "GPU 0", [3]), "jax_backend": (3, "")})
case("compat.enable_x64", {"on": True}, {"on": ("yes", None, 2)})
case("compat.variance_scaling", {"scale": 1.0},
     {"mode": ("fan_bogus", 3), "distribution": ("cauchy",)})
case("notebook.glue", {"name": "x", "value": 1.0}, {"name": ("", 3, None)})
case("notebook.glue_markdown", {"name": "x", "text": "t"}, {"name": ("", 3), "text": (3, None)})
case("notebook.dump_glued", {"chapter": "x"}, {"chapter": ("", 3, None)})

# -- curvature, data, models -----------------------------------------------------------
case("curvature.hvp",
     lambda: {"loss_fn": sq_loss, "params": {"w": np.ones(2)}, "batch": None,
              "v": {"w": np.ones(2)}},
     {"v": ({"w": np.ones(3)}, {"u": np.ones(2)}, 3)})
case("curvature.sharpness",
     lambda: {"loss_fn": sq_loss, "params": {"w": np.ones(2)}, "batch": None, "iters": 2},
     {"params": ({}, [])})
case("data.digits", {}, {"classes": ((1,), (1, 1), (1, 10), 3, "ab")},
     names={"classes": ("classes",)})
case("data.cifar10", {"root": NO_CIFAR}, {"limit": COUNT, "classes": ((1,), 3), "root": (3,)})
case("data.write_cifar10_standin", {"root": NO_CIFAR}, {"root": (3, None)})
case("data.Minibatches", lambda: {"data": {"x": np.zeros((4, 1))}, "batch_size": 2, "size": 4},
     {"size": (-1, 1.5, "4"), "batch_size": COUNT + (5,)},
     names={"batch_size": ("batch_size",), "size": ("size",)})
case("data.plan_batches",
     lambda: {"source": dltheory.data.FullBatch({"x": np.zeros(2)}), "key": _key(),
              "start": 0, "length": 2},
     {"source": (3, None), "length": (-1, 0, 1.5)})
case("data.take_batch",
     lambda: {"source": dltheory.data.FullBatch({"x": np.zeros(2)}), "key": _key(), "item": 0},
     {"source": (3, None)})
case("data.quadratic", {"eigenvalues": [1.0, 2.0]},
     {"eigenvalues": FINITE_1D, "dtype": ("bogus", np.int32)})
case("data.linear_regression", {"n": 2, "d": 2}, {"dtype": ("bogus", np.int32)})
case("models.MLP", lambda: {"sizes": (2, 1), "rngs": rngs()},
     {"sizes": ((2,), (2, 0), (2, 1.5), 3), "activation": ("gelu", 3),
      "normalization": ("bogus",)})
case("models.ConvNet", lambda: {"rngs": rngs(), "channels": (2,), "num_classes": 2},
     {"channels": ((), (0,), 3), "in_channels": COUNT, "num_classes": COUNT,
      "activation": ("gelu",)})
case("models.ResNet", lambda: {"rngs": rngs(), "stage_sizes": (1,), "width": 2,
                               "num_classes": 2},
     {"stage_sizes": ((), (0,), 3), "num_classes": COUNT, "in_channels": COUNT,
      "normalization": ("bogus",)})
case("models.homogeneity_order", lambda: {"model": mlp()}, {"model": (3, None)})
case("models.normalize", {"x": np.ones((2, 3)), "kind": "layer"},
     {"kind": ("bogus", 3), "x": ("abc", np.float32(1.0))})
case("models.cross_entropy", {"logits": np.zeros((2, 3)), "labels": np.zeros(2, np.int32)},
     {"logits": (np.zeros(3), "abc"), "labels": (np.zeros(3, np.int32), np.zeros(2))})
case("models.accuracy", {"logits": np.zeros((2, 3)), "labels": np.zeros(2, np.int32)},
     {"logits": (np.zeros(3), "abc"), "labels": (np.zeros(3, np.int32), np.zeros(2))})
case("models.param_norm", {"params": {"w": np.ones(2)}}, {"params": ("abc", {"w": "abc"})})


def _key():
    import jax

    return jax.random.key(0)

# -- paper, plotting, widgets ----------------------------------------------------------
case("paper.GPU", {"name": "X", "fp32": 1e12, "fp64": 1e11, "memory": 1e9},
     {"name": ("", 3), "fp32": POSITIVE, "fp64": POSITIVE, "memory": POSITIVE})
case("paper.ProgramBudget",
     {"label": "p", "flops_per_step": 1.0, "peak_bytes": 1.0, "steps": 1, "dtype": "float32"},
     {"label": (3,), "flops_per_step": NONNEGATIVE, "peak_bytes": NONNEGATIVE,
      "dtype": ("float16", 3)})
case("paper.estimate", {}, {"chapter": ("bogus", 3)})
case("paper.budget", {}, {"chapter": ("bogus", 3)})
case("paper.budgets", {}, {"path": (3,)})
case("paper.table", {}, {"chapters": (3, "greedy", ["bogus"])},
     names={"chapters": ("chapters", "chapter")})
case("paper.show", {}, {"chapter": ("bogus", 3)})
case("paper.main", {}, {"argv": (3, "greedy", ["bogus"])}, names={"argv": ("argv", "chapter")})
case("paper.ProgramRun", {"label": "p", "steps": 1, "seconds": 1.0, "compile_seconds": 0.0},
     {"label": (3,), "steps": (0, 2.5), "seconds": NONNEGATIVE,
      "compile_seconds": NONNEGATIVE})
case("paper.measure", {"chapter": "lowrank/incremental_sensing"},
     {"chapter": ("bogus", 3), "max_steps": (0, 2.5), "capped": (3,)})
case("paper.measure_all", {"chapters": ["lowrank/incremental_sensing"]},
     {"chapters": (3, "greedy", ["bogus"]), "max_steps": (0, 2.5), "deadline": POSITIVE,
      "timeout": POSITIVE, "log": (3,), "after": (3,)},
     names={"chapters": ("chapters", "chapter")})
case("paper.measured_table", {"measurements": []},
     {"measurements": (3, [3]), "skipped": (3, {"a": 3})})
case("paper.measured", {}, {"path": (3,)})
case("paper.show_measured", {}, {"path": (3,)})
case("paper.measured_summary", {}, {"m": (3,)})
case("paper.measured_capped_sentence", {}, {"m": (3,)})
case("plotting.figure", {"reuse": "detached"},
     {"reuse": ("bogus", 3), "width": POSITIVE, "height": POSITIVE})
case("plotting.draw", {})
case("plotting.curves", lambda: {"ax": ax(), "steps": np.arange(3), "values": np.ones(3)},
     {"values": (np.ones(4), np.ones((3, 1)), "abc"), "steps": (np.arange(4),),
      "diverged_at": (1.5, "x")},
     names={"values": ("values", "steps"), "steps": ("steps", "values")})
case("plotting.sweep_curves",
     lambda: {"ax": ax(), "steps": np.arange(3), "values": np.ones((2, 3)), "labels": ["a", "b"]},
     {"values": (np.ones(3), np.ones((2, 4))), "labels": (["a"], 3), "diverged_at": ([1], 3),
      "cmap": ("bogus", 3)},
     names={"values": ("values", "steps")})
case("plotting.mark_diverged", lambda: {"ax": ax(), "step": 3},
     {"step": (-1, 1.5, NAN, "3"), "y": (NAN, "x")})
case("plotting.colors", {"n": 2}, {"cmap": ("bogus", 3)})
case("plotting.text_px", {"font_pt": 10.0, "dpi": 100.0, "natural_px": 500.0})
case("plotting.smallest_font_pt", {})
case("plotting.smallest_text_px", lambda: {"fig": fig()})
case("plotting.legible_width", {"font_pt": 10.0})
case("plotting.png_metadata", lambda: {"fig": fig()})
case("widgets.Slider", {"values": (1.0, 2.0), "default": 1.0},
     {"values": ((), 3, (1.0, NAN), ("a", "b")), "default": (3.0,), "fmt": (3,),
      "label": (3,)})
case("widgets.Choice", {"values": ("a", "b"), "default": "a"},
     {"values": ((), 3), "default": ("c",), "fmt": (3,), "label": (3,)})
case("widgets.slider", {"start": 0.1, "stop": 1.0},
     {"start": (NAN, "x"), "stop": (NAN, INF), "values": ([1.0], [1.0, NAN], 3),
      "default": (5.0,), "fmt": (3,), "num": COUNT + (102,)})
case("widgets.choice", {"options": ("a", "b")},
     {"options": ((), 3), "default": ("c",), "fmt": (3,), "label": (3,)})
case("widgets.Explorer",
     lambda: {"fn": lambda a, fig=None: None,
              "controls": {"a": dltheory.widgets.choice(("x", "y"))}},
     {"controls": ({}, {"a": 3}, 3), "title": (3,)})
case("widgets.explore",
     lambda: {"fn": lambda a, fig=None: None, "a": dltheory.widgets.choice(("x", "y"))},
     {"a": (3,), "title": (3,)})
case("widgets.display_name", {"name": "x"}, {"name": (3, None)})

# -- preliminaries ---------------------------------------------------------------------
EIG = [1.0, 2.0]
_preset("preliminaries.GDSizes")
case("preliminaries.quadratic_loss", {"x": np.ones(2), "h": np.eye(2)},
     {"x": (np.ones(3), np.ones((2, 2)), "abc"), "h": (np.eye(3), np.ones(2))},
     names={"x": ("x", "h"), "h": ("h", "x")})
case("preliminaries.gd_on_quadratic", {"eigenvalues": EIG, "lr": 0.1, "steps": 2},
     {"eigenvalues": FINITE_1D, "x0": ([1.0], [NAN, 1.0], "ab")})
case("preliminaries.gd_grid", {"eigenvalues": EIG, "lrs": [0.1, 0.2], "steps": 2},
     {"eigenvalues": FINITE_1D, "lrs": POSITIVE_1D})
case("preliminaries.flow_on_quadratic", {"eigenvalues": EIG, "times": [0.0, 1.0]},
     {"eigenvalues": FINITE_1D, "times": ([[1.0]], [-1.0], [NAN], "abc")})
case("preliminaries.stability_sweep", {"eigenvalues": EIG, "lrs": [0.1, 1.5], "steps": 2},
     {"eigenvalues": POSITIVE_1D, "lrs": POSITIVE_1D})
case("preliminaries.gd_flow_gap", {"eigenvalues": EIG, "lrs": [0.1, 0.2], "horizon": 1.0},
     {"eigenvalues": FINITE_1D, "lrs": POSITIVE_1D})
case("preliminaries.edge_of_stability", {"lrs": [0.1], "steps": 2, "width": 2},
     {"lrs": POSITIVE_1D, "log_every": COUNT + (3,)})
case("preliminaries.plot_run",
     lambda: {"ax_path": ax(), "ax_loss": ax(), "eigenvalues": EIG, "lr": 0.1, "run": _gd_run()},
     {"run": (3,), "eigenvalues": ([1.0, 2.0, 3.0],) + FINITE_1D, "ax_path": (3,),
      "ax_loss": (3,), "x0": ([1.0],)})
case("preliminaries.gd_verdict", {"ratio": 1.0})
case("preliminaries.gd_figure", {"lr": 0.1, "curvature": 1.0, "steps": 2})
case("preliminaries.gd_explorer", {"steps": 2})


def _gd_run():
    from dltheory.training import RunResult

    xs = np.array([[1.0, 1.0], [0.9, 0.8], [0.8, 0.6]])
    return RunResult(np.arange(3), {"loss": np.ones(3), "x": xs}, xs[-1], None, None, 2)

# -- lowrank ---------------------------------------------------------------------------
SCALES_1D = (-1.0, 0.0, [NAN], [[1e-3]], [], "abc")   # init scales, step sizes: > 0
SEEDS_1D = (-1, [1.5], [], "abc")                      # seed values: integers >= 0
_preset("lowrank.experiments.GreedySizes")
_preset("lowrank.experiments.SensingSizes")
case("lowrank.problems.LowRankProblem",
     {"kind": "completion", "target": np.eye(2), "mask": np.ones((2, 2)),
      "eigenvalues": np.ones(2)},
     {"kind": ("bogus", 3), "target": (np.ones(2), np.ones((2, 3)), np.full((2, 2), NAN)),
      "mask": (None, np.ones((3, 3)), np.full((2, 2), 0.5)),
      "num_measurements": (-1, 1.5), "eigenvalues": ([[1.0]], [NAN], [-1.0])})
case("lowrank.problems.counterexample_problem", {}, {"epsilon": POSITIVE + (0.5, 0.7)})
case("lowrank.problems.matrix_completion_problem", {"d": 3, "eigenvalues": (2.0, 1.0)},
     {"eigenvalues": POSITIVE_1D + ((1.0,) * 4,), "fraction": (0.0,) + FRACTION,
      "d": (1,) + COUNT})
case("lowrank.problems.matrix_sensing_problem", {"d": 2, "eigenvalues": (1.0,), "measurements": 8},
     {"eigenvalues": POSITIVE_1D, "d": (1,) + COUNT})
case("lowrank.problems.psd_target", {"d": 2, "eigenvalues": (1.0,)},
     {"eigenvalues": POSITIVE_1D + ((1.0,) * 3,)})
case("lowrank.convex.nuclear_norm", {"w": np.eye(2)},
     {"w": (np.ones(3), np.ones((2, 2, 2)), np.full((2, 2), NAN), "abc")})
case("lowrank.convex.min_nuclear_norm_completion", {"target": np.eye(2), "mask": np.ones((2, 2))},
     {"target": (np.ones(2), "abc"), "mask": (np.ones((3, 3)), np.full((2, 2), 0.5)),
      "psd": ("yes",)})
case("lowrank.flow.end_to_end", {"factors": (np.ones((2, 1)),), "symmetric": True},
     {"factors": ((), 3, (np.ones((2, 1)), np.ones((2, 1)))), "symmetric": ("yes", None)})
case("lowrank.flow.gradient_flow", lambda: {"problem": completion(), "steps": 2, "log_every": 1},
     {"init_scales": SCALES_1D, "seeds": SEEDS_1D, "lrs": SCALES_1D, "depth": (1, 17, 1.5),
      "symmetric": ("yes",), "width": (0, -1, 1.5, 13),
      "references": (np.ones((1, 3, 2)), np.zeros((1, 3, 3)), "abc"),
      "keep_trajectory": ("yes",)})
case("lowrank.flow.init_noise", {"seed": 0, "shapes": [(2, 1)]},
     {"shapes": (3, [(2, -1)], [(2, 1.5)])})
case("lowrank.glrl.glrl", lambda: {"problem": completion()},
     {"lr": POSITIVE, "max_rank": COUNT + (4,)})
case("lowrank.glrl.distance_to_glrl", lambda: {"flow": flow(), "iterates": glrl_result()},
     {"iterates": (np.ones((3, 3)), np.ones((1, 2, 2)), np.zeros((1, 3, 3)), 3)})
case("lowrank.sensing.plateau_times", lambda: {"flow": flow(), "eigenvalues": [1.5, 0.6]},
     {"eigenvalues": POSITIVE_1D + ([1.0] * 4,)})
case("lowrank.sensing.incremental_learning",
     lambda: {"problem": sensing(), "init_scales": [1e-3], "steps": 2, "log_every": 1},
     {"init_scales": SCALES_1D, "seeds": SEEDS_1D, "width": (0, 1.5, 9)})
case("lowrank.sensing.under_parameterized", lambda: {"problem": sensing(), "width": 1, "steps": 2},
     {"width": (0, 3, 1.5), "seeds": SEEDS_1D})
case("lowrank.experiments.counterexample_experiment", {"steps": 100},
     {"init_scales": SCALES_1D, "epsilon": POSITIVE + (0.5,), "steps": COUNT + (150,)})
case("lowrank.experiments.depth_comparison",
     lambda: {"problem": completion(), "steps": 2, "glrl_result": glrl_result()},
     {"depths": ((1,), (2.5,), 3, ()), "init_scales": SCALES_1D, "glrl_result": (3,)})
case("lowrank.experiments.greedy_experiment",
     lambda: {"problem": completion(), "init_scales": [1e-3], "steps": 2, "log_every": 1},
     {"init_scales": SCALES_1D, "depth": (1, 1.5), "seeds": COUNT})
case("lowrank.experiments.default_completion", lambda: {"sizes": greedy_sizes()},
     {"sizes": (3, sensing_sizes())})
case("lowrank.figures.plot_spectrum", lambda: {"ax": ax(), "flow": flow(), "run": 0},
     {"run": (1, -1, 1.5), "levels": ([NAN], "abc")})
case("lowrank.figures.glrl_explorer", {}, {"sizes": (3, sensing_sizes())})
case("lowrank.figures.sensing_explorer", {}, {"sizes": (3, greedy_sizes())})
case("lowrank.figures.widget_distances",
     lambda: {"sizes": greedy_sizes(), "target": "separated (8, 2, 0.5)"},
     {"target": ("bogus", 3), "depth": (3, 1.5), "sizes": (3, sensing_sizes())})

# -- margin ----------------------------------------------------------------------------
X2, Y2 = np.eye(2), [1.0, -1.0]
_preset("margin.homogeneous.HMSizes")
_preset("margin.two_layer.LRSizes")
case("margin.core.check_binary_labels", {"y": [1, -1]},
     {"y": ([0, 1], [[1, -1]], [], "ab", [NAN, 1])})
case("margin.core.kkt_residual",
     lambda: {"margin_fn": lambda p: p["w"], "params": {"w": np.ones(2)}, "order": 1},
     {"params": ({}, "abc")})
case("margin.core.log_loss", {"q": np.ones(2)},
     {"loss": ("bogus", 3), "q": (np.ones((2, 2)), np.ones(0), "abc")})
case("margin.core.log_softplus_neg", {"q": np.ones(2)}, {"q": ("abc", None)})
case("margin.core.max_margin_linear", {"x": X2, "y": Y2},
     {"x": (np.ones(2), np.full((2, 2), NAN), "abc"), "y": ([1.0], [0, 1])},
     names={"y": ("y", "x")})
case("margin.core.mirror", {"x": X2, "y": Y2, "flip": [True, False]},
     {"x": (np.ones(2), np.ones((3, 2)), "abc"), "flip": ([True], [[True, False]])},
     names={"x": ("x", "y")})
case("margin.core.normalized_margin", {"outputs": np.ones(2), "y": Y2, "params": 1.0, "order": 1},
     {"outputs": (np.array([NAN, 1.0]), "abc", np.ones(3)), "params": (0.0, -1.0, NAN, "abc", {})},
     names={"outputs": ("outputs", "y")})
case("margin.core.smoothed_margin", {"log_total_loss": -1.0, "norm": 1.0, "order": 1},
     {"norm": (-1.0, 0.0, NAN, "abc"), "log_total_loss": (NAN, INF, "abc"),
      "loss": ("bogus", 3)})
case("margin.core.smoothed_gap_bound", {"n": 2, "norm": 1.0, "order": 1, "log_total_loss": -1.0},
     {"norm": (-1.0, 0.0, NAN, "abc"), "log_total_loss": (NAN, "abc"), "loss": ("bogus", 3)})
case("margin.core.symmetric_separable_data", {"n": 4, "d": 2},
     {"n": COUNT + (3,), "gap": FRACTION + (1.0,), "teacher": ([1.0], [0.0, 0.0], "ab")})
case("margin.fragility.fragile_data", {"n": 6},
     {"n": COUNT + (3,), "n_negative": (0, 4, 1.5), "core": (-1.0, 90.0, NAN),
      "wings": ((70.0,), (80.0, 70.0), (10.0, 20.0), "ab", (NAN, 78.0))})
case("margin.fragility.fragility_experiment", lambda: {"sizes": lr_sizes(), "n": 6},
     {"n": COUNT + (5, 4), "sizes": (3, greedy_sizes())})
case("margin.global_margin.line_margin", {"x": X2, "y": Y2, "alpha": 0.2, "direction": [1.0, 0.0]},
     {"x": (np.ones(2), np.full((2, 2), NAN)), "y": ([0, 1], [1.0]),
      "direction": ([0.0, 0.0], [1.0], "ab")},
     names={"x": ("x", "y"), "y": ("y", "x")})
case("margin.global_margin.max_margin_two_layer", {"x": X2, "y": Y2, "alpha": 0.2},
     {"x": (np.ones(2), np.ones((2, 3)), np.zeros((2, 2))), "grid": (4, 1.5, "x"),
      "y": ([0, 1], [1.0])},
     names={"y": ("y", "x")})
case("margin.global_margin.off_line", lambda: {"params": leaky_params(), "direction": [1.0, 0.0]},
     {"params": (3, {"w": np.ones(2), "a": np.ones(2)}, {"w": np.zeros((2, 2)), "a": np.zeros(2)}),
      "direction": ([0.0, 0.0], [1.0], [NAN, 1.0])})
case("margin.homogeneous.cnn_margin_run", lambda: {"sizes": hm_sizes(), "root": NO_CIFAR},
     {"channels": ((), (0,), 3), "schedule": (3, "loss_based"), "root": (3,),
      "sizes": (3, lr_sizes())})
case("margin.homogeneous.digits_binary", {}, {"classes": ((3,), (3, 3), (3, 5, 7), 3)})
case("margin.homogeneous.homogeneous_experiment", lambda: {"sizes": hm_sizes()},
     {"classes": ((3,), 3), "sizes": (3, lr_sizes())})
case("margin.homogeneous.mlp_apply", {"params": [np.ones((2, 1))], "x": np.ones((3, 2))},
     {"params": ([], 3, [np.ones((3, 1))]), "x": (np.ones(2), "abc")},
     names={"params": ("params", "x")})
case("margin.homogeneous.mlp_params", {"sizes": (2, 1)}, {"sizes": ((2,), (2, 0), 3)})
case("margin.homogeneous.robustness", {"params": [np.ones((2, 1))], "x": X2, "y": Y2},
     {"params": ([], 3), "y": ([0, 1], [1.0]), "x": (np.ones(2), "abc")},
     names={"y": ("y", "x")})
case("margin.homogeneous.schedule_explorer", {"steps": 2})
case("margin.homogeneous.schedule_figure",
     lambda: {"grid": {"constant/0.1": margin_run()}, "schedule": "constant", "lr": 0.1},
     {"grid": (3, {}), "schedule": ("bogus", 3)})
case("margin.homogeneous.schedule_grid", {"steps": 2},
     {"classes": ((3,),), "log_every": COUNT + (3,)})
case("margin.leaky.TwoLayerLeakyReLU", lambda: {"d": 2, "width": 2, "rngs": rngs()})
case("margin.leaky.two_layer_leaky_relu", {"d": 2, "width": 2})
case("margin.leaky.leaky_init", {"key": 0, "d": 2, "width": 2, "init_scale": 0.1},
     {"active": (-1, 0, 3, 1.5)})
case("margin.leaky.leaky_apply",
     lambda: {"params": leaky_params(), "data": {"x": np.ones((3, 2)), "alpha": 0.2}},
     {"params": (3, {"w": np.ones((2, 2))}),
      "data": (3, {"x": np.ones((3, 2))}, {"x": np.ones((3, 3)), "alpha": 0.2},
               {"x": np.ones((3, 2)), "alpha": 2.0})},
     names={"data": ("data", "x", "alpha")})
case("margin.leaky.linear_part", lambda: {"params": leaky_params()},
     {"params": (3, {"w": np.ones((2, 2)), "a": np.ones(3)}, {"a": np.ones(2)})})
case("margin.leaky.max_normalized_margin", {"svm_margin": 0.5, "alpha": 0.2},
     {"svm_margin": POSITIVE})
case("margin.leaky.alignment_with_mu", {"w": np.ones((2, 2)), "mu": [1.0, 0.0]},
     {"mu": ([0.0, 0.0], [1.0], [NAN, 1.0]), "w": (np.ones(2), np.ones((2, 3))),
      "active": (-1, 0, 1.5)},
     names={"w": ("w", "mu"), "mu": ("mu", "w")})
case("margin.leaky.is_linear_on", lambda: {"params": leaky_params(), "x": X2, "alpha": 0.2},
     {"params": (3, {"w": np.zeros((2, 2)), "a": np.zeros(2)}),
      "x": (np.ones(2), np.full((2, 2), NAN), np.ones((2, 3)))},
     names={"x": ("x", "params")})
case("margin.train.Schedule", {"kind": "constant", "lr": 0.1},
     {"kind": ("bogus", 3), "r_up": (0.5, NAN, "x"), "r_down": (0.5, NAN)})
case("margin.train.constant_lr", {"lr": 0.1})
case("margin.train.loss_based_lr", {}, {"r_up": (0.5, NAN, "x"), "r_down": (1.0, 0.5, NAN)},
     names={"r_up": ("r_up",), "r_down": ("r_down",)})
case("margin.train.binary_margins", {"out": np.ones(2), "y": np.ones(2)},
     {"out": (np.ones(3), np.ones((2, 2))), "y": (np.ones(3), np.ones((2, 1)))},
     names={"out": ("out", "y"), "y": ("y", "out")})
case("margin.train.multiclass_margins", {"logits": np.ones((2, 3)), "y": np.zeros(2, np.int32)},
     {"logits": (np.ones(2),), "y": (np.zeros(3, np.int32), np.zeros(2))},
     names={"y": ("y", "logits")})


def _margin_base(grid: bool = False):
    from dltheory.margin import constant_lr
    from dltheory.margin.homogeneous import mlp_apply

    p = [np.ones((2, 2, 1))] if grid else [np.ones((2, 1))]
    out = {"apply": mlp_apply, "params": p, "x": X2, "y": Y2, "order": 1, "steps": 2}
    if grid:
        out["schedules"] = [constant_lr(0.1)] * 2
    else:
        out["schedule"] = constant_lr(0.1)
    return out


case("margin.train.train_margin", _margin_base,
     {"y": ([0, 1], [1.0]), "loss": ("bogus", 3), "x": (np.ones((3, 2)),), "params": ({}, [])},
     names={"y": ("y", "x"), "x": ("x", "y")})
case("margin.train.train_margin_grid", lambda: _margin_base(grid=True),
     {"schedules": (3, [3, 3], [dltheory.margin.train.constant_lr(0.1)]), "data_axis": (1, "0"),
      "y": ([0, 1],), "params": ({}, [np.ones((2, 2, 1)), np.ones((3, 1, 1))])},
     names={"y": ("y", "x")})
case("margin.two_layer.symmetric_experiment", lambda: {"sizes": lr_sizes()},
     {"sizes": (3, hm_sizes())})
case("margin.two_layer.manipulation_experiment", lambda: {"sizes": lr_sizes()},
     {"which": (("bogus",), "symmetric", ()), "sizes": (3, hm_sizes())})
case("margin.two_layer.neuron_grid", {"steps": 2})
NEURON = {"alpha": 0.2, "init_scale": 1e-4, "width": 20, "data": "symmetric"}
case("margin.two_layer.neuron_figure", lambda: {"grid": neuron_grid(), **NEURON},
     {"grid": (3, {}), "data": ("bogus", 3), "width": (7,) + COUNT, "alpha": (0.3,) + LEAK,
      "init_scale": (0.5,) + POSITIVE})
case("margin.two_layer.alignment_figure", lambda: {"grid": neuron_grid(), **NEURON},
     {"grid": (3, {}), "data": ("bogus", 3), "width": (7,) + COUNT, "alpha": (0.3,) + LEAK,
      "init_scale": (0.5,) + POSITIVE})
case("margin.two_layer.neuron_explorer", {"steps": 2}, {"grid": (3, {})})

# -- training --------------------------------------------------------------------------


def _sgd_factory():
    import optax

    return optax.sgd


case("training.optim.OptimizerSpec",
     lambda: {"factory": _sgd_factory(), "hyperparams": {"learning_rate": 0.1}, "static": ()},
     {"hyperparams": (3, {"learning_rate": NAN}, {"learning_rate": -0.1}),
      "static": (3, (("a",),))},
     names={"hyperparams": ("hyperparams", "learning_rate")})
case("training.optim.optimizer", lambda: {"factory": _sgd_factory(), "learning_rate": 0.1},
     {"learning_rate": POSITIVE + (np.array([[0.1]]), np.array([0.1, -0.1])),
      "momentum": (NAN, "x"), "nesterov": ([1],), "lr": (0.1,)},
     call=lambda fn, kw: fn(kw.pop("factory"), **kw))
case("training.run.train",
     lambda: {"loss_fn": sq_loss, "params": {"w": np.ones(2)}, "optimizer": sgd(), "steps": 2},
     {"params": ({}, "abc")})
case("training.run.sweep",
     lambda: {"loss_fn": sq_loss, "init": {"w": np.ones(2)}, "optimizer": sgd(), "steps": 2,
              "seeds": [0, 1]},
     {"seeds": ([], [-1], [1.5], 3), "batch_axis": (1, "0"), "devices": ([],),
      "init": ({}, "abc")})

# -- claims ----------------------------------------------------------------------------


def _claim_fields():
    from dltheory import claims

    c = claims.get(_first_label())
    return {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}


def _first_label():
    from dltheory import claims

    return claims.CLAIMS[0].label


case("claims.Bound", {"low": 0.0}, {"low": (NAN, "x"), "high": (NAN, -1.0)})
case("claims.Claim", _claim_fields, {"label": ("", 3), "bound": (3,), "chapter": (3,)})
case("claims.at_least", {"low": 0.0}, {"low": (NAN, "x")})
case("claims.at_most", {"high": 0.0}, {"high": (NAN, "x")})
case("claims.between", {"low": 0.0, "high": 1.0}, {"low": (NAN, 2.0), "high": (NAN, -1.0)})
case("claims.get", {}, {"label": ("bogus", 3)})
case("claims.check", lambda: {"label": _first_label(), "value": 1.0},
     {"label": ("bogus", 3), "value": ("x", None)})
case("claims.evaluate", lambda: {"chapter": dltheory.claims.chapters()[0]},
     {"chapter": ("bogus", 3), "glued": (3,)})
case("claims.publish", lambda: {"chapter": dltheory.claims.chapters()[0]},
     {"chapter": ("bogus", 3), "glued": (3,)})
case("claims.ledger_line", {"claims": []}, {"claims": (3,), "root": (3,)})
case("claims.claims_page", {}, {"root": (3,), "title": (3,)})

# -- sde (its owner fixes the rows marked xfail) ---------------------------------------


def _drift(x, t, p):
    return -x


def _quad_result():
    from dltheory.sde.quadratic import SVAGQuadraticResult

    z = np.zeros((1, 2))
    return SVAGQuadraticResult(np.array([1]), 0.5, np.arange(2.0), z, z, z, np.zeros(2), 0.0,
                               np.zeros(2), 2)


_preset("sde.cifar.CifarSizes")
_preset("sde.experiments.SDESizes")
_preset("sde.experiments.AdaptiveSizes")
case("sde.cifar.cifar_preset", {}, {"which": ("bogus", 3)})
case("sde.cifar.cifar_run", lambda: {"config": sgd_config(), "root": NO_CIFAR},
     {"l": (0.5, NAN, "x"), "root": (3,)})
LEVELS = ((0,), (), (1.5,), 3)
case("sde.digits.svag_digits",
     {"ls": (1,), "steps": 2, "log_points": 1, "seeds": 1, "width": 2, "batch_size": 2},
     {"ls": LEVELS, "seeds": COUNT})
case("sde.digits.lsr_digits", {"kappas": (1,), "epochs": 1, "seeds": 1, "width": 2},
     {"kappas": LEVELS + ((2,),), "seeds": COUNT})
case("sde.digits.scaling_rules_digits", {"kappas": (1,), "epochs": 1, "seeds": 1, "width": 2},
     {"kappas": LEVELS + ((2,),), "base": (3,), "seeds": COUNT})
case("sde.figures.svag_figure", lambda: {"res": _quad_result(), "l": 1},
     {"l": (5, 1.5)}, skip=("fig",))
case("sde.figures.svag_explorer", {})
case("sde.figures.rules_figure", {"kappa": 1, "rule": "linear"}, skip=("fig", "kappa"))
case("sde.figures.rules_explorer", {})
case("sde.problems.GaussianNoise", {"lam": np.ones(2), "s": np.ones(2)},
     {"s": (np.ones(3),), "lam": ("abc",)})
case("sde.problems.NoisyQuadratic", {"lam": (1.0,), "s": (1.0,)},
     {"lam": ((), (-1.0,), (NAN,)), "s": ((1.0, 1.0), (-1.0,)), "x0": ((NAN,), (1.0, 1.0))})
QBATCH = {"lam": np.ones(2), "s": np.ones(2), "z": np.ones(2)}
case("sde.problems.quadratic_loss", {"x": np.ones(2), "batch": QBATCH},
     {"x": (np.ones(3), "abc"), "batch": ({}, 3)}, names={"x": ("x", "batch")})
case("sde.problems.digits_problem", {})
XBATCH = {"x": np.ones((2, 2)), "y": np.zeros(2, np.int32)}
case("sde.problems.xent_loss", lambda: {"model": mlp(), "batch": XBATCH}, {"batch": ({}, 3)})
case("sde.problems.digits_metrics", lambda: {"model": mlp(), "data": {"train": XBATCH}},
     {"data": ({}, 3)})
QUAD = {"ls": (1,), "eta": 0.5, "horizon": 1.0, "paths": 2, "em_substeps": 1, "log_points": 1}
case("sde.quadratic.svag_quadratic", QUAD, {"ls": LEVELS, "paths": COUNT + (1,)})
case("sde.quadratic.rmsprop_svag_quadratic", {**QUAD, "horizon": 0.25},
     {"ls": LEVELS, "v0_factor": POSITIVE})
case("sde.rules.OptimizerConfig", {"algorithm": "sgd", "lr": 0.1, "batch_size": 4},
     {"algorithm": ("bogus", 3), "b1": (0.9,)})
case("sde.rules.sgd_config", {"lr": 0.1, "batch_size": 4})
case("sde.rules.rmsprop_config", {"lr": 0.1, "batch_size": 4})
case("sde.rules.adam_config", {"lr": 0.1, "batch_size": 4})
case("sde.rules.linear_scaling_rule", lambda: {"config": sgd_config(), "kappa": 2.0},
     {"kappa": (0.3,)})
case("sde.rules.sqrt_scaling_rule", lambda: {"config": rmsprop_config(), "kappa": 2.0})
case("sde.rules.svag_config", lambda: {"config": sgd_config(), "l": 2.0}, {"l": (0.5, NAN, "x")})
case("sde.rules.adaptive_svag_config", lambda: {"config": rmsprop_config(), "l": 2.0},
     {"l": (0.5, NAN, "x")})
NDATA = {"x": np.ones((2, 2))}
case("sde.rules.noise_to_signal",
     {"loss_fn": sq_loss, "params": {"w": np.ones(2)}, "data": NDATA},
     {"data": ({}, {"x": np.ones((1, 2))}), "params": ({},)})
case("sde.rules.noise_terms",
     {"loss_fn": sq_loss, "params": {"w": np.ones(2)}, "data": NDATA},
     {"data": ({}, {"x": np.ones((1, 2))}), "params": ({},)})
case("sde.simulate.sde_simulate",
     {"drift": _drift, "diffusion": _drift, "x0": np.ones(2), "dt": 0.1, "steps": 2, "paths": 2},
     {"x0": (np.ones((2, 2)), [NAN, 1.0], "abc")})
case("sde.simulate.sgd_sde", {"lam": [1.0], "s": [1.0], "eta": 0.1},
     {"lam": POSITIVE_1D, "s": ([1.0, 1.0], [-1.0], [NAN])})
ADAPT = {"lam": [1.0], "s": [1.0], "sigma": 1.0, "eta": 0.1, "eps": 1e-8}
case("sde.simulate.rmsprop_sde", {**ADAPT, "beta": 0.9}, {"lam": POSITIVE_1D})
case("sde.simulate.adam_sde", {**ADAPT, "b1": 0.9, "b2": 0.99}, {"lam": POSITIVE_1D})
case("sde.svag.svag_coefficients", {"l": 2.0}, {"l": (0.5, NAN, "x")})
case("sde.svag.SVAGLoss", {"loss_fn": sq_loss, "c1": 1.0, "c2": 0.0, "l": 1.0},
     {"c1": (NAN, "x"), "l": (0.5, NAN)})
case("sde.svag.svag", {"loss_fn": sq_loss, "l": 2.0}, {"l": (0.5, NAN, "x")})
case("sde.svag.adaptive_svag", {"loss_fn": sq_loss, "l": 2.0}, {"l": (0.5, NAN, "x")})
case("sde.svag.TwoBatches", lambda: {"source": dltheory.data.FullBatch(None)},
     {"source": (3, None)})

# -- normalization (its owner fixes the rows marked xfail) -----------------------------


def _si_model():
    from dltheory.normalization import scale_invariant_mlp

    return scale_invariant_mlp((2, 2, 2))


def _config():
    from dltheory.normalization import Config

    return Config(0.1, 0.1)


WD = (-0.1, NAN, "x")
PARAMS = {"w": np.ones((2, 2))}
_preset("normalization.experiments.NormSizes")
_preset("normalization.paper.CifarSizes")
case("normalization.core.ScaleInvariantMLP", lambda: {"sizes": (2, 2, 2), "rngs": rngs()},
     {"sizes": ((2,), 3, (2, 0, 2)), "normalization": ("bogus",)})
case("normalization.core.angular_update", {"before": PARAMS, "after": PARAMS},
     {"after": ({"w": np.ones((2, 3))}, {"u": np.ones((2, 2))}, 3),
      "before": ({"w": np.zeros((2, 2))},)},
     names={"after": ("after", "before")})
case("normalization.core.check_lr_wd", {"eta": 0.1, "wd": 0.1}, {"wd": WD + (0.0, 20.0)})
case("normalization.core.check_scale_invariance",
     lambda: {"loss_fn": lambda m, b: m(b).sum(), "model": _si_model(), "batch": np.ones((2, 2))},
     {"scales": ([-1.0], [NAN], 3)})
case("normalization.core.effective_lr", {"eta": 0.1, "params": PARAMS}, {"params": ({}, "abc")})
case("normalization.core.equilibrium_norm_prediction", {"eta": 0.1, "wd": 0.1, "grad_sq_unit": 1.0},
     {"wd": WD, "grad_sq_unit": (0.0, NAN, -1.0)})
case("normalization.core.exp_lr_momentum_root", {"eta": 0.1, "wd": 0.1}, {"wd": WD})
case("normalization.core.exponential_lr_schedule", {"eta": 0.1, "wd": 0.1}, {"wd": WD})
case("normalization.core.group_sq_norms", {"params": PARAMS}, {"params": ({}, "abc", 3)})
case("normalization.core.groups", {"params": PARAMS}, {"params": ({}, "abc", 3)})
case("normalization.core.intrinsic_lr", {"eta": 0.1, "wd": 0.1}, {"wd": WD + (0.0,)})
case("normalization.core.scale_invariant_mlp", {"sizes": (2, 2, 2)},
     {"sizes": ((2,), (2, 1, 2), 3), "normalization": ("bogus",), "dtype": ("bogus", np.int32)})
case("normalization.core.sgd_exponential_lr", {"learning_rate": 0.1, "weight_decay": 0.1})
case("normalization.core.sgd_wd", {"learning_rate": 0.1, "weight_decay": 0.1},
     {"phase_factor": POSITIVE, "phase_steps": (-1, 1.5)})
case("normalization.experiments.Config", {"eta": 0.1, "wd": 0.1},
     {"wd": WD, "phase_factor": POSITIVE, "phase_steps": (-1, 1.5)})
SWEEP = {"steps": 2, "batch_size": 2, "width": 2, "log_every": 1}
case("normalization.experiments.equilibrium_sweep", lambda: {"configs": [_config()], **SWEEP},
     {"configs": ([], 3), "seeds": ([], [-1])})
case("normalization.experiments.equilibrium_time",
     {"steps": np.arange(10), "effective_lr": np.ones(10)},
     {"steps": (np.ones((2, 2)),), "effective_lr": (np.ones(3), "abc"), "tail": (0.0, 1.5, NAN)},
     names={"effective_lr": ("effective_lr", "steps")})
case("normalization.experiments.fast_equilibrium",
     {"products": (0.01, 0.02), "seeds": (0,), **SWEEP},
     {"products": ((), (-0.1,), 3), "seeds": ((), (-1,))})
case("normalization.experiments.moving_average", {"values": np.ones(4), "window": 2},
     {"values": ("abc", np.ones((2, 2, 2)))})
case("normalization.experiments.gradient_scaling", {"scales": (1.0,), "examples": 2, "width": 2},
     {"scales": ((), (-1.0,), (NAN,), 3)})
case("normalization.experiments.norm_growth", {"etas": (0.1,), "steps": 2, "examples": 2, "width": 2},
     {"etas": ((), (-0.1,), 3)})
case("normalization.experiments.run_configs",
     lambda: {"configs": [_config()], "steps": 2, "init": None, "train_data": XBATCH,
              "test_data": XBATCH, "batch_size": 2, "log_every": 1},
     {"configs": ([], 3), "seeds": ([], [-1])})
case("normalization.experiments.wd_vs_exponential",
     {"eta": 0.1, "wd": 0.1, "steps": 2, "batch_size": 2, "probe": 2, "width": 2},
     {"wd": WD})
case("normalization.experiments.xent", lambda: {"model": mlp(), "batch": XBATCH},
     {"batch": ({}, 3)})
case("normalization.figures.equilibrium_explorer", {"steps": 2})
case("normalization.figures.equilibrium_figure", {"index": 0}, skip=("fig",))
case("normalization.figures.growth_explorer", {"steps": 2})
case("normalization.figures.growth_figure", {"pairs": None, "index": 0},
     {"res": (3,)}, skip=("fig",))
case("normalization.figures.growth_grid", {"steps": 2, "width": 2, "examples": 2})
case("normalization.figures.widget_grid", {"steps": 2, "batch_size": 2, "width": 2})
case("normalization.paper.cifar_equilibrium", lambda: {"root": NO_CIFAR},
     {"configs": ([], 3), "sizes": (3,)})


# -- normalization.rate and normalization.momentum ---------------------------------------
case("normalization.rate.sgd_rate", {"etas": (0.1,), "steps": 2, "seeds": (0,), "width": 2,
                                     "log_every": 1, "fit_from": 1, "sharpness_iters": 1},
     {"etas": ((), (-0.1,), (NAN,), "a"), "model": ("bogus", 3), "fit_from": (-1, 1.5, "2"),
      "batch_size": (0, -1, 1.5)})
case("normalization.momentum.angular_update_momentum", {"eta": 0.1, "wd": 0.1},
     {"momentum": (-0.1, 1.0, NAN, "0.5")})
case("normalization.momentum.sgd_wd_angles", {"learning_rate": 0.1, "weight_decay": 0.1},
     {"momentum": (-0.1, 1.0, NAN, "0.5"), "blocks": ((0, 1), (1,), "ab", (1.5, 1))})
case("normalization.momentum.momentum_angular_update",
     {"momenta": (0.0,), "steps": 2, "settle": 1, "seeds": (0,), "width": 2, "block_steps": 1},
     {"momenta": ((), (-0.1,), (1.0,), "a"), "settle": (-1, 3, 1.5)})
RECORDS |= {"normalization.rate.SgdRateResult", "normalization.momentum.MomentumAngleResult"}


# -- sharpness.label_noise ---------------------------------------------------------------
def ln_sizes():
    from dltheory.sharpness.label_noise import LabelNoiseSizes

    return LabelNoiseSizes(n=3, d=6, steps=2, replicas=1, gd_steps=2, ts_steps=2,
                           ts_replicas=1, widget_steps=2, sc_dims=(4,), sc_sizes=(2,),
                           sc_fractions=(1.0,), sc_seeds=1, sc_bp_seeds=1, sc_steps=2,
                           sc_gd_steps=2)


def ln_problem():
    from dltheory.sharpness.label_noise import sparse_problem

    return sparse_problem(3, 6, 1)


def ln_grid():
    return {"sigmas": (0.0, 1.0), "lrs": (0.001,), "runs": None, "replicas": 1, "flow": None,
            "gd_test": 1.0, "trace0": 1.0, "target": 1.0, "steps": 2}


LN_PARAMS = {"u": np.ones(3), "v": np.ones(3)}
LN_BAD_PARAMS = (3, {}, {"u": np.ones(3), "v": np.ones(2)},
                 {"u": np.full(3, NAN), "v": np.ones(3)}, {"u": "abc", "v": np.ones(3)})
LN_X = np.ones((2, 3))
LN_BAD_X = ("abc", np.ones(3), np.ones((2, 4)), np.full((2, 3), NAN))
_preset("sharpness.label_noise.LabelNoiseSizes")
case("sharpness.label_noise.SparseProblem",
     {"x": np.ones((2, 3)), "y": np.ones(2), "w_star": np.ones(3)},
     {"x": ("abc", np.ones(3), np.full((2, 3), NAN)), "y": (np.ones(3), np.ones((2, 1))),
      "w_star": (np.ones(2), "abc")}, auto=False)
case("sharpness.label_noise.LabelNoise",
     {"x": np.ones((1, 2, 3)), "y": np.ones((1, 2)), "size": np.array([2]),
      "sigma": np.array([1.0]), "weight": np.ones(1)},
     {"x": (np.ones((2, 3)),), "y": (np.ones((1, 3)),),
      "size": (np.array([3]), np.array([0]), np.array([1, 1])),
      "sigma": (np.array([-1.0]), np.array([NAN])), "weight": (np.array([0.0]),),
      "batch_size": COUNT, "noise": ("uniform", 3)}, auto=False)
case("sharpness.label_noise.sparse_problem", {"n": 3, "d": 6}, {"kappa": (7,)})
case("sharpness.label_noise.init_params", {"d": 3}, {"members": (0, 1.5, "2")})
case("sharpness.label_noise.weights", {"params": LN_PARAMS}, {"params": LN_BAD_PARAMS})
case("sharpness.label_noise.predict", {"params": LN_PARAMS, "x": LN_X},
     {"params": LN_BAD_PARAMS, "x": LN_BAD_X})
case("sharpness.label_noise.loss", {"params": LN_PARAMS, "batch": {"x": LN_X, "y": np.ones(2)}},
     {"params": LN_BAD_PARAMS,
      "batch": (3, {}, {"x": LN_X}, {"x": LN_X, "y": np.ones(3)},
                {"x": LN_X, "y": np.ones(2), "mask": np.ones(3)},
                {"x": LN_X, "y": np.full(2, NAN)}, {"x": "abc", "y": np.ones(2)})})
case("sharpness.label_noise.hessian_trace", {"params": LN_PARAMS, "x": LN_X},
     {"params": LN_BAD_PARAMS, "x": LN_BAD_X, "mask": (np.ones(3), "abc")})
case("sharpness.label_noise.test_mse", {"params": LN_PARAMS, "w_star": np.ones(3)},
     {"params": LN_BAD_PARAMS, "w_star": (np.ones(2), "abc", np.full(3, NAN))})
case("sharpness.label_noise.min_l1_interpolant", {"x": LN_X, "y": np.ones(2)},
     {"x": ("abc", np.ones(3), np.full((2, 3), NAN), np.ones((3, 3))),
      "y": (np.ones(3), "abc", np.array([0.0, 1.0]))}, names={"y": ("y",)})
case("sharpness.label_noise.limiting_flow",
     lambda: {"problem": ln_problem(), "params": {"u": np.ones(6), "v": np.ones(6)},
              "s_max": 0.1, "num": 2},
     {"problem": (3, None), "params": LN_BAD_PARAMS + ({"u": np.ones(5), "v": np.ones(5)},),
      "s_max": POSITIVE})
case("sharpness.label_noise.toy_experiment", lambda: {"sizes": ln_sizes()})
case("sharpness.label_noise.time_scale_experiment", lambda: {"sizes": ln_sizes()},
     {"fractions": ((), [-1.0], "abc", [NAN], [[0.5]])})
case("sharpness.label_noise.sample_complexity_experiment", lambda: {"sizes": ln_sizes()})
case("sharpness.label_noise.explorer_grid", lambda: {"sizes": ln_sizes()},
     {"toy": (3,), "replicas": COUNT})
case("sharpness.label_noise.explorer_run",
     {"grid": ln_grid(), "sigma": 1.0, "lr": 0.001, "name": "trace"},
     {"grid": (3, {}), "sigma": (0.3, -0.1, NAN, "x"), "name": ("bogus", 3)}, skip=("sigma",))
case("sharpness.label_noise.explorer_figure", {"grid": ln_grid(), "sigma": 1.0, "lr": 0.001},
     {"grid": (3, {}), "sigma": (0.3, -0.1, NAN, "x")}, skip=("sigma",))
case("sharpness.label_noise.explorer", {"grid": ln_grid()}, {"grid": (3, {})})



# -- sharpness.sam and curvature.hessian_trace ------------------------------------------
@functools.cache
def sam_grid():
    from dltheory.sharpness import sam as S

    return S.toy_grid(20, seeds=1, log_every=10)


def _sam_toy_sizes():
    from dltheory.sharpness.sam import ToySizes

    return ToySizes(steps=2, seeds=1, log_every=1, widget_steps=2, widget_seeds=1)


def _sam_digits_sizes():
    from dltheory.sharpness.sam import DigitsSizes

    return DigitsSizes(n_train=4, width=2, fit_steps=1, steps=1, one_steps=1, seeds=1,
                       log_every=1, one_log_every=1, iters=1, probes=2, final_iters=1,
                       final_probes=2, lr=0.01, one_lr=0.01, rho=0.1)


_SAM_DATA = {"x": np.ones((2, 2)), "y": np.ones(2)}
RHO0 = (-0.1, NAN, INF, "0.1")                 # a radius: >= 0 (0 is gradient descent)

case("curvature.hessian_trace",
     lambda: {"loss_fn": sq_loss, "params": {"w": np.ones(2)}, "batch": None, "probes": 2},
     {"params": ({}, []), "probes": (1, 0, 1.5, "2", np.ones((4, 3)), np.ones((1, 2)))})
case("sharpness.sam.sam", {"learning_rate": 0.1, "rho": 0.1}, {"rho": RHO0}, skip=("rho",))
case("sharpness.sam.sam_optimizer", {"learning_rate": 0.1, "rho": 0.1},
     {"rho": RHO0 + ([0.1, -0.1],), "learning_rate": POSITIVE + ([[0.1]],)},
     skip=("rho",))
case("sharpness.sam.PairedExamples",
     lambda: {"data": {"x": np.zeros((4, 1))}, "batch_size": 2, "size": 4},
     {"size": (-1, 1.5, "4"), "batch_size": COUNT + (5,)})
case("sharpness.sam.run_sam",
     lambda: {"loss_fn": lambda w, b: (w ** 2).sum(), "init": np.zeros(2),
              "data_": _SAM_DATA, "learning_rate": 0.1, "rho": 0.1, "steps": 2},
     {"rho": RHO0 + ([[0.1]],), "seeds": ([], 3, [-1], [1.5]),
      "batch_size": COUNT + (3,), "steps": COUNT}, skip=("rho",))
case("sharpness.sam.toy_F", {"x1": 0.0, "x2": 0.0}, {"x1": ("a", None), "x2": ("a", None)})
case("sharpness.sam.toy_loss", lambda: {"x": np.zeros(4), "batch": {"k": np.arange(2)}},
     {"x": (np.zeros(3), "abcd"), "batch": (3, {"j": 1})})
case("sharpness.sam.toy_curvatures", {"x": np.zeros(4)},
     {"x": (np.zeros(3), [NAN] * 4, "x", np.zeros((2, 3)))})
case("sharpness.sam.sam_residual", {"learning_rate": 0.02, "rho": 0.1, "lam": 4.0},
     {"lam": POSITIVE, "learning_rate": POSITIVE + (1.0,)})
case("sharpness.sam.toy_one_sam_limit", {"learning_rate": 0.02},
     {"learning_rate": POSITIVE + (0.2,)})
case("sharpness.sam.toy_experiment", lambda: {"sizes": _sam_toy_sizes()},
     {"x0": ((1.0, 2.0), "abcd", [NAN] * 4)})
case("sharpness.sam.toy_eta_sweep", lambda: {"sizes": _sam_toy_sizes()},
     {"etas": ((0.02,), (0.02, -0.01), "ab", ())})
case("sharpness.sam.toy_grid", {"steps": 2, "seeds": 1, "log_every": 1},
     {"steps": COUNT + (1,), "seeds": COUNT, "rhos": ((), (-0.1,), "a")})
case("sharpness.sam.toy_figure", lambda: {"grid": sam_grid(), "rho": 0.1},
     {"rho": POSITIVE + (0.3,), "batch": ("both", 3), "grid": (3, {"x": 1}), "fig": (3,)})
case("sharpness.sam.toy_explorer", lambda: {"grid": sam_grid()}, {"grid": (3, {"steps": []})})
case("sharpness.sam.parity_digits", {"n": 4}, {"n": COUNT + (1, 10**6)})
case("sharpness.sam.parity_loss", lambda: {"model": lambda x: x, "batch": _SAM_DATA},
     {"batch": (3, {"x": 1})})
case("sharpness.sam.example_curvatures",
     lambda: {"model": mlp(), "batch": _SAM_DATA},
     {"batch": (3, {"y": 1})})
case("sharpness.sam.digits_experiment", lambda: {"sizes": _sam_digits_sizes()})
_preset("sharpness.sam.ToySizes")
_preset("sharpness.sam.DigitsSizes")
RECORDS |= {"curvature.TraceEstimate", "sharpness.sam.SAMRun", "sharpness.sam.ToyResult",
            "sharpness.sam.EtaResult", "sharpness.sam.DigitsResult"}


# -- normalization.robust ----------------------------------------------------------------
@functools.cache
def rt_grid():
    from dltheory.normalization import robust as R

    return R.robust_grid(R.RobustSizes(steps=2, log_every=1, seeds=1, width=2, batch_size=2,
                                       eta=0.1, wd=0.05))


_RT_TOY = {"x": np.ones((2, 2)), "y": np.ones(2), "k": np.ones(2)}
case("normalization.robust.clip_ratio", {"eta": 0.1, "wd": 0.05},
     {"wd": POSITIVE, "c": POSITIVE})
case("normalization.robust.relative_clip", {"ratio": 1.0}, {"ratio": (-1.0, NAN, INF, "1")},
     skip=("ratio",))
case("normalization.robust.robust_sgd", {"learning_rate": 0.1},
     {"weight_decay": (-1.0, NAN, "a"), "clip_ratio": (-1.0, NAN, "a"),
      "loss_scale": POSITIVE})
case("normalization.robust.clipped_steps",
     lambda: {"opt_state": __import__("dltheory.normalization.robust", fromlist=["x"])
              .robust_sgd(0.1).init({"w": np.ones(2)})}, {"opt_state": ((), 3)})
case("normalization.robust.recovery_steps", {"c": 10.0, "eta": 0.1, "wd": 0.05},
     {"c": POSITIVE, "wd": POSITIVE})
case("normalization.robust.toy_data", {"n": 4, "d": 2}, {"n": COUNT + (1,), "d": COUNT + (1,)})
case("normalization.robust.toy_loss", lambda: {"w": np.ones(2), "batch": _RT_TOY},
     {"batch": (3, {"x": 1})})
case("normalization.robust.lemma_scalings", {"steps": 2},
     {"c": POSITIVE, "wd": POSITIVE, "batch_size": COUNT + (1000,)})
case("normalization.robust.robust_grid", {}, {"sizes": (3, "quick")})
case("normalization.robust.Setting", {"init_scale": 1.0, "weight_decay": True, "clip": False},
     {"init_scale": POSITIVE, "loss_scale": POSITIVE}, skip=("weight_decay",))
case("normalization.robust.robust_figure",
     lambda: {"res": rt_grid(), "init_scale": 1.0, "weight_decay": True, "clip": False},
     {"res": (3,), "init_scale": (3.0,), "fig": (3,)}, skip=("weight_decay",))
case("normalization.robust.robust_explorer", lambda: {"res": rt_grid()}, {"res": (3, "a")})
_preset("normalization.robust.RobustSizes")
RECORDS |= {"normalization.robust.LemmaResult", "normalization.robust.RobustResult"}


# -- sharpness.edge_of_stability ---------------------------------------------------------
_EOS = "sharpness.edge_of_stability."


@functools.cache
def eos_grid():
    from dltheory.sharpness.edge_of_stability import ToySizes, toy_grid

    return toy_grid(ToySizes(steps=2, log_every=1, widget_steps=2, etas=(0.1,), wds=(0.01,),
                             widget_etas=(0.1, 0.2), widget_wds=(0.01, 0.02)))


def _eos_toy_sizes():
    from dltheory.sharpness.edge_of_stability import ToySizes

    return ToySizes(steps=2, log_every=1, widget_steps=2, etas=(0.1,), wds=(0.01,),
                    widget_etas=(0.1, 0.2), widget_wds=(0.01, 0.02))


case(_EOS + "toy.toy_a", {"phi": 0.0}, {"phi": ("a", None, True)})
case(_EOS + "toy.toy_loss", {"w": np.ones(3)}, {"w": (np.ones(2), np.ones((3, 3)), "abc")})
case(_EOS + "toy.entry_steps", {"start": 0.3, "eta": 0.1, "wd": 0.01},
     {"start": (0.0, 2.5, NAN, "a"), "wd": POSITIVE})
case(_EOS + "toy.toy_prediction", {"times": np.linspace(0, 2, 5), "start": 0.3, "phi0": 0.3},
     {"times": (np.ones((2, 2)), -np.ones(3), "a"), "start": (0.0, 2.5, NAN, "a"),
      "phi0": (NAN, INF, "a")})
case(_EOS + "toy.toy_experiment", lambda: {"sizes": _eos_toy_sizes()})
case(_EOS + "toy.toy_grid", lambda: {"sizes": _eos_toy_sizes()})
case(_EOS + "toy.toy_figure", lambda: {"grid": eos_grid(), "eta": 0.1, "wd": 0.01},
     {"grid": (3, {"x": 1}), "eta": POSITIVE + (0.3,), "wd": POSITIVE + (0.5,), "fig": (3,)})
case(_EOS + "toy.toy_explorer", lambda: {"grid": eos_grid()}, {"grid": (3, {"x": 1})})
case(_EOS + "nets.digits_experiment", {}, {"sizes": (3, "quick")})
case(_EOS + "nets.normalized_experiment", {}, {"sizes": (3, "quick")})
_preset(_EOS + "toy.ToySizes")
_preset(_EOS + "nets.DigitsSizes")
_preset(_EOS + "nets.NormSizes")
RECORDS |= {_EOS + "toy.ToyResult", _EOS + "nets.DigitsResult", _EOS + "nets.NormResult"}


# -- exercises and the newer sde modules (their owners fix the rows marked xfail) -------
case("exercises.check", {"answer": 1.0}, {"label": ("bogus", 3)})
case("exercises.digests", {"label": "x", "values": [1.0]},
     {"values": ([NAN], 3, "abc"), "rel": POSITIVE, "label": (3,)})
case("exercises.NumericAnswer",
     {"label": "x", "what": "a number", "digests": (("abc",),), "hint": "h"},
     {"rel": POSITIVE, "digests": (3, ()), "label": (3, "")})
case("exercises.CodeAnswer",
     {"label": "x", "what": "a function", "reference": "dltheory.sde.svag:svag_coefficients",
      "cases": ((2,),), "hint": "h"},
     {"reference": ("nocolon", 3, "dltheory.nomodule:f"), "cases": (3, ()),
      "rtol": NONNEGATIVE, "label": (3, "")})
case("sde.adam.adam_sde_weak_error",
     {"etas": (0.2, 0.1), "horizon": 0.04, "paths": 2, "em_substeps": 1, "log_points": 1},
     {"etas": ((), (-0.1,), 3), "em_paths": COUNT})
MOMENT = {"lam": [1.0], "s": [1.0], "x0": [1.0], "times": [0.0, 0.1], "sigma": 1.0,
          "eta": 0.1, "eps": 1e-8}
case("sde.moments.rmsprop_sde_second_moment", {**MOMENT, "beta": 0.9},
     {"lam": POSITIVE_1D, "times": ([-1.0], [NAN], "abc"), "x0": ([NAN], [1.0, 1.0]),
      "u0": NONNEGATIVE})
case("sde.moments.adam_sde_second_moment", {**MOMENT, "b1": 0.9},
     {"lam": POSITIVE_1D, "times": ([-1.0], [NAN], "abc"), "x0": ([NAN], [1.0, 1.0]),
      "noise_scale": NONNEGATIVE})


# --------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------

#: A message says what is allowed when it has one of these.
RULE_WORDS = ("must", "needs", "need ", "expected", "one of", "allowed", "required")


def _names_argument(msg: str, name: str) -> bool:
    """``name`` in the message: in backticks (`` `name` ``, `` `name[i]` ``, `` `name.f` ``,
    `` `name=...` ``), or, for names longer than two letters, as a whole word."""
    if re.search(r"`" + re.escape(name) + r"[`\[.=]", msg):
        return True
    return len(name) > 2 and re.search(r"(?<![\w.])" + re.escape(name) + r"(?!\w)", msg) is not None


def _shows_value(msg: str, value: Any, err: Exception) -> bool:
    """The value received is in the message (scalars only: an array is described)."""
    if not isinstance(value, (bool, numbers.Number, str, type(None))):
        return True
    if isinstance(value, float) and math.isnan(value):
        return "nan" in msg.lower()
    shown = {repr(value), str(value)}
    if isinstance(value, float) and value.is_integer():
        shown.add(str(int(value)))
    if isinstance(err, TypeError):
        shown.add(type(value).__name__)
    return any(s in msg for s in shown) or (value == "" and "''" in msg)


def _has_nan(out: Any, depth: int = 0) -> bool:
    if depth > 4:
        return False
    if isinstance(out, float):
        return math.isnan(out)
    if hasattr(out, "dtype") and hasattr(out, "shape"):
        a = np.asarray(out)
        return a.dtype.kind in "fc" and bool(np.isnan(a).any())
    if isinstance(out, (list, tuple)):
        return any(_has_nan(v, depth + 1) for v in out)
    if isinstance(out, dict):
        return any(_has_nan(v, depth + 1) for v in out.values())
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return any(_has_nan(getattr(out, f.name), depth + 1) for f in dataclasses.fields(out))
    return False


@pytest.mark.parametrize("row", ROWS)
def test_bad_input_is_rejected(row: Row, monkeypatch):
    fn = _resolve(row.target)
    kwargs = row.base()
    if row.env:
        monkeypatch.setenv(row.arg, row.value)
    else:
        kwargs[row.arg] = row.value
    call = f"{row.target}({row.arg}={_short(row.value, 60)})"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = row.call(fn, kwargs) if row.call else fn(**kwargs)
            if hasattr(out, "__enter__") and hasattr(out, "__exit__") and \
                    not hasattr(out, "savefig"):  # a context manager checks on entry
                with out:
                    pass
        except (ValueError, TypeError) as err:
            msg = str(err)
            assert any(_names_argument(msg, n) for n in row.names), \
                f"{call}: the message does not name `{row.arg}`: {type(err).__name__}: {msg}"
            assert any(w in msg for w in RULE_WORDS), \
                f"{call}: the message does not say what is allowed: {msg}"
            assert _shows_value(msg, row.value, err), \
                f"{call}: the message does not show the value received: {msg}"
            return
        except Exception as err:  # noqa: BLE001 - the point: no foreign errors
            pytest.fail(f"{call} raised {type(err).__module__}.{type(err).__name__} instead "
                        f"of a clear ValueError or TypeError: {err}")
    pytest.fail(f"{call} returned {'NaN ' if _has_nan(out) else ''}without an error: "
                f"{_short(out, 80)}")


def test_every_public_callable_has_bad_input_rows():
    """A new public function or class needs its rows here (or a justified exemption)."""
    public = set(public_callables())
    exempt = NO_INPUT | ANY_INPUT | EXCEPTIONS | RECORDS
    missing = sorted(public - COVERED - exempt)
    assert not missing, ("public callables without bad-input rows in tests/test_bad_input.py "
                         f"(add a case(...) for each): {missing}")
    stale = sorted((COVERED | exempt) - public)
    assert not stale, f"rows or exemptions for names that are not public callables: {stale}"
    both = sorted(COVERED & exempt)
    assert not both, f"exempted and covered at once: {both}"


def test_pending_marks_name_real_rows():
    """Every entry of :data:`PENDING` marks at least one row (no stale or misspelt mark)."""
    ids = {p.values[0].target: set() for p in ROWS}
    for p in ROWS:
        r = p.values[0]
        ids[r.target] |= {r.arg, r.id.split(":", 1)[1]}
    stale = [f"{t}: {k}" for t, marks in PENDING.items() for k in marks
             if k not in ids.get(t, set())]
    assert not stale, f"PENDING entries that mark no row: {stale}"


def test_exemptions_are_what_they_claim():
    public = public_callables()
    for name in NO_INPUT:
        assert not _parameters(public[name]), f"{name} takes input: give it rows"
    for name in EXCEPTIONS:
        assert issubclass(public[name], BaseException), name
    returned = " ".join(str(inspect.signature(f).return_annotation) for f in public.values()
                        if not inspect.isclass(f))
    for name in RECORDS:
        cls = public[name]
        assert inspect.isclass(cls), name
        assert re.search(rf"\b{cls.__name__}\b", returned), \
            f"{name} is not returned by a public function: it is input, give it rows"


def test_every_preset_passes_its_own_validation():
    """The presets' checks accept every preset the book ships (and its capped version)."""
    from dltheory.config import Preset

    presets = [c for c in public_callables().values()
               if inspect.isclass(c) and issubclass(c, Preset) and c is not Preset]
    assert len(presets) >= 8
    for cls in presets:
        for which in ("quick", "paper"):
            p = cls.for_scale(which)
            p.capped(3)
