"""The drift guard: compare every number the chapters glue with its known-good value.

The known-good values live in ``book/numbers.json``: for each chapter, each glued name
with its value and, where the default does not fit, its own tolerance. A build whose
numbers moved fails with a table of what moved and by how much; when a change is meant
(a new experiment, a better estimator), accept the new values deliberately.

    python tools/check_numbers.py                 compare the book's build (its jupyter cache)
    python tools/check_numbers.py --dumps DIR     compare the values a run dumped into DIR
                                                  (DLTHEORY_GLUE_DIR, as the Colab job does)
    python tools/check_numbers.py --accept        write the build's values as the new
                                                  known-good ones (`make accept-numbers`)

Rules. A number passes when ``|new - old| <= atol + rtol |old|`` (default rtol 0.1,
atol 0); a value below ``tiny`` (1e-6) in magnitude, a rounding-level residual, passes
while it stays within a factor 10 of the known one or below ``tiny``; text must match
exactly. Values that measure the machine rather than the mathematics (seconds, cores)
are listed in ``volatile`` and not compared. A name missing on either side fails.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import pathlib
import re
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
KNOWN = ROOT / "book" / "numbers.json"
DEFAULTS = {"rtol": 0.1, "atol": 0.0, "tiny": 1e-6}
VOLATILE_DEFAULT = ["budget_seconds", "budget_cores", "elapsed"]

sys.path.insert(0, str(ROOT / "tools"))


def parse_plain(text: str) -> Any:
    """A glued value from its ``text/plain`` form (``0.5``, ``'yes'``, ``np.float64(2.0)``)."""
    text = text.strip()
    m = re.fullmatch(r"np\.\w+\((.*)\)", text)
    if m:
        text = m.group(1)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def chapter_of(nb: pathlib.Path) -> str:
    return nb.relative_to(ROOT / "book").with_suffix("").as_posix()


def from_cache(cache: pathlib.Path | None = None) -> dict[str, dict[str, Any]]:
    """chapter -> {name: value} from the executed notebooks in the book's jupyter cache."""
    import yaml
    import colab_edition as ce

    if cache is None:
        cache = ROOT / yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["cache"]
    out = {}
    for nb in ce.chapter_notebooks(ROOT):
        merged = ce.executed_notebook(nb, cache)
        # Markdown glued with glue_markdown is compared as its text (its text/plain is a repr)
        out[chapter_of(nb)] = {k: v["text/markdown"] if "text/markdown" in v
                               else parse_plain(v["text/plain"])
                               for k, v in ce.glue_data(merged).items()
                               if "text/markdown" in v or "text/plain" in v}
    return out


def from_dumps(folder: pathlib.Path) -> dict[str, dict[str, Any]]:
    """chapter -> {name: value} from the JSON files a run wrote into DLTHEORY_GLUE_DIR."""
    out = {}
    for f in sorted(folder.glob("*.json")):
        data = json.loads(f.read_text())
        out[data["chapter"]] = data["values"]
    return out


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def compare(known: dict, fresh: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """Rows ``(chapter, name, known, now, why)`` for every value that moved."""
    defaults = {**DEFAULTS, **known.get("defaults", {})}
    volatile = set(known.get("volatile", VOLATILE_DEFAULT))
    moved = []
    for chapter, entries in known["chapters"].items():
        if chapter not in fresh:
            if not entries:      # a page that glues nothing (and may not have run)
                continue
            moved.append((chapter, "*", "", "", "chapter missing from this build"))
            continue
        now = fresh[chapter]
        for name, entry in entries.items():
            old = entry["value"]
            if name not in now:
                moved.append((chapter, name, repr(old), "", "no longer glued"))
                continue
            new = now[name]
            ok, why = close(old, new, {**defaults, **entry})
            if not ok:
                moved.append((chapter, name, _fmt(old), _fmt(new), why))
        for name in sorted(set(now) - set(entries) - volatile):
            if not name.startswith("ledger-"):
                moved.append((chapter, name, "", _fmt(now[name]), "new: not in the known values"))
    for chapter in sorted(set(fresh) - set(known["chapters"])):
        if set(fresh[chapter]) - volatile:
            moved.append((chapter, "*", "", f"{len(fresh[chapter])} values",
                          "new chapter: none of its values are known (make accept-numbers)"))
    return moved


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def close(old: Any, new: Any, tol: dict) -> tuple[bool, str]:
    a, b = _num(old), _num(new)
    if isinstance(old, str) and isinstance(new, str):
        # text compares exactly, except the numbers in it, which get the numbers' tolerance
        if NUMBER.sub("#", old) != NUMBER.sub("#", new):
            return False, "text changed"
        for x, y in zip(NUMBER.findall(old), NUMBER.findall(new)):
            ok, why = close(float(x), float(y), tol)
            if not ok:
                return False, f"a number in the text {why}"
        return True, ""
    if a is None or b is None:
        return (old == new, "type changed")
    if not math.isfinite(b):
        return (False, "not finite")
    tiny = tol["tiny"]
    if abs(a) < tiny:
        ok = abs(b) < tiny or abs(b) <= 10 * abs(a)
        return ok, f"rounding-level value grew past {tiny:g} and 10x the known one"
    diff = abs(b - a)
    ok = diff <= tol["atol"] + tol["rtol"] * abs(a)
    return ok, f"moved {diff / abs(a):.1%} (allowed {tol['rtol']:.0%}" + (
        f" + {tol['atol']:g})" if tol["atol"] else ")")


def _fmt(x: Any) -> str:
    return f"{x:.6g}" if _num(x) is not None else repr(x)


def table(rows) -> str:
    head = ("chapter", "name", "known", "now", "why")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def accept(fresh: dict[str, dict[str, Any]], known: dict | None) -> dict:
    """The known-good file for ``fresh``, keeping each name's own tolerance."""
    known = known or {"scale": "quick", "defaults": DEFAULTS, "volatile": VOLATILE_DEFAULT,
                      "chapters": {}}
    volatile = set(known.get("volatile", VOLATILE_DEFAULT))
    chapters = {}
    for chapter, values in fresh.items():
        old = known["chapters"].get(chapter, {})
        chapters[chapter] = {}
        for name, value in values.items():
            if name in volatile or name.startswith("ledger-"):
                continue
            entry = {k: v for k, v in old.get(name, {}).items() if k != "value"}
            chapters[chapter][name] = {"value": value, **entry}
    return {**known, "chapters": chapters}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dumps", type=pathlib.Path, help="folder of DLTHEORY_GLUE_DIR dumps")
    ap.add_argument("--known", type=pathlib.Path, default=KNOWN)
    ap.add_argument("--accept", action="store_true", help="write the new known-good values")
    args = ap.parse_args(argv)
    fresh = from_dumps(args.dumps) if args.dumps else from_cache()
    known = json.loads(args.known.read_text()) if args.known.exists() else None
    if args.accept:
        scales = {v.get("claims-scale") for v in fresh.values()} - {None}
        if scales - {"quick"}:
            print(f"this build ran at the {'/'.join(sorted(scales))} scale; the known values are "
                  "those of the quick scale (build with DLTHEORY_SCALE=quick)", file=sys.stderr)
            return 1
        args.known.write_text(json.dumps(accept(fresh, known), indent=1, sort_keys=False) + "\n")
        print(f"wrote {sum(map(len, fresh.values()))} values of {len(fresh)} chapters to "
              f"{args.known}")
        return 0
    if known is None:
        print(f"no known-good values at {args.known}: run `make accept-numbers`", file=sys.stderr)
        return 1
    scales = {v.get("claims-scale") for v in fresh.values()} - {None}
    want = known.get("scale", "quick")
    if scales and scales != {want}:
        print(f"drift guard: this build ran at the {'/'.join(sorted(scales))} scale; the known "
              f"values are those of the {want} scale, so nothing was compared")
        return 0
    moved = compare(known, fresh)
    n = sum(len(v) for v in known["chapters"].values())
    if moved:
        print(f"{len(moved)} of {n} glued values moved from book/numbers.json:\n\n"
              f"{table(moved)}\n\nIf the change is meant, accept it with `make accept-numbers` "
              "and say why in the commit.", file=sys.stderr)
        return 1
    print(f"drift guard: all {n} glued values of {len(known['chapters'])} chapters within "
          "their tolerances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
