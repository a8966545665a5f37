"""The Colab edition (tools/colab_edition.py): the chapters with their MyST made plain.

Fast tests convert small synthetic MyST; the slow ones convert every chapter of the
session's build (the `book` fixture of conftest.py) and check the result, its numbering
against the built pages, and one chapter rendered as a Jupyter front end renders
Markdown (CommonMark with HTML blocks, math kept apart) in headless Chromium.
"""

import html as html_lib
import importlib.util
import json
import pathlib
import re
import shutil
import subprocess
import sys
import types

import nbformat
import pytest

# the book's build tooling (the converter reads the bibliography with pybtex, installed
# with the book by `make`; the reader environments of `make test-colab`/`test-min` lack it)
pytest.importorskip("pybtex")

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import colab_edition as ce  # noqa: E402

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)


def _book(**numbers) -> ce.Book:
    """A two-page book: a chapter with a theorem, a definition and two exercises."""
    doc = "book/part/chapter"
    targets = {
        "thm-a": ce.Target(doc, "Theorem 3", "thm-a"),
        "ex-a": ce.Target(doc, "Exercise 7", "ex-a"),
        "sec-a": ce.Target("book/other", "A section", "sec-a"),
    }
    return ce.Book(
        url="https://owner.github.io/repo/",
        titles={doc: "The chapter", "book/other": "Other page", "book/notation": "Notation"},
        targets=targets,
        numbers={(doc, "thm-a"): "3", (doc, "def-a"): "1", (doc, "ex-a"): "7",
                 (doc, "ex-b"): "8", **numbers},
        bib={"smith2020": {"author": "Smith et al.", "year": "2020",
                           "url": "https://arxiv.org/abs/2001.00001", "title": "T"},
             "doe2021": {"author": "Doe and Roe", "year": "2021a",
                         "url": "https://doi.org/10.1/x", "title": "U"}},
        exercises={"ex-a": ("7", "First one"), "ex-b": ("8", "")},
    )


GLUE = {"loss": {"text/plain": "0.123456"}, "n": {"text/plain": "12345"},
        "frac": {"text/plain": "0.4567"}, "name": {"text/plain": "'adam'"},
        "big": {"text/plain": "1234567.891"}}


def _convert(text: str, glue=GLUE) -> str:
    ctx = ce.Context(_book(), "book/part/chapter", glue)
    return ce.convert_markdown(ctx, text)


def _no_myst(text: str) -> None:
    left = [s for s in ce.MYST_LEFTOVERS if s in text] + ce.TARGET_LINE.findall(text)
    assert not left, (left, text)


# ------------------------------------------------------------------ directives


def test_theorem_becomes_a_numbered_titled_block_quote():
    out = _convert("```{prf:theorem} Descent {cite:p}`smith2020`\n:label: thm-a\n\n"
                   "For all $x$,\n\n$$\na = b\n$$\n```")
    assert out.startswith("<blockquote>\n\n**Theorem 3 (Descent "
                          "([Smith et al., 2020](https://arxiv.org/abs/2001.00001))).**")
    assert "$$\na = b\n$$" in out and out.endswith("</blockquote>")
    _no_myst(out)


def test_definition_and_lemma_use_their_kind_and_number():
    out = _convert(":::{prf:definition} Sharpness\n:label: def-a\nThe top eigenvalue.\n:::")
    assert "**Definition 1 (Sharpness).**" in out and "The top eigenvalue." in out
    out = _convert("```{prf:lemma}\n:nonumber:\nA lemma.\n```")
    assert "**Lemma.**" in out


def test_proof_and_solution_are_collapsible():
    out = _convert("```{prf:proof}\nBy induction on $k$.\n```")
    assert out == ("<details>\n<summary><b>Proof</b></summary>\n\nBy induction on $k$."
                   "\n\n</details>")
    out = _convert("```{solution} ex-a\n:class: dropdown\n\nIt is $2$.\n```")
    assert "<summary><b>Solution to Exercise 7 (First one)</b></summary>" in out
    assert "It is $2$." in out and ":class:" not in out


def test_exercise_becomes_a_numbered_heading():
    out = _convert("````{exercise} First one\n:label: ex-a\n\nShow it.\n\n"
                   "```python\nx = 1\n```\n````")
    assert out.startswith("### Exercise 7 (First one)\n\nShow it.")
    assert "```python\nx = 1\n```" in out
    assert _convert("```{exercise}\n:label: ex-b\nDo it.\n```").startswith("### Exercise 8\n")


@pytest.mark.parametrize("name,title", [("note", "Note"), ("warning", "Warning"),
                                        ("tip", "Tip")])
def test_admonitions_are_block_quotes_with_a_bold_title(name, title):
    out = _convert(f"```{{{name}}}\nMind the {{math}}`\\eta`.\n```")
    assert out == f"<blockquote>\n\n**{title}**\n\nMind the $\\eta$.\n\n</blockquote>"


def test_dropdown_and_titled_admonition():
    out = _convert(":::{dropdown} Why it works\nBecause.\n:::")
    assert "**Why it works**" in out and "Because." in out
    out = _convert("```{admonition} Careful\n:class: warning\nText.\n```")
    assert "**Careful**" in out and ":class:" not in out


def test_nested_directives_convert_inside_out():
    out = _convert("::::{note}\n:::{prf:theorem} Inner\n:label: thm-a\nBody.\n:::\n::::")
    assert out.startswith("<blockquote>\n\n**Note**\n\n<blockquote>\n\n**Theorem 3 (Inner).**")
    assert out.count("</blockquote>") == 2 and "Body." in out


def test_math_stays_math():
    out = _convert("Inline {math}`a^2` and\n\n\\begin{align}\na &= b\n\\end{align}\n\n"
                   "```{math}\n:label: eq-one\nc = d\n```\n\nsee {eq}`eq-one`.")
    assert "Inline $a^2$" in out
    assert "$$\n\\begin{align}\na &= b\n\\end{align}\n$$" in out
    assert "$$\nc = d \\tag{1}\n$$" in out and "see (1)." in out
    out = _convert("$$\n\\begin{aligned} x \\end{aligned}\n$$")
    assert out.count("$$") == 2  # an environment already inside $$ is left alone
    out = _convert("$$\ne = mc^2\n$$ (eq-emc)\n\nBy {eq}`eq-emc`.")
    assert "e = mc^2\n\\tag{1}\n$$" in out and "By (1)." in out


def test_target_lines_go_and_code_fences_stay():
    out = _convert("(sec-a)=\n## A section\n\n```python\nprint('{cite:t}`x`')\n```")
    assert out.startswith("## A section") and "print('{cite:t}`x`')" in out


def test_unknown_directive_or_role_fails_loudly():
    with pytest.raises(ce.EditionError, match="directive {figure}"):
        _convert("```{figure} a.png\n```")
    with pytest.raises(ce.EditionError, match="role {term}"):
        _convert("a {term}`b`")
    with pytest.raises(ce.EditionError, match="nokey"):
        _convert("{cite:t}`nokey`")


# ----------------------------------------------------------------------- roles


def test_citations_link_to_the_paper():
    assert _convert("{cite:t}`smith2020`") == \
        "[Smith et al. (2020)](https://arxiv.org/abs/2001.00001)"
    assert _convert("{cite:p}`smith2020,doe2021`") == \
        "([Smith et al., 2020](https://arxiv.org/abs/2001.00001); " \
        "[Doe and Roe, 2021a](https://doi.org/10.1/x))"
    assert _convert("{cite}`doe2021`") == "([Doe and Roe, 2021a](https://doi.org/10.1/x))"


def test_doc_and_ref_link_to_the_published_pages():
    assert _convert("{doc}`../notation`") == \
        "[Notation](https://owner.github.io/repo/book/notation.html)"
    assert _convert("{doc}`that page </book/other>`") == \
        "[that page](https://owner.github.io/repo/book/other.html)"
    assert _convert("{prf:ref}`thm-a`") == \
        "[Theorem 3](https://owner.github.io/repo/book/part/chapter.html#thm-a)"
    assert _convert("{ref}`ex-a`") == \
        "[Exercise 7](https://owner.github.io/repo/book/part/chapter.html#ex-a)"
    assert _convert("{ref}`the section <sec-a>`") == \
        "[the section](https://owner.github.io/repo/book/other.html#sec-a)"


def test_roles_inside_code_spans_are_left_alone():
    assert _convert("write `{glue:text}`x`` here") == "write `{glue:text}`x`` here"


@pytest.mark.parametrize("role,shown", [
    ("{glue:text}`loss:.3f`", "0.123"),
    ("{glue:text}`loss:.0f`", "0"),
    ("{glue:text}`n:,`", "12,345"),
    ("{glue:text}`big:,.1f`", "1,234,567.9"),
    ("{glue:text}`frac:.1%`", "45.7%"),
    ("{glue:text}`frac:.2e`", "4.57e-01"),
    ("{glue:text}`n:d`", "12345"),
    ("{glue:text}`n`", "12345"),
    ("{glue:text}`name`", "adam"),
    ("{glue}`n`", "12345"),
])
def test_glue_is_formatted_as_on_the_page(role, shown):
    assert _convert(f"a {role} b") == f"a {shown} b"


def test_glue_formatting_matches_myst_nb():
    myst = pytest.importorskip("myst_nb.core.variables")
    for text in ("0.123456", "12345", "'adam'", "1e-300", "True"):
        for fmt in ("s", ".3f", ".0f", ",", ".1%", ".2e", ".3g", ""):
            try:
                expected = myst.format_plain_text(text, fmt)
            except (ValueError, TypeError):
                with pytest.raises((ValueError, TypeError)):
                    ce.format_plain_text(text, fmt)
                continue
            assert ce.format_plain_text(text, fmt) == expected


def test_missing_glue_says_to_rebuild():
    with pytest.raises(ce.EditionError, match="make book"):
        _convert("{glue:text}`absent:.2f`")


# ------------------------------------------------------------------- notebooks


def _notebook(tmp_path) -> pathlib.Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# The chapter\n\nIt starts with {cite:t}`smith2020`."),
        nbformat.v4.new_code_cell("# Setup\nimport dltheory", metadata={"tags": ["remove-input"]}),
        nbformat.v4.new_code_cell("glue('loss', 0.123456)"),
        nbformat.v4.new_markdown_cell("The loss is {glue:text}`loss:.2f`.\n\n"
                                      "```{exercise} Second\n:label: ex-b\nDo it.\n```\n\n"
                                      "```{solution-start} ex-b\n:class: dropdown\n```\n\nSketch."),
        nbformat.v4.new_code_cell("answer = 42"),
        nbformat.v4.new_markdown_cell("So 42.\n\n```{solution-end}\n```\n\nAfter."),
        nbformat.v4.new_code_cell("plot()", metadata={"tags": ["remove-cell"]}),
    ]
    nb.cells[2].outputs = [nbformat.v4.new_output("display_data", {"text/plain": "0.12"})]
    path = tmp_path / "book" / "part" / "chapter.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    return path


def test_notebook_conversion(tmp_path):
    path = _notebook(tmp_path)
    nb = ce.convert_notebook(path, _book(), GLUE, root=tmp_path)
    nbformat.validate(nb)
    md = [c.source for c in nb.cells if c.cell_type == "markdown"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert md[0] == "# The chapter" and md[1] == ce.NOTE
    assert md[2].startswith("It starts with [Smith et al. (2020)]")
    assert code[0].source == "# Setup\nimport dltheory"  # the setup cell, first, unchanged
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    hidden = [c.metadata.get("jupyter", {}).get("source_hidden", False) for c in code]
    assert hidden == [True, False, True, True]  # setup, plain, in a solution, remove-cell
    text = "\n".join(md)
    assert "The loss is 0.12." in text
    assert "<summary><b>Solution to Exercise 8</b></summary>\n\nSketch." in text
    assert "<summary><b>Solution to Exercise 8, continued</b></summary>\n\nSo 42." in text
    assert text.rstrip().endswith("After.") and "After." not in text.split("</details>")[-2]
    _no_myst(text)


def test_missing_cache_says_to_run_make_book(tmp_path):
    path = _notebook(tmp_path)
    with pytest.raises(ce.EditionError, match="make book"):
        ce.executed_notebook(path, tmp_path / "no-cache")


def test_numbering_runs_through_the_book_in_toc_order(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    chapters:\n"
        "      - file: book/b\n      - file: book/a\n")
    (tmp_path / "_config.yml").write_text(
        "repository:\n  url: https://github.com/Owner/repo\nbibtex_bibfiles: []\n")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text(
        "# Intro\n\n```{prf:theorem} Zero\n:label: t0\n```\n")
    for name, labels in (("b", ("t1", "t2")), ("a", ("t3",))):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# Page {name}\n\n(sec-{name})=\n## Part")]
        nb.cells += [nbformat.v4.new_markdown_cell(f"```{{prf:theorem}}\n:label: {x}\n```")
                     for x in labels]
        nb.cells += [nbformat.v4.new_markdown_cell("```{prf:lemma}\n:nonumber:\n```\n"
                                                   f"```{{exercise}}\n:label: ex-{name}\n```")]
        nbformat.write(nb, tmp_path / "book" / f"{name}.ipynb")
    book = ce.scan_book(tmp_path)
    assert book.url == "https://owner.github.io/repo/"
    assert [book.targets[x].text for x in ("t0", "t1", "t2", "t3")] == \
        ["Theorem 1", "Theorem 2", "Theorem 3", "Theorem 4"]
    assert book.exercises["ex-b"][0] == "1" and book.exercises["ex-a"][0] == "2"
    assert book.targets["sec-a"] == ce.Target("book/a", "Part", "sec-a")
    assert book.titles["book/a"] == "Page a"
    assert [p.name for p in ce.chapter_notebooks(tmp_path)] == ["b.ipynb", "a.ipynb"]


def test_numbered_parts_number_per_chapter_and_the_pages_win(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    numbered: true\n"
        "    chapters:\n      - file: book/b\n      - file: book/a\n"
        "  - caption: Back\n    chapters:\n      - file: book/c\n")
    (tmp_path / "_config.yml").write_text(
        "repository:\n  url: https://github.com/o/r\nbibtex_bibfiles: []\n")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    for name, labels in (("b", ("t1", "t2")), ("a", ("t3",)), ("c", ("t4",))):
        (tmp_path / "book" / f"{name}.md").write_text(f"# {name}\n\n" + "".join(
            f"```{{prf:theorem}} T\n:label: {x}\n```\n\n```{{exercise}}\n:label: e{x}\n```\n"
            for x in labels))
    book = ce.scan_book(tmp_path)
    assert [book.targets[x].text for x in ("t1", "t2", "t3", "t4")] == \
        ["Theorem 1.1", "Theorem 1.2", "Theorem 2.1", "Theorem 1"]
    assert book.exercises["et2"][0] == "1.2" and book.numbers[("book/a", "t3")] == "2.1"
    html = tmp_path / "html"
    (html / "book").mkdir(parents=True)
    (html / "book" / "a.html").write_text(
        '<div class="proof theorem admonition" id="t3">\n<p class="admonition-title">'
        '<span class="caption-number">Theorem 7.4 </span> (T)</p>')
    assert ce.html_numbers(html) == {"t3": "Theorem 7.4"}
    book = ce.scan_book(tmp_path, html=html)
    assert book.targets["t3"].text == "Theorem 7.4" and book.numbers[("book/a", "t3")] == "7.4"
    assert book.targets["t1"].text == "Theorem 1.1"


def test_site_url_comes_from_the_repository_url():
    assert ce.site_url({"repository": {"url": "https://github.com/Some-Org/a.book.git"}}) == \
        "https://some-org.github.io/a.book/"
    with pytest.raises(ce.EditionError):
        ce.site_url({"repository": {"url": "https://gitlab.com/a/b"}})


def test_the_colab_button_opens_the_colab_branch():
    import colab_links

    app = types.SimpleNamespace(config=types.SimpleNamespace(html_theme_options={
        "repository_url": "https://github.com/o/r", "repository_branch": "main",
        "launch_buttons": {"colab_url": "https://colab.research.google.com",
                           "colab_branch": "colab"}}))
    colab = "https://colab.research.google.com/github/o/r/blob/main/book/a.ipynb"
    context = {"header_buttons": [
        {"label": "launch-buttons", "buttons": [{"type": "link", "url": colab}]},
        {"label": "download-buttons", "buttons": [{"url": "_sources/book/a.ipynb"}]}]}
    colab_links.colab_branch_links(app, "book/a", "page.html", context, None)
    urls = [b["url"] for b in context["header_buttons"][0]["buttons"]]
    assert urls == ["https://colab.research.google.com/github/o/r/blob/colab/book/a.ipynb",
                    "https://github.com/o/r/blob/main/book/a.ipynb"]
    assert context["header_buttons"][1]["buttons"] == [{"url": "_sources/book/a.ipynb"}]


def test_the_repository_url_lives_in_config_only():
    import yaml

    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    for path in ("tools/colab_edition.py", "tools/colab_links.py", ".github/workflows/book.yml",
                 "tests/test_colab_edition.py"):
        assert url.removeprefix("https://") not in (ROOT / path).read_text(), path


# ---------------------------------------------------- the edition of the real book


@pytest.fixture(scope="module")
def edition(book, tmp_path_factory):
    """The Colab edition of the session's build, written as `make colab-edition` does."""
    assert book.proc.returncode == 0, book.log[-3000:]
    out = tmp_path_factory.mktemp("colab-edition")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "colab_edition.py"),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _chapters():
    return ce.chapter_notebooks(ROOT)


@pytest.mark.slow
def test_edition_has_every_chapter_and_no_myst(edition):
    for src in _chapters():
        rel = src.relative_to(ROOT)
        nb = nbformat.read(edition / rel, as_version=4)
        nbformat.validate(nb)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        left = [s for s in ce.MYST_LEFTOVERS if s in text] + ce.TARGET_LINE.findall(text)
        assert not left, f"{rel}: {left}"
        assert ce.NOTE in text, rel
        source = nbformat.read(src, as_version=4)
        first = next(c for c in source.cells if c.cell_type == "code")
        assert next(c for c in nb.cells if c.cell_type == "code").source == first.source, rel
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), rel


@pytest.mark.slow
def test_every_glued_number_is_the_builds(edition, book):
    for src in _chapters():
        rel = src.relative_to(ROOT)
        glue = ce.glue_data(book.executed_notebook(src))
        text = "\n".join(c.source for c in nbformat.read(edition / rel, as_version=4).cells
                         if c.cell_type == "markdown")
        source = "\n".join(c.source for c in nbformat.read(src, as_version=4).cells
                           if c.cell_type == "markdown")
        for key, fmt in re.findall(r"\{glue:text\}`([^`:]+):?([^`]*)`", source):
            plain = glue[key]["text/plain"]
            shown = ce.format_plain_text(plain, fmt or "s")
            if not plain.startswith(("'", '"')):  # a number (a few values are words)
                assert re.search(r"\d", shown), f"{rel}: {key} is not a number: {shown!r}"
            assert shown in text, f"{rel}: {key} ({shown}) is not in the edition"


@pytest.mark.slow
def test_numbers_match_the_built_pages(book):
    """The numbers computed without the site are those sphinx-proof/sphinx-exercise print."""
    scanned = ce.scan_book(ROOT)  # no html: the numbers are computed
    checked = 0
    for (doc, label), number in scanned.numbers.items():
        page = book.html / f"{doc}.html"
        if not number or not page.exists():
            continue
        text = page.read_text()
        m = re.search(rf'id="{re.escape(label)}"[^>]*>\s*<p class="admonition-title">'
                      r'\s*<span class="caption-number">([^<]*?)\s*</span>', text)
        assert m, f"{doc}: {label} not found on the page"
        assert m.group(1).strip() == scanned.targets[label].text, (doc, label, m.group(1))
        checked += 1
    assert checked >= 10


@pytest.mark.slow
def test_chapters_read_no_local_files():
    """The edition runs from its own folder: no chapter opens a file by a relative path."""
    for src in _chapters():
        for cell in nbformat.read(src, as_version=4).cells:
            if cell.cell_type == "code":
                assert not re.search(r"open\(|read_csv\(|np\.load\(|\.\./", cell.source), \
                    (src.name, cell.source[:200])


MATHJAX = ROOT / "tools" / "browser" / "node_modules" / "mathjax" / "es5" / "tex-mml-chtml.js"


def render_markdown_html(nb, mathjax: pathlib.Path | None = None) -> str:
    """A notebook as a Jupyter front end shows it: in each Markdown cell the math is taken
    out before CommonMark parses the rest (HTML blocks allowed) and put back for MathJax
    (typeset when ``mathjax`` is a local copy); code cells whose source is hidden are
    left out."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            maths: list[str] = []

            def keep(m, maths=maths):
                maths.append(m.group(0))
                return f"@@{len(maths) - 1}@@"

            text = re.sub(r"\$\$.+?\$\$|\$[^$\n]+?\$", keep, cell.source, flags=re.S)
            out = md.render(text)
            out = re.sub(r"@@(\d+)@@", lambda m: html_lib.escape(maths[int(m.group(1))]), out)
            parts.append(f'<div class="md">{out}</div>')
        elif not cell.metadata.get("jupyter", {}).get("source_hidden"):
            parts.append(f"<pre class='code'>{html_lib.escape(cell.source)}</pre>")
    style = ("body{font-family:sans-serif;max-width:900px;margin:auto}"
             "blockquote{border-left:4px solid #888;padding-left:1em;margin-left:0}"
             "pre.code{background:#f4f4f4;padding:.5em}")
    script = ""
    if mathjax is not None:
        script = ("<script>window.MathJax={tex:{inlineMath:[['$','$']],displayMath:[['$$','$$']],"
                  "processEscapes:true,tags:'none'}};</script>"
                  f"<script src='{mathjax.as_uri()}'></script>")
    return f"<html><head><meta charset='utf-8'><style>{style}</style>{script}</head>" \
           f"<body>{''.join(parts)}</body></html>"


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed")
def test_edition_renders_in_a_browser(edition, book, tmp_path):
    rel = pathlib.Path("book/preliminaries/gradient_descent.ipynb")
    nb = nbformat.read(edition / rel, as_version=4)
    page = tmp_path / "gradient_descent.html"
    page.write_text(render_markdown_html(nb, MATHJAX if MATHJAX.exists() else None))
    proc = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
                           "--allow-file-access-from-files", "--virtual-time-budget=15000",
                           "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    text = html_lib.unescape(re.sub(r"<[^>]+>", " ", body))
    assert "Theorem 2.1 (Gradient descent on a quadratic)" in re.sub(r"\s+", " ", text)
    glue = ce.glue_data(book.executed_notebook(ROOT / rel))
    number = ce.format_plain_text(glue["stab_pred"]["text/plain"], ".4f")
    assert number in text
    assert "<details>" in dom and "<blockquote>" in dom
    for syntax in ("{prf:", "{glue", "```{", "{cite", "{doc}"):
        assert syntax not in text, syntax
    if MATHJAX.exists():  # the math was typeset: none is left as TeX source
        assert "<mjx-container" in dom
        assert "\\mathcal" not in text and "$$" not in text
