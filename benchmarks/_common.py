"""Helpers shared by the benchmark scripts: timing, statistics, tables, the machine.

Not a benchmark itself (the leading underscore keeps it out of ``make bench`` and the
smoke test). Every script prints Markdown: a ``## heading``, a note on what was measured,
and tables whose first column is ``figure``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: The environment variables of JAX's persistent compilation cache (``make`` sets them for
#: builds and tests). A cold measurement runs without them.
JAX_CACHE_VARS = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                  "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES")


def jax_cache_env(directory: str | pathlib.Path) -> dict[str, str]:
    """The environment that makes JAX keep every compiled program in ``directory``."""
    return {"JAX_COMPILATION_CACHE_DIR": str(directory),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def without_jax_cache(env: dict[str, str]) -> dict[str, str]:
    """``env`` without the persistent compilation cache (a cold run)."""
    return {k: v for k, v in env.items() if k not in JAX_CACHE_VARS}
# the scripts measure this checkout's package, not an installed copy
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))


def timed(fn: Callable[[], Any], repeats: int, *, warmup: int = 1,
          sync: Callable[[Any], Any] | None = None) -> tuple[list[float], list[float], Any]:
    """Wall and process-CPU seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls.

    ``sync(out)`` is called inside the timed region (``jax.block_until_ready``).
    Returns ``(wall, cpu, last_output)``.
    """
    out = None
    for _ in range(warmup):
        out = fn()
        if sync is not None:
            sync(out)
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        if sync is not None:
            sync(out)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu, out


def med(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def seconds(xs: Sequence[float] | float, digits: int = 3) -> str:
    """``median (min to max)`` in s or ms, whichever reads better."""
    xs = [xs] if isinstance(xs, (int, float)) else list(xs)
    m = med(xs)
    scale, unit = (1e3, "ms") if m < 1 else (1.0, "s")
    f = lambda v: f"{v * scale:.{digits}g}"  # noqa: E731
    if len(xs) == 1:
        return f"{f(m)} {unit}"
    return f"{f(m)} {unit} ({f(min(xs))} to {f(max(xs))})"


def ratio(num: Sequence[float], den: Sequence[float]) -> str:
    """Ratio of medians, with the spread from the extreme pairings."""
    r = med(num) / med(den)
    if len(num) == 1 and len(den) == 1:
        return f"{r:.3g}x"
    lo, hi = min(num) / max(den), max(num) / min(den)
    return f"{r:.3g}x ({lo:.3g} to {hi:.3g})"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def load() -> str:
    """The 1, 5 and 15 minute load averages and the number of CPUs."""
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"
    except OSError:  # pragma: no cover - not on Linux/macOS
        return f"{os.cpu_count()} CPUs"


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "flax", "optax", "numpy", "matplotlib", "torch"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except ImportError:
            out[name] = "not installed"
    return out


def machine() -> str:
    """One paragraph: the machine, the versions, the date and the load now."""
    commit = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    v = ", ".join(f"{k} {x}" for k, x in versions().items())
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{now}; {platform.system()} {platform.machine()}, {_cpu_model()}, "
            f"{os.cpu_count()} CPUs; {load()}; commit {commit}; {v}.")


def torch_or_none():
    """``torch`` if the optional ``bench`` extra is installed, else ``None``."""
    try:
        import torch
    except ImportError:
        return None
    return torch


TORCH_MISSING = ("PyTorch is not installed (it is the optional `bench` extra: "
                 "`pip install -e '.[bench]'`), so the PyTorch columns are skipped.")


def notebook_parser(doc: str, smoke_help: str) -> argparse.ArgumentParser:
    """The arguments of the scripts that execute the book's notebooks: the notebooks
    (default: every notebook of ``_toc.yml``) and ``--smoke``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=pathlib.Path,
                    help="notebooks to run (default: every notebook in _toc.yml)")
    ap.add_argument("--smoke", action="store_true", help=smoke_help)
    return ap
