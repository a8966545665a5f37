"""`make test`'s runner (tools/run_tests.py): the book build's tests in one process, the
rest in another; together they are the whole suite, each test once."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_tests  # noqa: E402


def _collect(*marks: str) -> set[str]:
    args = ["-m", marks[0]] if marks else []
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {ln for ln in proc.stdout.splitlines() if "::" in ln}


def test_the_two_processes_split_the_suite_and_the_book_users_stay_together():
    book = _collect(f"book_build and {run_tests.BASE}")
    other = _collect(f"not book_build and {run_tests.BASE}")
    everything = _collect()
    assert book and other and not book & other
    assert book | other == everything
    # the build itself, and tests that reach it only through another fixture (`built`)
    assert "tests/test_book.py::test_book_builds_without_warnings" in book
    assert "tests/test_browser.py::test_every_page_renders_in_a_browser" in book
    assert not any(t.startswith("tests/test_book.py::") for t in other)
    assert "tests/test_run_tests.py::test_the_exit_status_is_the_first_failure" in other


def test_the_exit_status_is_the_first_failure():
    assert run_tests.combined_status(0, 0) == 0
    assert run_tests.combined_status(1, 0) == 1
    assert run_tests.combined_status(0, 2) == 2
    assert run_tests.combined_status(1, 2) == 1
    # a selection with no test (pytest's 5) is no failure when the other ran
    assert run_tests.combined_status(5, 0) == 0 and run_tests.combined_status(0, 5) == 0
    assert run_tests.combined_status(5, 1) == 1
    assert run_tests.combined_status(5, 5) == 5


@pytest.mark.parametrize("cores, workers", [(1, 0), (2, 0), (3, 1), (4, 2), (6, 4), (64, 4)])
def test_workers_are_the_cores_beyond_two_at_most_four(cores, workers):
    assert run_tests.default_workers(cores) == workers


def test_negative_workers_are_refused(capsys):
    with pytest.raises(SystemExit):
        run_tests.main(["--workers", "-1"])
    assert "--workers must be 0 or more" in capsys.readouterr().err
