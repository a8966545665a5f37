"""Compute budgets of the ``paper`` presets, from XLA's analysis of their compiled programs.

For every chapter, :func:`estimate` builds the chapter's dominant compiled programs (its
training chunks, simulations and sweeps, with their real vmapped batch of runs) at the
``paper`` preset's shapes, compiles them without running them, and reads

- the floating-point operations of one step from the compiled program's
  ``cost_analysis()`` (XLA counts the body of a ``lax.scan`` loop once: one step of the
  innermost loop plus one logging record; for the training engine the record's cost is
  measured apart, as what an evaluation set of one example saves, and spread over its
  ``log_every`` steps), and
- the peak device memory from its ``memory_analysis()``: argument + output + temporary
  bytes.

A program's total is its flops per step times the steps the preset runs; its time on a
GPU is estimated as ::

    seconds = flops / (peak_flops(dtype) * UTILIZATION) + steps * STEP_OVERHEAD_S

with the peak float32 and float64 throughput of the GPU (:data:`GPUS`: NVIDIA T4, 8.1
and 0.25 TFLOP/s; NVIDIA H200, 67 and 34 TFLOP/s), an assumed utilization
(:data:`UTILIZATION`, 0.3: small matrix products rarely reach the peak) and an overhead
per sequential step of a long ``lax.scan`` of small operations (:data:`STEP_OVERHEAD_S`,
10 microseconds: a loop iteration launches a few kernels whatever their size). These are
estimates from XLA's analysis, not measurements; real runs also pay compilation (tens of
seconds per program) and host-side data preparation.

Compiling every program at the paper's shapes takes minutes on a CPU, so the results are
kept in ``paper_budgets.json`` beside this module, written by ``python -m dltheory.paper
--write`` (``make estimates``); :func:`budget` and :func:`show` read that file.

:func:`measure` runs a chapter's preset on the default device instead, timing each of the
same programs (compiling apart) and reading the device's peak memory;
``python -m dltheory.paper --measure`` measures every chapter, each in its own process,
with the CIFAR-10 runs capped (:data:`MEASURE_CAPS`) and extended at their measured rate.
One such measurement, on an NVIDIA H200, is kept in ``paper_measured.json``
(:func:`measured`, :func:`show_measured`).

Example::

    from dltheory import paper
    paper.show("sde/sgd_sde")          # the committed estimate, as a table
    b = paper.estimate("preliminaries/gradient_descent")   # computed now
    m = paper.measure("lowrank/greedy_low_rank")           # run and timed now
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import os
import pathlib
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from dltheory._jit import XLA_DEFAULT_OPTIONS

__all__ = ["GPU", "GPUS", "UTILIZATION", "STEP_OVERHEAD_S", "MEMORY_LIMIT_BYTES",
           "BUDGETS_FILE", "CHAPTERS", "ProgramBudget", "Budget", "ProgramRun",
           "Measurement", "MEASURE_CAPS", "estimate", "measure", "measure_all",
           "measured_table", "Measured", "measured", "measured_summary",
           "measured_capped_sentence", "show_measured", "MEASURED_FILE",
           "budget", "budgets", "table", "show",
           "main"]


@dataclasses.dataclass(frozen=True)
class GPU:
    """A GPU of the estimates: its name, peak throughput (FLOP/s) and memory (bytes)."""

    name: str
    fp32: float
    fp64: float
    memory: float

    def __post_init__(self):
        from dltheory import validation as V

        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"argument `name` must be a non-empty string; got {self.name!r}")
        for field in ("fp32", "fp64", "memory"):
            V.check_positive(field, getattr(self, field))


#: The two GPUs of the estimates, Colab's free NVIDIA T4 and one NVIDIA H200.
GPUS = {"T4": GPU("NVIDIA T4 (16 GB)", 8.1e12, 0.25e12, 16e9),
        "H200": GPU("NVIDIA H200 (141 GB)", 67e12, 34e12, 141e9)}
#: Assumed fraction of the peak throughput that the programs reach.
UTILIZATION = 0.3
#: Assumed time per sequential step of a ``lax.scan`` loop (kernel launches), seconds.
STEP_OVERHEAD_S = 10e-6
#: Every paper preset must fit in this much device memory (a 16 GB T4, less the runtime).
MEMORY_LIMIT_BYTES = 15e9
#: The committed estimates.
BUDGETS_FILE = pathlib.Path(__file__).with_name("paper_budgets.json")
#: The committed measurements on a GPU (``python -m dltheory.paper --measure --json``).
MEASURED_FILE = pathlib.Path(__file__).with_name("paper_measured.json")


def _check_label(label: Any) -> None:
    if not isinstance(label, str):
        raise TypeError(f"argument `label` must be a string; got {label!r}")


@dataclasses.dataclass(frozen=True)
class ProgramBudget:
    """One compiled program of a chapter.

    Attributes:
      label: what it computes.
      flops_per_step: XLA's floating-point operations of one step (one loop body).
      peak_bytes: argument + output + temporary device memory of the program.
      steps: sequential steps the preset runs it for (summed over its calls).
      dtype: ``"float32"`` or ``"float64"`` (which peak throughput applies).
    """

    label: str
    flops_per_step: float
    peak_bytes: float
    steps: int
    dtype: str

    def __post_init__(self):
        from dltheory import validation as V

        _check_label(self.label)
        V.check_nonnegative("flops_per_step", self.flops_per_step)
        V.check_nonnegative("peak_bytes", self.peak_bytes)
        V.check_int("steps", self.steps, minimum=1)
        V.check_choice("dtype", self.dtype, ("float32", "float64"))

    @property
    def flops(self) -> float:
        """The total floating-point operations, ``flops_per_step * steps``."""
        return self.flops_per_step * self.steps

    def seconds(self, gpu: str) -> float:
        """Estimated seconds on ``gpu`` (a key of :data:`GPUS`), see the module docstring."""
        g = _gpu(gpu)
        peak = g.fp64 if self.dtype == "float64" else g.fp32
        return self.flops / (peak * UTILIZATION) + self.steps * STEP_OVERHEAD_S


@dataclasses.dataclass(frozen=True)
class Budget:
    """The estimated compute budget of one chapter's ``paper`` preset.

    Attributes:
      chapter: the chapter's key (see :data:`CHAPTERS`).
      programs: its dominant compiled programs.
    """

    chapter: str
    programs: tuple[ProgramBudget, ...]

    @property
    def flops(self) -> float:
        """Total floating-point operations of all programs."""
        return float(sum(p.flops for p in self.programs))

    @property
    def peak_bytes(self) -> float:
        """The largest peak memory of one program (they run one after another)."""
        return float(max(p.peak_bytes for p in self.programs))

    def seconds(self, gpu: str) -> float:
        """Estimated seconds of all programs on ``gpu`` (a key of :data:`GPUS`)."""
        return float(sum(p.seconds(gpu) for p in self.programs))

    def to_dict(self) -> dict:
        return {"chapter": self.chapter,
                "programs": [dataclasses.asdict(p) for p in self.programs]}

    @classmethod
    def from_dict(cls, d: dict) -> Budget:
        return cls(d["chapter"], tuple(ProgramBudget(**p) for p in d["programs"]))

    def table(self) -> str:
        """A Markdown table: one row per program, then the total."""
        rows = ["| program | steps | GFLOP | peak memory | T4 | H200 |",
                "|:--|--:|--:|--:|--:|--:|"]
        for p in self.programs:
            rows.append(f"| {p.label} ({p.dtype}) | {p.steps:,} | {p.flops / 1e9:,.0f} | "
                        f"{_bytes(p.peak_bytes)} | {_duration(p.seconds('T4'))} | "
                        f"{_duration(p.seconds('H200'))} |")
        rows.append(f"| **total** | | **{self.flops / 1e9:,.0f}** | "
                    f"**{_bytes(self.peak_bytes)}** | **{_duration(self.seconds('T4'))}** | "
                    f"**{_duration(self.seconds('H200'))}** |")
        return "\n".join(rows)


@dataclasses.dataclass(frozen=True)
class ProgramRun:
    """One compiled program of a chapter, run and timed (see :func:`measure`).

    Attributes:
      label: what it computes (the label of the matching :class:`ProgramBudget`).
      steps: sequential steps it ran (summed over its calls).
      seconds: its execution time until its results were ready, compiling left out.
      compile_seconds: the time spent compiling during its calls.
    """

    label: str
    steps: int
    seconds: float
    compile_seconds: float

    def __post_init__(self):
        from dltheory import validation as V

        _check_label(self.label)
        V.check_int("steps", self.steps, minimum=1)
        V.check_nonnegative("seconds", self.seconds)
        V.check_nonnegative("compile_seconds", self.compile_seconds)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """A chapter's ``paper`` preset, run on a device and timed (see :func:`measure`).

    Attributes:
      chapter: the chapter's key (see :data:`CHAPTERS`).
      device: the device kind JAX ran on, e.g. ``"NVIDIA H200"``.
      jax: the jax version.
      max_steps: the step and epoch cap it ran under (``None``: the full preset).
      capped: the text of the labels of the programs that ran capped (``""``: all).
      seconds: wall time of all of the preset's computations: compiling, data
        preparation and the programs.
      compile_seconds: the part of ``seconds`` spent compiling.
      peak_bytes: the device's peak memory in use (``None`` where the backend does not
        report it, as on a CPU).
      programs: the timed programs, in the order they ran.
    """

    chapter: str
    device: str
    jax: str
    max_steps: int | None
    capped: str
    seconds: float
    compile_seconds: float
    peak_bytes: float | None
    programs: tuple[ProgramRun, ...]

    def full_seconds(self, budget: Budget | None = None) -> float | None:
        """The time of the whole preset: :attr:`seconds` when it ran in full; for a capped
        run, :attr:`seconds` plus each program's remaining steps at its measured seconds
        per step (the steps of the full preset from ``budget``, by default the committed
        estimate). ``None`` when a timed program has no match among the budget's."""
        if self.max_steps is None:
            return self.seconds
        pairs = self._matched(budget)
        if pairs is None:
            return None
        return self.seconds + sum(r.seconds * (p.steps / r.steps - 1.0)
                                  for p, r in pairs if r.steps)

    def _matched(self, budget: Budget | None) -> list[tuple[ProgramBudget, ProgramRun]] | None:
        """Each timed program with the budget's program of the same label; ``None`` when
        one has none. (Programs of the budget that are not timed, such as a curvature
        evaluation, have no pair.)"""
        b = budgets().get(self.chapter) if budget is None else budget
        if b is None:
            return None
        by_label = {p.label: p for p in b.programs}
        if any(r.label not in by_label for r in self.programs):
            return None
        return [(by_label[r.label], r) for r in self.programs]

    def estimated_seconds(self, gpu: str = "H200", budget: Budget | None = None
                          ) -> float | None:
        """The time model's estimate (see the module docstring) of the programs as they
        ran, at their measured steps, on ``gpu``: compare with the sum of their
        :attr:`ProgramRun.seconds`. ``None`` when a timed program has no match among the
        budget's."""
        pairs = self._matched(budget)
        if pairs is None:
            return None
        return float(sum(dataclasses.replace(p, steps=max(r.steps, 1)).seconds(gpu)
                         for p, r in pairs))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Measurement:
        d = dict(d)
        d["programs"] = tuple(ProgramRun(**p) for p in d["programs"])
        return cls(**d)


def _gpu(gpu: Any) -> GPU:
    if gpu not in GPUS:
        raise ValueError(f"argument `gpu` must be one of {sorted(GPUS)}; got {gpu!r}")
    return GPUS[gpu]


def _bytes(b: float) -> str:
    return f"{b / 1e9:.2f} GB" if b >= 1e8 else f"{b / 1e6:.1f} MB"


def _duration(s: float) -> str:
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


# --------------------------------------------------------------------------------------
# Capturing a program without running it
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Captured:
    flops: float
    peak_bytes: float
    steps: int
    dtype: str
    name: str = ""  # a program that is no training loop: what it computes


def _cost(compiled: Any) -> tuple[float, float]:
    """(flops, peak bytes) of a compiled program; cost_analysis is a dict or a list of one
    dict depending on the jax version, and memory_analysis may be None."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    flops = float((cost or {}).get("flops", 0.0))
    mem = compiled.memory_analysis()
    peak = 0.0
    if mem is not None:
        peak = float(sum(getattr(mem, f, 0) or 0 for f in
                         ("argument_size_in_bytes", "output_size_in_bytes",
                          "temp_size_in_bytes")) - (getattr(mem, "alias_size_in_bytes", 0) or 0))
    return flops, peak


def _dtype(tree: Any) -> str:
    leaves = [a for a in jax.tree.leaves(tree) if hasattr(a, "dtype")]
    return "float64" if any(str(a.dtype) == "float64" for a in leaves) else "float32"


def _analyse(fn: Callable, args: tuple, kwargs: dict, steps: int, out: list,
             name: str = "", fill: float = 0.0) -> Any:
    """Compile ``fn`` at ``args`` (no run), record it, return ``fill`` in its output
    shapes."""
    lowered = fn.lower(*args, **kwargs)
    # the estimates describe XLA's default compilation, a GPU's, not the package's CPU
    # options (dltheory._jit), whatever the backend that makes them
    flops, peak = _cost(lowered.compile(dict(XLA_DEFAULT_OPTIONS)))
    out.append(_Captured(flops, peak, int(steps), _dtype(args), name))
    shapes = jax.eval_shape(functools.partial(fn, **kwargs), *args)
    return jax.tree.map(lambda s: np.full(s.shape, fill, s.dtype), shapes)


@contextlib.contextmanager
def _capturing(out: list) -> Iterator[None]:
    """Within this context the package's compiled loops are compiled and analysed but not
    run: each returns zeros of its output's shapes, and its analysis is appended to
    ``out``."""
    import jax.numpy as jnp

    from dltheory.lowrank import flow
    from dltheory.margin import train as mtrain
    from dltheory.sde import simulate
    from dltheory.sharpness import sam
    from dltheory.training import loop, run

    real_drive, real_integrator = run._drive, simulate._integrator
    real_program, real_run = mtrain._program, flow._run
    real_curvature = sam._curvature_fn

    def drive(prog, vmapped, batch_axis, carry, batches, aux, eval_data, keys, steps,
              n_int, per_chunk, n_chunks, progress, desc):
        chunk_fn = loop._compiled(prog, vmapped, batch_axis)
        args = (carry, batches, aux, eval_data, keys, jnp.asarray(steps, jnp.int32),
                jnp.asarray(0, jnp.int32))
        _, rec = _analyse(chunk_fn, args, {}, steps, out)
        if prog.log_every > 1 and jax.tree.leaves(eval_data):
            # The chunk's body is one logging record plus one step, each counted once. The
            # record's cost is what an evaluation set of one example saves; it is paid
            # once every log_every steps.
            small: list[_Captured] = []
            first = jax.tree.map(lambda a: a[:1] if np.ndim(a) >= 1 else a, eval_data)
            _analyse(chunk_fn, args[:3] + (first,) + args[4:], {}, steps, small)
            full = out[-1]
            record = max(full.flops - small[0].flops, 0.0)
            out[-1] = dataclasses.replace(
                full, flops=small[0].flops + record / prog.log_every)
        axis = 1 if vmapped else 0
        recs = {k: np.zeros(v.shape[:axis] + (n_int + 1,) + v.shape[axis + 1:], np.float32)
                for k, v in rec.items() if k != "step"}
        div = np.full(np.shape(carry[3]), -1, np.int32)
        return carry, np.arange(n_int + 1) * prog.log_every, recs, div

    def integrator(drift, diffusion, log_every, n_log):
        fn = real_integrator(drift, diffusion, log_every, n_log)
        return lambda *a: _analyse(fn, a, {}, (n_log - 1) * log_every, out)

    def program(apply, margins, loss, order, n_int, log_every, *rest):
        fn = real_program(apply, margins, loss, order, n_int, log_every, *rest)
        return lambda *a: _analyse(fn, a, {}, n_int * log_every, out)

    def flow_run(*a, **kw):
        return _analyse(real_run, a, kw, kw["n_log"] * kw["log_every"], out)

    def curvature(model, iters, probes):
        # one vmapped evaluation of lambda_1 and tr(H) at a stack of points: its memory
        # grows with the stack; XLA counts its power-iteration loop body once. Ones, not
        # zeros: the experiment divides by the curvature it returns.
        fn = real_curvature(model, iters, probes)
        return lambda *a: _analyse(fn, a, {}, 1, out, name="curvature", fill=1.0)

    run._drive, simulate._integrator, mtrain._program, flow._run = (
        drive, integrator, program, flow_run)
    sam._curvature_fn = curvature
    try:
        yield
    finally:
        run._drive, simulate._integrator, mtrain._program, flow._run = (
            real_drive, real_integrator, real_program, real_run)
        sam._curvature_fn = real_curvature


@dataclasses.dataclass
class _Timed:
    steps: int
    seconds: float
    compile_seconds: float


@contextlib.contextmanager
def _timing(out: list) -> Iterator[None]:
    """Within this context the package's compiled loops run as usual, and each call's
    steps, execution seconds (its results ready, its compiling left out) and compile
    seconds are appended to ``out``: the same loops that :func:`_capturing` analyses."""
    from dltheory.lowrank import flow
    from dltheory.margin import train as mtrain
    from dltheory.sde import simulate
    from dltheory.training import loop, run

    real_drive, real_integrator = run._drive, simulate._integrator
    real_program, real_run = mtrain._program, flow._run

    def timed(fn: Callable, steps: int) -> Callable:
        def call(*a, **kw):
            c0, t0 = loop.compile_seconds(), time.perf_counter()
            result = jax.block_until_ready(fn(*a, **kw))
            dt, dc = time.perf_counter() - t0, loop.compile_seconds() - c0
            out.append(_Timed(int(steps), max(dt - dc, 0.0), dc))
            return result
        return call

    def drive(*a):
        return timed(real_drive, a[8])(*a)

    def integrator(drift, diffusion, log_every, n_log):
        return timed(real_integrator(drift, diffusion, log_every, n_log),
                     (n_log - 1) * log_every)

    def program(apply, margins, loss, order, n_int, log_every, *rest):
        return timed(real_program(apply, margins, loss, order, n_int, log_every, *rest),
                     n_int * log_every)

    def flow_run(*a, **kw):
        return timed(real_run, kw["n_log"] * kw["log_every"])(*a, **kw)

    run._drive, simulate._integrator, mtrain._program, flow._run = (
        drive, integrator, program, flow_run)
    try:
        yield
    finally:
        run._drive, simulate._integrator, mtrain._program, flow._run = (
            real_drive, real_integrator, real_program, real_run)


#: While :func:`measure` runs, the list its chapter's program timings go to.
_MEASURING: list[list[ProgramRun] | None] = [None]
#: While :func:`measure` runs: its step cap, and the text of the labels it caps.
_MEASURE_CAP: list[tuple[int | None, str]] = [(None, "")]


def _capped(arg: Any, cap: int) -> Any:
    from dltheory.config import Preset

    return arg.capped(cap) if isinstance(arg, Preset) else arg


def _programs(label: str, fn: Callable, *args: Any, calls: int = 1, **kwargs: Any
              ) -> list[ProgramBudget]:
    """Run ``fn(*args, **kwargs)`` with its compiled loops captured (see
    :func:`_capturing`); one :class:`ProgramBudget` per program it compiles (``calls``
    times its steps when the same call repeats).

    Within :func:`measure`, ``fn`` runs for real instead (``calls`` times), each of its
    programs is timed (see :func:`_timing`) and recorded, and nothing is returned."""
    runs = _MEASURING[0]
    if runs is not None:
        cap, text = _MEASURE_CAP[0]
        if cap is not None and text and text in label:
            args = tuple(_capped(a, cap) for a in args)
            kwargs = {k: _capped(v, cap) for k, v in kwargs.items()}
        timed: list[_Timed] = []
        with _timing(timed):
            for _ in range(calls):
                fn(*args, **kwargs)
        n = len(timed) // calls
        for i in range(n):  # the same program of each call, summed
            same = timed[i::n] if n else []
            runs.append(ProgramRun(label if n == 1 else f"{label} [{i + 1}/{n}]",
                                   sum(t.steps for t in same),
                                   sum(t.seconds for t in same),
                                   sum(t.compile_seconds for t in same)))
        return []
    out: list[_Captured] = []
    # the captured loops return zeros, which the experiments' summaries divide by
    with _capturing(out), np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - post-processing of zeros may fail: keep what ran
            if not out:
                raise
    loops = [c for c in out if not c.name]
    n = len(loops)
    budgets_ = [ProgramBudget(label if n == 1 else f"{label} [{i + 1}/{n}]", c.flops,
                              c.peak_bytes, c.steps * calls, c.dtype)
                for i, c in enumerate(loops)]
    for name in dict.fromkeys(c.name for c in out if c.name):
        same = [c for c in out if c.name == name]
        k = len(same)
        budgets_ += [ProgramBudget(f"{label}, {name}" + (f" [{i + 1}/{k}]" if k > 1 else ""),
                                   c.flops, c.peak_bytes, c.steps * calls, c.dtype)
                     for i, c in enumerate(same)]
    return budgets_


# --------------------------------------------------------------------------------------
# The chapters: what each paper preset runs
# --------------------------------------------------------------------------------------


def _gradient_descent() -> list[ProgramBudget]:
    from dltheory import preliminaries as P

    s = P.GDSizes.for_scale("paper")
    return (_programs("stability sweep, 3-D quadratic", P.stability_sweep, (0.5, 1.5, 4.0),
                      np.linspace(0.3, 0.7, s.num_lr), s.sweep_steps, rotate=True)
            + _programs("edge of stability, tanh MLP on digits", P.edge_of_stability,
                        (0.05, 0.2, 0.4), s.eos_steps, width=s.eos_width))


def _sgd_sde() -> list[ProgramBudget]:
    from dltheory.sde import experiments as E

    s = E.SDESizes.for_scale("paper")
    out = _programs("SVAG and SDE paths, noisy quadratic", E.svag_quadratic,
                    (1, 2, 4, 8, 16), eta=0.4, horizon=2.0, paths=s.quad_paths,
                    em_substeps=s.em_substeps)
    for l in (1, 2, 4):
        out += _programs(f"SVAG l = {l}, MLP on digits", E.svag_digits, (l,), lr=0.1,
                         batch_size=32, steps=s.digits_steps, seeds=s.digits_seeds,
                         width=s.width)
    out += _programs("linear rule, batches 4, 16, 64, 256", E.lsr_digits, (1, 4, 16, 64),
                     base_batch=4, base_lr=0.02, epochs=s.lsr_epochs, seeds=s.digits_seeds,
                     width=s.width)
    return out + _sde_cifar("sgd")


def _sde_cifar(which: str) -> list[ProgramBudget]:
    from dltheory.sde import cifar

    p = cifar.cifar_preset("paper")
    out = []
    for l in SDE_CIFAR_LEVELS:
        out += _cifar_programs(f"CIFAR-10 ResNet-32, {which}, l = {l}", cifar.cifar_run,
                               p[which], l=l, sizes=p["sizes"])
    return out


#: SVAG levels of the CIFAR-10 runs of the sde chapters' paper sections.
SDE_CIFAR_LEVELS = (1, 2)


def _cifar_programs(label: str, fn: Callable, *args: Any, **kwargs: Any
                    ) -> list[ProgramBudget]:
    """The programs of a CIFAR-10 run, on a stand-in of the real size when the data set
    is not on this machine (only shapes matter here)."""
    import tempfile

    from dltheory import data as D

    try:
        D.cifar10()
        found = True
    except (FileNotFoundError, OSError, RuntimeError):
        found = False
    if found:  # outside the try: an error of the run itself is not a missing data set
        return _programs(label, fn, *args, **kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        D.write_cifar10_standin(tmp, n_train=10_000, n_test=10_000)
        old = os.environ.get("DLTHEORY_DATA")
        os.environ["DLTHEORY_DATA"] = tmp
        try:
            return _programs(label, fn, *args, **kwargs)
        finally:
            if old is None:
                os.environ.pop("DLTHEORY_DATA", None)
            else:
                os.environ["DLTHEORY_DATA"] = old


def _adaptive_sde() -> list[ProgramBudget]:
    from dltheory.sde import experiments as E
    from dltheory.sde import rules as R

    s = E.AdaptiveSizes.for_scale("paper")
    base = R.adam_config(5e-4, 4, b1=0.995, b2=0.9995, eps=1e-8)
    out = _programs("adaptive SVAG and SDE paths, noisy quadratic",
                    E.rmsprop_svag_quadratic, (1, 2, 4), paths=s.quad_paths,
                    em_substeps=s.em_substeps)
    for kappas, noise in (((1, 4, 16), 0.5), ((1, 16), 0.0)):
        out += _programs(f"scaling rules, label noise {noise}", E.scaling_rules_digits,
                         kappas, base=base, epochs=s.epochs, seeds=s.seeds, width=s.width,
                         label_noise=noise)
    return out + _sde_cifar("rmsprop")


def _homogeneous_margin() -> list[ProgramBudget]:
    from dltheory.margin import homogeneous as H

    s = H.HMSizes.for_scale("paper")
    return (_programs("MLP runs on digits", H.homogeneous_experiment, s)
            + _cifar_programs("CIFAR-10 bias-free CNN", H.cnn_margin_run, s))


def _two_layer() -> list[ProgramBudget]:
    from dltheory.margin import two_layer as T

    s = T.LRSizes.for_scale("paper")
    return (_programs("symmetric data", T.symmetric_experiment, s)
            + _programs("widget grid", T.neuron_grid, s.widget_steps)
            + _programs("manipulated data", T.manipulation_experiment, s))


def _greedy() -> list[ProgramBudget]:
    from dltheory import lowrank as L

    s = L.GreedySizes.for_scale("paper")
    problem = L.default_completion(s)
    out = _programs("init-scale sweep, depth 2", L.greedy_experiment, problem,
                    (1e-8, 1e-6, 1e-4, 1e-2), seeds=s.seeds, lr=s.lr, steps=s.steps,
                    log_every=s.log_every)
    for depth in s.depths:
        out += _programs(f"depth {depth}", L.depth_comparison, problem, (depth,),
                         init_scales=(3e-2, 1e-2), lr=s.lr, steps=s.depth_steps)
    return out


def _sensing() -> list[ProgramBudget]:
    from dltheory import lowrank as L

    s = L.SensingSizes.for_scale("paper")
    problem = L.matrix_sensing_problem(s.d, s.eigenvalues, measurements=s.measurements,
                                       seed=0)
    alphas = np.geomspace(1e-8, 1e-2, s.num_alpha)
    return (_programs("plateau sweep", L.incremental_learning, problem, alphas,
                      seeds=np.arange(s.seeds), lr=s.lr, steps=s.steps,
                      log_every=s.log_every)
            + _programs("under-parameterized runs", L.under_parameterized, problem, 2,
                        init_scale=1e-6, steps=s.under_steps))


def _scale_invariance() -> list[ProgramBudget]:
    from dltheory import normalization as N

    s = N.NormSizes.for_scale("paper")
    return (_programs("norm growth, full-batch GD", N.norm_growth, (0.03, 0.3, 3.0, 30.0),
                      s.gd_steps, examples=s.gd_examples, width=s.width)
            + _programs("weight decay vs exponential schedule", N.wd_vs_exponential, 0.1,
                        0.05, s.exp_steps, width=s.width, log_every=5, probe=64, calls=3))


def _intrinsic_lr() -> list[ProgramBudget]:
    from dltheory import normalization as N

    s = N.NormSizes.for_scale("paper")
    C = N.Config
    configs = (C(0.1, 0.1), C(0.4, 0.025), C(0.1, 0.1, init_scale=10.0),
               C(0.1, 0.1, phase_factor=4.0, phase_steps=300), C(1.0, 0.1))
    return (_programs("equilibrium sweep", N.equilibrium_sweep, configs, s.eq_steps,
                      seeds=tuple(range(s.eq_seeds)), batch_size=s.batch_size,
                      width=s.width, log_every=s.log_every)
            + _programs("fast equilibrium", N.fast_equilibrium, s.fast_products,
                        s.fast_steps, eta=0.1, seeds=(0, 1), batch_size=s.batch_size,
                        width=s.width, log_every=s.fast_log_every)
            + _cifar_programs("CIFAR-10 ResNet-32, five configurations",
                              N.cifar_equilibrium, N.paper.CifarSizes.for_scale("paper")))


def _label_noise() -> list[ProgramBudget]:
    from dltheory.sharpness import label_noise as LN

    s = LN.LabelNoiseSizes.for_scale("paper")
    return (_programs("sparse-regression toy: label noise, SGD, GD", LN.toy_experiment, s)
            + _programs("the eta^2 time scale", LN.time_scale_experiment, s)
            + _programs("sample complexity against d", LN.sample_complexity_experiment, s)
            + _programs("widget grid", LN.explorer_grid, s))


def _sam() -> list[ProgramBudget]:
    from dltheory.sharpness import sam as S

    t, d = S.ToySizes.for_scale("paper"), S.DigitsSizes.for_scale("paper")
    return (_programs("toy: GD, SAM, 1-SAM", S.toy_experiment, t)
            + _programs("toy: 1-SAM at three step sizes", S.toy_eta_sweep, t)
            + _programs("toy: widget grid", S.toy_grid, t.widget_steps, seeds=t.widget_seeds)
            + _programs("digits: GD, SAM, SGD, 1-SAM", S.digits_experiment, d))


def _edge_of_stability() -> list[ProgramBudget]:
    from dltheory.sharpness import edge_of_stability as E

    t = E.ToySizes.for_scale("paper")
    return (_programs("toy: three (eta, lambda)", E.toy_experiment, t)
            + _programs("toy: widget grid", E.toy_grid, t)
            + _programs("digits: GD at three step sizes", E.digits_experiment,
                        E.DigitsSizes.for_scale("paper"))
            + _programs("normalized digits: with and without weight decay",
                        E.normalized_experiment, E.NormSizes.for_scale("paper")))


def _robust_training() -> list[ProgramBudget]:
    from dltheory.normalization import robust as R

    return _programs("digits MLP: every initial scale, loss scale and switch",
                     R.robust_grid, R.RobustSizes.for_scale("paper"))


#: Chapter key -> the function that builds and analyses its paper preset's programs.
CHAPTERS: dict[str, Callable[[], list[ProgramBudget]]] = {
    "preliminaries/gradient_descent": _gradient_descent,
    "sde/sgd_sde": _sgd_sde,
    "sde/adaptive_sde": _adaptive_sde,
    "margin/homogeneous_margin": _homogeneous_margin,
    "margin/two_layer_leaky_relu": _two_layer,
    "lowrank/greedy_low_rank": _greedy,
    "lowrank/incremental_sensing": _sensing,
    "normalization/scale_invariance": _scale_invariance,
    "normalization/intrinsic_lr": _intrinsic_lr,
    "normalization/robust_training": _robust_training,
    "sharpness/label_noise": _label_noise,
    "sharpness/sam": _sam,
    "sharpness/edge_of_stability": _edge_of_stability,
}


def _check_chapter(chapter: Any) -> str:
    if not isinstance(chapter, str):
        raise TypeError(f"argument `chapter` must be a str, one of {sorted(CHAPTERS)}; "
                        f"got {chapter!r}")
    if chapter not in CHAPTERS:
        raise ValueError(f"argument `chapter` must be one of {sorted(CHAPTERS)}; "
                         f"got {chapter!r}")
    return chapter


def _check_chapters(chapters: Any) -> list[str]:
    """A list of chapter keys (all of :data:`CHAPTERS` for ``None``), checked."""
    if chapters is not None and (isinstance(chapters, (str, bytes))
                                 or not isinstance(chapters, (list, tuple))):
        raise TypeError(f"argument `chapters` must be a list of chapter keys or None; got "
                        f"{chapters!r}")
    return list(CHAPTERS) if chapters is None else [_check_chapter(c) for c in chapters]


def estimate(chapter: str) -> Budget:
    """Compile ``chapter``'s paper-preset programs (without running them) and estimate.

    Args:
      chapter: a key of :data:`CHAPTERS`, e.g. ``"sde/sgd_sde"``.

    Returns:
      A :class:`Budget`.

    Raises:
      TypeError, ValueError: if ``chapter`` is not a key of :data:`CHAPTERS`.
    """
    chapter = _check_chapter(chapter)
    with _uncapped():
        return Budget(chapter, tuple(CHAPTERS[chapter]()))


@contextlib.contextmanager
def _step_cap(cap: int | None) -> Iterator[None]:
    """Within this context ``DLTHEORY_MAX_STEPS`` is ``cap`` (unset for ``None``)."""
    from dltheory.config import MAX_STEPS_VAR

    old = os.environ.get(MAX_STEPS_VAR)
    if cap is None:
        os.environ.pop(MAX_STEPS_VAR, None)
    else:
        os.environ[MAX_STEPS_VAR] = str(cap)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(MAX_STEPS_VAR, None)
        else:
            os.environ[MAX_STEPS_VAR] = old


def _uncapped() -> contextlib.AbstractContextManager:
    """The estimates are always of the full presets, whatever the environment says."""
    return _step_cap(None)


def _peak_bytes() -> float | None:
    stats = jax.local_devices()[0].memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return float(stats["peak_bytes_in_use"])


def measure(chapter: str, *, max_steps: int | None = None, capped: str = "") -> Measurement:
    """Run ``chapter``'s ``paper`` preset on the default device and time it.

    The chapter's dominant programs (those :func:`estimate` analyses) run for real, with
    the same arguments; each is timed until its results are ready, its compiling timed
    apart. With ``max_steps`` every step and epoch count is capped as by
    ``DLTHEORY_MAX_STEPS`` (shapes unchanged), and :meth:`Measurement.full_seconds`
    extends the run to the full preset at the measured rate of each program. With
    ``capped`` as well, only the programs whose label contains that text run capped (for
    example ``"CIFAR-10"``: the chapter's small programs run in full, its CIFAR-10 runs
    for ``max_steps`` epochs).

    The peak memory is the device's peak since the process started: measure one chapter
    per process (:func:`measure_all` and ``python -m dltheory.paper --measure`` do).

    Args:
      chapter: a key of :data:`CHAPTERS`.
      max_steps: a positive integer cap, or ``None`` for the full preset.
      capped: cap only the programs whose label contains this text (``""``: all).

    Returns:
      A :class:`Measurement`.

    Raises:
      TypeError, ValueError: if ``chapter`` is not a key of :data:`CHAPTERS`, or
        ``max_steps`` is not a positive integer or ``None``.
    """
    from dltheory import validation as V
    from dltheory.training import loop

    chapter = _check_chapter(chapter)
    if max_steps is not None:
        max_steps = V.check_int("max_steps", max_steps, minimum=1)
    if not isinstance(capped, str):
        raise TypeError(f"argument `capped` must be a str (text of the program labels to "
                        f"cap; '' caps all); got {capped!r}")
    runs: list[ProgramRun] = []
    c0 = loop.compile_seconds()
    t0 = time.perf_counter()
    _MEASURING[0], _MEASURE_CAP[0] = runs, (max_steps, capped)
    try:
        with _step_cap(max_steps if not capped else None):
            CHAPTERS[chapter]()
    finally:
        _MEASURING[0], _MEASURE_CAP[0] = None, (None, "")
    seconds = time.perf_counter() - t0
    device = jax.devices()[0]
    return Measurement(chapter, str(device.device_kind), jax.__version__, max_steps,
                       capped if max_steps is not None else "", seconds,
                       loop.compile_seconds() - c0, _peak_bytes(), tuple(runs))


def _read_json(path: Any, default: pathlib.Path, missing: str) -> dict:
    """The JSON document at ``path`` (``default`` for None); ``missing`` says how to write
    it when there is none."""
    if path is not None and not isinstance(path, (str, pathlib.PurePath)):
        raise TypeError(f"argument `path` must be a file path (a str or a pathlib.Path); got "
                        f"{path!r}")
    p = default if path is None else pathlib.Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no file at {p}; {missing}")
    return json.loads(p.read_text())


def budgets(path: str | pathlib.Path | None = None) -> dict[str, Budget]:
    """The committed estimates of every chapter (see :data:`BUDGETS_FILE`)."""
    raw = _read_json(path, BUDGETS_FILE, "write the estimates with "
                     "`python -m dltheory.paper --write`")
    return {k: Budget.from_dict(v) for k, v in raw["chapters"].items()}


def budget(chapter: str) -> Budget:
    """The committed estimate of ``chapter`` (a key of :data:`CHAPTERS`)."""
    chapter = _check_chapter(chapter)
    all_ = budgets()
    if chapter not in all_:
        raise LookupError(f"{BUDGETS_FILE.name} has no estimate of {chapter!r}; compute it "
                          f"with `python -m dltheory.paper --write {chapter}`")
    return all_[chapter]


def table(chapters: Any = None) -> str:
    """A Markdown table of the committed estimates: one row per chapter."""
    keys = _check_chapters(chapters)
    all_ = budgets()
    rows = ["| chapter | GFLOP | peak memory | T4 | H200 |", "|:--|--:|--:|--:|--:|"]
    for k in keys:
        b = all_[k]
        rows.append(f"| {k} | {b.flops / 1e9:,.0f} | {_bytes(b.peak_bytes)} | "
                    f"{_duration(b.seconds('T4'))} | {_duration(b.seconds('H200'))} |")
    return "\n".join(rows)


def show(chapter: str | None = None) -> Any:
    """Display a chapter's budget table (or, with no argument, every chapter's) as
    Markdown in a notebook; returns the Markdown object."""
    from IPython.display import Markdown, display

    text = table() if chapter is None else budget(chapter).table()
    md = Markdown(text)
    display(md)
    return md


#: The caps of ``--measure`` (see :func:`measure_all`): the chapters with CIFAR-10 runs
#: run those for a fixed number of epochs (steps for the step-counted ones) and extend
#: them to the full preset at the measured rate; every other program runs in full.
MEASURE_CAPS: dict[str, tuple[int, str]] = {
    "sde/sgd_sde": (1, "CIFAR-10"),
    "sde/adaptive_sde": (1, "CIFAR-10"),
    "margin/homogeneous_margin": (200, "CIFAR-10"),
    "normalization/intrinsic_lr": (1000, "CIFAR-10"),
}


def _measure_one(chapter: str, max_steps: int | None, capped: str, timeout: float,
                 env: dict[str, str]) -> Measurement | str:
    """:func:`measure` in a fresh process (its own peak memory); the measurement, or why
    there is none."""
    import subprocess

    code = ("import json, sys\nfrom dltheory import paper\n"
            f"m = paper.measure({chapter!r}, max_steps={max_steps!r}, capped={capped!r})\n"
            "print('@@' + json.dumps(m.to_dict()))\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f"stopped after {timeout:.0f} s"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("@@"):
            return Measurement.from_dict(json.loads(line[2:]))
    tail = (proc.stderr or proc.stdout).strip()[-4000:]
    return f"exit status {proc.returncode}: {tail}"


def measure_all(chapters: list[str] | None = None, *, full: bool = False,
                max_steps: int | None = None, deadline: float | None = None,
                timeout: float = 3600.0, log: Callable[[str], Any] = print,
                after: Callable[[list[Measurement], dict[str, str]], Any] | None = None
                ) -> tuple[list[Measurement], dict[str, str]]:
    """Measure several chapters, each in its own process: the given ones in their order,
    or all in order of their estimated time on an H200 (cheapest first).

    Args:
      chapters: keys of :data:`CHAPTERS`, or ``None`` for all.
      full: run every preset in full, without :data:`MEASURE_CAPS`.
      max_steps: cap every program of every chapter at this many steps and epochs
        (a quick check that the measuring works; overrides the other caps).
      deadline: start no chapter after this many seconds; ``None``: no limit.
      timeout: stop a chapter's process after this many seconds.
      log: called with one line per chapter as it ends.
      after: called with ``(measurements, skipped)`` so far after each chapter (to save
        them as they come).

    Returns:
      ``(measurements, skipped)``: the measurements, and for each chapter without one,
      why (stopped, failed or not started before the deadline).
    """
    from dltheory import validation as V

    keys = _check_chapters(chapters)
    V.check_callable("log", log)
    if after is not None:
        V.check_callable("after", after)
    if max_steps is not None:
        max_steps = V.check_int("max_steps", max_steps, minimum=1)
    if deadline is not None:
        V.check_positive("deadline", deadline)
    V.check_positive("timeout", timeout)
    try:
        known = budgets()
    except FileNotFoundError:
        known = {}
    if chapters is None:
        keys.sort(key=lambda k: known[k].seconds("H200") if k in known else math.inf)
    env = dict(os.environ, DLTHEORY_PROGRESS="0")
    env.pop("DLTHEORY_MAX_STEPS", None)
    src = str(pathlib.Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    done: list[Measurement] = []
    skipped: dict[str, str] = {}
    t0 = time.perf_counter()
    for k in keys:
        left = None if deadline is None else deadline - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            skipped[k] = "not started: the deadline had passed"
            continue
        cap, text = (max_steps, "") if max_steps is not None else (
            (None, "") if full else MEASURE_CAPS.get(k, (None, "")))
        result = _measure_one(k, cap, text, timeout, env)
        if isinstance(result, str):
            skipped[k] = result
            lines = result.splitlines()
            log(f"{k}: {lines[0]}" + (f" ... {lines[-1]}" if len(lines) > 1 else ""))
        else:
            done.append(result)
            log(f"{k}: {result.seconds:.1f} s ({result.compile_seconds:.1f} s compiling)")
        if after is not None:
            after(done, skipped)
    return done, skipped


@dataclasses.dataclass(frozen=True)
class Measured:
    """Measurements of the paper presets on one device (see :func:`measured`).

    Attributes:
      device: the device kind, e.g. ``"NVIDIA H200"``.
      versions: the versions of the libraries they ran with, e.g. ``{"jax": "0.11.2"}``.
      date: when they were measured (ISO date).
      measurements: the chapters measured, by key.
      skipped: the chapters without a measurement, by key, with the reason.
    """

    device: str
    versions: dict[str, str]
    date: str
    measurements: dict[str, Measurement]
    skipped: dict[str, str]


def measured(path: str | pathlib.Path | None = None) -> Measured:
    """The committed measurements (see :data:`MEASURED_FILE`), or those in ``path``."""
    raw = _read_json(path, MEASURED_FILE, "write measurements with "
                     "`python -m dltheory.paper --measure --json FILE`")
    ms = {m["chapter"]: Measurement.from_dict(m) for m in raw["measurements"]}
    versions = {k: raw[k] for k in ("jax", "flax") if k in raw}
    return Measured(raw.get("device", "?"), versions, raw.get("measured", "?"), ms,
                    dict(raw.get("skipped", {})))


def _check_measured(m: Any) -> Measured:
    if not isinstance(m, Measured):
        raise TypeError(f"argument `m` must be a Measured (from `measured`) or None; got "
                        f"{m!r}")
    return m


def _seconds(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    return f"{s:.0f} s" if s < 120 else _duration(s)


def measured_table(measurements: list[Measurement],
                   skipped: dict[str, str] | None = None) -> str:
    """A Markdown table of measurements, one row per chapter (the part of its key after
    the slash), beside the estimates in parentheses: the whole preset (compiling
    included; a capped run extended at its measured rates), the compiling, the programs'
    execution against the time model's estimate for the steps they ran, and the peak
    device memory. The chapters in ``skipped`` get a row that says why they have no
    measurement, with the estimates alone."""
    if not isinstance(measurements, (list, tuple)) or not all(
            isinstance(m, Measurement) for m in measurements):
        raise TypeError(f"argument `measurements` must be a list of Measurement (from "
                        f"`measure`); got {measurements!r}")
    if skipped is not None and (not isinstance(skipped, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in skipped.items())):
        raise TypeError(f"argument `skipped` must be a dict of chapter -> reason (strings) "
                        f"or None; got {skipped!r}")
    try:
        known = budgets()
    except FileNotFoundError:
        known = {}

    def est(text: str) -> str:
        return f" ({text})" if text else ""

    rows = ["| chapter | ran | whole preset (estimate) | compiling | programs (model) | "
            "peak memory (estimate) |", "|:--|:--|--:|--:|--:|--:|"]
    for m in measurements:
        b = known.get(m.chapter)
        ran = "in full" if m.max_steps is None else f"{m.capped or 'every program'} capped"
        whole = m.full_seconds(b)
        model = m.estimated_seconds("H200", b) if b is not None else None
        peak = "?" if m.peak_bytes is None else _bytes(m.peak_bytes)
        rows.append(
            f"| {m.chapter.split('/')[-1]} | {ran} | "
            f"{'?' if whole is None else _seconds(whole)}"
            f"{est(_seconds(b.seconds('H200')) if b is not None else '')} | "
            f"{_seconds(m.compile_seconds)} | "
            f"{_seconds(sum(r.seconds for r in m.programs))}"
            f"{est(_seconds(model) if model is not None else '')} | "
            f"{peak}{est(_bytes(b.peak_bytes) if b is not None else '')} |")
    for k, why in (skipped or {}).items():
        b = known.get(k)
        reason = why.splitlines()[0] if why.startswith("stopped") else "not run"
        whole = f"({_seconds(b.seconds('H200'))})" if b is not None else ""
        peak = f"({_bytes(b.peak_bytes)})" if b is not None else ""
        rows.append(f"| {k.split('/')[-1]} | {reason} | {whole} | | | {peak} |")
    return "\n".join(rows)


def measured_summary(m: Measured | None = None) -> dict[str, Any]:
    """The figures the book quotes from measurements (default: the committed ones).

    Returns a dict with
      ``full``: the chapters that ran in full, and ``capped``: those that ran capped;
      ``full_min``, ``full_max``: the least and greatest wall time of a chapter run in
      full (seconds, compiling included); ``share_min``, ``share_max``: the least and
      greatest fraction of it spent compiling;
      ``step_min``, ``step_max``: the least and greatest seconds per step of the
      programs whose estimate is almost all per-step overhead (their floating-point work
      under a tenth of :data:`STEP_OVERHEAD_S` a step on an H200);
      ``ratio_min``, ``ratio_max``: the least and greatest ratio of measured to modelled
      seconds per step over the capped programs;
      ``slowest``: the capped program that ran furthest over the time model (chapter,
      label, measured and modelled seconds per step), with its chapter's ``whole``
      (measured, extended) and ``estimate`` (the model's) seconds;
      ``peak``: the largest measured peak memory (chapter, bytes, estimated bytes).
    """
    m = measured() if m is None else _check_measured(m)
    known = budgets()
    runs = list(m.measurements.values())
    full = [r for r in runs if r.max_steps is None]
    out: dict[str, Any] = {"full": [r.chapter for r in full],
                           "capped": [r.chapter for r in runs if r.max_steps is not None]}
    if full:
        out["full_min"] = min(r.seconds for r in full)
        out["full_max"] = max(r.seconds for r in full)
        out["share_min"] = min(r.compile_seconds / r.seconds for r in full)
        out["share_max"] = max(r.compile_seconds / r.seconds for r in full)
    peak32 = GPUS["H200"].fp32 * UTILIZATION
    overhead = [r.seconds / r.steps for run in runs for p, r in (run._matched(None) or [])
                if r.steps and p.dtype == "float32"
                and p.flops_per_step / peak32 < 0.1 * STEP_OVERHEAD_S]
    if overhead:
        out["step_min"], out["step_max"] = min(overhead), max(overhead)
    worst, ratios = None, []
    for run in runs:
        if run.max_steps is None:
            continue
        for p, r in run._matched(None) or []:
            if r.steps < p.steps and run.capped in p.label:  # a capped program
                model = dataclasses.replace(p, steps=1).seconds("H200")
                ratio = (r.seconds / r.steps) / model
                ratios.append(ratio)
                if worst is None or ratio > worst[0]:
                    worst = (ratio, run, p, r, model)
    if ratios:
        out["ratio_min"], out["ratio_max"] = min(ratios), max(ratios)
    if worst is not None:
        _, run, p, r, model = worst
        out["slowest"] = {"chapter": run.chapter, "label": p.label,
                          "step": r.seconds / r.steps, "model_step": model,
                          "whole": run.full_seconds(), "estimate":
                          known[run.chapter].seconds("H200")}
    top = max((r for r in runs if r.peak_bytes is not None), key=lambda r: r.peak_bytes,
              default=None)
    if top is not None:
        out["peak"] = {"chapter": top.chapter, "bytes": top.peak_bytes,
                       "estimate": known[top.chapter].peak_bytes}
    return out


def measured_capped_sentence(m: Measured | None = None) -> str:
    """One Markdown paragraph on the measurements that did not run every program in full:
    which ran capped, and which chapters have no measurement and why (a stopped chapter
    ran with its :data:`MEASURE_CAPS`)."""
    m = measured() if m is None else _check_measured(m)
    out = []
    for r in m.measurements.values():
        if r.max_steps is not None:
            what = (f"its {r.capped} programs ran with their" if r.capped
                    else "every program ran with its")
            out.append(f"In `{r.chapter.split('/')[-1]}`, {what} step and epoch counts "
                       f"capped at {r.max_steps:,}"
                       + ("; its other programs ran in full" if r.capped else "")
                       + f" ({_seconds(r.seconds)} in all).")
    for k, why in m.skipped.items():
        if why.startswith("stopped"):
            cap, text = MEASURE_CAPS.get(k, (None, ""))
            capped = (f", with its {text} programs capped at {cap:,}" if cap is not None
                      else "")
            out.append(f"`{k.split('/')[-1]}` was {why.splitlines()[0]}{capped}.")
        else:
            out.append(f"`{k.split('/')[-1]}` was not run.")
    if m.skipped:
        out.append("Their rows give the estimates alone.")
    return " ".join(out)


def show_measured(path: str | pathlib.Path | None = None) -> Any:
    """Display the committed measurements (:func:`measured`) as a Markdown table in a
    notebook; returns the Markdown object."""
    from IPython.display import Markdown, display

    m = measured(path)
    md = Markdown(measured_table(list(m.measurements.values()), m.skipped))
    display(md)
    return md


def main(argv: list[str] | None = None) -> int:
    """``python -m dltheory.paper [--write] [CHAPTER ...]``: print (and write) estimates;
    ``python -m dltheory.paper --measure [--json FILE] [CHAPTER ...]``: run the presets on
    this machine's default device and time them."""
    ap = argparse.ArgumentParser(description="Estimate the paper presets' compute budgets "
                                 "from XLA's cost and memory analysis, or (--measure) run "
                                 "them and time them.")
    ap.add_argument("chapters", nargs="*", help=f"chapter keys (default: all of "
                    f"{', '.join(CHAPTERS)})")
    ap.add_argument("--write", action="store_true",
                    help=f"update {BUDGETS_FILE.name} with the computed estimates")
    ap.add_argument("--measure", action="store_true",
                    help="run the presets on the default device (one process per "
                    "chapter) and time them; the CIFAR-10 runs are capped and extended at "
                    "their measured rate unless --full")
    ap.add_argument("--full", action="store_true", help="with --measure: no caps")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="with --measure: cap every program at this many steps and epochs")
    ap.add_argument("--deadline", type=float, default=None,
                    help="with --measure: start no chapter after this many seconds")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="with --measure: stop a chapter after this many seconds")
    ap.add_argument("--json", default=None, help="with --measure: write the measurements "
                    "to this file")
    if argv is not None and (isinstance(argv, (str, bytes)) or not isinstance(argv, (list, tuple))
                             or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argument `argv` must be a list of command-line strings or None; got "
                        f"{argv!r}")
    args = ap.parse_args(argv)
    keys = args.chapters or list(CHAPTERS)
    for k in keys:
        _check_chapter(k)
    if args.measure:
        device = jax.devices()[0]
        print(f"measuring on {device.device_kind} ({device.platform}), jax {jax.__version__}",
              flush=True)

        def save(done: list[Measurement], skipped: dict[str, str]) -> None:
            if args.json:
                doc = {"generated_by": "python -m dltheory.paper --measure",
                       "device": str(device.device_kind), "jax": jax.__version__,
                       "measurements": [m.to_dict() for m in done], "skipped": skipped}
                pathlib.Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")

        done, skipped = measure_all(keys, full=args.full, max_steps=args.max_steps,
                                    deadline=args.deadline, timeout=args.timeout,
                                    log=lambda line: print(line, flush=True), after=save)
        save(done, skipped)
        print(measured_table(done))
        for k, why in skipped.items():
            print(f"- {k}: {why.splitlines()[-1]}")
        return 0 if not skipped else 1
    existing = {}
    if BUDGETS_FILE.is_file():
        existing = json.loads(BUDGETS_FILE.read_text()).get("chapters", {})
    for k in keys:
        b = estimate(k)
        print(f"## {k}\n{b.table()}\n", flush=True)
        existing[k] = b.to_dict()
        if args.write:  # after each chapter, so a long run keeps what it has computed
            order = {c: existing[c] for c in CHAPTERS if c in existing}
            doc = {"generated_by": "python -m dltheory.paper --write",
                   "jax": jax.__version__, "chapters": order}
            BUDGETS_FILE.write_text(json.dumps(doc, indent=1) + "\n")
            print(f"wrote {BUDGETS_FILE}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
