"""Book execution: cold and warm execution time of every chapter at quick scale, and of
the book.

Every notebook listed in ``_toc.yml`` is executed top to bottom in a fresh kernel (no
jupyter cache) with the environment of the book build (``DLTHEORY_SCALE=quick``,
``DLTHEORY_PROGRESS=0``, ``DLTHEORY_STATIC_TWINS=1``, so every widget also renders its
static twin, as in ``make book``), twice:

- *cold*: JAX's persistent compilation cache points at a new, empty directory, so every
  program is compiled (and written there: writing is a few milliseconds per program);
  this is what a reader's first run of a chapter pays;
- *warm*: again, with that directory filled: every program is loaded instead of
  compiled, what a rebuild (``make book``, ``make test``) pays when nothing changed.

For each chapter: the time from starting the kernel to the end of its last cell, the
number of XLA compilations and the seconds spent tracing, lowering and compiling them
(from ``jax.monitoring``; a program loaded from the cache counts as a compilation that
took its loading time), and its slowest cell. The book's time is measured twice: as
the sum of its chapters run one after another (cold), and as ``make book`` executes them
(``tools/execute_notebooks.py``, one process per core, into an empty jupyter cache, no
compilation cache). Sphinx's own time is not included.

Targets: every chapter under 45 s cold, with a compile share under 40%.

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
TARGET_CHAPTER_S = 45.0
TARGET_COMPILE_SHARE = 0.40
ENV = {"DLTHEORY_SCALE": "quick", "DLTHEORY_PROGRESS": "0", "DLTHEORY_STATIC_TWINS": "1"}


def _compile_s(r: dict) -> float:
    return r["bench"]["compile_s"] + r["bench"]["trace_s"] + r["bench"]["lower_s"]


def main() -> None:
    ap = C.notebook_parser(__doc__, "a tiny generated notebook, once (checks the machinery)")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    if args.smoke:
        notebooks, repeats = [X.smoke_notebook()], 1
    else:
        notebooks, repeats = args.notebooks or X.toc_notebooks(), args.repeats
    print("## Book execution (quick scale, cold and warm)\n")
    print(f"Each chapter in a fresh kernel, {repeats} repeat(s) of a cold run (an empty "
          f"JAX compilation cache) followed by a warm run (the cache the cold run filled); "
          f"median (range). Compile = XLA tracing + lowering + compilation (or loading "
          f"from the cache) as reported by jax.monitoring. {C.load()} at the start.\n")
    cold: dict[pathlib.Path, list[dict]] = {p: [] for p in notebooks}
    warm: dict[pathlib.Path, list[dict]] = {p: [] for p in notebooks}
    for _ in range(repeats):
        for p in notebooks:  # one pass over the book per repeat, like a build
            with tempfile.TemporaryDirectory() as jc:
                env = {**ENV, **C.jax_cache_env(jc)}
                cold[p].append(X.execute(p, env=env, epilogue=X.BOOK_EPILOGUE))
                warm[p].append(X.execute(p, env=env, epilogue=X.BOOK_EPILOGUE))
    rows, missed = [], []
    book = [0.0] * repeats
    for p in notebooks:
        rs, ws = cold[p], warm[p]
        for i, r in enumerate(rs):
            book[i] += r["total_s"]
        total = [r["total_s"] for r in rs]
        comp = [_compile_s(r) for r in rs]
        share = C.med(comp) / C.med(total)
        compiles = sorted({r["bench"]["compiles"] for r in rs})
        slow_s, slow_id = max(r["slowest"] for r in rs)
        ok = C.med(total) < TARGET_CHAPTER_S and share < TARGET_COMPILE_SHARE
        if not ok:
            missed.append(f"{X.label(p)} ({C.med(total):.0f} s, {100 * share:.0f}%)")
        rows.append([X.label(p), C.seconds(total), "/".join(map(str, compiles)),
                     C.seconds(comp), f"{100 * share:.0f}%",
                     C.seconds([w["total_s"] for w in ws]),
                     C.seconds([_compile_s(w) for w in ws]),
                     str(rs[0]["bench"]["explorers"]), f"`{slow_id}` {slow_s:.1f} s",
                     "yes" if ok else "**no**"])
    warm_book = [sum(warm[p][i]["total_s"] for p in notebooks) for i in range(repeats)]
    rows.append([f"**whole book ({len(notebooks)} notebooks)**", C.seconds(book), "", "", "",
                 C.seconds(warm_book), "", "", "", ""])
    print(C.table(["figure", "cold time", "XLA compilations", "compile time (cold)",
                   "compile share (cold)", "warm time", "compile time (warm)", "widgets",
                   "slowest cell (cold, max)", "target met"], rows))
    print()
    print(f"Target: every chapter under {TARGET_CHAPTER_S:.0f} s cold with a compile share "
          f"under {100 * TARGET_COMPILE_SHARE:.0f}%: "
          + ("met by every chapter." if not missed else
             f"missed by {len(missed)} of {len(notebooks)}: " + "; ".join(missed) + "."))
    print()
    if args.smoke or args.notebooks:
        serial = C.med(book)
        print(f"Whole book under {TARGET_BOOK_S:.0f} s on 2 CPU cores, cold: "
              f"{C.seconds(book)} one after another, {_verdict(serial)}.")
        return
    # what `make book` does: every notebook, one process per core, into an empty cache
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(C.ROOT / "tools" / "execute_notebooks.py"),
                               "--cache", str(pathlib.Path(tmp) / "cache")],
                              env=C.without_jax_cache({**os.environ, **ENV}), cwd=C.ROOT,
                              capture_output=True, text=True)
        parallel = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        raise SystemExit("tools/execute_notebooks.py failed")
    print(f"The whole book as `make book` executes it (`tools/execute_notebooks.py`: every "
          f"notebook, one process per core, into an empty jupyter cache, no compilation "
          f"cache): **{parallel:.0f} s**; one after another (the table): {C.seconds(book)} "
          f"cold, {C.seconds(warm_book)} warm.\n")
    print(f"Whole book under {TARGET_BOOK_S:.0f} s on 2 CPU cores, cold: "
          f"{parallel:.0f} s as built, {_verdict(parallel)}; one after another "
          f"{_verdict(C.med(book))}.")


def _verdict(seconds: float) -> str:
    if seconds < TARGET_BOOK_S:
        return "met"
    return f"MISSED by {seconds - TARGET_BOOK_S:.0f} s ({seconds / TARGET_BOOK_S:.2f}x)"


if __name__ == "__main__":
    main()
