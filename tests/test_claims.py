"""The claims ledger (dltheory.claims) and the drift guard (tools/check_numbers.py).

The registry must cover every ``test_claim_*`` test and every theorem of the book, each
registered test must check its claim's bound through the registry, and the drift guard
must fail when a glued number moves.
"""

import ast
import json
import math
import pathlib
import re
import subprocess
import sys

import pytest

from dltheory import claims, notebook

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
needs_book_tools = pytest.mark.skipif(not (TOOLS / "check_numbers.py").exists(),
                                      reason="the book's tools are not in this checkout")


def _claim_tests() -> dict[str, ast.FunctionDef]:
    """``"tests/<file>::<name>"`` -> the function, for every test_claim_* in tests/."""
    out = {}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_claim_"):
                out[f"tests/{path.name}::{node.name}"] = node
    return out


def _checked_labels(fn: ast.FunctionDef) -> set[str]:
    return {node.args[0].value for node in ast.walk(fn)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "check"
            and getattr(node.func, "value", None) is not None
            and getattr(node.func.value, "id", "") == "claims"
            and node.args and isinstance(node.args[0], ast.Constant)}


@pytest.mark.skipif(not (ROOT / "tests" / "test_margin.py").exists(), reason="no test sources")
def test_every_claim_test_is_registered_and_checks_its_bound():
    tests = _claim_tests()
    registered = {c.test for c in claims.CLAIMS}
    assert sorted(set(tests) - registered) == [], "test_claim_* tests missing from the registry"
    assert sorted(registered - set(tests)) == [], "registered tests that do not exist"
    for c in claims.CLAIMS:
        assert c.label in _checked_labels(tests[c.test]), (
            f"{c.test} does not call claims.check({c.label!r}, ...)")


def _chapter_sources() -> dict[str, str]:
    import nbformat

    out = {}
    for chapter in claims.chapters():
        nb = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
        out[chapter] = nb
    return out


@pytest.mark.skipif(not (ROOT / "book").exists(), reason="no book sources")
def test_every_theorem_shows_its_ledger_line_and_every_chapter_publishes():
    directive = re.compile(r"```\{prf:(theorem|conjecture)\}[^\n]*\n:label: ([\w-]+)\n")
    for chapter, nb in _chapter_sources().items():
        markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        labels = [m.group(2) for m in directive.finditer(markdown)]
        assert labels, chapter
        for label in labels:
            assert any(c.theorem == label for c in claims.CLAIMS), f"{chapter}: {label} has no claim"
            assert f"{{glue:md}}`ledger-{label}:myst`" in markdown, f"{chapter}: {label}"
        for c in claims.CLAIMS:
            if c.chapter == chapter and c.theorem:
                assert c.theorem in labels, f"{c.label}: {c.theorem} is not a theorem of {chapter}"
        assert f'claims.publish("{chapter}")' in code, chapter


@pytest.mark.skipif(not (ROOT / "book" / "numbers.json").exists(), reason="no known values")
def test_every_claim_reads_names_its_chapter_glues():
    known = json.loads((ROOT / "book" / "numbers.json").read_text())["chapters"]
    for c in claims.CLAIMS:
        missing = c.names() - set(known[c.chapter])
        assert not missing, f"{c.label} reads {missing}, which {c.chapter} does not glue"
        if c.value is not None:      # and the known values meet the claim
            value = c.measure({k: v["value"] for k, v in known[c.chapter].items()})
            assert c.bound.holds(value), (c.label, value, c.bound.text())


@needs_book_tools
def test_claims_page_is_up_to_date():
    proc = subprocess.run([sys.executable, str(TOOLS / "claims_page.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------ the registry's logic


def test_bounds():
    assert claims.at_most(0.9).holds(0.9) and not claims.at_most(0.9).holds(0.91)
    assert claims.at_least(3).holds(3.5) and not claims.at_least(3).holds(2.9)
    b = claims.between(0.9, 1.1)
    assert b.holds(1.0) and not b.holds(0.89) and not b.holds(1.11)
    assert not b.holds(float("nan")) and not b.holds("1.0x") and not b.holds(None)
    assert claims.at_most(1e-8).text() == "≤ 1e-8"
    assert b.text() == "in [0.9, 1.1]"
    with pytest.raises(ValueError, match="low"):
        claims.Bound()
    with pytest.raises(ValueError, match="below"):
        claims.Bound(2.0, 1.0)


def test_check_uses_the_registered_bound():
    assert claims.check("fragility", 0.78) == 0.78
    with pytest.raises(claims.ClaimFailed, match=r"fragility.*0\.95.*≤ 0\.9"):
        claims.check("fragility", 0.95)
    with pytest.raises(claims.ClaimFailed):
        claims.check("fragility", float("nan"))
    with pytest.raises(ValueError, match="argument `label`"):
        claims.check("no-such-claim", 1.0)


def test_labels_are_unique_and_fields_are_well_formed():
    labels = [c.label for c in claims.CLAIMS]
    assert len(labels) == len(set(labels))
    bib = (ROOT / "book" / "references.bib").read_text() if (ROOT / "book").exists() else None
    for c in claims.CLAIMS:
        assert re.fullmatch(r"[a-z0-9-]+", c.label)
        assert re.fullmatch(r"tests/test_\w+\.py::test_claim_\w+", c.test), c.test
        assert c.statement.endswith(".") and c.measures
        if bib is not None:
            assert f"{{{c.paper}," in bib, c.paper


def test_evaluate_and_the_ledger_line():
    glued = {"lr_ratio": 0.995, "lr_align": 0.97, "lr_frag_ratio": 0.95}
    res = claims.evaluate("margin/two_layer_leaky_relu", glued)
    by = {c.label: (v, ok) for c, v, ok in res}
    assert by["symmetric-global-max"] == (0.995, True)
    assert by["fragility"] == (0.95, False)
    line = claims.ledger_line([r for r in res if r[0].theorem == "thm-lr-symmetric"])
    assert line.startswith("Checked by `test_claim_symmetric")
    assert "0.9950 (needs in [0.99, 1.01], holds)" in line
    bad = claims.ledger_line([r for r in res if r[0].label == "fragility"])
    assert "0.950 (needs ≤ 0.9, **does not hold**)" in bad
    with pytest.raises(KeyError, match="lr_frag_ratio"):
        claims.evaluate("margin/two_layer_leaky_relu", {"lr_ratio": 1.0, "lr_align": 1.0})
    with pytest.raises(ValueError, match="argument `chapter`"):
        claims.evaluate("no/such_chapter", {})


def test_publish_glues_the_values_lines_and_dumps(tmp_path, monkeypatch):
    monkeypatch.setenv("DLTHEORY_GLUE_DIR", str(tmp_path))
    glued = {"lr_ratio": 0.995, "lr_align": 0.97, "lr_frag_ratio": 0.78}
    ledger = claims.publish("margin/two_layer_leaky_relu", glued)
    seen = notebook.glued()
    assert seen["claim-fragility"] == 0.78 and seen["claim-fragility-status"] == "holds"
    assert "ledger-thm-lr-symmetric" in seen and "fragility" not in seen["ledger-thm-lr-symmetric"]
    table = ledger._repr_markdown_()
    assert table.count("\n") == len(ledger) + 1 and "| holds |" in table
    dump = json.loads((tmp_path / "margin__two_layer_leaky_relu.json").read_text())
    assert dump["chapter"] == "margin/two_layer_leaky_relu"
    assert dump["values"]["claim-fragility"] == 0.78


def test_ledger_links_each_test_to_its_line_in_the_repository():
    if not (ROOT / "_config.yml").exists():
        pytest.skip("no book configuration")
    c = claims.get("fragility")
    url = claims._source_url(c, ROOT)
    line = int(url.rsplit("#L", 1)[1])
    src = (ROOT / c.test_file).read_text().splitlines()[line - 1]
    assert src.startswith(f"def {c.test_name}(")
    assert "/blob/" in url and url.startswith("https://")


# ------------------------------------------------------------------ the drift guard


@pytest.fixture()
def guard():
    if not (TOOLS / "check_numbers.py").exists():
        pytest.skip("the book's tools are not in this checkout")
    sys.path.insert(0, str(TOOLS))
    import check_numbers

    return check_numbers


def _known():
    return {"defaults": {"rtol": 0.1, "atol": 0.0, "tiny": 1e-6},
            "volatile": ["elapsed"],
            "chapters": {"a/b": {"x": {"value": 2.0}, "r": {"value": 3e-13},
                                 "t": {"value": "605, 325"}, "s": {"value": "yes"},
                                 "n": {"value": 0.01, "atol": 0.02}},
                         "empty": {}}}


def test_drift_guard_passes_when_nothing_moved_and_flags_each_kind_of_move(guard):
    fresh = {"a/b": {"x": 2.05, "r": 1e-12, "t": "610, 320", "s": "yes", "n": 0.025,
                     "elapsed": 99.0}}
    assert guard.compare(_known(), fresh) == []
    for name, value, why in [("x", 2.3, "moved 15.0%"), ("r", 1e-5, "rounding-level"),
                             ("t", "700, 325", "number in the text"), ("s", "no", "text"),
                             ("t", "605 and 325", "text changed"), ("n", 0.04, "moved"),
                             ("x", math.nan, "not finite")]:
        moved = guard.compare(_known(), {"a/b": {**fresh["a/b"], name: value}})
        assert [(r[0], r[1]) for r in moved] == [("a/b", name)], (name, moved)
        assert why in moved[0][4]
    gone = guard.compare(_known(), {"a/b": {k: v for k, v in fresh["a/b"].items() if k != "x"}})
    assert gone[0][1:] == ("x", "2.0", "", "no longer glued")
    new = guard.compare(_known(), {"a/b": {**fresh["a/b"], "y": 1.0}})
    assert new[0][1] == "y" and "new" in new[0][4]
    assert guard.compare(_known(), {})[0][4] == "chapter missing from this build"
    # a chapter the known values have never seen fails as a whole
    unseen = guard.compare(_known(), {**fresh, "c/new": {"z": 1.0, "elapsed": 3.0}})
    assert [(r[0], r[1]) for r in unseen] == [("c/new", "*")] and "new chapter" in unseen[0][4]
    assert guard.compare(_known(), {**fresh, "c/timing": {"elapsed": 3.0}}) == []


def test_drift_guard_fails_on_one_perturbed_known_value(guard, tmp_path):
    """The command-line guard against the committed known values: it passes on values
    equal to them and fails, with a table, when one is perturbed by 20%."""
    known = json.loads((ROOT / "book" / "numbers.json").read_text())
    fresh = {ch: {k: e["value"] for k, e in entries.items()}
             for ch, entries in known["chapters"].items()}
    dumps = tmp_path / "dumps"
    dumps.mkdir()

    def write(values):
        for ch, vals in values.items():
            (dumps / f"{ch.replace('/', '__')}.json").write_text(
                json.dumps({"chapter": ch, "values": vals}))

    write(fresh)
    assert guard.main(["--dumps", str(dumps)]) == 0
    chapter, name = "margin/two_layer_leaky_relu", "lr_frag_ratio"
    fresh[chapter][name] *= 1.2
    write(fresh)
    proc = subprocess.run([sys.executable, str(TOOLS / "check_numbers.py"), "--dumps",
                           str(dumps)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert name in proc.stderr and "moved 20.0%" in proc.stderr
    assert "make accept-numbers" in proc.stderr


def test_accept_keeps_each_names_tolerance(guard):
    fresh = {"a/b": {"x": 5.0, "n": 0.5, "elapsed": 3.0, "ledger-thm": "line"}}
    out = guard.accept(fresh, _known())
    assert out["chapters"]["a/b"] == {"x": {"value": 5.0}, "n": {"value": 0.5, "atol": 0.02}}


def test_parse_plain(guard):
    assert guard.parse_plain("0.5") == 0.5
    assert guard.parse_plain("np.float64(2.5)") == 2.5
    assert guard.parse_plain("'yes'") == "yes"
    assert guard.parse_plain("12") == 12


def test_value_expressions_may_call_abs_min_max():
    c = claims.get("label-noise-plain-fails")
    assert c.names() == {"toy_sgd_test", "toy_gd_test"}
    assert c.measure({"toy_sgd_test": 1.2, "toy_gd_test": 0.9}) == 0.9
    assert claims.get("sam-toy-top-eigenvalue").measure({"sam_x1_full": 0.999}) == \
        pytest.approx(1e-3)


def test_dump_glued_writes_a_page_without_claims(tmp_path, monkeypatch):
    """A page with glued numbers but no claims (the paper-scale page) dumps them too."""
    import json

    from dltheory import notebook

    monkeypatch.setenv("DLTHEORY_GLUE_DIR", str(tmp_path))
    notebook.glue("dump_test_value", 2.5)
    notebook.glue_markdown("ledger-dump-test", "a ledger line")
    notebook.dump_glued("paper_scale")
    doc = json.loads((tmp_path / "paper_scale.json").read_text())
    assert doc["chapter"] == "paper_scale"
    assert doc["values"]["dump_test_value"] == 2.5
    assert "ledger-dump-test" not in doc["values"]
    monkeypatch.delenv("DLTHEORY_GLUE_DIR")
    notebook.dump_glued("other/page")   # without the variable: nothing written
    assert not (tmp_path / "other__page.json").exists()
