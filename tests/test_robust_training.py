"""dltheory.normalization.robust: relative clipping, Lemma 2.4's scalings, and SGD with
weight decay from any initial scale or loss scale (Li et al. 2022, arXiv:2202.00980)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from dltheory import claims
from dltheory import data as D
from dltheory.compat import enable_x64
from dltheory.exercises import check
from dltheory.normalization import robust as R
from dltheory.training import optimizer, train


def _numpy_robust_sgd(w, data, batches, eta, wd, ratio, k=1.0):
    """The recipe written out in numpy with the analytic gradient of the toy loss."""
    path, clipped = [w.copy()], 0
    for idx in batches:
        x, y = data["x"][idx], data["y"][idx]
        n = np.linalg.norm(w)
        u = w / n
        s = 1 / (1 + np.exp(4 * y * (x @ u)))            # sigmoid(-4 y <x, u>)
        du = np.mean((-4 * y * s)[:, None] * x, axis=0) * k
        g = (du - u * (u @ du)) / n                        # projected, divided by |w|
        if ratio > 0 and np.linalg.norm(g) > ratio * n:
            g, clipped = g * ratio * n / np.linalg.norm(g), clipped + 1
        w = w - eta * (g + wd * w)
        path.append(w.copy())
    return np.array(path), clipped


def test_robust_sgd_matches_a_numpy_loop_with_clipping():
    eta, wd, steps = 0.5, 0.05, 150
    ratio = R.clip_ratio(eta, wd)
    with enable_x64(True):
        data = R.toy_data(n=40)
        w0 = 0.2 * np.random.default_rng(1).standard_normal(20)
        src = D.Minibatches.of(data, 10)
        opt = optimizer(R.robust_sgd, learning_rate=eta, weight_decay=wd, clip_ratio=ratio,
                        loss_scale=3.0)
        res = train(R.toy_loss, jnp.asarray(w0), opt, steps=steps, key=0, batches=src,
                    metrics=lambda w, _: {"w": w})
        # the same minibatches, read back from the source
        import jax
        key = jax.random.key(0)
        idx = [np.asarray(src.sample(key, jnp.asarray(t))["x"]) for t in range(steps)]
    rows = [[int(np.nonzero((data["x"] == r).all(axis=1))[0][0]) for r in b] for b in idx]
    ref, clipped = _numpy_robust_sgd(w0, data, rows, eta, wd, ratio, k=3.0)
    assert 0 < clipped < steps
    assert int(R.clipped_steps(res.opt_state)) == clipped
    np.testing.assert_allclose(res["w"], ref, rtol=1e-10, atol=1e-12)


def test_clip_ratio_recovery_steps_and_a_clip_that_is_off():
    assert R.clip_ratio(0.1, 0.05) == pytest.approx(math.sqrt(2 * 4 * 0.05 / 0.1))
    assert R.recovery_steps(100.0, 0.1, 0.05) == pytest.approx(
        math.log(100) / -math.log(1 - 0.005))
    assert R.recovery_steps(0.5, 0.1, 0.05) == 0.0
    tx = R.relative_clip(0.0)
    g = {"w": jnp.array([3.0, 4.0])}
    out, st = tx.update(g, tx.init(g), {"w": jnp.array([1e-6, 0.0])})
    np.testing.assert_allclose(out["w"], g["w"])
    assert int(st.clipped) == 0
    tx = R.relative_clip(2.0)
    out, st = tx.update(g, tx.init(g), {"w": jnp.array([1.0, 0.0])})
    np.testing.assert_allclose(out["w"], [1.2, 1.6], rtol=1e-6)   # |g| = 5 -> 2 |w| = 2
    assert int(st.clipped) == 1


def test_claim_lemma_scalings_reproduce_the_iterates():
    """Lemma 2.4: (cL, eta/c, c lambda) and, for a scale-invariant loss,
    (L, c^2 eta, lambda/c^2, c w_0) give the same iterates (up to the factor c), with and
    without clipping. Headline: the largest relative gap, float64."""
    r = R.lemma_scalings()
    gap = float(max(r.gap_loss.max(), r.gap_init.max()))
    print(f"\ngap (cL, eta/c, c lambda): {r.gap_loss}; gap (c^2 eta, lambda/c^2, c w0): "
          f"{r.gap_init}; clipped steps {r.clipped} of {r.steps}")
    assert r.clipped[1] > 0        # the clipped pair really clips
    claims.check("robust-lemma-scalings", gap)


@pytest.fixture(scope="module")
def grid():
    return R.robust_grid(R.RobustSizes.quick())


def test_claim_same_accuracy_from_every_initial_scale(grid):
    """SGD + WD from c in {0.01, 1, 100}: the same test accuracy (within 1 point), reached
    within ln(c)/(eta lambda) + O(1/(eta lambda)) steps; plain SGD from c = 100 stalls."""
    el = grid.eta * grid.wd
    ref = grid.final_accuracy(grid.index(1.0, True, False))
    accs = {c: grid.final_accuracy(grid.index(c, True, False)) for c in (0.01, 1.0, 100.0)}
    times = {c: grid.time_to(grid.index(c, True, False), ref - 0.02) for c in accs}
    excess = max(el * t - max(math.log(c), 0.0) for c, t in times.items())
    stalled = grid.final_accuracy(grid.index(100.0, False, False))
    print(f"\naccuracy {accs}; steps to within 2 points {times}; eta lambda T - ln c at "
          f"most {excess:.2f}; plain SGD from c = 100: {stalled:.3f}")
    claims.check("robust-same-accuracy", max(accs.values()) - min(accs.values()))
    claims.check("robust-log-time", excess)
    claims.check("robust-sgd-stalls", stalled)
    assert not (grid.diverged_at >= 0).any()


def test_claim_loss_scale_clipped_sgd_wd_trains(grid):
    """With the loss times 1e4 (and 1e8), clipped SGD + WD reaches the accuracy of the
    unscaled run; plain SGD stalls at 1e8; clipping fires on a small fraction of steps."""
    ref = grid.final_accuracy(grid.index(1.0, True, False))
    gaps = {k: abs(grid.final_accuracy(grid.index(1.0, True, True, k)) - ref)
            for k in R.LOSS_SCALES}
    plain = {k: grid.final_accuracy(grid.index(1.0, False, False, k)) for k in R.LOSS_SCALES}
    frac = float(grid.clipped_fraction[grid.index(1.0, True, True, 1e4)].mean())
    print(f"\nclipped SGD + WD accuracy gap to the unscaled run: {gaps}; plain SGD "
          f"accuracy {plain}; clipped fraction at loss x 1e4: {frac:.3f}, unscaled: "
          f"{grid.clipped_fraction[grid.index(1.0, True, True)].mean():.3f}")
    claims.check("robust-loss-scale", max(gaps.values()))
    claims.check("robust-plain-sgd-loss-scale", plain[1e8])
    claims.check("robust-clip-fraction", frac)
    # Lemma 2.4: loss x k is initial scale 1/sqrt(k) for a scale-invariant net (the same
    # run up to float32 rounding, which SGD's chaos amplifies late in the run)
    i, j = grid.index(1.0, True, True, 1e4), grid.index(0.01, True, True)
    target = ref - 0.02
    assert abs(grid.time_to(i, target) - grid.time_to(j, target)) <= 2 * (grid.steps[1]
                                                                          - grid.steps[0])
    assert abs(grid.final_accuracy(i) - grid.final_accuracy(j)) < 0.01


def test_widget_draws_every_setting(grid):
    from matplotlib.figure import Figure

    from dltheory.training import count_compilations

    with count_compilations() as compiled:     # moving a control only redraws
        for c in R.INIT_SCALES:
            for wd in (False, True):
                for clip in (False, True):
                    fig = R.robust_figure(grid, c, wd, clip)
                    assert isinstance(fig, Figure)
    assert compiled() == 0
    ex = R.robust_explorer(grid)
    assert set(ex.controls) == {"c", "weight_decay", "clipping"}
    with pytest.raises(ValueError, match="no run"):
        grid.index(3.0, True, False)


def test_exercise_checker_recovery_steps():
    right = lambda c, eta, wd: max(math.log(c), 0) / -math.log(1 - eta * wd)
    assert check("rt-ex-recovery", right).correct
    for wrong in (lambda c, eta, wd: math.log(c) / (eta * wd) * 2,
                  lambda c, eta, wd: c / (eta * wd),
                  lambda c, eta, wd: max(math.log(c), 0) / -math.log(1 - eta * wd) / 2):
        assert not check("rt-ex-recovery", wrong).correct
