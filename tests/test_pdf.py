"""`make pdf` (tools/pdf.py): the whole book as one PDF, printed by headless Chromium from
the single-page build of the session's book (the `book` fixture of conftest.py)."""

import json
import pathlib
import re
import subprocess
import sys
import unicodedata

import pytest

pypdf = pytest.importorskip("pypdf")

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import colab_edition as ce  # noqa: E402
import pdf as pdf_tool  # noqa: E402

BROWSER = any(__import__("shutil").which(n) for n in pdf_tool.BROWSERS)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not BROWSER, reason="Chromium is not installed"),
              pytest.mark.skipif(not (pdf_tool.MATHJAX / "tex-mml-chtml.js").is_file(),
                                 reason="MathJax comes from npm (npm ci --prefix tools/browser)")]


@pytest.fixture(scope="module")
def document(book, tmp_path_factory):
    assert book.proc.returncode == 0, book.log[-3000:]
    out = tmp_path_factory.mktemp("pdf") / "book.pdf"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "pdf.py"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return pypdf.PdfReader(str(out))


@pytest.fixture(scope="module")
def texts(document):
    """The text layer of every page, extracted once for the module's tests."""
    return [p.extract_text() or "" for p in document.pages]


def _images(resources, seen: set) -> int:
    """Image XObjects drawn from ``resources``, following the form XObjects they use.

    Counts what ``len(page.images)`` counts, without decoding every image's data.
    """
    xobjects = resources.get("/XObject") if resources else None
    if not xobjects:
        return 0
    count = 0
    for ref in xobjects.get_object().values():
        obj = ref.get_object()
        if obj.get("/Subtype") == "/Image":
            count += 1
        elif obj.get("/Subtype") == "/Form":
            key = getattr(ref, "idnum", id(obj))
            if key not in seen:
                seen.add(key)
                count += _images(obj.get("/Resources"), seen)
    return count


def _titles():
    titles = []
    for path in ce.chapter_notebooks(ROOT):
        nb = json.loads(path.read_text())
        first = "".join(nb["cells"][0]["source"])
        titles.append(re.search(r"^# (.+)$", first, re.M).group(1))
    return titles


def _squash(text):
    # NFKC undoes the typographic ligatures (fi, fl) of the PDF's text layer
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).replace("\u00ad", "")


def test_pdf_has_every_chapter_a_theorem_and_the_figures(document, texts):
    pages = document.pages
    assert len(pages) >= 100, f"{len(pages)} pages"
    text = _squash(" ".join(texts))
    for title in _titles():
        assert _squash(title) in text, f"chapter title missing from the PDF: {title}"
    assert "Gradient descent on a quadratic" in text  # the first theorem's title
    assert "Stability threshold" in text              # and its body
    images = sum(_images(p.get("/Resources"), set()) for p in pages)
    assert images >= 3 * len(_titles()), f"{images} images for {len(_titles())} chapters"


def test_pdf_math_is_typeset_not_left_as_tex(texts):
    text = " ".join(texts[:60])
    assert "\\frac" not in text and "\\lambda" not in text and "\\(" not in text


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF file of the numbered ``objects`` (1 is the catalog), with its xref table."""
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def _stream(head: bytes, data: bytes) -> bytes:
    return b"<< " + head + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def test_image_count_matches_pypdf(tmp_path):
    """`_images` counts what pypdf's ``page.images`` counts: on a figure with two images,
    on a page without any, and on a page whose one image is drawn inside a form XObject
    (used twice on the page, drawn once)."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure()
    for ax in fig.subplots(1, 2):
        ax.imshow(np.arange(12.0).reshape(3, 4))
    fig.savefig(tmp_path / "two.pdf")
    Figure().savefig(tmp_path / "none.pdf")
    (tmp_path / "form.pdf").write_bytes(_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] /Contents 6 0 R "
        b"/Resources << /XObject << /Fm0 4 0 R /Fm1 4 0 R >> >> >>",
        _stream(b"/Type /XObject /Subtype /Form /BBox [0 0 1 1] "
                b"/Resources << /XObject << /Im0 5 0 R >> >>", b"/Im0 Do"),
        _stream(b"/Type /XObject /Subtype /Image /Width 1 /Height 1 "
                b"/ColorSpace /DeviceGray /BitsPerComponent 8", b"\x00"),
        _stream(b"", b"/Fm0 Do"),
    ]))
    for name, want in (("two.pdf", 2), ("none.pdf", 0), ("form.pdf", 1)):
        page = pypdf.PdfReader(str(tmp_path / name)).pages[0]
        assert len(page.images) == want, name
        assert _images(page.get("/Resources"), set()) == want, name
