"""The strict book build (`jupyter-book build . -W -n --keep-going`, built once per
session by the `book` fixture of conftest.py) must be clean, and its pages complete."""

import os
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(book):
    return book.proc, book.html


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
    # the Colab button opens the Colab edition's branch; the source notebook stays linked
    colab = (f"https://colab.research.google.com/github/{owner_repo}/blob/colab/"
             "book/preliminaries/gradient_descent.ipynb")
    assert colab in page
    assert f"{url}/blob/main/book/preliminaries/gradient_descent.ipynb" in page
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


@pytest.mark.slow
def test_every_chapter_page_is_complete(book):
    """Every chapter in the toc has a page with its figures, its glued numbers, a Colab
    button and its exercises."""
    toc = (ROOT / "_toc.yml").read_text()
    # chapters live in the parts' folders; book/*.ipynb are back-matter pages (tables)
    chapters = sorted(p for p in (ROOT / "book").rglob("*.ipynb")
                      if str(p.relative_to(ROOT).with_suffix("")) in toc
                      and p.parent != ROOT / "book")
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    owner_repo = url.removeprefix("https://github.com/")
    for nb in chapters:
        rel = nb.relative_to(ROOT)
        page = (book.html / rel.with_suffix(".html")).read_text()
        text = re.sub(r"<[^>]+>", " ", page)
        assert "{glue" not in page, f"{rel}: a glued number was not filled in"
        assert re.search(r'<img[^>]+src="[^"]*(_images/[^"]+\.png|data:image/png)', page), rel
        assert f"https://colab.research.google.com/github/{owner_repo}/blob/colab/{rel}" in page
        assert len(re.findall(r'class="[^"]*\bexercise\b', page)) >= 3, f"{rel}: exercises"
        assert "Traceback" not in text, rel
        # each theorem is followed by its ledger line, and the chapter ends with its claims
        theorems = len(re.findall(r'class="proof (theorem|conjecture)\b', page))
        assert text.count("Checked by") >= theorems >= 1, f"{rel}: ledger lines"
        assert "The claims of this chapter" in text and "test_claim_" in text, rel


@pytest.mark.slow
def test_claims_page_lists_every_claim_with_this_builds_values(book):
    """book/claims.md: one row per registered claim, every value and status filled in
    from the chapters' builds, and the status of each the one its chapter computed."""
    from dltheory import claims

    page = (book.html / "book" / "claims.html").read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "{glue" not in page and "Traceback" not in text
    for c in claims.CLAIMS:
        assert c.test_name in text, c.label
    statuses = re.findall(r"\b(holds|does not hold|tested)\b", text)
    assert len(statuses) >= len(claims.CLAIMS)


@pytest.mark.slow
def test_student_edition_has_no_solutions(book, tmp_path):
    """`make book-student`: the same pages from the same execution cache, no solutions."""
    import subprocess
    import sys

    assert book.proc.returncode == 0, book.log[-3000:]
    out = tmp_path / "student"
    py = pathlib.Path(sys.executable)
    subprocess.run([str(py), "tools/student_edition.py", str(out)], cwd=ROOT, check=True)
    proc = subprocess.run([str(py.with_name("jupyter-book")), "build", ".", "--config",
                           str(out / "_config.yml"), "--path-output", str(out), "-W", "-n",
                           "--keep-going"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "DLTHEORY_STATIC_TWINS": "1"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "Executing notebook" not in proc.stdout, "the student build reuses the cache"
    student = out / "_build" / "html"
    pages = 0
    for page in book.html.rglob("*.html"):
        rel = page.relative_to(book.html)
        if rel.parts[0].startswith("_") or not (student / rel).exists():
            continue
        full, bare = page.read_text(), (student / rel).read_text()
        n_solutions = len(re.findall(r'class="[^"]*\bsolution\b', full))
        assert not re.search(r'class="[^"]*\bsolution\b', bare), rel
        assert "solution-start" not in bare and "solution-end" not in bare
        if n_solutions:
            pages += 1
            # exercises stay; the code of gated solutions goes with them
            assert len(re.findall(r'class="[^"]*\bexercise\b', bare)) == \
                len(re.findall(r'class="[^"]*\bexercise\b', full)), rel
    assert pages >= 1, "no page with solutions was compared"
    # the code cells of gated solutions (between solution-start and solution-end) are gone
    checked = 0
    for nb, lines in _gated_solution_code().items():
        rel = nb.relative_to(ROOT).with_suffix(".html")
        full = _text((book.html / rel).read_text())
        bare = _text((student / rel).read_text())
        for line in lines:
            assert line in full, (rel, line)
            assert line not in bare, (rel, line)
            checked += 1
    assert checked >= 1, "no gated solution code was checked"


def _text(page: str) -> str:
    import html as html_lib

    return html_lib.unescape(re.sub(r"<[^>]+>", "", page))


def _gated_solution_code() -> dict:
    """notebook -> a distinctive code line of each code cell inside a gated solution."""
    import nbformat

    found = {}
    for nb_path in sorted((ROOT / "book").rglob("*.ipynb")):
        inside, lines = False, []
        for cell in nbformat.read(nb_path, as_version=4).cells:
            if cell.cell_type == "markdown":
                if "solution-start" in cell.source:
                    inside = True
                if "solution-end" in cell.source:
                    inside = False
            elif inside:
                code = [ln.strip() for ln in cell.source.splitlines()
                        if len(ln.strip()) > 20 and not ln.strip().startswith("#")]
                if code:
                    lines.append(code[0])
        if lines:
            found[nb_path] = lines
    return found


@pytest.mark.slow
def test_site_stays_light(book):
    total = sum(p.stat().st_size for p in book.html.rglob("*") if p.is_file())
    twins = {}
    for page in sorted(book.html.rglob("*.html")):
        sizes = [len(m) for m in re.findall(r'<div class="dltheory-twin".*?</script></div>',
                                            page.read_text(), re.S)]
        if sizes:
            twins[page.relative_to(book.html).as_posix()] = sizes
    lines = [f"site: {total / 1e6:.1f} MB"] + [
        f"{page}: twins of {', '.join(f'{s / 1e6:.2f} MB' for s in sizes)}"
        for page, sizes in twins.items()]
    print("\n".join(lines))
    (ROOT / "_build" / "site-size.txt").write_text("\n".join(lines) + "\n")
    assert total < 60e6, f"the site is {total / 1e6:.1f} MB; keep it under 60 MB"


@pytest.mark.slow
def test_drift_guard_passes_on_this_build(book):
    """Every glued number of the fresh build is within its tolerance of book/numbers.json
    (tools/check_numbers.py, which `make book` runs after the build)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "check_numbers.py")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
