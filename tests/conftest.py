import os

# Tests run at quick scale on CPU (inherited by the kernels and builds they start).
os.environ.setdefault("DLTHEORY_SCALE", "quick")
# A non-interactive backend for this process only: an MPLBACKEND variable would be
# inherited by notebook kernels and stop them from showing figures inline.
os.environ.pop("MPLBACKEND", None)
import matplotlib  # noqa: E402

matplotlib.use("Agg")

import pathlib  # noqa: E402

import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    """Every test that uses the book build (the ``book`` fixture, directly or through
    another fixture) gets the ``book_build`` mark: ``make test`` (tools/run_tests.py) runs
    those in one process, which builds the book once, beside the other tests."""
    for item in items:
        if "book" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.book_build)


@pytest.fixture(scope="session")
def root() -> pathlib.Path:
    return ROOT


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


class BookBuild:
    """One strict build of the book, shared by the page, notebook and browser checks."""

    def __init__(self, proc, root: pathlib.Path):
        self.proc = proc
        self.html = root / "_build" / "html"
        self.executed = root / "_build" / "jupyter_execute"
        self.cache = root / "_build" / ".jupyter_cache"

    @property
    def log(self) -> str:
        return self.proc.stdout + self.proc.stderr

    def executed_notebook(self, path: pathlib.Path):
        """The notebook at ``path`` with the outputs this build's execution gave it.

        Read from the jupyter cache: the copies under ``_build/jupyter_execute`` carry no
        outputs when the build took the notebook from the cache.
        """
        import nbformat
        from jupyter_cache import get_cache

        nb = nbformat.read(path, as_version=4)
        _, merged = get_cache(str(self.cache)).merge_match_into_notebook(nb)
        return merged

    def execution_seconds(self) -> dict[str, float]:
        """Seconds each notebook took to execute in this build (from the jupyter cache)."""
        from jupyter_cache import get_cache

        return {pathlib.Path(r.uri).relative_to(ROOT).as_posix(): r.data["execution_seconds"]
                for r in get_cache(str(self.cache)).list_cache_records()}


@pytest.fixture(scope="session")
def book() -> BookBuild:
    """`jupyter-book build . -W -n --keep-going` from a clean execution cache, as `make book`.

    Every notebook is executed afresh: the cache is keyed on the notebooks, not on the
    package code they call, so a cached page could hide a broken package.
    """
    import os
    import shutil
    import subprocess
    import sys

    shutil.rmtree(ROOT / "_build" / ".jupyter_cache", ignore_errors=True)
    shutil.rmtree(ROOT / "_build" / "jupyter_execute", ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["DLTHEORY_SCALE"] = "quick"
    env["DLTHEORY_PROGRESS"] = "0"       # no progress bars in the static pages
    env["DLTHEORY_STATIC_TWINS"] = "1"   # widgets get their kernel-free twins
    # the notebooks run in parallel first (tools/execute_notebooks.py, as `make book`);
    # a notebook that failed there is executed again by the build, which reports it
    pre = subprocess.run([sys.executable, str(ROOT / "tools" / "execute_notebooks.py")],
                         cwd=ROOT, capture_output=True, text=True, timeout=2400, env=env)
    print(pre.stdout.strip())
    jb = pathlib.Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", ".", "-W", "-n", "--keep-going"], cwd=ROOT,
                          capture_output=True, text=True, timeout=2400, env=env)
    return BookBuild(proc, ROOT)
