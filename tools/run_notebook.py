"""Execute a notebook top to bottom in this interpreter's kernel and report the time.

Usage: python tools/run_notebook.py NOTEBOOK [--output OUT.ipynb] [--timeout SECONDS]
                                    [--skip-tag TAG]

Used by the Colab-like test (a fresh environment, the setup cell installs dltheory) and
handy for working on one chapter without building the whole book:

    DLTHEORY_SCALE=quick .venv/bin/python tools/run_notebook.py book/sde/sgd_sde.ipynb
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=pathlib.Path)
    parser.add_argument("--output", type=pathlib.Path, default=None,
                        help="where to write the executed notebook (default: not written)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--skip-tag", action="append", default=[], metavar="TAG",
                        help="leave out the code cells with this tag (repeatable)")
    args = parser.parse_args(argv)

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(args.notebook, as_version=4)
    skip = set(args.skip_tag)
    if skip:
        nb.cells = [c for c in nb.cells if c.cell_type != "code"
                    or not skip & set(c.metadata.get("tags", []))]
    client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(args.notebook.parent)}})
    t0 = time.perf_counter()
    try:
        client.execute()
        status = 0
    except CellExecutionError as err:
        print(err, file=sys.stderr)
        status = 1
    seconds = time.perf_counter() - t0
    if args.output is not None:
        nbformat.write(nb, args.output)
    print(f"{args.notebook}: {'executed' if status == 0 else 'FAILED'} in {seconds:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
