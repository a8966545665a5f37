"""Book execution: cold execution time of every chapter at quick scale, and of the book.

Every notebook listed in ``_toc.yml`` is executed top to bottom in a fresh kernel (no
jupyter cache, no JAX compilation cache: cold), with the environment of the book build
(``DLTHEORY_SCALE=quick``, ``DLTHEORY_PROGRESS=0``, ``DLTHEORY_STATIC_TWINS=1``, so every
widget also renders its static twin, as in ``make book``). For each chapter: the time
from starting the kernel to the end of its last cell, the number of XLA compilations and
the seconds spent tracing, lowering and compiling them (from ``jax.monitoring``), and
its slowest cell. The book's time is measured twice: as the sum of its chapters run one
after another, and as ``make book`` executes them (``tools/execute_notebooks.py``, one
process per core, into an empty jupyter cache). Sphinx's own time is not included.

Usage: python benchmarks/book.py [--repeats N] [--smoke] [NOTEBOOK ...]
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import time

import _common as C
import _nbexec as X

TARGET_BOOK_S = 300.0
ENV = {"DLTHEORY_SCALE": "quick", "DLTHEORY_PROGRESS": "0", "DLTHEORY_STATIC_TWINS": "1"}


def main() -> None:
    ap = C.notebook_parser(__doc__, "a tiny generated notebook, once (checks the machinery)")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    if args.smoke:
        notebooks, repeats = [X.smoke_notebook()], 1
    else:
        notebooks, repeats = args.notebooks or X.toc_notebooks(), args.repeats
    print("## Book execution (cold, quick scale)\n")
    print(f"Each chapter in a fresh kernel, {repeats} repeat(s); median (range). "
          f"Compile = XLA tracing + lowering + compilation as reported by jax.monitoring. "
          f"{C.load()} at the start.\n")
    runs: dict[pathlib.Path, list[dict]] = {p: [] for p in notebooks}
    for _ in range(repeats):
        for p in notebooks:  # one pass over the book per repeat, like a build
            runs[p].append(X.execute(p, env=ENV, epilogue=X.BOOK_EPILOGUE))
    rows = []
    book = [0.0] * repeats
    for p, rs in runs.items():
        for i, r in enumerate(rs):
            book[i] += r["total_s"]
        total = [r["total_s"] for r in rs]
        comp = [r["bench"]["compile_s"] + r["bench"]["trace_s"] + r["bench"]["lower_s"]
                for r in rs]
        compiles = sorted({r["bench"]["compiles"] for r in rs})
        slow_s, slow_id = max(r["slowest"] for r in rs)
        rows.append([X.label(p), C.seconds(total), C.seconds([r["kernel_s"] for r in rs]),
                     "/".join(map(str, compiles)), C.seconds(comp),
                     f"{100 * C.med(comp) / C.med(total):.0f}%",
                     str(rs[0]["bench"]["explorers"]), f"`{slow_id}` {slow_s:.1f} s"])
    rows.append([f"**whole book ({len(notebooks)} notebooks)**", C.seconds(book), "", "",
                 "", "", "", ""])
    print(C.table(["figure", "cold time", "kernel start", "XLA compilations",
                   "compile time", "compile share", "widgets", "slowest cell (max)"], rows))
    print()
    if args.smoke or args.notebooks:
        serial = C.med(book)
        print(f"Target: whole book under {TARGET_BOOK_S:.0f} s on 2 CPU cores, cold: "
              f"{C.seconds(book)} one after another, {_verdict(serial)}.")
        return
    # what `make book` does: every notebook, one process per core, into an empty cache
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(C.ROOT / "tools" / "execute_notebooks.py"),
                               "--cache", str(pathlib.Path(tmp) / "cache")],
                              env={**os.environ, **ENV}, cwd=C.ROOT, capture_output=True,
                              text=True)
        parallel = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        raise SystemExit("tools/execute_notebooks.py failed")
    print(f"The whole book as `make book` executes it (`tools/execute_notebooks.py`: every "
          f"notebook, one process per core, into an empty jupyter cache): "
          f"**{parallel:.0f} s**; one after another (the table): {C.seconds(book)}.\n")
    print(f"Target: whole book under {TARGET_BOOK_S:.0f} s on 2 CPU cores, cold: "
          f"{parallel:.0f} s as built, {_verdict(parallel)}; one after another "
          f"{_verdict(C.med(book))}.")


def _verdict(seconds: float) -> str:
    if seconds < TARGET_BOOK_S:
        return "met"
    return f"MISSED by {seconds - TARGET_BOOK_S:.0f} s ({seconds / TARGET_BOOK_S:.2f}x)"


if __name__ == "__main__":
    main()
