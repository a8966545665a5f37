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
    assert fig.get_size_inches()[0] == 7.5  # the content width: two panels per row
    assert plotting.figure()[0].get_size_inches()[0] == 5.5


def test_figure_validates_its_layout():
    import pytest

    with pytest.raises(ValueError, match="`ncols` must be an integer >= 1; got 0"):
        plotting.figure(0)
    with pytest.raises(ValueError, match="`height` must be a finite number > 0"):
        plotting.figure(height=-1.0)


# --------------------------------------------------------------------------------------
# Legibility: no text under 9 CSS px at the book's content width
# --------------------------------------------------------------------------------------


def test_text_px_follows_the_page():
    # narrower than the column: shown at natural size, so points * dpi / 72
    assert plotting.text_px(9, 100, 600) == 12.5
    # wider: shrunk to 730 px, so the dpi cancels
    assert np.isclose(plotting.text_px(9, 100, 1250), 9 * 730 / (72 * 12.5))
    assert np.isclose(plotting.text_px(9, 200, 2500), plotting.text_px(9, 100, 1250))
    assert np.isclose(plotting.text_px(10, 100, 1000, displayed_px=500), 10 * 100 / 72 / 2)


def test_the_style_is_legible_at_the_widths_the_chapters_use():
    import matplotlib as mpl

    assert plotting.style_smallest_font_pt() >= 9
    label = min(plotting._points(mpl.rcParams[k]) for k in ("axes.labelsize", "axes.titlesize"))
    for width in (5.5, 7.0, 7.5, 9.0, 10.0):
        for dpi in (72, 100, 110):
            natural = width * dpi
            assert plotting.text_px(plotting.style_smallest_font_pt(), dpi,
                                    natural) >= plotting.MIN_TEXT_PX, (width, dpi)
            assert plotting.text_px(label, dpi, natural) >= plotting.MIN_LABEL_PX, (width, dpi)
    assert 10 < plotting.legible_width() < 11


def test_default_figures_are_legible():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", plotting.SmallTextWarning)
        for ncols, nrows in [(1, 1), (2, 1), (3, 1), (2, 2)]:
            fig, axes = plotting.figure(ncols, nrows)
            for ax in np.ravel(axes):
                ax.plot([1, 2], label="a")
                ax.set(xlabel="x", ylabel="y", title="t")
                ax.legend()
            assert plotting.smallest_text_px(fig) >= plotting.MIN_TEXT_PX


def test_a_too_wide_figure_warns_and_is_measured_small():
    import pytest

    with pytest.warns(plotting.SmallTextWarning, match=r"12.5 in wide .* 7.7 px.* at most 10.7 in"):
        fig, axes = plotting.figure(3, width=12.5)
    axes[0].plot([1, 2], label="a")
    axes[0].legend()
    assert np.isclose(plotting.smallest_text_px(fig), 9.5 * 730 / (72 * 12.5))


def test_smallest_text_counts_every_text_even_before_a_draw():
    fig, ax = plotting.figure(width=6)
    ax.plot([1, 10])
    assert plotting.smallest_font_pt(fig) == 10  # the tick labels, not drawn yet
    ax.legend(["line"], fontsize=8)
    ax.annotate("note", (1, 1), fontsize=7.5)
    assert plotting.smallest_font_pt(fig) == 7.5
    assert np.isclose(plotting.smallest_text_px(fig), 7.5 * 100 / 72)  # 600 px: not shrunk
    assert np.isclose(plotting.smallest_text_px(fig, dpi=72), 7.5)
    assert plotting.png_metadata(fig) == {plotting.PNG_FONT_KEY: "7.5",
                                          plotting.PNG_DPI_KEY: "100"}


def test_inline_figures_carry_their_smallest_font_in_the_png():
    """In a notebook, a figure from `figure` is shown by IPython's inline PNG formatter
    with its smallest font and dpi in the PNG's text chunks (read by the browser test)."""
    import base64
    import io

    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.pylabtools import select_figure_formats
    from PIL import Image

    shell = InteractiveShell.instance()
    try:
        select_figure_formats(shell, {"png"}, bbox_inches="tight")  # as the inline backend
        assert plotting._install_png_formatter()
        fig, ax = plotting.figure(width=6)
        ax.plot([1, 2], label="a")
        ax.legend(fontsize=8)
        data, _ = shell.display_formatter.format(fig)
        png = Image.open(io.BytesIO(base64.b64decode(data["image/png"])))
        assert png.text[plotting.PNG_FONT_KEY] == "8"
        assert png.text[plotting.PNG_DPI_KEY] == "100"
        select_figure_formats(shell, {"svg"})  # no PNG asked for: none is made
        data, _ = shell.display_formatter.format(fig)
        assert "image/png" not in data and "image/svg+xml" in data
    finally:
        InteractiveShell.clear_instance()


# --------------------------------------------------------------------------------------
# Redraws: kept axes and a kept layout, only while everything still fits its room
# --------------------------------------------------------------------------------------


def _draw_setting(fig, scale, title, legend=False):
    """Two panels whose tick labels, title and legend change with the setting."""
    fig, (a, b) = plotting.figure(2, width=8, height=3.5,
                                  reuse="detached" if fig is None else fig)
    x = np.linspace(0, 1, 50)
    a.plot(x, scale * x, label="line")
    b.plot(x, scale * x**2)
    a.set(title=title, xlabel="x", ylabel="value")
    if legend:
        a.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"scale = {scale:g}")
    return fig


def _boxes(fig):
    """Each axes' decorations, as the layout sees them, after a draw."""
    r = fig.canvas.get_renderer()
    return [ax.get_tightbbox(r) for ax in fig.axes]


def _overlap(p, q, tol=1.0):
    return (min(p.x1, q.x1) - max(p.x0, q.x0) > tol) and (min(p.y1, q.y1) - max(p.y0, q.y0) > tol)


def test_redraw_keeps_axes_and_layout_while_it_fits():
    fig = _draw_setting(None, 1.0, "short")
    plotting.draw(fig)
    axes, positions = list(fig.axes), [ax.get_position().bounds for ax in fig.axes]
    ticks = fig.axes[1].yaxis.majorTicks[0]
    fig = _draw_setting(fig, 2.0, "short")  # same labels' widths: the layout is kept
    plotting.draw(fig)
    assert fig.axes == axes and fig.axes[1].yaxis.majorTicks[0] is ticks
    assert [ax.get_position().bounds for ax in fig.axes] == positions
    assert fig.axes[0].get_title() == "short" and fig._suptitle.get_text() == "scale = 2"


def test_redraw_runs_the_layout_again_when_something_outgrows_its_room():
    fig = _draw_setting(None, 1.0, "short")
    plotting.draw(fig)
    positions = [ax.get_position().bounds for ax in fig.axes]
    for scale, title, legend in [(1e5, "short", False), (3.0, "a much longer title here", False),
                                 (3.0, "short", True), (1e-3, "short", False)]:
        fig = _draw_setting(fig, scale, title, legend)
        plotting.draw(fig)
        boxes = _boxes(fig)
        assert not _overlap(*boxes), (scale, title, legend)  # nothing runs into the other panel
        for box in boxes:  # nor out of the figure
            assert box.x0 >= -1 and box.y0 >= -1
            assert box.x1 <= fig.bbox.x1 + 1 and box.y1 <= fig.bbox.y1 + 1
    assert [ax.get_position().bounds for ax in fig.axes] != positions  # it did move


def test_redraw_with_a_new_grid_or_without_keeping_makes_new_axes(monkeypatch):
    fig = _draw_setting(None, 1.0, "t")
    plotting.draw(fig)
    old = list(fig.axes)
    fig2, ax = plotting.figure(1, width=8, height=3.5, reuse=fig)  # one panel now
    assert fig2 is fig and fig.axes == [ax] and ax not in old
    ax.remove()  # a grid axes gone: the grid is built again
    fig2, ax2 = plotting.figure(1, width=8, height=3.5, reuse=fig)
    assert fig.axes == [ax2] and ax2 is not ax
    ax = ax2
    monkeypatch.setattr(plotting, "KEEP_AXES_ON_REUSE", False)
    fig3, ax3 = plotting.figure(1, width=8, height=3.5, reuse=fig)
    assert fig.axes == [ax3] and ax3 is not ax


def test_redraw_removes_what_the_last_draw_added_on_top_of_the_grid():
    fig = _draw_setting(None, 1.0, "t")
    fig.axes[0].twinx()
    fig.text(0.5, 0.01, "note")
    fig = _draw_setting(fig, 1.0, "t")
    assert len(fig.axes) == 2 and [t.get_text() for t in fig.texts] == ["scale = 1"]


def test_math_text_parses_are_cached_beyond_matplotlibs_50():
    from matplotlib import mathtext

    assert plotting._enlarge_mathtext_cache()  # this matplotlib has the cache
    info = mathtext.MathTextParser._parse_cached.cache_info()
    assert info.maxsize >= plotting.MATHTEXT_CACHE_SIZE
    fig, ax = plotting.figure(reuse="detached")
    labels = [f"$10^{{{k}}}$" for k in range(-40, 40)]  # more than 50 distinct parses
    for label in labels:
        ax.text(0.5, 0.5, label)
    fig.canvas.draw()
    before = mathtext.MathTextParser._parse_cached.cache_info()
    fig.canvas.draw()  # the second draw parses nothing again
    after = mathtext.MathTextParser._parse_cached.cache_info()
    assert after.misses == before.misses
