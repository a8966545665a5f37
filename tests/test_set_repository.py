"""`make repository URL=...` rewrites every copy of the repository URL from one command."""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import set_repository  # noqa: E402

OLD = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
NEW = "https://github.com/a-course/dltheory-fall"


@pytest.fixture()
def copy(tmp_path):
    for rel in ("_config.yml", "CITATION.cff", "book", "tests"):
        src = ROOT / rel
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / rel)
    return tmp_path


def _setup_urls(root):
    urls = {}
    for nb in sorted((root / "book").rglob("*.ipynb")):
        cell = next(c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        line = [x for x in "".join(cell["source"]).splitlines() if x.startswith("DLTHEORY_REPO = ")]
        urls[nb.name] = line[0].split('"')[1]
    return urls


def test_every_copy_of_the_url_follows_the_config(copy):
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "set_repository.py"), NEW + ".git",
                          "--branch", "fall-2027", "--root", str(copy)],
                         capture_output=True, text=True, check=True).stdout
    config = yaml.safe_load((copy / "_config.yml").read_text())
    assert config["repository"] == {"url": NEW, "branch": "fall-2027"}
    # the comments of _config.yml survive the edit
    assert (copy / "_config.yml").read_text().count("#") == (ROOT / "_config.yml").read_text().count("#")
    urls = _setup_urls(copy)
    assert urls and set(urls.values()) == {NEW}, urls
    for page in ("book/intro.md", "book/api.md", "book/claims.md", "CITATION.cff"):
        text = (copy / page).read_text()
        assert OLD not in text and NEW in text, page
        assert page in out
    assert f"{NEW}/blob/fall-2027/tests/" in (copy / "book" / "claims.md").read_text()
    # the original tree is untouched, and a second run has nothing to do
    assert set(_setup_urls(ROOT).values()) == {OLD}
    again = set_repository.set_repository(NEW, "fall-2027", copy)
    assert again == []


@pytest.mark.parametrize("url", ["https://gitlab.com/a/b", "github.com/a/b", "https://github.com/a",
                                 "https://github.com/a/b/tree/main", ""])
def test_a_url_that_is_not_a_github_repository_is_refused(copy, url):
    before = (copy / "_config.yml").read_text()
    with pytest.raises(ValueError, match="`url` must be a GitHub repository URL"):
        set_repository.set_repository(url, root=copy)
    assert (copy / "_config.yml").read_text() == before
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "set_repository.py"), url or "x",
                           "--root", str(copy)], capture_output=True, text=True)
    assert proc.returncode == 2 and "https://github.com/OWNER/REPO" in proc.stderr


def test_a_bad_branch_is_refused(copy):
    with pytest.raises(ValueError, match="`branch` must be a git branch name"):
        set_repository.set_repository(NEW, "no spaces", copy)
