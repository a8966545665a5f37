"""tools/mutate.py (make mutate): its operator selection, targets, equivalents and report.

The mutation run itself takes hours and is not part of the suite; these check what the
committed report and its list of equivalent mutants rest on.
"""

import importlib.util
import re
import sys
import tomllib

import pytest


@pytest.fixture(scope="module")
def mutate(root):
    spec = importlib.util.spec_from_file_location("mutate_tool", root / "tools" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def _skipped(mutate, operator: str) -> bool:
    # cosmic-ray's operators filter: the patterns joined as alternatives, matched at the start
    pattern = re.compile("|".join(f"(:?{e})" for e in [mutate.EXCLUDE]))
    return pattern.match(operator) is not None


@pytest.mark.parametrize("operator", [
    "core/ReplaceBinaryOperator_Add_Sub", "core/ReplaceBinaryOperator_Div_Mul",
    "core/ReplaceBinaryOperator_Pow_Mul", "core/ReplaceComparisonOperator_Lt_LtE",
    "core/ReplaceComparisonOperator_Eq_NotEq", "core/ReplaceComparisonOperator_Is_IsNot",
    "core/NumberReplacer", "core/AddNot", "core/ReplaceTrueWithFalse",
    "core/ReplaceAndWithOr", "core/ZeroIterationForLoop", "core/RemoveDecorator",
    "core/ReplaceUnaryOperator_USub_UAdd", "core/ExceptionReplacer",
])
def test_the_slips_of_the_pen_are_kept(mutate, operator):
    assert not _skipped(mutate, operator)


@pytest.mark.parametrize("operator", [
    "core/ReplaceBinaryOperator_Add_BitOr", "core/ReplaceBinaryOperator_Mul_LShift",
    "core/ReplaceBinaryOperator_Sub_Pow", "core/ReplaceBinaryOperator_Add_Mod",
    "core/ReplaceComparisonOperator_Eq_Is", "core/ReplaceComparisonOperator_Lt_Gt",
    # a kept name with a suffix is another operator
    "core/ReplaceBinaryOperator_Add_SubX",
])
def test_replacements_that_only_break_the_program_are_skipped(mutate, operator):
    assert _skipped(mutate, operator)


def test_every_target_and_its_tests_exist(mutate, root):
    for target in mutate.TARGETS.values():
        assert (root / target.file).is_file(), target.file
        for arg in target.tests:
            assert (root / arg.split("::")[0]).is_file(), arg
        assert target.bad_input.strip(), target.name


def test_every_equivalent_mutant_names_a_line_of_its_module_and_why(mutate, root):
    entries = tomllib.loads(mutate.EQUIVALENT.read_text()).get("equivalent", [])
    assert entries, "equivalent.toml lists no mutant"
    for entry in entries:
        assert {"module", "operator", "line", "why"} <= set(entry) <= {
            "module", "operator", "line", "next", "to", "why"}, entry
        assert entry["module"] in mutate.TARGETS, entry
        re.compile(entry["operator"])
        source = [s.strip() for s in (root / mutate.TARGETS[entry["module"]].file).read_text().splitlines()]
        assert entry["line"].strip() in source, f"no such line in {entry['module']}: {entry['line']}"
        if "next" in entry:  # picks one of the line's occurrences
            at = [i for i, s in enumerate(source) if s == entry["line"].strip()]
            assert sum(entry["next"].strip() in source[i + 1:i + 4] for i in at) == 1, entry
        assert len(entry["why"].split()) >= 5, entry


def test_report_scores_killed_over_mutants_less_equivalent(mutate, monkeypatch):
    target = mutate.TARGETS["sde/svag"]
    rows = (
        [{"operator": "core/AddNot", "line": 1, "text": "a", "outcome": "killed"}] * 6
        + [{"operator": "core/NumberReplacer", "line": 2, "text": "b", "outcome": "incompetent"}]
        + [{"operator": "core/RemoveDecorator", "line": 3, "text": "@jax.jit", "outcome": "survived"}]
        + [{"operator": "core/AddNot", "line": 4, "text": "if x:", "outcome": "survived"}] * 2
        + [{"operator": "core/NumberReplacer", "line": 5, "text": "y = 1", "to": "y = 2",
            "outcome": "survived"},
           {"operator": "core/NumberReplacer", "line": 5, "text": "y = 1", "to": "y = 0",
            "outcome": "survived"}]
    )
    monkeypatch.setattr(mutate, "_results", lambda t: rows if t is target else [])
    monkeypatch.setattr(mutate, "_equivalents", lambda: [
        {"module": "sde/svag", "operator": "core/RemoveDecorator", "line": "@jax.jit", "why": "w"},
        {"module": "sde/svag", "operator": "core/NumberReplacer", "line": "y = 1", "to": "y = 2",
         "why": "w"},
    ])
    text = mutate.report([target, mutate.TARGETS["sde/rules"]])
    # 7 killed of 12 mutants, two of them equivalent: 7/10
    assert "| `sde/svag` | 12 | 7 | 2 | 3 | 70% |" in text
    assert "line 5, `core/NumberReplacer`: `y = 1`" in text  # the y = 0 mutant
    assert "| `sde/rules` | not run |" in text
    assert "line 4, `core/AddNot`: `if x:`" in text
    assert "@jax.jit`" not in text.split("## Survivors")[1]


def test_report_keeps_modules_without_a_session_from_the_earlier_report(mutate, monkeypatch):
    svag, rules, loop = (mutate.TARGETS[n] for n in ("sde/svag", "sde/rules", "training/loop"))
    rows = [{"operator": "core/AddNot", "line": 1, "text": "a", "outcome": "killed"}] * 3
    monkeypatch.setattr(mutate, "_results", lambda t: rows if t is svag else [])
    monkeypatch.setattr(mutate, "_equivalents", lambda: [])
    earlier = "\n".join([
        "| `sde/svag` | 9 | 1 | 0 | 8 | 11% |",
        "| `sde/rules` | 179 | 174 | 5 | 0 | 100% |",
        "| `training/loop` | 161 | 139 | 20 | 2 | 99% |",
        "", "## Survivors in `sde/svag`", "", "- line 9, `core/AddNot`: `old`",
        "", "## Survivors in `training/loop`", "",
        "- line 29, `core/NumberReplacer`: `PROGRESS_AFTER_SECONDS = 2.0`",
    ])
    text = mutate.report([svag, rules, loop], earlier)
    assert "| `sde/svag` | 3 | 3 | 0 | 0 | 100% |" in text  # the session wins
    assert "`old`" not in text
    assert "| `sde/rules` | 179 | 174 | 5 | 0 | 100% | (earlier run)" in text
    assert "## Survivors in `training/loop`\n\n- line 29, `core/NumberReplacer`" in text
    # written again from its own output, nothing is marked twice or lost
    assert mutate.report([svag, rules, loop], text) == text


MODULE = '''\
import functools

SCALE = 2


@functools.lru_cache
def double(x):
    y = x * SCALE
    return y


class Box:
    size: int = 3

    def area(self):
        def side():
            return self.size + 0
        return side() ** 2
'''


def test_select_tests_runs_the_tests_that_executed_the_changed_function(mutate):
    # coverage contexts by line: double's body by test_a, area's (and side's) by test_b
    contexts = {"7": [""], "8": ["", "test_x.test_a"], "9": ["test_x.test_a"],
                "17": ["test_x.TestC.test_b"], "18": ["test_bad_input.test_bad_input_is_rejected"]}

    def select(old, new):
        return mutate.select_tests(MODULE, MODULE.replace(old, new), contexts)

    assert select("x * SCALE", "x / SCALE") == ["tests/test_x.py::test_a"]
    # a change in a nested function selects every test of the outermost one, bad input first
    assert select("self.size + 0", "self.size - 0") == [
        "tests/test_bad_input.py::test_bad_input_is_rejected", "tests/test_x.py::TestC::test_b"]
    # module level, a class body, a decorator (removed: lines shift): every test
    assert select("SCALE = 2", "SCALE = 3") is None
    assert select("size: int = 3", "size: int = 4") is None
    assert select("@functools.lru_cache\n", "") is None
    # a function no test executed in this process: every test (a subprocess may run it)
    assert mutate.select_tests(MODULE, MODULE.replace("x * SCALE", "x / SCALE"), {}) is None
