"""`make test`'s runner (tools/run_tests.py): the book build's tests in one process, the
rest in another; together they are the whole suite, each test once."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_tests  # noqa: E402


PLUGIN = """
def pytest_collection_finish(session):
    for item in session.items:
        mark = "book" if item.get_closest_marker("book_build") else "other"
        print("SPLIT", mark, item.nodeid)
"""


def test_the_two_processes_split_the_suite_and_the_book_users_stay_together(tmp_path):
    """One collection of the suite (as `make test` selects it), each test with the process
    its mark sends it to: every user of the book fixture goes to the book's process."""
    (tmp_path / "split_plugin.py").write_text(PLUGIN)
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", "-p", "split_plugin",
                           "-m", run_tests.BASE], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    split = [ln.split(" ", 2)[1:] for ln in proc.stdout.splitlines() if ln.startswith("SPLIT ")]
    book = {t for m, t in split if m == "book"}
    other = {t for m, t in split if m == "other"}
    assert book and other and len(book) + len(other) == len(split)
    # the build itself, and tests that reach it only through another fixture (`built`)
    assert "tests/test_book.py::test_book_builds_without_warnings" in book
    assert "tests/test_browser.py::test_every_page_renders_in_a_browser" in book
    assert not any(t.startswith("tests/test_book.py::") for t in other)
    assert "tests/test_run_tests.py::test_the_exit_status_is_the_first_failure" in other
    # the two selections run_tests.py passes are these sets
    for marks, want in ((f"book_build and {run_tests.BASE}", book),
                        (f"not book_build and {run_tests.BASE}", other)):
        sel = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                              "-p", "no:cacheprovider", "-m", marks, "tests/test_book.py",
                              "tests/test_run_tests.py"], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
        got = {ln for ln in sel.stdout.splitlines() if "::" in ln}
        assert got == {t for t in want if t.startswith(("tests/test_book.py::",
                                                        "tests/test_run_tests.py::"))}


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


def test_the_base_selection_is_pyprojects():
    """Each process's `-m` replaces the one in pyproject.toml's addopts, so it repeats it."""
    import tomllib

    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"]["addopts"]
    assert f"-m '{run_tests.BASE}'" in addopts


@pytest.mark.parametrize("book_rc, other_rc, want", [(1, 0, 1), (0, 2, 2), (0, 0, 0)])
def test_main_reports_either_processes_failure_and_prints_the_books_log(
        monkeypatch, tmp_path, capsys, book_rc, other_rc, want):
    """main() with the two pytest runs replaced: the book's output reaches the log and the
    console, each run gets its own selection, and a failure of either sets the status."""
    calls = []

    class Book:
        def __init__(self, cmd, stdout, **kw):
            calls.append(cmd)
            stdout.write("the book's tests said this\n")
            stdout.flush()

        def wait(self):
            return book_rc

    def other(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, other_rc)

    monkeypatch.setattr(run_tests.subprocess, "Popen", Book)
    monkeypatch.setattr(run_tests.subprocess, "run", other)
    log = tmp_path / "book.log"
    assert run_tests.main(["--workers", "3", "--log", str(log), "-x"]) == want
    assert "the book's tests said this" in log.read_text()
    assert "the book's tests said this" in capsys.readouterr().out
    book_cmd, other_cmd = calls
    assert book_cmd[book_cmd.index("-m", 3) + 1] == f"book_build and {run_tests.BASE}"
    assert other_cmd[other_cmd.index("-m", 3) + 1] == f"not book_build and {run_tests.BASE}"
    assert "-n" not in book_cmd and other_cmd[other_cmd.index("-n") + 1] == "3"
    assert book_cmd[-1] == other_cmd[-1] == "-x"
