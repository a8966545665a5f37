"""One visual style for the book and the plots that recur across chapters.

Every figure in the book goes through :func:`figure` (the style, a readable size) and,
for runs from :mod:`dltheory.training`, through :func:`curves` and :func:`sweep_curves`,
which draw ``"diverged at step k"`` on a run that diverged instead of a broken line.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from dltheory import validation as V

__all__ = ["STYLE", "use_style", "style", "figure", "draw", "curves", "sweep_curves", "mark_diverged",
           "colors"]

#: The matplotlib rcParams of the book's figures, large enough to read on a laptop screen.
STYLE: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "figure.figsize": (6.4, 4.0),
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9.5,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.8,
    "axes.prop_cycle": mpl.cycler(color=["#1f5aa6", "#d1495b", "#2a9d8f", "#e9a03b",
                                         "#6c4f9c", "#4d4d4d", "#8ab17d", "#b56576"]),
    "figure.constrained_layout.use": True,
}


def use_style() -> None:
    """Apply :data:`STYLE` to matplotlib globally (done when this module is imported).

    The style is set globally rather than in a context manager around each figure: in
    a notebook, the first pyplot call switches on interactive mode, and a context that
    restored the old settings would switch it off again, so later figures would not be
    shown.
    """
    mpl.rcParams.update(STYLE)


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context manager applying :data:`STYLE` temporarily (for figures outside the book)."""
    with mpl.rc_context(STYLE):
        yield


use_style()

#: Entries of matplotlib's cache of parsed math text (its default is 50).
MATHTEXT_CACHE_SIZE = 2048


def _enlarge_mathtext_cache(size: int = MATHTEXT_CACHE_SIZE) -> bool:
    """Give matplotlib's math-text parser a larger cache; ``False`` if it has no such cache.

    Log axes label their ticks with math text (``$\\mathdefault{10^{-3}}$``). A widget's
    figure with a few log panels shows more distinct labels, in two renderings (one to
    measure, one to draw), than the 50 parses matplotlib keeps, so every redraw parsed
    them all again with pyparsing: a quarter of a redraw in the scale-invariance
    chapter's widget. The parses are a few kilobytes each. This wraps a private matplotlib
    method (``MathTextParser._parse_cached``, an ``functools.lru_cache``) with a larger
    cache and does nothing if a matplotlib release no longer has it.
    """
    from matplotlib import mathtext

    cached = getattr(mathtext.MathTextParser, "_parse_cached", None)
    inner = getattr(cached, "__wrapped__", None)
    if inner is None or not hasattr(cached, "cache_info"):
        return False
    if cached.cache_info().maxsize is None or cached.cache_info().maxsize >= size:
        return True
    mathtext.MathTextParser._parse_cached = functools.lru_cache(size)(inner)
    return True


_enlarge_mathtext_cache()


def figure(ncols: int = 1, nrows: int = 1, *, width: float | None = None,
           height: float | None = None, reuse: Any = None, **kwargs: Any):
    """A figure in the book's style: ``(fig, axes)`` like ``plt.subplots``.

    The default size is 4.2 inches wide per column (up to 12.6) and 3.6 per row.

    Args:
      reuse: ``None`` for a new pyplot figure (shown inline in a notebook), or
        ``"detached"`` for a new figure that pyplot does not manage (never shown on its
        own; a widget renders it), or an existing detached figure to clear and draw
        into again. Redrawing one figure is much faster than making a new one:
        matplotlib caches text layout and math on the figure's renderer, the axes and
        their ticks are kept when the grid is the same, and :func:`draw` keeps the
        layout while it fits.
    """
    ncols = V.check_int("ncols", ncols, minimum=1)
    nrows = V.check_int("nrows", nrows, minimum=1)
    if width is not None:
        V.check_positive("width", width)
    if height is not None:
        V.check_positive("height", height)
    width = width if width is not None else min(4.2 * ncols, 12.6)
    height = height if height is not None else 3.6 * nrows
    if reuse is None:
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False,
                                 **kwargs)
    else:
        if isinstance(reuse, str):
            if reuse != "detached":
                raise ValueError(f"argument `reuse` must be None, 'detached' or a figure; "
                                 f"got {reuse!r}")
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            fig = Figure(figsize=(width, height), layout="constrained")
            FigureCanvasAgg(fig)
            axes = _new_grid(fig, nrows, ncols, kwargs)
        else:
            fig = reuse
            axes = _reused_grid(fig, width, height, nrows, ncols, kwargs)
    axes = axes[0, 0] if axes.size == 1 else (axes[0] if nrows == 1 else axes)
    return fig, axes


#: ``False`` turns off keeping a redrawn figure's axes, tick objects and layout (to
#: compare the two paths, as a test does).
KEEP_AXES_ON_REUSE = True


def _new_grid(fig, nrows: int, ncols: int, kwargs: dict) -> np.ndarray:
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    fig._dltheory_grid = ((nrows, ncols, repr(sorted(kwargs.items()))), axes)
    fig._dltheory_layout = None
    for ax in axes.flat:
        for axis in ax._axis_map.values():
            _record_drawn_ticks(axis)
    return axes


def _record_drawn_ticks(axis) -> None:
    """Make ``axis`` remember the ticks its last draw drew (for :func:`draw`)."""
    update = axis._update_ticks

    def recorded():
        ticks = update()
        axis._dltheory_drawn_ticks = ticks
        return ticks

    axis._update_ticks = recorded
    axis._dltheory_drawn_ticks = []


def _decorations(ax, renderer):
    """The box around everything ``ax`` drew outside its own frame: titles, axis labels,
    the tick labels it drew, the legend and its texts (as of its last draw)."""
    from matplotlib.transforms import Bbox

    texts = [ax.title, ax._left_title, ax._right_title]
    for axis in ax._axis_map.values():
        texts += [axis.label, axis.offsetText]
        for tick in getattr(axis, "_dltheory_drawn_ticks", []):
            texts += [tick.label1, tick.label2]
    texts += list(ax.texts)
    boxes = [ax.bbox]
    boxes += [t.get_window_extent(renderer) for t in texts
              if t.get_visible() and t.get_text() and t.get_in_layout()]
    legend = ax.get_legend()
    if legend is not None and legend.get_visible():
        boxes.append(legend.get_window_extent(renderer))
    return Bbox.union(boxes)


def draw(fig) -> None:
    """Draw ``fig`` on its Agg canvas; a redraw keeps the last layout when it still fits.

    A figure redrawn through ``figure(reuse=fig)`` keeps its axes (see
    :func:`figure`). Its constrained layout, most of the rest of a redraw, is then kept
    from the last draw that ran it, as long as what was drawn still fits the room that
    layout made: everything each axes draws around its frame (titles, labels, the tick
    labels drawn, the legend) inside the box it filled then, and each figure-level text
    (a suptitle) inside the band of the figure's width it filled then. When something
    outgrows its room (a longer tick label, a new legend), or the figure gained axes or
    texts, the figure is drawn again with the layout run. Any other figure is drawn as
    usual.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    grid = getattr(fig, "_dltheory_grid", None)
    engine = fig.get_layout_engine()
    if grid is None or engine is None or not KEEP_AXES_ON_REUSE:
        canvas.draw()
        return
    axes = list(grid[1].flat)
    ref = getattr(fig, "_dltheory_layout", None)
    simple = set(fig.axes) == set(axes) and not fig.legends and not fig.subfigs
    if simple and ref is not None and ref[0] == (fig.dpi, len(fig.texts)):
        # the layout also places the suptitle and the figure's x and y labels
        for label, pos in zip(_SUPLABELS, ref[2]):
            text = getattr(fig, label)
            if pos is not None and getattr(text, "_autopos", False):
                text.set_position(pos)
        fig.set_layout_engine("none")
        try:
            canvas.draw()
        finally:
            fig.set_layout_engine(engine)
        if _fits(fig, axes, canvas.get_renderer(), ref[1]):
            return
    canvas.draw()
    fig._dltheory_layout = None
    if simple:
        fig._dltheory_layout = (
            (fig.dpi, len(fig.texts)), _rooms(fig, axes, canvas.get_renderer()),
            [None if getattr(fig, label) is None else getattr(fig, label).get_position()
             for label in _SUPLABELS])


_SUPLABELS = ("_suptitle", "_supxlabel", "_supylabel")


def _figure_texts(fig, renderer) -> list:
    return [t.get_window_extent(renderer) if t.get_visible() and t.get_text() else None
            for t in fig.texts]


def _rooms(fig, axes, renderer) -> tuple[list, list]:
    """Each axes' decorations box, and for each figure text the full-width band it is in."""
    from matplotlib.transforms import Bbox

    bands = [None if b is None else Bbox([[fig.bbox.x0, b.y0], [fig.bbox.x1, b.y1]])
             for b in _figure_texts(fig, renderer)]
    return [_decorations(ax, renderer) for ax in axes], bands


def _fits(fig, axes, renderer, rooms) -> bool:
    ax_rooms, bands = rooms
    if not all(_inside(_decorations(ax, renderer), room) for ax, room in zip(axes, ax_rooms)):
        return False
    for box, band in zip(_figure_texts(fig, renderer), bands):
        if box is not None and (band is None or not _inside(box, band)):
            return False
    return True


def _inside(box, room, tol: float = 0.5) -> bool:
    return (box.x0 >= room.x0 - tol and box.y0 >= room.y0 - tol
            and box.x1 <= room.x1 + tol and box.y1 <= room.y1 + tol)


def _reused_grid(fig, width: float, height: float, nrows: int, ncols: int,
                 kwargs: dict) -> np.ndarray:
    """Clear a detached figure for a redraw, keeping its axes when the grid is the same.

    A fresh axes builds every tick (two lines, a grid line and two labels each; a log
    axis has dozens) on its first draw, which was most of a widget's redraw. Here each
    axes of the same grid is cleared with ``Axes.clear`` (limits, scales, labels,
    locators, artists: everything a new axes resets) but keeps its tick objects, which
    the next draw moves and relabels; axes added on top of the grid (twins, colorbars)
    are removed. The content is what a fresh figure shows; with :func:`draw` keeping the
    layout, panels can sit a few pixels from where a fresh layout would put them.
    """
    grid = getattr(fig, "_dltheory_grid", None)
    same = (KEEP_AXES_ON_REUSE and grid is not None
            and grid[0] == (nrows, ncols, repr(sorted(kwargs.items())))
            and tuple(fig.get_size_inches()) == (width, height)
            and set(grid[1].flat) <= set(fig.axes))
    if not same:
        fig.clear()
        fig.set_size_inches(width, height)
        return _new_grid(fig, nrows, ncols, kwargs)
    keep = set(grid[1].flat)
    if fig.subfigs or any(ax not in keep for ax in fig.axes):
        # twins, colorbars, subfigures: clear like Figure.clear, keeping the grid's axes
        for sub in fig.subfigs:
            sub.clear()
        fig.subfigs = []
        for ax in list(fig.axes):
            if ax not in keep:
                ax.clear()
                fig.delaxes(ax)
    # the figure-level artists, as Figure.clear resets them
    fig.artists, fig.lines, fig.patches, fig.texts, fig.images, fig.legends = \
        [], [], [], [], [], []
    fig._suptitle = fig._supxlabel = fig._supylabel = None
    fig.suppressComposite = None
    for ax in grid[1].flat:
        ticks = [(axis, axis.__dict__.get("majorTicks"), axis.__dict__.get("minorTicks"))
                 for axis in ax._axis_map.values()]
        for axis, _, _ in ticks:
            # Axis.clear would replace the tick lists and build a first tick of each at
            # once; the kept lists are put back below (Axes.clear gives the kept ticks
            # its new patch as their clip path)
            axis.reset_ticks = _no_tick_reset
        try:
            ax.clear()
        finally:
            for axis, major, minor in ticks:
                del axis.reset_ticks
                if major is not None:
                    axis.majorTicks = major
                if minor is not None:
                    axis.minorTicks = minor
    return grid[1]


def _no_tick_reset() -> None:
    pass


def colors(n: int, cmap: str = "viridis") -> list:
    """``n`` colors spread over a colormap (for an ordered sweep)."""
    return [plt.get_cmap(cmap)(x) for x in np.linspace(0.05, 0.9, max(n, 1))]


def mark_diverged(ax, step: int, *, color: str = "#d1495b", y: float | None = None,
                  label: str | None = None) -> None:
    """Mark a divergence: a dotted vertical line at ``step`` and the words on the plot."""
    ax.axvline(step, color=color, ls=":", lw=1.2)
    text = label or f"diverged at step {step}"
    ytext = 0.92 if y is None else y
    ax.annotate(text, xy=(step, ytext), xycoords=("data", "axes fraction"), color=color,
                fontsize=9, ha="right", va="top", rotation=90,
                xytext=(-3, 0), textcoords="offset points")


def curves(ax, steps: np.ndarray, values: np.ndarray, *, label: str | None = None,
           diverged_at: int | None = None, log: bool = True, color: Any = None,
           **kwargs: Any):
    """Plot one logged metric against steps; mark the divergence step if there is one.

    Non-finite and (on a log axis) non-positive values are not drawn.
    """
    steps = np.asarray(steps)
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values) & ((values > 0) if log else True)
    if diverged_at is not None and diverged_at >= 0:
        label = f"{label}: diverged at step {diverged_at}" if label else None
    (line,) = ax.plot(steps[ok], values[ok], label=label, color=color, **kwargs)
    if diverged_at is not None and diverged_at >= 0:
        ax.plot([diverged_at], [values[ok][-1] if ok.any() else 1.0], marker="x", ms=8,
                color=line.get_color(), ls="none")
        if not label:
            mark_diverged(ax, diverged_at, color=line.get_color())
    if log:
        ax.set_yscale("log")
    return line


def sweep_curves(ax, steps: np.ndarray, values: np.ndarray, labels: Sequence[str], *,
                 diverged_at: Sequence[int] | None = None, log: bool = True,
                 cmap: str = "viridis", legend: bool = True, title: str | None = None):
    """One curve per grid member (rows of ``values``), colored in grid order."""
    values = np.asarray(values)
    cs = colors(len(values), cmap)
    for i, row in enumerate(values):
        d = None if diverged_at is None or diverged_at[i] < 0 else int(diverged_at[i])
        curves(ax, steps, row, label=labels[i], diverged_at=d, log=log, color=cs[i])
    if legend:
        ax.legend(loc="best", frameon=False)
    if title:
        ax.set_title(title)
