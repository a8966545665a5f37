"""Guards for what a careful reader of the built book finds (GitHub issue 14).

- Every code cell that makes a figure shows it on the page (slow: executed notebooks).
- The pages and the API docstrings speak of the subject only: no words about how or
  where the book was built, and no bare file names that linkify turns into links to
  ``http://<name>.md`` (fast: sources; slow: the built HTML).
- Every comparison the text draws between measured numbers ("slower", "closer",
  "best", ...) is glued from a comparison the package computes (fast: sources).

The size the figures' text is read at is checked in tests/test_browser.py, where the
pages are laid out in a real browser.

Each check is a function over text or a notebook, tested here on examples of what it
must catch, and then run over the book.
"""

from __future__ import annotations

import ast
import pathlib
import re

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(p for p in BOOK.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
PAGES = sorted(BOOK.rglob("*.md"))
SOURCES = sorted((ROOT / "src" / "dltheory").rglob("*.py"))


def _rel(path: pathlib.Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _markdown_cells(path: pathlib.Path) -> list[tuple[str, str]]:
    """``(where, text)`` of each markdown cell of a notebook, or the whole of a .md page."""
    if path.suffix == ".md":
        return [(_rel(path), path.read_text())]
    nb = nbformat.read(path, as_version=4)
    return [(f"{_rel(path)} cell {i}", c.source) for i, c in enumerate(nb.cells)
            if c.cell_type == "markdown"]


# --------------------------------------------------------------------------------------
# Build-process vocabulary and links to local files
# --------------------------------------------------------------------------------------

#: Phrases that speak of how or where the book was made, not of its subject. Each is
#: specific enough not to meet the science; "session" is never the subject of the book.
FORBIDDEN = [
    r"\bsessions?\b",
    r"\bbuild machine\b",
    r"\bload average\b",
    r"\bcould not retrieve\b",
    r"\b(did|could) not (check|verify)\b",
    r"\bnot (been )?checked against\b",
    r"\bPAPERS\.md\b",
    r"\bDESIGN\.md\b",
    r"\bno GPU was available\b",
    r"\bhad no GPU\b",
    r"\b(was|were) not run\b",
    r"\b(has|have) not been run\b",
    r"\bshared (CPU )?cores\b",
    r"\bcores shared\b",
    r"\bshared with other jobs\b",
    r"\bwhile writing this\b",
    r"\b(page|chapter|book|site) was (last )?built\b",
    r"\bGPU (time|memory) (was not|has not been|is not yet) measured\b",
    r"\bmeasured yet\b",
]
_FORBIDDEN = re.compile("|".join(f"(?:{p})" for p in FORBIDDEN), re.I)


def build_vocabulary(text: str) -> list[str]:
    """The forbidden phrases in ``text``, each with a little context."""
    flat = " ".join(text.split())
    return [flat[max(0, m.start() - 40):m.end() + 40] for m in _FORBIDDEN.finditer(flat)]


#: File extensions that are also top-level domains (or that readers take for files):
#: linkify turns a bare ``notes.md`` or ``run.py`` into a link to ``http://notes.md``.
FILE_SUFFIXES = ("md", "py", "txt", "ipynb", "rst", "sh", "json", "yml", "yaml", "toml",
                 "cfg", "bib", "csv", "js")
_FILE_LINK = re.compile(r"^https?://[^/]+\.(%s)$" % "|".join(FILE_SUFFIXES), re.I)


def _outside_code(markdown: str) -> str:
    """The text linkify sees: without fenced code, inline code, roles and math."""
    text = re.sub(r"^(```|~~~).*?^\1", " ", markdown, flags=re.S | re.M)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\{[\w:.-]+\}`[^`]*`", " ", text)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\$[^$]*\$", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # explicit link targets are the author's
    return re.sub(r"<[^>]*>", " ", text)


def bare_file_links(markdown: str) -> list[str]:
    """Words that linkify (as myst-parser configures it) would link to ``http://<file>``."""
    # linkify-it comes with the book's tooling (myst-parser), not with the package
    LinkifyIt = pytest.importorskip("linkify_it").LinkifyIt

    matches = LinkifyIt().match(_outside_code(markdown)) or []
    return [m.text for m in matches if not m.schema and _FILE_LINK.match(m.url)]


def _docstrings(path: pathlib.Path):
    """``(where, docstring)`` for the module, and each class and function, of ``path``."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                name = getattr(node, "name", "module docstring")
                yield f"{_rel(path)}:{getattr(node, 'lineno', 1)} {name}", doc


def test_vocabulary_check_catches_what_readers_found():
    found = [
        "It was not run: the session that built this chapter had no GPU",
        "on two CPU cores shared with other jobs (load average about 6).",
        "condition is our reading of the induction; PAPERS.md flagged the momentum form",
        "We could not retrieve the exact construction of that section",
        "did not check the theorem numbering against the paper's text",
        "run: no GPU was available to this session.",
        "page was last built (on a CPU; the two cores of the build machine were shared",
        "On two shared CPU cores the `quick` preset runs",
        "Its GPU time has not been measured yet",
        "the rest of the session stays in float32",
    ]
    for text in found:
        assert build_vocabulary(text), text
    science = [
        "Each run is checked against the closed form; the margin was measured at step k.",
        "the Gram matrix was built from per-example gradients",
        "when no GPU is available, the quick preset runs", "the loss was not measured",
        "the loss was not reduced", "two panels share the y axis",
        "the weights are shared across layers",
    ]
    for text in science:
        assert not build_vocabulary(text), text


def test_file_link_check_catches_bare_file_names():
    assert bare_file_links("as PAPERS.md says, and run.py") == ["PAPERS.md", "run.py"]
    assert bare_file_links("see `PAPERS.md` or [notes](notes.md) or https://x.org/a.md") == []
    assert bare_file_links("from scikit-learn.org, with $a.md$") == []


@pytest.mark.parametrize("path", NOTEBOOKS + PAGES, ids=[_rel(p) for p in NOTEBOOKS + PAGES])
def test_pages_speak_of_the_subject_only(path):
    problems = []
    for where, text in _markdown_cells(path):
        problems += [f"{where}: ...{s}..." for s in build_vocabulary(text)]
        problems += [f"{where}: {name!r} becomes a link to http://{name}; write it as "
                     f"`{name}` or leave it out" for name in bare_file_links(text)]
    assert not problems, "\n".join(problems)


def test_docstrings_speak_of_the_subject_only():
    problems = [f"{where}: ...{s}..." for path in SOURCES for where, doc in _docstrings(path)
                for s in build_vocabulary(doc)]
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_built_pages_link_to_no_local_file(book):
    """linkify's links to bare file names, as the built HTML has them."""
    assert book.html.exists(), book.log[-3000:]
    link = re.compile(r'href="(https?://[^"/]+\.(?:%s))"' % "|".join(FILE_SUFFIXES), re.I)
    found = {p.relative_to(book.html).as_posix(): sorted(set(link.findall(p.read_text())))
             for p in book.html.rglob("*.html") if not p.name.startswith("_")}
    found = {page: links for page, links in found.items() if links}
    assert not found, found


# --------------------------------------------------------------------------------------
# Comparisons between measured numbers come from code
# --------------------------------------------------------------------------------------

COMPARISONS = ("closer", "farther", "slower", "faster", "better", "worse", "best", "worst",
               "smaller", "larger", "higher", "lower")
_COMPARISON = re.compile(r"\b(%s)\b" % "|".join(COMPARISONS), re.I)
_GLUE = re.compile(r"\{glue(?::[\w-]*)?\}`[^`]*`")
GLUED = "\x00GLUE\x00"
_ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "cf.", "Eq.", "eq.", "Eqs.", "Fig.", "Sec.",
                  "Thm.", "vs.", "resp.", "approx.", "No.")


def sentences(markdown: str) -> list[str]:
    """The sentences of a markdown text, with each glue role replaced by :data:`GLUED`.

    Code, math and other roles are blanked out first (their dots are not full stops);
    paragraphs, list items, headings and directive fences end a sentence.
    """
    text = _GLUE.sub(GLUED, markdown)
    text = re.sub(r"^(```|~~~)(?!\{).*?^\1", "\n\n", text, flags=re.S | re.M)  # code
    text = re.sub(r"^(```+|:::+).*$", "\n\n", text, flags=re.M)  # directive fences
    text = re.sub(r"^:\w[\w-]*:.*$", "", text, flags=re.M)  # directive options
    text = re.sub(r"\$\$.*?\$\$", "\n\nMATH\n\n", text, flags=re.S)
    text = re.sub(r"\{[\w:.-]+\}`[^`]*`", "REF", text)
    text = re.sub(r"`[^`]*`", "CODE", text)
    text = re.sub(r"\$[^$\n]*\$", "MATH", text)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    for abbreviation in _ABBREVIATIONS:
        text = text.replace(abbreviation, abbreviation.replace(".", "\x01"))
    blocks = re.split(r"\n\s*\n|\n(?=\s*(?:[-*+]|\d+[.)])\s)|\n(?=#)", text)
    out = []
    for block in blocks:
        flat = " ".join(block.split())
        for s in re.split(r"(?<=[.!?])[\"')\]*_]*\s+(?=[\"'(\[*_]*[A-Z0-9\x00])", flat):
            if s.strip():
                out.append(s.replace("\x01", "."))
    return out


def literal_comparisons(markdown: str) -> list[str]:
    """Sentences that quote a glued number and draw a comparison in literal words.

    The rule: a sentence with a glue role and one of :data:`COMPARISONS` (a whole word,
    any case) outside the glue roles fails; the comparison must itself be glued, from a
    comparison the package computed.
    """
    return [s.replace(GLUED, "{glue}") for s in sentences(markdown)
            if GLUED in s and _COMPARISON.search(s.replace(GLUED, " "))]


def test_comparison_check_follows_the_rule():
    bad = ("At $\\kappa = 64$ the gap grows to {glue:text}`gap_64:.3f`, larger than at "
           "$\\kappa = 16$. The next sentence has no glued number and is better.")
    assert literal_comparisons(bad) == [
        "At MATH the gap grows to {glue}, larger than at MATH."]
    good = ("At $\\kappa = 64$ the gap is {glue:text}`gap_64:.3f`, {glue:text}`gap_vs_16` "
            "than at $\\kappa = 16$ (e.g. at batch 256). Larger batches need more steps."
            "\n\nThe {glue:}`best_rule` rule wins.")
    assert literal_comparisons(good) == []
    # sentences end at full stops, paragraphs and list items, not at abbreviations,
    # decimals or the format spec of a glue role
    text = ("The loss is {glue:text}`a:.3f` (cf. Fig. 2), i.e. 0.5 lower.\n"
            "* a list item {glue:text}`b` and\n* Another that is faster.")
    assert literal_comparisons(text) == ["The loss is {glue} (cf. Fig. 2), i.e. 0.5 lower."]
    assert literal_comparisons("Best is {glue:text}`x`.") == ["Best is {glue}."]
    assert literal_comparisons("```python\nx = 1  # {glue:text}`a` is lower\n```") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[_rel(p) for p in NOTEBOOKS])
def test_comparisons_of_measured_numbers_come_from_code(path):
    """A sentence that quotes a glued number may not compare it in its own words: the
    comparison ("slower", "closer", "best", ...) is glued from one the package computed,
    or the sentence does not draw it."""
    problems = [f"{where}: {s}" for where, text in _markdown_cells(path)
                for s in literal_comparisons(text)]
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------
# The size figure text is read at (checked in tests/test_browser.py)
# --------------------------------------------------------------------------------------


def test_browser_figure_check_reads_the_png_and_the_twin(tmp_path):
    """The arithmetic of tests/test_browser.py's figure check (which runs only with
    Chromium and a built book), on a figure made as a chapter makes one."""
    from test_browser import MIN_TEXT_PX, figure_text_px

    from dltheory import plotting, widgets

    assert MIN_TEXT_PX == plotting.MIN_TEXT_PX

    fig, ax = plotting.figure(width=7.5)
    ax.plot([1, 2], label="a")
    ax.legend(fontsize=8)
    png = widgets._png(fig, dpi=100)  # as the inline backend would, with the metadata
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "f.png").write_bytes(png)
    px, how = figure_text_px(tmp_path / "page.html", {
        "src": "_images/f.png", "naturalWidth": 750, "displayedWidth": 730})
    assert how == "PNG text chunks" and px == pytest.approx(8 * 100 / 72 * 730 / 750)
    px, _ = figure_text_px(tmp_path / "page.html", {
        "src": "twin:x", "naturalWidth": 540, "displayedWidth": 540, "fontPt": 8, "dpi": 72})
    assert px == pytest.approx(8.0)  # the old twins: 72 dpi, so points are pixels
    px, how = figure_text_px(tmp_path / "page.html", {
        "src": "twin:x", "naturalWidth": 540, "displayedWidth": 540})
    assert px is None and "records no font size" in how


# --------------------------------------------------------------------------------------
# Every figure a cell makes is shown on the page
# --------------------------------------------------------------------------------------

#: Calls that make a figure: the book's figure, pyplot's, a package's ``*_figure``,
#: an explorer (shown as its figure, or its twin, in the static book).
_FIGURE_CALL = re.compile(
    r"^(plotting\.figure|(plt|pyplot)\.(figure|subplots|subplot_mosaic)|"
    r"(.*\.)?\w+_figure|(.*\.)?\w+_explorer|(.*\.)?explore)$")


def _call_name(node: ast.Call) -> str:
    parts, f = [], node.func
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


def figure_calls(source: str) -> list[str]:
    """The figure-making calls a code cell surely runs.

    Not those in the functions it defines, nor those under an ``if`` (such as the
    ``paper``-scale branch of a cell that prints a note at ``quick`` scale).
    """
    lines = []
    for ln in source.splitlines():
        stripped = ln.lstrip()
        if stripped.startswith(("%time ", "%timeit ")):  # a timed statement still runs
            lines.append(stripped.split(None, 1)[1])
        else:
            lines.append("" if stripped.startswith(("%", "!")) else ln)
    code = "\n".join(lines)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    found = []

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                             ast.ClassDef)):
            return  # defined here, maybe run elsewhere
        if isinstance(node, (ast.If, ast.IfExp)):
            visit(node.test)
            return  # maybe not run
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if _FIGURE_CALL.match(name):
                found.append(name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def unshown_figures(nb) -> list[str]:
    """Code cells of an executed notebook that make a figure the page does not show.

    A cell that calls a figure-making function (:func:`figure_calls`) must have an
    ``image/png`` output (a twin carries one too) and not be hidden from the page
    (``remove-output``, ``remove-cell``).
    """
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        calls = figure_calls(cell.source)
        if not calls:
            continue
        shown = any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])
                    if o.get("output_type") in ("display_data", "execute_result"))
        hidden = {"remove-output", "remove-cell"} & set(cell.get("metadata", {}).get("tags", []))
        if not shown or hidden:
            first = cell.source.strip().splitlines()[0][:70]
            why = "its output is removed from the page" if hidden else "no figure is shown"
            problems.append(f"cell {i} ({first!r}) calls {', '.join(sorted(set(calls)))}; "
                            f"{why}")
    return problems


def test_figure_check_catches_a_figure_that_is_made_but_not_shown():
    """The figure of book/sde/sgd_sde.ipynb's SVAG experiment, as it was: a package
    function that returns a detached figure, its display suppressed by the ``;``."""
    nb = nbformat.v4.new_notebook()
    png = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
    nb.cells = [
        nbformat.v4.new_code_cell("quad = E.svag_quadratic((1, 2))\nF.svag_figure(quad, 16);\n"
                                  "glue('svag_paths', quad.paths)"),
        nbformat.v4.new_code_cell("fig, (a, b) = plotting.figure(2, width=7.5)\na.plot(x)",
                                  outputs=[nbformat.v4.new_output("display_data", data=png)]),
        nbformat.v4.new_code_cell("F.svag_explorer(quad)", outputs=[nbformat.v4.new_output(
            "execute_result", data=png, execution_count=3)]),
        nbformat.v4.new_code_cell("def draw(a, fig=None):\n    return plotting.figure()\n"
                                  "x = 1"),
        nbformat.v4.new_code_cell("%time fig, ax = plt.subplots()", outputs=[
            nbformat.v4.new_output("display_data", data=png)]),
        nbformat.v4.new_code_cell("if scale() == 'paper':\n    fig, ax = plotting.figure()\n"
                                  "else:\n    print('quick scale')"),
    ]
    nb.cells[4].metadata["tags"] = ["remove-output"]
    problems = unshown_figures(nb)
    assert len(problems) == 2, problems
    assert problems[0].startswith("cell 0 ") and "F.svag_figure" in problems[0]
    assert problems[1].startswith("cell 4 ") and "removed" in problems[1]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[_rel(p) for p in NOTEBOOKS])
def test_every_figure_a_cell_makes_is_shown(path, book):
    """In the notebooks as the book build executed them (the session's `book` build)."""
    try:
        nb = book.executed_notebook(path)
    except KeyError:
        pytest.fail(f"{_rel(path)} was not executed by the book build:\n{book.log[-3000:]}")
    problems = unshown_figures(nb)
    small = [f"cell {i}: {o.get('text', '')[:300]}" for i, c in enumerate(nb.cells)
             if c.cell_type == "code" for o in c.get("outputs", [])
             if o.get("output_type") == "stream" and "SmallTextWarning" in o.get("text", "")]
    assert not problems + small, "\n".join(problems + small)


@pytest.mark.slow
def test_budget_tables_render_as_tables(book):
    """``paper.show`` displays Markdown; the built page must show it as a table (the
    build renders Markdown outputs as MyST, whose tables plain CommonMark lacks)."""
    pages = [p for p in sorted((book.html / "book").rglob("*.html"))
             if p.name == "paper_scale.html" or 'id="paper-scale"' in p.read_text()]
    assert len(pages) >= 10, [p.name for p in pages]   # nine chapters and the table page
    problems = [p.relative_to(book.html).as_posix() for p in pages
                if "| program |" in p.read_text() or "<th" not in p.read_text()]
    assert not problems, f"budget table shown as raw Markdown on {problems}"
