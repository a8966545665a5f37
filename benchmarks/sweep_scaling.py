"""Sweep scaling: a sweep of 1, 4, 16, 64 seeds relative to one run of the same problem.

Two problems, both after compilation:

- small: the Preliminaries quadratic (3 parameters, 400 steps of GD): one step is a
  few flops, so a run is all fixed cost (dispatch, loop overhead) and a vmapped sweep
  should cost little more than one run;
- compute-bound: full-batch Adam on digits with a 64-128-128-10 MLP (1,437 examples):
  one step is ~2 x 10^8 flops, so a sweep should cost about as many runs as it has
  seeds (vmap saves the overhead, not the arithmetic).

``train`` is the single run; ``sweep(seeds=range(S))`` the S-seed sweep, including its
grid initialization. Usage: python benchmarks/sweep_scaling.py [--repeats N] [--smoke]
"""

from __future__ import annotations

import argparse

import _common as C  # noqa: F401  (puts this checkout's src/ on sys.path)

import jax
import numpy as np
import optax
from flax import nnx

from dltheory import data, models
from dltheory import preliminaries as P
from dltheory.training import optimizer, sweep, train


def _quad_init(key):
    return jax.random.normal(key, (3,))


def _ce(model, batch):
    return models.cross_entropy(model(batch["x"]), batch["y"])


_WIDTH = [128]


def _mlp_init(key):
    w = _WIDTH[0]
    return models.MLP((64, w, w, 10), rngs=nnx.Rngs(params=key))


def problem(name: str, steps: int):
    if name == "small":
        h = data.quadratic((0.5, 1.5, 4.0), rotate=True)
        return P.quadratic_loss, _quad_init, optimizer(optax.sgd, learning_rate=0.3), h, steps
    ds = data.digits()
    return _ce, _mlp_init, optimizer(optax.adam, learning_rate=1e-3), ds.train, steps


def measure(name: str, seeds: list[int], steps: int, repeats: int):
    loss, init, opt, batches, steps = problem(name, steps)
    log_every = max(1, steps // 10)
    one = lambda: train(loss, init(jax.random.key(0)), opt, steps=steps,  # noqa: E731
                        batches=batches, log_every=log_every)
    base, _, _ = C.timed(one, repeats, warmup=1, sync=lambda r: r.metrics)
    rows = [[f"{name}: 1 run (`train`)", C.seconds(base), "1", "-"]]
    for s in seeds:
        fn = lambda s=s: sweep(loss, init, opt, steps=steps, seeds=range(s),  # noqa: E731
                               batches=batches, log_every=log_every)
        t, _, res = C.timed(fn, repeats, warmup=1,
                            sync=lambda r: jax.block_until_ready(r.metrics))
        assert np.all(np.isfinite(res.metrics["loss"]))
        rows.append([f"{name}: sweep of {s}", C.seconds(t), C.ratio(t, base),
                     f"{C.med(t) / C.med(base) / s:.3g}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    args = ap.parse_args()
    if args.smoke:
        seeds, repeats, small_steps, big_steps = [2], 1, 20, 4
        _WIDTH[0] = 16
    else:
        seeds, repeats, small_steps, big_steps = [1, 4, 16, 64], args.repeats, 400, 40
    print("## Sweep scaling\n")
    print(f"Median wall time over {repeats} repeats after compilation (range in brackets); "
          f"ratios of medians to the single run measured in the same process (range: "
          f"extreme pairings). Small: the Preliminaries quadratic, {small_steps} GD steps. "
          f"Compute-bound: full-batch Adam, 64-{_WIDTH[0]}-{_WIDTH[0]}-10 MLP on digits, "
          f"{big_steps} steps. {jax.device_count()} device(s); {C.load()} at the start.\n")
    rows = measure("small", seeds, small_steps, repeats) + \
        measure("compute-bound", seeds, big_steps, repeats)
    print(C.table(["figure", "time", "relative to 1 run", "per seed, relative to 1 run"],
                  rows))


if __name__ == "__main__":
    main()
