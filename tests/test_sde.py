"""Part I (dltheory.sde): SVAG, the SDEs, the scaling rules; each chapter claim measured."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dltheory import claims, sde
from dltheory.sde import experiments as E
from dltheory.sde import figures as F
from dltheory.training import count_compilations, sweep


# --------------------------------------------------------------------------------------
# SVAG's loss: mean kept, noise variance times l (l^2 for adaptive SVAG), known noise
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("l", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("adaptive", [False, True])
def test_claim_svag_keeps_mean_and_multiplies_noise_variance(l, adaptive):
    q = sde.NoisyQuadratic(lam=(0.5, 1.0, 3.0), s=(0.5, 1.0, 2.0), sigma=1.5, x0=(1.0, -2.0, 0.5))
    loss = (sde.adaptive_svag if adaptive else sde.svag)(sde.quadratic_loss, l)
    src = sde.TwoBatches(q.source())
    x = jnp.asarray(q.x0, jnp.float32)
    keys = jax.random.split(jax.random.key(1), 200_000)
    grads = jax.vmap(lambda k: jax.grad(loss)(x, src.sample(k, 0)))(keys)
    grads = np.asarray(grads, np.float64)
    true_grad = np.asarray(q.lam) * np.asarray(q.x0)
    factor = l**2 if adaptive else l
    var = q.noise_cov_diag() * factor
    se = np.sqrt(var / len(keys))
    np.testing.assert_array_less(np.abs(grads.mean(0) - true_grad), 5 * se)  # mean kept
    claims.check("svag-moments", np.max(np.abs(grads.var(0) / var - 1)))  # variance x l (x l^2)
    c1, c2 = sde.svag_coefficients(l, adaptive=adaptive)
    assert c1 + c2 == pytest.approx(1) and c1**2 + c2**2 == pytest.approx(factor)


@pytest.mark.parametrize("l", [1, 3, 4.0])
def test_svag_defaults_and_step_factor(l):
    """SVAG for SGD is the default; it runs l times the steps, adaptive SVAG l^2 (Li,
    Malladi, Arora 2021; Malladi et al. 2022). l = 3 tells l^2 from 2l."""
    r = np.sqrt(2 * l - 1)
    assert sde.svag_coefficients(l) == pytest.approx(((1 + r) / 2, (1 - r) / 2))
    assert sde.svag(sde.quadratic_loss, l).steps_factor == round(l)
    assert sde.adaptive_svag(sde.quadratic_loss, l).steps_factor == round(l * l)
    built = sde.SVAGLoss(sde.quadratic_loss, 0.5, 0.5, l)
    assert built.adaptive is False and built.steps_factor == round(l)


def test_batch_sources_are_immutable():
    """A checked batch source cannot have its parts replaced by unchecked ones."""
    import dataclasses

    q = sde.NoisyQuadratic(lam=(1.0,), s=(1.0,), sigma=1.0, x0=(1.0,))
    src = sde.TwoBatches(q.source())
    with pytest.raises(dataclasses.FrozenInstanceError):
        src.source = object()


@pytest.mark.parametrize("inner", ["minibatches", "noise"])
def test_two_batches_plan_matches_sample(inner):
    """The engine takes SVAG's two batches through the chunk plan; it must give the
    batches ``sample`` gives (a planning source inside, and one without a plan)."""
    from dltheory import data
    if inner == "minibatches":
        source = data.Minibatches.of({"y": jnp.arange(7)}, 2)
    else:
        source = sde.NoisyQuadratic(lam=(1.0, 2.0), s=(1.0, 1.0), sigma=1.0,
                                    x0=(1.0, 1.0)).source()
    src, key = sde.TwoBatches(source), jax.random.key(5)
    plan = data.plan_batches(src, key, jnp.asarray(2), 6)
    for j in range(6):
        got = data.take_batch(src, key, jax.tree.map(lambda a, j=j: a[j], plan))
        want = src.sample(key, jnp.asarray(2 + j))
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


@pytest.fixture(scope="module")
def quad():
    """The chapter's SVAG experiment at quick size, shared by the claim and the widget."""
    return E.svag_quadratic((1, 2, 4, 8, 16), paths=4096, em_substeps=32)


def test_claim_svag_converges_to_the_sde_like_one_over_l(quad):
    res = quad
    # every level agrees with its closed form (the engine runs SVAG correctly) ...
    np.testing.assert_array_less(np.abs(res.final - res.svag_exact[:, -1]), 4 * res.svag_se)
    # ... the gaps between consecutive levels shrink, roughly like 1/l ...
    assert np.all(np.diff(res.gaps) < 0), res.gaps
    claims.check("svag-rate", res.gap_slope)
    # ... and the largest level matches the Euler-Maruyama SDE within 5% (and the exact SDE)
    claims.check("svag-limit", res.em_relative_gap)
    assert abs(res.em[-1] - res.sde_exact[-1]) < 0.01 * res.sde_exact[-1] + 4 * res.em_se
    # at l = 1 (SGD) the gap is clearly larger: the test can tell SGD from its SDE
    assert abs(res.final[0] - res.em[-1]) / res.em[-1] > 4 * res.em_relative_gap


def test_claim_rmsprop_sde_matches_adaptive_svag():
    """Adaptive SVAG at l = 4 is within 4 standard errors of the RMSprop SDE's exact
    expected loss; plain RMSprop (l = 1), whose noise does not yet dominate the gradient,
    is not (measured at 65,536 paths: about 0.6 and 15 standard errors)."""
    res = E.rmsprop_svag_quadratic((1, 4), paths=65536)
    tol = 4.0                                           # in standard errors of the estimate
    z = res.gaps_in_se
    claims.check("rmsprop-sde", z[-1])                  # the SVAG level is within the tolerance
    assert z[0] > 2 * tol, z                            # plain RMSprop is clearly outside it
    # the same in relative terms: 4 SE is about 0.6% of E L(theta_T), l = 1 is off by ~4%
    rel_tol = tol * res.svag_se[:, -1] / res.sde[-1]
    assert res.relative_gaps[-1] < rel_tol[-1] and res.relative_gaps[0] > 2 * rel_tol[0]
    # Euler-Maruyama on rmsprop_sde agrees with the exact moments
    assert res.em_gap_in_se < 4, res.em_gap_in_se
    # u relaxes from 4 s^2 towards s^2 = 1 at rate c2 = (1 - beta) / eta^2 = 0.25
    np.testing.assert_allclose(res.u_em[-1], 1 + 3 * np.exp(-0.25 * res.times[-1]), rtol=1e-3)


def _sq(x, _eval):
    return {"sq": jnp.sum(x**2)}


def test_wrong_svag_weights_would_be_caught():
    """The engine's SVAG with wrong weights is told apart from SVAG: at l = 4 the correct
    weights match SVAG's closed form for E|x_T|^2; the weights (1 +- sqrt(2l)) / 2 (noise
    variance l + 1/2 instead of l) and (1, 0) (no amplification) miss it by many standard
    errors, and each matches the closed form of its own noise variance instead."""
    q, eta, l, n, paths = E.CHAPTER_QUADRATIC, 0.4, 4, 5, 16384
    steps = l * n
    want = q.svag_second_moment(eta, l, steps)[-1]
    r = np.sqrt(2 * l)
    variants = {"svag": sde.svag(sde.quadratic_loss, l),
                "sqrt(2l)": sde.SVAGLoss(sde.quadratic_loss, (1 + r) / 2, (1 - r) / 2, l),
                "no amplification": sde.SVAGLoss(sde.quadratic_loss, 1.0, 0.0, l)}
    cfg = sde.svag_config(sde.sgd_config(eta, 1), l)
    for name, loss in variants.items():
        res = sweep(loss, jnp.asarray(q.x0, jnp.float32), cfg.spec(), steps=steps,
                    seeds=list(range(paths)), batches=sde.TwoBatches(q.source()),
                    log_every=steps, metrics=_sq)
        sq = np.asarray(res["sq"][:, -1], np.float64)
        mean, se = sq.mean(), sq.std(ddof=1) / np.sqrt(paths)
        multiplier = loss.c1**2 + loss.c2**2            # the noise variance, in units of one batch
        own = sde.NoisyQuadratic(q.lam, tuple(np.asarray(q.s) * np.sqrt(multiplier / l)),
                                 x0=q.x0).svag_second_moment(eta, l, steps)[-1]
        assert abs(mean - own) < 4 * se, (name, (mean - own) / se)
        if name == "svag":
            assert abs(mean - want) < 4 * se, (mean - want) / se
        else:
            assert abs(mean - want) > 10 * se, (name, (mean - want) / se)


# --------------------------------------------------------------------------------------
# Adam against the Adam SDE
# --------------------------------------------------------------------------------------


def test_claim_adam_sde_weak_error_shrinks_with_eta():
    """Adam at eta = 0.2, 0.141, 0.1 (noise scale 5, 7.1, 10; one SDE) against the Adam
    SDE's exact expected loss at T = 1: the weak error is many standard errors at the
    largest eta and shrinks at least like eta; the same runs measured against the SDE
    without momentum (the RMSprop SDE) or with its noise off by 5% are far off at every
    eta. Measured at 65,536 paths: errors 22, 12 and 7 standard errors, fitted order
    about 1.6."""
    q = E.ADAPTIVE_QUADRATIC
    res = E.adam_sde_weak_error((0.2, 0.2 / np.sqrt(2), 0.1), paths=65536, em_paths=16384,
                                em_substeps=32, problem=q)
    err, se = np.abs(res.errors), res.errors_se
    assert res.errors_in_se[0] > 10, res.errors_in_se    # Adam at eta = 0.2 is not its SDE
    assert np.all(np.diff(err) < 0), err                  # the error shrinks with eta ...
    assert err[0] - err[-1] > 5 * np.hypot(se[0], se[-1]), (err, se)
    assert res.ratio > 1.5, res.ratio                    # ... by a factor near 2 or more
    claims.check("adam-sde-weak-error", res.slope)        # ... at least like eta
    # the exact moments are those of the simulated SDE (up to Euler-Maruyama's O(dt) bias)
    assert abs(res.em[-1] - res.sde[-1]) < 4 * res.em_se[-1] + 0.01 * res.sde[-1]
    # wrong SDEs: without the momentum process, the gap is large and does not shrink ...
    wrong = np.abs(res.adam[:, -1] - res.rmsprop_sde[-1])
    assert np.all(wrong > 20 * se), wrong / se
    assert wrong[-1] > 0.7 * wrong[0], wrong
    # ... and with the noise of m off by 5% either way it is far off at every eta
    lam = np.asarray(q.lam)
    for scale in (0.95, 1.05):
        a = sde.adam_sde_second_moment(q.lam, q.s, q.x0, [res.times[-1]], sigma=q.sigma,
                                       eta=0.2, b1=0.9, eps=1e-8, noise_scale=scale)
        off = np.abs(res.adam[:, -1] - 0.5 * (a[-1] * lam).sum())
        assert np.all(off > 8 * se), (scale, off / se)
        assert off[-1] > 3 * err[-1], (scale, off[-1], err[-1])


def test_adam_sde_second_moment_matches_euler_maruyama_and_its_limits():
    """The exact moments against Euler-Maruyama paths of adam_sde (fine steps), and two
    limits: no noise gives the deterministic flow, and the RMSprop moments with u at
    equilibrium are Adam's without momentum (b1 -> 0 as eta -> 0)."""
    q = sde.NoisyQuadratic(lam=(0.5, 3.0), s=(1.0, 0.5), sigma=4.0, x0=(1.0, -1.0))
    times = np.linspace(0, 1.0, 5)                      # 16 steps of eta^2 = 1 / 16
    kw = dict(sigma=q.sigma, eta=0.25, eps=1e-3)
    exact = sde.adam_sde_second_moment(q.lam, q.s, q.x0, times, b1=0.8, **kw)
    d, g, p = sde.adam_sde(q.lam, q.s, b1=0.8, b2=0.99, **kw)
    paths = sde.sde_simulate(d, g, np.concatenate([q.x0, np.zeros(4)]), dt=0.25**2 / 64,
                             steps=64 * 16, paths=8192, log_every=64 * 4, params=p)
    x2 = paths.x[..., :2] ** 2
    se = x2.std(0, ddof=1) / np.sqrt(x2.shape[0])
    np.testing.assert_array_less(np.abs(x2.mean(0)[1:] - exact[1:]), 4 * se[1:] + 0.01 * exact[1:])
    assert exact.shape == (5, 2) and np.all(exact[0] == np.asarray(q.x0) ** 2)
    # no noise: theta is deterministic; with tiny momentum (c1 large) the RMSprop limit
    flat = sde.adam_sde_second_moment(q.lam, q.s, q.x0, times, b1=0.8, noise_scale=0.0, **kw)
    assert np.all(flat[1:] < exact[1:])
    fast = sde.adam_sde_second_moment(q.lam, q.s, q.x0, times, b1=0.0, eta=0.02,
                                      sigma=q.sigma * 0.25 / 0.02, eps=1e-3 * 0.25 / 0.02)
    rms = sde.rmsprop_sde_second_moment(q.lam, q.s, q.x0, times, beta=0.5, eta=0.25,
                                        sigma=q.sigma, eps=1e-3, u0=np.asarray(q.s) ** 2)
    np.testing.assert_allclose(fast[1:], rms[1:], rtol=0.02)


# --------------------------------------------------------------------------------------
# Euler-Maruyama
# --------------------------------------------------------------------------------------


def test_sde_simulate_matches_ornstein_uhlenbeck_moments():
    q = sde.NoisyQuadratic(lam=(1.0, 3.0), s=(1.0, 0.5), x0=(1.0, -1.0))
    d, g, p = sde.sgd_sde(q.lam, q.s, 0.5)
    paths = sde.sde_simulate(d, g, q.x0, dt=1e-3, steps=1000, paths=20_000, log_every=250,
                             params=p)
    assert paths.x.shape == (20_000, 5, 2)
    np.testing.assert_allclose(paths.times, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(paths.x[:, -1].mean(0), np.exp(-np.array(q.lam)) * q.x0,
                               atol=0.02)
    np.testing.assert_allclose(paths.mean_sq_norm(), q.sde_second_moment(0.5, paths.times),
                               rtol=0.02)


def test_svag_second_moment_tends_to_the_sde():
    q = E.CHAPTER_QUADRATIC
    sde_val = q.sde_second_moment(0.4, 2.0)
    errs = [abs(q.svag_second_moment(0.4, l, 5 * l)[-1] - sde_val) for l in (64, 128, 256)]
    assert errs[0] / errs[1] == pytest.approx(2, rel=0.05)
    assert errs[1] / errs[2] == pytest.approx(2, rel=0.05)


# --------------------------------------------------------------------------------------
# Scaling rules
# --------------------------------------------------------------------------------------


def test_digits_max_log_gap_between_two_settings():
    x = np.arange(6.0)
    rates = np.array([1.0, 0.7, 0.6, 0.2])
    loss = 2.0 * np.exp(-rates[:, None] * x[None])
    loss[3, 2] = np.nan                                    # a diverged point is skipped
    c = E.DigitsCurves(("1", "2", "4", "8"), x, loss, 1 - loss, np.zeros(4, bool))
    lg = np.log(loss)
    for ref in range(4):
        for i in range(4):
            direct = float(np.nanmax(np.abs(np.log(loss[i]) - np.log(loss[ref]))))
            assert c.max_log_gap(ref, i) == pytest.approx(direct, rel=1e-12)
            assert c.max_log_gap(reference=i, setting=ref) == pytest.approx(direct, rel=1e-12)
            # exponentials: the gap is |a_i - a_ref| at the last logged point
            assert direct == pytest.approx(abs(rates[i] - rates[ref]) * x[-1], rel=1e-12)
        assert c.max_log_gap(ref, ref) == 0
        # no setting: the largest gap over all settings, as before
        assert c.max_log_gap(ref) == pytest.approx(
            float(np.nanmax(np.abs(lg - lg[ref]))), rel=1e-12)
        assert c.max_log_gap(ref) == max(c.max_log_gap(ref, i) for i in range(4))
    assert c.max_log_gap(1, 2) == pytest.approx(0.1 * 5, rel=1e-12)
    assert c.max_log_gap(1, 2) < c.max_log_gap(1)
    with pytest.raises(ValueError, match="`setting`"):
        c.max_log_gap(0, 4)
    with pytest.raises(ValueError, match="`reference`"):
        c.max_log_gap(-1, 2)
    with pytest.raises(TypeError, match="`setting`"):
        c.max_log_gap(0, 1.0)


def test_linear_rule():
    c = sde.linear_scaling_rule(sde.sgd_config(0.1, 32), 4)
    assert (c.lr, c.batch_size) == (pytest.approx(0.4), 128)
    c = sde.linear_scaling_rule(sde.sgd_config(0.1, 32), 0.5)
    assert (c.lr, c.batch_size) == (pytest.approx(0.05), 16)


def test_rmsprop_and_adam_configs_run_the_update_they_state():
    """One step of each configuration's optimizer against its formula, with an eps large
    enough to tell ``sqrt(v) + eps`` from ``sqrt(v + eps)``; eps defaults to 1e-8."""
    assert sde.rmsprop_config(0.1, 4).eps == 1e-8 and sde.adam_config(0.1, 4).eps == 1e-8
    g = np.array([0.5, -2.0])
    theta = jnp.asarray([1.0, 1.0])
    c = sde.rmsprop_config(0.1, 4, beta=0.9, eps=0.3)  # v starts at 0 by default
    opt = c.spec().transformation()
    upd, _ = opt.update(jnp.asarray(g), opt.init(theta), theta)
    v = (1 - 0.9) * g**2
    np.testing.assert_allclose(np.asarray(upd), -0.1 * g / (np.sqrt(v) + 0.3), rtol=1e-6)
    built = sde.OptimizerConfig("rmsprop", 0.1, 4, b2=0.9, eps=0.3).spec().transformation()
    upd_built, _ = built.update(jnp.asarray(g), built.init(theta), theta)
    np.testing.assert_allclose(np.asarray(upd_built), np.asarray(upd), rtol=1e-7)
    c = sde.adam_config(0.1, 4, b1=0.8, b2=0.9, eps=0.3)
    opt = c.spec().transformation()
    upd, _ = opt.update(jnp.asarray(g), opt.init(theta), theta)
    m_hat, v_hat = g, g**2  # bias-corrected first step
    np.testing.assert_allclose(np.asarray(upd), -0.1 * m_hat / (np.sqrt(v_hat) + 0.3), rtol=1e-6)
    with pytest.raises(AttributeError):  # configurations are values
        c.lr = 1.0


def test_noise_to_signal_with_two_examples():
    """The smallest data set: two examples, batch 1 (without-replacement factor 1)."""
    assert sde.NoiseToSignal(G=2.0, N1=3.0, n=1).N(1) == 0.0  # one example: no noise
    nts = sde.NoiseToSignal(G=2.0, N1=3.0, n=2)
    assert nts.N(1) == pytest.approx(3.0) and nts.N(2) == 0.0
    for bad in (0, 3):
        with pytest.raises(ValueError, match="batch_size"):
            nts.N(bad)
    assert nts.ratio(1) == pytest.approx(1.5)
    with pytest.raises(AttributeError):  # measurements are values
        nts.G = 1.0
    data = {"x": jnp.asarray([[1.0], [3.0]])}
    G, N1 = sde.noise_terms(lambda w, b: 0.5 * jnp.mean((b["x"] @ w) ** 2), jnp.ones(1), data)
    # per-example gradients x^2 w = 1 and 9: mean 5, variance 16
    assert float(G) == pytest.approx(25.0) and float(N1) == pytest.approx(16.0)
    loss = lambda w, b: 0.5 * jnp.mean((b["x"] @ w) ** 2)  # noqa: E731
    for bad in ({"x": jnp.asarray(1.0)}, {"x": jnp.ones((2, 1)), "y": jnp.ones(3)}):
        with pytest.raises(ValueError, match="leading example axis"):
            sde.noise_terms(loss, jnp.ones(1), bad)


def test_scaled_batch_sizes_at_the_edges():
    """kappa may scale a batch to exactly 1, and to a large batch that is an integer up to
    rounding (11 * (1e8 / 11) is off by 1.5e-8, relative 1.5e-16); not to a fraction."""
    assert sde.linear_scaling_rule(sde.sgd_config(0.1, 32), 1 / 32).batch_size == 1
    assert sde.linear_scaling_rule(sde.sgd_config(0.1, 11), 1e8 / 11).batch_size == 100_000_000
    with pytest.raises(ValueError, match="kappa"):
        sde.linear_scaling_rule(sde.sgd_config(0.1, 32), 1.01)
    with pytest.raises(ValueError, match="kappa"):
        sde.linear_scaling_rule(sde.sgd_config(0.1, 32), 1 / 64)
    # within 1e-9 of an integer counts as one, relative to the batch (1 below batch 1)
    with pytest.raises(ValueError, match="kappa"):
        sde.linear_scaling_rule(sde.sgd_config(0.1, 32), (1 + 1.5e-9) / 32)
    with pytest.raises(ValueError, match="kappa"):  # rounds to a batch of 0
        sde.linear_scaling_rule(sde.sgd_config(0.1, 32), 1e-12 / 32)
    # the square-root rule may take 1 - beta to exactly 1 (beta = 0), not beyond
    c = sde.sqrt_scaling_rule(sde.adam_config(1e-3, 8, b1=0.75, b2=0.875), 4)
    assert c.b1 == 0.0 and c.b2 == 0.5
    with pytest.raises(ValueError, match="b1"):
        sde.sqrt_scaling_rule(sde.adam_config(1e-3, 8, b1=0.7, b2=0.875), 4)


def test_sqrt_rule_keeps_the_sde_constants():
    base = sde.adam_config(1e-3, 8, b1=0.99, b2=0.999, eps=1e-8)
    for kappa in (4, 16):
        c = sde.sqrt_scaling_rule(base, kappa)
        assert c.batch_size == 8 * kappa
        assert c.lr == pytest.approx(1e-3 * np.sqrt(kappa))
        assert 1 - c.b1 == pytest.approx(kappa * 0.01)
        assert 1 - c.b2 == pytest.approx(kappa * 0.001)
        assert c.eps == pytest.approx(1e-8 / np.sqrt(kappa))
        # sigma is the noise scale at the batch: sigma^2 ~ 1 / B
        sigma, sigma_k = 1.0, 1.0 / np.sqrt(kappa)
        assert sigma_k * c.lr == pytest.approx(sigma * base.lr)            # sigma_0
        assert c.eps * c.lr == pytest.approx(base.eps * base.lr)           # eps_0
        assert (1 - c.b2) / c.lr**2 == pytest.approx((1 - base.b2) / base.lr**2)  # c_2
        assert (1 - c.b1) / c.lr**2 == pytest.approx((1 - base.b1) / base.lr**2)  # c_1


def test_adaptive_svag_config_keeps_the_sde_constants():
    base = sde.rmsprop_config(0.2, 1, beta=0.99, eps=1e-3, initial_scale=2.0)
    for l in (2, 4):
        c = sde.adaptive_svag_config(base, l)
        sigma_l = l  # noise standard deviation grows by l
        assert sigma_l * c.lr == pytest.approx(base.lr)
        assert c.eps * c.lr == pytest.approx(base.eps * base.lr)
        assert (1 - c.b2) / c.lr**2 == pytest.approx((1 - base.b2) / base.lr**2)
        assert c.initial_scale / sigma_l**2 == pytest.approx(base.initial_scale)
    assert sde.svag_config(sde.sgd_config(0.4, 8), 8).lr == pytest.approx(0.05)


@pytest.mark.parametrize("call, words", [
    (lambda: sde.linear_scaling_rule(sde.sgd_config(0.1, 32), 0), "`kappa` must be a finite number > 0"),
    (lambda: sde.linear_scaling_rule(sde.sgd_config(0.1, 32), -2), "`kappa` must be a finite number > 0"),
    (lambda: sde.linear_scaling_rule(sde.sgd_config(0.1, 32), 1.5 / 32 * 3), "positive integer"),
    (lambda: sde.sqrt_scaling_rule(sde.sgd_config(0.1, 32), 4), "for RMSprop and Adam"),
    (lambda: sde.sqrt_scaling_rule(sde.adam_config(1e-3, 8, b1=0.9), 16), "outside [0, 1)"),
    (lambda: sde.adam_config(1e-3, 8, b1=1.0), "`b1` must lie in [0.0, 1.0)"),
    (lambda: sde.adam_config(1e-3, 8, b2=-0.1), "`b2` must lie in [0.0, 1.0)"),
    (lambda: sde.adam_config(-1e-3, 8), "`lr` must be a finite number > 0"),
    (lambda: sde.OptimizerConfig("sgd", 0.1, 8, b1=0.9), "`b1` does not apply to sgd"),
    (lambda: sde.OptimizerConfig("lion", 0.1, 8), "`algorithm` must be one of"),
    (lambda: sde.svag_coefficients(0.5), "`l` must be a finite number >= 1"),
    (lambda: sde.svag_config(sde.adam_config(1e-3, 8), 2), "use adaptive_svag_config"),
    (lambda: sde.adaptive_svag_config(sde.sgd_config(0.1, 8), 2), "use svag_config"),
    (lambda: sde.NoisyQuadratic(lam=(1.0, -1.0), s=(1.0, 1.0)), "`lam` must be"),
    (lambda: sde.NoisyQuadratic(lam=(1.0,), s=(1.0, 1.0)), "`s` must have shape (1,)"),
    (lambda: sde.sde_simulate(*sde.sgd_sde((1.0,), (1.0,), 0.1)[:2], [0.0], dt=-1.0, steps=2,
                              paths=2), "`dt` must be a finite number > 0"),
    (lambda: E.svag_quadratic((0, 1)), "`ls` must be a 1-D sequence of integers >= 1"),
    (lambda: E.svag_quadratic((1,), eta=0.3), "integer number of SGD steps"),
    (lambda: E.lsr_digits((2, 4)), "must start with 1"),
    # the adaptive SDEs, their exact moments and the Adam experiment
    (lambda: sde.rmsprop_sde([1.0], [1.0], sigma=1.0, eta=0.0, beta=0.9, eps=0.0),
     "`eta` must be a finite number > 0"),
    (lambda: sde.adam_sde([1.0, -1.0], [1.0, 1.0], sigma=1.0, eta=0.1, b1=0.9, b2=0.99,
                          eps=0.0), "`lam` must be a non-empty 1-D sequence of finite numbers > 0"),
    (lambda: sde.sgd_sde([1.0], [1.0, 1.0], 0.1), "`s` must be a non-empty 1-D sequence"),
    (lambda: sde.adam_sde_second_moment([1.0], [1.0], [1.0], [0.0, 1.0], sigma=1.0,
                                        eta=float("nan"), b1=0.9, eps=0.0), "`eta` must be"),
    (lambda: sde.adam_sde_second_moment([1.0], [1.0], [1.0], [0.0, 1.0], sigma=1.0, eta=0.1,
                                        b1=1.0, eps=0.0), "`b1` must lie in [0.0, 1.0)"),
    (lambda: sde.adam_sde_second_moment([1.0], [0.0], [1.0], [1.0], sigma=1.0, eta=0.1,
                                        b1=0.9, eps=0.0), "needs s > 0 where eps = 0"),
    (lambda: sde.rmsprop_sde_second_moment([1.0], [1.0], [1.0], [1.0, 0.5], sigma=1.0,
                                           eta=0.1, beta=0.9, eps=0.0),
     "`times` must be non-decreasing"),
    (lambda: sde.rmsprop_sde_second_moment([1.0], [1.0], [1.0, 2.0], [1.0], sigma=1.0,
                                           eta=0.1, beta=0.9, eps=0.0), "`x0` must be"),
    (lambda: E.adam_sde_weak_error((0.1, 0.2)), "`etas` must hold at least two"),
    (lambda: E.adam_sde_weak_error((0.2,)), "`etas` must hold at least two"),
    (lambda: E.adam_sde_weak_error((0.2, -0.1)), "`etas` must be a non-empty 1-D sequence"),
    (lambda: E.adam_sde_weak_error((0.2, 0.15)), "`etas` must make horizon / eta^2"),
    (lambda: E.adam_sde_weak_error(paths=1), "`paths` must be an integer >= 2"),
    (lambda: E.rmsprop_svag_quadratic((1, 2), beta=1.0), "`beta` must lie in [0.0, 1.0)"),
    (lambda: E.rmsprop_svag_quadratic((1, 2), eta=0.3), "`horizon` must make"),
    (lambda: E.svag_quadratic((1,), key=-1), "`key` must be an integer >= 0"),
    (lambda: sde.rmsprop_config(0.1, 4, beta=1.5), "`beta` must lie in [0.0, 1.0)"),
    (lambda: sde.OptimizerConfig("sgd", 0.1, 8, eps=-1.0), "must be None"),
    (lambda: sde.svag_coefficients(float("nan")), "`l` must be finite"),
    (lambda: sde.SVAGLoss(sde.quadratic_loss, float("nan"), 0.0, 1.0), "`c1` must be finite"),
    (lambda: sde.SVAGLoss(sde.quadratic_loss, 1.0, 0.0, 0.5), "`l` must be a finite number >= 1"),
    (lambda: E.AdaptiveSizes(0, 16, 6, 2, 32), "`quad_paths` must be an integer >= 1"),
    (lambda: E.scaling_rules_digits((1, 4), base=sde.sgd_config(0.1, 4)),
     "`base` must be an RMSprop or Adam configuration"),
    (lambda: E.scaling_rules_digits((1, 4), label_noise=1.5), "`label_noise` must lie in"),
    (lambda: E.svag_digits((1, 2), seeds=0), "`seeds` must be an integer >= 1"),
    (lambda: sde.NoisyQuadratic((1.0,), (1.0,)).svag_second_moment(0.1, 0.5, 4),
     "`l` must be a finite number >= 1"),
    (lambda: sde.quadratic_loss(jnp.ones(3), {"lam": jnp.ones(2), "s": jnp.ones(2),
                                              "z": jnp.ones(2)}), "`x` must have the shape"),
    (lambda: sde.quadratic_loss(jnp.ones(2), {"lam": jnp.ones(2)}), "`batch` must be a dict"),
    (lambda: sde.noise_to_signal(lambda w, b: jnp.sum(w), {}, {"x": jnp.ones((3, 2))}),
     "`params` must hold at least one parameter array"),
    (lambda: sde.sde_simulate(*sde.sgd_sde((1.0,), (1.0,), 0.1)[:2], [float("nan")], dt=0.1,
                              steps=2, paths=2), "`x0` must be a non-empty 1-D sequence"),
])
def test_bad_arguments(call, words):
    with pytest.raises(ValueError) as err:
        call()
    assert words in str(err.value)


def test_type_errors():
    with pytest.raises(TypeError, match="OptimizerConfig"):
        sde.linear_scaling_rule({"lr": 0.1}, 2)
    with pytest.raises(TypeError, match="batch source"):
        sde.TwoBatches(object())
    with pytest.raises(TypeError, match="callable"):
        sde.svag(3, 2)
    with pytest.raises(TypeError, match="`drift` must be callable; got 3"):
        sde.sde_simulate(3, lambda x, t, p: x, [1.0], dt=0.1, steps=1, paths=2)
    with pytest.raises(TypeError, match="`lam` must be a 1-D sequence of real numbers"):
        sde.adam_sde_second_moment("abc", [1.0], [1.0], [1.0], sigma=1.0, eta=0.1, b1=0.9,
                                   eps=0.0)
    with pytest.raises(TypeError, match="`problem` must be a NoisyQuadratic"):
        E.adam_sde_weak_error(problem=3)
    with pytest.raises(TypeError, match="`ls` must be a 1-D sequence of integers"):
        E.rmsprop_svag_quadratic(4)
    with pytest.raises(TypeError, match="`res` must be an SVAGQuadraticResult"):
        F.svag_figure(3, 1)
    with pytest.raises(ValueError, match=r"`l` must be one of \[1\]; got 1.5"):
        F.svag_figure(E.SVAGQuadraticResult(np.array([1]), 0.5, np.arange(2.0),
                                            *([np.zeros((1, 2))] * 3), np.zeros(2), 0.0,
                                            np.zeros(2), 2), 1.5)
    with pytest.raises(TypeError, match="`model` must be callable"):
        sde.xent_loss(3, {"x": jnp.ones((1, 64)), "y": jnp.zeros(1, jnp.int32)})
    with pytest.raises(TypeError, match="`config` must be an OptimizerConfig"):
        from dltheory.sde import cifar
        cifar.cifar_run({"lr": 0.1})


# --------------------------------------------------------------------------------------
# Noise to signal
# --------------------------------------------------------------------------------------


def test_noise_to_signal_matches_brute_force():
    rng = np.random.default_rng(0)
    data = {"x": jnp.asarray(rng.normal(size=(40, 3)), jnp.float32),
            "y": jnp.asarray(rng.normal(size=40), jnp.float32)}
    w = jnp.asarray([0.3, -0.2, 0.5], jnp.float32)
    loss = lambda w, b: 0.5 * jnp.mean((b["x"] @ w - b["y"]) ** 2)  # noqa: E731
    ns = sde.noise_to_signal(loss, w, data)
    per = np.asarray((data["x"] @ w - data["y"])[:, None] * data["x"])
    g = per.mean(0)
    assert ns.G == pytest.approx(float(g @ g), rel=1e-5)
    assert ns.N1 == pytest.approx(float(((per - g) ** 2).sum(1).mean()), rel=1e-5)
    # E|g_B - g|^2 over all batches of size 2 drawn without replacement
    pairs = [(i, j) for i in range(40) for j in range(i + 1, 40)]
    brute = np.mean([np.sum(((per[i] + per[j]) / 2 - g) ** 2) for i, j in pairs])
    assert ns.N(2) == pytest.approx(brute, rel=1e-5)
    assert ns.ratio(2) == pytest.approx(brute / ns.G, rel=1e-5)


# --------------------------------------------------------------------------------------
# Digits: the linear rule and the square-root rule (the chapters' claims)
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_claim_linear_rule_holds_when_noise_dominates_and_fails_when_not():
    res = E.lsr_digits((1, 4, 64), base_batch=4, base_lr=0.02, epochs=4, seeds=2, width=32)
    nsr_small, nsr_large = res.median_ratio(4), res.median_ratio(64)
    assert nsr_small > 20 and nsr_large < 5           # both regimes measured
    claims.check("linear-rule-holds", res.gaps[1])               # curves within 5%
    claims.check("linear-rule-fails", res.gaps[2] / res.gaps[1])  # visibly separated


@pytest.mark.slow
def test_claim_sqrt_rule_beats_no_rescaling_and_the_linear_rule():
    """The chapter's setting: Adam on digits with half the labels random (noise dominated)."""
    base = sde.adam_config(5e-4, 4, b1=0.995, b2=0.9995, eps=1e-8)
    res = E.scaling_rules_digits((1, 4, 16), base=base, epochs=4, seeds=2, width=32,
                                 label_noise=0.5)
    gaps = {r: res.gap(r) for r in E.RULES}
    claims.check("sqrt-rule-vs-linear", gaps["linear"] / gaps["sqrt"])  # several times
    claims.check("sqrt-rule-vs-none", gaps["none"] / gaps["sqrt"])      # smaller than both
    # where the noise does not dominate (clean labels) the advantage shrinks: the chapter
    # reports it as the rule's limit (measured 0.65 vs 0.88 vs 2.2 at width 32, 6 epochs)
    clean = E.scaling_rules_digits((1, 16), base=base, epochs=4, seeds=2, width=32)
    cg = {r: clean.gap(r) for r in E.RULES}
    assert cg["sqrt"] < cg["linear"] < cg["none"], cg
    assert cg["linear"] < 2 * cg["sqrt"], cg
    assert res.best_rule == clean.best_rule == "sqrt"


def test_rule_result_verdicts_on_made_up_curves():
    """best_rule and early_log_gap on curves whose answers are known: under "linear" the
    large batch runs at twice the reference loss over the first half of the epochs and
    equal after; under "sqrt" it is within 1% throughout; "none" is far off."""
    from dltheory.sde.digits import DigitsCurves, RuleResult

    x = np.arange(9.0)
    ref = np.exp(-0.3 * x)
    def curves(large):
        loss = np.stack([ref, large])
        return DigitsCurves(("B = 4", "B = 64"), x, loss, np.zeros_like(loss),
                            np.zeros(2, bool))
    early = np.where(x < 4, 2.0, 1.0)
    res = RuleResult(np.array([1, 16]), {}, {"none": curves(ref * 5.0),
                                              "linear": curves(ref * early),
                                              "sqrt": curves(ref * 1.01)})
    assert res.best_rule == "sqrt"
    assert res.gap("linear") == pytest.approx(np.log(2.0))
    assert res.early_log_gap("linear") == pytest.approx(np.log(2.0))   # epochs 1-3: behind
    assert res.early_log_gap("sqrt") == pytest.approx(np.log(1.01))
    assert res.early_log_gap("none") > 0 and res.gap("none") == pytest.approx(np.log(5.0))
    with pytest.raises(ValueError, match="rule"):
        res.early_log_gap("cubic")


# --------------------------------------------------------------------------------------
# Widgets: precomputed, no compilation when a control moves
# --------------------------------------------------------------------------------------


def test_svag_widget_redraws_without_compiling(quad):
    res = quad
    e = F.svag_explorer(res)
    e.image()
    with count_compilations() as compiled:
        for l in (1, 2, 4, 8, 16):
            e.image(l=l)
    assert compiled() == 0
    with pytest.raises(ValueError, match="`l` must be one of"):
        F.svag_figure(res, 3)


# --------------------------------------------------------------------------------------
# Paper preset: CIFAR-10 loader and ResNet, offline on a stand-in
# --------------------------------------------------------------------------------------


def test_cifar_preset_runs_offline_on_a_standin(tmp_path):
    from dltheory import data as D
    from dltheory import models

    if not hasattr(D, "write_cifar10_standin") or not hasattr(models, "ResNet"):
        pytest.skip("dltheory.data.cifar10 / models.ResNet not merged yet")
    from dltheory.sde import cifar

    D.write_cifar10_standin(tmp_path, n_train=64, n_test=16)
    sizes = cifar.CifarSizes((1,), 4, 1, 1, None, 16)
    preset = cifar.cifar_preset("paper")
    assert preset["sizes"].stage_sizes == (5, 5, 5)
    run = cifar.cifar_run(sde.sgd_config(0.1, 16), l=2, sizes=sizes, root=str(tmp_path))
    assert run.train_loss.shape == (2,) and np.all(np.isfinite(run.train_loss))
    assert not run.diverged and run.l == 2.0


def test_rules_widget_renders_every_setting():
    base = sde.adam_config(5e-4, 4, b1=0.995, b2=0.9995)
    ks = np.array([1, 4, 16])
    x = np.arange(5.0)
    curves, configs = {}, {}
    for j, r in enumerate(E.RULES):
        loss = np.exp(-x[None] * np.array([1.0, 0.8 + 0.1 * j, 0.6 + 0.1 * j])[:, None])
        curves[r] = E.DigitsCurves(("1", "4", "16"), x, loss, 1 - loss, np.zeros(3, bool))
        fn = {"none": lambda c, k: c.replace(batch_size=c.batch_size * k),
              "linear": sde.linear_scaling_rule, "sqrt": sde.sqrt_scaling_rule}[r]
        configs[r] = [base] + [fn(base, int(k)) for k in ks[1:]]
    res = E.RuleResult(ks, configs, curves)
    e = F.rules_explorer(res)
    with count_compilations() as compiled:
        for kappa in (4, 16):
            for rule in E.RULES:
                fig = F.rules_figure(res, kappa, rule)
                assert "gap" in fig.axes[0].get_title()
        e.image()
    assert compiled() == 0
    assert res.gap("none") > res.gap("sqrt")


def test_adam_weak_error_order_against_one_on_made_up_errors():
    """The fitted order and its verdict on errors built to follow eta^p exactly."""
    from dltheory.sde.adam import AdamWeakErrorResult

    etas = np.array([0.2, 0.1, 0.05])
    times = np.array([0.0, 1.0])

    def made(p, se):
        err = 0.1 * (etas / etas[0]) ** p
        adam = np.stack([np.zeros_like(err), 1.0 + err], axis=1)
        adam_se = np.stack([np.zeros_like(err), se * err], axis=1)
        return AdamWeakErrorResult(etas, times, adam, adam_se, np.array([0.0, 1.0]),
                                   np.ones(2), np.ones(2), np.ones(2), 10)

    r = made(1.5, 0.01)
    assert r.slope == pytest.approx(1.5) and r.ratio == pytest.approx(4 ** 1.5)
    assert r.order_against_one() == "faster"
    assert made(0.5, 0.01).order_against_one() == "slower"
    assert made(1.05, 0.3).order_against_one() == "as fast"
