"""Notebook hygiene, the setup cell, and every chapter executed at quick scale."""

import json
import os
import pathlib
import re

import nbformat
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
IDS = [str(p.relative_to(ROOT)) for p in NOTEBOOKS]


def config():
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def test_there_are_notebooks():
    assert NOTEBOOKS, "no chapter notebooks found under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_stripped(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; strip them"
    assert "widgets" not in nb.get("metadata", {}), "saved widget state must be stripped"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_in_the_toc(path):
    toc = (ROOT / "_toc.yml").read_text()
    assert str(path.relative_to(ROOT).with_suffix("")) in toc


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_setup_cell_installs_from_the_configured_repository(path):
    url = config()["repository"]["url"]
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    found = re.findall(r'^DLTHEORY_REPO = "([^"]+)"$', first.source, flags=re.M)
    assert found == [url], (f"{path.name}: the first code cell must set DLTHEORY_REPO to the "
                            f"repository.url of _config.yml ({url}); found {found}")
    assert "remove-input" in first.metadata.get("tags", []), "the setup cell is hidden in the HTML"
    assert 'find_spec("dltheory") is None' in first.source  # installs only when missing
    assert "dltheory.describe()" in first.source  # and says backend and scale


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_executes_at_quick_scale(path, book):
    """Each chapter as the book build executed it (once, in the session's `book` build)."""
    rel = path.relative_to(ROOT)
    try:
        nb = book.executed_notebook(path)
    except KeyError:
        pytest.fail(f"{rel} was not executed by the book build:\n{book.log[-3000:]}")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "scale: quick" in streams  # the setup cell reported where it ran
    assert "Traceback" not in streams
    leaked = [o["data"]["text/plain"][:60] for o in outputs if o.output_type == "execute_result"
              and re.match(r"\[?(<matplotlib|Text\(|\[<matplotlib)", o["data"].get("text/plain", ""))]
    assert not leaked, f"cells print matplotlib reprs (end them with ';'): {leaked}"
    figures = [o for o in outputs if o.output_type == "display_data"
               and "image/png" in o.get("data", {})]
    if path.parent != ROOT / "book":  # a chapter (book/*.ipynb are back-matter tables)
        assert figures, "the chapter's figures are displayed inline (check the matplotlib backend)"
    twins = [o for o in outputs if "dltheory-twin" in o.get("data", {}).get("text/html", "")]
    if "explore(" in path.read_text():
        assert twins, "each widget gets its kernel-free twin in the static build"
    assert all("image/png" in o["data"] for o in twins), "and still carries a static figure"
    seconds = book.execution_seconds()[rel.as_posix()]
    print(f"{rel}: executed in {seconds:.1f} s")


def test_every_chapter_has_the_same_setup_cell():
    """So the Colab job, which runs the first chapter's setup cell, covers them all."""
    cells = {p.relative_to(ROOT).as_posix(): next(
        c for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code").source
        for p in NOTEBOOKS}
    assert len(set(cells.values())) == 1, sorted(cells)


# The setup cell itself runs in `make test-colab` (tools/env_jobs.py): in Colab's own
# package set, with a wrong install location (its error message) and then for real, and
# the job fails if the install changed any package Colab had.


CHAPTERS = [p for p in NOTEBOOKS if p.name != "paper_scale.ipynb"]
ARC = ["## The result", "## Explore it yourself", "## Where the picture breaks", "## Paper scale",
       "## The claims of this chapter", "## Exercises", "## What to remember", "## References"]


def _markdown(path):
    nb = json.loads(path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("path", CHAPTERS, ids=[str(p.relative_to(ROOT)) for p in CHAPTERS])
def test_chapter_follows_the_arc(path):
    """Every chapter opens with what the reader will be able to do and what it assumes, walks
    the sections of the chapter arc in order, and ends with three to five sentences to remember."""
    cells = _markdown(path)
    first = cells[0]
    assert first.startswith("# "), f"{path.name}: the first cell must be the chapter's title"
    box = re.search(r"```\{admonition\} In this chapter\n(.*?)\n```", first, re.S)
    assert box, f"{path.name}: the first cell must hold the 'In this chapter' box"
    assert "**You will be able to**" in box.group(1) and "**Prerequisites:**" in box.group(1), (
        f"{path.name}: the 'In this chapter' box names what the reader will be able to do "
        "and the prerequisites")
    headings = [line.strip() for text in cells for line in text.splitlines() if line.startswith("## ")]
    positions = []
    for h in ARC:
        assert h in headings, f"{path.name}: the section {h!r} is missing"
        positions.append(headings.index(h))
    assert positions == sorted(positions), (
        f"{path.name}: the sections must come in the order {ARC}; found {headings}")
    text = "\n".join(cells)
    remember = text.split("## What to remember", 1)[1].split("## References", 1)[0]
    prose = re.sub(r"\$\$.*?\$\$|\$[^$]*\$", "x", remember, flags=re.S)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", prose.strip()) if s.strip()]
    assert 3 <= len(sentences) <= 5, (
        f"{path.name}: 'What to remember' has {len(sentences)} sentences; three to five")
