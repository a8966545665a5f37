"""The whole book as one PDF, printed by headless Chromium from the single-page build.

    make pdf                          builds the book if needed, then writes
                                      _build/pdf/dltheory-<version>.pdf
    python tools/pdf.py [--out FILE] [--keep-html]

Steps: ``jupyter-book build --builder singlehtml`` (the notebooks come from the execution
cache of ``make book``, so nothing runs again), MathJax pointed at the local copy from npm
(``tools/browser``; the pages otherwise load it from a CDN), and Chromium's
``--print-to-pdf`` once the page has typeset its mathematics. Every figure, equation,
theorem box and the first setting of every widget is printed; solutions stay folded, as
on the page. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
MATHJAX = ROOT / "tools" / "browser" / "node_modules" / "mathjax" / "es5"
CDN = re.compile(r'https://cdn\.jsdelivr\.net/npm/mathjax@3/es5/(tex-mml-chtml\.js)')
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# A print stylesheet for the single page: the page's own width, no navigation chrome, and
# no page break inside a figure, an equation or a theorem box; each chapter on a new page.
PRINT_CSS = """
@page { size: A4; margin: 16mm 14mm; }
@media print {
  .bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .header-article, .bd-footer,
  .prev-next-area, .bd-header-article, .footer-article, .toggle-secondary-sidebar,
  .dltheory-twin-controls { display: none !important; }
  .bd-main .bd-content .bd-article-container { max-width: 100% !important; }
  figure, img, .math, mjx-container[display="true"], .proof, div.admonition, table
    { break-inside: avoid; }
  h2:has(> span.section-number) { break-before: page; }   /* each numbered chapter */
  a { color: inherit; text-decoration: none; }
}
"""


class PdfError(RuntimeError):
    """The PDF cannot be made (no Chromium, no MathJax, a failed build)."""


def version(root: pathlib.Path = ROOT) -> str:
    found = re.search(r'^version\s*=\s*"([^"]+)"', (root / "pyproject.toml").read_text(), re.M)
    return found.group(1) if found else "0"


def browser() -> str:
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    raise PdfError("Chromium is not installed: `make pdf` prints the book with Debian's "
                   "`chromium` (apt-get install chromium)")


def single_page(root: pathlib.Path = ROOT) -> pathlib.Path:
    """Build the single-page HTML from the execution cache; return its index.html."""
    env = dict(os.environ, DLTHEORY_PROGRESS="0", DLTHEORY_STATIC_TWINS="1")
    exe = pathlib.Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root),
           "--builder", "singlehtml"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    index = root / "_build" / "singlehtml" / "index.html"
    if proc.returncode != 0 or not index.is_file():
        raise PdfError("the single-page build failed:\n" + (proc.stdout + proc.stderr)[-3000:])
    # Jupyter Book writes the page under the root document's name and a redirect to it
    redirect = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"', index.read_text())
    page = index.parent / redirect.group(1) if redirect else index
    if not page.is_file():
        raise PdfError(f"the single-page build wrote no page at {page}")
    return page


def prepare(index: pathlib.Path, out_root: pathlib.Path | None = None) -> pathlib.Path:
    """A copy of the single page next to it with MathJax local and the print stylesheet
    (``out_root``: the build's folder, which holds ``_static``)."""
    if not (MATHJAX / "tex-mml-chtml.js").is_file():
        raise PdfError("MathJax is not installed: run `npm ci --prefix tools/browser` "
                       "(`make pdf` does it where npm exists)")
    # The page's links are relative to the build's folder (where Sphinx puts the single
    # page), although Jupyter Book writes it one level down: the copy goes to that folder.
    out_root = out_root or ROOT / "_build" / "singlehtml"
    static = out_root / "_static"
    target = static / "mathjax"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(MATHJAX, target)
    text = index.read_text(encoding="utf-8")
    text, n = CDN.subn(r"_static/mathjax/\1", text)
    if n == 0:
        raise PdfError(f"{index} does not load MathJax from the expected CDN address")
    text = text.replace("</head>", f"<style>{PRINT_CSS}</style>\n</head>", 1)
    out = out_root / "print.html"
    out.write_text(text, encoding="utf-8")
    return out


def print_pdf(page: pathlib.Path, out: pathlib.Path, budget_ms: int = 180_000) -> pathlib.Path:
    """Chromium's PDF of ``page`` after ``budget_ms`` of virtual time (MathJax typesets)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu",
                               "--no-first-run", "--disable-background-networking",
                               "--disable-component-update", f"--user-data-dir={profile}",
                               "--allow-file-access-from-files", "--no-pdf-header-footer",
                               "--run-all-compositor-stages-before-draw",
                               f"--virtual-time-budget={budget_ms}",
                               f"--print-to-pdf={out}", page.as_uri()],
                              capture_output=True, text=True, timeout=1200)
    if not out.is_file() or out.stat().st_size == 0:
        raise PdfError("Chromium wrote no PDF:\n" + proc.stderr[-3000:])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path,
                    default=ROOT / "_build" / "pdf" / f"dltheory-{version()}.pdf")
    args = ap.parse_args(argv)
    try:
        page = prepare(single_page())
        pdf = print_pdf(page, args.out)
    except PdfError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    where = pdf.relative_to(ROOT) if pdf.resolve().is_relative_to(ROOT) else pdf
    print(f"wrote {where} ({pdf.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
