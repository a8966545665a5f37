"""Execute the book's notebooks in parallel, into the cache that `jupyter-book build` reads.

Jupyter Book 1 executes notebooks one after another, and one chapter keeps about one
CPU core busy. This script executes every notebook of `_toc.yml` that the cache does not
hold yet, one process per core (jupyter-cache's `local-parallel` executor), so the build
that follows finds them all cached. Environment variables (DLTHEORY_SCALE,
DLTHEORY_PROGRESS, DLTHEORY_STATIC_TWINS) reach the kernels as in the build.

Usage: python tools/execute_notebooks.py [--cache DIR]   (exit status 1 if a notebook fails)

``--cache`` executes into another jupyter cache than the build's (the benchmarks time a
cold book with an empty one).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def toc_notebooks() -> list[pathlib.Path]:
    files = re.findall(r"^\s*-?\s*file:\s*(\S+)\s*$", (ROOT / "_toc.yml").read_text(), re.M)
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def main() -> int:
    from jupyter_cache import get_cache
    from jupyter_cache.executors import load_executor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=pathlib.Path, default=None,
                    help="jupyter cache folder (default: the one _config.yml names)")
    args = ap.parse_args()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]
    cache = get_cache(str(args.cache if args.cache else ROOT / config["cache"]))
    notebooks = [str(p) for p in toc_notebooks()]
    for uri in notebooks:
        cache.add_nb_to_project(uri)
    t0 = time.perf_counter()
    result = load_executor("local-parallel", cache).run_and_cache(
        filter_uris=notebooks, timeout=config.get("timeout", 600), allow_errors=False)
    seconds = time.perf_counter() - t0
    failed = list(result.excepted) + list(result.errored)
    for uri in failed:
        record = cache.get_project_record(uri)
        print(f"FAILED {uri}\n{record.traceback or ''}", file=sys.stderr)
    print(f"executed {len(result.succeeded)} notebook(s) in {seconds:.0f} s "
          f"({len(notebooks) - len(result.succeeded) - len(failed)} already cached, "
          f"{len(failed)} failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
