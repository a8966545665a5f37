"""Declarative explorers: one definition gives a live widget and a static figure.

A chapter writes::

    explore(draw_gd, lr=slider(0.1, 1.2, num=12, default=0.5, label="learning rate"),
            curvature=choice([1.0, 2.0, 4.0], default=2.0))

where ``draw_gd(lr=..., curvature=...)`` returns a matplotlib figure. Each control is a
finite set of values (a slider over a grid, or a choice), so every setting can be
precomputed: the same definition gives

- in a live Jupyter or Colab kernel, ipywidgets controls above an image that redraws when
  a control moves; each setting's figure is computed once and cached, and the package's
  experiments keep shapes fixed so a new setting reuses compiled code. Once the widget is
  shown, a background thread renders the other settings into that cache, nearest the
  shown setting first (:meth:`Explorer.start_prerender`), so a move usually finds its
  figure ready; the kernel stays free to run cells meanwhile;
- outside a live kernel (a plain script, the tests, the static HTML of the book), the
  figure at the default setting, rendered as a static PNG;
- for the static HTML of the book (when ``DLTHEORY_STATIC_TWINS=1``, which the book
  build sets), a *kernel-free twin*: the figure of every setting, precomputed and
  embedded with small HTML controls that switch between them in the browser
  (:meth:`Explorer.twin_html`). No kernel, no server, a few lines of JavaScript.

Controls are shown by name (or label) under one rule, in the live widget and the twin
alike (``display_name``): a Greek letter's name becomes the letter, a subscript after
a one-letter symbol is written as a subscript, and other underscores become spaces
(``lambda_max`` reads ``λₘₐₓ``, ``init_scale`` reads ``init scale``). A setting reads
``learning rate η = 0.4; curvature λₘₐₓ = 4``.
"""

from __future__ import annotations

import dataclasses
import html
import inspect
import io
import itertools
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from dltheory import validation as V

__all__ = ["Slider", "Choice", "slider", "choice", "Explorer", "explore", "in_kernel",
           "static_twins", "display_name", "prerender_enabled"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STATIC_ENV_VAR = "DLTHEORY_STATIC_TWINS"
#: ``DLTHEORY_PRERENDER=0`` turns off rendering a shown widget's other settings in the
#: background (:meth:`Explorer.start_prerender`).
PRERENDER_ENV_VAR = "DLTHEORY_PRERENDER"
#: The most dots per inch of the twin's images (one per setting); a twin's figure is
#: rendered at ``min(TWIN_DPI, CONTENT_WIDTH_PX / width)`` dpi, so its image is no wider
#: than the page shows it and reads like the static figures around it.
TWIN_DPI = 100
#: Separates the controls of a setting in its caption ("lr = 0.4; curvature = 2").
SETTING_SEPARATOR = "; "

_GREEK = dict(zip(("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi "
                   "pi rho sigma tau upsilon phi chi psi omega").split(),
                  "αβγδεζηθικλμνξπρστυφχψω"))
_GREEK.update(zip("Gamma Delta Theta Lambda Xi Pi Sigma Phi Psi Omega".split(), "ΓΔΘΛΞΠΣΦΨΩ"))
# subscripts with glyphs in common fonts (the digits, and these letters)
_SUBSCRIPT = dict(zip("0123456789aehiklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉ₐₑₕᵢₖₗₘₙₒₚᵣₛₜᵤᵥₓ"))


def display_name(name: str) -> str:
    """A control's name (or label) as the reader sees it.

    One rule for the live widget and the kernel-free twin: a word that names a Greek
    letter becomes the letter (``eta`` -> ``η``, ``Lambda`` -> ``Λ``); ``s_sub`` after a
    one-letter symbol ``s`` becomes ``s`` with ``sub`` in subscript characters when
    each has one (``lambda_max`` -> ``λₘₐₓ``, ``beta_2`` -> ``β₂``); every other
    underscore becomes a space (``init_scale`` -> ``init scale``). Anything else is
    kept: ``"learning rate η"`` is unchanged.
    """
    if not isinstance(name, str):
        raise TypeError(f"argument `name` must be a string; got {type(name).__name__}")
    words = re.split(r"([^A-Za-z]+)", name)
    text = "".join(_GREEK.get(w, w) for w in words)

    def subscript(m: re.Match) -> str:
        sub = m.group(2)
        if all(ch in _SUBSCRIPT for ch in sub):
            return m.group(1) + "".join(_SUBSCRIPT[ch] for ch in sub)
        return m.group(0)

    text = re.sub(r"(?<![^\W_])([^\W\d_])_([a-z0-9]+)(?![^\W_])", subscript, text)
    return re.sub(r"\s*_+\s*", " ", text).strip()


def static_twins() -> bool:
    """Whether explorers also render their kernel-free HTML twin (``DLTHEORY_STATIC_TWINS=1``)."""
    return os.environ.get(STATIC_ENV_VAR, "0").strip() not in ("", "0", "false", "no")


@dataclasses.dataclass(frozen=True)
class _Control:
    values: tuple[Any, ...]
    default: Any
    label: str | None = None
    fmt: str = "{}"

    def __post_init__(self):
        kind = type(self).__name__
        if not isinstance(self.values, tuple) or not self.values:
            raise ValueError(f"argument `values` of a {kind} must be a non-empty tuple; got "
                             f"{self.values!r}")
        if isinstance(self, Slider):
            for v in self.values:
                V.check_finite("values[i]", v)
        if self.default not in self.values:
            raise ValueError(f"argument `default` must be one of the values {self.values!r}; "
                             f"got {self.default!r}")
        if self.label is not None and not isinstance(self.label, str):
            raise TypeError(f"argument `label` must be a string or None; got {self.label!r}")
        _check_fmt(self.fmt, self.default)

    def format(self, value: Any) -> str:
        """The value as shown; a string value's underscores read as spaces."""
        text = self.fmt.format(value)
        return text.replace("_", " ") if isinstance(value, str) else text

    def display(self, name: str) -> str:
        """The control's label (its ``name`` when it has none), as the reader sees it."""
        return display_name(self.label or name)


@dataclasses.dataclass(frozen=True)
class Slider(_Control):
    """A slider over a fixed, ordered grid of numbers (make it with :func:`slider`)."""


@dataclasses.dataclass(frozen=True)
class Choice(_Control):
    """A choice among a few options, numbers or strings (make it with :func:`choice`)."""


Control = Slider | Choice


def slider(start: float, stop: float, num: int = 9, *, default: float | None = None,
           log: bool = False, label: str | None = None, fmt: str = "{:.3g}",
           values: Sequence[float] | None = None) -> Slider:
    """A slider with ``num`` values from ``start`` to ``stop`` (geometric if ``log``).

    ``values`` gives the grid explicitly instead. ``default`` must be one of the
    values; when omitted, the middle value is used.
    """
    if values is None:
        start, stop = V.check_finite("start", start), V.check_finite("stop", stop)
        num = V.check_int("num", num, minimum=2, maximum=101)
        if log:
            if start <= 0 or stop <= 0:
                raise ValueError(f"a log slider needs `start` and `stop` > 0; got {start}, {stop}")
            grid = np.geomspace(start, stop, num)
        else:
            grid = np.linspace(start, stop, num)
        # round away float noise so labels and cache keys are clean
        values = tuple(float(f"{v:.10g}") for v in grid)
    else:
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"argument `values` must be a sequence of numbers; got {values!r}")
        values = tuple(V.check_finite("values[i]", v) for v in values)
        if len(values) < 2:
            raise ValueError(f"argument `values` needs at least two values; got {values!r}")
    if default is None:
        default = values[len(values) // 2]
    default = _match(default, values, "default")
    return Slider(values, default, label, fmt)


def choice(options: Sequence[Any], *, default: Any = None, label: str | None = None,
           fmt: str = "{}") -> Choice:
    """A choice among ``options``; ``default`` (one of them) defaults to the first."""
    if isinstance(options, (str, bytes)) or not hasattr(options, "__iter__"):
        raise TypeError(f"argument `options` must be a sequence of values; got {options!r}")
    options = tuple(options)
    if len(options) < 1:
        raise ValueError("argument `options` must not be empty")
    if default is None:
        default = options[0]
    V.check_choice("default", default, options)
    return Choice(options, default, label, fmt)


def _check_fmt(fmt: Any, example: Any) -> None:
    if not isinstance(fmt, str):
        raise TypeError(f"argument `fmt` must be a format string such as '{{:.3g}}'; got "
                        f"{fmt!r}")
    try:
        fmt.format(example)
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise ValueError(f"argument `fmt` must format the control's values, e.g. '{{:.3g}}'; "
                         f"{fmt!r} fails on {example!r}: {err}") from None


def _match(value: Any, values: tuple, name: str) -> Any:
    """The element of ``values`` equal (to float precision) to ``value``."""
    for v in values:
        if v == value or (isinstance(v, float) and not isinstance(value, (str, bytes))
                          and np.isclose(v, value, rtol=1e-9, atol=0)):
            return v
    shown = ", ".join(f"{v:g}" if isinstance(v, float) else repr(v) for v in values)
    raise ValueError(f"argument `{name}` must be one of the control's values ({shown}); "
                     f"got {value!r}")


def prerender_enabled() -> bool:
    """Whether a shown live widget renders its other settings in the background: yes
    unless ``DLTHEORY_PRERENDER`` is ``0``, ``false``, ``no`` or ``off``.

    Raises:
      ValueError: if the variable is set to anything else than those or ``1``, ``true``,
        ``yes``, ``on``.
    """
    from dltheory.config import _OFF, _ON

    raw = os.environ.get(PRERENDER_ENV_VAR, "1")
    value = raw.strip().lower()
    if value not in _OFF + _ON:
        raise ValueError(f"environment variable {PRERENDER_ENV_VAR} must be one of "
                         f"{', '.join(_OFF + _ON[1:])}; got {raw!r}")
    return value not in _OFF


def in_kernel() -> bool:
    """Whether code runs in an IPython kernel that can talk to widgets."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _png(fig, dpi: float | None = None, palette: bool = False, close: bool = True) -> bytes:
    """PNG bytes of a figure; ``palette`` quantizes to 256 colours (3-4x smaller for plots).

    The PNG records its dpi and the figure's smallest font
    (``dltheory.plotting.png_metadata``), from which the size its text is shown at on a
    page follows.

    The figure is drawn once on an Agg canvas and its pixels encoded, instead of going
    through ``savefig``: with a layout engine (the book's constrained layout) ``savefig``
    draws the figure twice, running the layout and every text layout twice, which was
    half of a widget update. With one layout pass the panels can sit a few pixels
    differently from a ``savefig`` of the same figure; the content is the same.
    """
    import matplotlib as mpl
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image, PngImagePlugin

    from dltheory import plotting

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    if dpi is None:
        dpi = mpl.rcParams["savefig.dpi"]
        dpi = fig.dpi if dpi == "figure" else dpi
    old_dpi = fig.dpi
    fig.dpi = dpi
    try:
        plotting.draw(fig)  # keeps a redrawn figure's layout when it still fits
        img = Image.frombuffer("RGBA", canvas.get_width_height(physical=True),
                               canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        if palette:
            img = img.convert("RGB").quantize(colors=256)
        info = PngImagePlugin.PngInfo()
        for key, value in plotting.png_metadata(fig, dpi).items():
            info.add_text(key, value)
        out = io.BytesIO()
        # the live widget's PNG: fast zlib (level 1 halves the encoding and, measured on
        # the book's plots, makes it 1% larger); the static twins' palette PNGs: smallest
        img.save(out, format="PNG", pnginfo=info, dpi=(dpi, dpi),
                 **({"optimize": True} if palette else {"compress_level": 1}))
    finally:
        fig.dpi = old_dpi
    if close:
        plt.close(fig)
    return out.getvalue()


_TWIN_SCRIPT = """
(function () {
  var root = document.getElementById("%(id)s");
  var data = JSON.parse(root.querySelector("script.dltheory-twin-data").textContent);
  var img = root.querySelector("img"), caption = root.querySelector(".dltheory-twin-label");
  var inputs = root.querySelectorAll("[data-control]");
  function update() {
    var idx = [];
    inputs.forEach(function (el, k) {
      idx.push(el.value);
      var out = root.querySelector("[data-value-of='" + k + "']");
      if (out) { out.textContent = data.controls[k].values[+el.value]; }
    });
    var key = idx.join("-");
    img.src = "data:image/png;base64," + data.images[key];
    img.alt = data.labels[key];
    caption.textContent = data.labels[key];
    root.setAttribute("data-setting", key);
  }
  inputs.forEach(function (el) { el.addEventListener("input", update); });
})();
"""


class Explorer:
    """A figure function and its controls; see :func:`explore`.

    Attributes:
      fn: ``fn(**setting) -> matplotlib.figure.Figure``. If ``fn`` also takes a ``fig``
        argument, it is given the figure it returned last time (``None`` at first) and
        should draw into it again (``dltheory.plotting.figure(..., reuse=fig)``).
      controls: name -> :class:`Slider` or :class:`Choice`.
      last_update_seconds: time of the last redraw in the live widget.
      last_update_cached: whether that redraw found its figure already rendered.
      prerendered: a :class:`threading.Event` set when every setting's image is in the
        cache (after :meth:`start_prerender`'s thread, or :meth:`prerender`, finishes).
    """

    def __init__(self, fn: Callable[..., Any], controls: dict[str, Control],
                 title: str | None = None):
        V.check_callable("fn", fn)
        if not isinstance(controls, dict) or not controls:
            raise ValueError(f"argument `controls` must be a non-empty dict of name -> "
                             f"slider(...) or choice(...); got {controls!r}")
        for name, c in controls.items():
            if not isinstance(c, (Slider, Choice)):
                raise TypeError(f"argument `controls` must map names to slider(...) or "
                                f"choice(...); control `{name}` is {c!r} of type "
                                f"{type(c).__name__}")
        if title is not None and not isinstance(title, str):
            raise TypeError(f"argument `title` must be a string or None; got {title!r}")
        self.fn = fn
        self.controls = controls
        self.title = title
        self._cache: dict[tuple, bytes] = {}
        # fn(..., fig=previous) redraws into one figure, which is much faster (see
        # dltheory.plotting.figure); fn without a `fig` parameter makes a new one each time
        self._reuses_figure = "fig" in inspect.signature(fn).parameters
        self._figure = None
        self.last_update_seconds: float | None = None
        self.last_update_cached: bool | None = None
        self._widget = None
        # one figure is drawn at a time: the live widget's redraw and the background
        # thread share the reused figure
        self._lock = threading.RLock()
        self._shown: tuple | None = None  # the setting the live widget shows
        self._failed: set[tuple] = set()  # settings the background could not render
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.prerendered = threading.Event()

    # -- settings -------------------------------------------------------------------
    @property
    def default(self) -> dict[str, Any]:
        return {name: c.default for name, c in self.controls.items()}

    def settings(self) -> Iterator[dict[str, Any]]:
        """Every setting of the controls (their product), default values first in order."""
        names = list(self.controls)
        for combo in itertools.product(*(self.controls[n].values for n in names)):
            yield dict(zip(names, combo))

    @property
    def size(self) -> int:
        """Number of settings in the grid."""
        return int(np.prod([len(c.values) for c in self.controls.values()]))

    def _key(self, setting: dict[str, Any]) -> tuple:
        unknown = set(setting) - set(self.controls)
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}; the controls are "
                             f"{sorted(self.controls)}")
        full = {**self.default, **setting}
        return tuple((n, _match(full[n], self.controls[n].values, n)) for n in self.controls)

    def label(self, setting: dict[str, Any]) -> str:
        """The setting in words, e.g. ``"learning rate η = 0.5; curvature λₘₐₓ = 2"``.

        Each control reads ``name = value``, its name written by ``display_name`` (see
        the module's description), and the controls are separated by ``"; "``.
        """
        parts = []
        for name, value in self._key(setting):
            c = self.controls[name]
            parts.append(f"{c.display(name)} = {c.format(value)}")
        return SETTING_SEPARATOR.join(parts)

    # -- figures --------------------------------------------------------------------
    def figure(self, **setting: Any):
        """The figure for a setting (not cached).

        For a function that redraws into its previous figure this is the explorer's one
        figure, which the next draw clears; a background rendering of the live widget
        (:meth:`start_prerender`) is stopped first, so it does not draw into the figure
        while the caller holds it.
        """
        key = self._key(setting)
        self.stop_prerender()
        with self._lock:
            return self._draw(key)

    def _draw(self, key: tuple):
        """Call the function for the setting ``key``; hold ``self._lock`` around it and
        around any use of the figure it returns (it may be the shared, reused one)."""
        if self._reuses_figure:
            fig = self.fn(**dict(key), fig=self._figure)
            self._figure = fig
        else:
            fig = self.fn(**dict(key))
        if fig is None or not hasattr(fig, "savefig"):
            raise TypeError(f"the explorer's function must return a matplotlib figure; "
                            f"got {type(fig).__name__}")
        return fig

    def image(self, **setting: Any) -> bytes:
        """PNG bytes of the figure for a setting, computed once and cached."""
        key = self._key(setting)
        png = self._cache.get(key)
        if png is None:
            with self._lock:  # waits for a background render in progress, if any
                png = self._cache.get(key)
                if png is None:
                    png = self._cache[key] = _png(self._draw(key))
        return png

    def _next_to_render(self) -> tuple | None:
        """The setting not yet rendered nearest (in grid steps) the one shown."""
        names = list(self.controls)
        shown = self._shown or self._key({})
        here = [self.controls[n].values.index(v) for n, v in shown]
        best, best_d = None, None
        for combo in itertools.product(*(range(len(self.controls[n].values)) for n in names)):
            key = tuple((n, self.controls[n].values[i]) for n, i in zip(names, combo))
            if key in self._cache or key in self._failed:
                continue
            d = sum(abs(i - j) for i, j in zip(combo, here))
            if best_d is None or d < best_d:
                best, best_d = key, d
        return best

    def prerender(self) -> int:
        """Render every setting not yet in the cache, nearest the shown one first.

        Each setting is rendered as :meth:`image` renders it (same figure, same PNG);
        a setting whose function raises is skipped (moving to it raises the error
        then). Returns the number of settings rendered; sets :attr:`prerendered` when
        every setting is cached.
        """
        done = 0
        while not self._stop.is_set():
            with self._lock:
                key = self._next_to_render()
                if key is None:
                    break
                try:
                    self._cache[key] = _png(self._draw(key))
                    done += 1
                except Exception:  # noqa: BLE001 - shown when the reader picks it
                    self._failed.add(key)
        if len(self._cache) == self.size:
            self.prerendered.set()
        return done

    def stop_prerender(self) -> None:
        """Stop the background rendering, if one runs, after its current setting."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._stop.set()
            thread.join()

    def start_prerender(self) -> threading.Thread | None:
        """Render the other settings in a background thread (see :meth:`prerender`).

        Started when the live widget is shown, unless ``DLTHEORY_PRERENDER=0``, and only
        for a function that redraws into its own detached figure (a ``fig`` parameter):
        a new pyplot figure made outside a cell could be shown by the next cell. The
        thread holds the drawing lock for one setting at a time, so a control moved to
        a setting not yet rendered waits for at most one render; on Linux it runs at a
        lower CPU priority than the kernel. Returns the thread, or ``None`` when none
        was started.
        """
        if not self._reuses_figure or not prerender_enabled():
            return None
        if self._thread is not None and not self._stop.is_set():
            return self._thread
        self._stop.clear()

        def work():
            if sys.platform.startswith("linux"):
                try:  # this thread only (Linux schedules threads as tasks)
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
                except (OSError, AttributeError):  # pragma: no cover - not permitted
                    pass
            self.prerender()

        self._thread = threading.Thread(target=work, name="dltheory-prerender", daemon=True)
        self._thread.start()
        return self._thread

    # -- display --------------------------------------------------------------------
    def widget(self):
        """The live ipywidgets view: controls, the figure, and a status line."""
        if self._widget is not None:
            return self._widget
        import ipywidgets as w

        inputs = {}
        for name, c in self.controls.items():
            desc = c.display(name)
            style = {"description_width": "initial"}
            if isinstance(c, Slider):
                inputs[name] = w.SelectionSlider(
                    options=[(c.format(v), v) for v in c.values], value=c.default,
                    description=desc, continuous_update=False, style=style,
                    layout=w.Layout(width="420px"))
            elif len(c.values) <= 4:
                inputs[name] = w.ToggleButtons(options=[(c.format(v), v) for v in c.values],
                                               value=c.default, description=desc, style=style)
            else:
                inputs[name] = w.Dropdown(options=[(c.format(v), v) for v in c.values],
                                          value=c.default, description=desc, style=style)
        image = w.Image(value=self.image(**self.default), format="png",
                        layout=w.Layout(max_width="100%"))
        status = w.HTML(value=f"<small>{self.label(self.default)}</small>")

        def redraw(_change=None):
            t0 = time.perf_counter()
            setting = {n: i.value for n, i in inputs.items()}
            self._shown = key = self._key(setting)
            cached = key in self._cache
            if not cached:
                status.value = f"<small>computing {self.label(setting)} ...</small>"
            image.value = self.image(**setting)
            self.last_update_seconds = time.perf_counter() - t0
            self.last_update_cached = cached
            how = "cached" if cached else f"{self.last_update_seconds:.2f} s"
            status.value = f"<small>{self.label(setting)} ({how})</small>"

        for i in inputs.values():
            i.observe(redraw, names="value")
        for i in inputs.values():  # room between one control's value and the next name
            i.layout.margin = "2px 24px 2px 0"
        children = ([w.HTML(f"<b>{self.title}</b>")] if self.title else []) + [
            w.HBox(list(inputs.values()), layout=w.Layout(flex_flow="row wrap")), image, status]
        self._widget = w.VBox(children)
        self._widget._dltheory_inputs = inputs  # for tests and benchmarks
        return self._widget

    def twin_html(self, dpi: float | None = None) -> str:
        """The kernel-free twin: every setting's figure and HTML controls to switch.

        Sliders become ``<input type="range">`` over the grid's indices and choices a
        ``<select>``, each with its name (as the live widget writes it) and spaced apart
        from the next; a few lines of JavaScript swap the embedded PNG
        (palette-quantized) and its caption (the setting, as :meth:`Explorer.label`
        writes it). The images are rendered at ``dpi``, by default 100 or less, so that
        no image is wider than the book's 730-pixel content column shows it. The
        ``<img>`` records the figures' smallest font and the dpi (``data-font-pt``,
        ``data-dpi``), from which the size their text is shown at follows. The figures
        are computed here, once per setting, so keep the grid small. Returns a
        self-contained HTML fragment.
        """
        import base64

        from dltheory import plotting

        names = list(self.controls)
        images, labels = {}, {}
        fonts, dpis = [], []
        self.stop_prerender()
        for combo in itertools.product(*(range(len(self.controls[n].values)) for n in names)):
            setting = {n: self.controls[n].values[i] for n, i in zip(names, combo)}
            key = "-".join(map(str, combo))
            with self._lock:
                fig = self._draw(self._key(setting))
                fig_dpi = dpi if dpi is not None else min(
                    TWIN_DPI, plotting.CONTENT_WIDTH_PX / float(fig.get_size_inches()[0]))
                fonts.append(plotting.smallest_font_pt(fig))
                dpis.append(fig_dpi)
                images[key] = base64.b64encode(_png(fig, dpi=fig_dpi, palette=True,
                                                    close=not self._reuses_figure)
                                               ).decode("ascii")
            labels[key] = self.label(setting)
        uid = f"dltheory-twin-{uuid.uuid4().hex[:10]}"
        default = "-".join(str(self.controls[n].values.index(self.controls[n].default))
                           for n in names)
        rows = []
        for k, n in enumerate(names):
            c = self.controls[n]
            i0 = c.values.index(c.default)
            desc = html.escape(c.display(n))
            if isinstance(c, Slider):
                rows.append(
                    f'<label class="dltheory-twin-control">{desc} '
                    f'<input type="range" min="0" max="{len(c.values) - 1}" step="1" '
                    f'value="{i0}" data-control="{html.escape(n)}" aria-label="{desc}"> '
                    f'<output data-value-of="{k}">{html.escape(c.format(c.default))}</output>'
                    f'</label>')
            else:
                opts = "".join(f'<option value="{i}"{" selected" if i == i0 else ""}>'
                               f'{html.escape(c.format(v))}</option>'
                               for i, v in enumerate(c.values))
                rows.append(f'<label class="dltheory-twin-control">{desc} '
                            f'<select data-control="{html.escape(n)}" aria-label="{desc}">'
                            f'{opts}</select></label>')
        data = {"controls": [{"name": n, "values": [self.controls[n].format(v)
                                                      for v in self.controls[n].values]}
                             for n in names],
                "images": images, "labels": labels}
        payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
        title = f'<div class="dltheory-twin-title"><b>{html.escape(self.title)}</b></div>' \
            if self.title else ""
        return (
            f'<div class="dltheory-twin" id="{uid}" data-setting="{default}" '
            f'data-settings="{self.size}">{title}'
            f'<div class="dltheory-twin-controls" style="display:flex;flex-wrap:wrap;'
            f'align-items:center;gap:0.3em 1.8em;margin-bottom:0.3em">\n'
            f'{chr(10).join(rows)}\n</div>'
            f'<img style="max-width:100%" src="data:image/png;base64,{images[default]}" '
            f'alt="{html.escape(labels[default])}" data-font-pt="{min(fonts):g}" '
            f'data-dpi="{min(dpis):g}">'
            f'<div class="dltheory-twin-label"><small>{html.escape(labels[default])}</small>'
            f'</div><div class="dltheory-twin-note"><small>Precomputed figures: move the '
            f'controls to switch between all {self.size} settings; run the notebook for the '
            f'live widget.</small></div>'
            f'<script type="application/json" class="dltheory-twin-data">'
            f'{payload}</script>'
            f'<script>{_TWIN_SCRIPT % {"id": uid}}</script></div>')

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        import base64

        png = self.image(**self.default)
        bundle: dict[str, Any] = {
            "image/png": base64.b64encode(png).decode("ascii"),
            "text/plain": f"<Explorer: {self.label(self.default)}; "
                          f"{self.size} settings>",
        }
        if static_twins():
            # the book build: the twin replaces the widget, so no live view is made
            bundle["text/html"] = self.twin_html()
        elif in_kernel():
            view = self.widget()
            bundle[WIDGET_MIME] = {"version_major": 2, "version_minor": 0,
                                   "model_id": view.model_id}
            self.start_prerender()  # the first figure is up: render the rest meanwhile
        return bundle

    def __repr__(self) -> str:
        return f"Explorer({getattr(self.fn, '__name__', 'fn')}, {self.size} settings)"


def explore(fn: Callable[..., Any], *, title: str | None = None,
            **controls: Control) -> Explorer:
    """Explore ``fn`` over a grid of settings.

    Args:
      fn: ``fn(**setting) -> matplotlib.figure.Figure``; called with every control.
        A ``fn`` with a ``fig=None`` parameter redraws into its previous figure, which
        makes a widget update several times faster.
      title: an optional heading shown above the live controls.
      **controls: name -> :func:`slider` or :func:`choice`.

    Returns:
      An :class:`Explorer`. As the last expression of a notebook cell it shows the live
      widget in a kernel that has a front end, and the default figure everywhere else
      (the mime bundle carries both; the book's HTML build is told to prefer the
      figure).
    """
    V.check_callable("fn", fn)
    if not controls:
        raise ValueError("explore needs at least one control, e.g. lr=slider(0.1, 1.0)")
    for name, c in controls.items():
        if not isinstance(c, (Slider, Choice)):
            raise TypeError(f"control `{name}` must be made with slider(...) or choice(...); "
                            f"got {type(c).__name__}")
    return Explorer(fn, dict(controls), title)
