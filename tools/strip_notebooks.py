"""Strip outputs, execution counts and saved widget state from the book's notebooks.

Usage: python tools/strip_notebooks.py [NOTEBOOK ...]   (default: every book/**/*.ipynb)
"""

import pathlib
import sys

import nbformat


def strip(path: pathlib.Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after)
        return True
    return False


if __name__ == "__main__":
    root = pathlib.Path(__file__).resolve().parents[1]
    paths = [pathlib.Path(p) for p in sys.argv[1:]] or sorted(root.glob("book/**/*.ipynb"))
    for p in paths:
        if ".ipynb_checkpoints" not in p.parts and strip(p):
            print(f"stripped {p}")
