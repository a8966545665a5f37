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
def test_notebook_executes_at_quick_scale(path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_before = os.environ.get("DLTHEORY_SCALE")
    os.environ["DLTHEORY_SCALE"] = "quick"  # inherited by the kernel
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("DLTHEORY_SCALE")
        else:
            os.environ["DLTHEORY_SCALE"] = env_before
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
    assert figures, "the chapter's figures are displayed inline (check the matplotlib backend)"
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert all("image/png" in o["data"] for o in widgets), "widgets carry a static figure"
