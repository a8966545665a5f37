"""One visual style for the book and the plots that recur across chapters.

Every figure in the book goes through :func:`figure` (the style, a readable size) and,
for runs from :mod:`dltheory.training`, through :func:`curves` and :func:`sweep_curves`,
which draw ``"diverged at step k"`` on a run that diverged instead of a broken line.

Figures are read at the book's content width, :data:`CONTENT_WIDTH_PX` (730 CSS pixels):
a figure wider than that in pixels is shrunk to fit, and its text with it. A font of
``f`` points in a figure ``W`` inches wide rendered at ``dpi`` dots per inch is
``f * dpi / 72`` pixels in an image ``W * dpi`` pixels wide, shown at
``min(W * dpi, 730)`` pixels, so it reads at
``f * dpi / 72 * min(W * dpi, 730) / (W * dpi)`` CSS pixels (:func:`text_px`). The
style's fonts and :func:`figure`'s default sizes keep every text at least
:data:`MIN_TEXT_PX` (9 px) and axis labels at least :data:`MIN_LABEL_PX` (11 px) for
figures up to :func:`legible_width` inches wide (about 10 inches: two panels per row);
:func:`figure` warns with :class:`SmallTextWarning` when asked for a wider one, and
:func:`smallest_text_px` measures a finished figure. Figures made here carry their
smallest font and dpi in the PNG they are shown as (:data:`PNG_FONT_KEY`,
:data:`PNG_DPI_KEY`), so the size every figure's text is read at on a page can be checked
from the page alone.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure as _Figure

from dltheory import validation as V

__all__ = ["STYLE", "use_style", "style", "figure", "draw", "curves", "sweep_curves", "mark_diverged",
           "colors", "CONTENT_WIDTH_PX", "MIN_TEXT_PX", "MIN_LABEL_PX", "SmallTextWarning",
           "text_px", "style_smallest_font_pt", "smallest_font_pt", "smallest_text_px",
           "legible_width", "png_metadata", "PNG_FONT_KEY", "PNG_DPI_KEY"]

#: The width of the book's content column in CSS pixels; wider images are shrunk to it.
CONTENT_WIDTH_PX = 730
#: The smallest text (tick labels, legends, annotations) a figure may show, in CSS pixels.
MIN_TEXT_PX = 9.0
#: The smallest axis label a figure may show, in CSS pixels.
MIN_LABEL_PX = 11.0
#: The key of the PNG text chunk that records a figure's smallest font, in points.
PNG_FONT_KEY = "dltheory:smallest-font-pt"
#: The key of the PNG text chunk that records the dpi a figure was rendered at.
PNG_DPI_KEY = "dltheory:dpi"

#: The matplotlib rcParams of the book's figures. The smallest font (the legend, 9.5 pt)
#: reads at 9 CSS px or more in figures up to :func:`legible_width` inches wide, and the
#: axis labels (11 pt) at 11 px or more up to about 10 inches.
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


# --------------------------------------------------------------------------------------
# Legibility: the size text is read at on the page
# --------------------------------------------------------------------------------------


class SmallTextWarning(UserWarning):
    """Issued by :func:`figure` for a figure so wide that the page shrinks its text below
    :data:`MIN_TEXT_PX`."""


def text_px(font_pt: float, dpi: float, natural_px: float,
            displayed_px: float | None = None) -> float:
    """CSS pixels a font of ``font_pt`` points reads at in an image shown on the page.

    The image was rendered at ``dpi`` (``font_pt * dpi / 72`` image pixels of text) and
    is ``natural_px`` pixels wide; the page shows it ``displayed_px`` CSS pixels wide
    (by default ``min(natural_px, CONTENT_WIDTH_PX)``: an image narrower than the
    content column is shown at its natural size, a wider one shrunk to the column).
    For a figure ``W`` inches wide, ``natural_px = W * dpi``.
    """
    for name, value in (("font_pt", font_pt), ("dpi", dpi), ("natural_px", natural_px)):
        V.check_positive(name, value)
    if displayed_px is None:
        displayed_px = min(natural_px, CONTENT_WIDTH_PX)
    V.check_positive("displayed_px", displayed_px)
    return font_pt * dpi / 72 * displayed_px / natural_px


def _points(size: Any) -> float:
    """A font size (points, or a name such as ``"small"``) in points."""
    from matplotlib.font_manager import FontProperties

    return float(FontProperties(size=size).get_size_in_points())


def style_smallest_font_pt() -> float:
    """The smallest font size (points) the current rcParams give a figure's texts."""
    keys = ("font.size", "axes.titlesize", "axes.labelsize", "legend.fontsize",
            "xtick.labelsize", "ytick.labelsize")
    return min(_points(mpl.rcParams[k]) for k in keys)


def legible_width(font_pt: float | None = None, min_px: float = MIN_TEXT_PX,
                  display_width: float = CONTENT_WIDTH_PX) -> float:
    """The widest figure (inches) whose ``font_pt`` text still reads at ``min_px``.

    A figure wider than ``display_width`` pixels is shrunk to it, so its text reads at
    ``font_pt * display_width / (72 * W)`` CSS pixels whatever its dpi. ``font_pt``
    defaults to the style's smallest font (:func:`style_smallest_font_pt`); with the
    book's style that is about 10.7 inches for text and 10.1 for axis labels.
    """
    font_pt = style_smallest_font_pt() if font_pt is None else font_pt
    V.check_positive("font_pt", font_pt)
    V.check_positive("min_px", min_px)
    V.check_positive("display_width", display_width)
    return font_pt * display_width / (72 * min_px)


def smallest_font_pt(fig) -> float:
    """The smallest font (points) among the texts ``fig`` shows.

    Counts every visible, non-empty text (titles, axis labels, legends, annotations,
    figure texts) and the tick labels of every visible axis, which matplotlib fills in
    only when it draws, so a figure need not have been drawn. ``inf`` if it has no text.
    """
    from matplotlib.axis import Axis
    from matplotlib.text import Text

    _check_figure(fig, base=True)
    sizes, stack = [], [fig]
    while stack:
        artist = stack.pop()
        if not artist.get_visible():
            continue
        if isinstance(artist, Text):
            if artist.get_text().strip():
                sizes.append(artist.get_fontsize())
        elif isinstance(artist, Axis):
            if not getattr(artist.axes, "axison", True):
                continue
            stack += [artist.label, artist.offsetText]
            # every major tick label has the first one's font (tick_params sets them all)
            for tick in artist.get_major_ticks(numticks=1):
                sizes += [label.get_fontsize() for label in (tick.label1, tick.label2)
                          if label.get_visible()]
        else:
            stack += artist.get_children()
    return float(min(sizes)) if sizes else float("inf")


def smallest_text_px(fig, display_width: float = CONTENT_WIDTH_PX,
                     dpi: float | None = None) -> float:
    """CSS pixels the smallest text of ``fig`` reads at on the page.

    The figure is taken as rendered at ``dpi`` (default: its own, as the notebook shows
    it) into an image ``width * dpi`` pixels wide, shown at most ``display_width`` CSS
    pixels wide; see :func:`text_px`. ``inf`` for a figure without text. A figure
    made by :func:`figure` at the default sizes reads at :data:`MIN_TEXT_PX` or more.
    """
    _check_figure(fig)
    V.check_positive("display_width", display_width)
    if dpi is not None:
        V.check_positive("dpi", dpi)
    font = smallest_font_pt(fig)
    if not np.isfinite(font):
        return font
    dpi = float(fig.dpi if dpi is None else dpi)
    natural = float(fig.get_size_inches()[0]) * dpi
    return text_px(font, dpi, natural, min(natural, display_width))


def png_metadata(fig, dpi: float | None = None) -> dict[str, str]:
    """PNG text chunks recording ``fig``'s smallest font (points, :func:`smallest_font_pt`)
    and the ``dpi`` it is rendered at (default: its own), under :data:`PNG_FONT_KEY` and
    :data:`PNG_DPI_KEY`."""
    _check_figure(fig)
    if dpi is not None:
        V.check_positive("dpi", dpi)
    return {PNG_FONT_KEY: f"{smallest_font_pt(fig):g}",
            PNG_DPI_KEY: f"{float(fig.dpi if dpi is None else dpi):g}"}


def _check_legible(width: float) -> None:
    font = style_smallest_font_pt()
    dpi = float(mpl.rcParams["figure.dpi"])
    px = text_px(font, dpi, width * dpi)
    if px < MIN_TEXT_PX:
        warnings.warn(
            f"a figure {width:g} in wide is shown at most {CONTENT_WIDTH_PX} px wide on the "
            f"page, so its {font:g} pt text would read at {px:.1f} px, below "
            f"{MIN_TEXT_PX:g} px: make it at most {legible_width(font):.1f} in wide "
            f"(two panels per row)", SmallTextWarning, stacklevel=3)


class BookFigure(_Figure):
    """A figure made by :func:`figure`. In a notebook it is shown like any figure, and its
    PNG also records its smallest font and dpi (:func:`png_metadata`)."""


def _book_figure_png(fig) -> str | None:
    """IPython's PNG of a :class:`BookFigure`: the inline backend's own, with metadata."""
    from IPython import get_ipython
    from matplotlib.figure import Figure

    ip = get_ipython()
    try:
        formatter = ip.display_formatter.formatters["image/png"]
    except (AttributeError, KeyError):
        return None
    try:
        inner = formatter.lookup_by_type(Figure)
    except KeyError:
        # a detached figure shown before any pyplot figure: the inline backend, which
        # registers the figure formats, is set up by the first pyplot figure; do it now
        if not _activate_inline_backend():
            return None
        try:
            inner = formatter.lookup_by_type(Figure)
        except KeyError:
            return None  # PNG is not a figure format of this front end
    if (isinstance(inner, functools.partial) and inner.keywords.get("fmt") == "png"
            and getattr(inner.func, "__name__", "") == "print_figure"):
        try:
            metadata = png_metadata(fig, inner.keywords.get("dpi"))
        except Exception:  # noqa: BLE001 - never lose a figure over its metadata
            metadata = None
        if metadata is not None:
            return inner(fig, metadata=metadata)
    return inner(fig)


def _activate_inline_backend() -> bool:
    """Set up matplotlib's inline backend in IPython, as the first pyplot figure would;
    ``False`` when another backend is configured or it is set up already."""
    import importlib
    import sys

    try:
        backend = mpl.get_backend(auto_select=False)
    except TypeError:  # matplotlib < 3.10
        backend = mpl.rcParams._get("backend")
    name = "matplotlib_inline.backend_inline"
    if backend not in ("inline", f"module://{name}") or name in sys.modules:
        return False
    importlib.import_module(name)  # its import registers the figure formats
    return True


def _install_png_formatter() -> bool:
    """Show :class:`BookFigure` inline through :func:`_book_figure_png` (in IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    ip = get_ipython()
    formatters = getattr(getattr(ip, "display_formatter", None), "formatters", None)
    if not formatters or "image/png" not in formatters:
        return False
    formatters["image/png"].for_type(BookFigure, _book_figure_png)
    return True


_install_png_formatter()

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

    The default size is 5.5 inches wide for one column and 7.5 (the content width at
    100 dpi) for two or more, and 3.6 inches per row. Two panels per row read best; small
    multiples may take more in the same width.

    Args:
      ncols, nrows: the grid of axes.
      width, height: the size in inches. A width over :func:`legible_width` (about 10
        inches) issues a :class:`SmallTextWarning`: the page shrinks the figure to the
        content width, and its smallest text would read below :data:`MIN_TEXT_PX`.
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
    if reuse is not None and not isinstance(reuse, (str, _Figure)):
        raise TypeError(f"argument `reuse` must be None, 'detached' or a figure; got "
                        f"{reuse!r}")
    width = width if width is not None else (5.5 if ncols == 1 else 7.5)
    height = height if height is not None else 3.6 * nrows
    _check_legible(width)
    if reuse is None:
        _install_png_formatter()
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False,
                                 FigureClass=BookFigure, **kwargs)
    else:
        if isinstance(reuse, str):
            if reuse != "detached":
                raise ValueError(f"argument `reuse` must be None, 'detached' or a figure; "
                                 f"got {reuse!r}")
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            fig = BookFigure(figsize=(width, height), layout="constrained")
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

    _check_figure(fig)
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
    n = V.check_int("n", n, minimum=1)
    return [_colormap(cmap)(x) for x in np.linspace(0.05, 0.9, n)]


def _colormap(cmap: Any):
    if not isinstance(cmap, str) or cmap not in mpl.colormaps:
        raise ValueError(f"argument `cmap` must be the name of a matplotlib colormap such as "
                         f"'viridis'; got {cmap!r}")
    return mpl.colormaps[cmap]


def _check_axes(name: str, ax: Any) -> None:
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"argument `{name}` must be matplotlib axes (from figure() or "
                        f"plt.subplots); got {ax!r}")


def _check_figure(fig: Any, base: bool = False) -> None:
    from matplotlib.figure import FigureBase

    if not isinstance(fig, FigureBase if base else _Figure):
        raise TypeError(f"argument `fig` must be a matplotlib figure; got {fig!r}")


def mark_diverged(ax, step: int, *, color: str = "#d1495b", y: float | None = None,
                  label: str | None = None) -> None:
    """Mark a divergence: a dotted vertical line at ``step`` and the words on the plot."""
    _check_axes("ax", ax)
    step = V.check_int("step", step, minimum=0)
    if y is not None:
        V.check_finite("y", y)
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
    _check_axes("ax", ax)
    steps = V.check_array("steps", steps, ndim=1, nonempty=False)
    values = V.check_array("values", values, ndim=1, finite=False, nonempty=False)
    if values.shape != steps.shape:
        raise ValueError(f"arguments `values` and `steps` must have the same length; got "
                         f"{values.shape[0]} values for {steps.shape[0]} steps")
    if diverged_at is not None:
        diverged_at = V.check_int("diverged_at", diverged_at)
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
    _check_axes("ax", ax)
    values = V.check_array("values", values, ndim=2, finite=False)
    if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__") or \
            len(labels) != len(values):
        raise ValueError(f"argument `labels` must hold one label per row of `values` "
                         f"({len(values)}); got {labels!r}")
    if diverged_at is not None and (not hasattr(diverged_at, "__len__")
                                    or len(diverged_at) != len(values)):
        raise ValueError(f"argument `diverged_at` must hold one step (or -1) per row of "
                         f"`values` ({len(values)}); got {diverged_at!r}")
    cs = colors(len(values), cmap)
    for i, row in enumerate(values):
        d = None if diverged_at is None or diverged_at[i] < 0 else int(diverged_at[i])
        curves(ax, steps, row, label=labels[i], diverged_at=d, log=log, color=cs[i])
    if legend:
        ax.legend(loc="best", frameon=False)
    if title:
        ax.set_title(title)
