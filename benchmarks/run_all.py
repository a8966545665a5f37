"""Run every benchmark and write ``benchmarks/RESULTS.md`` (what ``make bench`` runs).

Each script runs in its own process, one after another (so they do not compete for the
CPU), and prints a Markdown section; this script adds the machine, the versions, the
date and the load before and after, and appends ``benchmarks/NOTES.md`` (the
hand-written reading of the numbers: which targets are missed, by how much, and why).

Usage: python benchmarks/run_all.py [--smoke] [--only NAME ...] [--output PATH]
       python benchmarks/run_all.py --notes-only   (after editing NOTES.md)
       [-- extra arguments are not forwarded; run a script alone to pass its own]
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import time

import _common as C

HERE = pathlib.Path(__file__).resolve().parent
#: the benchmark scripts, in the order of the issue's figures
SCRIPTS = ("book", "widget_latency", "loops", "sweep_scaling", "engine")


def render(machine: str, load_before: str, load_after: str,
           sections: list[tuple[str, str, float, int]], notes: str) -> str:
    """The RESULTS.md text: header, one section per script, then the notes."""
    out = ["# Benchmark results", "",
           "Written by `make bench` (`benchmarks/run_all.py`); do not edit by hand: the "
           "reading of the numbers is `benchmarks/NOTES.md`, appended at the end.", "",
           f"**Machine.** {machine}", "",
           f"**Load.** Before: {load_before}. After: {load_after}. Absolute times are "
           "inflated by whatever else runs on the machine; ratios measured within one "
           "script are more robust.", ""]
    for name, text, seconds, rc in sections:
        out.append(text.strip() if text.strip() else f"## {name}")
        out.append("")
        status = "" if rc == 0 else f" **(exit status {rc}: see its stderr)**"
        out.append(f"_`benchmarks/{name}.py` ran in {seconds:.0f} s{status}._")
        out.append("")
    if notes.strip():
        out += [notes.strip(), ""]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="every script at tiny sizes")
    ap.add_argument("--only", choices=SCRIPTS, action="append")
    ap.add_argument("--output", type=pathlib.Path, default=HERE / "RESULTS.md")
    ap.add_argument("--notes-only", action="store_true",
                    help="run nothing: replace the notes at the end of the results file "
                         "with benchmarks/NOTES.md as it is now")
    args = ap.parse_args()
    if args.notes_only:
        text = args.output.read_text()
        notes = (HERE / "NOTES.md").read_text().strip()
        head = notes.splitlines()[0]
        if head not in text:
            raise SystemExit(f"{args.output} has no notes section starting {head!r}")
        args.output.write_text(text[:text.index(head)] + notes + "\n")
        print(f"rewrote the notes of {args.output}", file=sys.stderr)
        return 0
    load_before = C.load()
    machine = C.machine()
    sections, failed = [], []
    for name in args.only or SCRIPTS:
        cmd = [sys.executable, str(HERE / f"{name}.py")] + (["--smoke"] if args.smoke else [])
        print(f"running {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=C.ROOT)
        seconds = time.perf_counter() - t0
        if proc.returncode:
            failed.append(name)
            sys.stderr.write(proc.stderr[-4000:])
        print(f"  {name}: {seconds:.0f} s", file=sys.stderr, flush=True)
        sections.append((name, proc.stdout, seconds, proc.returncode))
    notes_path = HERE / "NOTES.md"
    notes = notes_path.read_text() if notes_path.exists() and not args.smoke else ""
    args.output.write_text(render(machine, load_before, C.load(), sections, notes))
    print(f"wrote {args.output}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
