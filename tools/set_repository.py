"""Point the book at another repository (a fork, a course's copy) in one command.

    make repository URL=https://github.com/OWNER/REPO [BRANCH=main]
    python tools/set_repository.py https://github.com/OWNER/REPO [--branch main] [--root DIR]

The repository is named in ``_config.yml`` (``repository.url`` and ``repository.branch``),
which the launch buttons, the repository button and the claims page's test links use. A
notebook opened on Colab cannot read ``_config.yml``, so each chapter's setup cell carries
a copy of the URL (``DLTHEORY_REPO = "..."``), as do the install lines of the introduction
and the API page, and ``CITATION.cff``. This script rewrites all of them from the one new
URL, regenerates the claims page, and says what it changed; ``tests/test_notebooks.py`` fails when a setup cell
and ``_config.yml`` disagree, so a hand edit of one of them cannot go unnoticed.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
URL = re.compile(r"^https://github\.com/[A-Za-z0-9][A-Za-z0-9_-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
# Pages that show the install or clone command with the repository's URL.
PAGES = ("book/intro.md", "book/api.md", "CITATION.cff")


def check_url(url: str) -> str:
    """``url`` without a trailing slash or ``.git``, or ValueError naming what is allowed."""
    if not isinstance(url, str):
        raise TypeError(f"argument `url` must be a string; got {type(url).__name__}")
    clean = url.strip().rstrip("/").removesuffix(".git")
    if not URL.match(clean):
        raise ValueError(f"argument `url` must be a GitHub repository URL of the form "
                         f"https://github.com/OWNER/REPO (the launch buttons and the Colab "
                         f"edition need GitHub); got {url!r}")
    return clean


def _config_rewrite(text: str, url: str, branch: str | None) -> tuple[str, str]:
    """``_config.yml`` with the new URL (and branch), edited in place so comments stay."""
    block = re.search(r"^repository:\n((?:[ \t]+.*\n?)+)", text, flags=re.M)
    if not block:
        raise ValueError("_config.yml has no `repository:` section to rewrite")
    body = block.group(1)
    old = re.search(r"^[ \t]+url:[ \t]*(\S+)", body, flags=re.M)
    if not old:
        raise ValueError("_config.yml's `repository:` section has no `url:`")
    new_body = body[:old.start(1)] + url + body[old.end(1):]
    if branch is not None:
        new_body, n = re.subn(r"^([ \t]+branch:[ \t]*)\S+", lambda m: m.group(1) + branch,
                              new_body, count=1, flags=re.M)
        if n == 0:
            new_body = new_body.rstrip("\n") + f"\n  branch: {branch}\n"
    return text[:block.start(1)] + new_body + text[block.end(1):], old.group(1).rstrip("/")


def _notebook_rewrite(path: pathlib.Path, url: str) -> bool:
    nb = json.loads(path.read_text())
    cell = next((c for c in nb["cells"] if c["cell_type"] == "code"), None)
    if cell is None:
        return False
    src = "".join(cell["source"])
    new, n = re.subn(r'^DLTHEORY_REPO = "[^"]*"$', f'DLTHEORY_REPO = "{url}"', src, flags=re.M)
    if n == 0 or new == src:
        return False
    lines = new.split("\n")
    cell["source"] = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return True


def set_repository(url: str, branch: str | None = None, root: pathlib.Path = ROOT) -> list[str]:
    """Rewrite every copy of the repository URL under ``root``; return the files changed."""
    url = check_url(url)
    if branch is not None and (not isinstance(branch, str) or not BRANCH.match(branch)):
        raise ValueError(f"argument `branch` must be a git branch name such as 'main'; "
                         f"got {branch!r}")
    root = pathlib.Path(root)
    changed = []
    config = root / "_config.yml"
    text, old = _config_rewrite(config.read_text(), url, branch)
    if text != config.read_text():
        config.write_text(text)
        changed.append("_config.yml")
    for nb in sorted((root / "book").rglob("*.ipynb")):
        if ".ipynb_checkpoints" not in nb.parts and _notebook_rewrite(nb, url):
            changed.append(str(nb.relative_to(root)))
    for rel in PAGES:
        page = root / rel
        if page.exists() and old != url and old in page.read_text():
            page.write_text(page.read_text().replace(old, url))
            changed.append(rel)
    claims_page = root / "book" / "claims.md"
    if claims_page.exists():
        sys.path.insert(0, str(root / "src"))
        from dltheory import claims

        fresh = claims.claims_page(root) + "\n"
        if fresh != claims_page.read_text():
            claims_page.write_text(fresh)
            changed.append("book/claims.md")
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="https://github.com/OWNER/REPO")
    ap.add_argument("--branch", help="the branch the book is built from (default: unchanged)")
    ap.add_argument("--root", type=pathlib.Path, default=ROOT, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        changed = set_repository(args.url, args.branch, args.root)
    except (TypeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if changed:
        print("rewrote the repository URL in:\n  " + "\n  ".join(changed))
    else:
        print("nothing to change: every copy already names that repository")
    return 0


if __name__ == "__main__":
    sys.exit(main())
