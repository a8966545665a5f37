"""The Colab edition of the book: every chapter notebook with its MyST markup made plain.

A Jupyter front end (Colab, JupyterLab without jupyterlab-myst, nbconvert) renders
CommonMark and math, not MyST: it would show ``{glue:text}`` placeholders, theorem and
exercise directives as code blocks and citations as raw roles. This script writes, from
the same chapter sources, one notebook per chapter of ``_toc.yml`` (mirroring the
``book/`` paths) in which

- theorems, definitions, ... become titled, numbered block quotes, proofs and solutions
  collapsible ``<details>`` blocks, exercises numbered headings, admonitions block quotes
  with a bold title; math stays math (``{math}`` roles become ``$...$``, a bare amsmath
  environment is put inside ``$$``);
- citations become "Author et al. (year)" / "(Author et al., year)" linked to the paper
  (``book/references.bib``), ``{doc}``, ``{ref}`` and ``{prf:ref}`` links to the
  published book's pages (``https://OWNER.github.io/REPO/``, from ``_config.yml``);
- every glued number is the one of the book's own build, formatted as on the page, read
  from the build's jupyter cache (so ``make book`` runs first);
- code cells keep their source, lose their outputs, and the cells the HTML hides are
  collapsed (``"jupyter": {"source_hidden": true}``).

Numbering is the pages': read from the built site (``_build/html``, which ``make book``
writes before this runs), and otherwise computed by the rules sphinx-proof and
sphinx-exercise follow through Sphinx's ``numfig``: one counter per kind (theorem,
definition, exercise, ...), per chapter and prefixed with its number in a numbered part of
``_toc.yml`` ("Theorem 2.1"); a ``:nonumber:`` directive gets none. The slow tests compare
the computed numbers with the built pages.

Nobody edits the edition by hand: the deploy workflow regenerates it on every push and
publishes it on the ``colab`` branch, which the pages' Colab buttons open.

Usage: python tools/colab_edition.py [--out _build/colab-edition]
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import html as html_lib
import os
import pathlib
import posixpath
import re
import sys
from typing import Any, Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "_build" / "colab-edition"

# sphinx-proof's directive names (prf:<name>); proof is the one without a number.
PROOF_TYPES = ("axiom", "theorem", "lemma", "algorithm", "definition", "remark",
               "conjecture", "corollary", "criterion", "example", "property",
               "observation", "proposition", "assumption", "notation")
ADMONITIONS = ("note", "warning", "tip", "important", "caution", "attention", "danger",
               "error", "hint", "seealso", "admonition", "dropdown")
HIDDEN_TAGS = {"remove-input", "hide-input", "remove-cell", "hide-cell"}
AMSMATH = ("equation", "multline", "gather", "align", "alignat", "flalign", "eqnarray")

NOTE = ("*The numbers quoted in the text are those this chapter gives at the `quick` "
        "scale on a CPU, where it is deterministic: run it on a CPU and you get the same "
        "numbers. On a GPU the chapter runs its `paper` scale unless "
        "`DLTHEORY_SCALE=quick` is set before the setup cell, and GPU results may differ "
        "in the last digits.*")

# The MyST syntax that must not survive in the edition (tests/test_colab_edition.py).
MYST_LEFTOVERS = ("{glue", "```{", ":::{", "{cite", "{doc}", "{ref}", "{prf:", "{eq}",
                  "{math}", "{numref}")
TARGET_LINE = re.compile(r"^\s*\([\w.:-]+\)=\s*$", re.M)


class EditionError(RuntimeError):
    """The edition cannot be written as asked (missing build cache, unknown syntax)."""


# --------------------------------------------------------------------------- the book


def toc_docs(root: pathlib.Path = ROOT) -> list[str]:
    """Every document of ``_toc.yml`` (root first), as docnames like ``book/sde/sgd_sde``."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    docs = [toc["root"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                docs.append(str(node["file"]).removesuffix(".md").removesuffix(".ipynb"))
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return docs


def chapter_numbers(root: pathlib.Path = ROOT) -> dict[str, int]:
    """docname -> chapter number, for the chapters of the ``numbered: true`` parts of
    ``_toc.yml`` (Jupyter Book numbers them on, from one part to the next)."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    out: dict[str, int] = {}
    for part in toc.get("parts", []):
        if not part.get("numbered"):
            continue
        for chapter in part.get("chapters", []):
            if "file" in chapter:
                out[str(chapter["file"]).removesuffix(".ipynb").removesuffix(".md")] = len(out) + 1
    return out


def html_numbers(html: pathlib.Path) -> dict[str, str]:
    """label -> "Theorem 2.1", "Exercise 2.3", ... as the built pages print them."""
    found: dict[str, str] = {}
    pattern = re.compile(r'id="(?P<label>[^"]+)"[^>]*>\s*<p class="admonition-title">\s*'
                         r'<span class="caption-number">(?P<text>[^<]*?)\s*</span>')
    for page in html.rglob("*.html"):
        for m in pattern.finditer(page.read_text(errors="replace")):
            found.setdefault(m.group("label"), html_lib.unescape(m.group("text")).strip())
    return found


def doc_path(doc: str, root: pathlib.Path = ROOT) -> pathlib.Path | None:
    for suffix in (".ipynb", ".md"):
        if (root / f"{doc}{suffix}").exists():
            return root / f"{doc}{suffix}"
    return None


def doc_markdown(path: pathlib.Path) -> list[str]:
    """The Markdown of a document: one string per markdown cell, or the whole .md file."""
    if path.suffix == ".ipynb":
        import nbformat

        nb = nbformat.read(path, as_version=4)
        return [c.source for c in nb.cells if c.cell_type == "markdown"]
    text = path.read_text()
    if text.startswith("---\n"):  # front matter
        end = text.find("\n---", 4)
        text = text[end + 4:] if end > 0 else text
    return [text]


def site_url(config: dict) -> str:
    """The published book's base URL, from the repository URL of ``_config.yml``:
    https://github.com/OWNER/REPO -> https://OWNER.github.io/REPO/."""
    url = config["repository"]["url"].rstrip("/").removesuffix(".git")
    m = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", url)
    if not m:
        raise EditionError(f"repository.url in _config.yml must be https://github.com/OWNER/REPO; "
                           f"got {url!r}")
    return f"https://{m.group(1).lower()}.github.io/{m.group(2)}/"


# ----------------------------------------------------------------- MyST block parsing

DIRECTIVE = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<fence>`{3,}|~{3,}|:{3,})\{(?P<name>[^}\s]+)\}"
                       r"[ \t]*(?P<arg>.*?)\s*$")
CODE_FENCE = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):(?:[ \t]+(?P<value>.*?))?\s*$")


@dataclasses.dataclass
class Directive:
    name: str
    arg: str
    options: dict[str, str]
    body: str


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return (len(stripped) >= len(fence) and set(stripped) == {fence[0]})


def parse_blocks(text: str) -> list[str | Directive]:
    """Split MyST Markdown into text runs (``str``, code fences included) and directives.

    A directive is a backtick, tilde or colon fence whose info string is ``{name}``;
    its options (``:key: value`` lines, or a ``---`` YAML block) are split off its body.
    """
    lines = text.split("\n")
    blocks: list[str | Directive] = []
    buf: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = DIRECTIVE.match(line)
        code = None if m else CODE_FENCE.match(line)
        if code:  # a plain code fence: copied as it is, MyST inside it left alone
            fence = code.group("fence")
            j = i + 1
            while j < len(lines) and not _closes(lines[j], fence):
                j += 1
            buf.extend(lines[i:j + 1])
            i = j + 1
            continue
        if not m:
            buf.append(line)
            i += 1
            continue
        fence = m.group("fence")
        j = i + 1  # as in MyST, a nested directive needs a longer fence than its parent
        while j < len(lines) and not _closes(lines[j], fence):
            j += 1
        body = [ln[len(m.group("indent")):] if ln.startswith(m.group("indent")) else ln
                for ln in lines[i + 1:j]]
        options: dict[str, str] = {}
        if body and body[0].strip() == "---":
            import yaml

            end = next((k for k in range(1, len(body)) if body[k].strip() == "---"), None)
            if end is not None:
                found = yaml.safe_load("\n".join(body[1:end])) or {}
                options = {str(k): str(v) for k, v in found.items()}
                body = body[end + 1:]
        else:
            while body and (opt := OPTION.match(body[0])):
                options[opt.group("key")] = opt.group("value") or ""
                body = body[1:]
        if buf:
            blocks.append("\n".join(buf))
            buf = []
        blocks.append(Directive(m.group("name"), m.group("arg"), options,
                                "\n".join(body).strip("\n")))
        i = j + 1
    if buf:
        blocks.append("\n".join(buf))
    return blocks


def iter_directives(text: str):
    """Every directive of ``text``, nested ones included, in document order."""
    for block in parse_blocks(text):
        if isinstance(block, Directive):
            yield block
            yield from iter_directives(block.body)


# --------------------------------------------------------------- labels and numbers


@dataclasses.dataclass
class Target:
    doc: str
    text: str           # what a reference to it shows ("Theorem 3", a section title)
    anchor: str = ""


@dataclasses.dataclass
class Book:
    """What the conversion needs to know about the whole book."""

    url: str                                     # the published site, ending in "/"
    titles: dict[str, str]                       # docname -> page title
    targets: dict[str, Target]                   # label -> where it is, what it shows
    numbers: dict[tuple[str, str], str]          # (doc, label) -> number ("" if none)
    bib: dict[str, dict[str, str]]               # key -> author, year, url
    exercises: dict[str, tuple[str, str]]        # label -> (number, title)

    def page(self, doc: str, anchor: str = "") -> str:
        return f"{self.url}{doc}.html" + (f"#{anchor}" if anchor else "")


def scan_book(root: pathlib.Path = ROOT, config: dict | None = None,
              html: pathlib.Path | None = None) -> Book:
    """Titles, labels and directive numbers of every document of ``_toc.yml``.

    Numbers are those the built pages under ``html`` print, when given; otherwise (and for
    any label missing there) they follow Sphinx's numfig rules as sphinx-proof and
    sphinx-exercise use them: one counter per kind (theorem, definition, exercise, ...),
    per chapter with the chapter's number in front ("Theorem 2.1") in a numbered part of
    ``_toc.yml``, running through the unnumbered pages otherwise.
    """
    import yaml

    config = config or yaml.safe_load((root / "_config.yml").read_text())
    remap = ((config.get("sphinx") or {}).get("config") or {}).get("prf_realtyp_to_countertyp", {})
    titles: dict[str, str] = {}
    targets: dict[str, Target] = {}
    numbers: dict[tuple[str, str], str] = {}
    exercises: dict[str, tuple[str, str]] = {}
    counters: dict[tuple[str, int | None], int] = {}
    chapters = chapter_numbers(root)
    printed = html_numbers(html) if html is not None and html.is_dir() else {}
    for doc in toc_docs(root):
        path = doc_path(doc, root)
        if path is None:
            continue
        serial = 0
        for text in doc_markdown(path):
            if doc not in titles and (h := re.search(r"^#[ \t]+(.+?)\s*$", text, re.M)):
                titles[doc] = h.group(1)
            for m in re.finditer(r"^\s*\((?P<label>[\w.:-]+)\)=\s*\n+\s*#+[ \t]+(?P<title>.+?)\s*$",
                                 text, re.M):
                # a section's id is its label as docutils normalizes ids
                anchor = re.sub(r"[^a-z0-9]+", "-", m.group("label").lower()).strip("-")
                targets[m.group("label")] = Target(doc, m.group("title"), anchor)
            for d in iter_directives(text):
                kind = d.name.removeprefix("prf:")
                if not (d.name.startswith("prf:") and kind in PROOF_TYPES) and d.name != "exercise":
                    continue
                serial += 1
                label = d.options.get("label") or f"{doc}-{kind}-{serial}"
                counter = (remap.get(kind, kind), chapters.get(doc))
                number = ""
                if "nonumber" not in d.options:
                    counters[counter] = counters.get(counter, 0) + 1
                    number = str(counters[counter])
                    if counter[1] is not None:
                        number = f"{counter[1]}.{number}"
                shown = f"{kind.title()} {number}".strip()
                if label in printed and printed[label].startswith(kind.title()):
                    shown = printed[label]
                    number = shown[len(kind.title()):].strip()
                numbers[(doc, label)] = number
                if d.name == "exercise":
                    exercises[label] = (number, d.arg)
                targets[label] = Target(doc, shown, label)
    return Book(site_url(config), titles, targets, numbers, read_bib(root, config), exercises)


# ------------------------------------------------------------------------ citations


def _latex_text(latex: str) -> str:
    try:
        from pybtex.richtext import Text

        return Text.from_latex(latex).render_as("text")
    except Exception:  # pybtex missing or unparseable: strip the markup
        return re.sub(r"\\[a-zA-Z]+\s*|[{}\\]", "", latex)


def read_bib(root: pathlib.Path, config: dict) -> dict[str, dict[str, str]]:
    """Author (as cited), year and link of every entry of the book's .bib files."""
    from pybtex.database import parse_file

    out: dict[str, dict[str, str]] = {}
    for bibfile in config.get("bibtex_bibfiles", []):
        data = parse_file(str(root / bibfile), bib_format="bibtex")
        for key, entry in data.entries.items():
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            last = [_latex_text(" ".join(p.prelast_names + p.last_names)) for p in people]
            if len(last) >= 3:
                author = f"{last[0]} et al."
            elif len(last) == 2:
                author = f"{last[0]} and {last[1]}"
            elif last:
                author = last[0]
            else:
                author = _latex_text(entry.fields.get("organization", key))
            fields = {k.lower(): v for k, v in entry.fields.items()}
            link = fields.get("url", "")
            if not link and fields.get("doi"):
                link = "https://doi.org/" + fields["doi"]
            if not link and fields.get("eprint"):
                link = "https://arxiv.org/abs/" + fields["eprint"]
            out[key] = {"author": author, "year": fields.get("year", "n.d."), "url": link,
                        "title": fields.get("title", "")}
    # Two entries cited alike (same author form, same year) get 2021a, 2021b, ... in the
    # order of the bibliography, sorted by author form, year, title (as on the pages).
    alike: dict[tuple[str, str], list[str]] = {}
    for key, e in out.items():
        alike.setdefault((e["author"], e["year"]), []).append(key)
    for keys in alike.values():
        if len(keys) > 1:
            keys.sort(key=lambda k: (out[k]["author"].lower(), out[k]["year"],
                                     out[k]["title"].lower()))
            for suffix, key in zip("abcdefghijklmnopqrstuvwxyz", keys):
                out[key]["year"] += suffix
    return out


def cite(book: Book, kind: str, keys: str) -> str:
    """A ``{cite:<kind>}`` role as linked Markdown text."""
    parts = []
    for key in (k.strip() for k in keys.split(",")):
        if key not in book.bib:
            raise EditionError(f"citation key {key!r} is not in the book's .bib files")
        e = book.bib[key]
        if kind in ("t", "ts"):
            text = f"{e['author']} ({e['year']})"
        elif kind == "author":
            text = e["author"]
        elif kind == "year":
            text = e["year"]
        else:  # p, ps, cite, alp and the rest: parenthetical
            text = f"{e['author']}, {e['year']}"
        parts.append(f"[{text}]({e['url']})" if e["url"] else text)
    joined = "; ".join(parts)
    return f"({joined})" if kind in ("p", "ps", "", "cite") else joined


# ---------------------------------------------------------------------------- glue


def format_plain_text(text: str, fmt_spec: str) -> str:
    """A glued text/plain value as myst-nb's ``{glue:text}`` shows it (same rules as
    ``myst_nb.core.variables.format_plain_text``)."""
    try:
        value: Any = ast.literal_eval(text)
    except (SyntaxError, ValueError):
        value = text
    if fmt_spec == "":
        return str(value)
    type_char = fmt_spec[-1]
    if type_char == "s":
        value = str(value)
    elif type_char in ("b", "c", "d", "o", "x", "X"):
        value = int(value)
    elif type_char in ("e", "E", "f", "F", "g", "G", "n", "%"):
        value = float(value)
    return format(value, fmt_spec)


def glue_data(nb) -> dict[str, dict]:
    """name -> mime bundle of every value glued in an executed notebook."""
    out: dict[str, dict] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {}).get("scrapbook")
            if not meta:
                continue
            prefix = len(meta.get("mime_prefix", ""))
            out[meta["name"]] = {k[prefix:]: v for k, v in output.get("data", {}).items()}
    return out


def executed_notebook(path: pathlib.Path, cache: pathlib.Path):
    """The notebook at ``path`` merged with its outputs from the book's jupyter cache."""
    import nbformat

    hint = "Run `make book` first (it executes the notebooks into that cache)."
    if not (cache / "global.db").exists():
        raise EditionError(f"no jupyter cache at {cache}: the edition quotes the numbers of the "
                           f"book's build. {hint}")
    from jupyter_cache import get_cache

    nb = nbformat.read(path, as_version=4)
    try:
        _, merged = get_cache(str(cache)).merge_match_into_notebook(nb)
    except KeyError:
        raise EditionError(f"the jupyter cache {cache} holds no executed copy of {path} as it "
                           f"is now (it was never executed, or changed since). {hint}") from None
    return merged


# ------------------------------------------------------------- Markdown conversion


@dataclasses.dataclass
class Gate:
    """A gated solution (solution-start ... solution-end), which may span cells."""

    summary: str            # "Solution to Exercise 3 (title)"
    dropdown: bool          # collapsed on the page: collapsed here too
    opened: bool = False    # its title was written already


@dataclasses.dataclass
class Context:
    """One document being converted."""

    book: Book
    doc: str
    glue: dict[str, dict]
    load_glue: Callable[[str], dict[str, dict]] | None = None  # docname -> its glue
    gate: Gate | None = None                 # inside solution-start ... solution-end
    equations: dict[str, int] = dataclasses.field(default_factory=dict)
    unlabelled: set[str] = dataclasses.field(default_factory=set)  # numbered so far


ROLE = re.compile(r"\{(?P<role>[A-Za-z][\w:.+-]*)\}(?P<tick>`+)(?P<content>.+?)(?P=tick)"
                  r"|(?P<code>(?P<t2>`+)(?!`).+?(?<!`)(?P=t2))", re.S)
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)


def _resolve_doc(ctx: Context, target: str) -> str:
    target = target.removesuffix(".md").removesuffix(".ipynb")
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(ctx.doc), target))


def _glue_value(ctx: Context, key: str) -> dict:
    glue = ctx.glue
    if "::" in key:  # path::key, a value glued in another notebook
        other, key = key.split("::", 1)
        if ctx.load_glue is None:
            raise EditionError(f"{ctx.doc}: glue from another document ({other}) needs the cache")
        glue = ctx.load_glue(_resolve_doc(ctx, other))
    if key not in glue:
        raise EditionError(f"{ctx.doc}: no value glued as {key!r} in the executed notebook "
                           "(run `make book` again after changing the chapter)")
    return glue[key]


def convert_role(ctx: Context, role: str, content: str) -> str:
    """One MyST role as plain Markdown."""
    book = ctx.book
    explicit = EXPLICIT.match(content)
    text, target = (explicit.group("text"), explicit.group("target")) if explicit else ("", content)
    if role in ("glue:text", "glue:", "glue:any", "glue", "glue:md"):
        doc, sep, rest = content.rpartition("::")
        key, _, fmt = rest.partition(":") if role in ("glue:text", "glue:md") else (rest, "", "")
        key = f"{doc}{sep}{key}"
        data = _glue_value(ctx, key)
        if role == "glue:md":
            return data.get("text/markdown", "")
        if "text/plain" not in data:
            raise EditionError(f"{ctx.doc}: the value glued as {key!r} has no text/plain form")
        if role == "glue:text":
            return format_plain_text(data["text/plain"], fmt or "s")
        return str(data["text/plain"])
    if role.startswith("cite"):
        return cite(book, role.partition(":")[2], content)
    if role == "math":
        return f"${content}$"
    if role == "doc":
        doc = _resolve_doc(ctx, target)
        if doc not in book.titles:
            raise EditionError(f"{ctx.doc}: {{doc}} target {target!r} is not a page of the book")
        return f"[{convert_inline(ctx, text or book.titles[doc])}]({book.page(doc)})"
    if role in ("ref", "prf:ref", "numref", "eq"):
        if role == "eq" and target in ctx.equations:
            return f"({ctx.equations[target]})"
        if target not in book.targets:
            raise EditionError(f"{ctx.doc}: {{{role}}} target {target!r} is not a label "
                               "of the book")
        t = book.targets[target]
        shown = text.replace("%s", t.text.rsplit(" ", 1)[-1]) if text else t.text
        return f"[{convert_inline(ctx, shown)}]({book.page(t.doc, t.anchor)})"
    if role in ("sub", "sup"):
        return f"<{role}>{content}</{role}>"
    if role in ("kbd", "abbr", "code", "samp", "file", "command", "program"):
        return f"`{text or content}`"
    raise EditionError(f"{ctx.doc}: the role {{{role}}} has no plain-Markdown form in "
                       "tools/colab_edition.py yet")


def convert_inline(ctx: Context, text: str) -> str:
    """Every role of ``text`` as plain Markdown; inline code spans are left alone."""
    def sub(m: re.Match) -> str:
        if m.group("code"):
            return m.group("code")
        return convert_role(ctx, m.group("role"), m.group("content"))

    return ROLE.sub(sub, text)


def _math_lines(ctx: Context, text: str) -> str:
    """Dollar-math labels become \\tag{n}; a bare amsmath environment goes inside $$."""
    out, inside, env_end = [], False, None
    for line in text.split("\n"):
        label = re.match(r"^(?P<head>.*\$\$)\s*\((?P<label>[\w.:-]+)\)\s*$", line)
        if label and inside:
            n = ctx.equations.setdefault(label.group("label"), len(ctx.equations) + 1)
            head = label.group("head")[:-2].rstrip()
            line = (f"{head} " if head.strip() else "") + f"\\tag{{{n}}}\n$$"
        stripped = line.strip()
        if env_end is None and not inside:
            begin = re.match(r"^\\begin\{(" + "|".join(AMSMATH) + r")(\*?)\}", stripped)
            if begin:
                env_end = f"\\end{{{begin.group(1)}{begin.group(2)}}}"
                out.append("$$")
        out.append(line)
        if env_end is not None and env_end in stripped:
            out.append("$$")
            env_end = None
        if env_end is None:
            inside ^= line.count("$$") % 2 == 1
    return "\n".join(out)


def _text_block(ctx: Context, text: str) -> str:
    text = TARGET_LINE.sub("", text)
    # keep code fences as they are; convert the rest
    pieces = re.split(r"(^[ \t]{0,3}(?:`{3,}|~{3,})[^\n]*\n.*?^[ \t]{0,3}(?:`{3,}|~{3,})[ \t]*$)",
                      text, flags=re.M | re.S)
    return "".join(p if i % 2 else convert_inline(ctx, _math_lines(ctx, p))
                   for i, p in enumerate(pieces))


def _quote(title: str, body: str) -> str:
    # An HTML block quote around Markdown (a blank line after the tag): every front end
    # renders it, and display math inside stays intact, which "> " prefixes would break
    # (Jupyter takes the math out before parsing the Markdown, prefixes and all).
    return f"<blockquote>\n\n{title}\n\n{body}\n\n</blockquote>" if body else \
        f"<blockquote>\n\n{title}\n\n</blockquote>"


def _details(summary: str, body: str) -> str:
    return f"<details>\n<summary>{summary}</summary>\n\n{body}\n\n</details>"


def convert_directive(ctx: Context, d: Directive) -> str:
    book = ctx.book
    body = convert_markdown(ctx, d.body) if d.body else ""
    arg = convert_inline(ctx, d.arg)
    kind = d.name.removeprefix("prf:")
    if d.name.startswith("prf:") and kind in PROOF_TYPES:
        label = d.options.get("label")
        number = book.numbers.get((ctx.doc, label), "") if label else \
            _next_unlabelled(ctx, kind)
        head = f"{kind.title()} {number}".strip()
        title = f"**{head} ({arg}).**" if arg else f"**{head}.**"
        return _quote(title, body)
    if d.name == "prf:proof":
        return _details("<b>Proof</b>", body)
    if d.name == "exercise":
        label = d.options.get("label", "")
        number = book.exercises.get(label, ("", ""))[0] if label else \
            _next_unlabelled(ctx, "exercise")
        head = f"Exercise {number}".strip()
        return f"### {head}" + (f" ({arg})" if arg else "") + f"\n\n{body}"
    if d.name in ("solution", "solution-start"):
        label = d.arg.strip()
        if label not in book.exercises:
            raise EditionError(f"{ctx.doc}: the solution's exercise {label!r} is not in the book")
        number, title = book.exercises[label]
        summary = f"Solution to Exercise {number}".replace("  ", " ") + (
            f" ({convert_inline(ctx, title)})" if title else "")
        if d.name == "solution":
            return _details(f"<b>{summary}</b>", body)
        ctx.gate = Gate(summary, "dropdown" in d.options.get("class", ""))
        return body
    if d.name == "solution-end":
        ctx.gate = None
        return body
    if d.name in ADMONITIONS:
        if d.name in ("admonition", "dropdown"):
            title = arg or d.name.title()
        else:  # MyST: the argument of a note (tip, warning, ...) is its first line
            title = "See also" if d.name == "seealso" else d.name.title()
            body = "\n\n".join(x for x in (arg, body) if x)
        return _quote(f"**{title}**", body)
    if d.name == "math":
        label = d.options.get("label")
        tag = ""
        if label:
            n = ctx.equations.setdefault(label, len(ctx.equations) + 1)
            tag = f" \\tag{{{n}}}"
        content = "\n".join(x for x in (d.arg, d.body) if x.strip())
        return f"$$\n{content}{tag}\n$$"
    if d.name in ("glue:", "glue", "glue:any", "glue:text"):
        key, _, fmt = d.arg.partition(":")
        return format_plain_text(_glue_value(ctx, key)["text/plain"], fmt or "s")
    if d.name == "glue:math":
        return f"$$\n{format_plain_text(_glue_value(ctx, d.arg)['text/plain'], 's')}\n$$"
    raise EditionError(f"{ctx.doc}: the directive {{{d.name}}} has no plain-Markdown form in "
                       "tools/colab_edition.py yet")


def _next_unlabelled(ctx: Context, kind: str) -> str:
    # unlabelled directives were registered under "<doc>-<kind>-<serial>"; take them in order
    used = ctx.unlabelled
    for (doc, label), number in ctx.book.numbers.items():
        if doc == ctx.doc and label.startswith(f"{doc}-{kind}-") and label not in used:
            used.add(label)
            return number
    return ""


def convert_markdown(ctx: Context, text: str) -> str:
    """MyST Markdown as plain Markdown (CommonMark, HTML blocks and $-math)."""
    parts: list[tuple[Gate | None, str]] = []   # (the gated solution it is in, text)
    for block in parse_blocks(text):
        gate = ctx.gate
        if isinstance(block, Directive):
            out = convert_directive(ctx, block)
            if block.name == "solution-start":
                gate = ctx.gate
            elif block.name == "solution-end" and not out.strip():
                continue
        else:
            out = _text_block(ctx, block)
        parts.append((gate, out))
    pieces: list[str] = []
    k = 0
    while k < len(parts):
        gate = parts[k][0]
        run = []
        while k < len(parts) and parts[k][0] is gate:
            run.append(parts[k][1].strip("\n"))
            k += 1
        inner = "\n\n".join(p for p in run if p.strip())
        if gate is None:
            pieces.append(inner)
            continue
        summary = gate.summary + (", continued" if gate.opened else "")
        if inner.strip():
            pieces.append(_details(f"<b>{summary}</b>", inner) if gate.dropdown
                          else f"**{summary}**\n\n{inner}")
            gate.opened = True
    if ctx.gate is not None and not ctx.gate.opened:  # its cells follow
        pieces.append(f"**{ctx.gate.summary}**")
        ctx.gate.opened = True
    # blank lines between blocks: an HTML block ends only at a blank line
    result = "\n\n".join(p.strip("\n") for p in pieces if p.strip())
    return re.sub(r"\n{3,}", "\n\n", result).strip("\n")


# -------------------------------------------------------------- notebooks and files


def convert_notebook(path: pathlib.Path, book: Book, glue: dict[str, dict],
                     load_glue: Callable[[str], dict[str, dict]] | None = None,
                     root: pathlib.Path = ROOT):
    """The Colab-edition copy of the chapter notebook at ``path`` (not written)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    doc = path.relative_to(root).with_suffix("").as_posix()
    ctx = Context(book, doc, glue, load_glue)
    cells, noted = [], False
    for cell in nb.cells:
        cell = copy.deepcopy(cell)
        if cell.cell_type == "markdown":
            cell.source = convert_markdown(ctx, cell.source)
            if not cell.source.strip():
                continue
            title = re.search(r"^#[ \t].*$", cell.source, re.M)
            if noted or not title:
                cells.append(cell)
                continue
            # the title, the note on the numbers, then the rest of the cell
            head, rest = cell.source[:title.end()], cell.source[title.end():].strip("\n")
            cell.source = head
            cells += [cell, nbformat.v4.new_markdown_cell(NOTE)]
            if rest:
                cells.append(nbformat.v4.new_markdown_cell(rest))
            noted = True
        elif cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            tags = set(cell.metadata.get("tags", []))
            if tags & HIDDEN_TAGS or (ctx.gate is not None and ctx.gate.dropdown):
                cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
            cells.append(cell)
        else:
            cells.append(cell)
    if not noted:
        cells.insert(0, nbformat.v4.new_markdown_cell(NOTE))
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    nb.metadata["colab"] = {"provenance": []}
    nbformat.validate(nb)
    return nb


def chapter_notebooks(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """The notebooks of ``_toc.yml``, in its order."""
    return [root / f"{d}.ipynb" for d in toc_docs(root) if (root / f"{d}.ipynb").exists()]


def convert_all(out_dir: str | os.PathLike = DEFAULT_OUT, root: pathlib.Path = ROOT,
                cache: pathlib.Path | None = None) -> list[pathlib.Path]:
    """Write the Colab edition of every chapter notebook under ``out_dir`` (paths mirror
    the repository's, e.g. ``out_dir/book/sde/sgd_sde.ipynb``) and return the paths.

    Raises ``EditionError`` when the book's jupyter cache lacks a chapter (run
    ``make book`` first) or a chapter uses MyST this converter does not know.
    """
    import nbformat
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text())
    cache = cache or root / config["execute"]["cache"]
    book = scan_book(root, config, html=root / "_build" / "html")
    glues: dict[str, dict] = {}

    def load_glue(doc: str) -> dict[str, dict]:
        if doc not in glues:
            glues[doc] = glue_data(executed_notebook(root / f"{doc}.ipynb", cache))
        return glues[doc]

    out_dir = pathlib.Path(out_dir)
    written = []
    for path in chapter_notebooks(root):
        doc = path.relative_to(root).with_suffix("").as_posix()
        nb = convert_notebook(path, book, load_glue(doc), load_glue, root)
        target = out_dir / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT,
                    help="folder of the edition (default: _build/colab-edition)")
    args = ap.parse_args(argv)
    try:
        written = convert_all(args.out)
    except EditionError as exc:
        print(f"colab_edition: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} notebook(s) under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
