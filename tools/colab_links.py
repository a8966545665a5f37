"""Sphinx extension: the pages' Colab buttons open the Colab edition of the chapter.

Jupyter Book builds the Colab launch URL from ``repository.url`` and
``repository.branch`` of ``_config.yml`` (the source notebooks on ``main``, whose MyST a
Jupyter front end does not render). The deploy workflow publishes the Colab edition
(tools/colab_edition.py: the same notebooks in plain Markdown, with the book's numbers)
on another branch, named by ``launch_buttons.colab_branch``. This extension rewrites the
branch of the Colab launch link only, after sphinx-book-theme has made it, and adds a
"Source notebook" link to the same menu for contributors; every other link (repository,
issues, edit, source) keeps ``repository.branch``.

Loaded from ``_config.yml`` through ``sphinx: local_extensions``.
"""

from __future__ import annotations

from typing import Any


def colab_branch_links(app, pagename: str, templatename: str, context: dict[str, Any],
                       doctree) -> None:
    options = app.config.html_theme_options
    launch = options.get("launch_buttons") or {}
    colab_branch = launch.get("colab_branch")
    branch = options.get("repository_branch") or "main"
    colab_url = (launch.get("colab_url") or "").rstrip("/")
    repo_url = (options.get("repository_url") or "").rstrip("/")
    if not colab_branch or not colab_url:
        return
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        buttons = group.get("buttons", [])
        for button in list(buttons):
            url = button.get("url", "")
            if url.startswith(f"{colab_url}/github/") and f"/blob/{branch}/" in url:
                head, _, path = url.partition(f"/blob/{branch}/")
                button["url"] = f"{head}/blob/{colab_branch}/{path}"
                button["tooltip"] = "Launch on Colab (the chapter in plain Markdown)"
                if repo_url.startswith("https://github.com/"):
                    buttons.append({
                        "type": "link",
                        "text": "Source notebook",
                        "tooltip": "The chapter's source notebook (MyST Markdown), on GitHub",
                        "icon": "fab fa-github",
                        "url": f"{repo_url}/blob/{branch}/{path}",
                    })


def setup(app):
    # after sphinx-book-theme's add_launch_buttons (priority 501)
    app.connect("html-page-context", colab_branch_links, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
