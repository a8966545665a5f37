"""Part IV: scale invariance, the exponential schedule, the intrinsic-LR equilibrium."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from dltheory import claims
from dltheory.compat import enable_x64
from dltheory import data as D
from dltheory import models
from dltheory import normalization as N
from dltheory.training import count_compilations


def _batch(n=32, dtype=jnp.float64):
    ds = D.digits()
    return {"x": jnp.asarray(ds.x_train[:n], dtype), "y": ds.y_train[:n]}


# --------------------------------------------------------------------------------------
# Scale invariance and its two consequences (Arora, Li, Lyu 2019, Section 2)
# --------------------------------------------------------------------------------------


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), log_c=st.floats(-3.0, 3.0),
       normalization=st.sampled_from(["layer", "batch"]))
def test_claim_scale_invariance_and_orthogonality(seed, log_c, normalization):
    c = float(np.exp(log_c))
    with enable_x64(True):
        batch = _batch()
        model = N.scale_invariant_mlp((64, 16, 16, 10), seed=seed,
                                      normalization=normalization)
        assert model.kernels[0][...].dtype == jnp.float64
        worst = N.check_scale_invariance(N.xent, model, batch, scales=(c,), rtol=1e-10,
                                         atol=1e-12)
        claims.check("scale-invariance", worst)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def grads(p):
            return jax.grad(lambda q: N.xent(nnx.merge(graphdef, q, rest), batch))(p)

        g = jax.tree.leaves(grads(params))
        gc = jax.tree.leaves(grads(jax.tree.map(lambda w: c * w, params)))
        for gi, gci, w in zip(g, gc, jax.tree.leaves(params)):
            cos = jnp.vdot(gi, w) / (jnp.linalg.norm(gi) * jnp.linalg.norm(w))
            assert abs(float(cos)) < 1e-10  # <grad L(w), w> = 0
            np.testing.assert_allclose(np.asarray(gci) * c, np.asarray(gi), rtol=1e-7,
                                       atol=1e-14)  # grad L(c w) = grad L(w) / c
    assert not jax.config.jax_enable_x64  # the scope did not leak


def test_gradient_scaling_experiment_slope_is_minus_one():
    res = N.gradient_scaling(np.geomspace(0.1, 100, 7), width=16, examples=64)
    np.testing.assert_allclose(res.slope, -1.0, atol=1e-9)
    assert np.abs(res.cosine).max() < 1e-12
    assert np.ptp(res.loss) < 1e-12


def test_invariance_check_rejects_models_that_are_not_invariant():
    batch = _batch(dtype=jnp.float32)
    # an MLP with biases and a trained last layer
    mlp = models.MLP((64, 16, 10), rngs=nnx.Rngs(0), normalization="layer")
    with pytest.raises(ValueError, match="not scale invariant: scaling group"):
        N.check_scale_invariance(N.xent, mlp, batch)
    # eps too large for the weights: invariance fails at small scales
    eps = N.scale_invariant_mlp((64, 16, 16, 10), norm_eps=1.0)
    with pytest.raises(ValueError, match="by c = 0.1"):
        N.check_scale_invariance(N.xent, eps, batch)
    ok = N.scale_invariant_mlp((64, 16, 16, 10))
    assert N.check_scale_invariance(N.xent, ok, batch) < 1e-4
    with pytest.raises(TypeError, match="`model`"):
        N.check_scale_invariance(N.xent, {"w": jnp.ones(3)}, batch)
    with pytest.raises(ValueError, match="scales"):
        N.check_scale_invariance(N.xent, ok, batch, scales=(0.0,))


def test_fixed_head_is_not_trained():
    model = N.scale_invariant_mlp((64, 8, 8, 10))
    assert len(N.groups(model)) == 2  # the two hidden matrices only
    assert isinstance(model.head, N.Fixed)


# --------------------------------------------------------------------------------------
# Auto rate-tuning: the norm identity (float64, every step)
# --------------------------------------------------------------------------------------


def test_claim_norm_identity_without_weight_decay():
    res = N.norm_growth((0.05, 1.0, 20.0), 60, examples=128, width=32)
    assert res.sq_norm.dtype == np.float64
    assert np.all(res.residual <= 1e-10), res.residual
    claims.check("norm-identity", np.max(res.relative_residual))
    # the norm never shrinks, and grows more for a larger learning rate
    assert np.all(np.diff(res.sq_norm, axis=1) >= -1e-12)
    growth = res.sq_norm[:, -1].sum(-1) / res.sq_norm[:, 0].sum(-1)
    assert growth[0] < growth[1] < growth[2]
    # every learning rate, even 20, decreases the loss (auto rate-tuning)
    assert np.all(res.loss[:, -1] < 0.7 * res.loss[:, 0])


# --------------------------------------------------------------------------------------
# Weight decay <=> exponential learning rate (Li, Arora 2020, the main theorem)
# --------------------------------------------------------------------------------------


def test_exponential_schedule_values():
    eta, wd = 0.1, 0.05
    s = N.exponential_lr_schedule(eta, wd)
    a = 1 - eta * wd
    assert float(s(0)) == pytest.approx(eta / a, rel=1e-6)
    assert float(s(10) / s(9)) == pytest.approx(a ** -2, rel=1e-5)
    alpha = N.exp_lr_momentum_root(eta, 0.01, 0.9)
    assert alpha ** 2 - (1 + 0.9 - eta * 0.01) * alpha + 0.9 == pytest.approx(0, abs=1e-12)
    assert N.exp_lr_momentum_root(eta, wd, 0.0) == pytest.approx(a)


def test_claim_weight_decay_equals_exponential_schedule():
    res = N.wd_vs_exponential(0.1, 0.05, 500, width=32)
    assert res.logits_wd.dtype == np.float64
    assert len(res.steps) == 501
    claims.check("wd-exponential", res.output_gap.max())
    # w~_t = alpha^-t w_t for every group
    np.testing.assert_allclose(res.norm_ratio, res.predicted_ratio[:, None] *
                               np.ones_like(res.norm_ratio), rtol=1e-8)
    assert res.lr_exp[-1] / res.lr_exp[0] > 100  # the schedule really is exponential


def test_claim_exponential_schedule_with_momentum_needs_the_buffer_start():
    kw = {"momentum": 0.9, "width": 32}
    good = N.wd_vs_exponential(0.1, 0.01, 500, **kw)
    claims.check("wd-exponential-momentum", good.output_gap.max())
    bad = N.wd_vs_exponential(0.1, 0.01, 500, correct_momentum=False, **kw)
    assert bad.output_gap.max() > 1e-4  # a zero buffer does not reproduce weight decay


# --------------------------------------------------------------------------------------
# The intrinsic learning rate (Li, Lyu, Arora 2020)
# --------------------------------------------------------------------------------------

EQ_CONFIGS = (N.Config(0.1, 0.1), N.Config(0.4, 0.025), N.Config(0.1, 0.1, init_scale=10.0),
              N.Config(1.0, 0.1))


@pytest.fixture(scope="module")
def eq():
    return N.equilibrium_sweep(EQ_CONFIGS, 1000, seeds=(0, 1), batch_size=32, width=64)


def _after(res, values, steps_from):
    """Seed mean of the time average over logged steps >= steps_from."""
    keep = res.steps >= steps_from
    return values[:, :, keep].mean(axis=2).mean(axis=1)


def test_claim_equilibrium_from_initial_norms_1x_and_10x(eq):
    base = EQ_CONFIGS[0]
    t0 = 5 / base.product
    eff = _after(eq, eq.effective_lr, t0)  # (configs, groups)
    start = eq.effective_lr[:, :, 0].mean(1)
    assert np.all(start[0] / start[2] > 50)  # they start 100x apart
    claims.check("equilibrium-from-init", np.max(np.abs(eff[2] / eff[0] - 1)))


def test_claim_same_product_same_equilibrium_different_product_not(eq):
    t0 = 5 / EQ_CONFIGS[0].product
    eff = _after(eq, eq.effective_lr, t0)
    acc = 100 * _after(eq, eq.test_accuracy[..., None], t0)[:, 0]
    claims.check("same-product", np.max(np.abs(eff[1] / eff[0] - 1)))
    assert abs(acc[1] - acc[0]) <= 1.0, acc
    # 10x the product: a different equilibrium. With G (the squared gradient at unit
    # norm) the same, the effective LR sqrt(2 eta lambda / G) would be sqrt(10) = 3.16x
    # larger; G is larger at the larger product, so the measured ratio is below that:
    # 2.78-2.90 (layer 1) and 2.18-2.29 (layer 2) over seed pairs (0,1), (2,3), (4,5),
    # per-seed spread about 3%. The band [0.6, 1.1] x sqrt(10) = [1.90, 3.48] holds them
    # with room for the seed noise and rejects the alternatives: no dependence on the
    # product (ratio 1), a linear one (10), and a fourth-root one (10**0.25 = 1.78).
    ratio = eff[3] / eff[0]
    assert np.all((0.6 * np.sqrt(10) <= ratio) & (ratio <= 1.1 * np.sqrt(10))), ratio
    assert abs(acc[3] - acc[0]) > 1.0, acc
    assert np.all(eq.diverged_at < 0)


def test_claim_angular_update_is_sqrt_2_eta_lambda(eq):
    ang = eq.late(eq.angular).mean(axis=1)  # (configs, groups)
    for cfg, a in zip(EQ_CONFIGS, ang):
        pred = N.equilibrium_norm_prediction(cfg.eta, cfg.wd, 1.0).angular_update
        for ratio in np.atleast_1d(a / pred):
            claims.check("angular-update", ratio)




def test_claim_ilr_momentum():
    """Wan et al. (2021): with heavy-ball momentum gamma the equilibrium angle per step is
    sqrt(2 eta lambda / (1 + gamma)), measured at every step by sgd_wd_angles.

    Measured (1,500 steps, 3 seeds, both layers, RMS over blocks of 50 steps from step
    500): relative errors -0.2%, +0.2%, +0.4% for gamma = 0, 0.5, 0.9, with a spread over
    seeds and layers below 0.6%. The tolerance of 3% is five times that spread; the
    momentum-free formula sqrt(2 eta lambda) is 28% off at gamma = 0.9.
    """
    res = N.momentum_angular_update((0.0, 0.9), eta=0.1, wd=0.1, steps=1000, settle=500,
                                    seeds=(0, 1), block_steps=50, progress=False)
    assert np.all(res.diverged_at < 0)
    assert np.all(res.spread(rms=True) < 0.01), res.spread(rms=True)
    err = res.relative_error(rms=True)
    assert np.all(np.abs(err) <= 0.03), err
    claims.check("ilr-momentum", float(np.max(np.abs(err))))
    # the momentum-free formula is rejected at gamma = 0.9 (predicts 0.141, measured 0.103)
    assert abs(res.relative_error_no_momentum(rms=True)[1]) > 0.15
    # with gamma = 0 the step-by-step angle agrees with the chapters' norm-based one
    assert res.predicted[0] == pytest.approx(res.predicted_no_momentum)


def test_claim_si_sgd_rate():
    """Arora, Li, Lyu (2019): on a scale-invariant loss SGD at a fixed learning rate, not
    tuned to the smoothness, reaches min_{t <= T} E|grad L|^2 = O~(T^-1/2), so the
    smallest gradient norm falls at least like T^-1/4, for every learning rate; an
    ordinary network at the large learning rate diverges.

    Measured (T = 1,000, 2 seeds, fit over T >= 100): slopes -0.81 (eta = 0.1) and -0.89
    (eta = 10, about 7x 2/lambda_max at the initialization), faster than the bound. The
    test asks for at most -1/4 + 0.05 (the bound, with slack for the fit).
    """
    si = N.sgd_rate((0.1, 10.0), 1000, seeds=(0, 1), fit_from=100, sharpness_iters=10,
                    progress=False)
    assert not si.diverged.any()
    assert 10.0 > 4 * 2 / si.sharpness  # the large rate is far beyond 2 / lambda_max
    assert np.all(si.slope <= -0.25 + 0.05), si.slope
    assert np.all(si.slope_unit <= -0.25 + 0.05), si.slope_unit  # norm growth divided out
    claims.check("si-sgd-rate", float(np.max(si.slope)))
    # the norm absorbs the large learning rate and barely moves at the small one
    assert si.norm_growth[1] > 3 and si.norm_growth[0] < 1.2, si.norm_growth
    assert np.all(si.loss[:, :, -1] < 0.5)  # both train (chance level: ln 10 = 2.3)
    # the same widths without normalization (biases, trained last layer): fine at 0.1,
    # diverged within a few steps at 10
    plain = N.sgd_rate((0.1, 10.0), 100, model="plain", seeds=(0, 1), fit_from=50,
                       sharpness_iters=0, progress=False)
    assert not plain.diverged[0] and np.all(plain.loss[0, :, -1] < 0.5)
    assert np.all((plain.diverged_at[1] >= 0) & (plain.diverged_at[1] < 50)), plain.diverged_at
    assert np.all(np.isnan(plain.slope[1:]))


def test_sgd_rate_summaries_by_hand():
    """min_grad_norm is the running minimum of the seed-mean squared gradient, square
    rooted; fitted_slope its log-log slope from fit_from; NaN from a divergence on."""
    steps = np.arange(0, 1001, 10)
    t = np.maximum(steps, 1.0)
    g = np.stack([t ** -1.0, 2 * t ** -1.0])[None]      # (1 eta, 2 seeds, n_log)
    g = np.concatenate([g, g.copy()])                     # 2 etas
    g[1, 0, 50:] = np.nan                                 # a seed that diverged
    sq = np.ones(g.shape + (2,))
    res = N.SgdRateResult(np.array([0.1, 1.0]), "scale_invariant", 32, steps, g, g,
                          g * 2, sq, np.array([[-1, -1], [500, -1]]), 100, float("nan"))
    m = res.min_grad_norm()
    np.testing.assert_allclose(m[0], np.sqrt(np.minimum.accumulate(1.5 * t ** -1.0)))
    assert res.slope[0] == pytest.approx(-0.5, abs=1e-9)
    assert res.slope_unit[0] == pytest.approx(-0.5, abs=1e-9)
    assert np.isnan(m[1, 50:]).all() and np.isfinite(m[1, :50]).all()
    assert np.isnan(res.slope[1])
    np.testing.assert_array_equal(res.diverged, [False, True])
    with pytest.raises(TypeError, match="`unit`"):
        res.min_grad_norm(unit=1)


def test_sgd_wd_angles_records_each_step():
    """The angle the tracker adds to a block is the angle between consecutive iterates,
    and its inner optimizer is sgd_wd itself."""
    rng = np.random.default_rng(0)
    params = {"a": jnp.asarray(rng.standard_normal((3, 4))),
              "b": jnp.asarray(rng.standard_normal(5))}
    opt = N.sgd_wd_angles(0.1, 0.05, 0.9, blocks=(2, 3))
    ref = N.sgd_wd(0.1, 0.05, 0.9)
    state, rstate = opt.init(params), ref.init(params)
    sums = np.zeros((2, 2))
    for step in range(7):
        grads = jax.tree.map(lambda w: jnp.asarray(rng.standard_normal(w.shape)), params)
        upd, state = opt.update(grads, state, params)
        rupd, rstate = ref.update(grads, rstate, params)
        for x, y in zip(jax.tree.leaves(upd), jax.tree.leaves(rupd)):
            np.testing.assert_array_equal(x, y)
        new = jax.tree.map(lambda w, u: w + u, params, upd)
        sums[min(step // 3, 1)] += np.asarray(N.angular_update(params, new))
        params = new
    np.testing.assert_allclose(np.asarray(state.sums), sums, rtol=1e-5)
    assert int(state.count) == 7
    with pytest.raises(TypeError, match="`blocks`"):
        N.sgd_wd_angles(0.1, 0.05, blocks=3)
    with pytest.raises(ValueError, match="blocks"):
        N.sgd_wd_angles(0.1, 0.05, blocks=(0, 3))


def test_angular_update_momentum_formula():
    np.testing.assert_allclose(N.angular_update_momentum(0.1, 0.1, [0.0, 0.9]),
                               [np.sqrt(0.02), np.sqrt(0.02 / 1.9)])
    with pytest.raises(ValueError, match="`momentum`"):
        N.angular_update_momentum(0.1, 0.1, 1.0)


@pytest.mark.parametrize("call, kind, name", [
    (lambda: N.effective_lr(-0.1, {"w": jnp.ones(2)}), ValueError, "eta"),
    (lambda: N.effective_lr(0.0, {"w": jnp.ones(2)}), ValueError, "eta"),
    (lambda: N.effective_lr("0.1", {"w": jnp.ones(2)}), TypeError, "eta"),
    (lambda: N.effective_lr(0.1, {}), ValueError, "params"),
    (lambda: N.sgd_wd(-0.1, 0.1), ValueError, "learning_rate"),
    (lambda: N.sgd_wd(0.1, -0.1), ValueError, "weight_decay"),
    (lambda: N.sgd_wd(0.1, 0.1, momentum=1.0), ValueError, "momentum"),
    (lambda: N.sgd_wd(0.1, 0.1, phase_steps=1.5), ValueError, "phase_steps"),
    (lambda: N.sgd_wd(0.1, 0.1, phase_factor=0.0), ValueError, "phase_factor"),
    (lambda: N.sgd_exponential_lr(float("nan"), 0.1), ValueError, "learning_rate"),
    (lambda: N.groups(3), TypeError, "params"),
    (lambda: N.angular_update({"w": jnp.zeros(2)}, {"w": jnp.ones(2)}), ValueError, "before"),
    (lambda: N.angular_update({"w": jnp.ones(2)}, {"u": jnp.ones(2)}), ValueError, "after"),
    (lambda: N.scale_invariant_mlp(3), TypeError, "sizes"),
    (lambda: N.scale_invariant_mlp(dtype=np.int32), TypeError, "dtype"),
    (lambda: N.ScaleInvariantMLP((4, 3, 2), rngs=nnx.Rngs(0), init_scale=-1.0),
     ValueError, "init_scale"),
    (lambda: N.ScaleInvariantMLP((4, 3, 2), rngs=3), TypeError, "rngs"),
    (lambda: N.xent(N.scale_invariant_mlp((4, 3, 2)), {"x": jnp.ones((1, 4))}),
     TypeError, "batch"),
    (lambda: N.moving_average("abc", 2), TypeError, "values"),
    (lambda: N.equilibrium_sweep(3, 10), TypeError, "configs"),
    (lambda: N.gradient_scaling(()), ValueError, "scales"),
    (lambda: N.wd_vs_exponential(0.1, 0.1, 2, probe=0), ValueError, "probe"),
    (lambda: N.norm_growth((0.1,), 2, width=1), ValueError, "width"),
    (lambda: N.sgd_rate((0.1, -1.0), 10), ValueError, "etas"),
    (lambda: N.sgd_rate((0.1,), 10, model="mlp"), ValueError, "model"),
    (lambda: N.sgd_rate((0.1,), 15, log_every=10), ValueError, "steps"),
    (lambda: N.sgd_rate((0.1,), 10, fit_from=20), ValueError, "fit_from"),
    (lambda: N.momentum_angular_update((0.0, 1.0)), ValueError, "momenta"),
    (lambda: N.momentum_angular_update(steps=100, block_steps=30), ValueError, "steps"),
    (lambda: N.momentum_angular_update(steps=100, block_steps=50, settle=80),
     ValueError, "settle"),
    (lambda: N.momentum_angular_update(eta=0.1, wd=-0.1), ValueError, "wd"),
])
def test_bad_input_names_the_argument(call, kind, name):
    with pytest.raises(kind, match=f"`{name}"):
        call()


def test_sgd_wd_checks_only_known_values():
    """A sweep injects its hyperparameters as traced values: the checks let them through
    (they were checked where the sweep was built), and a concrete array is checked
    entry by entry."""
    opt = jax.jit(lambda lr: N.sgd_wd(lr, 0.1).update({"w": jnp.ones(2)},
                                                      N.sgd_wd(0.1, 0.1).init(
                                                          {"w": jnp.ones(2)}),
                                                      {"w": jnp.ones(2)})[0])
    np.testing.assert_allclose(opt(0.5)["w"], -0.5 * 1.1 * np.ones(2), rtol=1e-6)
    with pytest.raises(ValueError, match="`learning_rate`"):
        N.sgd_wd(np.array([0.1, -0.1]), 0.1)


def test_claim_fast_equilibrium_slope():
    f = N.fast_equilibrium((0.005, 0.01, 0.02, 0.04), 1600, seeds=(0, 1), batch_size=32,
                           width=64, log_every=5)
    assert np.all(np.isfinite(f.mean_times))
    assert np.all(np.diff(f.mean_times) < 0)  # larger product, faster equilibrium
    claims.check("fast-equilibrium", f.slope)


# --------------------------------------------------------------------------------------
# The pieces
# --------------------------------------------------------------------------------------


def test_equilibrium_prediction_is_the_fixed_point_of_the_norm_recursion():
    eta, wd, G = 0.2, 0.05, 3.0
    x = 100.0
    for _ in range(20000):
        x = (1 - eta * wd) ** 2 * x + eta ** 2 * G / x
    p = N.equilibrium_norm_prediction(eta, wd, G)
    assert float(p.sq_norm) == pytest.approx(x, rel=1e-9)
    assert float(p.effective_lr) == pytest.approx(eta / x, rel=1e-9)
    assert float(p.angular_update) == pytest.approx(np.sqrt(2 * eta * wd), rel=0.01)


def test_effective_and_angular_updates():
    model = N.scale_invariant_mlp((64, 8, 8, 10))
    sq = np.asarray(N.group_sq_norms(model))
    np.testing.assert_allclose(np.asarray(N.effective_lr(0.5, model)), 0.5 / sq, rtol=1e-6)
    ws = N.groups(model)
    rot = [w.at[0, 0].add(0.0) * 3.0 for w in ws]  # same direction, another norm
    np.testing.assert_allclose(np.asarray(N.angular_update(ws, rot)), 0.0, atol=1e-3)
    a, b = [jnp.array([1.0, 0.0])], [jnp.array([1.0, 1.0])]
    assert float(N.angular_update(a, b)[0]) == pytest.approx(np.pi / 4, rel=1e-6)
    with pytest.raises(ValueError, match="same groups"):
        N.angular_update(a, [jnp.ones(3)])


def test_equilibrium_time_rule():
    steps = np.arange(0, 2000, 5.0)
    v = 0.05 * (1 - np.exp(-steps / 100)) + 1e-4
    # smoothed v within 10% of 0.05 once exp(-t/100) <= ~0.1: t ~ 230
    t = N.equilibrium_time(steps, v)
    assert 200 <= t <= 260
    two = np.stack([v, np.roll(v, 0) * 0 + 0.05], -1)  # a second group already settled
    assert N.equilibrium_time(steps, two) == t
    assert np.isnan(N.equilibrium_time(steps, np.where(steps > 10, np.nan, v)))
    with pytest.raises(ValueError, match="effective_lr"):
        N.equilibrium_time(steps, np.ones(7))


def test_equilibrium_summaries_match_numpy():
    # a tiny sweep: 3 configurations x 3 seeds whose runs differ (init, minibatch order)
    configs = (N.Config(0.1, 0.1), N.Config(0.4, 0.025), N.Config(0.1, 0.1, init_scale=10.0))
    res = N.equilibrium_sweep(configs, 40, seeds=(0, 1, 2), batch_size=16, width=16,
                              log_every=5)
    v = res.effective_lr                                  # (configs, seeds, n_log, groups)
    nc, ns, nt, ng = v.shape
    assert (nc, ns, nt) == (3, 3, len(res.steps)) and ng >= 2
    # geometric mean over seeds, one run at a time: (prod_s v_s)^(1/n_seeds)
    for layer in range(ng):
        geo = res.geometric_mean_effective_lr(layer=layer)
        assert geo.shape == (nc, nt)
        for i in range(nc):
            direct = np.prod(v[i, :, :, layer], axis=0) ** (1 / ns)
            np.testing.assert_allclose(geo[i], direct, rtol=1e-10)
            arith = v[i, :, :, layer].mean(axis=0)
            assert np.all(geo[i] <= arith * (1 + 1e-12))  # AM-GM: not the plain mean
            assert np.any(geo[i] < arith * (1 - 1e-6))
    np.testing.assert_array_equal(res.geometric_mean_effective_lr(),
                                  res.geometric_mean_effective_lr(layer=0))
    assert res.geometric_mean_effective_lr(None).shape == (nc, nt, ng)
    np.testing.assert_allclose(res.geometric_mean_effective_lr(None)[..., 1],
                               res.geometric_mean_effective_lr(1), rtol=1e-12)
    # the time average after a step, then the mean over seeds
    start = 20
    keep = [k for k, t in enumerate(res.steps) if t >= start]
    assert 0 < len(keep) < nt
    eff = res.mean_after(v, start)
    acc = res.mean_after(res.test_accuracy, start)
    assert eff.shape == (nc, ng) and acc.shape == (nc,)
    for i in range(nc):
        direct = np.mean([np.mean([v[i, s, k] for k in keep], axis=0) for s in range(ns)],
                         axis=0)
        np.testing.assert_allclose(eff[i], direct, rtol=1e-12)
        direct_acc = np.mean([np.mean(res.test_accuracy[i, s, keep]) for s in range(ns)])
        assert acc[i] == pytest.approx(direct_acc, rel=1e-12)
    # the worst layer's relative gap to the reference configuration
    for ref in (0, 2):
        gap = res.effective_lr_gap(start, reference=ref)
        assert gap.shape == (nc,) and gap[ref] == 0
        for i in range(nc):
            direct = max(abs(eff[i, g] / eff[ref, g] - 1) for g in range(ng))
            assert gap[i] == pytest.approx(direct, rel=1e-12)
    assert np.all(res.effective_lr_gap(start)[1:] > 0)
    with pytest.raises(ValueError, match="`layer`"):
        res.geometric_mean_effective_lr(layer=ng)
    with pytest.raises(ValueError, match="`start`"):
        res.mean_after(v, res.steps[-1] + 1)
    with pytest.raises(ValueError, match="`values`"):
        res.mean_after(v[:, :, 1:], start)
    with pytest.raises(ValueError, match="`reference`"):
        res.effective_lr_gap(start, reference=nc)


def test_validation_errors():
    with pytest.raises(ValueError, match="eta \\* wd < 1"):
        N.intrinsic_lr(2.0, 0.6)
    with pytest.raises(ValueError, match="`eta`"):
        N.intrinsic_lr(-0.1, 0.1)
    with pytest.raises(ValueError, match="`wd`"):
        N.intrinsic_lr(0.1, float("nan"))
    with pytest.raises(TypeError, match="`eta`"):
        N.intrinsic_lr("0.1", 0.1)
    assert N.intrinsic_lr(0.1, 5e-4) == pytest.approx(5e-5)
    with pytest.raises(ValueError, match="no real root"):
        N.exp_lr_momentum_root(0.1, 0.05, 0.9)
    with pytest.raises(ValueError, match="`momentum`"):
        N.exponential_lr_schedule(0.1, 0.01, momentum=1.0)
    with pytest.raises(ValueError, match="`sizes`"):
        N.scale_invariant_mlp((64, 10))
    with pytest.raises(ValueError, match="`normalization`"):
        N.scale_invariant_mlp(normalization="group")
    with pytest.raises(ValueError, match="eta \\* wd < 1"):
        N.Config(1.0, 1.5)
    with pytest.raises(ValueError, match="grad_sq_unit"):
        N.equilibrium_norm_prediction(0.1, 0.1, 0.0)
    with pytest.raises(TypeError, match="configs"):
        N.equilibrium_sweep([(0.1, 0.1)], 10)


def test_widget_redraws_without_compiling():
    res = N.widget_grid(40, log_every=10)
    assert len(res.configs) == len(N.WIDGET_ETAS) * len(N.WIDGET_WDS) * len(N.WIDGET_INIT)
    fig = N.equilibrium_figure(res, 0)
    with count_compilations() as compiled:
        N.equilibrium_figure(res, 5, fig=fig)
    assert compiled() == 0


def test_widget_figures_are_legible_at_the_text_width():
    import warnings

    from dltheory import plotting

    pairs, gres = N.growth_grid(10, width=8, examples=16)
    eres = N.widget_grid(20, log_every=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", plotting.SmallTextWarning)
        figs = [N.growth_figure(pairs, gres, 0), N.equilibrium_figure(eres, 0)]
    for fig in figs:
        assert fig.get_size_inches()[0] <= 7.5
        assert len(fig.axes) == 4                       # a 2 x 2 grid
        assert plotting.smallest_text_px(fig) >= plotting.MIN_TEXT_PX


@pytest.mark.slow  # compiling the vmapped ResNet takes most of a minute on two CPU cores
def test_paper_preset_runs_on_the_cifar_standin(tmp_path):
    if not hasattr(D, "write_cifar10_standin") or not hasattr(models, "ResNet"):
        pytest.skip("dltheory.data.cifar10 / models.ResNet are not on this branch yet")
    D.write_cifar10_standin(tmp_path, n_train=64, n_test=32)
    sizes = N.CifarSizes.quick()
    res = N.cifar_equilibrium(sizes, configs=N.PAPER_CONFIGS[:2], root=tmp_path)
    assert res.effective_lr.shape[:3] == (2, 1, len(res.steps))
    assert np.all(np.isfinite(res.effective_lr))
    assert res.effective_lr.shape[-1] == 3  # stem + the block's two convolutions
    # the frozen-head, batch-normalized ResNet is scale invariant in every convolution
    ds = D.cifar10(tmp_path, limit=16)
    model = N.paper._resnet_init((1,), 4)(jax.random.key(0))
    assert N.check_scale_invariance(N.xent, model, {"x": ds.x_train, "y": ds.y_train}) < 1e-4
    paper = N.CifarSizes.paper()
    assert paper.steps * N.PAPER_CONFIGS[0].product >= 5  # long enough to equilibrate


# ------------------------------------------------------------- the two-phase schedule


def test_sgd_wd_two_phase_schedule_by_hand():
    """For the first ``phase_steps`` steps the learning rate is ``phase_factor`` times
    larger and the weight decay as many times smaller: each update by hand."""
    eta, wd, f = 0.1, 0.01, 4.0
    opt = N.sgd_wd(eta, wd, phase_factor=f, phase_steps=2)
    w = jnp.array([1.0, -2.0])
    g = jnp.array([0.5, 0.25])
    state = opt.init(w)
    for step in range(4):
        factor = f if step < 2 else 1.0
        upd, state = opt.update(g, state, w)
        np.testing.assert_allclose(upd, -eta * factor * (g + wd / factor * w), rtol=1e-6)


def test_effective_lr_follows_the_first_phase():
    """The logged effective learning rate eta_t / |w|^2 uses the phase's eta_t: 4 eta
    before ``phase_steps``, eta after (computed here from the logged norms)."""
    C = N.Config
    res = N.equilibrium_sweep((C(0.1, 0.1, phase_factor=4.0, phase_steps=20),), 40,
                              seeds=(0,), batch_size=16, width=16, log_every=10)
    steps = np.asarray(res.steps)
    eta_t = np.where(steps < 20, 0.4, 0.1)
    np.testing.assert_allclose(res.effective_lr[0, 0],
                               eta_t[:, None] / res.sq_norm[0, 0], rtol=1e-6)
    assert (steps < 20).any() and (steps >= 20).any()


def test_settled_from_is_five_time_scales_or_the_last_step():
    C = N.Config
    res = N.equilibrium_sweep((C(0.1, 0.1),), 40, seeds=(0,), batch_size=16, width=8,
                              log_every=10)
    assert res.settled_from(0.5) == pytest.approx(10.0)      # 5 / 0.5 steps, inside the run
    assert res.settled_from(0.01) == 40.0                    # 500 steps: past the end
    assert res.settled_from(0.5, multiple=2.0) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="product"):
        res.settled_from(0.0)


@pytest.mark.parametrize("n, window", [(1, 1), (5, 2), (17, 5), (17, 8), (9, 9)])
def test_moving_average_is_the_edge_normalized_convolution(n, window):
    x = np.random.default_rng(n).standard_normal((3, n))
    kernel = np.ones(window)
    ref = np.stack([np.convolve(r, kernel, "same") for r in x]) / np.convolve(
        np.ones(n), kernel, "same")
    np.testing.assert_allclose(N.moving_average(x, window), ref, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="window"):
        N.moving_average(x, 0)


# ------------------------------------------- core helpers checked by value (mutation)


def test_exp_lr_root_without_momentum_is_one_minus_eta_lambda():
    assert N.exp_lr_momentum_root(0.1, 5e-4) == pytest.approx(1 - 0.1 * 5e-4, rel=1e-15)
    # with momentum: the larger root of x^2 - (1 + g - eta lambda) x + g, checked by numpy
    roots = np.roots([1.0, -(1 + 0.9 - 0.1 * 5e-4), 0.9])
    assert N.exp_lr_momentum_root(0.1, 5e-4, 0.9) == pytest.approx(roots.real.max(),
                                                                  rel=1e-12)


@pytest.mark.parametrize("correct", [False, True])
def test_exponential_lr_first_step_with_momentum(correct):
    """The first update is -eta alpha^-1 (gamma m_0 + g): m_0 = 0 without the correction,
    (alpha - 1) / (eta alpha) w_0 with it."""
    eta, wd, gamma = 0.1, 0.01, 0.9
    alpha = N.exp_lr_momentum_root(eta, wd, gamma)
    opt = N.sgd_exponential_lr(eta, wd, gamma, correct_momentum=correct)
    with enable_x64(True):
        w = {"w": jnp.array([1.0, -2.0, 0.5])}
        g = {"w": jnp.array([0.3, 0.1, -0.2])}
        state = opt.init(w)
        updates, state = opt.update(g, state, w)
        m0 = (alpha - 1) / (eta * alpha) * np.asarray(w["w"]) if correct else 0.0
        expected = -eta / alpha * (gamma * m0 + np.asarray(g["w"]))
        assert np.allclose(np.asarray(updates["w"]), expected, rtol=1e-12, atol=1e-15)


def test_equilibrium_prediction_is_immutable():
    import dataclasses

    pred = N.equilibrium_norm_prediction(0.1, 5e-4, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pred.sq_norm = 0.0


def test_default_model_is_the_documented_one():
    """Defaults: sizes (64, 128, 128, 10), head_scale 1 (the same model spelled out)."""
    a = N.scale_invariant_mlp()
    b = N.scale_invariant_mlp((64, 128, 128, 10), seed=0, head_scale=1.0, init_scale=1.0)
    pa, pb = nnx.state(a, nnx.Param), nnx.state(b, nnx.Param)
    assert [w.shape for w in N.groups(pa)] == [(64, 128), (128, 128)]
    assert all(np.array_equal(x, y) for x, y in zip(N.groups(pa), N.groups(pb)))
    assert a.head[...].shape == (128, 10) and np.array_equal(a.head[...], b.head[...])


def test_optimizer_hyperparameters_are_checked_by_value():
    with pytest.raises(TypeError, match="`learning_rate` must be a number"):
        N.sgd_wd(np.full((2, 2), 0.1), 0.0)         # a grid of rates is not one rate
    assert N.sgd_wd(np.array([0.1, 0.2]), 0.0) is not None   # a 1-D sweep is
    with pytest.raises(ValueError, match="`momentum` must be a finite number < 1"):
        N.sgd_wd(0.1, 0.0, momentum=1.0)
    with pytest.raises(ValueError, match="`momentum` must be a finite number < 1"):
        N.sgd_exponential_lr(0.1, 0.01, momentum=1.0)


def test_exponential_lr_default_has_no_momentum():
    """Without momentum the first update is -eta / alpha * g with alpha = 1 - eta lambda."""
    with enable_x64(True):
        opt = N.sgd_exponential_lr(0.1, 0.01)
        w, g = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([0.3, 0.1])}
        updates, _ = opt.update(g, opt.init(w), w)
        assert np.allclose(np.asarray(updates["w"]), -0.1 / (1 - 0.1 * 0.01) * np.array(
            [0.3, 0.1]), rtol=1e-13)


def test_exp_lr_root_at_a_zero_discriminant():
    # (1 + 0.25 - 0.5 * 0.5)^2 = 1 = 4 * 0.25: the double root 1/2
    assert N.exp_lr_momentum_root(0.5, 0.5, 0.25) == 0.5


def test_lr_wd_error_states_the_product():
    with pytest.raises(ValueError, match=r"eta = 2, wd = 0\.75, eta \* wd = 1\.5$"):
        N.check_lr_wd(2.0, 0.75)


def test_a_hyperparameter_numpy_cannot_read_is_refused_by_name():
    class Unreadable:
        def __array__(self, *args, **kwargs):
            raise TypeError("no array here")

    with pytest.raises(TypeError, match="argument `learning_rate` must be a number"):
        N.sgd_wd(Unreadable(), 0.0)


def test_angle_of_opposite_groups_is_pi_despite_rounding():
    """|w/|w| + w/|w|| / 2 rounds above 1 for some float32 w (13 of the first 200
    seeds); the clamp keeps arcsin finite there. Near pi the arcsin's slope is infinite:
    a half-chord rounded one float32 step below 1 (1 - 6e-8) gives pi - 7e-4 (seed 2 with
    jax 0.7), so the tolerance is 2 sqrt(2 eps), 1e-3, with eps float32's epsilon."""
    tol = 2 * np.sqrt(2 * np.finfo(np.float32).eps) + 1e-6
    for seed in (158,) + tuple(range(5)):
        w = jnp.asarray(np.random.default_rng(seed).standard_normal(50), jnp.float32)
        angle = float(N.angular_update({"w": w}, {"w": -w})[0])
        assert np.isfinite(angle) and abs(angle - np.pi) <= tol, (seed, angle)


def test_hyperparameter_messages_and_whole_number_floats():
    with pytest.raises(ValueError, match=r"`learning_rate` must be a finite number > 0"):
        N.sgd_wd(0.0, 0.0)
    with pytest.raises(ValueError, match=r"`weight_decay` must be a finite number >= 0"):
        N.sgd_wd(0.1, -1.0)
    with pytest.raises(ValueError, match=r"`learning_rate` must be a finite number; got inf"):
        N.sgd_wd(np.inf, 0.0)
    with pytest.raises(TypeError, match="`learning_rate` must be a number"):
        N.sgd_wd(1 + 2j, 0.0)
    with pytest.raises(TypeError, match="`learning_rate` must be a number"):
        N.sgd_wd([[0.1], [0.1, 0.2]], 0.0)           # ragged: numpy refuses it
    assert N.sgd_wd(0.1, 0.0, phase_factor=2.0, phase_steps=2.0) is not None  # a whole float
    with pytest.raises(ValueError, match="`phase_steps` must be an integer"):
        N.sgd_wd(0.1, 0.0, phase_factor=2.0, phase_steps=2.5)
    with pytest.raises(ValueError, match=r"eta \* wd < 1"):
        N.check_lr_wd(2.0, 0.5)                       # eta * wd = 1 exactly
    with pytest.raises(TypeError, match="`params` must be an nnx module or a pytree"):
        N.groups(None)


def test_exponential_lr_corrects_the_momentum_buffer_by_default():
    eta, wd, gamma = 0.1, 0.01, 0.9
    with enable_x64(True):
        w, g = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([0.3, 0.1])}
        a = N.sgd_exponential_lr(eta, wd, gamma)
        b = N.sgd_exponential_lr(eta, wd, gamma, correct_momentum=True)
        ua, _ = a.update(g, a.init(w), w)
        ub, _ = b.update(g, b.init(w), w)
        assert np.array_equal(np.asarray(ua["w"]), np.asarray(ub["w"]))


@pytest.mark.parametrize("eta,wd,g", [(0.1, 0.1, 1.0), (1.0, 0.3, 2.5), (1.0, 0.5, 0.2)])
def test_equilibrium_prediction_is_the_fixed_point_of_the_norm_map(eta, wd, g):
    """Iterate w <- (1 - eta wd) w - eta grad in the plane, the gradient orthogonal to w
    with |grad|^2 = G / |w|^2, to its fixed point: the norm, the effective learning rate
    and the angle per step are the prediction's to 1e-9 (at eta wd = 0.5 the angle is
    pi / 3, against sqrt(2 eta wd) = 1 of the small-angle form)."""
    pred = N.equilibrium_norm_prediction(eta, wd, g)
    w = np.array([3.0, 0.0])
    for _ in range(4000):
        grad = np.sqrt(g) / np.linalg.norm(w) * np.array([-w[1], w[0]]) / np.linalg.norm(w)
        new = (1 - eta * wd) * w - eta * grad
        angle = np.arccos(np.clip(new @ w / np.linalg.norm(new) / np.linalg.norm(w), -1, 1))
        w = new
    np.testing.assert_allclose(float(pred.sq_norm), w @ w, rtol=1e-9)
    np.testing.assert_allclose(float(pred.effective_lr), eta / (w @ w), rtol=1e-9)
    np.testing.assert_allclose(float(pred.angular_update), angle, rtol=1e-9)
