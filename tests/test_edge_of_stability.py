"""The edge of stability (dltheory.sharpness.edge_of_stability): the toy against its
closed form, the entry time and the predicted drift, and the chapter's claims."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dltheory import claims, curvature
from dltheory.sharpness import edge_of_stability as E


def _point(phi, r, w3=0.0):
    return jnp.asarray([r * math.cos(phi), r * math.sin(phi), w3], jnp.float32)


@pytest.mark.parametrize("phi,r", [(0.3, 1.0), (2.0, 0.4), (-2.5, 3.0)])
def test_toy_hessian_at_a_minimizer_is_closed_form(phi, r):
    # at w3 = 0: L = a(phi) w3^2 / |w|^2 has Hessian diag(0, 0, 2 a / r^2) in (., ., w3)
    w = _point(phi, r)
    h = np.asarray(jax.hessian(E.toy_loss)(w, None), np.float64)
    expected = np.zeros((3, 3))
    expected[2, 2] = 2 * (1 + 0.5 * math.cos(phi)) / r ** 2
    np.testing.assert_allclose(h, expected, atol=1e-5 / r ** 2)
    lam = float(curvature.sharpness(E.toy_loss, w, None, iters=30))
    assert lam == pytest.approx(expected[2, 2], rel=1e-4)
    # the spherical sharpness |w|^2 lambda_max does not depend on the norm
    assert lam * r ** 2 == pytest.approx(2 * float(E.toy_a(phi)), rel=1e-4)


def test_toy_is_scale_invariant_and_its_gradient_orthogonal():
    w = _point(0.7, 1.3, 0.2)
    for c in (0.1, 7.0):
        assert float(E.toy_loss(c * w)) == pytest.approx(float(E.toy_loss(w)), rel=1e-5)
    g = jax.grad(E.toy_loss)(w)
    assert abs(float(g @ w)) < 1e-6


def test_entry_steps_matches_the_norm_recursion():
    # on the minimizers only weight decay acts: |w_k|^2 = (1 - eta wd)^(2k) |w_0|^2
    start, eta, wd = 0.3, 0.1, 0.01
    k = E.entry_steps(start, eta, wd)
    assert start * (1 - eta * wd) ** (-2 * k) == pytest.approx(2.0, rel=1e-9)
    assert k * eta * wd == pytest.approx(math.log(2 / start) / 2, rel=1e-3)
    with pytest.raises(ValueError, match="start"):
        E.entry_steps(2.5, eta, wd)


def test_prediction_waits_then_falls_to_the_flattest_minimizer():
    start, phi0 = 2 * math.exp(-2), math.acos(0.96)
    t = np.linspace(0, 40, 401)
    p = E.toy_prediction(t, start=start, phi0=phi0)
    assert np.allclose(p[t < 0.99], 2.96, atol=1e-6)
    assert np.all(np.diff(p) <= 1e-12) and p[-1] == pytest.approx(1.0, abs=2e-3)


def test_toy_run_is_at_the_edge_and_drifts():
    s = E.ToySizes(steps=12_000, log_every=20, widget_steps=20, etas=(0.1,), wds=(0.02,),
                   widget_etas=(0.1, 0.2), widget_wds=(0.01, 0.02))
    r = E.toy_experiment(s)
    assert r.status == ("finished 12000 steps",)
    assert r.entry[0] == pytest.approx(r.entry_predicted[0], abs=0.05)
    after = r.eta_lam[0, r.time[0] > r.entry[0] + 0.2]
    assert 1.9 < np.median(after) < 2.1
    assert r.minimizer[0, -1] < 0.8 * r.minimizer[0, 0]


def test_presets_and_bad_sizes():
    for cls in (E.ToySizes, E.DigitsSizes, E.NormSizes):
        cls.quick(), cls.paper()
    with pytest.raises(ValueError, match="wds"):
        E.ToySizes(steps=20, log_every=20, widget_steps=20, etas=(0.1, 0.2), wds=(0.01,),
                   widget_etas=(0.1, 0.2), widget_wds=(0.01, 0.02))
    with pytest.raises(TypeError, match="sizes"):
        E.toy_experiment("quick")


# ------------------------------------------------------------------------------ claims


def test_claim_sharpness_reduction_on_the_toy():
    r = E.toy_experiment(E.ToySizes.quick())
    assert all(st.startswith("finished") for st in r.status)
    claims.check("eos-toy-band-low", r.band_low.min())
    claims.check("eos-toy-band-high", r.band_high.max())
    claims.check("eos-toy-spherical-falls", (r.minimizer[:, -1] / r.minimizer[:, 0]).max())
    claims.check("eos-toy-time-scale", r.reduce_time.max() / r.reduce_time.min())
    claims.check("eos-toy-drift-predicted", abs(r.reduce_time.mean() / r.predicted_time - 1))


@pytest.mark.slow
def test_claim_edge_of_stability_on_digits():
    d = E.digits_experiment(E.DigitsSizes.quick())
    assert all(st.startswith("finished") for st in d.status)
    assert d.crossing[0] == -1 and (d.crossing[1:] > 0).all()
    claims.check("eos-digits-band-low", d.band_low[1:].min())
    claims.check("eos-digits-band-high", d.band_high[1:].max())
    claims.check("eos-digits-loss-falls", d.window_ratio[1:].max())
    claims.check("eos-digits-non-monotone", d.rises[1:].min())
    claims.check("eos-digits-sharpening", d.small_rise)
    claims.check("eos-digits-below-edge", d.small_peak)


@pytest.mark.slow
def test_claim_sharpness_reduction_on_normalized_digits():
    n = E.normalized_experiment(E.NormSizes.quick())
    assert all(st.startswith("finished") for st in n.status)
    assert n.entry[0] > 0
    # the spherical sharpness is the sharpness at W / |W| (scale invariance)
    assert np.allclose(n.spherical, n.sharpness * n.sq_norm)
    claims.check("eos-normalized-reduction", n.at_end[0] / n.at_entry[0])
    claims.check("eos-normalized-no-decay", n.at_end[1] / n.at_entry[1])


def test_widget_redraws_every_setting_without_compiling():
    from matplotlib.figure import Figure

    from dltheory.training import count_compilations

    sizes = E.ToySizes.quick()
    grid = E.toy_grid(sizes)
    with count_compilations() as compiled:     # moving a control only redraws
        for eta in grid["etas"]:
            for wd in grid["wds"]:
                assert isinstance(E.toy_figure(grid, float(eta), float(wd)), Figure)
    assert compiled() == 0
    assert set(E.toy_explorer(grid).controls) == {"eta", "wd"}
