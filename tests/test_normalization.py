"""Part IV: scale invariance, the exponential schedule, the intrinsic-LR equilibrium."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

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
        assert worst <= 1e-10
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
    assert np.all(res.relative_residual <= 1e-12)
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
    assert res.output_gap.max() <= 1e-8, res.output_gap.max()
    # w~_t = alpha^-t w_t for every group
    np.testing.assert_allclose(res.norm_ratio, res.predicted_ratio[:, None] *
                               np.ones_like(res.norm_ratio), rtol=1e-8)
    assert res.lr_exp[-1] / res.lr_exp[0] > 100  # the schedule really is exponential


def test_claim_exponential_schedule_with_momentum_needs_the_buffer_start():
    kw = {"momentum": 0.9, "width": 32}
    good = N.wd_vs_exponential(0.1, 0.01, 500, **kw)
    assert good.output_gap.max() <= 1e-8, good.output_gap.max()
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
    np.testing.assert_allclose(eff[2], eff[0], rtol=0.10)


def test_claim_same_product_same_equilibrium_different_product_not(eq):
    t0 = 5 / EQ_CONFIGS[0].product
    eff = _after(eq, eq.effective_lr, t0)
    acc = 100 * _after(eq, eq.test_accuracy[..., None], t0)[:, 0]
    np.testing.assert_allclose(eff[1], eff[0], rtol=0.10)
    assert abs(acc[1] - acc[0]) <= 1.0, acc
    # 10x the product: a different equilibrium (effective LR ~ sqrt(10) larger)
    assert np.all(eff[3] / eff[0] > 1.5), eff
    assert abs(acc[3] - acc[0]) > 1.0, acc
    assert np.all(eq.diverged_at < 0)


def test_claim_angular_update_is_sqrt_2_eta_lambda(eq):
    ang = eq.late(eq.angular).mean(axis=1)  # (configs, groups)
    for cfg, a in zip(EQ_CONFIGS, ang):
        pred = N.equilibrium_norm_prediction(cfg.eta, cfg.wd, 1.0).angular_update
        np.testing.assert_allclose(a, pred, rtol=0.10)


def test_claim_fast_equilibrium_slope():
    f = N.fast_equilibrium((0.005, 0.01, 0.02, 0.04), 1600, seeds=(0, 1), batch_size=32,
                           width=64, log_every=5)
    assert np.all(np.isfinite(f.mean_times))
    assert np.all(np.diff(f.mean_times) < 0)  # larger product, faster equilibrium
    assert 0.7 <= f.slope <= 1.3, (f.slope, f.mean_times)


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
