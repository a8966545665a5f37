"""Pack the built HTML book into one zip for offline reading.

    make dist                      builds the book if needed, then writes
                                   _build/dist/dltheory-<version>-html.zip
    python tools/dist.py [--html DIR] [--out DIR]

The archive holds one folder, ``dltheory-<version>/``; unzip it and open its
``index.html`` in a browser. Pages, figures, the kernel-free widgets and the search index
come from the build. The pages load MathJax from a CDN; when MathJax is installed locally
(``tools/browser/node_modules``, which ``make dist`` installs from npm where npm exists),
it is packed into ``_static/mathjax/`` and every page points there instead, so the zip
reads offline, equations included.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
MATHJAX = ROOT / "tools" / "browser" / "node_modules" / "mathjax" / "es5"
CDN = re.compile(r'https://cdn\.jsdelivr\.net/npm/mathjax@3/es5/(tex-mml-chtml\.js)')


def version(root: pathlib.Path = ROOT) -> str:
    """The package version, from ``pyproject.toml``."""
    found = re.search(r'^version\s*=\s*"([^"]+)"', (root / "pyproject.toml").read_text(), re.M)
    if not found:
        raise ValueError("pyproject.toml names no version")
    return found.group(1)


def pack(html: pathlib.Path, out: pathlib.Path, name: str,
         mathjax: pathlib.Path | None = None) -> pathlib.Path:
    """Zip every file under ``html`` into ``out/<name>-html.zip`` below a ``<name>/`` folder.

    With ``mathjax`` (MathJax's ``es5`` folder), it is packed as ``_static/mathjax/`` and the
    pages' CDN script tags are rewritten to that copy (relative paths, so the folder can move).
    """
    html, out = pathlib.Path(html), pathlib.Path(out)
    if mathjax is not None and not (pathlib.Path(mathjax) / "tex-mml-chtml.js").is_file():
        raise FileNotFoundError(f"{mathjax} is not MathJax's es5 folder (no tex-mml-chtml.js)")
    if not (html / "index.html").is_file():
        raise FileNotFoundError(f"{html} holds no built book (no index.html): run `make book` first")
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}-html.zip"
    files = sorted(p for p in html.rglob("*") if p.is_file() and ".doctrees" not in p.parts)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in files:
            rel = p.relative_to(html)
            if mathjax is not None and p.suffix == ".html":
                up = "../" * (len(rel.parts) - 1)
                text = CDN.sub(lambda m: f"{up}_static/mathjax/{m.group(1)}",
                               p.read_text(encoding="utf-8"))
                zf.writestr(f"{name}/{rel.as_posix()}", text)
            else:
                zf.write(p, f"{name}/{rel.as_posix()}")
        if mathjax is not None:
            for p in sorted(pathlib.Path(mathjax).rglob("*")):
                if p.is_file():
                    zf.write(p, f"{name}/_static/mathjax/{p.relative_to(mathjax).as_posix()}")
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--html", type=pathlib.Path, default=ROOT / "_build" / "html")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "_build" / "dist")
    args = ap.parse_args(argv)
    try:
        target = pack(args.html, args.out, f"dltheory-{version()}",
                      MATHJAX if (MATHJAX / "tex-mml-chtml.js").is_file() else None)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    size = target.stat().st_size / 2**20
    print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target} "
          f"({size:.1f} MiB); unzip it and open index.html")
    if not (MATHJAX / "tex-mml-chtml.js").is_file():
        print("MathJax is not installed locally (npm ci --prefix tools/browser): the pages "
              "load it from its CDN, so equations need a connection")
    return 0


if __name__ == "__main__":
    sys.exit(main())
