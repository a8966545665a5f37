"""Helpers for the chapter notebooks.

:func:`glue` stores a computed number so the book's text can quote it
(``{glue:text}`name:.3f```); on Colab or plain Jupyter, where myst-nb is not installed,
it does nothing unless asked to display the value.
"""

from __future__ import annotations

from typing import Any

__all__ = ["glue"]


def glue(name: str, value: Any, display: bool = False) -> None:
    """Make ``value`` quotable in the book's text under ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"argument `name` must be a non-empty string; got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return
    myst_glue(name, value, display=display)
