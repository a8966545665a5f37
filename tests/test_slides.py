"""`make slides` (tools/slides.py): a reveal.js deck per chapter from its own cells, built
from the session's book build (the `book` fixture of conftest.py) and opened in headless
Chromium."""

import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("pybtex")  # the book's build tooling (see tests/test_colab_edition.py)

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import colab_edition as ce  # noqa: E402
import slides  # noqa: E402

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)
PARTS = ("book/preliminaries/", "book/sde/", "book/margin/", "book/lowrank/",
         "book/normalization/", "book/sharpness/")
CHAPTERS = [p for p in ce.chapter_notebooks(ROOT)
            if p.relative_to(ROOT).as_posix().startswith(PARTS)]
NPM = (slides.REVEAL / "dist" / "reveal.js").is_file() and (slides.MATHJAX / "tex-mml-chtml.js").is_file()


def test_every_chapter_tags_a_figure_for_its_deck():
    for path in CHAPTERS:
        nb = json.loads(path.read_text())
        tagged = [c for c in nb["cells"] if c["cell_type"] == "code"
                  and slides.TAG in c["metadata"].get("tags", [])]
        assert tagged, f"{path.name}: no code cell tagged {slides.TAG!r} (the deck's figures)"


@pytest.fixture(scope="module")
def decks(book, tmp_path_factory):
    if not NPM:
        pytest.skip("reveal.js and MathJax come from npm (`npm ci --prefix tools/browser`)")
    assert book.proc.returncode == 0, book.log[-3000:]
    out = tmp_path_factory.mktemp("slides")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "slides.py"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_deck_holds_the_chapters_objectives_theorem_figures_numbers_and_summary(decks, path):
    rel = path.relative_to(ROOT / "book").with_suffix(".html")
    page = (decks / rel).read_text()
    kinds = re.findall(r'<section class="[^"]*" data-kind="(\w+)"', page)
    assert kinds[0] == "intro" and kinds[-1] == "remember", kinds
    assert "statement" in kinds and "figure" in kinds and "claims" in kinds, kinds
    nb = json.loads(path.read_text())
    source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    title = re.search(r"^# (.+)$", source, re.M).group(1)
    assert f"<h1>{title}</h1>" in page.replace("&#x27;", "'")
    for label in re.findall(r"```\{prf:(?:theorem|conjecture)\}[^\n]*\n:label: ([\w-]+)", source):
        assert re.search(r"(Theorem|Conjecture) \d+\.\d+", page), label
        assert f"ledger-{label}" not in page, "the ledger line is filled in, not left as a role"
    figures = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]{2000,})"', page)
    tagged = sum(1 for c in nb["cells"] if slides.TAG in c.get("metadata", {}).get("tags", []))
    assert len(figures) >= tagged, (len(figures), tagged)
    assert "{glue" not in page and "{doc}" not in page and "{cite" not in page
    up = "../" * (len(rel.parts) - 1)
    for asset in ("_static/reveal/dist/reveal.js", "_static/reveal/plugin/math/math.js",
                  "_static/mathjax/tex-mml-chtml.js"):
        assert f'"{up}{asset}"' in page and (decks / asset).is_file(), asset
    assert f'href="{rel.as_posix()}"' in (decks / "index.html").read_text()


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed")
def test_a_deck_runs_in_chromium_with_typeset_math(decks, tmp_path):
    page = decks / "lowrank" / "greedy_low_rank.html"
    proc = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", f"--user-data-dir={tmp_path}",
                           "--allow-file-access-from-files", "--virtual-time-budget=15000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True,
                          timeout=120)
    dom = proc.stdout
    assert re.search(r'class="reveal [^"]*\bready\b', dom), "reveal.js did not start"
    assert dom.count("<mjx-container") >= 5, "MathJax did not typeset the slides' math"
