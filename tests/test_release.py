"""The release files: one version everywhere, a valid CITATION.cff, and `make dist`'s zip."""

import pathlib
import re
import sys
import zipfile

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import dist  # noqa: E402


def test_one_version_everywhere():
    import dltheory

    v = dist.version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", v), v
    assert dltheory.__version__ == v
    assert yaml.safe_load((ROOT / "CITATION.cff").read_text())["version"] == v


def test_citation_file_names_the_book_and_its_repository():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors", "version", "license",
                "repository-code", "date-released"):
        assert key in cff, f"CITATION.cff lacks {key!r}"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cff["title"] == config["title"]
    assert cff["repository-code"] == config["repository"]["url"]
    assert cff["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()


def _fake_build(tmp_path):
    html = tmp_path / "html"
    cdn = '<script defer="defer" src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'
    (html / "book" / "sde").mkdir(parents=True)
    (html / ".doctrees").mkdir()
    (html / "index.html").write_text(f"<html>{cdn}index</html>")
    (html / "book" / "sde" / "sgd_sde.html").write_text(f"<html>{cdn}chapter</html>")
    (html / "_static").mkdir()
    (html / "_static" / "style.css").write_text("body{}")
    (html / ".doctrees" / "env.pickle").write_bytes(b"x")
    mj = tmp_path / "es5"
    (mj / "output").mkdir(parents=True)
    (mj / "tex-mml-chtml.js").write_text("/* mathjax */")
    (mj / "output" / "font.woff").write_bytes(b"\0font")
    return html, mj


def test_dist_packs_the_build_below_one_folder_with_mathjax_offline(tmp_path):
    html, mj = _fake_build(tmp_path)
    target = dist.pack(html, tmp_path / "out", "dltheory-9.9.9", mathjax=mj)
    assert target.name == "dltheory-9.9.9-html.zip"
    with zipfile.ZipFile(target) as zf:
        names = set(zf.namelist())
        assert names == {"dltheory-9.9.9/index.html", "dltheory-9.9.9/book/sde/sgd_sde.html",
                         "dltheory-9.9.9/_static/style.css",
                         "dltheory-9.9.9/_static/mathjax/tex-mml-chtml.js",
                         "dltheory-9.9.9/_static/mathjax/output/font.woff"}
        top = zf.read("dltheory-9.9.9/index.html").decode()
        deep = zf.read("dltheory-9.9.9/book/sde/sgd_sde.html").decode()
    assert 'src="_static/mathjax/tex-mml-chtml.js"' in top and "cdn.jsdelivr" not in top
    assert 'src="../../_static/mathjax/tex-mml-chtml.js"' in deep and "chapter" in deep


def test_dist_without_local_mathjax_keeps_the_pages_as_built(tmp_path):
    html, _ = _fake_build(tmp_path)
    target = dist.pack(html, tmp_path / "out", "x")
    with zipfile.ZipFile(target) as zf:
        assert zf.read("x/index.html") == (html / "index.html").read_bytes()


def test_dist_refuses_a_folder_without_a_book(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `make book` first"):
        dist.pack(tmp_path, tmp_path / "out", "x")
    html, _ = _fake_build(tmp_path)
    with pytest.raises(FileNotFoundError, match="not MathJax's es5 folder"):
        dist.pack(html, tmp_path / "out", "x", mathjax=tmp_path)
