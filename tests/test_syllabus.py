"""The syllabus: every week has at least three exercises, every exercise it names exists,
and every chapter of the book is taught in the full-length plan."""

import json
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
SYLLABUS = (ROOT / "book" / "syllabus.md").read_text()


def _tables():
    """Each table of the syllabus as (header, rows); a row is a list of cells."""
    tables, current = [], None
    for line in SYLLABUS.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if current is None:
                current = (cells, [])
                tables.append(current)
            elif not set("".join(cells)) <= set("-: "):
                current[1].append(cells)
        else:
            current = None
    return tables


def _exercise_labels():
    labels = set()
    for path in (ROOT / "book").rglob("*"):
        if path.suffix == ".ipynb" and ".ipynb_checkpoints" not in path.parts:
            text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        elif path.suffix == ".md":
            text = path.read_text()
        else:
            continue
        labels |= set(re.findall(r"```\{exercise\}[^\n]*\n:label: ([\w-]+)", text))
    return labels


WEEKS = [(t[0], row) for t in _tables() if t[0][0] == "Week" for row in t[1]]


def test_the_syllabus_has_week_tables():
    assert len({tuple(h) for h, _ in WEEKS}) >= 2, "the full plan and a shorter track"
    assert len(WEEKS) >= 18


@pytest.mark.parametrize("header, row", WEEKS, ids=[f"{'full' if 'Reading' in h else 'short'}-week-{r[0]}" for h, r in WEEKS])
def test_every_week_has_three_exercises_that_exist(header, row):
    problems = row[header.index("Problem set")]
    refs = re.findall(r"\{ref\}`([\w-]+)`", problems)
    assert len(refs) >= 3, f"week {row[0]} sets {len(refs)} exercises: {refs}"
    missing = set(refs) - _exercise_labels()
    assert not missing, f"week {row[0]} names exercises that do not exist: {missing}"


def test_every_chapter_is_taught():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    chapters = [c["file"].removeprefix("book/") for part in toc["parts"]
                if part["caption"].startswith(("Getting started", "Part"))
                for c in part["chapters"] if c["file"] != "book/notation"]
    full = next(rows for header, rows in _tables() if "Reading" in header)
    taught = " ".join(r[3] for r in full)
    missing = [c for c in chapters if f"{{doc}}`{c}`" not in taught]
    assert not missing, f"chapters without a week in the full plan: {missing}"
