"""Execute the book's notebooks cold, one fresh kernel each, with instrumentation cells.

Used by ``book.py`` and ``widget_latency.py`` (not a benchmark itself). A notebook is read
into memory, a *prelude* cell is put before its first cell and an *epilogue* cell after
its last; the file on disk is never changed. The prelude

- registers a ``jax.monitoring`` listener that counts XLA compilations and adds up the
  time spent tracing, lowering and compiling (the events behind
  ``dltheory.training.count_compilations``);
- records every :class:`dltheory.widgets.Explorer` the chapter creates (it wraps
  ``Explorer.__init__``), so the epilogue can time every widget without knowing its name.

The epilogue prints one line ``@@BENCH@@{json}`` that the runner parses. Chapters are
found generically: every notebook listed in ``_toc.yml``.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
import time
from typing import Any

import _common as C

MARK = "@@BENCH@@"

PRELUDE = r'''
import jax.monitoring as _bench_monitoring
_BENCH = {"compiles": 0, "compile_s": 0.0, "trace_s": 0.0, "lower_s": 0.0}
def _bench_listener(event, duration, *args, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        _BENCH["compiles"] += 1
        _BENCH["compile_s"] += duration
    elif event == "/jax/core/compile/jaxpr_trace_duration":
        _BENCH["trace_s"] += duration
    elif event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
        _BENCH["lower_s"] += duration
_bench_monitoring.register_event_duration_secs_listener(_bench_listener)
import dltheory.widgets as _bench_widgets
_BENCH_EXPLORERS = []
_bench_explorer_init = _bench_widgets.Explorer.__init__
def _bench_record_explorer(self, *args, **kwargs):
    _bench_explorer_init(self, *args, **kwargs)
    _BENCH_EXPLORERS.append(self)
_bench_widgets.Explorer.__init__ = _bench_record_explorer
'''

BOOK_EPILOGUE = r'''
import json as _bench_json
print("@@BENCH@@" + _bench_json.dumps({**_BENCH, "explorers": len(_BENCH_EXPLORERS)}))
'''


def toc_notebooks(root: pathlib.Path = C.ROOT) -> list[pathlib.Path]:
    """Every ``.ipynb`` listed in ``_toc.yml``, in reading order."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(node["file"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    paths = [root / (f if f.endswith(".ipynb") else f + ".ipynb") for f in found]
    return [p for p in paths if p.exists()]


def execute(path: pathlib.Path, *, env: dict[str, str], epilogue: str,
            timeout: int = 1200) -> dict[str, Any]:
    """Run ``path`` in a fresh kernel with the prelude and ``epilogue``; time every cell.

    Returns ``{"kernel_s", "cells_s" (the chapter's own cells), "prelude_s",
    "epilogue_s", "slowest" ((seconds, cell id) of the slowest chapter cell),
    "total_s" (kernel start to the chapter's last cell), "bench" (the parsed json)}``.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    n = len(nb.cells)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PRELUDE))
    nb.cells.append(nbformat.v4.new_code_cell(epilogue))
    saved = {k: os.environ.get(k) for k in list(env) + ["MPLBACKEND", *C.JAX_CACHE_VARS]}
    for k in C.JAX_CACHE_VARS:  # cold unless `env` names a compilation cache
        os.environ.pop(k, None)
    os.environ.update(env)
    os.environ.pop("MPLBACKEND", None)  # the kernel must use the inline backend
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        times = []
        t0 = time.perf_counter()
        with client.setup_kernel():
            kernel_s = time.perf_counter() - t0
            for i, cell in enumerate(nb.cells):
                c0 = time.perf_counter()
                client.execute_cell(cell, i)
                times.append(time.perf_counter() - c0)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    chapter = times[1:n + 1]
    ids = [c.get("id", str(i)) for i, c in enumerate(nb.cells[1:n + 1])]
    slowest = max(zip(chapter, ids)) if chapter else (0.0, "-")
    bench = None
    for out in nb.cells[-1].get("outputs", []):
        text = out.get("text", "")
        if MARK in text:
            bench = json.loads(text.split(MARK, 1)[1].splitlines()[0])
    if bench is None:
        raise RuntimeError(f"{path}: the benchmark epilogue printed nothing")
    return {"kernel_s": kernel_s, "prelude_s": times[0], "cells_s": sum(chapter),
            "epilogue_s": times[-1], "slowest": slowest,
            "total_s": kernel_s + sum(times[:n + 1]), "bench": bench}


SMOKE_NOTEBOOK = [
    "import dltheory\nprint(dltheory.describe())",
    "import jax, jax.numpy as jnp\nsquare = jax.jit(lambda x: x * x)\nsquare(jnp.ones(3))",
    "import numpy as np\n"
    "from dltheory import plotting\n"
    "from dltheory.widgets import choice, explore, slider\n"
    "def draw(a, kind, fig=None):\n"
    "    fig, ax = plotting.figure(width=3, height=2,\n"
    "                              reuse='detached' if fig is None else fig)\n"
    "    x = np.linspace(0, 1, 50)\n"
    "    ax.plot(x, np.asarray(square(a * jnp.asarray(x))) if kind == 'square' else a * x)\n"
    "    ax.set(xlabel='x', ylabel='y', title=f'a = {a:g}')\n"
    "    return fig\n"
    "explore(draw, a=slider(0.5, 2.0, num=3), kind=choice(['line', 'square']))",
]


def smoke_notebook() -> pathlib.Path:
    """A three-cell notebook with a jitted function and a widget, in a temporary folder."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in SMOKE_NOTEBOOK]
    folder = pathlib.Path(tempfile.mkdtemp(prefix="dltheory-bench-"))
    path = folder / "smoke.ipynb"
    nbformat.write(nb, path)
    return path


def label(path: pathlib.Path) -> str:
    try:
        return str(path.relative_to(C.ROOT))
    except ValueError:
        return path.name
