"""Helpers for the chapter notebooks.

:func:`glue` stores a computed number so the book's text can quote it
(``{glue:text}`name:.3f```); on Colab or plain Jupyter, where myst-nb is not installed,
it does nothing unless asked to display the value. :func:`elapsed` measures how long the
chapter has been running since its setup cell (which calls :func:`dltheory.config.describe`),
for the compute budget each chapter states.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["glue", "glue_markdown", "glued", "dump_glued", "elapsed", "start_clock"]

_START: float | None = None
_GLUED: dict[str, Any] = {}


def start_clock() -> None:
    """Start (or restart) the chapter's clock; the setup cell does it via ``describe()``."""
    global _START
    _START = time.perf_counter()


def elapsed() -> float:
    """Seconds since the chapter's setup cell ran (since this module was first used
    if it did not), to state the measured compute budget of a chapter."""
    if _START is None:
        start_clock()
    return time.perf_counter() - _START


def _plain(value: Any) -> Any:
    """NumPy and JAX scalars as Python numbers, so ``{glue:text}`x:.3f``` can format them
    (myst-nb formats the stored ``text/plain``, and ``np.float32(0.5)`` is not a float)."""
    import numpy as np

    if hasattr(value, "shape") and hasattr(value, "dtype") and np.ndim(value) == 0:
        return np.asarray(value).item()
    return value


def glue(name: str, value: Any, display: bool = False) -> None:
    """Make ``value`` quotable in the book's text under ``name``.

    NumPy and JAX scalars are stored as Python numbers so format specs apply.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"argument `name` must be a non-empty string; got {name!r}")
    value = _plain(value)
    _GLUED[name] = value
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return
    myst_glue(name, value, display=display)


def glue_markdown(name: str, text: str) -> None:
    """Make the Markdown ``text`` quotable as ``{glue:md}`name``` (a line of the book
    written by the package, such as a theorem's ledger line)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"argument `name` must be a non-empty string; got {name!r}")
    if not isinstance(text, str):
        raise TypeError(f"argument `text` must be a string of Markdown; got {type(text).__name__}")
    _GLUED[name] = text
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    from IPython.display import Markdown

    myst_glue(name, Markdown(text), display=False)


def glued() -> dict[str, Any]:
    """Every value glued in this process so far, by name (a copy)."""
    return dict(_GLUED)


def dump_glued(chapter: str) -> None:
    """With ``DLTHEORY_GLUE_DIR`` set, write the values glued so far (numbers and text; not
    the theorem ledger lines) there as ``<chapter with / as __>.json``, for the drift guard
    (``tools/check_numbers.py --dumps``) where myst-nb does not run; without it, nothing.

    Args:
      chapter: the page's key in ``book/numbers.json``, e.g. ``"sharpness/sam"``.
    """
    import json
    import os
    import pathlib

    if not isinstance(chapter, str) or not chapter:
        raise ValueError(f"argument `chapter` must be a non-empty string; got {chapter!r}")
    folder = os.environ.get("DLTHEORY_GLUE_DIR")
    if not folder:
        return
    path = pathlib.Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    plain = {k: v for k, v in _GLUED.items()
             if not k.startswith("ledger-") and isinstance(v, (int, float, str, bool))}
    (path / f"{chapter.replace('/', '__')}.json").write_text(
        json.dumps({"chapter": chapter, "values": plain}, indent=1))
