"""The bibliography's author-year labels (tools/bib_authoryear.py): unique, as cited."""

import pathlib
import sys

import pytest

# the book's build tooling: installed with the book (`make`), not in the reader
# environments of `make test-colab` / `make test-min`, which test the package
pybtex = pytest.importorskip("pybtex")
import pybtex.plugin  # noqa: E402
from pybtex.database import parse_file  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _labels():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import bib_authoryear  # noqa: F401  (registers the styles)
    finally:
        sys.path.pop(0)
    style = pybtex.plugin.find_plugin("pybtex.style.formatting", "authoryear")()
    entries = style.sort(parse_file(ROOT / "book" / "references.bib").entries.values())
    return {e.key: label for label, e in zip(style.format_labels(entries), entries)}


def test_labels_are_author_year_and_unique():
    labels = _labels()
    assert len(set(labels.values())) == len(labels), labels
    assert labels["krizhevsky2014one"] == "Krizhevsky, 2014"
    assert labels["li2020exponential"] == "Li and Arora, 2020"
    # two papers that would both be cited "Li et al. [2021]" get 2021a and 2021b
    pair = {labels["li2021validity"], labels["li2021towards"]}
    assert pair == {"Li et al., 2021a", "Li et al., 2021b"}
