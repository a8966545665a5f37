"""Engine versus straightforward code: the same math as a NumPy loop, a PyTorch loop
and dltheory's jit + lax.scan + vmap engine, checked equal, then timed.

Three experiments, each mirroring a chapter's (the math is written out here, so the
benchmark does not depend on the chapter modules):

- ``glrl``: gradient descent with a small step from a tiny initialization on the
  symmetric matrix-completion loss ``f(U) = ||P_Omega(U U^T - M*)||_F^2 / (4p)``, the
  greedy low-rank learning (GLRL) picture of Part III (Li, Luo, Lyu 2021). float64.
- ``margin``: full-batch gradient descent on the logistic loss of a bias-free two-layer
  Leaky ReLU network ``f(x) = a . leaky(W x)`` on separable data, the margin-maximization
  run of Part II (Lyu, Li 2020). float64.
- ``adam``: minibatch Adam on a 64-h-10 ReLU MLP on digits, over seeds, at a base batch
  size and at ``kappa`` times it with the square-root scaling rule (Malladi et al. 2022),
  the scaling-rule experiment of Part I. float32.

Each is run once (one seed) and as a sweep over ``--seeds`` seeds. The loops run the
seeds one after another (that is the straightforward code); the engine runs them as one
vmapped call (``dltheory.training.sweep``). All three get the same initial parameters
(drawn with JAX from the seed) and the same minibatches (the engine's own permutation,
precomputed for the loops outside their timed region, which favours the loops).

Usage: python benchmarks/loops.py [--repeats N] [--seeds S] [--smoke]
"""

from __future__ import annotations

import argparse
import functools
import sys

import _common as C  # noqa: E402  (puts this checkout's src/ on sys.path)

import jax

jax.config.update("jax_enable_x64", True)  # glrl and margin are float64 throughout

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from dltheory import data  # noqa: E402
from dltheory.training import optimizer, sweep, train  # noqa: E402

torch = C.torch_or_none()
if torch is not None:
    # One thread: these tensors are small, and PyTorch's default intra-op thread pool
    # spins when the machine is busy (we measured 26 ms per step of the margin loop on a
    # loaded 2-core machine with 2 threads, about 1 ms with 1). NumPy's BLAS and XLA's CPU
    # runtime get no such pinning; see the notes.
    torch.set_num_threads(1)


# --------------------------------------------------------------------------------------
# GLRL: symmetric matrix completion from a small initialization
# --------------------------------------------------------------------------------------

def glrl_problem(d: int, rank: int = 3, p: float = 0.5, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, rank)))
    m = (q * np.arange(rank, 0, -1.0)) @ q.T  # eigenvalues rank, ..., 1
    mask = np.triu(rng.random((d, d)) < p)
    mask = (mask | mask.T).astype(np.float64)
    return {"m": m, "mask": mask, "p": float(mask.mean())}


GLRL_INIT = 1e-3


def glrl_init(key, d):
    return GLRL_INIT * jax.random.normal(key, (d, d), jnp.float64)


def glrl_loss(u, prob):
    r = prob["mask"] * (u @ u.T - prob["m"])
    return jnp.sum(r * r) / (4 * prob["p"])


def glrl_numpy(u, prob, lr, steps, log_every):
    m, mask, p = prob["m"], prob["mask"], prob["p"]
    losses = []
    for k in range(steps + 1):
        r = mask * (u @ u.T - m)
        if k % log_every == 0:
            losses.append(np.sum(r * r) / (4 * p))
        if k == steps:
            break
        u = u - lr * (r @ u) / p  # grad of ||P(UU^T - M)||^2/(4p) is P(UU^T - M) U / p
    return np.array(losses), u


def glrl_torch(u, prob, lr, steps, log_every):
    m, mask = torch.from_numpy(prob["m"]), torch.from_numpy(prob["mask"])
    p = prob["p"]
    u = torch.tensor(u, requires_grad=True)
    opt = torch.optim.SGD([u], lr=lr)
    losses = []
    for k in range(steps + 1):
        r = mask * (u @ u.T - m)
        loss = (r * r).sum() / (4 * p)
        if k % log_every == 0:
            losses.append(loss.item())
        if k == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return np.array(losses), u.detach().numpy()


# --------------------------------------------------------------------------------------
# Margin: a bias-free two-layer Leaky ReLU network on the logistic loss
# --------------------------------------------------------------------------------------

ALPHA = 0.1  # Leaky ReLU slope


def margin_problem(n: int, d: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    y = np.sign(x @ w)
    keep = np.abs(x @ w) / np.linalg.norm(w) > 0.1  # a positive margin
    return {"x": x[keep], "y": y[keep]}


def margin_init(key, m, d):
    k1, k2 = jax.random.split(key)
    return {"w": jax.random.normal(k1, (m, d), jnp.float64) / np.sqrt(d),
            "a": jax.random.normal(k2, (m,), jnp.float64) / np.sqrt(m)}


def margin_loss(params, batch):
    z = batch["x"] @ params["w"].T
    f = jnp.where(z > 0, z, ALPHA * z) @ params["a"]
    return jnp.mean(jnp.logaddexp(0.0, -batch["y"] * f))


def margin_numpy(params, prob, lr, steps, log_every):
    w, a = params["w"], params["a"]
    x, y = prob["x"], prob["y"]
    n = len(y)
    losses = []
    for k in range(steps + 1):
        z = x @ w.T
        h = np.where(z > 0, z, ALPHA * z)
        yf = y * (h @ a)
        if k % log_every == 0:
            losses.append(np.mean(np.logaddexp(0.0, -yf)))
        if k == steps:
            break
        g = -y * np.exp(-np.logaddexp(0.0, yf)) / n  # d loss / d f = -y sigmoid(-y f) / n
        grad_a = h.T @ g
        grad_z = np.outer(g, a) * np.where(z > 0, 1.0, ALPHA)
        w, a = w - lr * (grad_z.T @ x), a - lr * grad_a
    return np.array(losses), {"w": w, "a": a}


def margin_torch(params, prob, lr, steps, log_every):
    x, y = torch.from_numpy(prob["x"]), torch.from_numpy(prob["y"])
    w = torch.tensor(params["w"], requires_grad=True)
    a = torch.tensor(params["a"], requires_grad=True)
    opt = torch.optim.SGD([w, a], lr=lr)
    zero = torch.zeros((), dtype=torch.float64)
    losses = []
    for k in range(steps + 1):
        z = x @ w.T
        f = torch.where(z > 0, z, ALPHA * z) @ a
        loss = torch.logaddexp(zero, -y * f).mean()
        if k % log_every == 0:
            losses.append(loss.item())
        if k == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return np.array(losses), {"w": w.detach().numpy(), "a": a.detach().numpy()}


# --------------------------------------------------------------------------------------
# Adam scaling rule: minibatch Adam on a digits MLP, over seeds
# --------------------------------------------------------------------------------------

def adam_init(key, h):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (64, h), jnp.float32) / np.float32(8.0),
            "b1": jnp.zeros((h,), jnp.float32),
            "w2": jax.random.normal(k2, (h, 10), jnp.float32) / np.float32(np.sqrt(h)),
            "b2": jnp.zeros((10,), jnp.float32)}


def adam_loss(params, batch):
    hid = jax.nn.relu(batch["x"] @ params["w1"] + params["b1"])
    logits = hid @ params["w2"] + params["b2"]
    picked = jnp.take_along_axis(logits, batch["y"][:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


def scaled_hparams(kappa: float) -> dict:
    """Square-root scaling rule for Adam (Malladi et al. 2022, Definition 4.2)."""
    base = {"lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8}
    # 0-d float32 arrays, not np.float32 scalars: optax.inject_hyperparams treats numpy
    # scalars as static, which breaks dltheory.training.optimizer (it injects them)
    f32 = lambda v: np.asarray(v, np.float32)  # noqa: E731
    return {"learning_rate": f32(base["lr"] * np.sqrt(kappa)),
            "b1": f32(1 - kappa * (1 - base["b1"])),
            "b2": f32(1 - kappa * (1 - base["b2"])),
            "eps": f32(base["eps"] / np.sqrt(kappa))}


def batch_indices(seed: int, n: int, batch: int, steps: int) -> np.ndarray:
    """The rows the engine's ``Minibatches.sample(key(seed), k)`` takes at steps 0..steps."""
    src = data.Minibatches.of({"i": jnp.arange(n)}, batch)
    key = jax.random.key(seed)
    return np.asarray(jax.vmap(lambda k: src.sample(key, k)["i"])(jnp.arange(steps + 1)))


def adam_numpy(params, ds, idx, hp, steps, log_every):
    x, y = ds["x"], ds["y"]
    lr, b1, b2, eps = (hp[k] for k in ("learning_rate", "b1", "b2", "eps"))
    p = {k: v.copy() for k, v in params.items()}
    mu = {k: np.zeros_like(v) for k, v in p.items()}
    nu = {k: np.zeros_like(v) for k, v in p.items()}
    losses = []
    for k in range(steps + 1):
        xb, yb = x[idx[k]], y[idx[k]]
        pre = xb @ p["w1"] + p["b1"]
        hid = np.maximum(pre, 0)
        logits = hid @ p["w2"] + p["b2"]
        top = logits.max(axis=1, keepdims=True)
        e = np.exp(logits - top)
        s = e.sum(axis=1, keepdims=True)
        if k % log_every == 0:
            losses.append(np.mean(np.log(s[:, 0]) + top[:, 0] - logits[np.arange(len(yb)), yb]))
        if k == steps:
            break
        g_logits = e / s
        g_logits[np.arange(len(yb)), yb] -= 1
        g_logits /= np.float32(len(yb))
        g_hid = (g_logits @ p["w2"].T) * (pre > 0)
        grads = {"w2": hid.T @ g_logits, "b2": g_logits.sum(0),
                 "w1": xb.T @ g_hid, "b1": g_hid.sum(0)}
        t = k + 1
        for name, g in grads.items():  # optax.adam
            mu[name] = b1 * mu[name] + (1 - b1) * g
            nu[name] = b2 * nu[name] + (1 - b2) * g * g
            mu_hat = mu[name] / (1 - b1 ** t)
            nu_hat = nu[name] / (1 - b2 ** t)
            p[name] = p[name] - lr * mu_hat / (np.sqrt(nu_hat) + eps)
    return np.array(losses), p


def adam_torch(params, ds, idx, hp, steps, log_every):
    x, y = torch.from_numpy(ds["x"]), torch.from_numpy(ds["y"].astype(np.int64))
    idx = torch.from_numpy(idx)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.Adam(list(p.values()), lr=float(hp["learning_rate"]),
                           betas=(float(hp["b1"]), float(hp["b2"])), eps=float(hp["eps"]))
    losses = []
    for k in range(steps + 1):
        xb, yb = x[idx[k]], y[idx[k]]
        hid = torch.relu(xb @ p["w1"] + p["b1"])
        loss = torch.nn.functional.cross_entropy(hid @ p["w2"] + p["b2"], yb)
        if k % log_every == 0:
            losses.append(loss.item())
        if k == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return np.array(losses), {k: v.detach().numpy() for k, v in p.items()}


# --------------------------------------------------------------------------------------
# Running, checking, timing
# --------------------------------------------------------------------------------------

def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def _param_rel(p, q) -> float:
    pl, ql = jax.tree.leaves(p), jax.tree.leaves(q)
    return max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
               / max(float(np.max(np.abs(np.asarray(b, np.float64)))), 1e-300)
               for a, b in zip(pl, ql))


def experiment(name: str, sizes: dict, seeds: int, repeats: int,
               single: bool = True) -> tuple[list, list, dict]:
    """Rows (timings), check rows (agreement) and raw times for one experiment.

    ``single=False`` skips the one-run timings (the smoke test: fewer compilations).
    """
    steps, log_every = sizes["steps"], sizes["log_every"]
    if name == "glrl":
        prob = glrl_problem(sizes["d"])
        batches = {k: jnp.asarray(v) for k, v in prob.items()}
        configs = [({"learning_rate": sizes["lr"]}, None)]
        # a new function object per size: the engine caches compiled code per function
        init, loss = functools.partial(glrl_init, d=sizes["d"]), glrl_loss
        loops = {"NumPy": lambda p0, hp, _s: glrl_numpy(p0, prob, hp["learning_rate"],
                                                        steps, log_every),
                 "PyTorch": lambda p0, hp, _s: glrl_torch(p0, prob, hp["learning_rate"],
                                                          steps, log_every)}
        opt_factory = optax.sgd
        batch_src = lambda hp: batches  # noqa: E731
    elif name == "margin":
        prob = margin_problem(sizes["n"], sizes["d"])
        batches = {k: jnp.asarray(v) for k, v in prob.items()}
        configs = [({"learning_rate": sizes["lr"]}, None)]
        init = functools.partial(margin_init, m=sizes["width"], d=sizes["d"])
        loss = margin_loss
        loops = {"NumPy": lambda p0, hp, _s: margin_numpy(p0, prob, hp["learning_rate"],
                                                          steps, log_every),
                 "PyTorch": lambda p0, hp, _s: margin_torch(p0, prob, hp["learning_rate"],
                                                            steps, log_every)}
        opt_factory = optax.sgd
        batch_src = lambda hp: batches  # noqa: E731
    else:
        ds = data.digits()
        dsn = {"x": np.asarray(ds.x_train), "y": np.asarray(ds.y_train)}
        b0 = sizes["batch"]
        configs = [(scaled_hparams(k), b0 * k) for k in sizes["kappas"]]
        idx_cache = {(s, b): batch_indices(s, len(dsn["y"]), b, steps)
                     for s in range(seeds) for _, b in configs}
        init, loss = functools.partial(adam_init, h=sizes["hidden"]), adam_loss
        loops = {"NumPy": lambda p0, hp, sb: adam_numpy(p0, dsn, idx_cache[sb], hp, steps,
                                                        log_every),
                 "PyTorch": lambda p0, hp, sb: adam_torch(p0, dsn, idx_cache[sb], hp, steps,
                                                          log_every)}
        opt_factory = optax.adam
        batch_src = lambda b: data.Minibatches.of(ds.train, b)  # noqa: E731
    if torch is None:
        loops.pop("PyTorch")

    inits = {s: jax.tree.map(np.asarray, init(jax.random.key(s))) for s in range(seeds)}

    def run_engine_one():
        hp, b = configs[0]
        return train(loss, init(jax.random.key(0)), optimizer(opt_factory, **hp),
                     steps=steps, batches=batch_src(b), key=0, log_every=log_every)

    def run_engine_sweep():
        outs = []
        for hp, b in configs:
            outs.append(sweep(loss, init, optimizer(opt_factory, **hp), steps=steps,
                              seeds=range(seeds), batches=batch_src(b), log_every=log_every))
        return outs

    def run_loop_one(fn):
        hp, b = configs[0]
        return fn(inits[0], hp, (0, b))

    def run_loop_sweep(fn):
        return [[fn(inits[s], hp, (s, b)) for s in range(seeds)] for hp, b in configs]

    sync = lambda out: jax.block_until_ready(out if isinstance(out, list) else out.metrics)  # noqa: E731
    times = {}
    t_first = [float("nan")]
    if single:
        t_first = C.timed(run_engine_one, 1, warmup=0, sync=sync)[0]
        times[("engine", 1)] = C.timed(run_engine_one, repeats, warmup=0,
                                       sync=lambda o: o.metrics)[0]
    t_first_sweep = C.timed(run_engine_sweep, 1, warmup=0,
                            sync=lambda o: [r.metrics for r in o])[0]
    times[("engine", seeds)], _, many = C.timed(run_engine_sweep, repeats, warmup=0,
                                                sync=lambda o: [r.metrics for r in o])
    loop_out = {}
    for lname, fn in loops.items():
        # one warm-up call: PyTorch imports parts of itself on the first optimizer step
        if single:
            times[(lname, 1)] = C.timed(lambda: run_loop_one(fn), repeats, warmup=1)[0]
        times[(lname, seeds)], _, loop_out[lname] = C.timed(lambda: run_loop_sweep(fn),
                                                            max(1, repeats // 2), warmup=0)

    # agreement: every seed and config of the sweep, the logged losses and final parameters
    checks = []
    for lname, out in loop_out.items():
        loss_err, param_err = 0.0, 0.0
        for c, res in enumerate(many):
            for s in range(seeds):
                losses, params = out[c][s]
                loss_err = max(loss_err, _rel(losses, res.metrics["loss"][s]))
                final = jax.tree.map(lambda a, s=s: a[s], res.params)
                param_err = max(param_err, _param_rel(params, final))
        checks.append((lname, loss_err, param_err))
    n_runs = seeds * len(configs)
    rows = []
    for lname in loops:
        if single:
            rows.append([f"{name}: {lname} / engine, 1 run", C.seconds(times[(lname, 1)]),
                         C.seconds(times[("engine", 1)]),
                         C.ratio(times[(lname, 1)], times[("engine", 1)])])
        rows.append([f"{name}: {lname} / engine, {n_runs} runs (sweep)",
                     C.seconds(times[(lname, seeds)]), C.seconds(times[("engine", seeds)]),
                     C.ratio(times[(lname, seeds)], times[("engine", seeds)])])
    extra = {"first_one": t_first[0], "first_sweep": t_first_sweep[0], "times": times,
             "n_runs": n_runs}
    return rows, checks, extra


SIZES = {
    # the sizes the chapters run at `quick` scale (GLRL: d = 20; two-layer margin: n = 40
    # points in d = 5, width 50; digits MLP of width 32 at base batch 4)
    "chapter": {
        "glrl": {"d": 20, "steps": 2000, "log_every": 20, "lr": 0.05},
        "margin": {"n": 40, "d": 5, "width": 50, "steps": 1000, "log_every": 10, "lr": 0.5},
        "adam": {"batch": 4, "hidden": 32, "kappas": (1, 4), "steps": 400, "log_every": 20},
    },
    # larger than the chapters, where a step's arithmetic starts to dominate its overhead
    "large": {
        "glrl": {"d": 30, "steps": 2000, "log_every": 50, "lr": 0.05},
        "margin": {"n": 200, "d": 20, "width": 100, "steps": 1000, "log_every": 50,
                   "lr": 0.5},
        "adam": {"batch": 32, "hidden": 64, "kappas": (1, 4), "steps": 400, "log_every": 20},
    },
    "smoke": {
        "glrl": {"d": 8, "steps": 40, "log_every": 10, "lr": 0.05},
        "margin": {"n": 30, "d": 20, "width": 16, "steps": 40, "log_every": 10, "lr": 0.5},
        "adam": {"batch": 16, "hidden": 16, "kappas": (1,), "steps": 20, "log_every": 10},
    },
    # a second smoke size, so the smoke test runs one experiment at two sizes in a process
    "smoke, other size": {
        "glrl": {"d": 6, "steps": 40, "log_every": 10, "lr": 0.05},
    },
}
# agreement tolerances (relative): float64 runs agree to rounding, float32 Adam to 1e-3
TOL = {"glrl": 1e-8, "margin": 1e-8, "adam": 1e-3}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    ap.add_argument("--only", choices=("glrl", "margin", "adam"), action="append")
    ap.add_argument("--sizes", choices=("chapter", "large"), action="append",
                    help="size sets to run (default: both)")
    args = ap.parse_args()
    size_sets = (["smoke", "smoke, other size"] if args.smoke
                 else (args.sizes or ["chapter", "large"]))
    repeats, seeds = (1, 2) if args.smoke else (args.repeats, args.seeds)

    print("## Engine versus straightforward loops\n")
    print(f"Median wall time over {repeats} repeats (range in brackets; the loop sweeps over "
          f"{max(1, repeats // 2)}), after compilation for the engine. {seeds} seeds per "
          f"sweep; the Adam experiment sweeps them at 2 batch sizes related by the "
          f"square-root rule. Two size sets: **chapter**, the sizes the chapters run at "
          f"`quick` scale, and **large**, bigger problems where a step's arithmetic "
          f"starts to outweigh its overhead. PyTorch runs with "
          f"{torch.get_num_threads() if torch else '-'} thread (see the notes). "
          f"{C.load()} at the start.\n")
    if torch is None:
        print(C.TORCH_MISSING + "\n")
    rows, check_rows, first_rows = [], [], []
    failed = []
    for size_set in size_sets:
        for name in args.only or ("glrl", "margin", "adam"):
            if name not in SIZES[size_set]:
                continue
            sizes = SIZES[size_set][name]
            label = f"{name} ({size_set})"
            r, checks, extra = experiment(name, sizes, seeds, repeats,
                                          single=not args.smoke)
            rows += [[f"{label}{row[0][len(name):]}", *row[1:]] for row in r]
            for lname, le, pe in checks:
                ok = max(le, pe) <= TOL[name]
                failed += [] if ok else [f"{label}/{lname}"]
                check_rows.append([f"{label}: {lname} vs engine", f"{le:.1e}", f"{pe:.1e}",
                                   f"{TOL[name]:.0e}", "yes" if ok else "**NO**"])
            t = extra["times"]
            one = [C.seconds(extra["first_one"]), C.seconds(t[("engine", 1)])] \
                if ("engine", 1) in t else ["-", "-"]
            first_rows.append([label, *one, C.seconds(extra["first_sweep"]),
                               C.seconds(t[("engine", seeds)])])
    print("Sizes: " + "; ".join(
        f"**{ss}**: " + ", ".join(f"{n} {SIZES[ss][n]}" for n in (args.only or SIZES[ss])
                                  if n in SIZES[ss])
        for ss in size_sets) + ".\n")
    print(C.table(["figure", "loop", "engine", "speedup (loop / engine)"], rows))
    print()
    print("Agreement over every seed of the sweep (max relative difference of the logged "
          "losses; of the final parameters, relative to their largest entry):\n")
    print(C.table(["figure", "losses", "parameters", "tolerance", "within"], check_rows))
    print()
    print("The engine's first call includes tracing and XLA compilation:\n")
    print(C.table(["figure", "1 run, first call", "1 run, compiled",
                   "sweep, first call", "sweep, compiled"], first_rows))
    if failed:
        print(f"\nDISAGREEMENT beyond tolerance: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
