"""SAM and 1-SAM (dltheory.sharpness.sam): the update, the paired batches, the toy of
Wen, Ma, Li (2023) and the digits comparison."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dltheory import claims, training
from dltheory.sharpness import sam as S

# --------------------------------------------------------------------------------------
# The update
# --------------------------------------------------------------------------------------


def _loss(p, batch):
    """A loss on a dict pytree, so the global norm spans two leaves."""
    a, b = p["a"], p["b"]
    return 0.5 * jnp.sum(batch["h"] * a ** 2) + jnp.sum(b ** 4) + a[0] * b[1]


def _grad_np(a, b, h):
    ga = h * a + np.array([b[1], 0.0])
    gb = 4 * b ** 3 + np.array([0.0, a[0]])
    return ga, gb


def _sam_np(a, b, h, lr, rho, steps):
    """SAM written out by hand in numpy (float64)."""
    for _ in range(steps):
        ga, gb = _grad_np(a, b, h)
        norm = np.sqrt(np.sum(ga ** 2) + np.sum(gb ** 2))
        ea, eb = rho * ga / norm, rho * gb / norm
        ga, gb = _grad_np(a + ea, b + eb, h)
        a, b = a - lr * ga, b - lr * gb
    return a, b


def test_sam_steps_match_a_hand_written_numpy_sam():
    h = np.array([3.0, 0.5])
    p0 = {"a": jnp.array([0.7, -0.4]), "b": jnp.array([0.3, 0.6])}
    run = S.run_sam(_loss, p0, {"h": jnp.asarray(h)}, learning_rate=0.1, rho=0.2, steps=5)
    a, b = _sam_np(np.array([0.7, -0.4]), np.array([0.3, 0.6]), h, 0.1, 0.2, 5)
    np.testing.assert_allclose(run.params["a"][0], a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run.params["b"][0], b, rtol=1e-5, atol=1e-6)
    # a gradient step alone lands elsewhere: the comparison has teeth
    a_gd, _ = _sam_np(np.array([0.7, -0.4]), np.array([0.3, 0.6]), h, 0.1, 0.0, 5)
    assert np.max(np.abs(a_gd - a)) > 1e-2
    # the logged loss is L at x_k (not at the ascent point)
    np.testing.assert_allclose(run["loss"][0, -1], _loss({"a": a, "b": b}, {"h": h}),
                               rtol=1e-5)


def test_sam_transformation_two_passes():
    tx = S.sam(learning_rate=0.1, rho=0.5)
    x = jnp.array([3.0, 4.0])
    state = tx.init(x)
    g = jnp.array([3.0, 4.0])                       # |g| = 5
    up, state = tx.update(g, state, x)
    np.testing.assert_allclose(x + up, [3.3, 4.4], rtol=1e-6)   # x + rho g / |g|
    g2 = jnp.array([1.0, -2.0])                     # the gradient at the ascent point
    up, state = tx.update(g2, state, x + up)
    np.testing.assert_allclose(x + jnp.array([0.3, 0.4]) + up, [2.9, 4.2], rtol=1e-6)
    assert int(state.count) == 2
    with pytest.raises(ValueError, match="needs `params`"):
        tx.update(g, state)


def test_rho_zero_is_gradient_descent():
    h = {"h": jnp.array([2.0, 0.5])}
    p0 = {"a": jnp.array([1.0, -1.0]), "b": jnp.array([0.2, 0.1])}
    run = S.run_sam(_loss, p0, h, learning_rate=0.05, rho=0.0, steps=40, log_every=10)
    gd = training.train(_loss, p0, optax.sgd(0.05), steps=40, batches=h)
    np.testing.assert_allclose(run.params["a"][0], gd.params["a"], rtol=1e-5)
    np.testing.assert_allclose(run.params["b"][0], gd.params["b"], rtol=1e-5)
    assert run.steps.tolist() == [0, 10, 20, 30, 40]


def test_a_grid_of_radii_is_one_call_matching_single_runs():
    h = {"h": jnp.array([2.0, 0.5])}
    p0 = {"a": jnp.array([1.0, -1.0]), "b": jnp.array([0.2, 0.1])}
    grid = S.run_sam(_loss, p0, h, learning_rate=[0.05, 0.1, 0.1], rho=[0.0, 0.1, 0.3],
                     steps=20)
    for i, (lr, rho) in enumerate(((0.05, 0.0), (0.1, 0.1), (0.1, 0.3))):
        single = S.run_sam(_loss, p0, h, learning_rate=lr, rho=rho, steps=20)
        np.testing.assert_allclose(grid.params["a"][i], single.params["a"][0], rtol=1e-5)


# --------------------------------------------------------------------------------------
# One example per step
# --------------------------------------------------------------------------------------


def _per_example(w, batch):
    return 0.5 * jnp.mean((batch["x"] @ w - batch["y"]) ** 2)


def test_paired_examples_give_both_passes_one_and_the_same_example():
    xs = jnp.arange(10.0).reshape(5, 2)
    src = S.PairedExamples.of({"x": xs, "y": jnp.arange(5.0)}, batch_size=1)
    key = jax.random.key(0)
    seen = set()
    for k in range(40):
        b0, b1 = src.sample(key, 2 * k), src.sample(key, 2 * k + 1)
        assert b0["x"].shape == (1, 2)
        np.testing.assert_array_equal(b0["x"], b1["x"])
        seen.add(int(b0["y"][0]))
    assert seen == {0, 1, 2, 3, 4}                   # every example gets drawn


def test_one_sam_takes_a_sam_step_on_a_single_example():
    x = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    y = jnp.array([1.0, -1.0, 0.2])
    w0 = jnp.array([0.3, 0.2])
    lr, rho = 0.1, 0.05

    def step_np(w, xs, ys):
        def g(v):
            return xs.T @ (xs @ v - ys) / len(ys)
        e = rho * g(w) / np.linalg.norm(g(w))
        return w - lr * g(w + e)

    xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
    per_example = [step_np(np.asarray(w0, np.float64), xn[k:k + 1], yn[k:k + 1])
                   for k in range(3)]
    full = step_np(np.asarray(w0, np.float64), xn, yn)
    run = S.run_sam(_per_example, w0, {"x": x, "y": y}, learning_rate=lr, rho=rho, steps=1,
                    batch_size=1, seeds=list(range(12)))
    hits = set()
    for w in np.asarray(run.params):
        d = [np.max(np.abs(w - p)) for p in per_example]
        assert min(d) < 1e-6, "each run must equal a SAM step on one example"
        assert np.max(np.abs(w - full)) > 1e-3
        hits.add(int(np.argmin(d)))
    assert len(hits) >= 2                            # seeds draw different examples


# --------------------------------------------------------------------------------------
# The toy
# --------------------------------------------------------------------------------------


def test_toy_hessian_on_the_minimizers():
    x = jnp.array([0.4, -0.3, 0.0, 0.0])
    hess = np.asarray(jax.hessian(S.toy_loss)(x, S.TOY_DATA))
    f1, f2 = S.toy_F(0.4, -0.3)
    np.testing.assert_allclose(hess, np.diag([0.0, 0.0, f1, f2]), atol=1e-5)
    lam1, tr = S.toy_curvatures(np.asarray(x))
    assert lam1 == pytest.approx(f1) and tr == pytest.approx(f1 + f2)
    # the minimizers along x1 (x2 = 0) of lambda_1 and of the trace
    grid = np.stack([np.linspace(-1, 1.5, 2501), np.zeros(2501), np.zeros(2501),
                     np.zeros(2501)], 1)
    lam1, tr = S.toy_curvatures(grid)
    assert grid[np.argmin(lam1), 0] == pytest.approx(S.X1_LAMBDA_MIN, abs=1e-3)
    assert grid[np.argmin(tr), 0] == pytest.approx(S.X1_TRACE_MIN, abs=1e-3)


def test_finite_step_limit_tends_to_the_trace_minimizer():
    assert S.toy_one_sam_limit(1e-7) == pytest.approx(1 / 3, abs=1e-6)
    lim = [S.toy_one_sam_limit(e) for e in (0.005, 0.01, 0.02)]
    assert lim[0] < lim[1] < lim[2] < 0.4


def test_claim_sam_toy_minimizers():
    """Full-batch SAM ends at the minimizer of lambda_1, 1-SAM at that of the trace
    (Wen, Ma, Li 2023, Theorems 4.5 and 5.4), with the two-cycle of Theorem 4.8.

    Headline: 1-SAM's time-averaged x1 extrapolated to eta -> 0, against 1/3."""
    sizes = S.ToySizes.quick()
    res = S.toy_experiment(sizes)
    eta = S.toy_eta_sweep(sizes)
    assert not res.diverged
    print(f"\nfull-batch SAM x1 = {res.x1_full:.4f} (argmin lambda_1 = 1); "
          f"GD x1 = {res.x1_gd:.4f}; 1-SAM x1 = {res.x1_one:.4f} at eta = 0.02 "
          f"(finite-eta prediction {res.x1_one_predicted:.4f}); residual |x3| = "
          f"{res.residual:.5f} vs predicted {res.predicted_residual:.5f}; 1-SAM x1 per eta "
          f"{dict(zip(eta.etas.tolist(), np.round(eta.x1, 4).tolist()))}, extrapolated "
          f"to eta -> 0: {eta.intercept:.4f} (argmin trace = 1/3)")
    claims.check("sam-toy-top-eigenvalue", abs(res.x1_full - 1.0))
    claims.check("sam-two-cycle", abs(res.residual / res.predicted_residual - 1))
    claims.check("sam-toy-trace", abs(eta.intercept - 1 / 3))
    assert abs(eta.x1[np.argmin(eta.etas)] - 1 / 3) < 5e-2
    np.testing.assert_allclose(eta.x1, eta.predicted, atol=5e-3)
    # GD does not move along the minimizers: it stays where it landed
    assert abs(res.x1_gd - S.TOY_X0[0]) < 0.2


def test_toy_widget_reuses_compiled_code_and_draws_every_setting():
    g = S.toy_grid(200, seeds=2, log_every=20)
    with training.count_compilations() as compiled:
        g2 = S.toy_grid(200, seeds=2, log_every=20)
    assert compiled() == 0
    np.testing.assert_array_equal(g["full"], g2["full"])
    assert g["full"].shape == (len(S.WIDGET_RHOS), 11, 4)
    assert g["one"].shape == (len(S.WIDGET_RHOS), 2, 11, 4)
    ex = S.toy_explorer(g)
    assert ex.size == 2 * len(S.WIDGET_RHOS)
    for setting in ex.settings():
        assert ex.image(**setting)[:4] == b"\x89PNG"


# --------------------------------------------------------------------------------------
# Digits
# --------------------------------------------------------------------------------------


def test_claim_sam_on_digits():
    """On a net fitted to digits, full-batch SAM lowers lambda_1 below 1-SAM's and GD's,
    and 1-SAM lowers the trace below full-batch SAM's.

    Headline: lambda_1(SAM) / lambda_1(1-SAM)."""
    r = S.digits_experiment(S.DigitsSizes.quick())
    assert not r.diverged, r.status
    gd, sam_, sgd, one = range(4)
    ratio_lam = r.lam1_final[sam_] / r.lam1_final[one]
    ratio_tr = r.trace_final[one] / r.trace_final[sam_]
    print(f"\nlambda_1: GD {r.lam1_final[gd]:.3f}, SAM {r.lam1_final[sam_]:.3f}, SGD "
          f"{r.lam1_final[sgd]:.3f}, 1-SAM {r.lam1_final[one]:.3f} (start "
          f"{r.lam1_start:.3f}); trace: GD {r.trace_final[gd]:.2f}, SAM "
          f"{r.trace_final[sam_]:.2f} +- {r.trace_stderr[sam_]:.2f}, SGD "
          f"{r.trace_final[sgd]:.2f}, 1-SAM {r.trace_final[one]:.2f} +- "
          f"{r.trace_stderr[one]:.2f} (start {r.trace_start:.2f}); lambda_1 ratio SAM/1-SAM "
          f"{ratio_lam:.3f}, trace ratio 1-SAM/SAM {ratio_tr:.3f}; rho_one {r.rho_one:.4f}; "
          f"one_lr * max_k |grad f_k|^2 = {r.one_lr * r.max_example_curvature:.3f}")
    claims.check("sam-digits-top-eigenvalue", ratio_lam)
    assert r.lam1_final[sam_] < 0.5 * r.lam1_final[gd]
    claims.check("sam-digits-trace", ratio_tr)
    assert r.trace_final[sam_] - r.trace_final[one] > 4 * np.hypot(r.trace_stderr[sam_],
                                                                   r.trace_stderr[one])
    # the controls: the one-example steps are stable, and without a radius they leave
    # the curvature where it was (so 1-SAM's effect is SAM's, not SGD's)
    assert r.one_lr * r.max_example_curvature < 2
    assert abs(r.lam1_final[sgd] / r.lam1_final[gd] - 1) < 0.05
    assert r.loss_final.max() < 1e-2


# --------------------------------------------------------------------------------------
# Bad input and divergence
# --------------------------------------------------------------------------------------


def test_a_diverging_run_says_at_which_sam_step():
    run = S.run_sam(lambda x, b: 0.5 * jnp.sum(x ** 2), jnp.array([1.0]), {"k": jnp.zeros(1)},
                    learning_rate=[0.1, 30.0], rho=0.1, steps=200, log_every=10)
    assert run.status(0) == "finished 200 steps"
    assert run.status(1).startswith("diverged at step ")
    k = int(run.diverged_at[1])
    assert 0 < k < 200 and run.status(1) == f"diverged at step {k}"
    assert k == int(run.sweep.diverged_at[1]) // 2
    assert np.all(np.isnan(run["loss"][1][run.steps > k]))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"learning_rate": -0.1}, ValueError, "`learning_rate`"),
    ({"learning_rate": 0.0}, ValueError, "`learning_rate`"),
    ({"rho": -0.1}, ValueError, "`rho`"),
    ({"rho": [[0.1]]}, ValueError, "`rho`"),
    ({"rho": float("nan")}, ValueError, "`rho`"),
    ({"steps": 0}, ValueError, "`steps`"),
    ({"steps": 10, "log_every": 3}, ValueError, "multiple of `log_every`"),
    ({"batch_size": 0}, ValueError, "`batch_size`"),
    ({"batch_size": 3}, ValueError, "`batch_size`"),
    ({"seeds": []}, ValueError, "`seeds`"),
    ({"seeds": 3}, TypeError, "`seeds`"),
    ({"rho": [0.1, 0.2], "learning_rate": [0.1, 0.2, 0.3]}, ValueError, "one grid length"),
])
def test_run_sam_bad_input(kwargs, error, match):
    args = {"learning_rate": 0.1, "rho": 0.1, "steps": 4}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        S.run_sam(_per_example, jnp.zeros(2), {"x": jnp.ones((2, 2)), "y": jnp.ones(2)},
                  **args)


def test_bad_input_elsewhere():
    with pytest.raises(TypeError, match="`loss_fn` must be callable"):
        S.run_sam("loss", jnp.zeros(2), {}, learning_rate=0.1, rho=0.1, steps=2)
    with pytest.raises(ValueError, match="`learning_rate`"):
        S.sam(learning_rate=-1.0, rho=0.1)
    with pytest.raises(ValueError, match="`rho`"):
        S.sam_optimizer(0.1, -0.5)
    with pytest.raises(ValueError, match="same length"):
        S.sam_optimizer([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="`learning_rate \\* lam` < 2"):
        S.sam_residual(0.5, 0.1, 4.0)
    with pytest.raises(ValueError, match="`x` must have shape"):
        S.toy_curvatures(np.zeros((3, 2)))
    with pytest.raises(TypeError, match="`sizes`"):
        S.toy_experiment("quick")
    with pytest.raises(ValueError, match="`x0`"):
        S.toy_experiment(S.ToySizes.quick(), x0=(1.0, 2.0))
    with pytest.raises(ValueError, match="`etas`"):
        S.toy_eta_sweep(S.ToySizes.quick(), etas=(0.02,))
    with pytest.raises(TypeError, match="`sizes`"):
        S.digits_experiment({"n_train": 10})
    with pytest.raises(ValueError, match="`rho`"):
        S.toy_figure(S.toy_grid(20, seeds=1, log_every=10), rho=0.3)
    with pytest.raises(ValueError, match="`width`"):
        S.DigitsSizes.quick().__class__(**{**S.DigitsSizes.quick().__dict__, "width": 0})
    with pytest.raises(TypeError, match="`grid`"):
        S.toy_explorer({"steps": []})
