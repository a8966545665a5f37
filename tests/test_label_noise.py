"""Part V, label-noise SGD (Li, Wang, Arora 2022): the chapter's claims measured, and the
module's API (exact trace of the Hessian, the label-noise batch source, the flow)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dltheory import claims
from dltheory.compat import enable_x64
from dltheory.sharpness import label_noise as LN
from dltheory.training import count_compilations, train

QUICK = LN.LabelNoiseSizes.quick()


@pytest.fixture(scope="module")
def toy():
    return LN.toy_experiment(QUICK)


# --------------------------------------------------------------------------------------
# The claims
# --------------------------------------------------------------------------------------


def test_claim_label_noise_finds_the_sparse_solution(toy):
    """Li, Wang, Arora (2022), sparse regression: on the toy (d = 50, kappa = 2, N = 20,
    u = v = 1, batch 1, eta = 0.002, label noise +-1, 200,000 steps) label-noise SGD
    reaches the sparse target, while SGD without label noise and GD from the same
    initialization stay in the kernel regime; the trace of the Hessian ends at
    8 |w*|_1, the smallest value it has on the manifold of minimizers."""
    assert toy.status == "finished"
    claims.check("label-noise-sparse", toy.ln_test_final)   # (measured 0.009)
    assert toy.ln_test_worst <= 0.1            # every replica, not only on average
    claims.check("label-noise-plain-fails", min(toy.sgd_test_final, toy.gd_test_final))
    claims.check("label-noise-trace", toy.trace_ratio)
    # plain SGD and GD barely move the trace from its value at the start (16 d = 800)
    assert toy.sgd_trace[-1] > 0.9 * toy.sgd_trace[0]
    assert toy.gd_trace[-1] > 0.9 * toy.gd_trace[0]
    # the end point is the minimum-l1 interpolant (basis pursuit), up to the noise
    np.testing.assert_allclose(toy.l1_w, toy.problem.w_star, atol=1e-6)
    assert toy.l1_distance < 0.5


def test_claim_slow_time_scale_eta_squared():
    """Li, Wang, Arora (2022): the trace moves on the time scale tau = eta^2 k. For three
    learning rates (a factor 2 apart) the times at which the trace has fallen 1/2, 3/4
    and 7/8 of the way to 8 |w*|_1 agree in tau and differ four-fold in steps; the runs
    follow the limiting flow, and their deviation from it is first order in eta (the
    line through the three deviations passes near zero at eta = 0)."""
    ts = LN.time_scale_experiment(QUICK)
    assert all(st == "finished" for st in ts.status)
    claims.check("label-noise-time-scale", ts.spread_tau)   # (measured 0.154)
    assert ts.spread_steps >= 1.0              # (measured 1.41; 4x in steps is 1.29 exact)
    assert abs(ts.deviation_at_zero) <= 0.05   # (measured -0.006)
    assert np.all(np.abs(ts.flow_deviation) <= 0.35)
    # the larger eta, the further ahead of the flow (the first-order correction)
    assert np.all(np.diff(ts.flow_deviation) < 0)
    assert ts.flow.train_mse.max() < 1e-6      # the flow stays on the manifold


def test_claim_sample_complexity_log_d_vs_d():
    """Li, Wang, Arora (2022) and Woodworth et al. (2020): over d in {16, 32, 64, 128}
    the examples label-noise SGD needs for a median test error of 0.2 grow like ln d (a
    power-law exponent well below 1, close to basis pursuit's), while GD from the same
    initialization needs a fixed fraction of d (exponent 1)."""
    sc = LN.sample_complexity_experiment(QUICK)
    assert sc.status == "finished"
    assert np.all(np.isfinite(sc.n_ln)) and np.all(np.isfinite(sc.n_gd))
    claims.check("label-noise-sample-complexity", sc.exponent_ln)   # (measured 0.20)
    claims.check("gd-sample-complexity", sc.exponent_gd)   # (measured 1.02)
    assert np.all(sc.n_gd / sc.dims >= 0.5)    # GD needs more than half of d everywhere
    assert sc.n_gd[-1] >= 4 * sc.n_ln[-1]
    assert sc.log_fit[1] > 0                   # still growing, like ln d
    assert np.all(sc.n_ln <= sc.n_bp + 6)      # near the flow's limit, basis pursuit


# --------------------------------------------------------------------------------------
# The model and the exact trace of the Hessian
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("inputs", ["gaussian", "signs"])
def test_trace_closed_form_matches_jax_hessian(inputs):
    """The closed form holds at every theta (off the manifold too), any inputs."""
    with enable_x64():
        rng = np.random.default_rng(3)
        n, d = 6, 5
        x = rng.normal(size=(n, d)) if inputs == "gaussian" else rng.choice([-1.0, 1.0],
                                                                               (n, d))
        y = rng.normal(size=n)
        theta = rng.normal(size=2 * d)

        def f(th):
            return LN.loss({"u": th[:d], "v": th[d:]}, {"x": jnp.asarray(x), "y": jnp.asarray(y)})

        hess = jax.hessian(f)(jnp.asarray(theta))
        closed = LN.hessian_trace({"u": jnp.asarray(theta[:d]), "v": jnp.asarray(theta[d:])},
                                  jnp.asarray(x))
        assert float(closed) == pytest.approx(float(jnp.trace(hess)), rel=1e-12)
        if inputs == "signs":
            assert float(closed) == pytest.approx(8 * np.sum(theta ** 2), rel=1e-12)


def test_trace_of_stacked_and_masked_members():
    with enable_x64():
        rng = np.random.default_rng(0)
        x = rng.normal(size=(3, 7, 4))
        p = {"u": rng.normal(size=(3, 4)), "v": rng.normal(size=(3, 4))}
        mask = np.ones((3, 7))
        mask[1, 5:] = 0
        got = np.asarray(LN.hessian_trace(p, x, mask))
        want = [LN.hessian_trace({k: a[i] for k, a in p.items()}, x[i, :int(mask[i].sum())])
                for i in range(3)]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_stacked_members_move_like_separate_runs():
    """The stacked loss: member m's gradient is weight_m times its own loss's gradient,
    and padded columns (zero inputs) have zero gradient."""
    with enable_x64():
        rng = np.random.default_rng(1)
        x = rng.choice([-1.0, 1.0], (2, 5, 6))
        x[1, :, 4:] = 0.0                                   # member 1 has d = 4, padded
        y = rng.normal(size=(2, 5))
        mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], float)
        weight = np.array([1.0, 3.0])
        p = {"u": rng.normal(size=(2, 6)), "v": rng.normal(size=(2, 6))}
        g = jax.grad(LN.loss)(p, {"x": x, "y": y, "mask": mask, "weight": weight})
        for m in range(2):
            keep = int(mask[m].sum())
            own = jax.grad(LN.loss)({k: a[m] for k, a in p.items()},
                                    {"x": x[m, :keep], "y": y[m, :keep]})
            for k in ("u", "v"):
                np.testing.assert_allclose(g[k][m], weight[m] * own[k], rtol=1e-12)
        assert np.all(np.asarray(g["u"])[1, 4:] == 0) and np.all(np.asarray(g["v"])[1, 4:] == 0)


def test_min_l1_interpolant_is_where_the_trace_is_smallest_on_the_manifold():
    prob = LN.sparse_problem(20, 50, 2, seed=0)
    w = LN.min_l1_interpolant(prob.x, prob.y)
    np.testing.assert_allclose(w, prob.w_star, atol=1e-6)
    # the point u = sqrt(w+), v = sqrt(w-) interpolates and has trace 8 |w|_1 ...
    p = {"u": np.sqrt(np.maximum(w, 0)), "v": np.sqrt(np.maximum(-w, 0))}
    assert float(LN.hessian_trace(p, prob.x)) == pytest.approx(prob.target_trace, rel=1e-5)
    # ... and any other interpolating point with the same w has a larger one
    q = {"u": np.sqrt(np.maximum(w, 0) + 0.3), "v": np.sqrt(np.maximum(-w, 0) + 0.3)}
    np.testing.assert_allclose(LN.predict(q, prob.x), prob.y, atol=1e-5)
    assert float(LN.hessian_trace(q, prob.x)) > prob.target_trace + 1
    with pytest.raises(ValueError, match="must admit a w"):
        LN.min_l1_interpolant(np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([0.0, 1.0]))


def test_sparse_problem_is_reproducible_and_has_the_asked_shape():
    a, b = LN.sparse_problem(8, 30, 3, seed=5), LN.sparse_problem(8, 30, 3, seed=5)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.w_star, b.w_star)
    assert set(np.unique(a.x)) == {-1.0, 1.0}
    assert (a.n, a.d, a.kappa) == (8, 30, 3)
    np.testing.assert_allclose(a.y, a.x @ a.w_star)
    assert not np.array_equal(LN.sparse_problem(8, 30, 3, seed=6).x, a.x)


# --------------------------------------------------------------------------------------
# Label noise
# --------------------------------------------------------------------------------------


def test_label_noise_is_fresh_each_step_and_reproducible_from_the_key():
    x = np.eye(4, dtype=np.float32)
    y = np.arange(4, dtype=np.float32)
    src = LN.LabelNoise.of(x, y, sigma=0.5, batch_size=256)
    sample = jax.jit(lambda source, key, step: source.sample(key, step))
    key = jax.random.key(7)

    def noise(source, key, step):            # the added noise and the rows drawn
        b = sample(source, key, step)
        rows = np.argmax(np.asarray(b["x"])[0], axis=1)
        return np.asarray(b["y"])[0] - y[rows], rows

    n0, r0 = noise(src, key, 0)
    again, r_again = noise(src, key, 0)
    np.testing.assert_array_equal(n0, again)
    np.testing.assert_array_equal(r0, r_again)
    n1, r1 = noise(src, key, 1)
    assert not np.array_equal(n0, n1) and not np.array_equal(r0, r1)
    assert not np.array_equal(noise(src, jax.random.key(8), 0)[0], n0)
    for n in (n0, n1):
        np.testing.assert_allclose(np.abs(n), 0.5, rtol=1e-6)       # +-sigma
        assert abs(n.mean()) < 0.15                                   # both signs
    # across steps the noise is independent: its sign agrees half of the time
    signs = np.array([np.sign(noise(src, key, k)[0]) for k in range(8)])
    assert 0.4 < np.mean(signs[1:] == signs[:-1]) < 0.6
    # sigma = 0 is plain SGD; only the first `size` examples are drawn
    quiet = LN.LabelNoise.of(x, y, sigma=0.0, batch_size=256, size=2)
    n, rows = noise(quiet, key, 3)
    assert set(rows) <= {0, 1} and np.all(n == 0)
    gauss = LN.LabelNoise.of(x, y, sigma=1.0, batch_size=256, noise="gaussian")
    z = noise(gauss, key, 0)[0]
    assert 0.8 < z.std() < 1.2 and len(np.unique(np.round(z, 4))) > 100


def test_training_with_label_noise_is_reproducible_from_the_key():
    prob = LN.sparse_problem(10, 20, 2, seed=1)
    src = LN.LabelNoise.of(prob.x, prob.y, sigma=1.0)

    def run(key):
        return train(LN.loss, LN.init_params(20, 1.0, 1), LN._sgd(0.002), steps=500,
                     batches=src, key=key, log_every=500).params["u"]

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_limiting_flow_stays_on_the_manifold_and_lowers_the_trace(toy):
    flow = LN.limiting_flow(toy.problem, toy.gd_params, s_max=0.6, num=600)
    assert flow.train_mse.max() < 1e-6
    assert np.all(np.diff(flow.trace) <= 1e-3 * flow.trace[:-1])
    assert flow.trace[0] == pytest.approx(toy.gd_trace[-1], rel=1e-3)   # starts at GD's end
    assert flow.trace[-1] == pytest.approx(toy.problem.target_trace, rel=0.05)
    np.testing.assert_allclose(flow.w, toy.problem.w_star, atol=0.05)


# --------------------------------------------------------------------------------------
# Divergence, presets, the widget, bad input
# --------------------------------------------------------------------------------------


def test_a_diverging_run_says_where():
    small = dataclasses.replace(QUICK, lr=0.05, steps=2000, replicas=1, gd_steps=200)
    res = LN.toy_experiment(small)
    assert res.status.startswith("diverged at step ")
    step = int(res.status.rsplit(" ", 1)[1])
    assert 0 <= step < 2000


def test_presets_are_valid_and_capped_runs_keep_their_shapes():
    quick, paper = LN.LabelNoiseSizes.quick(), LN.LabelNoiseSizes.paper()
    assert paper.steps > quick.steps and max(paper.sc_dims) > max(quick.sc_dims)
    capped = paper.capped(8)
    assert capped.steps == 8 and capped.sc_steps == 8 and capped.ts_steps == 8
    assert capped.sc_dims == paper.sc_dims and capped.replicas == paper.replicas


def test_widget_moves_without_recompiling_and_marks_divergence():
    small = dataclasses.replace(QUICK, widget_steps=400, widget_sigmas=(1.0,),
                                widget_lrs=(0.001, 0.05), gd_steps=200)
    grid = LN.explorer_grid(small)
    other = dataclasses.replace(small, widget_sigmas=(2.0,))
    with count_compilations() as compiled:
        grid2 = LN.explorer_grid(other)
    assert compiled() == 0                     # new noise levels: the same programs
    assert grid2["sigmas"] == (0.0, 2.0)
    # sigma = 0 is plain SGD: its replicas stay where GD would (no flow)
    k, trace, d = LN.explorer_run(grid, 0.0, 0.001, "trace")
    assert d is None and trace[-1] > 0.95 * trace[0]
    assert LN.explorer_run(grid, 0.0, 0.05, "trace")[2] is not None
    fig = LN.explorer_figure(grid, 1.0, 0.05)
    assert "diverged at step" in fig._suptitle.get_text()
    ex = LN.explorer(grid)
    assert ex.size == 4
    fig = ex.figure(sigma=0.0, lr=0.001)
    assert "flow time" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="sigma"):
        LN.explorer_figure(grid, 0.3, 0.001)


def test_bad_input_is_rejected_naming_the_argument():
    x, y = np.ones((3, 4)), np.ones(3)
    with pytest.raises(ValueError, match="kappa"):
        LN.sparse_problem(5, 4, kappa=5)
    with pytest.raises(ValueError, match="sigma"):
        LN.LabelNoise.of(x, y, sigma=-1.0)
    with pytest.raises(ValueError, match="noise"):
        LN.LabelNoise.of(x, y, noise="uniform")
    with pytest.raises(ValueError, match="size"):
        LN.LabelNoise.of(x, y, size=4)
    with pytest.raises(ValueError, match="`sigma` must be a number or one value per member"):
        LN.LabelNoise.of(np.ones((2, 3, 4)), np.ones((2, 3)), sigma=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="`y`"):
        LN.LabelNoise.of(x, np.ones(4))
    with pytest.raises(TypeError, match="batch_size"):
        LN.LabelNoise.of(x, y, batch_size=1.5)
    with pytest.raises(ValueError, match="scale"):
        LN.init_params(4, 0.0)
    with pytest.raises(TypeError, match="sizes"):
        LN.toy_experiment("quick")
    with pytest.raises(ValueError, match="fewer examples"):
        LN.limiting_flow(LN.sparse_problem(6, 4, 1), LN.init_params(4), s_max=1.0)
    with pytest.raises(ValueError, match="s_max"):
        LN.limiting_flow(LN.sparse_problem(3, 6, 1), LN.init_params(6), s_max=0.0)
    with pytest.raises(ValueError, match="lr"):
        LN.LabelNoiseSizes(lr=-0.1)
    with pytest.raises(TypeError, match="grid"):
        LN.explorer_figure({"no": 1}, 1.0, 0.001)
