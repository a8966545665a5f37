"""`make test`: the suite as two pytest processes side by side.

The tests that use the book build (marked ``book_build`` by tests/conftest.py: the
strict build, its pages in Chromium, the PDF, the student and Colab editions, the
slides) run in one process, which builds the book once; every other test runs in a
second process at the same time. Most of the book's time is one process (Sphinx, the
browser, the PDF) and most of the unit tests' time is XLA compiling on one core, so on
two cores the two overlap instead of queueing. With more cores the second process
spreads its tests over pytest-xdist workers (``--workers``).

The book process's output is written to ``_build/test-book.log`` and printed after the
other's. The exit status is 0 when both pass.

Usage: python tools/run_tests.py [--workers N] [--log FILE] [PYTEST_ARGS ...]
(PYTEST_ARGS go to both processes)
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: pytest's exit status when a selection holds no test
NO_TESTS = 5
#: the selection of pyproject.toml's addopts, which the `-m` given here replaces
BASE = "not paper and not estimates"


def default_workers(cores: int | None = None) -> int:
    """xdist workers for the tests outside the book build: the cores beyond two (the book
    process uses about two), at most four; 0 (one process) on two cores or fewer."""
    cores = (os.cpu_count() or 1) if cores is None else cores
    return max(0, min(4, cores - 2))


def combined_status(book: int, other: int) -> int:
    """One exit status for the two runs: the first failure, or 0 (a run that selected no
    test counts as passed, when the other ran)."""
    codes = [c for c in (book, other) if c not in (0, NO_TESTS)]
    if codes:
        return codes[0]
    return NO_TESTS if book == other == NO_TESTS else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=None,
                    help="pytest-xdist workers for the tests outside the book build "
                         "(default: the cores beyond two, at most four; 0: one process)")
    ap.add_argument("--log", type=pathlib.Path, default=ROOT / "_build" / "test-book.log",
                    help="where the book process's output goes (default: %(default)s)")
    args, rest = ap.parse_known_args(argv)
    workers = default_workers() if args.workers is None else args.workers
    if workers < 0:
        ap.error(f"argument --workers must be 0 or more; got {workers}")
    log = args.log
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("w") as out:
        book = subprocess.Popen([sys.executable, "-m", "pytest", "-m", f"book_build and {BASE}",
                                 "--durations=10", *rest], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            xdist = ["-n", str(workers)] if workers else []
            other = subprocess.run([sys.executable, "-m", "pytest", "-m",
                                    f"not book_build and {BASE}", "--durations=25", *xdist,
                                    *rest], cwd=ROOT).returncode
            t_other = time.perf_counter() - t0
            book_rc = book.wait()
        except BaseException:
            book.kill()
            raise
    print(f"\n==== the tests of the book build (one process; {log}) ====")
    print(log.read_text(), end="")
    print(f"\nmake test: {time.perf_counter() - t0:.0f} s (the other tests took "
          f"{t_other:.0f} s beside the book's); exit status: book build {book_rc}, "
          f"other tests {other}")
    return combined_status(book_rc, other)


if __name__ == "__main__":
    sys.exit(main())
