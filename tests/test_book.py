"""The strict book build: `jupyter-book build . -W -n --keep-going` must be clean."""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built():
    # Execute every notebook afresh: the cache is keyed on the notebooks, not on the
    # package code they call, so a cached page could hide a broken package.
    shutil.rmtree(ROOT / "_build" / ".jupyter_cache", ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["DLTHEORY_SCALE"] = "quick"
    env["DLTHEORY_PROGRESS"] = "0"  # no progress bars in the static pages, as `make book`
    jb = pathlib.Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", ".", "-W", "-n", "--keep-going"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1500, env=env)
    return proc, ROOT / "_build" / "html"


@pytest.mark.slow
def test_book_builds_without_warnings(built):
    proc, html = built
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert not re.search(r"^.*(WARNING|ERROR).*$", proc.stdout, flags=re.M), log[-5000:]
    assert (html / "index.html").exists()


@pytest.mark.slow
def test_chapter_page_is_complete(built):
    _, html = built
    page = (html / "book" / "preliminaries" / "gradient_descent.html").read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    assert "Traceback" not in text and "Error" not in text
    assert "{glue" not in page  # every glued number was filled in
    figures = re.findall(r'<img[^>]+src="[^"]*_images/[^"]+\.png"', page)
    assert len(figures) >= 4, "three static figures and the widget's default view"
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    owner_repo = url.removeprefix("https://github.com/")
    colab = (f"https://colab.research.google.com/github/{owner_repo}/blob/main/"
             "book/preliminaries/gradient_descent.ipynb")
    assert colab in page
    assert "Stability threshold" in text and "prf:" not in text  # the theorem was rendered
    assert "The best constant learning rate" in text  # exercises are there


@pytest.mark.slow
def test_bibliography_lists_every_reference(built):
    _, html = built
    page = (html / "book" / "bibliography.html").read_text()
    bib = (ROOT / "book" / "references.bib").read_text()
    for arxiv in re.findall(r"eprint\s*=\s*\{([0-9.]+)\}", bib):
        assert arxiv in page, arxiv


@pytest.mark.slow
def test_every_dropdown_has_a_title_to_toggle(built):
    """sphinx-togglebutton's script stops at the first dropdown admonition without a
    title, which silently leaves every toggle on the page open."""
    _, html = built
    for page in html.rglob("*.html"):
        text = page.read_text()
        for m in re.finditer(r'<div class="([^"]*\bdropdown\b[^"]*\badmonition\b[^"]*)"[^>]*>', text):
            head = text[m.end():m.end() + 400]
            assert 'class="admonition-title"' in head, f"{page.name}: {m.group(1)} has no title"
