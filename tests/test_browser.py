"""Every page of the built book, opened in headless Chromium.

The test copies the session's build (the `book` fixture), points MathJax at the local
npm copy in tools/browser (this machine has no internet; the published pages keep the
CDN) and injects tools/browser/check.js, which reports after MathJax has typeset:
raw math left in the text, images that did not load, tracebacks or errors in cell
outputs, and, for every kernel-free widget twin, whether moving its first control
changes the figure and whether its controls stand apart. Screenshots land in
_build/screenshots/ for a reviewer.

Figure text. Pages are laid out at a 1280 px wide window, as on a laptop. For every
figure (an output image under ``_images/`` or a widget twin's image) the text is read at
``font_pt * dpi / 72 * displayed / natural`` CSS pixels, where ``natural`` and
``displayed`` are the image's natural width and the width the page shows it at (both
measured by check.js), and ``font_pt`` and ``dpi`` are the figure's smallest font and the
dpi it was rendered at. Those two are recorded when the image is made: figures from
``dltheory.plotting.figure`` carry them in their PNG's text chunks (the package's PNG
formatter for the inline backend, and the widgets' PNGs), read here with PIL; a twin's
``<img>`` carries them as ``data-font-pt`` and ``data-dpi``. A figure without them was
not made with ``dltheory.plotting.figure`` and fails. Every figure's smallest text must
read at ``dltheory.plotting.MIN_TEXT_PX`` (9 px) or more; the measurements go to
_build/browser-report.json.

Runs whenever Chromium is installed (`.ci/run` installs it); skipped otherwise.
"""

import json
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MIN_TEXT_PX = 9.0  # dltheory.plotting.MIN_TEXT_PX, the smallest text a figure may show
BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)
MATHJAX = ROOT / "tools" / "browser" / "node_modules" / "mathjax" / "es5" / "tex-mml-chtml.js"
CHECK = ROOT / "tools" / "browser" / "check.js"
CDN_MATHJAX = re.compile(r'https://cdn\.jsdelivr\.net/npm/mathjax@3/es5/tex-mml-chtml\.js')
SCREENSHOTS = ROOT / "_build" / "screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--allow-file-access-from-files", "--hide-scrollbars"]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed")]


def _pages(html: pathlib.Path) -> list[pathlib.Path]:
    skip = {"genindex.html", "search.html", "py-modindex.html"}
    return sorted(p for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_") and p.name not in skip)


@pytest.fixture(scope="module")
def site(book, tmp_path_factory):
    assert book.proc.returncode == 0, book.log[-3000:]
    assert MATHJAX.exists(), ("MathJax is missing: run `make test` (it runs `npm ci` in "
                              "tools/browser) or `npm ci --prefix tools/browser`")
    copy = tmp_path_factory.mktemp("site") / "html"
    shutil.copytree(book.html, copy)
    for page in _pages(copy):
        text = page.read_text()
        text = CDN_MATHJAX.sub(MATHJAX.as_uri(), text)
        text = text.replace("</body>", f'<script src="{CHECK.as_uri()}"></script></body>')
        page.write_text(text)
    return copy


#: The browser window the pages are laid out in (a laptop screen).
WINDOW = "--window-size=1280,2400"


def _open(page: pathlib.Path, user_dir: pathlib.Path, screenshot: pathlib.Path) -> dict:
    """Load ``page`` once: the report check.js leaves in the DOM, and a screenshot.

    One Chromium run does both (``--dump-dom`` with ``--screenshot``), after the same
    virtual-time budget, so MathJax typesets each page once.
    """
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={user_dir}", WINDOW,
                           "--virtual-time-budget=15000", "--dump-dom",
                           f"--screenshot={screenshot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="dltheory-browser-check"[^>]*>(.*?)</pre>', proc.stdout, re.S)
    assert found, f"{page.name}: the page check did not run\n{proc.stderr[-2000:]}"
    import html as html_lib

    return json.loads(html_lib.unescape(found.group(1)))


def svg_text_px(path: pathlib.Path, displayed_width: float) -> tuple[float | None, str]:
    """CSS pixels the smallest text of an SVG figure reads at: its smallest ``font-size``
    (user units) times the displayed width over the width of its ``viewBox``."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    box = root.get("viewBox")
    sizes = [float(re.match(r"[\d.]+", el.get("font-size")).group())
             for el in root.iter() if el.get("font-size")]
    if not box or not sizes:
        return None, f"{path.name} has no viewBox or no font-size to measure"
    return min(sizes) * displayed_width / float(box.split()[2]), "SVG font sizes"


def figure_text_px(page: pathlib.Path, figure: dict) -> tuple[float | None, str]:
    """CSS pixels the smallest text of one figure that check.js measured reads at.

    Returns ``(px, how)``; ``px`` is ``None`` when the figure does not record its font
    and dpi (``how`` says why).
    """
    from PIL import Image

    from dltheory import plotting

    font, dpi = figure.get("fontPt"), figure.get("dpi")
    if figure["src"].startswith("twin:"):
        how = "twin <img> data attributes"
    else:
        path = (page.parent / figure["src"].split("?")[0]).resolve()
        if path.exists() and path.suffix.lower() == ".svg":
            return svg_text_px(path, figure["displayedWidth"])
        if not path.exists() or path.suffix.lower() != ".png":
            return None, f"not a PNG file: {figure['src']}"
        with Image.open(path) as img:
            text = getattr(img, "text", {})
            font = text.get(plotting.PNG_FONT_KEY)
            dpi = text.get(plotting.PNG_DPI_KEY)
        how = "PNG text chunks"
    if font is None or dpi is None or not figure["naturalWidth"]:
        return None, (f"{figure['src']} records no font size and dpi ({how}): make it "
                      f"with dltheory.plotting.figure")
    font, dpi = float(font), float(dpi)
    if font == float("inf"):
        return float("inf"), how  # no text at all
    return plotting.text_px(font, dpi, figure["naturalWidth"], figure["displayedWidth"]), how


def test_every_page_renders_in_a_browser(site, book, tmp_path):
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    problems, report = [], {}
    chapters_with_widgets = {
        str(p.relative_to(ROOT).with_suffix(".html")) for p in (ROOT / "book").rglob("*.ipynb")
        if "explore(" in p.read_text()}
    for page in _pages(site):
        rel = page.relative_to(site).as_posix()
        r = _open(page, tmp_path / "profile",
                  SCREENSHOTS / rel.replace("/", "__").replace(".html", ".png"))
        report[rel] = r
        has_math = 'class="math' in (book.html / rel).read_text()
        if has_math and not (r["mathjax"] and r["typeset"] > 0):
            problems.append(f"{rel}: math was not typeset (MathJax loaded: {r['mathjax']})")
        if r["rawMath"]:
            problems.append(f"{rel}: {r['rawMath']} raw math delimiters, e.g. "
                            f"{r['rawMathSample']!r}")
        if r["images"]["broken"]:
            problems.append(f"{rel}: images did not load: {r['images']['broken']}")
        if r["traceback"] or r["errorText"]:
            problems.append(f"{rel}: a cell output shows an error: {r['errorText']!r}")
        for i, twin in enumerate(r["twins"]):
            if not (twin["loaded"] and twin["imageChanged"] and twin["settingChanged"]
                    and twin["labelChanged"] and twin["restored"]):
                problems.append(f"{rel}: widget twin {i} does not switch figures: {twin}")
            if twin["controlGap"] is not None and twin["controlGap"] < 12:
                problems.append(f"{rel}: widget twin {i}'s controls run together "
                                f"({twin['controlGap']:.0f} px apart)")
            if "_" in twin["label"]:
                problems.append(f"{rel}: widget twin {i} shows a raw underscore: "
                                f"{twin['label']!r}")
        for fig in r["figures"]["figures"]:
            px, how = figure_text_px(page, fig)
            fig["textPx"] = px
            if px is None:
                problems.append(f"{rel}: {how}")
            elif px < MIN_TEXT_PX:
                problems.append(
                    f"{rel}: {fig['src'][:60]}: its smallest text reads at {px:.1f} px "
                    f"(< {MIN_TEXT_PX:g}): {fig['naturalWidth']} px wide shown at "
                    f"{fig['displayedWidth']:.0f} px; make the figure narrower (at most "
                    f"~7.5 in) or its fonts larger")
        if rel in chapters_with_widgets and not r["twins"]:
            problems.append(f"{rel}: the chapter has a widget but no kernel-free twin")
    (ROOT / "_build" / "browser-report.json").write_text(json.dumps(report, indent=1))
    assert not problems, "\n".join(problems)
    assert len(list(SCREENSHOTS.glob("*.png"))) == len(report)
