"""A reveal.js slide deck per chapter, made from the chapter's own cells.

    make slides                      builds the book if needed, then writes _build/slides
    python tools/slides.py [--out DIR]

Each deck is one self-contained HTML page (figures embedded) that opens in a browser
without a server or a connection. Its slides are, in order:

1. the chapter's title and its "In this chapter" box (what the reader will be able to do,
   the prerequisites);
2. each theorem, conjecture and definition, with the line of the claims ledger under it
   (the test that checks it and what it measured);
3. each figure of a code cell tagged ``slide``, under the heading of its section: the key
   figures of the chapter and the still of its widget (the first setting of the
   kernel-free twin);
4. the chapter's claims table, as measured in the book's build;
5. "What to remember".

The text is the chapter's own MyST turned into plain Markdown by the Colab edition's
converter (``tools/colab_edition.py``), with the glued numbers of the book's build filled
in, so a deck never disagrees with its chapter. reveal.js and MathJax come from npm
(``tools/browser/package.json``) and are copied next to the decks.
"""

from __future__ import annotations

import argparse
import html
import pathlib
import re
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import colab_edition as CE  # noqa: E402

DEFAULT_OUT = ROOT / "_build" / "slides"
NODE = ROOT / "tools" / "browser" / "node_modules"
REVEAL = NODE / "reveal.js"
MATHJAX = NODE / "mathjax" / "es5"
TAG = "slide"
STATEMENTS = ("prf:theorem", "prf:conjecture", "prf:definition")


class SlidesError(RuntimeError):
    """The decks cannot be made (no build to quote, no reveal.js, a chapter without a figure)."""


def _markdown_renderer():
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    def math(content: str, options: dict) -> str:
        content = html.escape(content)
        return (f'<div class="math">\\[{content}\\]</div>' if options.get("display_mode")
                else f"\\({content}\\)")

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    dollarmath_plugin(md, double_inline=True, renderer=math)
    return md.render


def _heading(text: str) -> str:
    return re.sub(r"^#+\s*", "", text).strip()


def _images(cell) -> list[str]:
    """The PNG figures a code cell shows, directly or glued, as base64 strings."""
    found = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        for key, value in data.items():
            if key == "image/png" or key.endswith("/image/png"):
                found.append(value if isinstance(value, str) else "".join(value))
                break
    return found


def _markdown_outputs(cell) -> list[str]:
    return [o["data"]["text/markdown"] for o in cell.get("outputs", [])
            if "text/markdown" in o.get("data", {})]


def chapter_slides(path: pathlib.Path, book, load_glue, root: pathlib.Path = ROOT) -> dict:
    """The slides of one chapter, as ``{"title": str, "slides": [(kind, heading, markdown
    or image)]}`` (not rendered)."""
    doc = path.relative_to(root).with_suffix("").as_posix()
    executed = CE.executed_notebook(path, root / "_build" / ".jupyter_cache")
    ctx = CE.Context(book, doc, load_glue(doc), load_glue)
    title, slides, heading, remember = None, [], "", None
    for index, cell in enumerate(executed.cells):
        if cell.cell_type == "markdown":
            for block in CE.parse_blocks(cell.source):
                if isinstance(block, CE.Directive):
                    if block.name == "admonition" and block.arg.strip() == "In this chapter":
                        slides.insert(0, ("intro", "In this chapter",
                                          CE.convert_markdown(ctx, block.body)))
                    elif block.name in STATEMENTS:
                        slides.append(("statement", "The result", CE.convert_directive(ctx, block)))
                    continue
                for line in block.split("\n"):
                    if line.startswith("# ") and title is None:
                        title = _heading(line)
                    elif line.startswith("## ") or line.startswith("### "):
                        heading = _heading(CE.convert_inline(ctx, line))
                    elif line.startswith("{glue:md}`ledger-") and slides and \
                            slides[-1][0] == "statement":
                        kind, head, text = slides[-1]
                        slides[-1] = (kind, head, text + "\n\n" + CE.convert_inline(ctx, line))
            if "## What to remember" in cell.source:
                part = cell.source.split("## What to remember", 1)[1].split("\n## ", 1)[0]
                remember = CE.convert_markdown(ctx, part.strip())
        elif cell.cell_type == "code":
            tags = set(cell.metadata.get("tags", []))
            if TAG in tags:
                images = _images(cell)
                if not images:
                    raise SlidesError(f"{doc}: the cell {index} is tagged {TAG!r} but shows "
                                      "no figure in the book's build")
                slides += [("figure", heading, image) for image in images]
            if 'claims.publish("' in cell.source:
                for table in _markdown_outputs(cell):
                    slides.append(("claims", "The claims, measured", table))
    kinds = [s[0] for s in slides]
    for kind, what in (("intro", "an 'In this chapter' box"), ("figure",
                       f"a code cell tagged {TAG!r} with a figure")):
        if kind not in kinds:
            raise SlidesError(f"{doc}: the chapter lacks {what}, which its deck needs")
    if remember is None:
        raise SlidesError(f"{doc}: the chapter has no 'What to remember' section")
    slides.append(("remember", "What to remember", remember))
    return {"doc": doc, "title": title or doc, "slides": slides}


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="{up}_static/reveal/dist/reveal.css">
<link rel="stylesheet" href="{up}_static/reveal/dist/theme/white.css">
<style>
.reveal {{ font-size: 30px; }}
.reveal h1 {{ font-size: 1.6em; }} .reveal h2 {{ font-size: 1.15em; }}
.reveal h1, .reveal h2 {{ text-transform: none; }}
.reveal section {{ text-align: left; }}
.reveal section.dense {{ font-size: 0.72em; }}
.reveal section.table {{ font-size: 0.55em; }}
.reveal blockquote {{ width: 100%; box-shadow: none; background: #f4f6fa; padding: 0.4em 0.8em; }}
.reveal img.figure {{ display: block; margin: 0 auto; max-height: 560px; max-width: 100%; }}
.reveal table {{ margin: 0; }}
.reveal .deck-foot {{ position: absolute; bottom: -1.2em; right: 0; font-size: 0.5em; color: #777; }}
</style>
</head>
<body>
<div class="reveal"><div class="slides">
{sections}
</div></div>
<script src="{up}_static/reveal/dist/reveal.js"></script>
<script src="{up}_static/reveal/plugin/math/math.js"></script>
<script>
Reveal.initialize({{
  hash: true, width: 1280, height: 720, margin: 0.05, center: false,
  mathjax3: {{ mathjax: "{up}_static/mathjax/tex-mml-chtml.js",
              tex: {{ inlineMath: [["\\\\(", "\\\\)"]], displayMath: [["\\\\[", "\\\\]"]] }} }},
  plugins: [ RevealMath.MathJax3 ]
}});
</script>
</body>
</html>
"""


def render_deck(chapter: dict, up: str) -> str:
    """The reveal.js page of one chapter; ``up`` leads from the page to the decks' root."""
    render = _markdown_renderer()
    sections = []
    for kind, heading, body in chapter["slides"]:
        if kind == "intro":
            inner = f"<h1>{html.escape(chapter['title'])}</h1>\n{render(body)}"
            cls = "dense"
        elif kind == "figure":
            inner = (f"<h2>{render(heading).strip().removeprefix('<p>').removesuffix('</p>')}</h2>\n"
                     f'<img class="figure" alt="{html.escape(heading)}" '
                     f'src="data:image/png;base64,{body.strip()}">')
            cls = "figure"
        else:
            inner = (f"<h2>{html.escape(heading)}</h2>\n" if heading else "") + render(body)
            cls = "table" if kind == "claims" else "dense"
        foot = f'<div class="deck-foot">{html.escape(chapter["title"])}</div>'
        sections.append(f'<section class="{cls}" data-kind="{kind}">\n{inner}\n{foot}\n</section>')
    return PAGE.format(title=html.escape(chapter["title"]), up=up, sections="\n".join(sections))


def _copy_assets(out: pathlib.Path) -> None:
    if not (REVEAL / "dist" / "reveal.js").is_file() or not (MATHJAX / "tex-mml-chtml.js").is_file():
        raise SlidesError("reveal.js and MathJax are not installed: run `npm ci --prefix "
                          "tools/browser` (`make slides` does it where npm exists)")
    static = out / "_static"
    for src, dst in ((REVEAL / "dist", static / "reveal" / "dist"),
                     (REVEAL / "plugin" / "math", static / "reveal" / "plugin" / "math"),
                     (MATHJAX, static / "mathjax")):
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.map", "*.esm.js"))


def build(out: pathlib.Path = DEFAULT_OUT, root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """Write every chapter's deck and an index under ``out``; return the decks' paths."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text())
    book = CE.scan_book(root, config, html=root / "_build" / "html")
    cache = root / config["execute"]["cache"]
    glues: dict[str, dict] = {}

    def load_glue(doc: str) -> dict:
        if doc not in glues:
            glues[doc] = CE.glue_data(CE.executed_notebook(root / f"{doc}.ipynb", cache))
        return glues[doc]

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _copy_assets(out)
    decks, items = [], []
    for path in CE.chapter_notebooks(root):
        doc = path.relative_to(root).with_suffix("").as_posix()
        if not doc.startswith(("book/preliminaries/", "book/sde/", "book/margin/", "book/lowrank/",
                               "book/normalization/", "book/sharpness/")):
            continue
        chapter = chapter_slides(path, book, load_glue, root)
        rel = pathlib.Path(doc).relative_to("book").with_suffix(".html")
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_deck(chapter, "../" * (len(rel.parts) - 1)), encoding="utf-8")
        decks.append(target)
        items.append(f'<li><a href="{rel.as_posix()}">{html.escape(chapter["title"])}</a> '
                     f'({len(chapter["slides"])} slides)</li>')
    (out / "index.html").write_text(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Slides</title>"
        "</head>\n<body style=\"font-family: sans-serif; max-width: 46em; margin: 2em auto\">\n"
        f"<h1>{html.escape(config['title'])}: slides</h1>\n<p>One deck per chapter, made from "
        "the chapter's own cells. Arrow keys move between slides; <kbd>Esc</kbd> shows them "
        "all.</p>\n<ol>\n" + "\n".join(items) + "\n</ol>\n</body></html>\n", encoding="utf-8")
    return decks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    try:
        decks = build(args.out)
    except (SlidesError, CE.EditionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    where = args.out.relative_to(ROOT) if args.out.resolve().is_relative_to(ROOT) else args.out
    print(f"wrote {len(decks)} decks to {where}/ (open {where}/index.html)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
