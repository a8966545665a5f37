"""Widget latency: for every widget of every chapter, the time from a control change to
the redrawn figure, and the XLA compilations caused by moving each control.

Each notebook of ``_toc.yml`` is executed at quick scale in a fresh kernel (the live
widget path: ``DLTHEORY_STATIC_TWINS=0``), then an appended cell takes every
:class:`~dltheory.widgets.Explorer` the chapter created and, for each:

1. clears its figure cache and draws the default setting (the *first draw*);
2. moves each control through its whole range, the other controls at their defaults,
   timing every uncached ``Explorer.image(...)`` (what the live widget calls on a
   change: the chapter's computation, the drawing and the PNG encoding), in ``--rounds``
   rounds with the cache cleared between them;
3. counts XLA compilations during the moves (target 0) from ``jax.monitoring``;
4. for comparison, times a few of the same redraws through ``Figure.savefig`` (how
   ``widgets`` encoded a figure before) and checks both give the same pixels.

The CPU column is the kernel process's CPU time per redraw: on a machine shared with
other work it is closer than the wall time to what an idle machine would show.

Usage: python benchmarks/widget_latency.py [--rounds N] [--smoke] [NOTEBOOK ...]
"""

from __future__ import annotations

import statistics

import _common as C
import _nbexec as X

TARGET_S = 0.3
ENV = {"DLTHEORY_SCALE": "quick", "DLTHEORY_PROGRESS": "0", "DLTHEORY_STATIC_TWINS": "0"}

EPILOGUE = r'''
import io as _bio, json as _bjson, time as _btime
import numpy as _bnp
from PIL import Image as _BImage

def _bench_savefig_png(fig):
    buf = _bio.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()

def _bench_pixels(png):
    return _bnp.asarray(_BImage.open(_bio.BytesIO(png)).convert("RGBA"))

def _bench_explorer(ex, rounds):
    names = list(ex.controls)
    ex._cache.clear()
    c0 = _BENCH["compiles"]
    t0 = _btime.perf_counter()
    ex.image(**ex.default)
    first = _btime.perf_counter() - t0
    first_compiles = _BENCH["compiles"] - c0
    moves = []
    for name in names:
        for v in ex.controls[name].values:
            if v != ex.default[name]:
                moves.append({**ex.default, name: v})
    wall, cpu, per_control = [], [], {n: 0 for n in names}
    c0 = _BENCH["compiles"]
    for r in range(rounds):
        if r:
            ex._cache.clear()
            ex.image(**ex.default)
        for s in moves:
            p0, t0 = _btime.process_time(), _btime.perf_counter()
            ex.image(**s)
            wall.append(_btime.perf_counter() - t0)
            cpu.append(_btime.process_time() - p0)
    compiles = _BENCH["compiles"] - c0
    # per control: compilations while that control alone moves (cache cleared)
    for name in names:
        ex._cache.clear()
        c1 = _BENCH["compiles"]
        for v in ex.controls[name].values:
            ex.image(**{**ex.default, name: v})
        per_control[name] = _BENCH["compiles"] - c1
    # the old encoding path on a few of the same settings, and a pixel check
    old = []
    for s in moves[:: max(1, len(moves) // 5)][:5]:
        t0 = _btime.perf_counter()
        fig = ex.figure(**s)
        _bench_savefig_png(fig)
        old.append(_btime.perf_counter() - t0)
    fig = ex.figure(**ex.default)
    a = _bench_pixels(_bench_widgets._png(fig, close=False))
    b = _bench_pixels(_bench_savefig_png(fig))
    same = float((a == b).all(-1).mean()) if a.shape == b.shape else 0.0
    return {"title": ex.title or getattr(ex.fn, "__name__", "explorer"), "size": ex.size,
            "controls": {n: len(ex.controls[n].values) for n in names},
            "first": first, "first_compiles": first_compiles, "wall": wall, "cpu": cpu,
            "compiles": compiles, "per_control": per_control, "savefig": old,
            "same_pixels": same}

print("@@BENCH@@" + _bjson.dumps({**_BENCH, "widgets": [
    _bench_explorer(ex, ROUNDS) for ex in _BENCH_EXPLORERS]}))
'''


def main() -> None:
    ap = C.notebook_parser(__doc__, "a tiny generated notebook with one widget, one round")
    ap.add_argument("--rounds", type=int, default=2,
                    help="times each control is moved through its range")
    args = ap.parse_args()
    if args.smoke:
        notebooks, rounds = [X.smoke_notebook()], 1
    else:
        notebooks, rounds = args.notebooks or X.toc_notebooks(), args.rounds
    epilogue = f"ROUNDS = {int(rounds)}\n" + EPILOGUE
    print("## Widget latency\n")
    print(f"Every widget of every chapter, live path, quick scale: each control moved "
          f"through its range ({rounds} round(s), cache cleared), the others at their "
          f"defaults; median (range) of the uncached redraws after the first draw. "
          f"{C.load()} at the start.\n")
    rows, missed = [], []
    for p in notebooks:
        res = X.execute(p, env=ENV, epilogue=epilogue)
        for w in res["bench"]["widgets"]:
            med = statistics.median(w["wall"])
            ok = med < TARGET_S and w["compiles"] == 0
            if not ok:
                missed.append(f"{w['title']}: median {med:.3f} s "
                              f"({med / TARGET_S:.2f}x the target), {w['compiles']} compiles")
            per = ", ".join(f"{n}: {c}" for n, c in w["per_control"].items())
            rows.append([f"{X.label(p)}: {w['title']}", w["size"], len(w["wall"]),
                         C.seconds(w["wall"]), C.seconds(w["cpu"]),
                         C.seconds(w["savefig"]) + f" ({C.med(w['savefig']) / med:.2f}x)",
                         C.seconds(w["first"]), f"{w['compiles']} ({per})",
                         f"{100 * w['same_pixels']:.1f}%", "yes" if ok else "**no**"])
    if not rows:
        print("No widgets found in the notebooks.")
        return
    print(C.table(["figure", "settings", "redraws", "update (wall)", "update (CPU)",
                   "savefig path (its / ours)", "first draw", "compiles moving (per control)",
                   "pixels as savefig", "target met"], rows))
    print(f"\nTarget: median update under {TARGET_S} s after the first draw, 0 compiles. "
          + ("Met by every widget." if not missed else "Missed: " + "; ".join(missed) + "."))


if __name__ == "__main__":
    main()
