"""Smoke runs of the benchmark scripts at tiny sizes, so they cannot rot (not timings).

Every ``benchmarks/*.py`` script except the helpers (``_*.py``) and the driver
(``run_all.py``, whose output assembly is tested directly) runs with ``--smoke`` and must
print a Markdown table.
"""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SCRIPTS = sorted(p for p in BENCH.glob("*.py")
                 if not p.name.startswith("_") and p.name != "run_all.py")


def test_every_script_is_run_by_make_bench():
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    assert sorted(run_all.SCRIPTS) == sorted(p.stem for p in SCRIPTS)


@pytest.mark.slow  # development tools of the lock file's environment (make bench), not
# of the readers' environments: the Colab and minimum-versions jobs leave them out
@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_benchmark_script_runs(script):
    proc = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| figure |" in proc.stdout
    assert proc.stdout.lstrip().startswith("## "), "each script prints a Markdown section"


def test_results_page_has_machine_load_sections_and_notes():
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    text = run_all.render("x86_64, 2 CPUs", "load 1", "load 2",
                          [("book", "## Book\n\n| figure |\n|---|", 3.0, 0),
                           ("loops", "", 1.0, 2)], "## Notes\n\nwhy")
    assert text.startswith("# Benchmark results")
    assert "x86_64, 2 CPUs" in text and "Before: load 1" in text and "After: load 2" in text
    assert "## Book" in text and "## loops" in text and "exit status 2" in text
    assert text.rstrip().endswith("why")
