"""Sphinx extension: the single-page builder renders every node the HTML builder renders.

Sphinx looks up the visitors of custom nodes by builder name first and by format only when
that name has none. Once any extension registers a node for ``singlehtml`` by name, the
nodes registered for ``html`` only (sphinx-proof's theorems, for one) have no visitor there
and the single-page build fails on them. ``make pdf`` prints that page, so on
``builder-inited`` this copies every ``html`` visitor the single-page builder lacks.
"""

from __future__ import annotations


def _share_html_visitors(app) -> None:
    if app.builder.name != "singlehtml":
        return
    handlers = app.registry.translation_handlers
    single = handlers.setdefault("singlehtml", {})
    for name, visitors in handlers.get("html", {}).items():
        single.setdefault(name, visitors)


def setup(app):
    app.connect("builder-inited", _share_html_visitors)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
