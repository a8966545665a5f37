"""Make pip constraints from the `pip freeze` of Google Colab's runtime.

Usage: python tools/colab_constraints.py FREEZE [OUT]

FREEZE is Colab's published `pip freeze` (e.g. pip-freeze.gpu.2026-08-19.txt); OUT
(default tools/colab/constraints.<date>.txt, the date taken from FREEZE's name) is a file
for `pip install -c OUT`: every pin PyPI can serve on Python 3.13 for a CPU, so that
`make test-colab` installs exactly the versions Colab has. Lines PyPI cannot serve are
dropped, with a comment saying which and why:

* direct references (``name @ file:...``, ``@ git+...``, ``@ https://...``);
* CUDA builds and packages that exist only for NVIDIA GPUs (the CPU wheels of jax and
  jaxlib stay: the CUDA plugin is what makes Colab's jax use its GPU);
* local versions such as ``torch==2.11.0+cu128`` (the CUDA wheel index, not PyPI);
* the RAPIDS stack's pins, whose CUDA-only members are dropped above.
"""

from __future__ import annotations

import pathlib
import re
import sys

#: names of packages that exist only for NVIDIA GPUs (CUDA builds, RAPIDS)
CUDA_ONLY = re.compile(
    r"^(nvidia-.*|cuda-.*|.*-cu1[12]|.*-cuda1[12]x?|jax-cuda\d+-.*|numba-cuda|nvtx|triton"
    r"|rapids-.*|ucxx-.*|distributed-ucxx-.*|dask-cuda|treelite)$", re.I)
#: the RAPIDS stack's pins of general packages (dask and its scheduler's dependencies):
#: Colab's versions are set by the RAPIDS wheels dropped above
RAPIDS_PINS = {"dask", "distributed", "sortedcontainers", "tblib", "zict"}


def convert(lines: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(kept pins, [(dropped line, why)]) for the lines of a `pip freeze`."""
    kept, dropped = [], []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if " @ " in line:
            dropped.append((line.split(" @ ")[0], "a direct reference, not on PyPI"))
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)$", line)
        if m is None:
            dropped.append((line, "not a name==version pin"))
            continue
        name, version = m.groups()
        if CUDA_ONLY.match(name):
            dropped.append((line, "CUDA only"))
        elif "+" in version:
            dropped.append((line, "a local (CUDA) build, not on PyPI"))
        elif name.lower() in RAPIDS_PINS:
            dropped.append((line, "pinned by the RAPIDS stack"))
        else:
            kept.append(f"{name}=={version}")
    return kept, dropped


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__)
        return 2
    freeze = pathlib.Path(argv[0])
    date = re.search(r"\d{4}-\d{2}-\d{2}", freeze.name)
    if date is None:
        print(f"FREEZE's name must carry its date (YYYY-MM-DD); got {freeze.name}")
        return 2
    out = pathlib.Path(argv[1]) if len(argv) == 2 else (
        pathlib.Path(__file__).parent / "colab" / f"constraints.{date.group()}.txt")
    kept, dropped = convert(freeze.read_text().splitlines())
    header = [f"# Google Colab's runtime of {date.group()} as pip constraints (Python 3.13, CPU).",
              f"# Made by tools/colab_constraints.py from {freeze.name}; do not edit by hand.",
              f"# {len(kept)} pins kept; {len(dropped)} lines dropped:"]
    header += [f"#   {line}  ({why})" for line, why in dropped]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header + kept) + "\n")
    print(f"wrote {out}: {len(kept)} pins, {len(dropped)} dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
