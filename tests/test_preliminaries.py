"""The Preliminaries chapter: each item of its theorem measured, plus its widget."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dltheory import claims, data
from dltheory import preliminaries as P
from dltheory.training import count_compilations, optimizer, sweep


@pytest.mark.parametrize("eigenvalues, rotate", [((0.5, 4.0), False),
                                                 ((0.5, 1.5, 4.0), True),
                                                 ((0.1, 2.0, 2.5, 10.0), True)])
def test_claim_stability_threshold_is_two_over_lambda_max(eigenvalues, rotate):
    pred = 2 / max(eigenvalues)
    grid = np.linspace(0.9 * pred, 1.1 * pred, 40)  # 0.5% resolution, no point on 2/lambda
    res = P.stability_sweep(eigenvalues, grid, 400, rotate=rotate)
    assert res.predicted == pytest.approx(pred)
    assert res.measured_low < pred < res.measured_high
    claims.check("gd-stability-threshold", (res.measured_low + res.measured_high) / (2 * pred))
    assert res.measured_high - res.measured_low == pytest.approx(grid[1] - grid[0])
    # below: loss decreased for every grid point; above: it grew for every grid point
    assert np.all(res.final_ratio[grid < pred] < 1)
    assert np.all(res.final_ratio[grid > pred] > 1)


def test_claim_loss_contracts_at_rate_rho_squared():
    lam, lr = np.array([0.5, 1.5, 4.0]), 0.3
    run = P.gd_on_quadratic(lam, lr, 40, rotate=True)
    rho = np.abs(1 - lr * lam).max()
    k = run.steps
    bound = rho ** (2 * k) * run["loss"][0]
    assert np.all(run["loss"] <= bound * (1 + 1e-4) + 1e-30)
    # and the rate is attained: the slope of log-loss is 2 log(rho) once the top mode dominates
    slope = np.polyfit(k[20:], np.log(run["loss"][20:]), 1)[0]
    claims.check("gd-contraction-rate", slope / (2 * np.log(rho)))


def test_claim_divergence_rate_above_threshold():
    lam, lr = (0.5, 4.0), 0.6
    run = P.gd_on_quadratic(lam, lr, 30)
    growth = np.polyfit(run.steps[5:], np.log(run["loss"][5:]), 1)[0]
    claims.check("gd-divergence-rate", growth / (2 * np.log(abs(1 - lr * 4.0))))
    assert not run.diverged  # 30 steps stay finite in float32
    far = P.gd_on_quadratic(lam, lr, 400)
    assert far.diverged and far.status.startswith("diverged at step")


def test_claim_oscillation_between_one_and_two_over_lambda_max():
    lam = (0.5, 4.0)
    sign = lambda lr: np.sign(P.gd_on_quadratic(lam, lr, 12)["x"][:, 1])  # noqa: E731
    assert np.all(sign(0.2) == 1)  # eta < 1/lambda_max: monotone
    s = sign(0.4)  # 1/lambda_max < eta < 2/lambda_max: flips every step
    claims.check("gd-oscillation", np.mean(s[1:] == -s[:-1]))


def test_claim_gd_follows_flow_to_first_order():
    lam = (0.5, 1.5, 4.0)
    lrs = np.array([0.04, 0.02, 0.01, 0.005])
    gap = P.gd_flow_gap(lam, lrs, horizon=2.0, rotate=True)
    claims.check("gd-flow-order", gap.order)
    bound = 0.5 * 2.0 * max(lam) ** 2 * lrs * np.sqrt(3)  # T lambda_max^2 eta |x0| / 2
    np.testing.assert_allclose(gap.bound, bound)
    assert np.all(gap.gap <= bound)
    assert np.all(np.diff(gap.gap) < 0)


def test_claim_momentum_threshold():
    """The chapter's exercise: heavy ball is stable iff eta lambda < 2 (1 + beta)."""
    lam = (0.5, 1.5, 4.0)
    h = data.quadratic(lam, rotate=True)
    for beta in (0.0, 0.5, 0.9):
        pred = 2 * (1 + beta) / max(lam)
        grid = np.array([0.97, 0.99, 1.01, 1.03])
        lrs = jnp.asarray(pred * grid)
        runs = sweep(P.quadratic_loss, jnp.ones(3),
                     optimizer(optax.sgd, learning_rate=lrs, momentum=beta),
                     steps=2000, batches=h, log_every=2000)
        decreased = runs["loss"][:, -1] < runs["loss"][:, 0]
        assert list(decreased) == [True, True, False, False], beta
        # the measured threshold: halfway between the last stable and first unstable rate
        k = int(np.argmin(decreased))
        claims.check("gd-momentum-threshold", (grid[k - 1] + grid[k]) / 2)


def test_flow_matches_its_differential_equation():
    lam = (0.5, 4.0)
    t = np.array([0.0, 0.1, 0.1 + 1e-6])
    x = P.flow_on_quadratic(lam, t, x0=(1.0, -2.0))
    np.testing.assert_allclose(x[0], [1.0, -2.0])
    derivative = (x[2] - x[1]) / 1e-6
    np.testing.assert_allclose(derivative, -np.array(lam) * x[1], rtol=1e-4)


@pytest.mark.parametrize("call, words", [
    (lambda: P.gd_on_quadratic((1.0,), -0.1, 10), "`lr` must be a finite number > 0"),
    (lambda: P.gd_on_quadratic((1.0, 2.0), 0.1, 10, x0=(1.0,)), "`x0` must have shape (2,)"),
    (lambda: P.gd_on_quadratic([], 0.1, 10), "`eigenvalues` must be a non-empty 1-D"),
    (lambda: P.stability_sweep((1.0, -1.0), [0.1, 0.2], 10), "`eigenvalues` must be > 0"),
    (lambda: P.stability_sweep((1.0,), [0.1], 10), "`lrs` must be a 1-D grid of at least two"),
    (lambda: P.stability_sweep((1.0,), [0.1, 0.5], 10), "does not bracket the stability threshold"),
    (lambda: P.gd_flow_gap((1.0,), [0.3, 0.7], 1.0), "horizon / lr must be an integer"),
    (lambda: P.flow_on_quadratic((1.0,), [-1.0]), "`times` must be a 1-D sequence of finite times >= 0"),
])
def test_bad_arguments(call, words):
    with pytest.raises(ValueError) as err:
        call()
    assert words in str(err.value)


def test_widget_moves_without_recompiling():
    e = P.gd_explorer(steps=60)
    e.image()  # first draw compiles
    with count_compilations() as compiled:
        for lr in e.controls["lr"].values[::4]:
            for c in e.controls["curvature"].values:
                e.image(lr=lr, curvature=c)
    assert compiled() == 0


def test_widget_shows_divergence_in_its_title():
    fig = P.gd_figure(1.2, 4.0, steps=60)
    assert "diverges" in fig._suptitle.get_text()
    legend = [t.get_text() for t in fig.axes[1].get_legend().texts]
    assert any(t.startswith("gradient descent: diverged at step") for t in legend)


@pytest.mark.parametrize("lr, curvature", [(0.5, 4.0), (1.0, 2.0)])
def test_widget_at_the_threshold_neither_converges_nor_diverges(lr, curvature):
    """eta * lambda_max = 2 exactly: the top coordinate flips sign with constant size, so
    the title must not say "converges" (nor "diverges"), and the run agrees."""
    fig = P.gd_figure(lr, curvature, steps=60)
    title = fig._suptitle.get_text()
    assert "neither converges nor diverges" in title
    assert "diverges" not in title.replace("nor diverges", "")
    run = P.gd_on_quadratic((P.LAMBDA_MIN, curvature), lr, 60, x0=(1.2, 1.2))
    top = run["x"][:, 1]
    np.testing.assert_allclose(np.abs(top), 1.2, rtol=1e-5)  # constant size
    assert np.all(top[1:] == -top[:-1])  # flips every step
    # the widget's grid value lands on the threshold, and its neighbours do not
    values = P.gd_explorer(steps=60).controls["lr"].values
    at = [v for v in values if P.gd_verdict(v * curvature).startswith("on the threshold")]
    assert len(at) == 1 and at[0] == pytest.approx(lr)
    assert P.gd_verdict(1.99) == "oscillates, converges"
    assert P.gd_verdict(2.01) == "diverges"
    assert P.gd_verdict(0.5) == "converges monotonically"


def test_presets():
    q, p = P.GDSizes.quick(), P.GDSizes.paper()
    assert q.num_lr < p.num_lr and q.sweep_steps < p.sweep_steps


def test_claim_edge_of_stability_on_digits():
    """Cohen et al. (2021): full-batch GD drives the sharpness to about 2 / lr and keeps it
    there without diverging, even from a start that is sharper than 2 / lr; a small lr
    stays far below its threshold. Measured, not assumed: this is the chapter's
    'where the picture breaks' section."""
    res = P.edge_of_stability([0.05, 0.2, 0.4], 1500, width=64, log_every=100)
    assert np.all(res.diverged_at == -1)
    assert np.all(res.loss[:, -1] < 0.1 * res.loss[:, 0])
    small, edge, catapult = res.late_ratio
    assert small < 0.5
    # At the edge the sharpness oscillates around 2 / lr; its late average sits in the
    # band [1.8 / lr, 2.4 / lr] (measured here 0.95 and 1.00 of 2 / lr; the exact value
    # depends on the processor's rounding, as GD at the edge is chaotic).
    claims.check("edge-of-stability", edge)
    assert 0.9 <= catapult <= 1.2
    assert res.sharpness[2, 0] > 1.5 * res.thresholds[2]  # started well past 2 / lr


def test_gd_grid_is_one_sweep_equal_to_single_runs():
    lrs = (0.1, 0.45, 0.55)
    runs = P.gd_grid((0.5, 4.0), lrs, 60, x0=(1.2, 1.2))
    for lr, run in zip(lrs, runs):
        one = P.gd_on_quadratic((0.5, 4.0), lr, 60, x0=(1.2, 1.2))
        np.testing.assert_allclose(run["x"], one["x"], rtol=1e-5, atol=1e-30)
        assert run.status == one.status
    with pytest.raises(ValueError, match="`lrs` must be a 1-D sequence of positive"):
        P.gd_grid((0.5, 4.0), (0.1, -0.2), 10)


def test_edge_of_stability_logs_every_100_steps_or_about_twenty_times():
    # 100 does not divide these: a run shorter than 20 steps logs every step, 60 every 3
    assert list(P.edge_of_stability([0.1], 8, width=4).steps) == list(range(9))
    assert list(P.edge_of_stability([0.1], 60, width=4).steps) == list(range(0, 61, 3))
