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
   ``widgets`` encoded a figure before) and checks both give the same pixels;
5. the live path as a reader meets it: a new live widget (its first draw), the
   background rendering of the other settings that showing it starts
   (:meth:`~dltheory.widgets.Explorer.start_prerender`; its time is reported), then
   every control moved through its range on the widget itself, timing each move from
   setting the control's value to the new image in the widget (median and 95th
   percentile; targets 50 ms and 150 ms).

The CPU column is the kernel process's CPU time per redraw: on a machine shared with
other work it is closer than the wall time to what an idle machine would show.

Usage: python benchmarks/widget_latency.py [--rounds N] [--smoke] [NOTEBOOK ...]
"""

from __future__ import annotations

import statistics

import _common as C
import _nbexec as X

TARGET_S = 0.3  # the uncached redraw (the chapter's computation, drawing, encoding)
TARGET_LIVE_MEDIAN_S = 0.05  # a move on the shown widget, after its background rendering
TARGET_LIVE_P95_S = 0.15
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
    ex.stop_prerender()  # showing the widget started it; these redraws are timed uncached
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
    live = _bench_live(ex)
    return {"live": live, "title": ex.title or getattr(ex.fn, "__name__", "explorer"), "size": ex.size,
            "controls": {n: len(ex.controls[n].values) for n in names},
            "first": first, "first_compiles": first_compiles, "wall": wall, "cpu": cpu,
            "compiles": compiles, "per_control": per_control, "savefig": old,
            "same_pixels": same}

def _bench_live(ex):
    """A new live widget: first draw, background rendering, then moves on the widget."""
    import threading as _bthreading
    ex.stop_prerender()
    ex._cache.clear()
    ex._failed.clear()
    ex._thread, ex._widget, ex._shown = None, None, None
    ex.prerendered = _bthreading.Event()
    t0 = _btime.perf_counter()
    box = ex.widget()                       # draws the default setting
    first = _btime.perf_counter() - t0
    t0 = _btime.perf_counter()
    thread = ex.start_prerender()           # what showing the widget starts
    if thread is not None:
        thread.join()
    prerender = _btime.perf_counter() - t0 if thread is not None else None
    inputs = box._dltheory_inputs
    moves, cached = [], []
    for name in ex.controls:
        for v in ex.controls[name].values:
            if v == inputs[name].value:
                continue
            t0 = _btime.perf_counter()
            inputs[name].value = v              # the observer redraws the image
            moves.append(_btime.perf_counter() - t0)
            cached.append(bool(ex.last_update_cached))
        inputs[name].value = ex.controls[name].default
    return {"first": first, "prerender": prerender, "moves": moves,
            "cached": sum(cached), "settings_rendered": len(ex._cache)}

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
    rows, missed, live = [], [], []
    for p in notebooks:
        res = X.execute(p, env=ENV, epilogue=epilogue)
        for w in res["bench"]["widgets"]:
            live.append((f"{X.label(p)}: {w['title']}", w["live"]))
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
    print(f"\nTarget: median uncached update under {TARGET_S} s after the first draw, 0 "
          f"compiles. " + ("Met by every widget." if not missed else
                           "Missed: " + "; ".join(missed) + "."))
    print("\n### The shown widget: moves after the background rendering\n")
    print("A new live widget per explorer: its first draw, the background rendering of "
          "the other settings that showing it starts (the reader can read or run cells "
          "meanwhile), then every control moved through its range on the widget, timed "
          "from setting the control to the new image.\n")
    live_rows, live_missed = [], []
    for label, w in live:
        m = w["moves"]
        med, p95 = statistics.median(m), _percentile(m, 95)
        ok = med < TARGET_LIVE_MEDIAN_S and p95 < TARGET_LIVE_P95_S
        if not ok:
            live_missed.append(f"{label}: median {1e3 * med:.0f} ms, 95th percentile "
                               f"{1e3 * p95:.0f} ms")
        pre = "not started" if w["prerender"] is None else f"{w['prerender']:.2f} s"
        live_rows.append([label, len(m), C.seconds(w["first"]), pre,
                          f"{w['cached']} of {len(m)}", f"{1e3 * med:.1f} ms",
                          f"{1e3 * p95:.1f} ms", f"{1e3 * max(m):.1f} ms",
                          "yes" if ok else "**no**"])
    print(C.table(["figure", "moves", "first draw", "background rendering (all settings)",
                   "moves found rendered", "median move", "95th percentile", "slowest move",
                   "target met"], live_rows))
    print(f"\nTarget: median move under {1e3 * TARGET_LIVE_MEDIAN_S:.0f} ms, 95th percentile "
          f"under {1e3 * TARGET_LIVE_P95_S:.0f} ms. " + (
              "Met by every widget." if not live_missed else
              "Missed: " + "; ".join(live_missed) + "."))


def _percentile(xs, q: float) -> float:
    """The ``q``-th percentile of ``xs`` (linear interpolation, as numpy's default)."""
    import numpy as np

    return float(np.percentile(np.asarray(xs, dtype=float), q))


if __name__ == "__main__":
    main()
