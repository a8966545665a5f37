"""The paper presets: step capping, the XLA budget estimates, and every chapter at paper
scale with its steps capped."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from dltheory import config, paper
from dltheory.config import Preset

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _presets() -> list[type[Preset]]:
    from dltheory import preliminaries
    from dltheory.lowrank import experiments as lowrank
    from dltheory.margin import homogeneous, two_layer
    from dltheory.normalization import experiments as norm
    from dltheory.normalization import paper as norm_paper
    from dltheory.sde import cifar
    from dltheory.sde import experiments as sde

    return [preliminaries.GDSizes, sde.SDESizes, sde.AdaptiveSizes, cifar.CifarSizes,
            homogeneous.HMSizes, two_layer.LRSizes, lowrank.GreedySizes,
            lowrank.SensingSizes, norm.NormSizes, norm_paper.CifarSizes]


@dataclasses.dataclass(frozen=True)
class _Toy(Preset):
    steps: int
    widget_steps: int
    epochs: int
    log_every: int
    width: int
    seeds: int

    @classmethod
    def quick(cls):
        return cls(steps=100, widget_steps=30, epochs=2, log_every=10, width=8, seeds=2)

    @classmethod
    def paper(cls):
        return cls(steps=40_000, widget_steps=4000, epochs=160, log_every=500, width=256,
                   seeds=32)


# --------------------------------------------------------------------------------------
# capping
# --------------------------------------------------------------------------------------


def test_capped_caps_counts_and_keeps_shapes():
    p = _Toy.paper().capped(12)
    assert (p.steps, p.widget_steps, p.epochs) == (12, 12, 12)
    assert (p.width, p.seeds) == (256, 32)
    assert p.steps % p.log_every == 0 and p.widget_steps % p.log_every == 0
    assert p.log_every == 4


def test_capped_leaves_small_counts_alone():
    q = _Toy.quick()
    assert q.capped(10_000) == q
    assert q.capped(2).epochs == 2


@pytest.mark.parametrize("cap", [1, 4, 7, 20])
@pytest.mark.parametrize("cls", _presets(), ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_preset_caps_consistently(cls, cap):
    full, capped = cls.paper(), cls.paper().capped(cap)
    assert type(capped) is cls
    for f in dataclasses.fields(cls):
        a, b = getattr(full, f.name), getattr(capped, f.name)
        if Preset.is_count(f.name) and isinstance(a, int):
            assert b == min(a, cap), f.name
        elif not Preset.is_interval(f.name):
            assert a == b, f.name  # every shape stays the paper's
    for f in dataclasses.fields(cls):
        if Preset.is_interval(f.name):
            every = getattr(capped, f.name)
            for c in dataclasses.fields(cls):
                if Preset.is_count(c.name) and getattr(full, c.name) % getattr(full, f.name) == 0:
                    assert getattr(capped, c.name) % every == 0, (c.name, f.name)


def test_for_scale_applies_max_steps(monkeypatch):
    monkeypatch.setenv(config.MAX_STEPS_VAR, "16")
    assert _Toy.for_scale("paper") == _Toy.paper().capped(16)
    assert _Toy.for_scale("quick") == _Toy.quick()  # the cap is for paper presets only
    monkeypatch.setenv(config.ENV_VAR, "paper")
    assert _Toy.current().steps == 16
    monkeypatch.delenv(config.MAX_STEPS_VAR)
    assert _Toy.current() == _Toy.paper()


@pytest.mark.parametrize("bad, err", [(0, ValueError), (-3, ValueError), ("8", TypeError),
                                      (2.5, TypeError), (True, TypeError)])
def test_capped_rejects_bad_caps(bad, err):
    with pytest.raises(err, match="cap"):
        _Toy.paper().capped(bad)


def test_log_interval_divides_steps():
    for steps in (600, 4000, 8, 7, 1, 40_000, 2000, 20_000):
        k = config.log_interval(steps, 60)
        assert steps % k == 0 and k <= max(1, steps // 60)
    assert config.log_interval(600, 60) == 10 and config.log_interval(4000, 60) == 50
    assert config.log_interval(2000, 20) == 100 and config.log_interval(97, 10) == 1
    assert config.log_interval(np.int64(600), 60) == 10   # numpy integers too
    # a preferred interval wins where it divides the steps, else the divisor rule
    assert config.log_interval(1000, 20, prefer=50) == 50
    assert config.log_interval(20_000, 20, prefer=50) == 50
    assert config.log_interval(8, 20, prefer=50) == 1 and config.log_interval(60, 20, prefer=50) == 3


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, None])
def test_log_interval_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match="steps"):
        config.log_interval(bad, 10)
    with pytest.raises(ValueError, match="points"):
        config.log_interval(10, bad)
    if bad is not None:
        with pytest.raises(ValueError, match="prefer"):
            config.log_interval(10, 5, prefer=bad)


# --------------------------------------------------------------------------------------
# budgets
# --------------------------------------------------------------------------------------


def test_committed_budgets_cover_every_chapter_and_fit_in_15_gb():
    budgets = paper.budgets()
    assert set(budgets) == set(paper.CHAPTERS)
    for key, b in budgets.items():
        assert b.programs, key
        assert b.peak_bytes < paper.MEMORY_LIMIT_BYTES, (key, b.peak_bytes)
        assert b.flops > 0 and b.seconds("T4") > b.seconds("H200") > 0, key


def test_budget_table_and_time_model():
    b = paper.Budget("x", (paper.ProgramBudget("p", 1e9, 1e6, 1000, "float64"),))
    t4 = 1e12 / (0.25e12 * paper.UTILIZATION) + 1000 * paper.STEP_OVERHEAD_S
    assert b.seconds("T4") == pytest.approx(t4)
    assert "| p (float64) | 1,000 |" in b.table()
    assert paper.Budget.from_dict(json.loads(json.dumps(b.to_dict()))) == b
    assert "preliminaries/gradient_descent" in paper.table()


@pytest.mark.parametrize("bad, err", [("nope", ValueError), (3, TypeError)])
def test_bad_chapter_names_are_refused(bad, err):
    with pytest.raises(err, match="chapter"):
        paper.estimate(bad)
    with pytest.raises(err, match="chapter"):
        paper.budget(bad)


def test_bad_gpu_is_refused():
    with pytest.raises(ValueError, match="gpu"):
        paper.ProgramBudget("p", 1.0, 1.0, 1, "float32").seconds("V100")


# --------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------


def _toy_run(sizes: _Toy) -> None:
    import jax.numpy as jnp
    import optax

    from dltheory import training

    training.train(lambda w, _: jnp.sum((w - 1.0) ** 2), jnp.zeros(3), optax.sgd(0.1),
                   steps=sizes.widget_steps, log_every=sizes.widget_steps // 4,
                   progress=False)


def _toy_chapter() -> list[paper.ProgramBudget]:
    s = _Toy.for_scale("paper")
    return (paper._programs("small runs", _toy_run, s)
            + paper._programs("CIFAR-10 runs", _toy_run, s, calls=2))


def test_measure_times_every_program_and_caps_only_the_named_ones(monkeypatch):
    monkeypatch.setitem(paper.CHAPTERS, "test/toy", _toy_chapter)
    full = paper.measure("test/toy")
    assert [r.label for r in full.programs] == ["small runs", "CIFAR-10 runs"]
    assert [r.steps for r in full.programs] == [4000, 8000]  # two calls of 4000 steps
    assert full.max_steps is None and full.capped == ""
    assert all(r.seconds > 0 and r.compile_seconds >= 0 for r in full.programs)
    assert full.seconds >= sum(r.seconds + r.compile_seconds for r in full.programs)
    assert full.full_seconds() == full.seconds  # it ran in full: nothing to extend

    some = paper.measure("test/toy", max_steps=400, capped="CIFAR-10")
    assert [r.steps for r in some.programs] == [4000, 800]
    assert (some.max_steps, some.capped) == (400, "CIFAR-10")
    every = paper.measure("test/toy", max_steps=400)
    assert [r.steps for r in every.programs] == [400, 800]
    assert every.capped == ""
    assert os.environ.get(config.MAX_STEPS_VAR) is None  # the cap does not leak out

    # the capped programs are extended at their own measured rate to the budget's steps
    b = paper.Budget("test/toy", (paper.ProgramBudget("small runs", 1.0, 1.0, 4000,
                                                      "float32"),
                                  paper.ProgramBudget("CIFAR-10 runs", 1.0, 1.0, 8000,
                                                      "float32")))
    r = some.programs[1]
    assert some.full_seconds(b) == pytest.approx(some.seconds + r.seconds * (8000 / 800 - 1))
    assert some.estimated_seconds("T4", b) == pytest.approx(
        4000 * (1.0 / (8.1e12 * paper.UTILIZATION) + paper.STEP_OVERHEAD_S)
        + 800 * (1.0 / (8.1e12 * paper.UTILIZATION) + paper.STEP_OVERHEAD_S))
    other = paper.Budget("test/toy", b.programs[:1])
    assert some.full_seconds(other) is None and some.estimated_seconds(budget=other) is None
    assert paper.Measurement.from_dict(json.loads(json.dumps(some.to_dict()))) == some


def test_estimates_are_of_the_full_presets_whatever_the_cap(monkeypatch):
    monkeypatch.setitem(paper.CHAPTERS, "test/toy", _toy_chapter)
    monkeypatch.setenv(config.MAX_STEPS_VAR, "40")
    b = paper.estimate("test/toy")
    assert [p.steps for p in b.programs] == [4000, 8000]
    assert os.environ[config.MAX_STEPS_VAR] == "40"


@pytest.mark.parametrize("kwargs, err, match", [
    ({"max_steps": 0}, ValueError, "max_steps"), ({"max_steps": 2.5}, TypeError, "max_steps"),
    ({"capped": 3}, TypeError, "capped")])
def test_measure_refuses_bad_arguments(monkeypatch, kwargs, err, match):
    monkeypatch.setitem(paper.CHAPTERS, "test/toy", _toy_chapter)
    with pytest.raises(err, match=match):
        paper.measure("test/toy", **kwargs)
    with pytest.raises(ValueError, match="chapter"):
        paper.measure("nope")


def test_measure_all_runs_each_chapter_in_its_own_process():
    lines: list[str] = []
    saved: list[int] = []
    done, skipped = paper.measure_all(["lowrank/incremental_sensing"], max_steps=2,
                                      timeout=600, log=lines.append,
                                      after=lambda d, s: saved.append(len(d)))
    assert skipped == {} and saved == [1] and len(lines) == 1
    (m,) = done
    assert m.chapter == "lowrank/incremental_sensing" and m.max_steps == 2
    labels = [p.label for p in paper.budget(m.chapter).programs]
    assert [r.label for r in m.programs] == labels
    assert all(r.steps <= 2 * 1 for r in m.programs)
    table = paper.measured_table(done)
    assert "| incremental_sensing | every program capped |" in table

    done, skipped = paper.measure_all(["lowrank/incremental_sensing",
                                       "lowrank/greedy_low_rank"], deadline=1e-9)
    assert done == [] and set(skipped) == {"lowrank/incremental_sensing",
                                           "lowrank/greedy_low_rank"}
    assert all("deadline" in why for why in skipped.values())
    done, skipped = paper.measure_all(["lowrank/incremental_sensing"], timeout=0.01)
    assert done == [] and "stopped after" in skipped["lowrank/incremental_sensing"]


def test_committed_measurements_read_and_render():
    m = paper.measured()
    assert m.device and m.versions.get("jax") and m.date
    assert set(m.measurements).isdisjoint(m.skipped)
    assert set(m.measurements) | set(m.skipped) == set(paper.CHAPTERS)
    budgets = paper.budgets()
    for key, run in m.measurements.items():
        assert run.chapter == key and run.seconds > run.compile_seconds >= 0
        # every timed program is one of the estimate's, with the same or fewer steps
        by_label = {p.label: p for p in budgets[key].programs}
        for r in run.programs:
            assert r.label in by_label and 0 < r.steps <= by_label[r.label].steps, r.label
            if run.max_steps is None or run.capped not in r.label:  # ran in full
                assert r.steps == by_label[r.label].steps, r.label
        assert run.full_seconds() >= run.seconds
        assert run.estimated_seconds() > 0
    table = paper.measured_table(list(m.measurements.values()), m.skipped)
    assert table.count("\n") == 1 + len(paper.CHAPTERS)
    for key in m.skipped:
        assert f"| {key.split('/')[-1]} |" in table


def test_measured_table_rows(monkeypatch):
    b = paper.Budget("test/toy", (paper.ProgramBudget("small runs", 1e9, 2e8, 4000,
                                                      "float32"),
                                  paper.ProgramBudget("CIFAR-10 runs", 1e12, 3e9, 8000,
                                                      "float32")))
    monkeypatch.setattr(paper, "budgets", lambda path=None: {"test/toy": b})
    run = paper.Measurement("test/toy", "GPU", "0", 800, "CIFAR-10", 30.0, 12.0, 4.2e9, (
        paper.ProgramRun("small runs", 4000, 2.0, 3.0),
        paper.ProgramRun("CIFAR-10 runs", 800, 10.0, 5.0)))
    table = paper.measured_table([run], {"test/other": "stopped after 9 s"})
    row, other = table.splitlines()[2:]
    # 30 s, the CIFAR-10 runs extended from 800 to 8000 steps at 12.5 ms a step: 120 s
    model = (4000 * 1e9 + 800 * 1e12) / (67e12 * paper.UTILIZATION) + 4800 * 1e-5
    whole = (4000 * 1e9 + 8000 * 1e12) / (67e12 * paper.UTILIZATION) + 12000 * 1e-5
    assert row == (f"| toy | CIFAR-10 capped | 2 min ({paper._seconds(whole)}) | 12 s | "
                   f"12 s ({paper._seconds(model)}) | 4.20 GB (3.00 GB) |")
    assert [c.strip() for c in other.split("|")[1:-1]] == ["other", "stopped after 9 s", "",
                                                           "", "", ""]
    # the summary's capped programs: only the CIFAR-10 one; a program outside the capped
    # label that ran fewer steps than estimated (a stale estimate) is not a capped one
    short = dataclasses.replace(run, programs=(paper.ProgramRun("small runs", 1000, 9.0, 3.0),
                                               run.programs[1]))
    summary = paper.measured_summary(paper.Measured("GPU", {"jax": "0"}, "today",
                                                    {"test/toy": short}, {}))
    step_model = 1e12 / (67e12 * paper.UTILIZATION) + 1e-5
    assert summary["ratio_min"] == summary["ratio_max"] == pytest.approx(
        (10.0 / 800) / step_model)
    assert summary["slowest"]["label"] == "CIFAR-10 runs"
    assert summary["capped"] == ["test/toy"] and summary["full"] == []
    with pytest.raises(FileNotFoundError, match="--measure"):
        paper.measured(ROOT / "no-such-file.json")
    with pytest.raises(TypeError, match="path"):
        paper.measured(3)


def test_sam_estimate_includes_its_curvature_evaluations():
    """The digits section evaluates lambda_1 and tr(H) at every logged point in one vmapped
    program, the chapter's largest: the estimate counts it."""
    b = paper.budget("sharpness/sam")
    curv = [p for p in b.programs if "curvature" in p.label]
    assert len(curv) == 3
    assert b.peak_bytes == max(p.peak_bytes for p in curv) > 1e9


def _compare(key: str) -> None:
    import jax

    committed = paper.budget(key)
    fresh = paper.estimate(key)
    same_jax = json.loads(paper.BUDGETS_FILE.read_text()).get("jax") == jax.__version__
    rel = 0.02 if same_jax else 0.5  # XLA's counts move a little between versions
    assert [p.label for p in fresh.programs] == [p.label for p in committed.programs]
    for f, c in zip(fresh.programs, committed.programs):
        assert f.steps == c.steps, f.label
        assert f.flops_per_step == pytest.approx(c.flops_per_step, rel=rel), f.label
        assert f.peak_bytes == pytest.approx(c.peak_bytes, rel=rel), f.label


def test_cheap_estimates_match_the_committed_file():
    _compare("preliminaries/gradient_descent")


@pytest.mark.slow
@pytest.mark.estimates  # compiles every program at the paper shapes: about 20 min on 2 cores
@pytest.mark.parametrize("key", list(paper.CHAPTERS))
def test_every_estimate_matches_the_committed_file(key):
    _compare(key)


# --------------------------------------------------------------------------------------
# every chapter at paper scale, capped
# --------------------------------------------------------------------------------------

MAX_STEPS = 8
GPU_ONLY = "gpu-only"


def _toc_notebooks() -> list[pathlib.Path]:
    sys.path.insert(0, str(ROOT / "tools"))
    from execute_notebooks import toc_notebooks

    return [p for p in toc_notebooks() if p.parent != ROOT / "book"]


def test_gpu_only_cells_are_the_resnet_32_runs():
    import nbformat

    tagged = {}
    for nb in _toc_notebooks():
        for c in nbformat.read(nb, as_version=4).cells:
            if GPU_ONLY in c.metadata.get("tags", []):
                tagged.setdefault(nb.relative_to(ROOT).as_posix(), []).append(c.source)
    assert sorted(tagged) == ["book/normalization/intrinsic_lr.ipynb",
                              "book/sde/adaptive_sde.ipynb", "book/sde/sgd_sde.ipynb"]
    for nb, sources in tagged.items():
        assert len(sources) == 1, nb
        assert "cifar.cifar_run(" in sources[0] or "cifar_equilibrium(" in sources[0], nb


@pytest.mark.slow
@pytest.mark.paper
def test_every_chapter_runs_at_paper_scale(tmp_path):
    """Every chapter notebook executes with ``DLTHEORY_SCALE=paper`` and every step and
    epoch count capped at ``MAX_STEPS`` (``DLTHEORY_MAX_STEPS``), two notebooks at a time.

    The cap keeps every array shape of the paper presets (widths, batch sizes, seeds,
    paths, measurements) except the data set: the CIFAR-10 runs read a small stand-in in
    CIFAR-10's file format (``dltheory.data.write_cifar10_standin``, 300 training and 40
    test images) through ``DLTHEORY_DATA``, so their batches have the paper's shape but
    their epochs, evaluation sets and full batches are smaller. The widgets' static twins
    and progress bars are off (``DLTHEORY_STATIC_TWINS=0``, ``DLTHEORY_PROGRESS=0``).

    Code cells tagged ``gpu-only`` (the ResNet-32 CIFAR-10 runs of Parts I and IV: one
    capped run, four steps of two seeds at a cap of two, took 530 s on two CPU cores; with
    the models' CPU convolution gradient, the SGD chapter with them had not finished after
    10 minutes at this test's cap) are
    left out unless ``DLTHEORY_PAPER_GPU_CELLS=1``;
    :func:`test_gpu_only_cells_are_the_resnet_32_runs` keeps that list short.
    """
    from dltheory import data

    data.write_cifar10_standin(tmp_path / "data", n_train=60, n_test=40)
    env = dict(os.environ, DLTHEORY_SCALE="paper", DLTHEORY_MAX_STEPS=str(MAX_STEPS),
               DLTHEORY_STATIC_TWINS="0", DLTHEORY_PROGRESS="0",
               DLTHEORY_DATA=str(tmp_path / "data"), DLTHEORY_CIFAR10_URL="http://127.0.0.1:9/none")
    env.pop("XLA_FLAGS", None)

    skip = [] if os.environ.get("DLTHEORY_PAPER_GPU_CELLS") == "1" else [
        "--skip-tag", GPU_ONLY]

    def run(nb: pathlib.Path):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(ROOT / "tools" / "run_notebook.py"),
                               str(nb), "--timeout", "900", *skip], env=env, cwd=ROOT,
                              capture_output=True, text=True)
        return nb, proc, time.perf_counter() - t0

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, _toc_notebooks()))
    failed = [f"{nb.relative_to(ROOT)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
              for nb, proc, _ in results if proc.returncode != 0]
    for nb, proc, seconds in results:
        print(f"{nb.relative_to(ROOT)}: {seconds:.0f} s, exit status {proc.returncode}")
    names = [nb.relative_to(ROOT).as_posix() for nb, proc, _ in results if proc.returncode]
    assert not failed, f"{len(failed)} chapters failed: {names}\n\n" + "\n\n".join(failed)


def test_compile_seconds_merges_nested_events(monkeypatch):
    """Tracing reports nested events (a jitted function traced inside another): their
    spans are merged, so the compile time of a call never exceeds its wall time."""
    import jax
    import jax.numpy as jnp

    from dltheory.training import loop

    inner = jax.jit(lambda x: jnp.sin(x) * 2.0)
    outer = jax.jit(lambda x: inner(x) + inner(x + 1.0) + jnp.cos(x))
    c0, t0 = loop.compile_seconds(), time.perf_counter()
    jax.block_until_ready(outer(jnp.arange(17.0)))
    dt, dc = time.perf_counter() - t0, loop.compile_seconds() - c0
    assert 0 < dc <= dt

    # the merging itself, on made-up spans: an outer event that covers two inner ones
    spans, total = list(loop._COMPILE_SPANS), loop._COMPILE_TOTAL[0]
    try:
        loop._COMPILE_SPANS.clear()
        loop._COMPILE_TOTAL[0] = 0.0
        clock = iter([2.0, 4.0, 5.0, 9.0])
        monkeypatch.setattr(loop, "_now", lambda: next(clock))
        event = "/jax/core/compile/jaxpr_trace_duration"
        loop._on_event(event, 1.0)    # [1, 2]
        loop._on_event(event, 1.0)    # [3, 4]
        loop._on_event(event, 5.0)    # [0, 5] covers both
        loop._on_event(event, 1.0)    # [8, 9] apart
        monkeypatch.undo()
        assert loop._COMPILE_SPANS == [(0.0, 5.0), (8.0, 9.0)]
        assert loop._COMPILE_TOTAL[0] == 6.0
    finally:
        loop._COMPILE_SPANS[:] = spans
        loop._COMPILE_TOTAL[0] = total
