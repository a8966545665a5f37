import numpy as np

from dltheory import plotting


def texts(ax):
    return [t.get_text() for t in ax.texts] + [t.get_text() for t in ax.get_legend().texts]


def test_diverged_runs_say_so():
    fig, ax = plotting.figure()
    steps = np.arange(10)
    values = np.r_[np.geomspace(1, 1e3, 6), [np.nan] * 4]
    plotting.curves(ax, steps, values, label="lr 1.2", diverged_at=6)
    ax.legend()
    assert "lr 1.2: diverged at step 6" in texts(ax)
    (line, marker) = ax.lines
    assert len(line.get_xdata()) == 6  # nothing drawn past the divergence


def test_unlabelled_divergence_is_annotated_on_the_axes():
    fig, ax = plotting.figure()
    plotting.curves(ax, np.arange(4), np.array([1.0, 2.0, np.nan, np.nan]), diverged_at=2)
    assert any("diverged at step 2" in t.get_text() for t in ax.texts)


def test_sweep_curves_one_line_per_member():
    fig, ax = plotting.figure()
    vals = np.ones((3, 5))
    plotting.sweep_curves(ax, np.arange(5), vals, ["a", "b", "c"], diverged_at=[-1, 3, -1])
    labels = [t.get_text() for t in ax.get_legend().texts]
    assert labels == ["a", "b: diverged at step 3", "c"]


def test_figure_layouts():
    fig, ax = plotting.figure()
    assert hasattr(ax, "plot")
    fig, axes = plotting.figure(3)
    assert axes.shape == (3,)
    fig, axes = plotting.figure(2, 2)
    assert axes.shape == (2, 2)
    assert fig.get_size_inches()[0] == 8.4


def test_figure_validates_its_layout():
    import pytest

    with pytest.raises(ValueError, match="`ncols` must be an integer >= 1; got 0"):
        plotting.figure(0)
    with pytest.raises(ValueError, match="`height` must be a finite number > 0"):
        plotting.figure(height=-1.0)
