"""Run every benchmark and write ``benchmarks/RESULTS.md`` (what ``make bench`` runs).

Each script runs in its own process, one after another (so they do not compete for the
CPU), and prints a Markdown section; this script adds the machine, the versions, the
date and the load before and after, and appends ``benchmarks/NOTES.md`` (the
hand-written reading of the numbers: which targets are missed, by how much, and why).

Usage: python benchmarks/run_all.py [--smoke] [--only NAME ...] [--output PATH]
       python benchmarks/run_all.py --only NAME [--only NAME ...] --replace
       python benchmarks/run_all.py --notes-only   (after editing NOTES.md)
       [-- extra arguments are not forwarded; run a script alone to pass its own]
"""

from __future__ import annotations

import argparse
import pathlib
import re
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


def replace_sections(text: str, sections: list[tuple[str, str, float, int]]) -> str:
    """``text`` (a results file) with the sections of the scripts in ``sections`` replaced
    by their new output; each says it was re-run, when, and under what load."""
    for name, out, seconds, rc in sections:
        trailer = re.search(rf"^_`benchmarks/{re.escape(name)}\.py` ran in .*$", text, re.M)
        if trailer is None:
            raise SystemExit(f"the results file has no section of {name}.py to replace")
        # the section starts after the previous section's trailer line (or the header)
        before = [m.end() for m in re.finditer(r"^_`benchmarks/.*$", text[:trailer.start()],
                                               re.M)]
        start = before[-1] if before else text.index("\n## ")
        status = "" if rc == 0 else f" **(exit status {rc}: see its stderr)**"
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        block = (f"\n\n{out.strip()}\n\n_`benchmarks/{name}.py` ran in {seconds:.0f} s"
                 f"{status}; re-run alone at {when} (`run_all.py --only {name} --replace`), "
                 f"{C.load()} after it._")
        text = text[:start] + block + text[trailer.end():]
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="every script at tiny sizes")
    ap.add_argument("--only", choices=SCRIPTS, action="append")
    ap.add_argument("--output", type=pathlib.Path, default=HERE / "RESULTS.md")
    ap.add_argument("--replace", action="store_true",
                    help="with --only: re-run those scripts and replace their sections in "
                         "the existing results file, keeping the others")
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
    if args.replace:
        args.output.write_text(replace_sections(args.output.read_text(), sections))
        print(f"replaced {', '.join(n for n, *_ in sections)} in {args.output}",
              file=sys.stderr)
        return 1 if failed else 0
    notes_path = HERE / "NOTES.md"
    notes = notes_path.read_text() if notes_path.exists() and not args.smoke else ""
    args.output.write_text(render(machine, load_before, C.load(), sections, notes))
    print(f"wrote {args.output}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
