"""dltheory.exercises: right answers pass, wrong ones fail with a hint, and the package
never holds a solution in the clear."""

import json
import math
import pathlib
import re

import pytest

from dltheory import exercises as X
from dltheory.sde import svag_coefficients

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The references, known to the tests only: (label, right answers, wrong answers)
NUMERIC = [
    ("gd-ex-best-lr", [346, 345, 346.0], [347, 350, 173, 692, -346, 0]),
    ("glrl-ex-linear", [(4.5, 3.5), [4.5, 3.49]], [(3.5, 4.5), (4.5, 4.0), (4.0, 3.5)]),
    ("ilr-ex-relax", [24.62, 25, 24.3], [12.3, 50, 196, 23.0]),
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
