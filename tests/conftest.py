import os

# Tests run at quick scale on CPU, with a non-interactive matplotlib backend.
os.environ.setdefault("DLTHEORY_SCALE", "quick")
os.environ.setdefault("MPLBACKEND", "Agg")

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
