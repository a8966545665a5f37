"""dltheory.exercises: right answers pass, wrong ones fail with a hint, and the package
never holds a solution in the clear."""

import json
import math
import pathlib
import re

import numpy as np
import pytest

from dltheory import exercises as X
from dltheory.sde import svag_coefficients

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The references, known to the tests only: (label, right answers, wrong answers)
NUMERIC = [
    ("gd-ex-best-lr", [346, 345, 346.0], [347, 350, 173, 692, -346, 0]),
    ("glrl-ex-linear", [(4.5, 3.5), [4.5, 3.49]], [(3.5, 4.5), (4.5, 4.0), (4.0, 3.5)]),
    ("ilr-ex-relax", [24.62, 25, 24.3], [12.3, 50, 196, 23.0]),
    # (eta, 1 - beta1, 1 - beta2, eps) at kappa = 4; wrong: the linear rule, betas unchanged
    ("asde-ex-derive", [(2e-3, 0.4, 0.004, 5e-9), (0.002, 0.401, 0.004, 5.01e-9)],
     [(4e-3, 0.4, 0.004, 5e-9), (2e-3, 0.1, 0.001, 1e-8), (2e-3, 0.4, 0.004, 2.5e-9),
      (2e-3, 0.6, 0.996, 5e-9)]),
    # ln(2000)/ln(1.04); wrong: ln(2000)/0.04, ln(1000)/ln(1.04), ln(4000)/ln(1.04)
    ("ms-ex-derive", [193.8, 194, 193.5], [190.0, 176.1, 211.5, 96.9]),
    # (sqrt(0.99^2 4 + 0.09), arctan(0.3/1.98)); wrong: no decay, tan not arctan, norm unchanged
    ("si-ex-wd-norm", [(2.0026, 0.15037), (2.0025983, 0.1503714)],
     [(2.02237, 0.14889), (2.0026, 0.151515), (2.0, 0.15037), (1.98, 0.15037)]),
]


@pytest.mark.parametrize("label, right, wrong", NUMERIC)
def test_numeric_answers(label, right, wrong):
    entry = X.EXERCISES[label]
    for answer in right:
        v = X.check(label, answer)
        assert v.correct and bool(v) and v.message == "Correct", (answer, v)
    for answer in wrong:
        v = X.check(label, answer)
        assert not v.correct and v.message.startswith("Not yet") and entry.hint in v.message
    # the form is checked before the value
    v = X.check(label, (1.0,) * (len(entry.digests) + 1))
    assert not v.correct and "Not the right form" in v.message
    assert not X.check(label, "forty" if len(entry.digests) == 1 else ("a", "b")).correct
    assert not X.check(label, math.nan if len(entry.digests) == 1 else (math.nan,) * 2).correct


def test_code_answer_against_the_package():
    right = lambda l: ((1 + math.sqrt(2 * l - 1)) / 2, (1 - math.sqrt(2 * l - 1)) / 2)  # noqa: E731
    assert X.check("sde-ex-weights", right).message == "Correct on 5 inputs"
    assert X.check("sde-ex-weights", svag_coefficients)
    for wrong in (lambda l: ((1 + math.sqrt(2 * l)) / 2, (1 - math.sqrt(2 * l)) / 2),
                  lambda l: ((1 - math.sqrt(2 * l - 1)) / 2, (1 + math.sqrt(2 * l - 1)) / 2),
                  lambda l: (1.0,)):
        v = X.check("sde-ex-weights", wrong)
        assert not v.correct and "wrong value for the input" in v.message
    v = X.check("sde-ex-weights", lambda l: 1 / 0)
    assert not v.correct and "ZeroDivisionError" in v.message
    assert "Not the right form" in X.check("sde-ex-weights", (1.0, 0.0)).message


def test_placeholder_and_bad_label():
    v = X.check("gd-ex-best-lr", ...)
    assert not v.correct and v.message.startswith("Waiting for your answer")
    with pytest.raises(ValueError, match="argument `label`.*gd-ex-best-lr"):
        X.check("no-such-exercise", 1)


def test_digests_roundtrip_and_windows():
    ds = X.digests("t", [10.0, -2.0, 0.0], rel=0.01)
    assert [len(d) for d in ds] == [3, 3, 1]
    entry = X.NumericAnswer("t", "three numbers", tuple(tuple(d) for d in ds), "hint")
    assert entry.check((10.0, -2.0, 0.0)).correct
    assert entry.check((10.1, -2.02, 0.0)).correct           # within the window
    assert not entry.check((10.5, -2.0, 0.0)).correct         # 5% off
    assert not entry.check((10.0, 2.0, 0.0)).correct          # wrong sign


def test_the_package_holds_no_reference_value():
    """No answer appears in the clear in the module's source (digests are hex strings)."""
    text = (ROOT / "src" / "dltheory" / "exercises.py").read_text() if (ROOT / "src").exists() \
        else pathlib.Path(X.__file__).read_text()
    text = re.sub(r"'[0-9a-f]{24}'", "", text)
    for label, right, _ in NUMERIC:
        for answer in right[:1]:
            for v in (answer if isinstance(answer, tuple) else (answer,)):
                assert not re.search(rf"(?<![\w.]){re.escape(str(v))}(?![\w])", text), (label, v)


@pytest.mark.skipif(not (ROOT / "book").exists(), reason="no book sources")
def test_every_checker_is_used_by_its_exercise_outside_the_solution():
    """Each checkable exercise has a checker cell in its chapter, outside any solution (so
    the student edition keeps it), with the placeholder ``...`` rather than an answer."""
    found = {}
    for path in sorted((ROOT / "book").glob("*/*.ipynb")):
        nb = json.loads(path.read_text())
        gated = False
        for cell in nb["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] == "markdown":
                if "{solution-start}" in src:
                    gated = True
                if "{solution-end}" in src:
                    gated = False
                continue
            for label in re.findall(r'check\("([\w-]+)", \.\.\.\)', src):
                assert not gated, (path, label)
                found[label] = path
    assert sorted(found) == sorted(X.EXERCISES), set(X.EXERCISES) ^ set(found)


def _trace(params, x):
    u, v = np.asarray(params["u"], float), np.asarray(params["v"], float)
    x = np.atleast_2d(np.asarray(x, float))
    return 8 * np.mean(np.sum(x ** 2 * (u ** 2 + v ** 2), axis=1))


# (label, an independent right answer, wrong answers a reader could plausibly write)
CODE = [
    ("hm-ex-exp", lambda n, norm, order: math.log(n) / norm ** order,
     [lambda n, norm, order: math.log(n) / norm, lambda n, norm, order: n / norm ** order,
      lambda n, norm, order: (math.log(n) + math.expm1(1)) / norm ** order]),
    ("lr-ex-odd", lambda g, a: (1 + a) * g / 4,
     [lambda g, a: (1 + a) * g / 2, lambda g, a: g / 4, lambda g, a: (1 - a) * g / 4]),
    ("lnsgd-ex-trace", _trace,
     [lambda p, x: 2 * _trace(p, x), lambda p, x: _trace(p, x) * np.atleast_2d(x).shape[0],
      lambda p, x: 8 * float(np.sum(np.square(p["u"]) + np.square(p["v"])))]),
    ("rt-ex-recovery", lambda c, eta, wd: max(math.log(c), 0.0) / -math.log(1 - eta * wd),
     [lambda c, eta, wd: math.log(c) / (eta * wd),
      lambda c, eta, wd: abs(math.log(c)) / -math.log(1 - eta * wd),
      lambda c, eta, wd: max(math.log(c), 0.0) / -math.log(1 - wd)]),
    ("eos-ex-entry", lambda s, eta, wd: math.log(2 / s) / (-2 * math.log(1 - eta * wd)),
     [lambda s, eta, wd: math.log(2 / s) / (2 * eta * wd),
      lambda s, eta, wd: math.log(2 / s) / (-math.log(1 - eta * wd)),
      lambda s, eta, wd: math.log(s / 2) / (-2 * math.log(1 - eta * wd))]),
    ("sam-ex-cycle", lambda eta, rho, lam: eta * rho * lam / (2 - eta * lam),
     [lambda eta, rho, lam: eta * rho * lam / (1 - eta * lam),
      lambda eta, rho, lam: rho, lambda eta, rho, lam: eta * rho * lam / 2]),
]


@pytest.mark.parametrize("label, right, wrongs", CODE, ids=[c[0] for c in CODE])
def test_code_answers(label, right, wrongs):
    entry = X.EXERCISES[label]
    v = X.check(label, right)
    assert v.correct and v.message == f"Correct on {len(entry.cases)} inputs", v
    for wrong in wrongs:
        v = X.check(label, wrong)
        assert not v.correct and v.message.startswith("Not yet") and entry.hint in v.message
    assert "Not the right form" in X.check(label, 0.5).message


def test_reference_kwargs_must_be_pairs():
    with pytest.raises(TypeError, match="`reference_kwargs` must be a tuple of"):
        X.CodeAnswer("x", "f", "dltheory.margin.core:smoothed_gap_bound", ((2, 1.0, 1),), "h",
                     reference_kwargs={"loss": "exponential"})

