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


@pytest.fixture(scope="session")
def root() -> pathlib.Path:
    return ROOT


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
