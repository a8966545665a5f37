"""Part III, low-rank learning: the chapters' claims measured, plus the package's contracts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dltheory import claims, lowrank as L
from dltheory.lowrank import figures as F
from dltheory.training import count_compilations


@pytest.fixture(scope="module")
def completion():
    return L.matrix_completion_problem(20, (8.0, 2.0, 0.5), fraction=0.5, seed=0)


@pytest.fixture(scope="module")
def completion_glrl(completion):
    return L.glrl(completion)


@pytest.fixture(scope="module")
def sensing():
    s = L.SensingSizes.quick()
    return L.matrix_sensing_problem(s.d, s.eigenvalues, measurements=s.measurements, seed=0)


# --------------------------------------------------------------------------------------
# Claims of the GLRL chapter
# --------------------------------------------------------------------------------------


def test_claim_glrl_recovers_the_target_with_increasing_ranks(completion, completion_glrl):
    g = completion_glrl
    assert len(g) == 3 and g.stopped == "tolerance"
    ranks = [np.linalg.matrix_rank(w, tol=1e-6) for w in g.iterates]
    assert ranks == [1, 2, 3]
    assert np.all(np.diff(g.losses) < 0) and g.losses[-1] < 1e-12
    err = np.linalg.norm(g.iterates[-1] - completion.target) / np.linalg.norm(completion.target)
    claims.check("glrl-recovers", err)
    assert np.all(g.grad_norms <= 1e-10)


def test_claim_distance_to_glrl_below_1e2_and_monotone_in_init(completion, completion_glrl):
    res = L.greedy_experiment(completion, (1e-8, 1e-6, 1e-4, 1e-2), seeds=1, lr=0.05,
                              steps=8000, log_every=20)
    d = res.worst  # (init scale, r)
    claims.check("glrl-distance", d[0].max())
    assert d[0, 0] < 1e-4  # the first phase is matched to high accuracy
    assert np.all(np.diff(d, axis=0) > 0), d  # grows with the init scale, for every r
    assert res.monotone
    # and the large init is clearly not greedy
    assert d[-1].max() > 3e-2


def test_distance_to_glrl_over_the_trajectory_matches_a_loop(completion, completion_glrl):
    """The trajectory branch against a direct loop; the tracked-references branch only for
    exactly the references the flow tracked (a slightly different set is measured on
    the trajectory)."""
    refs = completion_glrl.iterates
    flow = L.gradient_flow(completion, init_scales=(1e-3, 1e-2), seeds=(0, 1), lrs=0.05,
                           steps=400, log_every=20, references=refs, keep_trajectory=True)
    others = refs * 1.001
    got = L.distance_to_glrl(flow, others)
    traj = np.asarray(flow.trajectory)
    want = np.array([[min(np.linalg.norm(traj[i, t] - w) / np.linalg.norm(w)
                          for t in range(traj.shape[1])) for w in others]
                     for i in range(traj.shape[0])])
    assert got.shape == (4, len(refs))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert L.distance_to_glrl(flow, refs) is flow.ref_min
    np.testing.assert_allclose(L.distance_to_glrl(flow, completion_glrl), flow.ref_min)
    # the minimum over every step is at most the minimum over the logged steps
    assert np.all(flow.ref_min <= L.distance_to_glrl(flow, refs * (1 + 1e-12)) + 1e-9)
    zero = np.concatenate([refs[:1], np.zeros_like(refs[:1])])
    with pytest.raises(ValueError, match="zero matrix"):
        L.distance_to_glrl(flow, zero)
    with pytest.raises(AttributeError):  # results are values
        completion_glrl.stopped = "max_rank"
    # the default perturbation is epsilon = 1e-10 (a larger one reaches the same iterates
    # in fewer steps)
    np.testing.assert_array_equal(L.glrl(completion, epsilon=1e-10).steps, completion_glrl.steps)
    assert L.glrl(completion, epsilon=1e-4).steps[0] < completion_glrl.steps[0]
    untracked = L.gradient_flow(completion, init_scales=1e-3, steps=40, log_every=20)
    with pytest.raises(ValueError, match="keep_trajectory"):
        L.distance_to_glrl(untracked, refs)


def test_gradient_flow_result_contract(completion, completion_glrl):
    """Times are lr x step; the default step is 0.02; one reference matrix may be given
    alone; the argmin steps are integers; a depth of 16 is allowed; results are values."""
    res = L.gradient_flow(completion, init_scales=1e-3, lrs=(0.01, 0.03), steps=40,
                          log_every=10, references=completion_glrl.iterates[0])
    np.testing.assert_allclose(res.times, [[0.0, 0.1, 0.2, 0.3, 0.4], [0.0, 0.3, 0.6, 0.9, 1.2]])
    assert res.ref_min.shape == (2, 1) and np.issubdtype(res.ref_argmin.dtype, np.integer)
    assert list(res.diverged_at) == [-1, -1]  # -1: did not diverge
    assert np.all((0 <= res.ref_argmin) & (res.ref_argmin <= 40))
    assert list(L.gradient_flow(completion, steps=10, log_every=10).lrs) == [0.02]
    deep = L.gradient_flow(completion, init_scales=0.5, depth=16, steps=2, log_every=1)
    assert deep.depth == 16 and np.isfinite(deep.loss).all()
    with pytest.raises(AttributeError):
        res.lrs = None


def test_flow_divergence_is_the_first_non_finite_step(completion):
    """Where a run diverges does not depend on how long it runs after (a large step, and
    an initialization whose loss overflows at once: step 0)."""
    for scale, lr, first in ((1.0, 1e3, 3), (1e60, 0.02, 0)):
        at = [L.gradient_flow(completion, init_scales=scale, lrs=lr, steps=s,
                              log_every=10).diverged_at[0] for s in (20, 60)]
        assert at == [first, first], (scale, lr, at)


def test_end_to_end_needs_matrices_that_chain():
    with pytest.raises(ValueError, match="chain"):
        L.end_to_end((jnp.ones(3),), False)
    with pytest.raises(ValueError, match="chain"):
        L.end_to_end((jnp.ones((3, 2)), jnp.ones((3, 3))), False)
    with pytest.raises(ValueError, match="chain"):  # the second link breaks
        L.end_to_end((jnp.ones((3, 2)), jnp.ones((2, 2)), jnp.ones((3, 3))), False)
    np.testing.assert_allclose(L.end_to_end((jnp.ones((3, 2)), jnp.ones((2, 3))), False),
                               2 * np.ones((3, 3)))


def test_greedy_alpha_exponent_and_farthest_iterate():
    alphas = np.array([1e-8, 1e-6, 1e-4, 1e-2])
    p = np.array([0.5, 0.25, 1.0])
    dist = 3.0 * alphas[:, None, None] ** p[None, None, :] * np.array([1.0, 0.5])[None, :, None]
    res = L.GreedyResult(None, None, None, alphas, dist)
    np.testing.assert_allclose(res.alpha_exponent, p, rtol=1e-9)
    assert res.farthest_iterate == 2   # alpha^0.25 is the largest at alpha = 1e-8
    one = L.GreedyResult(None, None, None, alphas[:1], dist[:1])
    assert np.all(np.isnan(one.alpha_exponent))


def test_claim_counterexample_nuclear_norm_gap():
    eps = 0.25
    res = L.counterexample_experiment(eps, init_scales=(1e-6,))
    # gradient flow fits the observations with the rank-one matrix of trace 1/eps + 2 eps
    assert res.fit[0] < 1e-8
    assert res.nuclear[0] == pytest.approx(1 / eps + 2 * eps, rel=1e-6)
    assert np.linalg.matrix_rank(res.flow.final[0], tol=1e-6) == 1
    # the convex optimum is 4 - 2 eps (closed form), certified by the dual
    assert res.psd.value == pytest.approx(4 - 2 * eps, abs=1e-6)
    assert abs(res.psd.gap) < 1e-6
    assert res.margin > 0.99
    # the general (not necessarily PSD) minimum is lower still
    assert res.general.value < res.psd.value - 0.5
    claims.check("nuclear-norm-counterexample", res.nuclear[0] - res.psd.value)


@pytest.mark.parametrize("eps", [0.1, 0.3, 0.45])
def test_min_trace_completion_matches_closed_form(eps):
    p = L.counterexample_problem(eps)
    r = L.min_nuclear_norm_completion(p.target, p.mask, psd=True)
    assert r.value == pytest.approx(4 - 2 * eps, abs=1e-6)
    assert np.linalg.eigvalsh(r.w)[0] > -1e-6
    assert r.residual < 1e-7


def test_min_nuclear_norm_dual_certificate_is_valid():
    rng = np.random.default_rng(3)
    m = rng.standard_normal((8, 2)) @ rng.standard_normal((2, 7))
    mask = (rng.random((8, 7)) < 0.6).astype(float)
    r = L.min_nuclear_norm_completion(m, mask, tol=1e-10)
    # feasibility of both points, checked here independently of the solver
    assert np.abs(mask * (r.w - m)).max() < 1e-7
    assert np.all(r.dual[mask == 0] == 0)
    assert np.linalg.svd(r.dual, compute_uv=False)[0] <= 1 + 1e-12
    lower = float(np.sum(r.dual * mask * m))
    assert lower == pytest.approx(r.lower_bound)
    # weak duality: every feasible completion has nuclear norm >= lower; the gap is ~0
    assert L.nuclear_norm(r.w) - lower < 1e-5
    # and a random other completion is indeed not better
    other = np.where(mask == 1, m, rng.standard_normal(m.shape))
    assert L.nuclear_norm(other) >= lower - 1e-9


def test_claim_depth_three_is_closer_to_glrl_than_depth_two(completion, completion_glrl):
    res = L.depth_comparison(completion, (2, 3), init_scales=(1e-2,), lr=0.05, steps=5000,
                             glrl_result=completion_glrl)
    d2, d3 = res.distances[0, 0], res.distances[1, 0]
    assert np.all(d3 < d2), (d2, d3)
    claims.check("depth-closer", d3.max() / d2.max())
    assert np.all(res.final_loss < 1e-3)  # both runs did finish learning


# --------------------------------------------------------------------------------------
# Claims of the sensing chapter
# --------------------------------------------------------------------------------------


def test_claim_plateau_times_linear_in_log_inverse_alpha(sensing):
    s = L.SensingSizes.quick()
    res = L.incremental_learning(sensing, np.geomspace(1e-8, 1e-2, 8), seeds=np.arange(4),
                                 lr=s.lr, steps=s.steps, log_every=s.log_every)
    assert len(res.flow) == 32 and np.all(np.isfinite(res.times))
    assert np.all(res.r2 > 0.98), res.r2
    np.testing.assert_allclose(res.predicted_slope, 1 / (2 * s.lr * np.array(s.eigenvalues)))
    claims.check("plateau-times", np.abs(res.slope_ratio - 1).max())
    # directions are learned in order of their eigenvalues
    assert np.all(np.diff(res.times, axis=1) > 0)


def test_claim_under_parameterized_ends_at_best_rank_r(sensing):
    res = L.under_parameterized(sensing, 2, init_scale=1e-6, seeds=(0, 1), steps=3000)
    claims.check("under-parameterized", res.to_best.max())
    assert np.all(res.to_glrl < 1e-6)  # it is the rank-2 GLRL solution of the loss
    assert res.flow.width == 2
    # the loss left over is the part of the target a rank-2 matrix cannot fit (~ lambda_3^2/2)
    assert res.flow.loss[:, -1] == pytest.approx(0.5, rel=0.1)


# --------------------------------------------------------------------------------------
# The engine of the part: one compiled call, float64 scoped, correct steps
# --------------------------------------------------------------------------------------


def test_a_32_point_sweep_is_one_compiled_call():
    p = L.matrix_completion_problem(7, (3.0, 1.0), seed=5)  # a shape no other test uses
    alphas, seeds = np.geomspace(1e-6, 1e-1, 8), np.arange(4)
    with count_compilations() as compiled:
        res = L.gradient_flow(p, init_scales=alphas, seeds=seeds, steps=100, log_every=10)
    assert len(res) == 32
    assert compiled() == 1
    with count_compilations() as compiled:
        L.gradient_flow(p, init_scales=alphas * 2, seeds=seeds + 10, steps=100, log_every=10)
    assert compiled() == 0


def test_gradient_flow_matches_plain_gradient_descent():
    p = L.matrix_completion_problem(6, (2.0, 1.0), seed=2)
    lr, steps = 0.05, 30
    for depth, sym in ((2, True), (3, False)):
        res = L.gradient_flow(p, init_scales=0.3, seeds=7, lrs=lr, depth=depth, symmetric=sym,
                              steps=steps, log_every=steps, width=4)
        shapes = [(6, 4)] if sym else [(6, 4)] + [(4, 4)] * (depth - 2) + [(4, 6)]
        fs = [0.3 * g for g in L.flow.init_noise(7, shapes)]

        def w_of(fs, sym=sym):
            if sym:
                return fs[0] @ fs[0].T
            out = fs[0]
            for f in fs[1:]:
                out = out @ f
            return out

        for _ in range(steps):
            grad_w = p.mask * (w_of(fs) - p.target)  # df/dW (not symmetrized)
            if sym:
                grads = [2 * grad_w @ fs[0]]  # grad_w is symmetric
            else:
                grads = []
                for i in range(len(fs)):
                    left = np.eye(6) if i == 0 else w_of(fs[:i])
                    right = np.eye(6) if i == len(fs) - 1 else w_of(fs[i + 1:])
                    grads.append(left.T @ grad_w @ right.T)
            fs = [f - lr * g for f, g in zip(fs, grads)]
        np.testing.assert_allclose(res.final[0], w_of(fs), rtol=1e-10, atol=1e-12)
        assert res.loss[0, -1] == pytest.approx(p.loss(w_of(fs)), rel=1e-10)


def test_float64_is_scoped():
    p = L.matrix_completion_problem(5, (1.0,), seed=0)
    res = L.gradient_flow(p, init_scales=1e-8, steps=10, log_every=5)
    assert res.final.dtype == np.float64
    assert jnp.ones(1).dtype == jnp.float32  # the global flag was not left on
    assert not jax.config.jax_enable_x64


def test_divergence_is_reported_and_frozen():
    p = L.matrix_completion_problem(6, (50.0,), seed=0)
    res = L.gradient_flow(p, init_scales=1.0, lrs=1.0, steps=200, log_every=10)
    assert 0 <= res.diverged_at[0] < 200
    assert np.all(np.isfinite(res.final))  # frozen at the last finite iterate
    assert np.all(np.isfinite(res.loss))


def test_under_parameterized_width_is_accepted(completion):
    res = L.gradient_flow(completion, init_scales=1e-3, width=1, steps=2000, log_every=100,
                          lrs=0.05)
    w = res.final[0]
    assert np.linalg.matrix_rank(w, tol=1e-8) == 1
    g = L.glrl(completion, max_rank=1)
    assert np.linalg.norm(w - g.iterates[0]) / np.linalg.norm(g.iterates[0]) < 1e-2


def test_plateau_times_interpolate_in_log_space():
    steps = np.arange(0, 101, 10)
    spectrum = np.exp(0.1 * steps)[None, :, None] * 1e-3  # crosses 0.5 * 2 = 1 at ln(1e3)/0.1
    flow = L.FlowResult(np.array([1e-3]), np.array([0]), np.array([0.1]), 2, 1, True, steps,
                        np.zeros((1, 11)), spectrum, np.zeros((1, 1, 1)), None, None,
                        np.zeros((1, 0)), np.zeros((1, 0), int), np.array([-1]))
    t = L.plateau_times(flow, [2.0])
    assert t[0, 0] == pytest.approx(np.log(1e3) / 0.1, rel=1e-9)
    assert np.isnan(L.plateau_times(flow, [1e6])[0, 0])


def test_max_slope_ratio_deviation_is_the_worst_direction():
    lam = np.array([10.0, 5.0, 2.0])
    pred = 1 / (2 * 0.02 * lam)
    slope = pred * np.array([1.05, 0.88, 1.1])  # the second direction is 12% off, below 1

    def result(slope):
        n = len(lam)
        return L.PlateauResult(None, lam, np.zeros((4, n)), np.zeros(4), slope,
                               np.zeros(n), np.ones(n), pred, np.zeros((4, n)))

    res = result(slope)
    direct = max(abs(m / p - 1) for m, p in zip(slope, pred))
    assert isinstance(res.max_slope_ratio_deviation, float)
    assert res.max_slope_ratio_deviation == pytest.approx(direct, rel=1e-12)
    assert res.max_slope_ratio_deviation == pytest.approx(0.12, rel=1e-9)
    assert result(pred.copy()).max_slope_ratio_deviation == 0
    assert np.isnan(result(np.array([pred[0], np.nan, pred[2]])).max_slope_ratio_deviation)


def test_discrete_slope_prediction_and_which_is_closer():
    lam, lr = np.array([4.0, 2.0, 1.0]), 0.02
    cont, disc = 1 / (2 * lr * lam), 1 / np.log1p(2 * lr * lam)
    np.testing.assert_allclose(disc, [6.7382, 12.9929, 25.4967], rtol=1e-4)

    def result(slope):
        n = len(lam)
        return L.PlateauResult(None, lam, np.zeros((4, n)), np.zeros(4), slope, np.zeros(n),
                               np.ones(n), cont, np.zeros((4, n)), disc)

    near_discrete = result(disc * np.array([0.98, 1.01, 0.995]))
    assert near_discrete.max_discrete_ratio_deviation == pytest.approx(0.02, rel=1e-9)
    assert near_discrete.closer_prediction == "discrete"
    assert result(cont * 1.001).closer_prediction == "continuous"
    with pytest.raises(ValueError, match="discrete_slope"):
        L.PlateauResult(None, lam, np.zeros((4, 3)), np.zeros(4), cont, np.zeros(3),
                        np.ones(3), cont, np.zeros((4, 3))).discrete_ratio


# --------------------------------------------------------------------------------------
# Validation at the boundary
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"depth": 1}, "depth"),
    ({"depth": 3, "symmetric": True}, "symmetric"),
    ({"width": 0}, "width"),
    ({"init_scales": -1e-3}, "init_scales"),
    ({"init_scales": []}, "init_scales"),
    ({"lrs": 0.0}, "lrs"),
    ({"seeds": -1}, "seeds"),
    ({"steps": 15, "log_every": 10}, "multiple"),
    ({"references": np.ones((2, 3, 3))}, "references"),
    ({"references": np.zeros((1, 6, 6))}, "references"),
])
def test_gradient_flow_rejects_bad_arguments(kwargs, match):
    p = L.matrix_completion_problem(6, (1.0,), seed=0)
    with pytest.raises(ValueError, match=match):
        L.gradient_flow(p, **kwargs)


def test_bad_problems_and_solver_arguments_are_rejected():
    with pytest.raises(TypeError, match="problem"):
        L.gradient_flow(np.eye(3))
    with pytest.raises(TypeError, match="symmetric"):
        L.gradient_flow(L.matrix_completion_problem(4, (1.0,)), symmetric="yes")
    with pytest.raises(ValueError, match="eigenvalues"):
        L.matrix_completion_problem(5, (1.0, -1.0))
    with pytest.raises(ValueError, match="eigenvalues"):
        L.matrix_sensing_problem(2, (3.0, 2.0, 1.0))
    with pytest.raises(ValueError, match="fraction"):
        L.matrix_completion_problem(5, (1.0,), fraction=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        L.counterexample_problem(0.5)
    with pytest.raises(ValueError, match="mask"):
        L.min_nuclear_norm_completion(np.eye(3), np.ones((2, 2)))
    with pytest.raises(ValueError, match="mask"):
        L.min_nuclear_norm_completion(np.eye(3), 0.5 * np.ones((3, 3)))
    with pytest.raises(ValueError, match="psd"):
        L.min_nuclear_norm_completion(np.ones((3, 4)), np.ones((3, 4)), psd=True)
    with pytest.raises(ValueError, match="max_rank"):
        L.glrl(L.matrix_completion_problem(4, (1.0,)), max_rank=9)
    with pytest.raises(ValueError, match="threshold"):
        L.plateau_times(L.gradient_flow(L.matrix_completion_problem(4, (1.0,)), steps=10,
                                        log_every=10), [1.0], threshold=1.5)


# --------------------------------------------------------------------------------------
# Widgets: small grids, precomputed, no compilation when a control moves
# --------------------------------------------------------------------------------------


def test_widgets_have_small_grids_and_redraw_without_compiling():
    sizes = L.GreedySizes(d=20, eigenvalues=(8.0, 2.0, 0.5), steps=100, lr=0.05, log_every=10,
                          seeds=1, depth_steps=100, depths=(2, 3), widget_steps=100)
    ex = L.glrl_explorer(sizes)
    assert len(list(ex.settings())) <= 30
    fig = F.glrl_figure(1e-2, 2, "separated (8, 2, 0.5)", sizes=sizes)  # precomputes the grid
    with count_compilations() as compiled:
        for depth in (2, 3):
            for alpha in F.WIDGET_INIT_SCALES:
                fig = F.glrl_figure(alpha, depth, "close (3, 2, 1)", sizes=sizes, fig=fig)
    assert compiled() == 0
    s = L.SensingSizes(d=5, measurements=200, eigenvalues=(4.0, 2.0, 1.0), lr=0.02, steps=200,
                       log_every=5, num_alpha=3, seeds=1, under_steps=200, widget_steps=400)
    sx = L.sensing_explorer(s)
    assert len(list(sx.settings())) <= 30
    fig = F.sensing_figure(1e-5, 0.02, 10, "separated (4, 2, 1)", sizes=s)
    with count_compilations() as compiled:
        F.sensing_figure(1e-8, 0.01, 2, "close (4, 3.5, 3)", sizes=s, fig=fig)
    assert compiled() == 0


# --------------------------------------------------------------------------------------
# A property: with every entry observed, GLRL is the truncated eigendecomposition
# --------------------------------------------------------------------------------------

@settings(max_examples=8, deadline=None)
@given(st.lists(st.floats(0.5, 5.0), min_size=2, max_size=3, unique=True), st.integers(0, 99))
def test_glrl_on_a_fully_observed_matrix_gives_the_best_rank_r_approximations(eig, seed):
    eig = np.sort(np.asarray(eig))[::-1]
    assume(np.min(-np.diff(eig)) >= 0.3)  # GLRL needs a gap between eigenvalues
    target = L.psd_target(5, eig, seed=seed)
    p = L.LowRankProblem("completion", target, mask=np.ones((5, 5)), num_measurements=25,
                         eigenvalues=eig)
    g = L.glrl(p)
    assert len(g) == len(eig)
    np.testing.assert_allclose(g.eigenvalues, eig, rtol=1e-6)  # lambda_r of -grad f(W_{r-1})
    for r, w in enumerate(g.iterates, start=1):
        assert np.linalg.norm(w - p.best_rank(r)) < 1e-6 * np.linalg.norm(target)
